#include "app/probe_command.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "app/options.hpp"
#include "pki/ca.hpp"
#include "pki/known_roots.hpp"
#include "probe/classify.hpp"
#include "probe/handshake.hpp"
#include "probe/report.hpp"
#include "probe/target.hpp"

namespace tlsgate::app {
namespace {

constexpr int kUsageError = 2;

struct ProbeFlags {
    std::vector<std::string> names;
    std::vector<std::string> lists;
    std::string connect;
    std::string proxy;
    std::string control;
    std::vector<std::string> trust;
    bool no_system_trust = false;
    std::vector<std::string> known_roots;
    std::string ca_dir;
    std::string timeout = "10";
    std::string concurrency = "32";
    std::string format = "table";
};

int usage_error(const std::string& message) {
    std::fprintf(stderr, "tlsgate probe: %s\n", message.c_str());
    return kUsageError;
}

Result<std::string> read_text_file(const std::string& file) {
    std::ifstream stream(file, std::ios::binary);
    if (!stream) {
        return make_error("cannot read " + file);
    }
    return std::string((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
}

Result<double> parse_seconds(const std::string& text) {
    double value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || !(value > 0) || value > 3600) {
        return make_error("--timeout wants seconds between 0 and 3600, not \"" + text + "\"");
    }
    return value;
}

Result<int> parse_concurrency(const std::string& text) {
    int value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < 1 || value > 256) {
        return make_error("--concurrency wants 1 to 256, not \"" + text + "\"");
    }
    return value;
}

int run_probe(const ProbeFlags& flags) {
    // --- what to probe
    std::vector<probe::Target> targets;
    for (const auto& text : flags.names) {
        auto target = probe::parse_target(text);
        if (!target) {
            return usage_error(target.error());
        }
        targets.push_back(std::move(*target));
    }
    for (const auto& file : flags.lists) {
        auto text = read_text_file(file);
        if (!text) {
            return usage_error(text.error());
        }
        auto listed = probe::parse_target_list(*text);
        if (!listed) {
            return usage_error(file + ": " + listed.error());
        }
        targets.insert(targets.end(), listed->begin(), listed->end());
    }
    if (targets.empty()) {
        return usage_error("no names to probe: give HOST[:PORT]... or --list FILE");
    }

    // --- how
    probe::ProbeSettings settings;
    probe::RunInfo run;
    if (!flags.connect.empty()) {
        auto endpoint = probe::parse_endpoint(flags.connect);
        if (!endpoint) {
            return usage_error(endpoint.error());
        }
        settings.connect = *endpoint;
        run.connect = endpoint->text();
    }
    if (!flags.proxy.empty()) {
        auto proxy = probe::parse_proxy_url(flags.proxy);
        if (!proxy) {
            return usage_error(proxy.error());
        }
        settings.proxy = *proxy;
        run.proxy = proxy->text();
    }
    std::optional<probe::Target> control;
    if (!flags.control.empty()) {
        auto parsed = probe::parse_target(flags.control);
        if (!parsed) {
            return usage_error("--control: " + parsed.error());
        }
        control = *parsed;
    }
    auto seconds = parse_seconds(flags.timeout);
    if (!seconds) {
        return usage_error(seconds.error());
    }
    auto concurrency = parse_concurrency(flags.concurrency);
    if (!concurrency) {
        return usage_error(concurrency.error());
    }
    if (flags.format != "table" && flags.format != "json") {
        return usage_error("--format is table or json, not \"" + flags.format + "\"");
    }
    settings.timeout = std::chrono::milliseconds(static_cast<long>(*seconds * 1000));
    settings.concurrency = *concurrency;
    run.timeout_seconds = *seconds;
    run.concurrency = *concurrency;

    // --- what to trust, and whom to recognise
    auto store = probe::load_trust_store(!flags.no_system_trust, flags.trust);
    if (!store) {
        return usage_error(store.error());
    }
    run.system_trust = !flags.no_system_trust;
    run.trust_files = flags.trust;
    probe::TrustContext trust{std::move(*store), probe::KnownRoots::with_builtins(), {}};
    for (const auto& file : flags.known_roots) {
        if (auto added = trust.known.add_file(file); !added) {
            return usage_error(added.error());
        }
    }
    run.known_root_files = flags.known_roots;
    // This machine's own tlsgate CA, so an operator's gateway is named as such. Optional unless
    // --ca-dir asked for a particular one.
    const std::filesystem::path ca_dir =
        flags.ca_dir.empty() ? default_data_dir() : std::filesystem::path(flags.ca_dir);
    const auto ca_file = ca_dir / pki::kCaCertFile;
    std::error_code ignored;
    if (std::filesystem::exists(ca_file, ignored)) {
        auto cert = probe::read_certificate_file(ca_file);
        if (!cert) {
            return usage_error(cert.error());
        }
        trust.known.add_certificate(
            cert->get(), "tlsgate CA on this machine (" + pki::summarize(cert->get()).subject + ")",
            ca_file.string());
        run.local_ca = ca_file.string();
    } else if (!flags.ca_dir.empty()) {
        return usage_error("no CA certificate at " + ca_file.string());
    }

    // --- the handshakes (the control with the others, all at once)
    auto context = probe::make_probe_context();
    if (!context) {
        return usage_error(context.error());
    }
    std::vector<probe::Target> all = targets;
    if (control) {
        all.insert(all.begin(), *control);
    }
    auto observations = probe::observe_all(all, settings, context->get());
    if (!observations) {
        return usage_error(observations.error());
    }

    // --- verdicts
    probe::Report report;
    report.run = std::move(run);
    std::size_t next = 0;
    std::optional<probe::ControlBaseline> baseline;
    if (control) {
        report.control = probe::classify(*control, std::move((*observations)[next++]), trust);
        baseline = probe::make_baseline(*report.control, settings.connect.has_value());
    }
    for (const auto& target : targets) {
        report.results.push_back(probe::classify(target, std::move((*observations)[next++]), trust,
                                                 baseline ? &*baseline : nullptr));
    }
    const std::string output =
        flags.format == "json" ? probe::render_json(report) : probe::render_table(report);
    std::fwrite(output.data(), 1, output.size(), stdout);
    std::fflush(stdout);
    return probe::exit_status(report);
}

// The options live on a parser of their own, run from the subcommand's callback, so that every
// usage error (a missing value, an unknown flag) exits with 2 as documented, whatever the main
// parser would return for it.
void build_parser(CLI::App& parser, ProbeFlags& flags) {
    parser.add_option("names", flags.names, "Names to probe (default port 443)")
        ->type_name("HOST[:PORT]");
    // Repeatable options take one value per use, so `--list a.txt b.example` probes b.example.
    parser.add_option("--list", flags.lists, "File with one HOST[:PORT] per line, repeatable")
        ->type_name("FILE")
        ->allow_extra_args(false);
    parser
        .add_option("--connect", flags.connect,
                    "Send every handshake to this address; only the SNI changes")
        ->type_name("IP[:PORT]");
    parser.add_option("--proxy", flags.proxy, "Handshake through this HTTP CONNECT proxy")
        ->type_name("http://HOST:PORT");
    parser
        .add_option("--control", flags.control,
                    "A benign name to compare every name with (SNI-triggered detection)")
        ->type_name("NAME[:PORT]");
    parser
        .add_option("--trust", flags.trust,
                    "PEM bundle added to the trust store (the system store), repeatable")
        ->type_name("FILE")
        ->allow_extra_args(false);
    parser.add_flag("--no-system-trust", flags.no_system_trust,
                    "Trust only --trust bundles, not the system store");
    parser
        .add_option("--known-roots", flags.known_roots,
                    "More known interception roots: lines \"SPKI-SHA256-HEX NAME\", repeatable")
        ->type_name("FILE")
        ->allow_extra_args(false);
    parser
        .add_option("--ca-dir", flags.ca_dir,
                    "Where this machine's tlsgate CA (ca.pem) is, to name it when seen "
                    "(default: the data dir, if it has one)")
        ->type_name("DIR");
    parser.add_option("--timeout", flags.timeout, "Seconds allowed for each name (default 10)")
        ->type_name("S");
    parser
        .add_option("--concurrency", flags.concurrency,
                    "Handshakes in flight, 1 to 256 (default 32)")
        ->type_name("N");
    parser.add_option("--format", flags.format, "Output (default table)")->type_name("table|json");
    parser.footer(
        "Exit status: 0 nothing intercepted, 1 something intercepted, 2 usage or setup error.\n"
        "Statuses: clean, intercepted, invalid, blocked, no-tls, error (docs/probe.md).");
}

}  // namespace

void add_probe_command(CLI::App& app, int& status) {
    auto* command = app.add_subcommand(
        "probe",
        "Detect TLS interception from this side: handshakes with chosen SNIs, checked against "
        "the trust store and known interception roots");
    // Everything after `probe` is handed over untouched to the probe's own parser.
    command->prefix_command();
    command->set_help_flag();
    command->callback([command, &status] {
        ProbeFlags flags;
        CLI::App parser{
            "Detect TLS interception: a TLS handshake per name, the presented chain verified "
            "against the trust store and known interception roots",
            "tlsgate probe"};
        build_parser(parser, flags);
        std::vector<std::string> arguments = command->remaining();
        std::reverse(arguments.begin(), arguments.end());  // CLI11 consumes from the back
        try {
            parser.parse(arguments);
        } catch (const CLI::ParseError& error) {
            const int code = parser.exit(error);  // prints the help or the error
            status = code == 0 ? 0 : kUsageError;
            return;
        }
        status = run_probe(flags);
    });
}

}  // namespace tlsgate::app
