#include "app/flows_command.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>

#include "app/options.hpp"
#include "record/flow_json.hpp"
#include "record/flow_store.hpp"
#include "record/har.hpp"

namespace tlsgate::app {
namespace {

struct FlowsFlags {
    std::string db;
    std::string data_dir;
    std::string host;
    std::string status;
    std::string since;
    std::string grep;
    std::size_t limit = 100;
    std::string format = "table";
};

int fail(const std::string& message) {
    std::fprintf(stderr, "tlsgate flows: %s\n", message.c_str());
    return 1;
}

std::string local_time(inspect::Clock::time_point when) {
    const std::time_t seconds = inspect::Clock::to_time_t(when);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &utc);
    return text;
}

std::string human_size(std::uint64_t bytes) {
    char text[32];
    if (bytes < 10 * 1024) {
        std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(bytes));
    } else if (bytes < 10 * 1024 * 1024) {
        std::snprintf(text, sizeof text, "%.0fk", bytes / 1024.0);
    } else {
        std::snprintf(text, sizeof text, "%.0fM", bytes / (1024.0 * 1024.0));
    }
    return text;
}

std::string clip(std::string text, std::size_t width) {
    if (text.size() > width) {
        text.resize(width - 3);
        text += "...";
    }
    return text;
}

void print_table(const std::vector<record::FlowRecord>& flows) {
    std::printf("%-19s  %6s  %-6s  %-7s  %3s  %7s  %7s  %s\n", "TIME (UTC)", "CONN", "PROTO",
                "METHOD", "ST", "BYTES", "MS", "URL");
    for (const auto& flow : flows) {
        const auto& exchange = flow.exchange;
        const double ms =
            std::chrono::duration<double, std::milli>(exchange.end - exchange.request_start)
                .count();
        const std::string status = exchange.status != 0 ? std::to_string(exchange.status) : "-";
        std::string url = exchange.scheme + "://" + exchange.authority + exchange.path;
        if (!exchange.error.empty()) {
            url += "  [" + exchange.error + "]";
        }
        std::printf("%-19s  %6llu  %-6s  %-7s  %3s  %7s  %7.1f  %s\n",
                    local_time(exchange.request_start).c_str(),
                    static_cast<unsigned long long>(flow.connection_id),
                    exchange.protocol == "HTTP/2" ? "h2" : "http/1",
                    clip(exchange.method, 7).c_str(), status.c_str(),
                    human_size(exchange.response_body.size).c_str(), ms, clip(url, 200).c_str());
    }
    std::printf("%zu flow%s\n", flows.size(), flows.size() == 1 ? "" : "s");
}

int run_flows(const FlowsFlags& flags) {
    std::filesystem::path db = flags.db;
    if (db.empty()) {
        db = (flags.data_dir.empty() ? default_data_dir() : std::filesystem::path(flags.data_dir)) /
             "flows.db";
    }
    record::FlowQuery query;
    if (!flags.host.empty())
        query.host_pattern = flags.host;
    if (!flags.grep.empty())
        query.grep = flags.grep;
    if (!flags.status.empty()) {
        auto status = record::parse_status_filter(flags.status);
        if (!status) {
            return fail(status.error());
        }
        query.status = *status;
    }
    if (!flags.since.empty()) {
        auto since = record::parse_since(flags.since, inspect::Clock::now());
        if (!since) {
            return fail(since.error());
        }
        query.since = *since;
    }
    // The most recent N, shown oldest first (like `tail`).
    query.limit = flags.limit;
    query.newest_first = true;
    auto store = record::FlowStore::open(db, record::OpenMode::read_only);
    if (!store) {
        return fail(store.error());
    }
    auto flows = store->query(query);
    if (!flows) {
        return fail(flows.error());
    }
    std::reverse(flows->begin(), flows->end());
    if (flags.format == "json") {
        for (const auto& flow : *flows) {
            std::fputs(record::flow_to_json_line(flow).c_str(), stdout);
        }
    } else if (flags.format == "har") {
        const auto har = record::flows_to_har(*flows, TLSGATE_VERSION_STRING);
        std::puts(har.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
        print_table(*flows);
    }
    return 0;
}

}  // namespace

void add_flows_command(CLI::App& app, int& status) {
    auto flags = std::make_shared<FlowsFlags>();
    auto* flows = app.add_subcommand("flows", "List, filter and export recorded HTTP flows");
    flows->add_option("--db", flags->db, "Flow database (default DATA_DIR/flows.db)");
    flows->add_option("--data-dir", flags->data_dir,
                      "Data directory (default ~/.local/share/tlsgate)");
    flows->add_option("--host", flags->host,
                      "Host or SNI glob, e.g. '*.example.com' (case-insensitive)");
    flows->add_option("--status", flags->status, "Status code (404) or class (4xx)");
    flows->add_option("--since", flags->since,
                      "Start time: 2026-11-22T10:00:00Z, 2026-11-22, or ago: 90s, 10m, 2h, 3d");
    flows->add_option("--grep", flags->grep,
                      "Text in the URL, method, a header, or a captured body");
    flows->add_option("--limit", flags->limit, "Most recent N flows (0: all)")
        ->capture_default_str();
    flows->add_option("--format", flags->format, "table, json (one line per flow) or har")
        ->check(CLI::IsMember({"table", "json", "har"}))
        ->capture_default_str();
    flows->callback([flags, &status] { status = run_flows(*flags); });
}

}  // namespace tlsgate::app
