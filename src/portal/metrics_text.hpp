#pragma once
// Prometheus text exposition format 0.0.4 (what a /metrics endpoint serves with
// "Content-Type: text/plain; version=0.0.4"). A writer only: the caller reads its counters and
// hands the values over; nothing here knows what is being measured.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace tlsgate::portal {

struct MetricLabel {
    std::string_view name;
    std::string_view value;
};

// A view of labels, built from a braced list at the call site ({{"method", "GET"}}) or from any
// contiguous sequence. Like std::span it refers to the caller's labels; use it only as a
// parameter.
class MetricLabels {
public:
    MetricLabels() = default;
    MetricLabels(std::initializer_list<MetricLabel> labels)
        : labels_(labels.begin(), labels.size()) {}
    MetricLabels(std::span<const MetricLabel> labels) : labels_(labels) {}
    // std::array, std::vector and the like, without spelling out the span.
    template <typename Labels>
    requires std::is_convertible_v<const Labels&, std::span<const MetricLabel>> MetricLabels(
        const Labels& labels)
        : labels_(labels) {}

    std::span<const MetricLabel> get() const { return labels_; }

private:
    std::span<const MetricLabel> labels_;
};

class MetricsText {
public:
    // One sample of a counter or gauge family. The first call for a name writes the family's
    // # HELP and # TYPE lines; later calls for other label sets only add samples, and samples of
    // one family always come out together, whatever order the calls come in. A call whose type
    // contradicts the family's first call is ignored (the format allows one type per family).
    void counter(std::string_view name, std::string_view help, MetricLabels labels, double value);
    void gauge(std::string_view name, std::string_view help, MetricLabels labels, double value);

    // One histogram: name_bucket{...,le="..."} for every finite upper bound with its cumulative
    // count, then le="+Inf" with `count`, name_sum and name_count. `upper_bounds` ascend; a
    // trailing +Inf bound (with its count) is accepted and not written twice. Extra entries of the
    // longer span, when the sizes differ, are ignored.
    void histogram(std::string_view name, std::string_view help, MetricLabels labels,
                   std::span<const double> upper_bounds,
                   std::span<const std::uint64_t> cumulative_counts, double sum,
                   std::uint64_t count);

    // The exposition so far, families in order of first appearance; the writer starts empty again.
    std::string take();

    // Names are supplied by code, not users, but the output must stay parseable whatever they
    // are: characters outside [a-zA-Z0-9_:] (label names: [a-zA-Z0-9_]) become '_', and a name
    // starting with a digit or empty gets a leading '_'.
    static std::string sanitize_metric_name(std::string_view name);
    static std::string sanitize_label_name(std::string_view name);
    // Label value escaping: backslash, double quote and line feed.
    static std::string escape_label_value(std::string_view value);
    // Sample values: shortest text that reads back as the same double; "+Inf", "-Inf", "NaN".
    static std::string format_value(double value);

private:
    enum class Type { counter, gauge, histogram };
    struct Family {
        std::string name;  // sanitized
        Type type;
        std::string text;  // HELP, TYPE and the samples so far
    };

    // The family to append samples to, created on first use; nullptr on a type conflict.
    Family* family(std::string_view name, std::string_view help, Type type);
    void add_sample(Family& family, std::string_view suffix, MetricLabels labels,
                    std::string_view extra_label_value, std::string_view value);

    std::vector<Family> families_;
};

}  // namespace tlsgate::portal
