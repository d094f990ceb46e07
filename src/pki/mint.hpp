#pragma once
// Leaf minting: a pure function from CertProperties (and the keys) to a certificate, plus the
// rule that derives those properties from a verified upstream certificate.
#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ip.hpp"
#include "common/result.hpp"
#include "pki/ca.hpp"

namespace tlsgate::pki {

struct CertProperties {
    std::string common_name;              // may be empty (no CN in the subject)
    std::vector<std::string> dns_names;   // SAN dNSName entries, in order
    std::vector<IpAddress> ip_addresses;  // SAN iPAddress entries
    std::time_t not_before = 0;
    std::time_t not_after = 0;
    std::array<std::uint8_t, 16> serial{};  // positive: the top bit is cleared when encoding
};

inline constexpr long kMaxLeafValiditySeconds = 397L * 24 * 3600;

// Names and validity for a leaf standing in for `upstream`, which the caller has verified for
// `sni`: subject CN (first CN, at most 64 characters; left out when the leaf would have no DNS
// name and no SAN entry carries it, as clients then read it as one) and every SAN dNSName/iPAddress
// copied from it (other SAN kinds and non-printable names are left out); `sni` (validated,
// lower-cased) appended as a dNSName, or as an iPAddress when it is an IP literal, unless already
// listed (compared case-insensitively); notBefore = max(now - 1 hour, upstream notBefore); notAfter
// = min(upstream notAfter, now + 397 days). Errors when nothing is named or the window is empty.
// `serial` comes from the caller (random), so this stays pure.
Result<CertProperties> mirror_properties(X509* upstream, std::string_view sni, std::time_t now,
                                         const std::array<std::uint8_t, 16>& serial);

// Names and validity for a leaf from the untrusted CA standing in for an upstream certificate that
// failed verification: subject CN and SAN names copied as mirror_properties copies them, and
// exactly upstream's notBefore and notAfter. Nothing is added or clamped, so the client finds the
// same fault it would find directly: an expired upstream gives an expired leaf, a wrong-host one
// keeps its wrong names. Errors when upstream names nothing (no CN, no SAN) or its validity
// period is malformed or empty.
Result<CertProperties> untrusted_mirror_properties(X509* upstream,
                                                   const std::array<std::uint8_t, 16>& serial);

// A v3 leaf: subject CN (if any), SAN (when there are names; critical when the subject is empty;
// a leaf needs a CN or a SAN name, and only an untrusted mirror has no SAN), basicConstraints
// critical CA:FALSE, keyUsage critical digitalSignature (+keyEncipherment for RSA keys), EKU
// serverAuth, SKI, AKI from the CA, SHA-256 signature by the CA key (EC or RSA), issuer = the CA
// subject. Refuses the CA key as leaf key. Safe to call from many threads with one shared CA.
Result<X509Ptr> mint_leaf(const CertProperties& properties, EVP_PKEY* leaf_key,
                          const CertificateAuthority& ca);

// Leaves follow upstream's key class where it is strong: an RSA upstream gets an RSA-2048 leaf
// (clients that chose the server for RSA keep working), anything else ECDSA P-256.
enum class LeafKeyKind { ec_p256, rsa_2048 };
LeafKeyKind leaf_key_kind_for(X509* upstream);
// A fresh leaf key of that kind (never the CA key). RSA-2048 with e = 65537 takes tens of
// milliseconds: generated once at start, not per connection.
Result<EvpPkeyPtr> generate_leaf_key(LeafKeyKind kind = LeafKeyKind::ec_p256);
// 16 random bytes from OpenSSL's CSPRNG.
std::array<std::uint8_t, 16> random_serial();

// A bounded least-recently-used cache of minted leaves. One per worker thread: not thread-safe
// by design (share-nothing workers, no locks on the hot path).
class LeafCache {
public:
    explicit LeafCache(std::size_t capacity);
    // The cached certificate (a new reference the caller owns) or null.
    X509Ptr find(const std::string& key);
    void insert(const std::string& key, X509* cert);  // takes its own reference
    std::size_t size() const { return index_.size(); }
    std::size_t capacity() const { return capacity_; }

private:
    using Entry = std::pair<std::string, X509Ptr>;
    std::size_t capacity_;
    std::list<Entry> order_;  // most recent first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace tlsgate::pki
