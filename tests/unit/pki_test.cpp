// The PKI stage: the CA (create, save, load, import checks, summary, export), leaf minting and
// the per-worker leaf cache. Every certificate is parsed back with OpenSSL and checked field by
// field, and leaves are verified the way a client would (X509_verify_cert with the host name).
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pki/ca.hpp"
#include "pki/mint.hpp"

namespace tlsgate::pki {
namespace {

namespace fs = std::filesystem;

using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using Pkcs12Ptr = std::unique_ptr<PKCS12, OpenSslDeleter<PKCS12_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES_free>>;
using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSslDeleter<BASIC_CONSTRAINTS_free>>;

constexpr long kDay = 24 * 3600;

// ---- Helpers ---------------------------------------------------------------------------------

// A fresh directory under the system temp dir, removed with everything in it.
class TemporaryDirectory {
public:
    TemporaryDirectory() {
        std::string pattern = (fs::temp_directory_path() / "pki_test.XXXXXX").string();
        if (::mkdtemp(pattern.data()) != nullptr) {
            path_ = pattern;
        }
    }
    ~TemporaryDirectory() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

unsigned file_mode(const fs::path& path) {
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
        return 0xffffffff;
    }
    return status.st_mode & 07777;
}

void write_file(const fs::path& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    return content.str();
}

std::string pem_of(X509* cert) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(length));
}

std::string pem_of_key(EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(length));
}

std::string lower_hex(const unsigned char* bytes, std::size_t length) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string text;
    for (std::size_t i = 0; i < length; ++i) {
        text.push_back(kDigits[bytes[i] >> 4]);
        text.push_back(kDigits[bytes[i] & 0xf]);
    }
    return text;
}

std::string sha256_hex(const unsigned char* bytes, std::size_t length) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    EVP_Digest(bytes, length, digest, &digest_length, EVP_sha256(), nullptr);
    return lower_hex(digest, digest_length);
}

// RFC 5280 method 1, computed independently of the code under test.
std::string expected_key_id_hex(X509* cert) {
    const ASN1_BIT_STRING* bits = X509_get0_pubkey_bitstr(cert);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    EVP_Digest(bits->data, static_cast<std::size_t>(bits->length), digest, &digest_length,
               EVP_sha1(), nullptr);
    return lower_hex(digest, digest_length);
}

std::string octets_hex(const ASN1_OCTET_STRING* octets) {
    if (octets == nullptr) {
        return "(none)";
    }
    return lower_hex(octets->data, static_cast<std::size_t>(octets->length));
}

std::string first_entry(const X509_NAME* name, int nid) {
    const int index = X509_NAME_get_index_by_NID(name, nid, -1);
    if (index < 0) {
        return "(none)";
    }
    const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                       static_cast<std::size_t>(ASN1_STRING_length(value)));
}

// -1 when absent, else 0/1 for critical.
int extension_criticality(X509* cert, int nid) {
    const int index = X509_get_ext_by_NID(cert, nid, -1);
    if (index < 0) {
        return -1;
    }
    return X509_EXTENSION_get_critical(X509_get_ext(cert, index));
}

long long time_of(const ASN1_TIME* time) {
    auto seconds = asn1_time_to_time_t(time);
    return seconds ? static_cast<long long>(*seconds) : -1;
}

// A certificate standing in for a real server's, signed by `issuer_key`.
struct UpstreamSpec {
    std::string common_name;  // empty: no CN
    std::vector<std::string> dns_names;
    std::vector<std::string> ip_addresses;
    std::vector<std::string> other_alt_names;  // e.g. "email:a@example.com"
    long not_before_offset = -30 * kDay;
    long not_after_offset = 60 * kDay;
    bool long_common_name_bypassing_limits = false;
};

X509Ptr make_upstream(const UpstreamSpec& spec, EVP_PKEY* key, std::time_t now) {
    X509Ptr cert(X509_new());
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 4242);
    ASN1_TIME_set(X509_getm_notBefore(cert.get()), now + spec.not_before_offset);
    ASN1_TIME_set(X509_getm_notAfter(cert.get()), now + spec.not_after_offset);
    X509_NAME* subject = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("Upstream Org"), -1, -1, 0);
    if (!spec.common_name.empty()) {
        // A plain UTF8String type skips OpenSSL's size table, so over-long names can be built.
        X509_NAME_add_entry_by_NID(
            subject, NID_commonName,
            spec.long_common_name_bypassing_limits ? V_ASN1_UTF8STRING : MBSTRING_UTF8,
            reinterpret_cast<const unsigned char*>(spec.common_name.data()),
            static_cast<int>(spec.common_name.size()), -1, 0);
    }
    X509_set_issuer_name(cert.get(), subject);
    X509_set_pubkey(cert.get(), key);
    std::string alt_names;
    const auto add = [&](const std::string& entry) {
        alt_names += (alt_names.empty() ? "" : ",") + entry;
    };
    for (const auto& name : spec.dns_names)
        add("DNS:" + name);
    for (const auto& address : spec.ip_addresses)
        add("IP:" + address);
    for (const auto& other : spec.other_alt_names)
        add(other);
    if (!alt_names.empty()) {
        X509_EXTENSION* extension =
            X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, alt_names.c_str());
        EXPECT_NE(extension, nullptr) << alt_names;
        X509_add_ext(cert.get(), extension, -1);
        X509_EXTENSION_free(extension);
    }
    EXPECT_GT(X509_sign(cert.get(), key, EVP_sha256()), 0);
    return cert;
}

EvpPkeyPtr make_rsa_key(unsigned bits) {
    return EvpPkeyPtr(EVP_RSA_gen(bits));
}

std::vector<std::string> san_dns_names(X509* cert) {
    std::vector<std::string> names;
    GeneralNamesPtr alt_names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (int i = 0; alt_names && i < sk_GENERAL_NAME_num(alt_names.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt_names.get(), i);
        if (name->type == GEN_DNS) {
            names.emplace_back(reinterpret_cast<const char*>(name->d.dNSName->data),
                               static_cast<std::size_t>(name->d.dNSName->length));
        }
    }
    return names;
}

std::vector<std::string> san_ip_addresses(X509* cert) {
    std::vector<std::string> addresses;
    GeneralNamesPtr alt_names(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (int i = 0; alt_names && i < sk_GENERAL_NAME_num(alt_names.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(alt_names.get(), i);
        if (name->type == GEN_IPADD) {
            IpAddress address;
            address.is_v6 = name->d.iPAddress->length == 16;
            std::copy(name->d.iPAddress->data, name->d.iPAddress->data + name->d.iPAddress->length,
                      address.bytes.begin());
            addresses.push_back(address.to_string());
        }
    }
    return addresses;
}

std::vector<std::string> to_strings(const std::vector<IpAddress>& addresses) {
    std::vector<std::string> text;
    for (const auto& address : addresses) {
        text.push_back(address.to_string());
    }
    return text;
}

// What a client does: chain to the CA as the only trust anchor, check the name and the purpose.
int verify_as_client(X509* leaf, X509* ca_cert, const std::string& host, bool host_is_ip) {
    X509StorePtr store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), ca_cert);
    X509StoreCtxPtr context(X509_STORE_CTX_new());
    X509_STORE_CTX_init(context.get(), store.get(), leaf, nullptr);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(context.get());
    if (host_is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    } else {
        X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    }
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    if (X509_verify_cert(context.get()) == 1) {
        return X509_V_OK;
    }
    return X509_STORE_CTX_get_error(context.get());
}

std::array<std::uint8_t, 16> serial_of(std::uint8_t fill) {
    std::array<std::uint8_t, 16> serial;
    serial.fill(fill);
    return serial;
}

// CAs are costly to make (RSA-3072 takes a while): one of each per test program.
const CertificateAuthority& shared_ca(KeyType key_type) {
    static const CertificateAuthority ec_ca = [] {
        auto ca = create_ca("CN=tlsgate test CA,O=tlsgate", KeyType::ec_p256);
        if (!ca) {
            std::abort();
        }
        return std::move(*ca);
    }();
    static const CertificateAuthority rsa_ca = [] {
        auto ca = create_ca("CN=tlsgate test RSA CA,O=tlsgate", KeyType::rsa_3072);
        if (!ca) {
            std::abort();
        }
        return std::move(*ca);
    }();
    return key_type == KeyType::ec_p256 ? ec_ca : rsa_ca;
}

// ---- CA creation -----------------------------------------------------------------------------

class CaCreation : public ::testing::TestWithParam<KeyType> {};

TEST_P(CaCreation, HasEveryFieldAndExtensionOfARoot) {
    const std::time_t before = std::time(nullptr);
    auto created = create_ca("CN=Home Gateway CA,O=Example\\, Inc.,C=DE", GetParam(), 100);
    const std::time_t after = std::time(nullptr);
    ASSERT_TRUE(created) << created.error();
    // Parse the PEM back, so we check what a client would read rather than in-memory state.
    BioPtr bio(BIO_new(BIO_s_mem()));
    const std::string pem = pem_of(created->cert.get());
    BIO_write(bio.get(), pem.data(), static_cast<int>(pem.size()));
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    ASSERT_TRUE(cert);

    EXPECT_EQ(X509_get_version(cert.get()), X509_VERSION_3);
    // Subject: RFC 4514 order written, least specific stored first.
    const X509_NAME* subject = X509_get_subject_name(cert.get());
    ASSERT_EQ(X509_NAME_entry_count(subject), 3);
    EXPECT_EQ(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(subject, 0))),
              NID_countryName);
    EXPECT_EQ(first_entry(subject, NID_commonName), "Home Gateway CA");
    EXPECT_EQ(first_entry(subject, NID_organizationName), "Example, Inc.");
    EXPECT_EQ(first_entry(subject, NID_countryName), "DE");
    EXPECT_EQ(X509_NAME_cmp(subject, X509_get_issuer_name(cert.get())), 0);
    EXPECT_EQ(summarize(cert.get()).subject, "CN=Home Gateway CA,O=Example\\, Inc.,C=DE");

    // Serial: positive, about 128 bits (the top bit is cleared; 96 bits is a 2^-31 fluke).
    BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
    EXPECT_FALSE(BN_is_negative(serial.get()));
    EXPECT_LE(BN_num_bits(serial.get()), 128);
    EXPECT_GT(BN_num_bits(serial.get()), 96);

    EXPECT_NEAR(time_of(X509_get0_notBefore(cert.get())), before - 3600, after - before + 1);
    EXPECT_NEAR(time_of(X509_get0_notAfter(cert.get())), before + 100 * kDay, after - before + 1);

    EXPECT_EQ(extension_criticality(cert.get(), NID_basic_constraints), 1);
    BasicConstraintsPtr constraints(static_cast<BASIC_CONSTRAINTS*>(
        X509_get_ext_d2i(cert.get(), NID_basic_constraints, nullptr, nullptr)));
    ASSERT_TRUE(constraints);
    EXPECT_NE(constraints->ca, 0);
    ASSERT_NE(constraints->pathlen, nullptr);
    EXPECT_EQ(ASN1_INTEGER_get(constraints->pathlen), 0);
    EXPECT_EQ(X509_get_pathlen(cert.get()), 0);

    EXPECT_EQ(extension_criticality(cert.get(), NID_key_usage), 1);
    EXPECT_EQ(X509_get_key_usage(cert.get()),
              static_cast<std::uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
    EXPECT_EQ(extension_criticality(cert.get(), NID_ext_key_usage), -1);

    EXPECT_EQ(extension_criticality(cert.get(), NID_subject_key_identifier), 0);
    EXPECT_EQ(octets_hex(X509_get0_subject_key_id(cert.get())), expected_key_id_hex(cert.get()));
    EXPECT_EQ(extension_criticality(cert.get(), NID_authority_key_identifier), 0);
    EXPECT_EQ(octets_hex(X509_get0_authority_key_id(cert.get())), expected_key_id_hex(cert.get()));

    EXPECT_EQ(X509_get_extension_flags(cert.get()) & EXFLAG_INVALID, 0u);
    EXPECT_EQ(X509_check_ca(cert.get()), 1);
    EXPECT_EQ(X509_verify(cert.get(), created->key.get()), 1);
    EXPECT_EQ(X509_check_private_key(cert.get(), created->key.get()), 1);

    if (GetParam() == KeyType::ec_p256) {
        EXPECT_EQ(EVP_PKEY_get_base_id(created->key.get()), EVP_PKEY_EC);
        char group[64] = {};
        std::size_t group_length = 0;
        EVP_PKEY_get_group_name(created->key.get(), group, sizeof group, &group_length);
        EXPECT_STREQ(group, "prime256v1");
        EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_ecdsa_with_SHA256);
    } else {
        EXPECT_EQ(EVP_PKEY_get_base_id(created->key.get()), EVP_PKEY_RSA);
        EXPECT_EQ(EVP_PKEY_get_bits(created->key.get()), 3072);
        EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_sha256WithRSAEncryption);
    }
}

INSTANTIATE_TEST_SUITE_P(BothKeyTypes, CaCreation,
                         ::testing::Values(KeyType::ec_p256, KeyType::rsa_3072),
                         [](const auto& info) {
                             return info.param == KeyType::ec_p256 ? "EcP256" : "Rsa3072";
                         });

TEST(CaSubject, AcceptsSpacesLongNamesAndAnyCase) {
    auto created = create_ca(" commonName = Spaced\\  , o=Lower ,organizationalUnitName=Unit",
                             KeyType::ec_p256);
    ASSERT_TRUE(created) << created.error();
    const X509_NAME* subject = X509_get_subject_name(created->cert.get());
    EXPECT_EQ(first_entry(subject, NID_commonName), "Spaced ");  // the escaped space stays
    EXPECT_EQ(first_entry(subject, NID_organizationName), "Lower");
    EXPECT_EQ(first_entry(subject, NID_organizationalUnitName), "Unit");
}

TEST(CaSubject, KeepsUtf8) {
    auto created = create_ca("CN=Zürich Büro CA", KeyType::ec_p256);
    ASSERT_TRUE(created) << created.error();
    EXPECT_EQ(first_entry(X509_get_subject_name(created->cert.get()), NID_commonName),
              "Zürich Büro CA");
    EXPECT_EQ(summarize(created->cert.get()).subject, "CN=Zürich Büro CA");
}

TEST(CaSubject, RejectsMalformedSubjectsClearly) {
    struct Case {
        const char* subject;
        const char* message_part;
    };
    for (const Case& bad : {
             Case{"", "empty"}, Case{"CN=", "empty value"}, Case{"CN=x,", "ends with ','"},
             Case{"XX=1", "unknown attribute type \"XX\""},
             Case{"sha256=1", "unknown attribute type"}, Case{"CN=a,=b", "no type"},
             Case{"justtext", "missing '='"}, Case{"CN=trailing\\", "lone '\\'"},
             Case{"C=Germany", "not acceptable"},  // countryName is two letters
         }) {
        auto created = create_ca(bad.subject, KeyType::ec_p256);
        ASSERT_FALSE(created) << bad.subject;
        EXPECT_NE(created.error().find(bad.message_part), std::string::npos)
            << bad.subject << " -> " << created.error();
    }
}

TEST(CaCreationLimits, RejectsNonsenseValidity) {
    EXPECT_FALSE(create_ca("CN=x", KeyType::ec_p256, 0));
    EXPECT_FALSE(create_ca("CN=x", KeyType::ec_p256, -5));
    EXPECT_FALSE(create_ca("CN=x", KeyType::ec_p256, 40000));
}

TEST(CaCreationLimits, SerialsDiffer) {
    auto first = create_ca("CN=x", KeyType::ec_p256);
    auto second = create_ca("CN=x", KeyType::ec_p256);
    ASSERT_TRUE(first && second);
    EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(first->cert.get()),
                               X509_get0_serialNumber(second->cert.get())),
              0);
}

// ---- Save and load ---------------------------------------------------------------------------

TEST(CaFiles, SaveLoadRoundTripWithExactModes) {
    TemporaryDirectory temp;
    const fs::path dir = temp.path() / "nested" / "ca";  // created on demand
    const CertificateAuthority& ca = shared_ca(KeyType::ec_p256);
    auto saved = save_ca(ca, dir, false);
    ASSERT_TRUE(saved) << saved.error();
    EXPECT_EQ(file_mode(dir), 0700u);
    EXPECT_EQ(file_mode(dir / kCaKeyFile), 0600u);
    EXPECT_EQ(file_mode(dir / kCaCertFile), 0644u);
    EXPECT_FALSE(key_file_permission_warning(dir / kCaKeyFile).has_value());
    EXPECT_NE(read_file(dir / kCaKeyFile).find("-----BEGIN PRIVATE KEY-----"), std::string::npos)
        << "PKCS#8, unencrypted";
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 2)
        << "no temporary files left behind";

    auto loaded = load_ca(dir);
    ASSERT_TRUE(loaded) << loaded.error();
    EXPECT_EQ(X509_cmp(loaded->cert.get(), ca.cert.get()), 0);
    EXPECT_EQ(EVP_PKEY_eq(loaded->key.get(), ca.key.get()), 1);
}

TEST(CaFiles, TheUntrustedCaLivesBesideTheRealOneWithTheSameProtection) {
    TemporaryDirectory temp;
    const fs::path dir = temp.path() / "ca";
    const CertificateAuthority& real = shared_ca(KeyType::ec_p256);
    auto untrusted = create_ca(kUntrustedCaSubject, KeyType::ec_p256);
    ASSERT_TRUE(untrusted) << untrusted.error();
    EXPECT_EQ(summarize(untrusted->cert.get()).subject,
              "CN=tlsgate untrusted upstream - do not install,O=tlsgate interception");
    ASSERT_TRUE(save_ca(real, dir, false));
    auto saved = save_ca(*untrusted, dir, false, kUntrustedCaFiles);
    ASSERT_TRUE(saved) << saved.error();
    EXPECT_EQ(file_mode(dir / kUntrustedCaKeyFile), 0600u);
    EXPECT_EQ(file_mode(dir / kUntrustedCaCertFile), 0644u);
    EXPECT_FALSE(save_ca(*untrusted, dir, false, kUntrustedCaFiles)) << "never overwritten";

    auto loaded_real = load_ca(dir);
    auto loaded_untrusted = load_ca(dir, kUntrustedCaFiles);
    ASSERT_TRUE(loaded_real && loaded_untrusted);
    EXPECT_EQ(X509_cmp(loaded_real->cert.get(), real.cert.get()), 0);
    EXPECT_EQ(X509_cmp(loaded_untrusted->cert.get(), untrusted->cert.get()), 0);
    EXPECT_NE(spki_sha256_hex(loaded_real->cert.get()),
              spki_sha256_hex(loaded_untrusted->cert.get()));

    ::chmod((dir / kUntrustedCaKeyFile).c_str(), 0640);
    EXPECT_TRUE(key_file_permission_warning(dir / kUntrustedCaKeyFile).has_value());
}

TEST(CaFiles, RefusesToOverwriteWithoutForceAndReplacesWithForce) {
    TemporaryDirectory temp;
    const CertificateAuthority& first = shared_ca(KeyType::ec_p256);
    const CertificateAuthority& second = shared_ca(KeyType::rsa_3072);
    ASSERT_TRUE(save_ca(first, temp.path(), false));

    auto refused = save_ca(second, temp.path(), false);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find("exists; use --force"), std::string::npos) << refused.error();
    auto still_first = load_ca(temp.path());
    ASSERT_TRUE(still_first) << still_first.error();
    EXPECT_EQ(X509_cmp(still_first->cert.get(), first.cert.get()), 0);

    // Only the key present (e.g. a half-finished earlier run) also refuses.
    fs::remove(temp.path() / kCaCertFile);
    refused = save_ca(second, temp.path(), false);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().find(kCaKeyFile), std::string::npos) << refused.error();

    // A wide mode on the old key must not leak into the replacement.
    ::chmod((temp.path() / kCaKeyFile).c_str(), 0644);
    auto forced = save_ca(second, temp.path(), true);
    ASSERT_TRUE(forced) << forced.error();
    EXPECT_EQ(file_mode(temp.path() / kCaKeyFile), 0600u);
    EXPECT_EQ(file_mode(temp.path() / kCaCertFile), 0644u);
    EXPECT_EQ(std::distance(fs::directory_iterator(temp.path()), fs::directory_iterator()), 2);
    auto now_second = load_ca(temp.path());
    ASSERT_TRUE(now_second) << now_second.error();
    EXPECT_EQ(X509_cmp(now_second->cert.get(), second.cert.get()), 0);
}

TEST(CaFiles, WarnsAboutAReadableKey) {
    TemporaryDirectory temp;
    ASSERT_TRUE(save_ca(shared_ca(KeyType::ec_p256), temp.path(), false));
    const fs::path key = temp.path() / kCaKeyFile;
    ::chmod(key.c_str(), 0640);
    auto warning = key_file_permission_warning(key);
    ASSERT_TRUE(warning.has_value());
    EXPECT_NE(warning->find("0640"), std::string::npos) << *warning;
    EXPECT_NE(warning->find(key.string()), std::string::npos) << *warning;
    ::chmod(key.c_str(), 0400);
    EXPECT_FALSE(key_file_permission_warning(key).has_value());
    EXPECT_FALSE(key_file_permission_warning(temp.path() / "missing").has_value());
    // A warning, not an error: the CA still loads.
    ::chmod(key.c_str(), 0644);
    EXPECT_TRUE(load_ca(temp.path()));
}

TEST(CaFiles, ReadRejectsAMismatchedKeyNamingTheFile) {
    TemporaryDirectory temp;
    const fs::path cert_file = temp.path() / "cert.pem";
    const fs::path key_file = temp.path() / "other.key";
    write_file(cert_file, pem_of(shared_ca(KeyType::ec_p256).cert.get()));
    write_file(key_file, pem_of_key(shared_ca(KeyType::rsa_3072).key.get()));
    auto read = read_ca_files(cert_file, key_file);
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().find("does not match"), std::string::npos) << read.error();
    EXPECT_NE(read.error().find(key_file.string()), std::string::npos) << read.error();
}

TEST(CaFiles, ReadRejectsANonCaCertificate) {
    TemporaryDirectory temp;
    auto leaf_key = generate_leaf_key();
    ASSERT_TRUE(leaf_key);
    const std::time_t now = std::time(nullptr);
    X509Ptr server = make_upstream({.common_name = "server", .dns_names = {"server.test"}},
                                   leaf_key->get(), now);
    write_file(temp.path() / "server.pem", pem_of(server.get()));
    write_file(temp.path() / "server.key", pem_of_key(leaf_key->get()));
    auto read = read_ca_files(temp.path() / "server.pem", temp.path() / "server.key");
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().find("not a CA"), std::string::npos) << read.error();
    EXPECT_NE(read.error().find("server.pem"), std::string::npos) << read.error();

    // A minted leaf (CA:FALSE stated explicitly) is refused the same way.
    auto properties = mirror_properties(server.get(), "server.test", now, serial_of(1));
    ASSERT_TRUE(properties) << properties.error();
    auto leaf = mint_leaf(*properties, leaf_key->get(), shared_ca(KeyType::ec_p256));
    ASSERT_TRUE(leaf) << leaf.error();
    write_file(temp.path() / "leaf.pem", pem_of(leaf->get()));
    read = read_ca_files(temp.path() / "leaf.pem", temp.path() / "server.key");
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().find("not a CA"), std::string::npos) << read.error();
}

TEST(CaFiles, ReadRejectsACaWithoutKeyCertSign) {
    TemporaryDirectory temp;
    auto key = generate_leaf_key();
    ASSERT_TRUE(key);
    X509Ptr cert = make_upstream({.common_name = "odd CA"}, key->get(), std::time(nullptr));
    // Rebuild with CA:TRUE but keyUsage digitalSignature only.
    X509_EXTENSION* constraints =
        X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE");
    X509_EXTENSION* usage =
        X509V3_EXT_conf_nid(nullptr, nullptr, NID_key_usage, "critical,digitalSignature");
    X509_add_ext(cert.get(), constraints, -1);
    X509_add_ext(cert.get(), usage, -1);
    X509_EXTENSION_free(constraints);
    X509_EXTENSION_free(usage);
    X509_sign(cert.get(), key->get(), EVP_sha256());
    write_file(temp.path() / "ca.pem", pem_of(cert.get()));
    write_file(temp.path() / "ca.key", pem_of_key(key->get()));
    auto read = load_ca(temp.path());
    ASSERT_FALSE(read);
    EXPECT_NE(read.error().find("keyCertSign"), std::string::npos) << read.error();
}

TEST(CaFiles, ReadReportsMissingGarbageAndEncryptedFiles) {
    TemporaryDirectory temp;
    auto missing = load_ca(temp.path());
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().find((temp.path() / kCaCertFile).string()), std::string::npos)
        << missing.error();

    write_file(temp.path() / kCaCertFile, "not a certificate");
    auto garbage = load_ca(temp.path());
    ASSERT_FALSE(garbage);
    EXPECT_NE(garbage.error().find(kCaCertFile), std::string::npos) << garbage.error();

    // An encrypted key is refused at once instead of prompting on a terminal.
    const CertificateAuthority& ca = shared_ca(KeyType::ec_p256);
    write_file(temp.path() / kCaCertFile, pem_of(ca.cert.get()));
    BioPtr bio(BIO_new(BIO_s_mem()));
    ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), ca.key.get(), EVP_aes_256_cbc(), nullptr, 0,
                                            nullptr, const_cast<char*>("secret")),
              1);
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio.get(), &data);
    write_file(temp.path() / kCaKeyFile, std::string(data, static_cast<std::size_t>(length)));
    auto encrypted = load_ca(temp.path());
    ASSERT_FALSE(encrypted);
    EXPECT_NE(encrypted.error().find("encrypted"), std::string::npos) << encrypted.error();
    EXPECT_NE(encrypted.error().find(kCaKeyFile), std::string::npos) << encrypted.error();
}

TEST(CaFiles, ReadAcceptsDerFiles) {
    TemporaryDirectory temp;
    const CertificateAuthority& ca = shared_ca(KeyType::rsa_3072);
    auto der = export_certificate(ca.cert.get(), ExportFormat::der);
    ASSERT_TRUE(der);
    write_file(temp.path() / "ca.der", *der);
    unsigned char* key_der = nullptr;
    const int key_length = i2d_PrivateKey(ca.key.get(), &key_der);
    ASSERT_GT(key_length, 0);
    write_file(temp.path() / "ca.key.der",
               std::string(reinterpret_cast<char*>(key_der), static_cast<std::size_t>(key_length)));
    OPENSSL_free(key_der);
    auto read = read_ca_files(temp.path() / "ca.der", temp.path() / "ca.key.der");
    ASSERT_TRUE(read) << read.error();
    EXPECT_EQ(X509_cmp(read->cert.get(), ca.cert.get()), 0);
}

// ---- Summary and export ----------------------------------------------------------------------

TEST(CaSummary, FingerprintsMatchAnIndependentComputation) {
    for (KeyType key_type : {KeyType::ec_p256, KeyType::rsa_3072}) {
        X509* cert = shared_ca(key_type).cert.get();
        unsigned char* der = nullptr;
        const int der_length = i2d_X509(cert, &der);
        const std::string expected_fingerprint =
            sha256_hex(der, static_cast<std::size_t>(der_length));
        OPENSSL_free(der);
        // The SPKI through the key object rather than the certificate's X509_PUBKEY.
        unsigned char* spki = nullptr;
        const int spki_length = i2d_PUBKEY(X509_get0_pubkey(cert), &spki);
        const std::string expected_spki = sha256_hex(spki, static_cast<std::size_t>(spki_length));
        OPENSSL_free(spki);

        EXPECT_EQ(sha256_fingerprint_hex(cert), expected_fingerprint);
        EXPECT_EQ(spki_sha256_hex(cert), expected_spki);
        const CertificateSummary summary = summarize(cert);
        EXPECT_EQ(summary.spki_sha256, expected_spki);
        // "AB:CD:..." form of the same digest.
        std::string colon_form;
        for (std::size_t i = 0; i < expected_fingerprint.size(); i += 2) {
            colon_form += (i ? ":" : "") + expected_fingerprint.substr(i, 2);
        }
        for (char& c : colon_form)
            c = static_cast<char>(std::toupper(c));
        EXPECT_EQ(summary.sha256_fingerprint, colon_form);
        EXPECT_EQ(summary.subject, summary.issuer);
        EXPECT_EQ(summary.not_before, format_time_utc(time_of(X509_get0_notBefore(cert))));
        EXPECT_EQ(summary.not_after.size(), 20u);
    }
}

TEST(CaSummary, FormatsTimes) {
    EXPECT_EQ(format_time_utc(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_time_utc(1795361616), "2026-11-22T15:33:36Z");
    ASN1_TIME* time = ASN1_TIME_new();
    ASSERT_EQ(ASN1_TIME_set_string(time, "20261122153336Z"), 1);  // GeneralizedTime
    auto seconds = asn1_time_to_time_t(time);
    ASSERT_TRUE(seconds);
    EXPECT_EQ(*seconds, 1795361616);
    ASSERT_EQ(ASN1_TIME_set_string(time, "261122153336Z"), 1);  // UTCTime
    EXPECT_EQ(*asn1_time_to_time_t(time), 1795361616);
    ASSERT_EQ(ASN1_TIME_set_string(time, "20610101000000Z"), 1);  // past 2038 and 2050
    EXPECT_EQ(format_time_utc(*asn1_time_to_time_t(time)), "2061-01-01T00:00:00Z");
    ASN1_TIME_free(time);
    EXPECT_FALSE(asn1_time_to_time_t(nullptr));
}

TEST(CaExport, EveryFormatParsesBackToTheSameCertificateWithoutTheKey) {
    X509* cert = shared_ca(KeyType::ec_p256).cert.get();

    auto pem = export_certificate(cert, ExportFormat::pem);
    ASSERT_TRUE(pem) << pem.error();
    EXPECT_EQ(pem->find("PRIVATE"), std::string::npos);
    BioPtr pem_bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
    X509Ptr from_pem(PEM_read_bio_X509(pem_bio.get(), nullptr, nullptr, nullptr));
    ASSERT_TRUE(from_pem);
    EXPECT_EQ(X509_cmp(from_pem.get(), cert), 0);

    auto der = export_certificate(cert, ExportFormat::der);
    ASSERT_TRUE(der) << der.error();
    const auto* cursor = reinterpret_cast<const unsigned char*>(der->data());
    X509Ptr from_der(d2i_X509(nullptr, &cursor, static_cast<long>(der->size())));
    ASSERT_TRUE(from_der);
    EXPECT_EQ(cursor, reinterpret_cast<const unsigned char*>(der->data()) + der->size());
    EXPECT_EQ(X509_cmp(from_der.get(), cert), 0);

    auto p12 = export_certificate(cert, ExportFormat::p12);
    ASSERT_TRUE(p12) << p12.error();
    BioPtr p12_bio(BIO_new_mem_buf(p12->data(), static_cast<int>(p12->size())));
    Pkcs12Ptr parsed(d2i_PKCS12_bio(p12_bio.get(), nullptr));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(PKCS12_verify_mac(parsed.get(), "", 0), 1) << "empty password";
    EVP_PKEY* key = nullptr;
    X509* main_cert = nullptr;
    STACK_OF(X509)* others = nullptr;
    ASSERT_EQ(PKCS12_parse(parsed.get(), "", &key, &main_cert, &others), 1) << last_openssl_error();
    EXPECT_EQ(key, nullptr) << "the CA key must never be exported";
    std::vector<X509*> found;
    if (main_cert != nullptr)
        found.push_back(main_cert);
    for (int i = 0; others != nullptr && i < sk_X509_num(others); ++i) {
        found.push_back(sk_X509_value(others, i));
    }
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(X509_cmp(found[0], cert), 0);
    EVP_PKEY_free(key);
    X509_free(main_cert);
    sk_X509_pop_free(others, X509_free);
}

// ---- mirror_properties -----------------------------------------------------------------------

class Mirror : public ::testing::Test {
protected:
    void SetUp() override {
        auto key = generate_leaf_key();
        ASSERT_TRUE(key);
        upstream_key_ = std::move(*key);
    }
    X509Ptr upstream(const UpstreamSpec& spec) {
        return make_upstream(spec, upstream_key_.get(), now_);
    }

    const std::time_t now_ = 1'780'000'000;  // fixed: mirror_properties is pure
    EvpPkeyPtr upstream_key_;
};

TEST_F(Mirror, CopiesCommonNameDnsAndIpNames) {
    X509Ptr cert = upstream({.common_name = "www.example.com",
                             .dns_names = {"www.example.com", "example.com", "*.cdn.example.com"},
                             .ip_addresses = {"192.0.2.1", "2001:db8::1"},
                             .other_alt_names = {"email:ops@example.com", "URI:https://x.test/"}});
    auto properties = mirror_properties(cert.get(), "www.example.com", now_, serial_of(7));
    ASSERT_TRUE(properties) << properties.error();
    EXPECT_EQ(properties->common_name, "www.example.com");
    EXPECT_EQ(properties->dns_names,
              (std::vector<std::string>{"www.example.com", "example.com", "*.cdn.example.com"}));
    EXPECT_EQ(to_strings(properties->ip_addresses),
              (std::vector<std::string>{"192.0.2.1", "2001:db8::1"}));
    EXPECT_EQ(properties->serial, serial_of(7));
    EXPECT_EQ(properties->not_before, now_ - 3600);
    EXPECT_EQ(properties->not_after, now_ + 60 * kDay);
}

TEST_F(Mirror, SniAlreadyListedIsNotRepeated) {
    X509Ptr cert = upstream({.dns_names = {"www.example.com"}, .ip_addresses = {"192.0.2.1"}});
    for (const char* sni : {"WWW.Example.COM", "www.example.com.", "192.0.2.1"}) {
        auto properties = mirror_properties(cert.get(), sni, now_, serial_of(1));
        ASSERT_TRUE(properties) << sni << ": " << properties.error();
        EXPECT_EQ(properties->dns_names, std::vector<std::string>{"www.example.com"}) << sni;
        EXPECT_EQ(properties->ip_addresses.size(), 1u) << sni;
    }
}

TEST_F(Mirror, AppendsAMissingSniAsDnsNameOrIpAddress) {
    X509Ptr cert = upstream({.common_name = "example.com", .dns_names = {"*.example.com"}});
    auto by_name = mirror_properties(cert.get(), "Shop.Example.com", now_, serial_of(1));
    ASSERT_TRUE(by_name) << by_name.error();
    EXPECT_EQ(by_name->dns_names, (std::vector<std::string>{"*.example.com", "shop.example.com"}));
    EXPECT_TRUE(by_name->ip_addresses.empty());

    auto by_address = mirror_properties(cert.get(), "2001:db8::7", now_, serial_of(1));
    ASSERT_TRUE(by_address) << by_address.error();
    EXPECT_EQ(by_address->dns_names, std::vector<std::string>{"*.example.com"});
    EXPECT_EQ(to_strings(by_address->ip_addresses), std::vector<std::string>{"2001:db8::7"});
}

TEST_F(Mirror, WithoutCommonNameOrSans) {
    X509Ptr no_common_name = upstream({.dns_names = {"a.example"}});
    auto properties = mirror_properties(no_common_name.get(), "", now_, serial_of(1));
    ASSERT_TRUE(properties) << properties.error();
    EXPECT_TRUE(properties->common_name.empty());
    EXPECT_EQ(properties->dns_names, std::vector<std::string>{"a.example"});

    // A CN-only certificate: the SNI is the only name a leaf can carry.
    X509Ptr common_name_only = upstream({.common_name = "legacy.example"});
    auto with_sni = mirror_properties(common_name_only.get(), "legacy.example", now_, serial_of(1));
    ASSERT_TRUE(with_sni) << with_sni.error();
    EXPECT_EQ(with_sni->dns_names, std::vector<std::string>{"legacy.example"});
    auto without_sni = mirror_properties(common_name_only.get(), "", now_, serial_of(1));
    ASSERT_FALSE(without_sni);
    EXPECT_NE(without_sni.error().find("no SNI"), std::string::npos) << without_sni.error();
}

// OpenSSL-based clients take the CN for a host name when a certificate has no DNS SAN, and
// upstream verification checked SANs only: such a leaf must not carry an unproven CN.
TEST_F(Mirror, WithoutDnsNamesKeepsOnlyACommonNameASanProves) {
    X509Ptr ip_only = upstream({.common_name = "bank.example", .ip_addresses = {"192.0.2.1"}});
    auto unproven = mirror_properties(ip_only.get(), "192.0.2.1", now_, serial_of(1));
    ASSERT_TRUE(unproven) << unproven.error();
    EXPECT_TRUE(unproven->common_name.empty());
    EXPECT_TRUE(unproven->dns_names.empty());

    X509Ptr ip_named = upstream({.common_name = "192.0.2.1", .ip_addresses = {"192.0.2.1"}});
    auto proven = mirror_properties(ip_named.get(), "", now_, serial_of(1));
    ASSERT_TRUE(proven) << proven.error();
    EXPECT_EQ(proven->common_name, "192.0.2.1");

    // With a DNS SAN no client falls back to the CN: it is mirrored as it is.
    X509Ptr titled = upstream({.common_name = "Example Web Server", .dns_names = {"a.example"}});
    auto mirrored = mirror_properties(titled.get(), "a.example", now_, serial_of(1));
    ASSERT_TRUE(mirrored) << mirrored.error();
    EXPECT_EQ(mirrored->common_name, "Example Web Server");
}

TEST_F(Mirror, RejectsBadServerNamesAndOverlongCommonNames) {
    X509Ptr cert = upstream({.dns_names = {"a.example"}});
    for (const char* sni : {"bad name", "evil.example\r\nX: y", "-lead.example", "a..b"}) {
        EXPECT_FALSE(mirror_properties(cert.get(), sni, now_, serial_of(1))) << sni;
    }
    EXPECT_FALSE(
        mirror_properties(cert.get(), std::string_view("a.example\0x", 11), now_, serial_of(1)));

    X509Ptr long_name = upstream({.common_name = std::string(65, 'x'),
                                  .dns_names = {"a.example"},
                                  .long_common_name_bypassing_limits = true});
    auto rejected = mirror_properties(long_name.get(), "a.example", now_, serial_of(1));
    ASSERT_FALSE(rejected);
    EXPECT_NE(rejected.error().find("64"), std::string::npos) << rejected.error();

    // 64 characters of two bytes each is fine: the limit counts characters.
    std::string umlauts;
    for (int i = 0; i < 64; ++i)
        umlauts += "ü";
    X509Ptr wide_name = upstream({.common_name = umlauts, .dns_names = {"a.example"}});
    auto accepted = mirror_properties(wide_name.get(), "a.example", now_, serial_of(1));
    ASSERT_TRUE(accepted) << accepted.error();
    EXPECT_EQ(accepted->common_name, umlauts);
}

TEST_F(Mirror, ClampsValidity) {
    // Upstream valid for 800 more days: the leaf stops at 397 days.
    X509Ptr long_lived = upstream({.dns_names = {"a.example"}, .not_after_offset = 800 * kDay});
    auto clamped = mirror_properties(long_lived.get(), "a.example", now_, serial_of(1));
    ASSERT_TRUE(clamped) << clamped.error();
    EXPECT_EQ(clamped->not_after, now_ + kMaxLeafValiditySeconds);
    EXPECT_EQ(clamped->not_after - clamped->not_before, kMaxLeafValiditySeconds + 3600);

    // Upstream expiring in 10 days: the leaf expires with it.
    X509Ptr short_lived = upstream({.dns_names = {"a.example"}, .not_after_offset = 10 * kDay});
    auto follows = mirror_properties(short_lived.get(), "a.example", now_, serial_of(1));
    ASSERT_TRUE(follows) << follows.error();
    EXPECT_EQ(follows->not_after, now_ + 10 * kDay);

    // Upstream issued ten minutes ago: the leaf does not start before it.
    X509Ptr fresh = upstream({.dns_names = {"a.example"}, .not_before_offset = -600});
    auto starts = mirror_properties(fresh.get(), "a.example", now_, serial_of(1));
    ASSERT_TRUE(starts) << starts.error();
    EXPECT_EQ(starts->not_before, now_ - 600);

    // Upstream expired two hours ago: nothing to mint.
    X509Ptr expired = upstream({.dns_names = {"a.example"}, .not_after_offset = -2 * 3600});
    auto rejected = mirror_properties(expired.get(), "a.example", now_, serial_of(1));
    ASSERT_FALSE(rejected);
    EXPECT_NE(rejected.error().find("expired"), std::string::npos) << rejected.error();
}

// A refused upstream certificate is mirrored as it is: nothing clamped, nothing added.
TEST_F(Mirror, UntrustedMirrorKeepsUpstreamDatesAndNamesExactly) {
    X509Ptr expired = upstream({.common_name = "expired.example",
                                .dns_names = {"expired.example", "www.expired.example"},
                                .ip_addresses = {"192.0.2.7"},
                                .not_before_offset = -400 * kDay,
                                .not_after_offset = -2 * kDay});
    auto properties = untrusted_mirror_properties(expired.get(), serial_of(9));
    ASSERT_TRUE(properties) << properties.error();
    EXPECT_EQ(properties->common_name, "expired.example");
    EXPECT_EQ(properties->dns_names,
              (std::vector<std::string>{"expired.example", "www.expired.example"}));
    EXPECT_EQ(to_strings(properties->ip_addresses), std::vector<std::string>{"192.0.2.7"});
    EXPECT_EQ(properties->not_before, now_ - 400 * kDay);
    EXPECT_EQ(properties->not_after, now_ - 2 * kDay);
    EXPECT_EQ(properties->serial, serial_of(9));

    // Not yet valid, and valid far longer than a minted leaf may be: both kept.
    X509Ptr future = upstream({.dns_names = {"later.example"},
                               .not_before_offset = 30 * kDay,
                               .not_after_offset = 900 * kDay});
    auto later = untrusted_mirror_properties(future.get(), serial_of(1));
    ASSERT_TRUE(later) << later.error();
    EXPECT_EQ(later->not_before, now_ + 30 * kDay);
    EXPECT_EQ(later->not_after, now_ + 900 * kDay);

    // A certificate for another host keeps its own names: the client sees the mismatch.
    X509Ptr other_host = upstream({.common_name = "other.example", .dns_names = {"other.example"}});
    auto wrong = untrusted_mirror_properties(other_host.get(), serial_of(1));
    ASSERT_TRUE(wrong) << wrong.error();
    EXPECT_EQ(wrong->dns_names, std::vector<std::string>{"other.example"});

    // CN only: mirrored as CN only.
    X509Ptr legacy = upstream({.common_name = "legacy.example"});
    auto common_name_only = untrusted_mirror_properties(legacy.get(), serial_of(1));
    ASSERT_TRUE(common_name_only) << common_name_only.error();
    EXPECT_EQ(common_name_only->common_name, "legacy.example");
    EXPECT_TRUE(common_name_only->dns_names.empty());

    X509Ptr nameless = upstream({});
    EXPECT_FALSE(untrusted_mirror_properties(nameless.get(), serial_of(1)));
    EXPECT_FALSE(untrusted_mirror_properties(nullptr, serial_of(1)));
}

TEST(UntrustedMirror, TheStandInFailsVerificationAsUpstreamDidAndChainsOnlyToTheUntrustedCa) {
    const std::time_t now = std::time(nullptr);
    static const CertificateAuthority untrusted = [] {
        auto ca = create_ca(kUntrustedCaSubject, KeyType::ec_p256);
        if (!ca) {
            std::abort();
        }
        return std::move(*ca);
    }();
    const CertificateAuthority& real = shared_ca(KeyType::ec_p256);
    auto upstream_key = generate_leaf_key();
    auto leaf_key = generate_leaf_key();
    ASSERT_TRUE(upstream_key && leaf_key);
    const auto stand_in = [&](const UpstreamSpec& spec) {
        X509Ptr upstream = make_upstream(spec, upstream_key->get(), now);
        auto properties = untrusted_mirror_properties(upstream.get(), random_serial());
        EXPECT_TRUE(properties) << properties.error();
        auto leaf = mint_leaf(*properties, leaf_key->get(), untrusted);
        EXPECT_TRUE(leaf) << leaf.error();
        return std::move(*leaf);
    };

    X509Ptr expired = stand_in({.common_name = "expired.example",
                                .dns_names = {"expired.example"},
                                .not_before_offset = -60 * kDay,
                                .not_after_offset = -kDay});
    EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(expired.get()),
                            X509_get_subject_name(untrusted.cert.get())),
              0);
    EXPECT_EQ(X509_verify(expired.get(), untrusted.key.get()), 1);
    EXPECT_EQ(verify_as_client(expired.get(), untrusted.cert.get(), "expired.example", false),
              X509_V_ERR_CERT_HAS_EXPIRED);
    EXPECT_EQ(verify_as_client(expired.get(), real.cert.get(), "expired.example", false),
              X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)
        << "a client trusting the real CA does not trust the stand-in";

    X509Ptr wrong_host = stand_in({.common_name = "other.example", .dns_names = {"other.example"}});
    EXPECT_EQ(verify_as_client(wrong_host.get(), untrusted.cert.get(), "wronghost.example", false),
              X509_V_ERR_HOSTNAME_MISMATCH);

    X509Ptr legacy = stand_in({.common_name = "legacy.example"});
    EXPECT_EQ(X509_get_ext_by_NID(legacy.get(), NID_subject_alt_name, -1), -1) << "no empty SAN";
    EXPECT_EQ(first_entry(X509_get_subject_name(legacy.get()), NID_commonName), "legacy.example");
    // Whatever a client makes of a CN-only certificate, it makes the same of the stand-in.
    EXPECT_EQ(X509_check_host(legacy.get(), "legacy.example", 0,
                              X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr),
              0);
    EXPECT_EQ(X509_check_host(legacy.get(), "legacy.example", 0, 0, nullptr), 1);
}

// ---- mint_leaf -------------------------------------------------------------------------------

class Minting : public ::testing::TestWithParam<KeyType> {
protected:
    const CertificateAuthority& ca() const { return shared_ca(GetParam()); }
};

TEST_P(Minting, LeafHasEveryFieldAndVerifiesAsAClientWould) {
    const std::time_t now = std::time(nullptr);
    auto upstream_key = generate_leaf_key();
    ASSERT_TRUE(upstream_key);
    X509Ptr upstream = make_upstream({.common_name = "www.example.com",
                                      .dns_names = {"www.example.com", "*.example.com"},
                                      .ip_addresses = {"192.0.2.10"}},
                                     upstream_key->get(), now);
    auto properties = mirror_properties(upstream.get(), "api.example.org", now, random_serial());
    ASSERT_TRUE(properties) << properties.error();
    auto leaf_key = generate_leaf_key();
    ASSERT_TRUE(leaf_key);
    auto minted = mint_leaf(*properties, leaf_key->get(), ca());
    ASSERT_TRUE(minted) << minted.error();

    // The in-memory certificate is what the TLS stage hands to SSL_use_certificate: its public
    // key must be decoded and cached, and be the leaf key.
    ASSERT_NE(X509_get0_pubkey(minted->get()), nullptr);
    EXPECT_EQ(X509_check_private_key(minted->get(), leaf_key->get()), 1);
    EXPECT_EQ(ERR_peek_error(), 0u) << "no stale errors left on the queue";

    // Round-trip through DER so we check the encoding, not the in-memory structure.
    auto der = export_certificate(minted->get(), ExportFormat::der);
    ASSERT_TRUE(der);
    const auto* cursor = reinterpret_cast<const unsigned char*>(der->data());
    X509Ptr leaf(d2i_X509(nullptr, &cursor, static_cast<long>(der->size())));
    ASSERT_TRUE(leaf);

    EXPECT_EQ(X509_get_version(leaf.get()), X509_VERSION_3);
    BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf.get()), nullptr));
    EXPECT_FALSE(BN_is_negative(serial.get()));
    EXPECT_FALSE(BN_is_zero(serial.get()));
    EXPECT_LE(BN_num_bytes(serial.get()), 16);
    EXPECT_EQ(
        X509_NAME_cmp(X509_get_issuer_name(leaf.get()), X509_get_subject_name(ca().cert.get())), 0);
    const X509_NAME* subject = X509_get_subject_name(leaf.get());
    EXPECT_EQ(X509_NAME_entry_count(subject), 1);
    EXPECT_EQ(first_entry(subject, NID_commonName), "www.example.com");
    EXPECT_EQ(san_dns_names(leaf.get()),
              (std::vector<std::string>{"www.example.com", "*.example.com", "api.example.org"}));
    EXPECT_EQ(san_ip_addresses(leaf.get()), std::vector<std::string>{"192.0.2.10"});
    EXPECT_EQ(time_of(X509_get0_notBefore(leaf.get())), properties->not_before);
    EXPECT_EQ(time_of(X509_get0_notAfter(leaf.get())), properties->not_after);

    EXPECT_EQ(extension_criticality(leaf.get(), NID_subject_alt_name), 0);
    EXPECT_EQ(extension_criticality(leaf.get(), NID_basic_constraints), 1);
    EXPECT_TRUE(X509_get_extension_flags(leaf.get()) & EXFLAG_BCONS);
    EXPECT_FALSE(X509_get_extension_flags(leaf.get()) & EXFLAG_CA);
    EXPECT_EQ(X509_check_ca(leaf.get()), 0);
    EXPECT_EQ(extension_criticality(leaf.get(), NID_key_usage), 1);
    EXPECT_EQ(X509_get_key_usage(leaf.get()), static_cast<std::uint32_t>(KU_DIGITAL_SIGNATURE));
    EXPECT_EQ(extension_criticality(leaf.get(), NID_ext_key_usage), 0);
    EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<std::uint32_t>(XKU_SSL_SERVER));
    EXPECT_EQ(extension_criticality(leaf.get(), NID_subject_key_identifier), 0);
    EXPECT_EQ(octets_hex(X509_get0_subject_key_id(leaf.get())), expected_key_id_hex(leaf.get()));
    EXPECT_EQ(extension_criticality(leaf.get(), NID_authority_key_identifier), 0);
    EXPECT_EQ(octets_hex(X509_get0_authority_key_id(leaf.get())),
              octets_hex(X509_get0_subject_key_id(ca().cert.get())));
    EXPECT_EQ(X509_get_ext_count(leaf.get()), 6);
    EXPECT_EQ(X509_get_extension_flags(leaf.get()) & EXFLAG_INVALID, 0u);

    EXPECT_EQ(X509_get_signature_nid(leaf.get()),
              GetParam() == KeyType::ec_p256 ? NID_ecdsa_with_SHA256 : NID_sha256WithRSAEncryption);
    EXPECT_EQ(X509_verify(leaf.get(), ca().key.get()), 1);
    EXPECT_EQ(X509_check_private_key(leaf.get(), leaf_key->get()), 1);
    EXPECT_NE(EVP_PKEY_eq(X509_get0_pubkey(leaf.get()), ca().key.get()), 1);

    EXPECT_EQ(verify_as_client(leaf.get(), ca().cert.get(), "api.example.org", false), X509_V_OK);
    EXPECT_EQ(verify_as_client(leaf.get(), ca().cert.get(), "www.example.com", false), X509_V_OK);
    EXPECT_EQ(verify_as_client(leaf.get(), ca().cert.get(), "img.example.com", false), X509_V_OK);
    EXPECT_EQ(verify_as_client(leaf.get(), ca().cert.get(), "192.0.2.10", true), X509_V_OK);
    EXPECT_EQ(verify_as_client(leaf.get(), ca().cert.get(), "other.test", false),
              X509_V_ERR_HOSTNAME_MISMATCH);
    // Another CA does not vouch for it.
    const CertificateAuthority& other =
        shared_ca(GetParam() == KeyType::ec_p256 ? KeyType::rsa_3072 : KeyType::ec_p256);
    EXPECT_NE(verify_as_client(leaf.get(), other.cert.get(), "api.example.org", false), X509_V_OK);
}

TEST_P(Minting, EmptySubjectMakesTheSanCritical) {
    CertProperties properties;
    properties.dns_names = {"only-san.example"};
    properties.not_before = std::time(nullptr) - 3600;
    properties.not_after = properties.not_before + 30 * kDay;
    properties.serial = serial_of(3);
    auto leaf_key = generate_leaf_key();
    auto leaf = mint_leaf(properties, leaf_key->get(), ca());
    ASSERT_TRUE(leaf) << leaf.error();
    EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(leaf->get())), 0);
    EXPECT_EQ(extension_criticality(leaf->get(), NID_subject_alt_name), 1);
    EXPECT_EQ(verify_as_client(leaf->get(), ca().cert.get(), "only-san.example", false), X509_V_OK);
}

TEST_P(Minting, RsaLeafKeyAlsoGetsKeyEncipherment) {
    CertProperties properties;
    properties.common_name = "rsa.example";
    properties.dns_names = {"rsa.example"};
    properties.not_before = std::time(nullptr) - 3600;
    properties.not_after = properties.not_before + kDay;
    EvpPkeyPtr rsa_key = make_rsa_key(2048);
    auto leaf = mint_leaf(properties, rsa_key.get(), ca());
    ASSERT_TRUE(leaf) << leaf.error();
    EXPECT_EQ(X509_get_key_usage(leaf->get()),
              static_cast<std::uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
    EXPECT_EQ(verify_as_client(leaf->get(), ca().cert.get(), "rsa.example", false), X509_V_OK);
}

TEST_P(Minting, AnyLeafKeyTypeGetsTheExactSubjectPublicKeyInfo) {
    CertProperties properties;
    properties.dns_names = {"keys.example"};
    properties.not_before = std::time(nullptr) - 3600;
    properties.not_after = properties.not_before + kDay;
    auto p256 = generate_leaf_key();
    ASSERT_TRUE(p256);
    EvpPkeyPtr p384(EVP_EC_gen("P-384"));
    EvpPkeyPtr rsa = make_rsa_key(2048);
    for (EVP_PKEY* key : {p256->get(), p384.get(), rsa.get()}) {
        auto leaf = mint_leaf(properties, key, ca());
        ASSERT_TRUE(leaf) << leaf.error();
        unsigned char* expected = nullptr;
        const int expected_length = i2d_PUBKEY(key, &expected);
        unsigned char* actual = nullptr;
        const int actual_length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf->get()), &actual);
        ASSERT_GT(expected_length, 0);
        EXPECT_EQ(std::string(reinterpret_cast<char*>(actual), actual_length),
                  std::string(reinterpret_cast<char*>(expected), expected_length))
            << EVP_PKEY_get0_type_name(key) << " " << EVP_PKEY_get_bits(key);
        OPENSSL_free(expected);
        OPENSSL_free(actual);
        ASSERT_NE(X509_get0_pubkey(leaf->get()), nullptr);
        EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf->get()), key), 1);
        EXPECT_EQ(X509_check_private_key(leaf->get(), key), 1);
        EXPECT_EQ(verify_as_client(leaf->get(), ca().cert.get(), "keys.example", false), X509_V_OK);
    }
}

// Drives a client and a server SSL over a pair of in-memory BIOs until both finish.
bool handshake_in_memory(SSL* client, SSL* server) {
    BIO* client_bio = nullptr;
    BIO* server_bio = nullptr;
    if (BIO_new_bio_pair(&client_bio, 0, &server_bio, 0) != 1) {
        return false;
    }
    SSL_set_bio(client, client_bio, client_bio);
    SSL_set_bio(server, server_bio, server_bio);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
        if (!client_done) {
            const int result = SSL_do_handshake(client);
            client_done = result == 1;
            if (result <= 0 && SSL_get_error(client, result) != SSL_ERROR_WANT_READ) {
                return false;
            }
        }
        if (!server_done) {
            const int result = SSL_do_handshake(server);
            server_done = result == 1;
            if (result <= 0 && SSL_get_error(server, result) != SSL_ERROR_WANT_READ) {
                return false;
            }
        }
    }
    return client_done && server_done;
}

// The in-memory leaf (not a DER copy) goes straight into SSL_use_certificate, as the relay does,
// and a strict client trusting only the CA accepts it, in TLS 1.2 and 1.3.
TEST_P(Minting, MintedLeafServesATlsHandshake) {
    const std::time_t now = std::time(nullptr);
    CertProperties properties;
    properties.common_name = "tls.example";
    properties.dns_names = {"tls.example"};
    properties.not_before = now - 3600;
    properties.not_after = now + kDay;
    properties.serial = random_serial();
    auto leaf_key = generate_leaf_key();
    ASSERT_TRUE(leaf_key);
    auto leaf = mint_leaf(properties, leaf_key->get(), ca());
    ASSERT_TRUE(leaf) << leaf.error();

    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        SslCtxPtr server_context(SSL_CTX_new(TLS_server_method()));
        SslCtxPtr client_context(SSL_CTX_new(TLS_client_method()));
        ASSERT_TRUE(server_context && client_context);
        SSL_CTX_set_min_proto_version(client_context.get(), version);
        SSL_CTX_set_max_proto_version(client_context.get(), version);
        SSL_CTX_set_verify(client_context.get(), SSL_VERIFY_PEER, nullptr);
        X509_STORE_add_cert(SSL_CTX_get_cert_store(client_context.get()), ca().cert.get());
        SslPtr server(SSL_new(server_context.get()));
        SslPtr client(SSL_new(client_context.get()));
        ASSERT_EQ(SSL_use_certificate(server.get(), leaf->get()), 1) << last_openssl_error();
        ASSERT_EQ(SSL_use_PrivateKey(server.get(), leaf_key->get()), 1) << last_openssl_error();
        ASSERT_EQ(SSL_check_private_key(server.get()), 1) << last_openssl_error();
        SSL_set_tlsext_host_name(client.get(), "tls.example");
        SSL_set1_host(client.get(), "tls.example");
        ASSERT_TRUE(handshake_in_memory(client.get(), server.get()))
            << "version " << std::hex << version << ": " << last_openssl_error();
        EXPECT_EQ(SSL_get_verify_result(client.get()), X509_V_OK);
        EXPECT_EQ(SSL_version(client.get()), version);
    }
}

INSTANTIATE_TEST_SUITE_P(EcAndRsaCa, Minting,
                         ::testing::Values(KeyType::ec_p256, KeyType::rsa_3072),
                         [](const auto& info) {
                             return info.param == KeyType::ec_p256 ? "EcCa" : "RsaCa";
                         });

TEST(MintingSerial, IsPositiveAndNonZeroWhateverTheBytes) {
    const CertificateAuthority& ca = shared_ca(KeyType::ec_p256);
    auto leaf_key = generate_leaf_key();
    CertProperties properties;
    properties.dns_names = {"serial.example"};
    properties.not_before = std::time(nullptr);
    properties.not_after = properties.not_before + kDay;

    properties.serial = serial_of(0xff);
    auto all_ones = mint_leaf(properties, leaf_key->get(), ca);
    ASSERT_TRUE(all_ones) << all_ones.error();
    BignumPtr high(ASN1_INTEGER_to_BN(X509_get0_serialNumber(all_ones->get()), nullptr));
    EXPECT_FALSE(BN_is_negative(high.get()));
    EXPECT_EQ(BN_num_bits(high.get()), 127);

    properties.serial = serial_of(0);
    auto all_zero = mint_leaf(properties, leaf_key->get(), ca);
    ASSERT_TRUE(all_zero) << all_zero.error();
    EXPECT_EQ(ASN1_INTEGER_get(X509_get0_serialNumber(all_zero->get())), 1);
}

TEST(MintingRefusals, BadPropertiesAndTheCaKey) {
    const CertificateAuthority& ca = shared_ca(KeyType::ec_p256);
    auto leaf_key = generate_leaf_key();
    CertProperties good;
    good.dns_names = {"ok.example"};
    good.not_before = std::time(nullptr);
    good.not_after = good.not_before + kDay;
    ASSERT_TRUE(mint_leaf(good, leaf_key->get(), ca));

    CertProperties no_names = good;
    no_names.dns_names.clear();
    EXPECT_FALSE(mint_leaf(no_names, leaf_key->get(), ca));

    CertProperties empty_window = good;
    empty_window.not_after = empty_window.not_before;
    EXPECT_FALSE(mint_leaf(empty_window, leaf_key->get(), ca));

    CertProperties long_name = good;
    long_name.common_name = std::string(65, 'a');
    EXPECT_FALSE(mint_leaf(long_name, leaf_key->get(), ca));

    CertProperties control_bytes = good;
    control_bytes.dns_names = {"bad\nname.example"};
    EXPECT_FALSE(mint_leaf(control_bytes, leaf_key->get(), ca));

    auto same_key = mint_leaf(good, ca.key.get(), ca);
    ASSERT_FALSE(same_key);
    EXPECT_NE(same_key.error().find("CA key"), std::string::npos) << same_key.error();
    // A copy of the CA key (a different object) is caught as well.
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(bio.get(), ca.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    EvpPkeyPtr copy(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    EXPECT_FALSE(mint_leaf(good, copy.get(), ca));

    EXPECT_FALSE(mint_leaf(good, nullptr, ca));
    EXPECT_EQ(ERR_peek_error(), 0u) << "no stale errors left on the queue";

    // An EC leaf key under an RSA CA: different key types compare as "not the CA key" without
    // leaving an error behind for the next OpenSSL call on this thread.
    ASSERT_TRUE(mint_leaf(good, leaf_key->get(), shared_ca(KeyType::rsa_3072)));
    EXPECT_EQ(ERR_peek_error(), 0u) << "no stale errors left on the queue";
}

// Workers share one CA and mint at the same time; nothing mutable may be shared between them.
TEST(MintingThreads, ConcurrentMintingWithOneCaProducesValidLeaves) {
    const CertificateAuthority& ca = shared_ca(KeyType::ec_p256);
    const std::time_t now = std::time(nullptr);
    constexpr int kThreads = 4;
    constexpr int kLeavesPerThread = 25;
    std::vector<std::vector<X509Ptr>> leaves(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            auto leaf_key = generate_leaf_key();  // one per worker, as the relay does
            for (int i = 0; i < kLeavesPerThread && leaf_key; ++i) {
                CertProperties properties;
                properties.dns_names = {"w" + std::to_string(t) + "-" + std::to_string(i) +
                                        ".example"};
                properties.not_before = now - 3600;
                properties.not_after = now + kDay;
                properties.serial = random_serial();
                if (auto leaf = mint_leaf(properties, leaf_key->get(), ca)) {
                    leaves[t].push_back(std::move(*leaf));
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    for (int t = 0; t < kThreads; ++t) {
        ASSERT_EQ(leaves[t].size(), static_cast<std::size_t>(kLeavesPerThread));
        for (int i = 0; i < kLeavesPerThread; ++i) {
            const std::string host = "w" + std::to_string(t) + "-" + std::to_string(i) + ".example";
            EXPECT_EQ(verify_as_client(leaves[t][i].get(), ca.cert.get(), host, false), X509_V_OK)
                << host;
        }
    }
}

TEST(MintingKeys, LeafKeysAreFreshP256) {
    auto first = generate_leaf_key();
    auto second = generate_leaf_key();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(EVP_PKEY_get_base_id(first->get()), EVP_PKEY_EC);
    EXPECT_EQ(EVP_PKEY_get_bits(first->get()), 256);
    EXPECT_NE(EVP_PKEY_eq(first->get(), second->get()), 1);
    EXPECT_NE(random_serial(), random_serial());
}

// ---- LeafCache -------------------------------------------------------------------------------

class Cache : public ::testing::Test {
protected:
    // Distinct certificates, told apart by their serial number.
    X509Ptr make_cert(long serial) {
        X509Ptr cert(X509_new());
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
        return cert;
    }
    static long serial_of_cert(X509* cert) {
        return ASN1_INTEGER_get(X509_get0_serialNumber(cert));
    }
};

TEST_F(Cache, FindsWhatWasInsertedAndOwnsItsReference) {
    LeafCache cache(4);
    EXPECT_EQ(cache.capacity(), 4u);
    EXPECT_FALSE(cache.find("a"));
    {
        X509Ptr cert = make_cert(1);
        cache.insert("a", cert.get());
    }  // our reference is gone; the cache keeps its own
    X509Ptr found = cache.find("a");
    ASSERT_TRUE(found);
    EXPECT_EQ(serial_of_cert(found.get()), 1);
    X509Ptr again = cache.find("a");
    EXPECT_EQ(again.get(), found.get());
    EXPECT_EQ(cache.size(), 1u);
}

TEST_F(Cache, EvictsTheLeastRecentlyUsed) {
    LeafCache cache(2);
    X509Ptr a = make_cert(1), b = make_cert(2), c = make_cert(3);
    cache.insert("a", a.get());
    cache.insert("b", b.get());
    ASSERT_TRUE(cache.find("a"));  // a is now the most recent
    cache.insert("c", c.get());    // so b goes
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_FALSE(cache.find("b"));
    EXPECT_TRUE(cache.find("a"));
    EXPECT_TRUE(cache.find("c"));

    cache.insert("d", make_cert(4).get());  // a was found before c: a goes
    EXPECT_FALSE(cache.find("a"));
    EXPECT_TRUE(cache.find("c"));
    EXPECT_TRUE(cache.find("d"));
}

TEST_F(Cache, InsertReplacesAnExistingKeyAndBumpsIt) {
    LeafCache cache(2);
    cache.insert("a", make_cert(1).get());
    cache.insert("b", make_cert(2).get());
    cache.insert("a", make_cert(10).get());  // replaces and makes a the most recent
    EXPECT_EQ(cache.size(), 2u);
    cache.insert("c", make_cert(3).get());  // evicts b, not a
    X509Ptr a = cache.find("a");
    ASSERT_TRUE(a);
    EXPECT_EQ(serial_of_cert(a.get()), 10);
    EXPECT_FALSE(cache.find("b"));
}

TEST_F(Cache, AReferenceHandedOutOutlivesEviction) {
    LeafCache cache(1);
    cache.insert("a", make_cert(1).get());
    X509Ptr held = cache.find("a");
    cache.insert("b", make_cert(2).get());  // evicts a while we still hold it
    EXPECT_FALSE(cache.find("a"));
    ASSERT_TRUE(held);
    EXPECT_EQ(serial_of_cert(held.get()), 1);  // still valid (ASan would flag a use-after-free)
}

TEST_F(Cache, ZeroCapacityAndNullAreHarmless) {
    LeafCache none(0);
    none.insert("a", make_cert(1).get());
    EXPECT_EQ(none.size(), 0u);
    EXPECT_FALSE(none.find("a"));
    LeafCache cache(2);
    cache.insert("a", nullptr);
    EXPECT_EQ(cache.size(), 0u);
}

TEST_F(Cache, StaysBoundedUnderChurn) {
    LeafCache cache(100);
    X509Ptr cert = make_cert(1);
    for (int i = 0; i < 1000; ++i) {
        cache.insert("key" + std::to_string(i), cert.get());
        ASSERT_LE(cache.size(), 100u);
    }
    EXPECT_TRUE(cache.find("key999"));
    EXPECT_TRUE(cache.find("key900"));
    EXPECT_FALSE(cache.find("key899"));
}

}  // namespace
}  // namespace tlsgate::pki
