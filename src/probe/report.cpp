#include "probe/report.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string_view>

namespace tlsgate::probe {
namespace {

// Insertion-ordered, so the document reads in the order docs/probe.md describes it.
using Json = nlohmann::ordered_json;

Json text_or_null(const std::string& text) {
    return text.empty() ? Json(nullptr) : Json(text);
}

Json milliseconds(std::optional<double> value) {
    if (!value) {
        return nullptr;
    }
    return std::round(*value * 100.0) / 100.0;
}

Json certificate_json(const CertificateInfo& cert) {
    return Json{{"subject", cert.subject},       {"issuer", cert.issuer},
                {"sha256", cert.sha256},         {"spki_sha256", cert.spki_sha256},
                {"not_before", cert.not_before}, {"not_after", cert.not_after},
                {"dns_names", cert.dns_names}};
}

Json result_json(const ProbeResult& result) {
    const Observation& seen = result.observation;
    const ChainAssessment& chain = result.chain;
    const bool handshake_done = seen.outcome == Outcome::handshake_done;
    Json json;
    json["target"] = result.target.text();
    json["host"] = result.target.host;
    json["port"] = result.target.port;
    json["sni"] = result.target.is_ip ? Json(nullptr) : Json(result.target.host);
    json["status"] = status_name(result.status);
    json["reason"] = result.reason;
    json["address"] = text_or_null(seen.peer_address);
    json["tls"] = handshake_done ? Json{{"version", seen.tls_version},
                                        {"cipher", seen.cipher},
                                        {"alpn", text_or_null(seen.alpn)}}
                                 : Json(nullptr);
    json["alert"] = seen.outcome == Outcome::alert ? Json(alert_name(seen.alert)) : Json(nullptr);
    json["proxy_status"] = seen.proxy_status != 0 ? Json(seen.proxy_status) : Json(nullptr);
    json["issuer"] = chain.leaf ? Json(chain.leaf->issuer) : Json(nullptr);
    json["root"] = chain.root ? Json{{"subject", chain.root->subject},
                                     {"spki_sha256", text_or_null(chain.root->spki_sha256)},
                                     {"in_trust_store", chain.root->in_trust_store},
                                     {"source", chain.root->source}}
                              : Json(nullptr);
    json["known_root"] = chain.known_root
                             ? Json{{"name", chain.known_root->name},
                                    {"spki_sha256", text_or_null(chain.known_root->spki_sha256)},
                                    {"source", chain.known_root->source},
                                    {"matched_subject", chain.known_root->matched_subject}}
                             : Json(nullptr);
    json["verify_errors"] = chain.verify_errors;
    json["verify_detail"] = text_or_null(chain.verify_detail);
    json["leaf"] = chain.leaf ? certificate_json(*chain.leaf) : Json(nullptr);
    Json presented = Json::array();
    for (const auto& cert : chain.chain) {
        presented.push_back(certificate_json(cert));
    }
    json["chain"] = std::move(presented);
    json["control_comparison"] =
        result.comparison ? Json{{"same_destination", result.comparison->same_destination},
                                 {"differs", result.comparison->differs},
                                 {"fields", result.comparison->fields},
                                 {"triggered", result.comparison->triggered}}
                          : Json(nullptr);
    json["timings_ms"] = Json{{"resolve", milliseconds(seen.timings.resolve_ms)},
                              {"connect", milliseconds(seen.timings.connect_ms)},
                              {"proxy", milliseconds(seen.timings.proxy_ms)},
                              {"handshake", milliseconds(seen.timings.handshake_ms)},
                              {"total", milliseconds(seen.timings.total_ms)}};
    return json;
}

std::size_t count(const Report& report, Status status) {
    return static_cast<std::size_t>(
        std::count_if(report.results.begin(), report.results.end(),
                      [&](const ProbeResult& result) { return result.status == status; }));
}

std::vector<std::string> names_where(const Report& report, bool (*keep)(const ProbeResult&)) {
    std::vector<std::string> names;
    for (const auto& result : report.results) {
        if (keep(result)) {
            names.push_back(result.target.text());
        }
    }
    return names;
}

bool is_intercepted(const ProbeResult& result) {
    return result.status == Status::intercepted;
}

bool is_triggered(const ProbeResult& result) {
    return result.comparison && result.comparison->triggered;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
    std::string text;
    for (const auto& item : items) {
        text += (text.empty() ? "" : separator) + item;
    }
    return text;
}

// A table cell: the text, then spaces up to `width` and always at least one.
std::string cell(std::string text, std::size_t width) {
    text.append(text.size() < width ? width - text.size() : 1, ' ');
    return text;
}

}  // namespace

int exit_status(const Report& report) {
    const bool control_intercepted = report.control && is_intercepted(*report.control);
    const bool any = std::any_of(report.results.begin(), report.results.end(), is_intercepted);
    return any || control_intercepted ? 1 : 0;
}

std::string render_json(const Report& report) {
    Json run{{"connect", report.run.connect ? Json(*report.run.connect) : Json(nullptr)},
             {"proxy", report.run.proxy ? Json(*report.run.proxy) : Json(nullptr)},
             {"control", report.control ? Json(report.control->target.text()) : Json(nullptr)},
             {"timeout_s", report.run.timeout_seconds},
             {"concurrency", report.run.concurrency},
             {"system_trust", report.run.system_trust},
             {"trust_files", report.run.trust_files},
             {"known_root_files", report.run.known_root_files},
             {"local_ca", text_or_null(report.run.local_ca)}};
    Json summary{{"total", report.results.size()}};
    for (const Status status : kAllStatuses) {
        summary[std::string(status_name(status))] = count(report, status);
    }
    summary["intercepted_names"] = names_where(report, is_intercepted);
    summary["triggered_names"] = names_where(report, is_triggered);
    Json results = Json::array();
    for (const auto& result : report.results) {
        results.push_back(result_json(result));
    }
    Json document{{"tlsgate_probe", kSchemaVersion},
                  {"intercepted", exit_status(report) == 1},
                  {"run", std::move(run)},
                  {"summary", std::move(summary)},
                  {"control", report.control ? result_json(*report.control) : Json(nullptr)},
                  {"results", std::move(results)}};
    // Names in certificates are not guaranteed UTF-8; replace rather than throw.
    return document.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string render_table(const Report& report) {
    std::vector<const ProbeResult*> rows;
    if (report.control) {
        rows.push_back(&*report.control);
    }
    for (const auto& result : report.results) {
        rows.push_back(&result);
    }
    constexpr std::size_t kStatusWidth = 13;
    constexpr std::size_t kVersionWidth = 9;
    constexpr std::string_view kControlMark = " (control)";
    std::size_t target_width = 7;
    for (const auto* row : rows) {
        const std::size_t mark =
            report.control && row == &*report.control ? kControlMark.size() : 0;
        target_width = std::max(target_width, row->target.text().size() + mark + 2);
    }
    target_width = std::min<std::size_t>(target_width, 48);
    const std::size_t indent = kStatusWidth + target_width + kVersionWidth;
    std::string out = cell("STATUS", kStatusWidth) + cell("TARGET", target_width) +
                      cell("TLS", kVersionWidth) + "DETAIL\n";
    for (const auto* row : rows) {
        const bool is_control = report.control && row == &*report.control;
        const auto& seen = row->observation;
        const std::string version = seen.tls_version.empty() ? "-" : seen.tls_version;
        const std::string target =
            row->target.text() + (is_control ? std::string(kControlMark) : std::string());
        out += cell(std::string(status_name(row->status)), kStatusWidth) +
               cell(target, target_width) + cell(version, kVersionWidth) + row->reason + "\n";
        const auto& chain = row->chain;
        const std::string continuation(indent, ' ');
        if (row->status == Status::intercepted && chain.leaf) {
            out += continuation + "issuer: " + chain.leaf->issuer + "\n";
            if (chain.root) {
                out += continuation + "root: " + chain.root->subject + " (" + chain.root->source +
                       (chain.root->spki_sha256.empty()
                            ? ")"
                            : ", SPKI SHA-256 " + chain.root->spki_sha256 + ")") +
                       "\n";
            }
        }
        if (row->comparison && row->comparison->differs) {
            out +=
                continuation + "differs from the control: " + join(row->comparison->fields, ", ") +
                (row->comparison->triggered ? " (interception triggered by the SNI)" : "") + "\n";
        }
    }
    std::vector<std::string> counts;
    for (const Status status : kAllStatuses) {
        if (const auto n = count(report, status); n > 0) {
            counts.push_back(std::to_string(n) + " " + std::string(status_name(status)));
        }
    }
    out += "\n" + std::to_string(report.results.size()) +
           (report.results.size() == 1 ? " name" : " names") +
           (counts.empty() ? "" : ": " + join(counts, ", ")) + ".\n";
    if (const auto triggered = names_where(report, is_triggered); !triggered.empty()) {
        out += "Triggered by the SNI (a different certificate than the control's): " +
               join(triggered, ", ") + "\n";
    }
    out += exit_status(report) == 1 ? "TLS interception detected.\n"
                                    : "No TLS interception detected.\n";
    return out;
}

}  // namespace tlsgate::probe
