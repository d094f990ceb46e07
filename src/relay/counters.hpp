#pragma once
// What each worker counts. Every decision branch has a counter; /metrics sums the workers'.
// A worker is the only writer of its counters, so an increment is a relaxed load and store (no
// locked instruction on the hot path); the metrics thread reads them with relaxed loads.
#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace tlsgate::relay {

class Counter {
public:
    Counter& operator++() {
        add(1);
        return *this;
    }
    Counter& operator--() {
        value_.store(value_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
        return *this;
    }
    void add(std::uint64_t amount) {
        value_.store(value_.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
    }
    std::uint64_t get() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

// Cumulative buckets are computed when exported; each bucket here counts its own range.
template <std::size_t N>
struct Histogram {
    static constexpr std::size_t kBuckets = N;
    std::array<Counter, N + 1> buckets;  // the last one is +Inf
    Counter count;
    Counter sum_micros;

    void observe(std::uint64_t micros, const std::array<std::uint64_t, N>& upper_bounds_micros) {
        std::size_t bucket = 0;
        while (bucket < N && micros > upper_bounds_micros[bucket])
            ++bucket;
        ++buckets[bucket];
        ++count;
        sum_micros.add(micros);
    }
};

// How a client turned our certificate down (the signs of a client that does not trust the CA or
// pins its server's key).
enum class ClientRejection : std::uint8_t {
    unknown_ca,
    bad_certificate,
    certificate_unknown,
    closed_after_certificate,
    other,
    count_
};
std::string_view to_string(ClientRejection reason);

// Upstream verification failures, by the reason the connection log records.
inline constexpr std::array<std::string_view, 16> kVerifyReasons = {"expired",
                                                                    "not_yet_valid",
                                                                    "self_signed",
                                                                    "untrusted_root",
                                                                    "wrong_host",
                                                                    "weak_key",
                                                                    "weak_signature",
                                                                    "bad_signature",
                                                                    "not_a_ca",
                                                                    "name_constraints",
                                                                    "unknown_critical_extension",
                                                                    "invalid_chain",
                                                                    "own_ca",
                                                                    "known_interception_root",
                                                                    "revoked",
                                                                    "other"};
std::size_t verify_reason_index(std::string_view code);

enum class ListenerKind : std::uint8_t {
    explicit_proxy,
    transparent,
    tproxy,
    socks5,
    portal,
    count_
};
enum class Outcome : std::uint8_t {
    intercept,
    passthrough,
    block,
    relay,
    http,
    portal,
    error,
    count_
};
std::string_view to_string(ListenerKind kind);
std::string_view to_string(Outcome outcome);

inline constexpr std::array<std::uint64_t, 10> kMintLatencyBoundsMicros = {
    50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000, 100000};

struct Counters {
    Counter accepted;
    Counter accept_failed;
    Counter refused_total_limit;
    Counter refused_client_limit;
    Counter intercept_decisions;
    Counter intercepted;  // both handshakes done: the plaintext relay started
    Counter passed_through;
    Counter blocked;
    Counter relayed_raw;
    Counter http_forwarded;
    Counter bad_request;
    Counter bad_client_hello;
    Counter bad_proxy_header;
    Counter client_hello_too_large;
    Counter upstream_connect_failed;
    Counter upstream_tls_failed;
    Counter upstream_verify_failed;
    Counter client_handshake_failed;
    // What clients saw of upstream certificates that failed verification (on_upstream_error).
    Counter upstream_errors_mirrored;
    Counter upstream_errors_blocked;
    Counter mirror_pages_served;  // explanation pages sent over a mirrored session
    Counter timeouts;
    Counter leaves_minted;
    Counter leaf_cache_hits;
    Counter leaf_cache_misses;
    Counter upstream_resumed;
    Counter aia_fetched;  // missing intermediates fetched from a caIssuers URL
    Counter aia_fetch_failed;
    Counter flows_recorded;
    Counter flows_dropped;
    Counter dissection_failed;
    Counter portal_requests;
    Counter open_connections;  // a gauge: connections this worker holds now
    Counter leaf_cache_size;   // a gauge: leaves this worker's cache holds
    Counter bytes_client_to_server;
    Counter bytes_server_to_client;
    std::array<std::array<Counter, static_cast<std::size_t>(Outcome::count_)>,
               static_cast<std::size_t>(ListenerKind::count_)>
        connections;  // ended connections by listener kind and outcome
    std::array<Counter, static_cast<std::size_t>(ClientRejection::count_)> client_rejections;
    std::array<Counter, kVerifyReasons.size()> upstream_verify_by_reason;
    Histogram<kMintLatencyBoundsMicros.size()> mint_latency;
};

}  // namespace tlsgate::relay
