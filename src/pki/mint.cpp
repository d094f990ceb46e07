#include "pki/mint.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <sys/random.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "common/hostname.hpp"
#include "common/text.hpp"
#include "pki/x509_build.hpp"

namespace tlsgate::pki {
namespace {

using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, OpenSslDeleter<GENERAL_NAME_free>>;
using ExtendedKeyUsagePtr =
    std::unique_ptr<EXTENDED_KEY_USAGE, OpenSslDeleter<EXTENDED_KEY_USAGE_free>>;

// ub-common-name (RFC 5280): 64 characters.
constexpr std::size_t kMaxCommonNameCharacters = 64;

Error openssl_failure(const std::string& what) {
    return make_error(what + ": " + last_openssl_error());
}

std::size_t utf8_character_count(std::string_view text) {
    // Continuation bytes (10xxxxxx) do not start a character.
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    }));
}

// A dNSName we are willing to repeat in a certificate: printable ASCII, no spaces. Anything else
// (NULs, controls, 8-bit bytes) has no business in a host name and could confuse the client.
bool is_plausible_dns_name(std::string_view name) {
    return !name.empty() &&
           std::all_of(name.begin(), name.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool equals_ignoring_ascii_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               const auto lower = [](char c) {
                   return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
               };
               return lower(x) == lower(y);
           });
}

std::string_view asn1_string_view(const ASN1_STRING* text) {
    return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
            static_cast<std::size_t>(ASN1_STRING_length(text))};
}

Result<std::string> first_common_name(X509* upstream) {
    const X509_NAME* subject = X509_get_subject_name(upstream);
    const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0) {
        return std::string();
    }
    const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, value);
    if (length < 0) {
        return openssl_failure("the upstream subject CN is not valid text");
    }
    std::string common_name(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
    OPENSSL_free(utf8);
    if (common_name.find('\0') != std::string::npos) {
        return make_error("the upstream subject CN contains a NUL byte");
    }
    if (utf8_character_count(common_name) > kMaxCommonNameCharacters) {
        return make_error("the upstream subject CN is longer than 64 characters");
    }
    return common_name;
}

// Copies the upstream SAN dNSName and iPAddress entries; other kinds (email, URI, ...) are not
// needed for a TLS server and are left out.
Result<void> copy_subject_alt_names(X509* upstream, CertProperties& properties) {
    int critical = -1;
    GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(upstream, NID_subject_alt_name, &critical, nullptr)));
    if (!names) {
        if (critical == -1) {
            return {};  // no SAN extension
        }
        ERR_clear_error();
        return make_error(critical == -2
                              ? "the upstream certificate has more than one SAN extension"
                              : "the upstream SAN extension is malformed");
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
        if (name->type == GEN_DNS) {
            const std::string_view dns_name = asn1_string_view(name->d.dNSName);
            if (is_plausible_dns_name(dns_name)) {
                properties.dns_names.emplace_back(dns_name);
            }
        } else if (name->type == GEN_IPADD) {
            const std::string_view bytes = asn1_string_view(name->d.iPAddress);
            if (bytes.size() == 4 || bytes.size() == 16) {
                IpAddress address;
                address.is_v6 = bytes.size() == 16;
                std::copy(bytes.begin(), bytes.end(), address.bytes.begin());
                properties.ip_addresses.push_back(address);
            }
        }
    }
    return {};
}

Result<void> append_sni(std::string_view sni, CertProperties& properties) {
    if (sni.empty()) {
        return {};
    }
    // An IP literal first: "192.0.2.1" would also pass as a host name of digit labels.
    if (auto address = IpAddress::parse(sni)) {
        const IpAddress wanted = address->unmapped();
        const bool listed =
            std::any_of(properties.ip_addresses.begin(), properties.ip_addresses.end(),
                        [&](const IpAddress& listed) { return listed.unmapped() == wanted; });
        if (!listed) {
            properties.ip_addresses.push_back(*address);
        }
        return {};
    }
    // The name came from the network: validate it before it goes into a certificate.
    auto host = normalize_hostname(sni);
    if (!host) {
        return make_error("the server name \"" + std::string(sni) + "\" is not a valid host name");
    }
    const bool listed = std::any_of(
        properties.dns_names.begin(), properties.dns_names.end(),
        [&](const std::string& name) { return equals_ignoring_ascii_case(name, *host); });
    if (!listed) {
        properties.dns_names.push_back(std::move(*host));
    }
    return {};
}

bool has_san_names(const CertProperties& properties) {
    return !properties.dns_names.empty() || !properties.ip_addresses.empty();
}

Result<void> check_properties(const CertProperties& properties) {
    if (!has_san_names(properties) && properties.common_name.empty()) {
        return make_error("a leaf certificate needs a common name, a DNS name or an IP address");
    }
    if (properties.not_after <= properties.not_before) {
        return make_error("the leaf validity period is empty (notAfter <= notBefore)");
    }
    if (properties.common_name.find('\0') != std::string::npos ||
        utf8_character_count(properties.common_name) > kMaxCommonNameCharacters) {
        return make_error("the leaf common name is longer than 64 characters or contains NUL");
    }
    for (const std::string& name : properties.dns_names) {
        if (!is_plausible_dns_name(name)) {
            return make_error("the leaf DNS name \"" + name + "\" is not printable ASCII");
        }
    }
    return {};
}

Result<GeneralNamesPtr> build_subject_alt_names(const CertProperties& properties) {
    GeneralNamesPtr names(sk_GENERAL_NAME_new_reserve(
        nullptr, static_cast<int>(properties.dns_names.size() + properties.ip_addresses.size())));
    if (!names) {
        return openssl_failure("cannot allocate the SAN list");
    }
    const auto append = [&](int type, const void* bytes, std::size_t length) -> bool {
        GeneralNamePtr name(GENERAL_NAME_new());
        ASN1_STRING* value =
            ASN1_STRING_type_new(type == GEN_DNS ? V_ASN1_IA5STRING : V_ASN1_OCTET_STRING);
        if (!name || value == nullptr ||
            ASN1_STRING_set(value, bytes, static_cast<int>(length)) != 1) {
            ASN1_STRING_free(value);
            return false;
        }
        GENERAL_NAME_set0_value(name.get(), type, value);
        if (sk_GENERAL_NAME_push(names.get(), name.get()) <= 0) {
            return false;
        }
        name.release();  // now owned by the list
        return true;
    };
    for (const std::string& dns_name : properties.dns_names) {
        if (!append(GEN_DNS, dns_name.data(), dns_name.size())) {
            return openssl_failure("cannot add a SAN dNSName");
        }
    }
    for (const IpAddress& address : properties.ip_addresses) {
        if (!append(GEN_IPADD, address.bytes.data(), address.size())) {
            return openssl_failure("cannot add a SAN iPAddress");
        }
    }
    return names;
}

Result<void> add_server_auth_usage(X509* cert) {
    ExtendedKeyUsagePtr usage(sk_ASN1_OBJECT_new_null());
    // OBJ_nid2obj returns a static object: the list may "free" it harmlessly.
    if (!usage || sk_ASN1_OBJECT_push(usage.get(), OBJ_nid2obj(NID_server_auth)) <= 0) {
        return openssl_failure("cannot build extendedKeyUsage");
    }
    return detail::add_extension(cert, NID_ext_key_usage, usage.get(), false, "extendedKeyUsage");
}

// The CA's own key identifier when it states one; otherwise computed the same way as ours, so a
// CA imported without an SKI still gets a matching AKI in its leaves. Decoded from the extension
// on each call rather than through X509_get0_subject_key_id: that fills OpenSSL 3.0's lazy
// per-certificate cache, which can race when worker threads share the CA certificate.
Result<detail::Asn1OctetStringPtr> issuer_key_identifier(X509* ca_cert) {
    int critical = -1;
    detail::Asn1OctetStringPtr stated(static_cast<ASN1_OCTET_STRING*>(
        X509_get_ext_d2i(ca_cert, NID_subject_key_identifier, &critical, nullptr)));
    if (stated) {
        return stated;
    }
    ERR_clear_error();  // absent or malformed: fall back to computing it
    return detail::key_identifier(ca_cert);
}

bool same_key(EVP_PKEY* a, EVP_PKEY* b) {
    if (a == b) {
        return true;
    }
    if (EVP_PKEY_get_base_id(a) != EVP_PKEY_get_base_id(b)) {
        return false;
    }
    // EVP_PKEY_eq queues an error when it cannot compare; that is an answer here, not a failure.
    ERR_set_mark();
    const bool equal = EVP_PKEY_eq(a, b) == 1;
    ERR_pop_to_mark();
    return equal;
}

// Whether a SAN entry of `properties` is its common name.
bool names_common_name(const CertProperties& properties) {
    const std::string& cn = properties.common_name;
    return std::any_of(properties.dns_names.begin(), properties.dns_names.end(),
                       [&](const std::string& name) { return equals_ignoring_case(name, cn); }) ||
           std::any_of(properties.ip_addresses.begin(), properties.ip_addresses.end(),
                       [&](const IpAddress& address) { return address.to_string() == cn; });
}

// The names of `upstream` (first CN and the SANs a leaf may carry), with `serial`.
Result<CertProperties> copy_names(X509* upstream, const std::array<std::uint8_t, 16>& serial) {
    CertProperties properties;
    properties.serial = serial;
    auto common_name = first_common_name(upstream);
    if (!common_name) {
        return make_error(common_name.error());
    }
    properties.common_name = std::move(*common_name);
    if (auto copied = copy_subject_alt_names(upstream, properties); !copied) {
        return make_error(copied.error());
    }
    return properties;
}

}  // namespace

Result<CertProperties> mirror_properties(X509* upstream, std::string_view sni, std::time_t now,
                                         const std::array<std::uint8_t, 16>& serial) {
    if (upstream == nullptr) {
        return make_error("mirror_properties: no upstream certificate");
    }
    auto named = copy_names(upstream, serial);
    if (!named) {
        return named;
    }
    CertProperties& properties = *named;
    if (auto appended = append_sni(sni, properties); !appended) {
        return make_error(appended.error());
    }
    // Mostly only shown, but a client that falls back to the CN (OpenSSL's does when a certificate
    // has no DNS SAN) would take it for a name, which verification never checked (SANs only):
    // without a DNS SAN, the leaf keeps it only when one of its SAN entries carries it.
    if (properties.dns_names.empty() && !names_common_name(properties)) {
        properties.common_name.clear();
    }
    if (properties.dns_names.empty() && properties.ip_addresses.empty()) {
        return make_error(
            "the upstream certificate names no DNS name or IP address and there is no SNI");
    }
    auto upstream_not_before = asn1_time_to_time_t(X509_get0_notBefore(upstream));
    auto upstream_not_after = asn1_time_to_time_t(X509_get0_notAfter(upstream));
    if (!upstream_not_before || !upstream_not_after) {
        return make_error("the upstream validity period is malformed");
    }
    // An hour of slack for clients with a slow clock, but never before upstream's own start and
    // never past its end: the leaf must not be valid where upstream is not.
    properties.not_before = std::max(now - 3600, *upstream_not_before);
    properties.not_after = std::min(*upstream_not_after, now + kMaxLeafValiditySeconds);
    if (properties.not_after <= properties.not_before) {
        return make_error("the upstream certificate expired at " +
                          format_time_utc(*upstream_not_after));
    }
    return named;
}

Result<CertProperties> untrusted_mirror_properties(X509* upstream,
                                                   const std::array<std::uint8_t, 16>& serial) {
    if (upstream == nullptr) {
        return make_error("untrusted_mirror_properties: no upstream certificate");
    }
    auto named = copy_names(upstream, serial);
    if (!named) {
        return named;
    }
    CertProperties& properties = *named;
    if (properties.common_name.empty() && !has_san_names(properties)) {
        return make_error("the upstream certificate names no host (no CN, no SAN)");
    }
    auto not_before = asn1_time_to_time_t(X509_get0_notBefore(upstream));
    auto not_after = asn1_time_to_time_t(X509_get0_notAfter(upstream));
    if (!not_before || !not_after || *not_after <= *not_before) {
        return make_error("the upstream validity period is malformed or empty");
    }
    properties.not_before = *not_before;
    properties.not_after = *not_after;
    return named;
}

Result<X509Ptr> mint_leaf(const CertProperties& properties, EVP_PKEY* leaf_key,
                          const CertificateAuthority& ca) {
    if (leaf_key == nullptr || !ca.cert || !ca.key) {
        return make_error("mint_leaf: missing leaf key, CA certificate or CA key");
    }
    if (same_key(leaf_key, ca.key.get())) {
        return make_error("mint_leaf: the leaf key must not be the CA key");
    }
    if (auto valid = check_properties(properties); !valid) {
        return make_error(valid.error());
    }
    X509Ptr cert(X509_new());
    if (!cert) {
        return openssl_failure("cannot allocate a certificate");
    }
    if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert.get())) != 1) {
        return openssl_failure("cannot set the leaf issuer");
    }
    if (auto set = detail::set_public_key(cert.get(), leaf_key); !set) {
        return make_error(set.error());
    }
    const bool has_subject = !properties.common_name.empty();
    if (has_subject && X509_NAME_add_entry_by_NID(
                           X509_get_subject_name(cert.get()), NID_commonName, MBSTRING_UTF8,
                           reinterpret_cast<const unsigned char*>(properties.common_name.data()),
                           static_cast<int>(properties.common_name.size()), -1, 0) != 1) {
        return openssl_failure("cannot set the leaf common name");
    }
    auto alt_names = build_subject_alt_names(properties);
    if (!alt_names) {
        return make_error(alt_names.error());
    }
    auto subject_key_id = detail::key_identifier(cert.get());
    if (!subject_key_id) {
        return make_error(subject_key_id.error());
    }
    auto authority_key_id = issuer_key_identifier(ca.cert.get());
    if (!authority_key_id) {
        return make_error(authority_key_id.error());
    }
    // RSA key exchange (TLS 1.2 without ECDHE) encrypts to the key, so RSA leaves also need
    // keyEncipherment; EC keys only sign.
    const bool rsa_leaf = EVP_PKEY_get_base_id(leaf_key) == EVP_PKEY_RSA;

    Result<void> step = detail::set_version_and_serial(cert.get(), properties.serial);
    if (step) {
        step = detail::set_validity(cert.get(), properties.not_before, properties.not_after);
    }
    if (step && has_san_names(properties)) {
        // RFC 5280 4.2.1.6: with an empty subject the SAN must be critical.
        step = detail::add_extension(cert.get(), NID_subject_alt_name, alt_names->get(),
                                     !has_subject, "subjectAltName");
    }
    if (step) {
        step = detail::add_basic_constraints(cert.get(), false, -1);
    }
    if (step) {
        step = rsa_leaf ? detail::add_key_usage(cert.get(),
                                                {0 /* digitalSignature */, 2 /* keyEncipherment */})
                        : detail::add_key_usage(cert.get(), {0 /* digitalSignature */});
    }
    if (step) {
        step = add_server_auth_usage(cert.get());
    }
    if (step) {
        step = detail::add_subject_key_id(cert.get(), subject_key_id->get());
    }
    if (step) {
        step = detail::add_authority_key_id(cert.get(), authority_key_id->get());
    }
    if (step) {
        step = detail::sign_sha256(cert.get(), ca.key.get());
    }
    if (!step) {
        return make_error(step.error());
    }
    return cert;
}

LeafKeyKind leaf_key_kind_for(X509* upstream) {
    const EVP_PKEY* key = X509_get0_pubkey(upstream);
    return key != nullptr && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA ? LeafKeyKind::rsa_2048
                                                                       : LeafKeyKind::ec_p256;
}

Result<EvpPkeyPtr> generate_leaf_key(LeafKeyKind kind) {
    EvpPkeyPtr key(kind == LeafKeyKind::rsa_2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
    if (!key) {
        return openssl_failure("cannot generate a leaf key");
    }
    if (auto prepared = detail::prepare_public_key(key.get()); !prepared) {
        return make_error(prepared.error());
    }
    return key;
}

std::array<std::uint8_t, 16> random_serial() {
    std::array<std::uint8_t, 16> serial{};
    if (RAND_bytes(serial.data(), static_cast<int>(serial.size())) != 1) {
        // Only when OpenSSL's DRBG cannot seed, which also stops key generation. A serial must
        // still be unpredictable, so fall back to the kernel's generator rather than a counter.
        ERR_clear_error();
        if (getrandom(serial.data(), serial.size(), 0) != static_cast<ssize_t>(serial.size())) {
            std::fputs("tlsgate: no source of randomness left for certificate serials\n", stderr);
            std::abort();
        }
    }
    return serial;
}

LeafCache::LeafCache(std::size_t capacity) : capacity_(capacity) {
    // Pre-size for the common case without trusting a huge configured capacity.
    index_.reserve(std::min<std::size_t>(capacity, 1 << 16));
}

X509Ptr LeafCache::find(const std::string& key) {
    const auto found = index_.find(key);
    if (found == index_.end()) {
        return nullptr;
    }
    order_.splice(order_.begin(), order_, found->second);
    X509* cert = found->second->second.get();
    X509_up_ref(cert);
    return X509Ptr(cert);
}

void LeafCache::insert(const std::string& key, X509* cert) {
    if (cert == nullptr || capacity_ == 0) {
        return;
    }
    X509_up_ref(cert);
    X509Ptr reference(cert);
    if (const auto found = index_.find(key); found != index_.end()) {
        found->second->second = std::move(reference);
        order_.splice(order_.begin(), order_, found->second);
        return;
    }
    order_.emplace_front(key, std::move(reference));
    index_.emplace(key, order_.begin());
    while (index_.size() > capacity_) {
        index_.erase(order_.back().first);
        order_.pop_back();
    }
}

}  // namespace tlsgate::pki
