#include "pki/x509_build.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <string>
#include <string_view>

namespace tlsgate::pki::detail {
namespace {

using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSslDeleter<BASIC_CONSTRAINTS_free>>;
using BitStringPtr = std::unique_ptr<ASN1_BIT_STRING, OpenSslDeleter<ASN1_BIT_STRING_free>>;
using AuthorityKeyIdPtr = std::unique_ptr<AUTHORITY_KEYID, OpenSslDeleter<AUTHORITY_KEYID_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, OpenSslDeleter<ASN1_INTEGER_free>>;

Error openssl_failure(const std::string& what) {
    return make_error(what + ": " + last_openssl_error());
}

// OpenSSL 3.0 encodes a provider-held key for X509_set_pubkey through the generic encoder and
// decodes it straight back, building encoder and decoder chains on every call: about 0.3-0.7 ms
// per leaf, ten times the ECDSA signature. Keys of the legacy kind take the old direct ASN.1
// path. So for EC keys we build a legacy public-key copy from the encoded point and the curve
// parameters (public, non-deprecated calls only) and hand that to X509_set_pubkey.
EvpPkeyPtr legacy_ec_parameters_from(EVP_PKEY* key) {
    EvpPkeyPtr parameters(EVP_PKEY_new());
    // A legacy-typed target makes copy_parameters downgrade the provider key's group.
    if (!parameters || EVP_PKEY_set_type(parameters.get(), EVP_PKEY_EC) != 1 ||
        EVP_PKEY_copy_parameters(parameters.get(), key) != 1) {
        return nullptr;
    }
    return parameters;
}

bool is_p256(EVP_PKEY* key) {
    char group[32] = {};
    std::size_t length = 0;
    return EVP_PKEY_get_group_name(key, group, sizeof group, &length) == 1 &&
           std::string_view(group, length) == "prime256v1";
}

// The P-256 parameters as a legacy key, made once (downgrading costs about 100 us) and then only
// read, concurrently, by EVP_PKEY_copy_parameters.
const EVP_PKEY* shared_p256_parameters(EVP_PKEY* p256_key) {
    static const EvpPkeyPtr parameters = legacy_ec_parameters_from(p256_key);
    return parameters.get();
}

EvpPkeyPtr legacy_ec_public_key(EVP_PKEY* key) {
    unsigned char point[256];
    std::size_t point_length = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                        sizeof point, &point_length) != 1) {
        return nullptr;
    }
    EvpPkeyPtr public_key(EVP_PKEY_new());
    if (!public_key || EVP_PKEY_set_type(public_key.get(), EVP_PKEY_EC) != 1) {
        return nullptr;
    }
    const EVP_PKEY* parameters = is_p256(key) ? shared_p256_parameters(key) : nullptr;
    EvpPkeyPtr own_parameters;
    if (parameters == nullptr) {
        own_parameters = legacy_ec_parameters_from(key);
        parameters = own_parameters.get();
    }
    if (parameters == nullptr || EVP_PKEY_copy_parameters(public_key.get(), parameters) != 1 ||
        EVP_PKEY_set1_encoded_public_key(public_key.get(), point, point_length) != 1) {
        return nullptr;
    }
    return public_key;
}

// RSAPublicKey DER read back by d2i_PublicKey is a legacy key, which X509_set_pubkey encodes
// directly.
EvpPkeyPtr legacy_rsa_public_key(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    const int length = i2d_PublicKey(key, &der);
    if (length <= 0) {
        return nullptr;
    }
    const unsigned char* cursor = der;
    EvpPkeyPtr public_key(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &cursor, length));
    OPENSSL_free(der);
    return public_key;
}

void free_prepared_public_key(void*, void* prepared, CRYPTO_EX_DATA*, int, long, void*) {
    EVP_PKEY_free(static_cast<EVP_PKEY*>(prepared));
}

int prepared_public_key_index() {
    static const int index =
        EVP_PKEY_get_ex_new_index(0, nullptr, nullptr, nullptr, free_prepared_public_key);
    return index;
}

}  // namespace

Result<void> prepare_public_key(EVP_PKEY* key) {
    const int type = EVP_PKEY_get_base_id(key);
    if (type != EVP_PKEY_EC && type != EVP_PKEY_RSA) {
        return make_error("prepare_public_key: only EC and RSA keys");
    }
    EvpPkeyPtr prepared =
        type == EVP_PKEY_EC ? legacy_ec_public_key(key) : legacy_rsa_public_key(key);
    if (!prepared || EVP_PKEY_set_ex_data(key, prepared_public_key_index(), prepared.get()) != 1) {
        return openssl_failure("cannot prepare the leaf public key");
    }
    prepared.release();  // owned by `key` now, freed with it
    return {};
}

Result<void> set_public_key(X509* cert, EVP_PKEY* key) {
    if (auto* prepared =
            static_cast<EVP_PKEY*>(EVP_PKEY_get_ex_data(key, prepared_public_key_index()))) {
        if (X509_set_pubkey(cert, prepared) != 1) {
            return openssl_failure("cannot set the public key");
        }
        return {};
    }
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        ERR_set_mark();
        EvpPkeyPtr public_key = legacy_ec_public_key(key);
        if (public_key && X509_set_pubkey(cert, public_key.get()) == 1) {
            ERR_pop_to_mark();
            return {};
        }
        // Not expected, but the slow path below is always correct.
        ERR_pop_to_mark();
    }
    if (X509_set_pubkey(cert, key) != 1) {
        return openssl_failure("cannot set the public key");
    }
    return {};
}

Result<void> set_version_and_serial(X509* cert, std::array<std::uint8_t, 16> serial) {
    if (X509_set_version(cert, X509_VERSION_3) != 1) {
        return openssl_failure("cannot set the certificate version");
    }
    // DER integers are signed: a set top bit would make the serial negative (RFC 5280 wants
    // positive), and zero is not allowed either.
    serial[0] &= 0x7f;
    bool all_zero = true;
    for (std::uint8_t byte : serial) {
        all_zero = all_zero && byte == 0;
    }
    if (all_zero) {
        serial.back() = 1;
    }
    BignumPtr number(BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
    if (!number) {
        return openssl_failure("cannot encode the serial number");
    }
    Asn1IntegerPtr integer(BN_to_ASN1_INTEGER(number.get(), nullptr));
    if (!integer || X509_set_serialNumber(cert, integer.get()) != 1) {
        return openssl_failure("cannot set the serial number");
    }
    return {};
}

Result<void> set_validity(X509* cert, std::time_t not_before, std::time_t not_after) {
    // ASN1_TIME_set picks UTCTime before 2050 and GeneralizedTime after, as RFC 5280 requires.
    if (ASN1_TIME_set(X509_getm_notBefore(cert), not_before) == nullptr ||
        ASN1_TIME_set(X509_getm_notAfter(cert), not_after) == nullptr) {
        return openssl_failure("cannot set the validity period");
    }
    return {};
}

Result<void> add_extension(X509* cert, int nid, void* value, bool critical, const char* what) {
    if (X509_add1_ext_i2d(cert, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) != 1) {
        return openssl_failure(std::string("cannot add the ") + what + " extension");
    }
    return {};
}

Result<void> add_basic_constraints(X509* cert, bool is_ca, long path_length) {
    BasicConstraintsPtr constraints(BASIC_CONSTRAINTS_new());
    if (!constraints) {
        return openssl_failure("cannot allocate basicConstraints");
    }
    constraints->ca = is_ca ? 0xff : 0;
    if (is_ca && path_length >= 0) {
        constraints->pathlen = ASN1_INTEGER_new();
        if (constraints->pathlen == nullptr ||
            ASN1_INTEGER_set(constraints->pathlen, path_length) != 1) {
            return openssl_failure("cannot set the path length");
        }
    }
    return add_extension(cert, NID_basic_constraints, constraints.get(), true, "basicConstraints");
}

Result<void> add_key_usage(X509* cert, std::initializer_list<int> bits) {
    BitStringPtr usage(ASN1_BIT_STRING_new());
    if (!usage) {
        return openssl_failure("cannot allocate keyUsage");
    }
    for (int bit : bits) {
        if (ASN1_BIT_STRING_set_bit(usage.get(), bit, 1) != 1) {
            return openssl_failure("cannot set a keyUsage bit");
        }
    }
    return add_extension(cert, NID_key_usage, usage.get(), true, "keyUsage");
}

Result<Asn1OctetStringPtr> key_identifier(X509* cert) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    if (X509_pubkey_digest(cert, EVP_sha1(), digest, &digest_length) != 1) {
        return openssl_failure("cannot hash the public key");
    }
    Asn1OctetStringPtr key_id(ASN1_OCTET_STRING_new());
    if (!key_id ||
        ASN1_OCTET_STRING_set(key_id.get(), digest, static_cast<int>(digest_length)) != 1) {
        return openssl_failure("cannot store the key identifier");
    }
    return key_id;
}

Result<void> add_subject_key_id(X509* cert, const ASN1_OCTET_STRING* key_id) {
    return add_extension(cert, NID_subject_key_identifier, const_cast<ASN1_OCTET_STRING*>(key_id),
                         false, "subjectKeyIdentifier");
}

Result<void> add_authority_key_id(X509* cert, const ASN1_OCTET_STRING* issuer_key_id) {
    AuthorityKeyIdPtr authority(AUTHORITY_KEYID_new());
    if (!authority) {
        return openssl_failure("cannot allocate authorityKeyIdentifier");
    }
    authority->keyid = ASN1_OCTET_STRING_dup(issuer_key_id);
    if (authority->keyid == nullptr) {
        return openssl_failure("cannot copy the issuer key identifier");
    }
    return add_extension(cert, NID_authority_key_identifier, authority.get(), false,
                         "authorityKeyIdentifier");
}

Result<void> sign_sha256(X509* cert, EVP_PKEY* signing_key) {
    if (X509_sign(cert, signing_key, EVP_sha256()) <= 0) {
        return openssl_failure("cannot sign the certificate");
    }
    return {};
}

}  // namespace tlsgate::pki::detail
