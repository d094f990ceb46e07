#include "app/metrics.hpp"

#include "portal/metrics_text.hpp"

namespace tlsgate::app {
namespace {

using relay::Counter;
using relay::Counters;

// The sum of one counter over every worker.
template <typename Pick>
double total(const MetricsSources& sources, Pick pick) {
    std::uint64_t sum = 0;
    for (const auto& worker : *sources.workers) {
        sum += pick(worker->counters).get();
    }
    return static_cast<double>(sum);
}

}  // namespace

std::string render_metrics(const MetricsSources& sources) {
    portal::MetricsText out;
    auto counter = [&](std::string_view name, std::string_view help, auto pick,
                       portal::MetricLabels labels = {}) {
        out.counter(name, help, labels, total(sources, pick));
    };

    counter("tlsgate_connections_accepted_total", "Client connections accepted",
            [](const Counters& c) -> const Counter& { return c.accepted; });
    out.gauge(
        "tlsgate_connections_active", "Client connections open now", {},
        total(sources, [](const Counters& c) -> const Counter& { return c.open_connections; }));
    for (std::size_t kind = 0; kind < static_cast<std::size_t>(relay::ListenerKind::count_);
         ++kind) {
        for (std::size_t outcome = 0; outcome < static_cast<std::size_t>(relay::Outcome::count_);
             ++outcome) {
            const auto value = total(sources, [&](const Counters& c) -> const Counter& {
                return c.connections[kind][outcome];
            });
            out.counter("tlsgate_connections_total",
                        "Connections ended, by listener mode and what happened to them",
                        {{"mode", relay::to_string(static_cast<relay::ListenerKind>(kind))},
                         {"action", relay::to_string(static_cast<relay::Outcome>(outcome))}},
                        value);
        }
    }
    const auto decision = [&](std::string_view action, auto pick) {
        counter("tlsgate_decisions_total", "Policy decisions taken", pick, {{"action", action}});
    };
    decision("intercept",
             [](const Counters& c) -> const Counter& { return c.intercept_decisions; });
    decision("passthrough", [](const Counters& c) -> const Counter& { return c.passed_through; });
    decision("block", [](const Counters& c) -> const Counter& { return c.blocked; });
    counter("tlsgate_intercepted_sessions_total",
            "Interceptions that completed both handshakes and relayed plaintext",
            [](const Counters& c) -> const Counter& { return c.intercepted; });
    counter("tlsgate_relayed_raw_total", "Non-TLS connections relayed untouched",
            [](const Counters& c) -> const Counter& { return c.relayed_raw; });
    counter("tlsgate_http_forwarded_total", "Plain HTTP requests forwarded by the explicit proxy",
            [](const Counters& c) -> const Counter& { return c.http_forwarded; });
    counter("tlsgate_portal_requests_total", "Requests answered by the portal",
            [](const Counters& c) -> const Counter& { return c.portal_requests; });

    const auto refused = [&](std::string_view reason, auto pick) {
        counter("tlsgate_connections_refused_total", "Connections refused by a limit", pick,
                {{"limit", reason}});
    };
    refused("total", [](const Counters& c) -> const Counter& { return c.refused_total_limit; });
    refused("per_client",
            [](const Counters& c) -> const Counter& { return c.refused_client_limit; });
    counter("tlsgate_accept_failures_total", "accept() failures (descriptors exhausted, ...)",
            [](const Counters& c) -> const Counter& { return c.accept_failed; });

    const auto bad_input = [&](std::string_view kind, auto pick) {
        counter("tlsgate_bad_input_total", "Malformed client input refused", pick,
                {{"kind", kind}});
    };
    bad_input("http_request", [](const Counters& c) -> const Counter& { return c.bad_request; });
    bad_input("client_hello",
              [](const Counters& c) -> const Counter& { return c.bad_client_hello; });
    bad_input("client_hello_too_large",
              [](const Counters& c) -> const Counter& { return c.client_hello_too_large; });
    bad_input("proxy_header",
              [](const Counters& c) -> const Counter& { return c.bad_proxy_header; });
    counter("tlsgate_timeouts_total", "Connections ended by a timeout",
            [](const Counters& c) -> const Counter& { return c.timeouts; });
    counter("tlsgate_upstream_connect_failures_total", "Upstream TCP connects that failed",
            [](const Counters& c) -> const Counter& { return c.upstream_connect_failed; });

    const auto handshake = [&](std::string_view side, std::string_view reason, auto pick) {
        counter("tlsgate_handshake_failures_total",
                "TLS handshakes that failed, by side and reason", pick,
                {{"side", side}, {"reason", reason}});
    };
    handshake("upstream", "tls",
              [](const Counters& c) -> const Counter& { return c.upstream_tls_failed; });
    for (std::size_t i = 0; i < relay::kVerifyReasons.size(); ++i) {
        handshake("upstream", relay::kVerifyReasons[i], [i](const Counters& c) -> const Counter& {
            return c.upstream_verify_by_reason[i];
        });
    }
    std::uint64_t rejections = 0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(relay::ClientRejection::count_); ++i) {
        const auto pick = [i](const Counters& c) -> const Counter& {
            return c.client_rejections[i];
        };
        rejections += static_cast<std::uint64_t>(total(sources, pick));
        handshake("client", relay::to_string(static_cast<relay::ClientRejection>(i)), pick);
    }
    const double client_failed = total(
        sources, [](const Counters& c) -> const Counter& { return c.client_handshake_failed; });
    out.counter("tlsgate_handshake_failures_total", "", {{"side", "client"}, {"reason", "error"}},
                client_failed - static_cast<double>(rejections));
    for (std::size_t i = 0; i < relay::kVerifyReasons.size(); ++i) {
        counter("tlsgate_upstream_verify_failures_total",
                "Upstream certificates rejected, by reason",
                [i](const Counters& c) -> const Counter& { return c.upstream_verify_by_reason[i]; },
                {{"reason", relay::kVerifyReasons[i]}});
    }

    const auto aia_fetch = [&](std::string_view result, auto pick) {
        counter("tlsgate_upstream_aia_fetches_total",
                "Missing upstream intermediates fetched from their caIssuers URL", pick,
                {{"result", result}});
    };
    aia_fetch("ok", [](const Counters& c) -> const Counter& { return c.aia_fetched; });
    aia_fetch("failed", [](const Counters& c) -> const Counter& { return c.aia_fetch_failed; });

    const auto upstream_error_action = [&](std::string_view action, auto pick) {
        counter("tlsgate_upstream_error_actions_total",
                "What clients got for refused upstream certificates (on_upstream_error)", pick,
                {{"action", action}});
    };
    upstream_error_action(
        "mirror", [](const Counters& c) -> const Counter& { return c.upstream_errors_mirrored; });
    upstream_error_action(
        "block", [](const Counters& c) -> const Counter& { return c.upstream_errors_blocked; });
    counter("tlsgate_mirror_pages_total",
            "Explanation pages sent to clients that went ahead over a mirrored session",
            [](const Counters& c) -> const Counter& { return c.mirror_pages_served; });

    counter("tlsgate_certificate_cache_hits_total", "Minted leaves reused from the cache",
            [](const Counters& c) -> const Counter& { return c.leaf_cache_hits; });
    counter("tlsgate_certificate_cache_misses_total", "Leaves not in the cache (then minted)",
            [](const Counters& c) -> const Counter& { return c.leaf_cache_misses; });
    out.gauge(
        "tlsgate_certificate_cache_size", "Leaves held in the caches", {},
        total(sources, [](const Counters& c) -> const Counter& { return c.leaf_cache_size; }));
    counter("tlsgate_certificates_minted_total", "Leaf certificates minted",
            [](const Counters& c) -> const Counter& { return c.leaves_minted; });
    {
        constexpr std::size_t n = relay::kMintLatencyBoundsMicros.size();
        std::array<double, n> bounds{};
        std::array<std::uint64_t, n + 1> cumulative{};
        std::uint64_t running = 0;
        for (std::size_t i = 0; i <= n; ++i) {
            running +=
                static_cast<std::uint64_t>(total(sources, [i](const Counters& c) -> const Counter& {
                    return c.mint_latency.buckets[i];
                }));
            cumulative[i] = running;
            if (i < n)
                bounds[i] = static_cast<double>(relay::kMintLatencyBoundsMicros[i]) / 1e6;
        }
        const double sum =
            total(sources,
                  [](const Counters& c) -> const Counter& { return c.mint_latency.sum_micros; }) /
            1e6;
        out.histogram("tlsgate_mint_duration_seconds", "Time to mirror and sign a leaf", {}, bounds,
                      cumulative, sum, running);
    }
    counter("tlsgate_upstream_sessions_resumed_total", "Upstream TLS sessions resumed",
            [](const Counters& c) -> const Counter& { return c.upstream_resumed; });
    counter("tlsgate_bytes_relayed_total", "Bytes relayed (counted when a connection ends)",
            [](const Counters& c) -> const Counter& { return c.bytes_client_to_server; },
            {{"direction", "client_to_server"}});
    counter("tlsgate_bytes_relayed_total", "",
            [](const Counters& c) -> const Counter& { return c.bytes_server_to_client; },
            {{"direction", "server_to_client"}});
    counter("tlsgate_dissection_failures_total",
            "Connections whose HTTP could not be dissected (relayed regardless)",
            [](const Counters& c) -> const Counter& { return c.dissection_failed; });

    const auto records = [&](std::string_view sink, std::string_view what, double value) {
        out.counter("tlsgate_records_total", "Records written and dropped, by sink",
                    {{"sink", sink}, {"result", what}}, value);
    };
    if (sources.connection_log != nullptr) {
        records("connection_log", "written",
                static_cast<double>(sources.connection_log->written()));
        records("connection_log", "dropped",
                static_cast<double>(sources.connection_log->dropped()));
        records("connection_log", "write_error",
                static_cast<double>(sources.connection_log->write_errors()));
    }
    if (sources.flows != nullptr) {
        records("flows", "written", static_cast<double>(sources.flows->written()));
        records("flows", "dropped", static_cast<double>(sources.flows->dropped()));
        records("flows", "write_error", static_cast<double>(sources.flows->write_errors()));
    }
    if (sources.pcap != nullptr) {
        records("pcap", "dropped", static_cast<double>(sources.pcap->dropped_chunks()));
        records("pcap", "write_error", static_cast<double>(sources.pcap->write_errors()));
    }
    if (sources.reloads_ok != nullptr && sources.reloads_failed != nullptr) {
        out.counter("tlsgate_config_reloads_total", "SIGHUP reloads", {{"result", "ok"}},
                    static_cast<double>(sources.reloads_ok->load()));
        out.counter("tlsgate_config_reloads_total", "", {{"result", "rejected"}},
                    static_cast<double>(sources.reloads_failed->load()));
    }
    return out.take();
}

}  // namespace tlsgate::app
