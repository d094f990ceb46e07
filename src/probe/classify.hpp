#pragma once
// The verdict on one probe: clean, intercepted, invalid, blocked, no-tls or error, with the issuer,
// the root's SPKI SHA-256 and the known interception root it matched. The chain is collected with
// verification off during the handshake and verified here (X509_verify_cert against the trust
// store, host name from SAN only), so a chain that fails still gets a root and a name.
//
// The rules (docs/probe.md explains them for users):
//  - intercepted: the chain contains a known interception key (built-in list, --known-roots, the
//    local tlsgate CA) or a CA named "tlsgate CA ..." (tlsgate never hides), whether or not it is
//    trusted; or it ends at a root outside the trust store while the name is expected to be
//    public (no control, or a control not judged invalid for a chain outside the trust store);
//    or, with --connect and a control, it differs from the control's certificate and does not
//    verify.
//  - invalid: the certificate is broken in a way that is not interception: expired, self-signed
//    leaf, wrong host on a publicly trusted chain, weak key, an untrusted root when the control
//    is invalid for the same reason, ...
//  - blocked: the connection was reset or closed, timed out or got an alert right after our
//    ClientHello, or the proxy refused the CONNECT (403, 451).
//  - no-tls: the server answered the ClientHello with something that is not TLS.
//  - error: nothing was learned about TLS (DNS, TCP connect, the proxy, the local TLS stack).
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "pki/known_roots.hpp"
#include "pki/openssl_handles.hpp"
#include "probe/observation.hpp"
#include "probe/target.hpp"

namespace tlsgate::probe {

// The gateway refuses upstream chains that end at these roots; the probe names them.
using pki::builtin_known_roots;
using pki::KnownRoot;
using pki::KnownRoots;
using pki::read_certificate_file;

enum class Status { clean, intercepted, invalid, blocked, no_tls, error };
inline constexpr Status kAllStatuses[] = {Status::clean,   Status::intercepted, Status::invalid,
                                          Status::blocked, Status::no_tls,      Status::error};
std::string_view status_name(Status status);  // "clean", ..., "no-tls", "error"

// RFC 8446 names ("access_denied"); "alert_N" for codes without one.
std::string alert_name(int description);

using X509StorePtr = std::unique_ptr<X509_STORE, pki::OpenSslDeleter<X509_STORE_free>>;

// The system's default verify paths (when `use_system_store`) plus PEM bundles.
Result<X509StorePtr> load_trust_store(bool use_system_store, const std::vector<std::string>& files);

struct TrustContext {
    X509StorePtr store;
    KnownRoots known;
    std::optional<std::time_t> verify_time;  // tests pin the clock; nullopt: now
};

struct CertificateInfo {
    std::string subject;  // one line, RFC 2253 order
    std::string issuer;
    std::string sha256;       // lower-case hex of the DER certificate
    std::string spki_sha256;  // lower-case hex of the DER SubjectPublicKeyInfo
    std::string not_before;   // "2026-11-22T15:33:36Z"
    std::string not_after;
    std::vector<std::string> dns_names;  // SAN dNSName entries
};

// Where the chain ends.
struct RootInfo {
    std::string subject;      // the root's subject, or the top certificate's issuer when missing
    std::string spki_sha256;  // empty when the root certificate is not available
    bool in_trust_store = false;
    std::string source;  // "presented", "trust store", "known" (e.g. the local tlsgate CA),
                         // "not presented" (only its name, from the top certificate, is known)
};

struct KnownRootMatch {
    std::string name;
    std::string spki_sha256;  // empty for a match by issuer name
    std::string source;       // "built-in", a file, or "issuer name"
    std::string matched_subject;
};

struct ChainAssessment {
    bool verified = false;                   // chains to the trust store and every check passed
    bool root_untrusted = false;             // the chain ends at a root outside the trust store
    bool self_signed_leaf = false;           // the leaf is its own (untrusted) root
    std::vector<std::string> verify_errors;  // codes of tls::classify_verify_result, in order
    std::string verify_detail;               // OpenSSL's words for the first error
    std::optional<CertificateInfo> leaf;
    std::vector<CertificateInfo> chain;  // as presented, leaf first
    std::optional<RootInfo> root;
    std::optional<KnownRootMatch> known_root;
};

// Verifies a presented chain (DER, leaf first) for `target` (a DNS name against SAN dNSName, an
// IP literal against SAN iPAddress), collecting every error rather than stopping at the first.
ChainAssessment assess_chain(const std::vector<std::string>& chain_der, const Target& target,
                             const TrustContext& trust);

// What a test name is compared with in SNI-triggered detection.
struct ControlBaseline {
    std::string target;  // "name:port"
    Status status = Status::error;
    bool handshake_done = false;
    std::string leaf_sha256;
    std::string tls_version;
    std::string cipher;
    // The control's own chain does not reach the trust store (a self-signed or privately issued
    // certificate the control was not judged intercepted for): the server's PKI is not public.
    bool chain_untrusted = false;
    // Every name went to the same address (--connect), so the server is the same and any
    // difference in what comes back was caused by the SNI.
    bool same_destination = false;
};

struct ControlComparison {
    bool same_destination = false;
    bool differs = false;
    std::vector<std::string> fields;  // "certificate", "version", "cipher"
    // The name got a different certificate than the control from the same destination and was
    // judged intercepted: interception triggered by the SNI.
    bool triggered = false;
};

struct ProbeResult {
    Target target;
    Status status = Status::error;
    std::string reason;
    Observation observation;
    ChainAssessment chain;
    std::optional<ControlComparison> comparison;
};

ProbeResult classify(const Target& target, Observation observation, const TrustContext& trust,
                     const ControlBaseline* control = nullptr);

ControlBaseline make_baseline(const ProbeResult& control, bool same_destination);

}  // namespace tlsgate::probe
