#include "tls/contexts.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/ip.hpp"
#include "tls/aia.hpp"

namespace tlsgate::tls {
namespace {

// Names in SAN entries only (no subject CN fallback), and a wildcard only as a whole label.
constexpr unsigned int kNameCheckFlags =
    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;

// TLS 1.2 suites: ECDHE key exchange with AEAD only. TLS 1.3 suites are all AEAD.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";

// The system store, without SSL_CTX_set_default_verify_paths: in OpenSSL 3.0 that also adds an
// OSSL_STORE lookup on the certificate directory, which lists the whole directory for every
// issuer lookup of every full handshake (seen as getdents in profiles). The bundle file is loaded
// into memory once; the hashed directory stays as a fallback for roots only present as files.
Result<void> load_system_trust(X509_STORE* store) {
    const char* file = std::getenv(X509_get_default_cert_file_env());
    if (file == nullptr || *file == '\0') {
        file = X509_get_default_cert_file();
    }
    const char* directory = std::getenv(X509_get_default_cert_dir_env());
    if (directory == nullptr || *directory == '\0') {
        directory = X509_get_default_cert_dir();
    }
    bool loaded_any = false;
    if (access(file, R_OK) == 0) {
        if (X509_STORE_load_file(store, file) != 1) {
            return make_error(std::string("cannot load the system trust bundle ") + file + ": " +
                              pki::last_openssl_error());
        }
        loaded_any = true;
    }
    if (X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir());
        lookup != nullptr && X509_LOOKUP_add_dir(lookup, directory, X509_FILETYPE_PEM) == 1) {
        loaded_any = true;
    }
    ERR_clear_error();
    if (!loaded_any) {
        return make_error("no system trust store found (neither " + std::string(file) + " nor " +
                          directory + ")");
    }
    return {};
}

int intermediate_cache_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// OpenSSL's own verification, with the worker's fetched intermediates added to what the server
// sent: they are untrusted hints, so the chain must still end at a trusted root.
int verify_with_fetched_intermediates(X509_STORE_CTX* store_ctx, void*) {
    const auto* ssl = static_cast<const SSL*>(
        X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
    const auto* cache = ssl == nullptr ? nullptr
                                       : static_cast<const IntermediateCache*>(
                                             SSL_get_ex_data(ssl, intermediate_cache_index()));
    STACK_OF(X509)* presented = X509_STORE_CTX_get0_untrusted(store_ctx);
    if (cache == nullptr || cache->empty() || presented == nullptr) {
        return X509_verify_cert(store_ctx);
    }
    // A shallow copy: the certificates stay owned by the handshake and the cache.
    std::unique_ptr<STACK_OF(X509), void (*)(STACK_OF(X509)*)> hints(
        sk_X509_dup(presented), [](STACK_OF(X509) * stack) { sk_X509_free(stack); });
    if (!hints || cache->add_issuers(hints.get(), IntermediateCache::Clock::now()) == 0) {
        return X509_verify_cert(store_ctx);
    }
    X509_STORE_CTX_set0_untrusted(store_ctx, hints.get());
    const int verified = X509_verify_cert(store_ctx);
    X509_STORE_CTX_set0_untrusted(store_ctx, presented);
    return verified;
}

int mirrored_alpn_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

Result<void> apply_common_settings(SSL_CTX* context) {
    if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(context, kTls12Ciphers) != 1 ||
        SSL_CTX_set1_groups_list(context, kGroups) != 1) {
        return make_error("TLS context setup: " + pki::last_openssl_error());
    }
    SSL_CTX_set_security_level(context, 2);
    SSL_CTX_set_options(
        context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Partial writes let the relay forward what fits; OpenSSL's buffers are freed while a
    // connection is idle, which keeps thousands of idle connections cheap.
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
    return {};
}

int select_mirrored_alpn(SSL* ssl, const unsigned char** out, unsigned char* out_length,
                         const unsigned char* offered, unsigned int offered_length, void*) {
    const auto* protocol =
        static_cast<const std::string*>(SSL_get_ex_data(ssl, mirrored_alpn_index()));
    if (protocol == nullptr || protocol->empty()) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    // Point into the client's own offer, which outlives the callback.
    for (unsigned int at = 0; at < offered_length;) {
        const unsigned int length = offered[at];
        if (at + 1 + length > offered_length) {
            break;
        }
        if (length == protocol->size() &&
            std::memcmp(offered + at + 1, protocol->data(), length) == 0) {
            *out = offered + at + 1;
            *out_length = static_cast<unsigned char>(length);
            return SSL_TLSEXT_ERR_OK;
        }
        at += 1 + length;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

Result<pki::SslCtxPtr> make_upstream_context(const UpstreamTrust& trust) {
    pki::SslCtxPtr context(SSL_CTX_new(TLS_client_method()));
    if (!context) {
        return make_error("SSL_CTX_new: " + pki::last_openssl_error());
    }
    if (auto applied = apply_common_settings(context.get()); !applied) {
        return make_error(applied.error());
    }
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(context.get(), verify_with_fetched_intermediates, nullptr);
    if (trust.use_system_store) {
        if (auto loaded = load_system_trust(SSL_CTX_get_cert_store(context.get())); !loaded) {
            return make_error(loaded.error());
        }
    }
    for (const auto& file : trust.extra_ca_files) {
        if (SSL_CTX_load_verify_locations(context.get(), file.c_str(), nullptr) != 1) {
            return make_error("cannot load upstream CA bundle " + file + ": " +
                              pki::last_openssl_error());
        }
    }
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(context.get());
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
    // Ask for a stapled OCSP response, as browsers do: one that says revoked is refused.
    SSL_CTX_set_tlsext_status_type(context.get(), TLSEXT_STATUSTYPE_ocsp);
    // Sessions are resumed by the caller's own per-worker cache, never shared across threads.
    SSL_CTX_set_session_cache_mode(context.get(), SSL_SESS_CACHE_OFF);
    return context;
}

Result<pki::SslCtxPtr> make_client_facing_context() {
    pki::SslCtxPtr context(SSL_CTX_new(TLS_server_method()));
    if (!context) {
        return make_error("SSL_CTX_new: " + pki::last_openssl_error());
    }
    if (auto applied = apply_common_settings(context.get()); !applied) {
        return make_error(applied.error());
    }
    SSL_CTX_set_alpn_select_cb(context.get(), select_mirrored_alpn, nullptr);
    // Stateless tickets resume without a shared, locked session cache.
    SSL_CTX_set_session_cache_mode(context.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(context.get(), 1);
    return context;
}

bool certificate_carries_name(X509* cert, std::string_view verify_name) {
    const std::string name(verify_name);
    if (cert == nullptr || name.empty()) {
        return false;
    }
    if (IpAddress::parse(name)) {
        return X509_check_ip_asc(cert, name.c_str(), 0) == 1;
    }
    return X509_check_host(cert, name.c_str(), name.size(), kNameCheckFlags, nullptr) == 1;
}

Result<void> configure_upstream_ssl(SSL* ssl, std::string_view sni, std::string_view verify_name,
                                    const std::vector<std::string>& alpn_offer) {
    const std::string name(verify_name);
    const bool name_is_ip = IpAddress::parse(name).has_value();
    if (!sni.empty() && !IpAddress::parse(sni)) {
        const std::string sni_text(sni);
        if (SSL_set_tlsext_host_name(ssl, sni_text.c_str()) != 1) {
            return make_error("cannot set SNI: " + pki::last_openssl_error());
        }
    }
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, kNameCheckFlags);
    // An empty name verifies the chain only: the caller mirrors the names and the client checks
    // them.
    if (!name.empty()) {
        const int set = name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                                   : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
        if (set != 1) {
            return make_error("cannot set the verification name: " + pki::last_openssl_error());
        }
    }
    if (!alpn_offer.empty()) {
        std::vector<unsigned char> wire;
        for (const auto& protocol : alpn_offer) {
            wire.push_back(static_cast<unsigned char>(protocol.size()));
            wire.insert(wire.end(), protocol.begin(), protocol.end());
        }
        // Unusually, 0 means success here.
        if (SSL_set_alpn_protos(ssl, wire.data(), static_cast<unsigned int>(wire.size())) != 0) {
            return make_error("cannot set ALPN: " + pki::last_openssl_error());
        }
    }
    return {};
}

void use_intermediate_cache(SSL* ssl, const IntermediateCache* cache) {
    SSL_set_ex_data(ssl, intermediate_cache_index(), const_cast<IntermediateCache*>(cache));
}

void set_mirrored_alpn(SSL* ssl, const std::string* protocol) {
    SSL_set_ex_data(ssl, mirrored_alpn_index(), const_cast<std::string*>(protocol));
}

std::vector<std::string> relayable_alpn(const std::vector<std::string>& client_offer) {
    std::vector<std::string> relayable;
    for (const auto& protocol : client_offer) {
        if (protocol == "h2" || protocol == "http/1.1") {
            relayable.push_back(protocol);
        }
    }
    return relayable;
}

VerifyFailure classify_verify_result(long verify_result) {
    std::string detail = X509_verify_cert_error_string(verify_result);
    switch (verify_result) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CRL_HAS_EXPIRED:
            return {"expired", detail};
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return {"not_yet_valid", detail};
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
            return {"self_signed", detail};
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return {"untrusted_root", detail};
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            return {"wrong_host", detail};
        case X509_V_ERR_EE_KEY_TOO_SMALL:
        case X509_V_ERR_CA_KEY_TOO_SMALL:
            return {"weak_key", detail};
        case X509_V_ERR_CA_MD_TOO_WEAK:
            return {"weak_signature", detail};
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
        case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
            return {"bad_signature", detail};
        case X509_V_ERR_INVALID_CA:  // CA:FALSE, no basicConstraints, or an X.509v1 intermediate
            return {"not_a_ca", detail};
        case X509_V_ERR_PERMITTED_VIOLATION:
        case X509_V_ERR_EXCLUDED_VIOLATION:
        case X509_V_ERR_SUBTREE_MINMAX:
        case X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE:
        case X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX:
        case X509_V_ERR_UNSUPPORTED_NAME_SYNTAX:
            return {"name_constraints", detail};
        case X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION:
            return {"unknown_critical_extension", detail};
        case X509_V_ERR_INVALID_PURPOSE:
        case X509_V_ERR_PATH_LENGTH_EXCEEDED:
            return {"invalid_chain", detail};
        default:
            return {"other", detail};
    }
}

std::string version_name(const SSL* ssl) {
    return SSL_get_version(ssl);
}

std::string selected_alpn(const SSL* ssl) {
    const unsigned char* data = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl, &data, &length);
    return data == nullptr ? std::string()
                           : std::string(reinterpret_cast<const char*>(data), length);
}

}  // namespace tlsgate::tls
