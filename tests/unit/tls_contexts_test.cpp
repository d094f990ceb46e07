// The name check a resumed upstream session must pass (tls::certificate_carries_name): the same
// rules as full verification, SAN entries only.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <string>

#include "tls/contexts.hpp"

namespace tlsgate::tls {
namespace {

// A self-signed certificate with subject CN `common_name` and, unless empty, the subjectAltName
// `sans` in openssl's config syntax ("DNS:a.test,IP:192.0.2.1").
pki::X509Ptr certificate(const std::string& common_name, const std::string& sans) {
    pki::EvpPkeyPtr key(EVP_EC_gen("P-256"));
    pki::X509Ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key.get());
    if (!sans.empty()) {
        X509_EXTENSION* extension =
            X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, sans.c_str());
        X509_add_ext(cert.get(), extension, -1);
        X509_EXTENSION_free(extension);
    }
    X509_sign(cert.get(), key.get(), EVP_sha256());
    return cert;
}

TEST(CertificateCarriesName, DnsNamesFromTheSanOnly) {
    const auto cert = certificate("cn-only.test", "DNS:evil.test,DNS:*.wild.test");
    EXPECT_TRUE(certificate_carries_name(cert.get(), "evil.test"));
    EXPECT_TRUE(certificate_carries_name(cert.get(), "EVIL.test"));
    EXPECT_TRUE(certificate_carries_name(cert.get(), "a.wild.test"));
    EXPECT_FALSE(certificate_carries_name(cert.get(), "bank.test"));
    EXPECT_FALSE(certificate_carries_name(cert.get(), "a.b.wild.test"));
    EXPECT_FALSE(certificate_carries_name(cert.get(), "cn-only.test"));  // no CN fallback
    EXPECT_FALSE(certificate_carries_name(cert.get(), ""));
    EXPECT_FALSE(certificate_carries_name(nullptr, "evil.test"));
}

TEST(CertificateCarriesName, NoPartialWildcards) {
    const auto cert = certificate("x", "DNS:w*.part.test");
    EXPECT_FALSE(certificate_carries_name(cert.get(), "www.part.test"));
}

TEST(CertificateCarriesName, IpLiteralsAgainstIpEntries) {
    const auto cert = certificate("192.0.2.9", "IP:192.0.2.7,DNS:192.0.2.8");
    EXPECT_TRUE(certificate_carries_name(cert.get(), "192.0.2.7"));
    EXPECT_FALSE(certificate_carries_name(cert.get(), "192.0.2.8"));  // a DNS entry is no IP
    EXPECT_FALSE(certificate_carries_name(cert.get(), "192.0.2.9"));  // nor is the CN
}

}  // namespace
}  // namespace tlsgate::tls
