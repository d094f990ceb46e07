#include "tls/upstream_checks.hpp"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include <memory>

#include "pki/ca.hpp"

namespace tlsgate::tls {
namespace {

using OcspResponsePtr = std::unique_ptr<OCSP_RESPONSE, pki::OpenSslDeleter<OCSP_RESPONSE_free>>;
using OcspBasicPtr = std::unique_ptr<OCSP_BASICRESP, pki::OpenSslDeleter<OCSP_BASICRESP_free>>;
using OcspCertIdPtr = std::unique_ptr<OCSP_CERTID, pki::OpenSslDeleter<OCSP_CERTID_free>>;

}  // namespace

StapledStatus stapled_status(SSL* ssl) {
    const unsigned char* data = nullptr;
    const long length = SSL_get_tlsext_status_ocsp_resp(ssl, &data);
    if (length <= 0 || data == nullptr) {
        return StapledStatus::none;
    }
    OcspResponsePtr response(d2i_OCSP_RESPONSE(nullptr, &data, length));
    if (!response || OCSP_response_status(response.get()) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        return StapledStatus::unusable;
    }
    OcspBasicPtr basic(OCSP_response_get1_basic(response.get()));
    STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
    if (!basic || chain == nullptr || sk_X509_num(chain) < 2) {
        return StapledStatus::unusable;
    }
    // Signed by the issuer itself or by a responder the issuer delegated to (OCSPSigning EKU),
    // and that responder chains to the same trust store the handshake used.
    X509_STORE* store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
    if (OCSP_basic_verify(basic.get(), chain, store, 0) != 1) {
        ERR_clear_error();
        return StapledStatus::unusable;
    }
    OcspCertIdPtr id(OCSP_cert_to_id(nullptr, sk_X509_value(chain, 0), sk_X509_value(chain, 1)));
    int status = V_OCSP_CERTSTATUS_UNKNOWN;
    int reason = 0;
    ASN1_GENERALIZEDTIME* revoked_at = nullptr;
    ASN1_GENERALIZEDTIME* this_update = nullptr;
    ASN1_GENERALIZEDTIME* next_update = nullptr;
    if (!id || OCSP_resp_find_status(basic.get(), id.get(), &status, &reason, &revoked_at,
                                     &this_update, &next_update) != 1) {
        return StapledStatus::unusable;
    }
    if (status == V_OCSP_CERTSTATUS_REVOKED) {
        return StapledStatus::revoked;  // revocation is for good: no freshness window applies
    }
    // A stale "good" proves nothing (five minutes of clock skew allowed, as OpenSSL suggests).
    if (OCSP_check_validity(this_update, next_update, 300, -1) != 1) {
        ERR_clear_error();
        return StapledStatus::unusable;
    }
    return status == V_OCSP_CERTSTATUS_GOOD ? StapledStatus::good : StapledStatus::unknown;
}

std::optional<VerifyFailure> check_verified_chain(SSL* ssl, const ChainChecks& checks) {
    STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl);
    if (chain == nullptr || sk_X509_num(chain) == 0) {
        return VerifyFailure{"invalid_chain", "no verified chain"};
    }
    const int depth = sk_X509_num(chain);
    if (pki::spki_sha256_hex(sk_X509_value(chain, depth - 1)) == checks.own_ca_spki_sha256) {
        return VerifyFailure{"own_ca", "the chain ends at tlsgate's own CA"};
    }
    for (int i = 0; i < depth; ++i) {
        const auto spki = pki::spki_sha256_hex(sk_X509_value(chain, i));
        if (const pki::KnownRoot* root = checks.interception_roots.find(spki)) {
            return VerifyFailure{
                "known_interception_root",
                "the chain contains a key known to be used for interception: " + root->name};
        }
    }
    if (stapled_status(ssl) == StapledStatus::revoked) {
        return VerifyFailure{"revoked",
                             "the stapled OCSP response says the certificate is revoked"};
    }
    return std::nullopt;
}

}  // namespace tlsgate::tls
