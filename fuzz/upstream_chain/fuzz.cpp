// Fuzz target for what the gateway does with the certificate chain an upstream server sends,
// after (and while) OpenSSL parses it: chain verification and the reason it is given, the
// summaries the record shows, the known-interception-root lookup, and the rule that mirrors an
// upstream leaf's names into a minted one, then the minting itself. The server is the attacker
// here: any DER must end in a verdict, never a crash.
//
// The input is a sequence of DER certificates (as in a TLS Certificate message, without the
// length prefixes); bytes that do not parse end the chain. The first certificate is the leaf;
// the last one is also put in the trust store, so chains get past "untrusted root" and reach the
// later checks.
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "common/text.hpp"
#include "pki/ca.hpp"
#include "pki/known_roots.hpp"
#include "pki/mint.hpp"
#include "tls/contexts.hpp"

namespace {

namespace pki = tlsgate::pki;
using StorePtr = std::unique_ptr<X509_STORE, pki::OpenSslDeleter<X509_STORE_free>>;
using StoreContextPtr = std::unique_ptr<X509_STORE_CTX, pki::OpenSslDeleter<X509_STORE_CTX_free>>;
struct FreeStackOnly {  // the certificates stay owned by the vector
    void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
using ChainPtr = std::unique_ptr<STACK_OF(X509), FreeStackOnly>;

constexpr std::size_t kMaxCertificates = 8;
constexpr std::time_t kNow = 1795000000;  // November 2026: a fixed clock keeps runs reproducible

struct Fixtures {
    pki::CertificateAuthority ca;
    pki::EvpPkeyPtr leaf_key;
    pki::KnownRoots known = pki::KnownRoots::with_builtins();
};

const Fixtures& fixtures() {
    static const Fixtures instance = [] {
        Fixtures f;
        auto ca = pki::create_ca("CN=fuzz CA", pki::KeyType::ec_p256);
        auto key = pki::generate_leaf_key();
        if (!ca || !key) {
            std::abort();
        }
        f.ca = std::move(*ca);
        f.leaf_key = std::move(*key);
        return f;
    }();
    return instance;
}

void summarize_and_look_up(X509* cert, const Fixtures& f) {
    const auto summary = pki::summarize(cert);
    if (summary.spki_sha256.size() != 64 && !summary.spki_sha256.empty()) {
        std::abort();
    }
    (void)pki::one_line_name(X509_get_subject_name(cert));
    (void)f.known.find(pki::spki_sha256_hex(cert));
}

void verify(const std::vector<pki::X509Ptr>& certificates) {
    StorePtr store(X509_STORE_new());
    ChainPtr untrusted(sk_X509_new_null());
    if (!store || !untrusted) {
        return;
    }
    X509_STORE_add_cert(store.get(), certificates.back().get());
    for (std::size_t i = 1; i < certificates.size(); ++i) {
        sk_X509_push(untrusted.get(), certificates[i].get());  // the stack does not own them
    }
    StoreContextPtr context(X509_STORE_CTX_new());
    if (!context || X509_STORE_CTX_init(context.get(), store.get(), certificates.front().get(),
                                        untrusted.get()) != 1) {
        return;
    }
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(context.get());
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT | X509_V_FLAG_USE_CHECK_TIME);
    X509_VERIFY_PARAM_set_time(param, kNow);
    X509_VERIFY_PARAM_set1_host(param, "fuzz.example", 0);
    const int verified = X509_verify_cert(context.get());
    const long result = X509_STORE_CTX_get_error(context.get());
    const auto failure = tlsgate::tls::classify_verify_result(result);
    if (verified == 1 ? result != X509_V_OK : failure.code.empty()) {
        std::abort();
    }
}

void mirror_and_mint(X509* leaf, const Fixtures& f) {
    const std::array<std::uint8_t, 16> serial{0x42};
    auto properties = pki::mirror_properties(leaf, "fuzz.example", kNow, serial);
    if (!properties) {
        return;
    }
    // The mirrored window never outlasts the cap, and the requested name is always there
    // (host names compare without case: upstream's "Fuzz.Example" already covers it).
    if (properties->not_after < properties->not_before ||
        properties->not_after - properties->not_before > pki::kMaxLeafValiditySeconds + 3600) {
        std::abort();
    }
    bool named = false;
    for (const auto& dns : properties->dns_names) {
        named = named || tlsgate::equals_ignoring_case(dns, "fuzz.example");
    }
    if (!named) {
        std::abort();
    }
    auto minted = pki::mint_leaf(*properties, f.leaf_key.get(), f.ca);
    if (minted && X509_check_host(minted->get(), "fuzz.example", 0, 0, nullptr) != 1) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const Fixtures& f = fixtures();
    std::vector<pki::X509Ptr> certificates;
    const unsigned char* cursor = data;
    const unsigned char* end = data + size;
    while (cursor < end && certificates.size() < kMaxCertificates) {
        const unsigned char* start = cursor;
        pki::X509Ptr cert(d2i_X509(nullptr, &cursor, end - cursor));
        if (!cert || cursor <= start) {
            break;
        }
        certificates.push_back(std::move(cert));
    }
    ERR_clear_error();
    if (certificates.empty()) {
        return 0;
    }
    for (const auto& cert : certificates) {
        summarize_and_look_up(cert.get(), f);
    }
    verify(certificates);
    mirror_and_mint(certificates.front().get(), f);
    ERR_clear_error();
    return 0;
}
