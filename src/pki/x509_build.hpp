#pragma once
// Internal to src/pki: the certificate-building steps the CA and the leaf share. Extensions are
// built as ASN.1 structures and encoded directly (no string config parsing), which keeps minting
// fast and free of shared mutable state.
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <memory>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"

namespace tlsgate::pki::detail {

using Asn1OctetStringPtr =
    std::unique_ptr<ASN1_OCTET_STRING, OpenSslDeleter<ASN1_OCTET_STRING_free>>;

// Sets the certificate's public key, leaving a decoded copy cached in the certificate (which
// SSL_use_certificate needs). Fast for EC keys, fastest for keys prepared below; see the .cpp for
// why X509_set_pubkey is not.
Result<void> set_public_key(X509* cert, EVP_PKEY* key);
// Attaches to `key` (EC or RSA) the legacy public-key copy that set_public_key would otherwise
// build for every certificate. For keys that sign many leaves; call before sharing `key` between
// threads. Keys without one still work, more slowly.
Result<void> prepare_public_key(EVP_PKEY* key);
// X.509 v3; the serial as a positive, non-zero integer (top bit cleared, zero bumped to one).
Result<void> set_version_and_serial(X509* cert, std::array<std::uint8_t, 16> serial);
Result<void> set_validity(X509* cert, std::time_t not_before, std::time_t not_after);
// Adds an extension from its ASN.1 structure (BASIC_CONSTRAINTS, GENERAL_NAMES, ...).
Result<void> add_extension(X509* cert, int nid, void* value, bool critical, const char* what);
Result<void> add_basic_constraints(X509* cert, bool is_ca, long path_length);
// keyUsage (always critical): bit numbers as in RFC 5280 (0 digitalSignature, 2 keyEncipherment,
// 5 keyCertSign, 6 cRLSign).
Result<void> add_key_usage(X509* cert, std::initializer_list<int> bits);
// RFC 5280 method 1: SHA-1 of the subjectPublicKey bits. The certificate's key must be set.
Result<Asn1OctetStringPtr> key_identifier(X509* cert);
Result<void> add_subject_key_id(X509* cert, const ASN1_OCTET_STRING* key_id);
Result<void> add_authority_key_id(X509* cert, const ASN1_OCTET_STRING* issuer_key_id);
Result<void> sign_sha256(X509* cert, EVP_PKEY* signing_key);

}  // namespace tlsgate::pki::detail
