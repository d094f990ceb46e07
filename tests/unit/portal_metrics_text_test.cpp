#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "portal/metrics_text.hpp"

namespace tlsgate::portal {
namespace {

TEST(MetricsText, WritesHelpAndTypeOncePerFamily) {
    MetricsText metrics;
    metrics.counter("tlsgate_connections_total", "Connections accepted.", {{"listener", "socks5"}},
                    12);
    metrics.gauge("tlsgate_open_connections", "Connections open now.", {}, 3);
    metrics.counter("tlsgate_connections_total", "Connections accepted.", {{"listener", "http"}},
                    5);
    EXPECT_EQ(metrics.take(),
              "# HELP tlsgate_connections_total Connections accepted.\n"
              "# TYPE tlsgate_connections_total counter\n"
              "tlsgate_connections_total{listener=\"socks5\"} 12\n"
              "tlsgate_connections_total{listener=\"http\"} 5\n"
              "# HELP tlsgate_open_connections Connections open now.\n"
              "# TYPE tlsgate_open_connections gauge\n"
              "tlsgate_open_connections 3\n");
}

TEST(MetricsText, TakeStartsAfresh) {
    MetricsText metrics;
    metrics.gauge("a", "A.", {}, 1);
    EXPECT_FALSE(metrics.take().empty());
    EXPECT_EQ(metrics.take(), "");
    metrics.gauge("a", "A.", {}, 2);
    EXPECT_EQ(metrics.take(), "# HELP a A.\n# TYPE a gauge\na 2\n");
}

TEST(MetricsText, EscapesLabelValuesAndHelp) {
    MetricsText metrics;
    const std::array<MetricLabel, 2> labels = {
        MetricLabel{"path", "C:\\dir\\\"q\"\nnext"},
        MetricLabel{"bad-name", "x"},
    };
    metrics.counter("requests_total", "Help with \\ and\nnewline and \"quotes\".", labels, 1);
    EXPECT_EQ(metrics.take(),
              "# HELP requests_total Help with \\\\ and\\nnewline and \"quotes\".\n"
              "# TYPE requests_total counter\n"
              "requests_total{path=\"C:\\\\dir\\\\\\\"q\\\"\\nnext\",bad_name=\"x\"} 1\n");
}

TEST(MetricsText, WritesAHistogramWithCumulativeBuckets) {
    MetricsText metrics;
    const std::array<double, 3> bounds = {0.005, 0.1, 2.5};
    const std::array<std::uint64_t, 3> counts = {1, 4, 9};
    metrics.histogram("handshake_seconds", "TLS handshake duration.", {{"side", "client"}}, bounds,
                      counts, 7.25, 10);
    EXPECT_EQ(metrics.take(),
              "# HELP handshake_seconds TLS handshake duration.\n"
              "# TYPE handshake_seconds histogram\n"
              "handshake_seconds_bucket{side=\"client\",le=\"0.005\"} 1\n"
              "handshake_seconds_bucket{side=\"client\",le=\"0.1\"} 4\n"
              "handshake_seconds_bucket{side=\"client\",le=\"2.5\"} 9\n"
              "handshake_seconds_bucket{side=\"client\",le=\"+Inf\"} 10\n"
              "handshake_seconds_sum{side=\"client\"} 7.25\n"
              "handshake_seconds_count{side=\"client\"} 10\n");
}

TEST(MetricsText, HistogramAcceptsATrailingInfiniteBoundWithoutLabels) {
    MetricsText metrics;
    const std::array<double, 2> bounds = {1, std::numeric_limits<double>::infinity()};
    const std::array<std::uint64_t, 2> counts = {2, 3};
    metrics.histogram("h", "H.", {}, bounds, counts, 4, 3);
    EXPECT_EQ(metrics.take(),
              "# HELP h H.\n# TYPE h histogram\n"
              "h_bucket{le=\"1\"} 2\n"
              "h_bucket{le=\"+Inf\"} 3\n"
              "h_sum 4\n"
              "h_count 3\n");
}

TEST(MetricsText, KeepsSamplesOfAFamilyTogetherAndIgnoresTypeConflicts) {
    MetricsText metrics;
    metrics.counter("a_total", "A.", {{"k", "1"}}, 1);
    metrics.gauge("b", "B.", {}, 2);
    metrics.gauge("a_total", "A as a gauge.", {{"k", "2"}}, 9);  // ignored
    metrics.counter("a_total", "A.", {{"k", "3"}}, 3);
    EXPECT_EQ(metrics.take(),
              "# HELP a_total A.\n# TYPE a_total counter\n"
              "a_total{k=\"1\"} 1\n"
              "a_total{k=\"3\"} 3\n"
              "# HELP b B.\n# TYPE b gauge\n"
              "b 2\n");
}

TEST(MetricsText, FormatsValuesAsPrometheusReadsThem) {
    EXPECT_EQ(MetricsText::format_value(0), "0");
    EXPECT_EQ(MetricsText::format_value(42), "42");
    EXPECT_EQ(MetricsText::format_value(-1.5), "-1.5");
    EXPECT_EQ(MetricsText::format_value(0.1), "0.1");
    EXPECT_EQ(MetricsText::format_value(1e21), "1e+21");
    EXPECT_EQ(MetricsText::format_value(9007199254740992.0), "9007199254740992");
    EXPECT_EQ(MetricsText::format_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(MetricsText::format_value(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(MetricsText::format_value(std::nan("")), "NaN");
}

TEST(MetricsText, SanitizesNames) {
    EXPECT_EQ(MetricsText::sanitize_metric_name("tlsgate:bytes_total"), "tlsgate:bytes_total");
    EXPECT_EQ(MetricsText::sanitize_metric_name("bytes-in.total"), "bytes_in_total");
    EXPECT_EQ(MetricsText::sanitize_metric_name("9lives"), "_9lives");
    EXPECT_EQ(MetricsText::sanitize_metric_name(""), "_");
    EXPECT_EQ(MetricsText::sanitize_label_name("a:b"), "a_b");
    MetricsText metrics;
    const std::vector<MetricLabel> labels = {{"x y", "v"}};
    metrics.gauge("g g", "G.", labels, 1);
    EXPECT_EQ(metrics.take(), "# HELP g_g G.\n# TYPE g_g gauge\ng_g{x_y=\"v\"} 1\n");
}

}  // namespace
}  // namespace tlsgate::portal
