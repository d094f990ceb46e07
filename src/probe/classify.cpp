#include "probe/classify.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <utility>

#include "pki/ca.hpp"
#include "tls/contexts.hpp"

namespace tlsgate::probe {
namespace {

using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, pki::OpenSslDeleter<X509_STORE_CTX_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, pki::OpenSslDeleter<GENERAL_NAMES_free>>;

struct X509StackDeleter {
    // The stack only borrows the certificates (they are owned by the caller's vector).
    void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

// The verify callback records every error and lets verification go on, so one pass yields the
// whole picture (an untrusted root AND an expired leaf AND a wrong name) and the chain OpenSSL
// built as far as it could.
int verify_log_index() {
    static const int index = X509_STORE_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

struct VerifyLog {
    std::vector<int> errors;  // X509_V_ERR_* in the order first seen
    std::string first_detail;
};

int record_and_continue(int ok, X509_STORE_CTX* context) {
    if (ok == 0) {
        auto* log =
            static_cast<VerifyLog*>(X509_STORE_CTX_get_ex_data(context, verify_log_index()));
        const int error = X509_STORE_CTX_get_error(context);
        if (log != nullptr &&
            std::find(log->errors.begin(), log->errors.end(), error) == log->errors.end()) {
            if (log->errors.empty()) {
                log->first_detail = X509_verify_cert_error_string(error);
            }
            log->errors.push_back(error);
        }
    }
    return 1;
}

bool is_untrusted_root_error(int error) {
    switch (error) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_CERT_UNTRUSTED:
        case X509_V_ERR_CERT_REJECTED:
            return true;
        default:
            return false;
    }
}

std::vector<std::string> dns_names(X509* cert) {
    std::vector<std::string> names;
    GeneralNamesPtr sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    if (!sans) {
        return names;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans.get(), i);
        if (name->type == GEN_DNS) {
            const ASN1_STRING* text = name->d.dNSName;
            names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                               static_cast<std::size_t>(ASN1_STRING_length(text)));
        }
    }
    return names;
}

CertificateInfo describe(X509* cert) {
    const auto summary = pki::summarize(cert);
    return {summary.subject,     summary.issuer,     pki::sha256_fingerprint_hex(cert),
            summary.spki_sha256, summary.not_before, summary.not_after,
            dns_names(cert)};
}

std::string common_name(const X509_NAME* name) {
    const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (index < 0) {
        return {};
    }
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, data);
    if (length < 0) {
        ERR_clear_error();
        return {};
    }
    std::string text(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
    OPENSSL_free(utf8);
    return text;
}

std::string one_line(const X509_NAME* name) {
    // The same format as pki::summarize (RFC 2253, UTF-8 kept readable), for a bare name.
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio == nullptr) {
        return {};
    }
    std::string text;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        char* data = nullptr;
        const long length = BIO_get_mem_data(bio, &data);
        text.assign(data, static_cast<std::size_t>(length));
    }
    BIO_free(bio);
    ERR_clear_error();
    return text;
}

// tlsgate's minted certificates are always issued by a CA named "tlsgate CA ..." (the README's
// "never hidden" promise), so any tlsgate is recognised even without its CA certificate.
bool names_tlsgate_ca(const X509_NAME* name) {
    return common_name(name).rfind("tlsgate CA", 0) == 0;
}

// The certificate that signed `top`, among the known roots we hold (the local tlsgate CA).
X509* find_known_issuer(X509* top, const KnownRoots& known) {
    for (const auto& candidate : known.certificates()) {
        if (X509_check_issued(candidate.get(), top) == X509_V_OK) {
            EVP_PKEY* key = X509_get0_pubkey(candidate.get());
            if (key != nullptr && X509_verify(top, key) == 1) {
                return candidate.get();
            }
        }
    }
    ERR_clear_error();
    return nullptr;
}

std::string root_words(const RootInfo& root) {
    if (root.source == "not presented") {
        return "issuer \"" + root.subject + "\" (root not presented)";
    }
    return "\"" + root.subject + "\"";
}

}  // namespace

std::string_view status_name(Status status) {
    switch (status) {
        case Status::clean:
            return "clean";
        case Status::intercepted:
            return "intercepted";
        case Status::invalid:
            return "invalid";
        case Status::blocked:
            return "blocked";
        case Status::no_tls:
            return "no-tls";
        case Status::error:
            return "error";
    }
    return "error";
}

std::string alert_name(int description) {
    static constexpr std::pair<int, const char*> kNames[] = {
        {0, "close_notify"},
        {10, "unexpected_message"},
        {20, "bad_record_mac"},
        {22, "record_overflow"},
        {40, "handshake_failure"},
        {42, "bad_certificate"},
        {43, "unsupported_certificate"},
        {44, "certificate_revoked"},
        {45, "certificate_expired"},
        {46, "certificate_unknown"},
        {47, "illegal_parameter"},
        {48, "unknown_ca"},
        {49, "access_denied"},
        {50, "decode_error"},
        {51, "decrypt_error"},
        {70, "protocol_version"},
        {71, "insufficient_security"},
        {80, "internal_error"},
        {86, "inappropriate_fallback"},
        {90, "user_canceled"},
        {100, "no_renegotiation"},
        {109, "missing_extension"},
        {110, "unsupported_extension"},
        {112, "unrecognized_name"},
        {113, "bad_certificate_status_response"},
        {115, "unknown_psk_identity"},
        {116, "certificate_required"},
        {120, "no_application_protocol"},
    };
    for (const auto& [code, name] : kNames) {
        if (code == description) {
            return name;
        }
    }
    return "alert_" + std::to_string(description);
}

Result<X509StorePtr> load_trust_store(bool use_system_store,
                                      const std::vector<std::string>& files) {
    X509StorePtr store(X509_STORE_new());
    if (!store) {
        return make_error("X509_STORE_new: " + pki::last_openssl_error());
    }
    if (use_system_store && X509_STORE_set_default_paths(store.get()) != 1) {
        return make_error("cannot load the system trust store: " + pki::last_openssl_error());
    }
    for (const auto& file : files) {
        if (X509_STORE_load_file(store.get(), file.c_str()) != 1) {
            return make_error("cannot load trust bundle " + file + ": " +
                              pki::last_openssl_error());
        }
    }
    return store;
}

ChainAssessment assess_chain(const std::vector<std::string>& chain_der, const Target& target,
                             const TrustContext& trust) {
    ChainAssessment assessment;
    std::vector<pki::X509Ptr> presented;
    for (const auto& der : chain_der) {
        const auto* data = reinterpret_cast<const unsigned char*>(der.data());
        pki::X509Ptr cert(d2i_X509(nullptr, &data, static_cast<long>(der.size())));
        if (!cert) {
            ERR_clear_error();
            assessment.verify_errors.push_back("invalid_chain");
            assessment.verify_detail = "a presented certificate does not parse";
            return assessment;
        }
        assessment.chain.push_back(describe(cert.get()));
        presented.push_back(std::move(cert));
    }
    if (presented.empty()) {
        assessment.verify_errors.push_back("other");
        assessment.verify_detail = "no certificate presented";
        return assessment;
    }
    assessment.leaf = assessment.chain.front();

    X509StackPtr untrusted(sk_X509_new_null());
    for (std::size_t i = 1; i < presented.size(); ++i) {
        sk_X509_push(untrusted.get(), presented[i].get());
    }
    StoreCtxPtr context(X509_STORE_CTX_new());
    VerifyLog log;
    if (!context || !untrusted ||
        X509_STORE_CTX_init(context.get(), trust.store.get(), presented.front().get(),
                            untrusted.get()) != 1) {
        assessment.verify_errors.push_back("other");
        assessment.verify_detail = "cannot set up verification: " + pki::last_openssl_error();
        return assessment;
    }
    X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_SSL_SERVER);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(context.get());
    // As strict as the gateway's own upstream check (src/tls/contexts.cpp): names from SAN only,
    // no partial wildcards, security level 2, RFC 5280 strictness.
    X509_VERIFY_PARAM_set_hostflags(
        param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (target.is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, target.host.c_str());
    } else {
        X509_VERIFY_PARAM_set1_host(param, target.host.c_str(), target.host.size());
    }
    X509_VERIFY_PARAM_set_auth_level(param, 2);
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
    if (trust.verify_time) {
        X509_VERIFY_PARAM_set_time(param, *trust.verify_time);
    }
    X509_STORE_CTX_set_ex_data(context.get(), verify_log_index(), &log);
    X509_STORE_CTX_set_verify_cb(context.get(), record_and_continue);
    const int verified = X509_verify_cert(context.get());
    ERR_clear_error();
    assessment.verified = verified == 1 && log.errors.empty();
    for (const int error : log.errors) {
        assessment.root_untrusted = assessment.root_untrusted || is_untrusted_root_error(error);
        assessment.self_signed_leaf =
            assessment.self_signed_leaf || error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
        auto code = tls::classify_verify_result(error).code;
        if (std::find(assessment.verify_errors.begin(), assessment.verify_errors.end(), code) ==
            assessment.verify_errors.end()) {
            assessment.verify_errors.push_back(std::move(code));
        }
    }
    assessment.verify_detail = log.first_detail;
    if (verified != 1 && log.errors.empty()) {
        assessment.verify_errors.push_back("other");
        assessment.verify_detail = "verification failed";
    }

    // The chain as OpenSSL built it (as far as it could), leaf first.
    std::vector<X509*> built;
    if (STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(context.get())) {
        for (int i = 0; i < sk_X509_num(chain); ++i) {
            built.push_back(sk_X509_value(chain, i));
        }
    }
    if (built.empty()) {
        built.push_back(presented.front().get());
    }
    X509* top = built.back();
    const auto was_presented = [&](X509* cert) {
        return std::any_of(presented.begin(), presented.end(),
                           [&](const pki::X509Ptr& p) { return X509_cmp(p.get(), cert) == 0; });
    };

    RootInfo root;
    X509* root_cert = nullptr;
    if (X509_self_signed(top, 0) == 1) {
        root_cert = top;
        root.in_trust_store = !assessment.root_untrusted && !assessment.self_signed_leaf;
        root.source = was_presented(top) ? "presented" : "trust store";
    } else if (X509* issuer = find_known_issuer(top, trust.known)) {
        root_cert = issuer;
        root.source = "known";
    } else {
        root.subject = one_line(X509_get_issuer_name(top));
        root.source = "not presented";
    }
    ERR_clear_error();
    if (root_cert != nullptr) {
        root.subject = one_line(X509_get_subject_name(root_cert));
        root.spki_sha256 = pki::spki_sha256_hex(root_cert);
    }
    assessment.root = root;

    // A known interception key anywhere in the path counts, root first: browsers match the
    // whole verified chain, and an interceptor's intermediate may be listed too.
    std::vector<X509*> candidates;
    if (root_cert != nullptr) {
        candidates.push_back(root_cert);
    }
    candidates.insert(candidates.end(), built.rbegin(), built.rend());
    for (const auto& cert : presented) {
        candidates.push_back(cert.get());
    }
    for (X509* cert : candidates) {
        const auto spki = pki::spki_sha256_hex(cert);
        if (const KnownRoot* match = trust.known.find(spki)) {
            assessment.known_root = KnownRootMatch{match->name, spki, match->source,
                                                   one_line(X509_get_subject_name(cert))};
            return assessment;
        }
    }
    for (X509* cert : built) {
        if (names_tlsgate_ca(X509_get_issuer_name(cert))) {
            const auto issuer = one_line(X509_get_issuer_name(cert));
            assessment.known_root =
                KnownRootMatch{"tlsgate (" + issuer + ")", {}, "issuer name", issuer};
            break;
        }
    }
    return assessment;
}

ProbeResult classify(const Target& target, Observation observation, const TrustContext& trust,
                     const ControlBaseline* control) {
    ProbeResult result;
    result.target = target;
    const bool control_completed = control != nullptr && control->handshake_done;
    const std::string control_note =
        control_completed && control->same_destination
            ? " (the control " + control->target + " completed a handshake at the same address)"
            : "";
    const Observation& seen = observation;
    switch (seen.outcome) {
        case Outcome::handshake_done:
            break;
        case Outcome::resolve_failed:
            result.status = Status::error;
            result.reason = "cannot resolve " + target.host + ": " + seen.detail;
            break;
        case Outcome::connect_failed:
            result.status = Status::error;
            result.reason = "cannot connect to " + seen.peer_address + ": " + seen.detail;
            break;
        case Outcome::proxy_refused:
            // 403 and 451 are a policy saying no; anything else (502, 504, 407) is the proxy
            // failing or needing something, which says nothing about interception.
            result.status = seen.proxy_status == 403 || seen.proxy_status == 451 ? Status::blocked
                                                                                 : Status::error;
            result.reason = "the proxy answered CONNECT with \"" + seen.detail + "\"";
            break;
        case Outcome::proxy_failed:
            result.status = Status::error;
            result.reason = "proxy " + seen.peer_address + ": " + seen.detail;
            break;
        case Outcome::reset:
            result.status = Status::blocked;
            result.reason = "connection reset after the ClientHello" + control_note;
            break;
        case Outcome::closed:
            result.status = Status::blocked;
            result.reason = "connection closed after the ClientHello" + control_note;
            break;
        case Outcome::timeout:
            result.status = Status::blocked;
            result.reason = (seen.server_answered ? "the handshake did not complete in time"
                                                  : "no answer to the ClientHello in time") +
                            control_note;
            break;
        case Outcome::alert:
            result.status = Status::blocked;
            result.reason = "TLS alert " + alert_name(seen.alert) +
                            " in answer to the ClientHello" + control_note;
            break;
        case Outcome::not_tls:
            result.status = Status::no_tls;
            result.reason = "the server answered with non-TLS bytes: " + seen.detail;
            break;
        case Outcome::tls_error:
            result.status = Status::error;
            result.reason = "TLS handshake failed: " + seen.detail;
            break;
    }
    if (seen.outcome != Outcome::handshake_done) {
        result.observation = std::move(observation);
        return result;
    }

    ChainAssessment chain = assess_chain(seen.chain_der, target, trust);
    std::optional<ControlComparison> comparison;
    if (control_completed) {
        ControlComparison compared;
        compared.same_destination = control->same_destination;
        const std::string leaf_sha256 = chain.leaf ? chain.leaf->sha256 : std::string();
        if (leaf_sha256 != control->leaf_sha256) {
            compared.fields.push_back("certificate");
        }
        if (seen.tls_version != control->tls_version) {
            compared.fields.push_back("version");
        }
        if (seen.cipher != control->cipher) {
            compared.fields.push_back("cipher");
        }
        compared.differs = !compared.fields.empty();
        comparison = compared;
    }
    const bool certificate_differs =
        comparison && !comparison->fields.empty() && comparison->fields.front() == "certificate";
    // Without a control every probed name is presumed public (that is what a user checks). A
    // control judged invalid for a chain outside the trust store says this server does not use
    // public certificates; one that is merely expired or for another name still does.
    const bool expect_public =
        control == nullptr || control->status != Status::invalid || !control->chain_untrusted;
    const std::string root_text = chain.root ? root_words(*chain.root) : "an unknown root";

    if (chain.known_root) {
        result.status = Status::intercepted;
        result.reason = "known interception root: " + chain.known_root->name;
    } else if (chain.verified) {
        result.status = Status::clean;
        result.reason = "chains to " + root_text + " in the trust store; the name matches";
    } else if (chain.root_untrusted && expect_public) {
        result.status = Status::intercepted;
        result.reason = "chain ends at " + root_text + ", which is not in the trust store";
        if (control != nullptr) {
            result.reason += "; the control " + control->target + " is " +
                             std::string(status_name(control->status));
        }
    } else if ((chain.root_untrusted || chain.self_signed_leaf) && certificate_differs &&
               comparison->same_destination) {
        result.status = Status::intercepted;
        result.reason = "a certificate different from the control's (" + control->target +
                        ") that does not chain to the trust store";
    } else {
        result.status = Status::invalid;
        const std::string code =
            chain.verify_errors.empty() ? std::string("other") : chain.verify_errors.front();
        result.reason = code + ": " + chain.verify_detail;
        if (chain.root_untrusted && control != nullptr) {
            result.reason +=
                " (the control " + control->target + " does not chain to the trust store either)";
        }
    }
    if (comparison) {
        comparison->triggered = certificate_differs && comparison->same_destination &&
                                result.status == Status::intercepted;
    }
    result.chain = std::move(chain);
    result.comparison = std::move(comparison);
    result.observation = std::move(observation);
    return result;
}

ControlBaseline make_baseline(const ProbeResult& control, bool same_destination) {
    ControlBaseline baseline;
    baseline.target = control.target.text();
    baseline.status = control.status;
    baseline.handshake_done = control.observation.outcome == Outcome::handshake_done;
    baseline.leaf_sha256 = control.chain.leaf ? control.chain.leaf->sha256 : std::string();
    baseline.tls_version = control.observation.tls_version;
    baseline.cipher = control.observation.cipher;
    baseline.chain_untrusted = control.chain.root_untrusted || control.chain.self_signed_leaf;
    baseline.same_destination = same_destination;
    return baseline;
}

}  // namespace tlsgate::probe
