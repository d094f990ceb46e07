#pragma once
// Missing intermediates, fetched as browsers do: the caIssuers URL of a certificate's Authority
// Information Access extension names its issuer's certificate. What is fetched is only ever a
// hint for chain building (the untrusted set), never a trust anchor, so a bad or stale fetch can
// make a chain fail but never make a bad one pass. The I/O is in relay/aia_fetch.
#include <openssl/x509.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"

namespace tlsgate::tls {

// The caIssuers URIs of `cert`'s Authority Information Access extension, in order.
std::vector<std::string> ca_issuers_urls(const X509* cert);

struct HttpUrl {
    std::string host;  // lower case; an IPv6 literal without brackets
    std::uint16_t port = 80;
    std::string path;  // with the query, "/" when empty
};
// http:// only: an https fetch would need the very chain that is missing, and browsers fetch
// no other scheme (ldap, file) either. No user info, no fragment.
std::optional<HttpUrl> parse_http_url(std::string_view url);

// The body of a whole HTTP/1.x response (read until the server closed): status 200 only, no
// chunked coding (the request is HTTP/1.0), Content-Length honoured when present, and at most
// `max_body` bytes.
Result<std::string> http_response_body(std::string_view response, std::size_t max_body);

// The certificate a caIssuers URL serves: DER (RFC 5280 says DER or a certs-only PKCS#7), PEM
// (which servers send too), or the first certificate of a PKCS#7 bundle. Null if none.
pki::X509Ptr decode_issuer_certificate(std::string_view body);

// One worker's fetched intermediates, keyed by URL, including recent failures so a broken URL is
// not fetched again for every connection. Bounded: when full, the oldest entry goes.
class IntermediateCache {
public:
    using Clock = std::chrono::steady_clock;
    struct Limits {
        std::size_t entries = 64;
        Clock::duration ttl = std::chrono::hours(1);
        Clock::duration failure_ttl = std::chrono::minutes(1);
    };
    enum class State { missing, fetched, failed };

    IntermediateCache() = default;
    explicit IntermediateCache(Limits limits) : limits_(limits) {}

    State state(std::string_view url, Clock::time_point now) const;
    // A null certificate records a failed fetch.
    void store(std::string_view url, pki::X509Ptr certificate, Clock::time_point now);
    bool empty() const { return entries_.empty(); }
    std::size_t size() const { return entries_.size(); }

    // Appends to `chain` the unexpired cached certificates that issued one of its certificates
    // (and, in turn, theirs), none twice. Returns how many were added. The pointers stay owned by
    // the cache: `chain` must not outlive the next store().
    std::size_t add_issuers(STACK_OF(X509) * chain, Clock::time_point now) const;

private:
    struct Entry {
        std::string url;
        pki::X509Ptr certificate;  // null: the fetch failed
        Clock::time_point expires;
    };
    Limits limits_;
    std::vector<Entry> entries_;  // oldest first; small, so a linear scan beats hashing
};

}  // namespace tlsgate::tls
