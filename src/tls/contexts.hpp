#pragma once
// OpenSSL contexts for both legs of an intercepted connection. The upstream leg verifies at least
// as strictly as a browser; the client-facing leg presents minted leaves and mirrors the ALPN
// protocol upstream chose.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"

namespace tlsgate::tls {

class IntermediateCache;  // tls/aia.hpp

struct UpstreamTrust {
    bool use_system_store = true;
    std::vector<std::string> extra_ca_files;  // PEM bundles added to the trust store
};

// TLS 1.2+ client context: forward-secret AEAD suites only, security level 2, no compression or
// renegotiation, peer verification required against `trust`.
Result<pki::SslCtxPtr> make_upstream_context(const UpstreamTrust& trust);
// TLS 1.2+ server context for the client leg (the certificate is set per connection).
Result<pki::SslCtxPtr> make_client_facing_context();

// Upstream SSL setup: SNI (omitted when `sni` is empty or an IP literal), the ALPN offer, and the
// name the certificate must carry: a DNS name checked against SAN dNSNames only (no CN fallback,
// no partial wildcards) or an IP literal checked against SAN iPAddresses. An empty name verifies
// the chain only (an in-path client without SNI: the minted leaf mirrors upstream's names).
Result<void> configure_upstream_ssl(SSL* ssl, std::string_view sni, std::string_view verify_name,
                                    const std::vector<std::string>& alpn_offer);

// Lets the upstream context's verification also use `cache`'s fetched intermediates (as
// untrusted chain-building hints) for this SSL; the cache must outlive its handshake.
void use_intermediate_cache(SSL* ssl, const IntermediateCache* cache);

// The protocol the client leg should select (upstream's choice; empty: no ALPN). Stored on the
// SSL object and read by the context's ALPN callback.
void set_mirrored_alpn(SSL* ssl, const std::string* protocol);

// ALPN protocols tlsgate can relay and inspect, filtered from the client's offer in its order.
std::vector<std::string> relayable_alpn(const std::vector<std::string>& client_offer);

// Why upstream verification failed, as a stable code for records and metrics plus OpenSSL's text.
struct VerifyFailure {
    // expired, not_yet_valid, self_signed, untrusted_root, wrong_host, weak_key,
    // weak_signature, bad_signature, not_a_ca, name_constraints, unknown_critical_extension,
    // invalid_chain, other; and from check_verified_chain: own_ca, known_interception_root,
    // revoked
    std::string code;
    std::string detail;
};
VerifyFailure classify_verify_result(long verify_result);

// Whether `cert` carries `verify_name` as configure_upstream_ssl checks it (SAN dNSName without CN
// fallback or partial wildcards, or SAN iPAddress for an IP literal). OpenSSL checks no name when
// it resumes a session, whatever the SNI: a resumed session is only as good as this check.
bool certificate_carries_name(X509* cert, std::string_view verify_name);

std::string version_name(const SSL* ssl);   // "TLSv1.3"
std::string selected_alpn(const SSL* ssl);  // "" when none

}  // namespace tlsgate::tls
