// What a leaf costs, cold and cached: minting with an EC and an RSA-3072 CA, deriving the
// properties from an upstream certificate, the whole cold path (key + properties + mint), and a
// hit in a warm per-worker cache of 1,000 leaves.
#include <benchmark/benchmark.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "pki/ca.hpp"
#include "pki/mint.hpp"

namespace tlsgate::pki {
namespace {

const CertificateAuthority& bench_ca(KeyType key_type) {
    static const CertificateAuthority ec_ca = [] {
        auto ca = create_ca("CN=bench EC CA", KeyType::ec_p256);
        if (!ca)
            std::abort();
        return std::move(*ca);
    }();
    static const CertificateAuthority rsa_ca = [] {
        auto ca = create_ca("CN=bench RSA CA", KeyType::rsa_3072);
        if (!ca)
            std::abort();
        return std::move(*ca);
    }();
    return key_type == KeyType::ec_p256 ? ec_ca : rsa_ca;
}

// A typical server certificate: a CN, a handful of DNS names and one address.
X509Ptr make_upstream() {
    auto key = generate_leaf_key();
    if (!key)
        std::abort();
    X509Ptr cert(X509_new());
    const std::time_t now = std::time(nullptr);
    X509_set_version(cert.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    ASN1_TIME_set(X509_getm_notBefore(cert.get()), now - 86400);
    ASN1_TIME_set(X509_getm_notAfter(cert.get()), now + 90 * 86400);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("www.example.com"), -1, -1,
                               0);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    X509_set_pubkey(cert.get(), key->get());
    X509_EXTENSION* alt_names = X509V3_EXT_conf_nid(
        nullptr, nullptr, NID_subject_alt_name,
        "DNS:www.example.com,DNS:example.com,DNS:*.static.example.com,DNS:api.example.com,"
        "IP:192.0.2.1");
    X509_add_ext(cert.get(), alt_names, -1);
    X509_EXTENSION_free(alt_names);
    X509_sign(cert.get(), key->get(), EVP_sha256());
    return cert;
}

CertProperties typical_properties() {
    X509Ptr upstream = make_upstream();
    auto properties =
        mirror_properties(upstream.get(), "www.example.com", std::time(nullptr), random_serial());
    if (!properties)
        std::abort();
    return *properties;
}

void mint(benchmark::State& state, KeyType ca_key_type) {
    const CertificateAuthority& ca = bench_ca(ca_key_type);
    CertProperties properties = typical_properties();
    auto leaf_key = generate_leaf_key();
    if (!leaf_key)
        std::abort();
    for (auto _ : state) {
        properties.serial = random_serial();
        auto leaf = mint_leaf(properties, leaf_key->get(), ca);
        if (!leaf) {
            state.SkipWithError(leaf.error().c_str());
            break;
        }
        benchmark::DoNotOptimize(leaf->get());
    }
    state.counters["certs/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_MintLeafEcCa(benchmark::State& state) {
    mint(state, KeyType::ec_p256);
}
void BM_MintLeafRsa3072Ca(benchmark::State& state) {
    mint(state, KeyType::rsa_3072);
}

void BM_MirrorProperties(benchmark::State& state) {
    X509Ptr upstream = make_upstream();
    const std::time_t now = std::time(nullptr);
    const auto serial = random_serial();
    for (auto _ : state) {
        auto properties = mirror_properties(upstream.get(), "www.example.com", now, serial);
        benchmark::DoNotOptimize(properties);
    }
    state.counters["mirrors/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// A leaf-cache miss as a worker takes it: properties from upstream, serial, mint (EC CA) for the
// worker's leaf key, which lives as long as the worker.
void BM_ColdLeafEcCa(benchmark::State& state) {
    const CertificateAuthority& ca = bench_ca(KeyType::ec_p256);
    X509Ptr upstream = make_upstream();
    auto leaf_key = generate_leaf_key();
    if (!leaf_key) {
        state.SkipWithError("setup failed");
        return;
    }
    for (auto _ : state) {
        auto properties = mirror_properties(upstream.get(), "www.example.com", std::time(nullptr),
                                            random_serial());
        if (!properties) {
            state.SkipWithError("setup failed");
            break;
        }
        auto leaf = mint_leaf(*properties, leaf_key->get(), ca);
        benchmark::DoNotOptimize(leaf);
    }
    state.counters["certs/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// A cache hit: the key is a hex SHA-256 fingerprint, as the TLS stage uses.
void BM_CachedLookup(benchmark::State& state) {
    constexpr std::size_t kEntries = 1000;
    LeafCache cache(kEntries);
    X509Ptr leaf = make_upstream();
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < kEntries; ++i) {
        std::string key = sha256_fingerprint_hex(leaf.get());
        key.replace(0, std::to_string(i).size(), std::to_string(i));
        keys.push_back(key);
        cache.insert(key, leaf.get());
    }
    std::size_t next = 0;
    for (auto _ : state) {
        X509Ptr found = cache.find(keys[next]);
        benchmark::DoNotOptimize(found.get());
        next = (next + 7) % kEntries;  // hop around so recency updates move entries
    }
    state.counters["lookups/s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_MintLeafEcCa)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MintLeafRsa3072Ca)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MirrorProperties)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ColdLeafEcCa)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CachedLookup)->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace tlsgate::pki

BENCHMARK_MAIN();
