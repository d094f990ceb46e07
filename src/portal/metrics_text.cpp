#include "portal/metrics_text.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace tlsgate::portal {

namespace {

bool is_name_character(char c, bool allow_colon) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (allow_colon && c == ':');
}

std::string sanitize_name(std::string_view name, bool allow_colon) {
    std::string out;
    out.reserve(name.size() + 1);
    if (name.empty() || (name.front() >= '0' && name.front() <= '9')) {
        out += '_';
    }
    for (const char c : name) {
        out += is_name_character(c, allow_colon) ? c : '_';
    }
    return out;
}

// HELP text escapes only backslash and line feed (a double quote is literal there).
std::string escape_help(std::string_view help) {
    std::string out;
    out.reserve(help.size());
    for (const char c : help) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

std::string MetricsText::sanitize_metric_name(std::string_view name) {
    return sanitize_name(name, true);
}

std::string MetricsText::sanitize_label_name(std::string_view name) {
    return sanitize_name(name, false);
}

std::string MetricsText::escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string MetricsText::format_value(double value) {
    if (std::isnan(value)) {
        return "NaN";
    }
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    char buffer[64];
    const auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    if (error != std::errc()) {
        return "NaN";  // cannot happen: the shortest form of a double fits in 24 characters
    }
    return std::string(buffer, end);
}

MetricsText::Family* MetricsText::family(std::string_view name, std::string_view help, Type type) {
    std::string sanitized = sanitize_metric_name(name);
    const auto existing = std::find_if(families_.begin(), families_.end(),
                                       [&](const Family& f) { return f.name == sanitized; });
    if (existing != families_.end()) {
        return existing->type == type ? &*existing : nullptr;
    }
    Family& created = families_.emplace_back(Family{std::move(sanitized), type, {}});
    created.text += "# HELP ";
    created.text += created.name;
    created.text += ' ';
    created.text += escape_help(help);
    created.text += "\n# TYPE ";
    created.text += created.name;
    created.text += ' ';
    switch (type) {
        case Type::counter:
            created.text += "counter";
            break;
        case Type::gauge:
            created.text += "gauge";
            break;
        case Type::histogram:
            created.text += "histogram";
            break;
    }
    created.text += '\n';
    return &created;
}

void MetricsText::add_sample(Family& family, std::string_view suffix, MetricLabels labels,
                             std::string_view extra_label_value, std::string_view value) {
    std::string& out = family.text;
    out += family.name;
    out += suffix;
    const auto list = labels.get();
    if (!list.empty() || !extra_label_value.empty()) {
        out += '{';
        bool first = true;
        for (const MetricLabel& label : list) {
            if (!first) {
                out += ',';
            }
            first = false;
            out += sanitize_label_name(label.name);
            out += "=\"";
            out += escape_label_value(label.value);
            out += '"';
        }
        if (!extra_label_value.empty()) {
            if (!first) {
                out += ',';
            }
            out += "le=\"";
            out += extra_label_value;
            out += '"';
        }
        out += '}';
    }
    out += ' ';
    out += value;
    out += '\n';
}

void MetricsText::counter(std::string_view name, std::string_view help, MetricLabels labels,
                          double value) {
    if (Family* f = family(name, help, Type::counter)) {
        add_sample(*f, {}, labels, {}, format_value(value));
    }
}

void MetricsText::gauge(std::string_view name, std::string_view help, MetricLabels labels,
                        double value) {
    if (Family* f = family(name, help, Type::gauge)) {
        add_sample(*f, {}, labels, {}, format_value(value));
    }
}

void MetricsText::histogram(std::string_view name, std::string_view help, MetricLabels labels,
                            std::span<const double> upper_bounds,
                            std::span<const std::uint64_t> cumulative_counts, double sum,
                            std::uint64_t count) {
    Family* f = family(name, help, Type::histogram);
    if (f == nullptr) {
        return;
    }
    const std::size_t buckets = std::min(upper_bounds.size(), cumulative_counts.size());
    for (std::size_t i = 0; i < buckets; ++i) {
        const double bound = upper_bounds[i];
        if (std::isinf(bound) && bound > 0) {
            break;  // the +Inf bucket below carries `count`
        }
        add_sample(*f, "_bucket", labels, format_value(bound),
                   std::to_string(cumulative_counts[i]));
    }
    add_sample(*f, "_bucket", labels, "+Inf", std::to_string(count));
    add_sample(*f, "_sum", labels, {}, format_value(sum));
    add_sample(*f, "_count", labels, {}, std::to_string(count));
}

std::string MetricsText::take() {
    std::size_t total = 0;
    for (const Family& f : families_) {
        total += f.text.size();
    }
    std::string out;
    out.reserve(total);
    for (const Family& f : families_) {
        out += f.text;
    }
    families_.clear();
    return out;
}

}  // namespace tlsgate::portal
