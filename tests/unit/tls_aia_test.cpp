// Missing intermediates (tls/aia): the caIssuers URLs of a certificate, the http:// URLs tlsgate
// fetches, the HTTP responses it accepts, the certificate encodings, and the per-worker cache
// whose entries are only chain-building hints.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include <string>

#include "tls/aia.hpp"

namespace tlsgate::tls {
namespace {

using BioPtr = std::unique_ptr<BIO, pki::OpenSslDeleter<BIO_free>>;
using Pkcs7Ptr = std::unique_ptr<PKCS7, pki::OpenSslDeleter<PKCS7_free>>;
using Clock = IntermediateCache::Clock;

pki::EvpPkeyPtr p256() {
    return pki::EvpPkeyPtr(EVP_EC_gen("P-256"));
}

// A certificate named `subject`, issued by `issuer_name` (signed by `key`), with an optional AIA
// extension value in openssl's config syntax.
pki::X509Ptr certificate(const std::string& subject, const std::string& issuer_name, EVP_PKEY* key,
                         const std::string& aia = "") {
    pki::X509Ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(subject.c_str()), -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_issuer_name(cert.get()), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(issuer_name.c_str()), -1, -1,
                               0);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key);
    if (!aia.empty()) {
        X509_EXTENSION* extension =
            X509V3_EXT_conf_nid(nullptr, nullptr, NID_info_access, aia.c_str());
        EXPECT_NE(extension, nullptr);
        X509_add_ext(cert.get(), extension, -1);
        X509_EXTENSION_free(extension);
    }
    X509_sign(cert.get(), key, EVP_sha256());
    return cert;
}

std::string der(X509* cert) {
    unsigned char* data = nullptr;
    const int length = i2d_X509(cert, &data);
    std::string out(reinterpret_cast<char*>(data), static_cast<std::size_t>(length));
    OPENSSL_free(data);
    return out;
}

TEST(CaIssuersUrls, ListsOnlyCaIssuersUris) {
    auto key = p256();
    auto cert = certificate("leaf", "issuer", key.get(),
                            "OCSP;URI:http://ocsp.example/,caIssuers;URI:http://ca.example/i.der,"
                            "caIssuers;URI:ldap://ca.example/cn=i");
    EXPECT_EQ(ca_issuers_urls(cert.get()),
              (std::vector<std::string>{"http://ca.example/i.der", "ldap://ca.example/cn=i"}));
    auto bare = certificate("leaf", "issuer", key.get());
    EXPECT_TRUE(ca_issuers_urls(bare.get()).empty());
}

TEST(ParseHttpUrl, AcceptsHttpOnly) {
    auto url = parse_http_url("http://CA.Example/certs/i.der");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->host, "ca.example");
    EXPECT_EQ(url->port, 80);
    EXPECT_EQ(url->path, "/certs/i.der");

    url = parse_http_url("HTTP://127.0.0.1:8081?x=1#frag");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->host, "127.0.0.1");
    EXPECT_EQ(url->port, 8081);
    EXPECT_EQ(url->path, "/?x=1");

    url = parse_http_url("http://[::1]:99");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->host, "::1");
    EXPECT_EQ(url->port, 99);
    EXPECT_EQ(url->path, "/");

    for (const char* bad :
         {"https://ca.example/i.der", "ldap://ca.example/", "ftp://x/", "http://", "http:///path",
          "http://user@ca.example/", "http://ca.example:0/", "http://ca.example:65536/",
          "http://ca.example:8x/", "http://ca.example/a b", "http://ca.example/a\r\nHost: evil",
          "http://[::1/"}) {
        EXPECT_FALSE(parse_http_url(bad)) << bad;
    }
}

TEST(HttpResponseBody, TakesTheBodyOfA200) {
    auto body = http_response_body("HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\nabc", 10);
    ASSERT_TRUE(body) << body.error();
    EXPECT_EQ(*body, "abc");
    body = http_response_body("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", 10);
    ASSERT_TRUE(body);
    EXPECT_EQ(*body, "ab");
    body = http_response_body("HTTP/1.1 200 OK\r\n\r\n", 10);
    ASSERT_TRUE(body);
    EXPECT_EQ(*body, "");
}

TEST(HttpResponseBody, RefusesEverythingElse) {
    EXPECT_FALSE(http_response_body("HTTP/1.0 404 Not Found\r\n\r\nno", 10));
    EXPECT_FALSE(http_response_body("HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n", 10));
    EXPECT_FALSE(http_response_body("HTTP/1.0 200 OK\r\n", 10));  // no end of head
    EXPECT_FALSE(http_response_body("SSH-2.0-x\r\n\r\n", 10));
    EXPECT_FALSE(http_response_body("HTTP/1.0 200 OK\r\n\r\n0123456789x", 10));
    EXPECT_FALSE(http_response_body("HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n", 10));
    EXPECT_FALSE(http_response_body("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nabc", 10));
    EXPECT_FALSE(http_response_body("HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", 10));
    EXPECT_FALSE(
        http_response_body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc", 10));
    EXPECT_FALSE(http_response_body("HTTP/1.0 200 OK\r\nno colon\r\n\r\n", 10));
}

TEST(DecodeIssuerCertificate, DerPemAndPkcs7) {
    auto key = p256();
    auto cert = certificate("intermediate", "root", key.get());
    auto from_der = decode_issuer_certificate(der(cert.get()));
    ASSERT_TRUE(from_der);
    EXPECT_EQ(X509_cmp(from_der.get(), cert.get()), 0);

    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert.get());
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &data);
    auto from_pem = decode_issuer_certificate(std::string(data, static_cast<std::size_t>(length)));
    ASSERT_TRUE(from_pem);
    EXPECT_EQ(X509_cmp(from_pem.get(), cert.get()), 0);

    Pkcs7Ptr bundle(PKCS7_new());
    PKCS7_set_type(bundle.get(), NID_pkcs7_signed);
    PKCS7_content_new(bundle.get(), NID_pkcs7_data);
    PKCS7_add_certificate(bundle.get(), cert.get());
    unsigned char* p7 = nullptr;
    const int p7_length = i2d_PKCS7(bundle.get(), &p7);
    ASSERT_GT(p7_length, 0);
    auto from_p7 = decode_issuer_certificate(
        std::string(reinterpret_cast<char*>(p7), static_cast<std::size_t>(p7_length)));
    OPENSSL_free(p7);
    ASSERT_TRUE(from_p7);
    EXPECT_EQ(X509_cmp(from_p7.get(), cert.get()), 0);

    EXPECT_FALSE(decode_issuer_certificate(""));
    EXPECT_FALSE(decode_issuer_certificate("<html>not found</html>"));
    EXPECT_FALSE(decode_issuer_certificate(der(cert.get()) + "trailing"));
}

TEST(IntermediateCache, RemembersFetchesAndFailuresForTheirTtl) {
    IntermediateCache cache(
        {.entries = 4, .ttl = std::chrono::hours(1), .failure_ttl = std::chrono::minutes(1)});
    const auto now = Clock::now();
    auto key = p256();
    EXPECT_EQ(cache.state("http://a/", now), IntermediateCache::State::missing);
    cache.store("http://a/", certificate("a", "root", key.get()), now);
    cache.store("http://b/", nullptr, now);
    EXPECT_EQ(cache.state("http://a/", now), IntermediateCache::State::fetched);
    EXPECT_EQ(cache.state("http://b/", now), IntermediateCache::State::failed);
    EXPECT_EQ(cache.state("http://b/", now + std::chrono::minutes(2)),
              IntermediateCache::State::missing);
    EXPECT_EQ(cache.state("http://a/", now + std::chrono::minutes(2)),
              IntermediateCache::State::fetched);
    EXPECT_EQ(cache.state("http://a/", now + std::chrono::hours(2)),
              IntermediateCache::State::missing);
}

TEST(IntermediateCache, StaysWithinItsBound) {
    IntermediateCache cache(
        {.entries = 2, .ttl = std::chrono::hours(1), .failure_ttl = std::chrono::minutes(1)});
    const auto now = Clock::now();
    cache.store("http://1/", nullptr, now);
    cache.store("http://2/", nullptr, now);
    cache.store("http://3/", nullptr, now);
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.state("http://1/", now), IntermediateCache::State::missing);
    EXPECT_EQ(cache.state("http://3/", now), IntermediateCache::State::failed);
    cache.store("http://3/", nullptr, now);  // replaces, never duplicates
    EXPECT_EQ(cache.size(), 2u);
}

TEST(IntermediateCache, AddsOnlyTheIssuersOfTheChain) {
    IntermediateCache cache;
    const auto now = Clock::now();
    auto key = p256();
    auto leaf = certificate("leaf", "intermediate", key.get());
    auto intermediate = certificate("intermediate", "middle", key.get());
    auto middle = certificate("middle", "root", key.get());
    cache.store("http://unrelated/", certificate("other", "root", key.get()), now);
    cache.store("http://middle/", std::move(middle), now);
    cache.store("http://intermediate/", std::move(intermediate), now);
    STACK_OF(X509)* chain = sk_X509_new_null();
    sk_X509_push(chain, leaf.get());
    // The intermediate, then the one above it; never the unrelated one.
    EXPECT_EQ(cache.add_issuers(chain, now), 2u);
    ASSERT_EQ(sk_X509_num(chain), 3);
    EXPECT_EQ(cache.add_issuers(chain, now), 0u);  // nothing twice
    sk_X509_free(chain);

    STACK_OF(X509)* later = sk_X509_new_null();
    sk_X509_push(later, leaf.get());
    EXPECT_EQ(cache.add_issuers(later, now + std::chrono::hours(2)), 0u);  // expired
    sk_X509_free(later);
}

}  // namespace
}  // namespace tlsgate::tls
