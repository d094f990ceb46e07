#include "app/run_command.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/gateway.hpp"
#include "app/options.hpp"

namespace tlsgate::app {
namespace {

struct RunFlags {
    std::string config_file;
    std::vector<std::string> listen;
    std::string ca_dir, data_dir, policy, log, log_level;
    std::string ca_key, pkcs11_module, pkcs11_pin_file;
    std::vector<std::string> upstream_ca;
    std::vector<std::string> interception_roots;
    int workers = -1;
    bool no_system_trust = false;
    std::vector<std::string> resolve;
    bool capture_bodies = false;
    bool no_flows = false;
    std::string key_log, pcap, flows_db;
};

int fail(const std::string& message) {
    std::fprintf(stderr, "tlsgate: %s\n", message.c_str());
    return 1;
}

// Config file first, then each flag given on the command line.
Result<RunOptions> options_from(const RunFlags& flags) {
    RunOptions options;
    if (!flags.config_file.empty()) {
        if (auto applied = apply_config_file(flags.config_file, options); !applied) {
            return make_error(applied.error());
        }
    }
    if (!flags.listen.empty()) {
        options.listeners.clear();
        for (const auto& text : flags.listen) {
            auto spec = listen::parse_listen_spec(text);
            if (!spec) {
                return make_error(spec.error());
            }
            options.listeners.push_back(*spec);
        }
    }
    if (!flags.data_dir.empty())
        options.data_dir = flags.data_dir;
    if (!flags.ca_dir.empty())
        options.ca_dir = flags.ca_dir;
    if (!flags.ca_key.empty()) {
        if (!pki::is_pkcs11_uri(flags.ca_key)) {
            return make_error("--ca-key must be a pkcs11: URI");
        }
        options.ca_token_key.uri = flags.ca_key;
    }
    if (!flags.pkcs11_module.empty())
        options.ca_token_key.module = flags.pkcs11_module;
    if (!flags.pkcs11_pin_file.empty())
        options.ca_token_key.pin_file = flags.pkcs11_pin_file;
    for (const auto& file : flags.interception_roots) {
        options.interception_root_files.push_back(file);
    }
    for (const auto& file : flags.upstream_ca) {
        options.upstream_ca_files.push_back(file);
    }
    if (flags.no_system_trust)
        options.system_trust = false;
    if (!flags.policy.empty()) {
        options.policy_file = flags.policy;
        options.inline_policy.reset();
    }
    if (flags.workers > 0)
        options.workers = flags.workers;
    if (!flags.log.empty())
        options.connection_log = flags.log;
    for (const auto& text : flags.resolve) {
        auto entry = parse_static_host(text);
        if (!entry) {
            return make_error(entry.error());
        }
        options.static_hosts.push_back(*entry);
    }
    if (!flags.log_level.empty())
        options.log_level = flags.log_level;
    if (flags.capture_bodies)
        options.record.capture_bodies = true;
    if (flags.no_flows)
        options.record.sinks.clear();
    if (!flags.key_log.empty())
        options.record.key_log = flags.key_log;
    if (!flags.pcap.empty())
        options.record.pcap = flags.pcap;
    if (!flags.flows_db.empty())
        options.record.db = flags.flows_db;
    return options;
}

}  // namespace

void add_run_command(CLI::App& app, int& status) {
    auto flags = std::make_shared<RunFlags>();
    auto* run = app.add_subcommand("run", "Run the gateway");
    run->add_option("--config", flags->config_file, "TOML config file")->check(CLI::ExistingFile);
    run->add_option("--listen", flags->listen,
                    "MODE@ADDR:PORT, repeatable (default explicit@127.0.0.1:8080)");
    run->add_option("--ca-dir", flags->ca_dir, "CA directory (default: the data dir)");
    run->add_option("--ca-key", flags->ca_key,
                    "The CA key in a PKCS#11 token (pkcs11: URI) instead of CA_DIR/ca.key");
    run->add_option("--pkcs11-module", flags->pkcs11_module,
                    "PKCS#11 library of the token (default: p11-kit's proxy)");
    run->add_option("--pkcs11-pin-file", flags->pkcs11_pin_file,
                    "File holding the token's PIN (mode 0600)");
    run->add_option("--upstream-ca", flags->upstream_ca,
                    "Extra PEM bundle to trust upstream, repeatable (added to the system store)");
    run->add_option("--interception-roots", flags->interception_roots,
                    "More keys refused in upstream chains, as known interception roots: lines "
                    "\"SPKI-SHA256-HEX NAME\", repeatable");
    run->add_flag("--no-system-trust", flags->no_system_trust,
                  "Trust only --upstream-ca bundles upstream, not the system store");
    run->add_option("--policy", flags->policy, "Policy TOML file (default: intercept everything)")
        ->check(CLI::ExistingFile);
    run->add_option("--data-dir", flags->data_dir,
                    "Data directory (default ~/.local/share/tlsgate)");
    run->add_option("--workers", flags->workers, "Worker threads (default: CPU cores)")
        ->check(CLI::Range(1, 1024));
    run->add_option("--log", flags->log,
                    "Connection log file (default DATA_DIR/connections.jsonl)");
    run->add_option("--log-level", flags->log_level, "trace, debug, info, warn, error");
    run->add_option("--resolve", flags->resolve,
                    "NAME=ADDRESS: connect to ADDRESS for NAME instead of asking DNS, repeatable");
    run->add_flag("--capture-bodies", flags->capture_bodies,
                  "Store the first bytes of each HTTP body in the flow records");
    run->add_flag("--no-flows", flags->no_flows, "Record connections only, not HTTP flows");
    run->add_option("--flows-db", flags->flows_db, "Flow database (default DATA_DIR/flows.db)");
    run->add_option("--key-log", flags->key_log,
                    "Write TLS secrets of both legs in the NSS key log format (SSLKEYLOGFILE)");
    run->add_option("--pcap", flags->pcap,
                    "Write intercepted plaintext as synthesized TCP packets to this pcap file");
    run->callback([flags, &status] {
        auto options = options_from(*flags);
        if (!options) {
            status = fail(options.error());
            return;
        }
        status = run_gateway(std::move(*options), [flags] { return options_from(*flags); });
    });
}

void add_check_config_command(CLI::App& app, int& status) {
    auto flags = std::make_shared<RunFlags>();
    auto* check = app.add_subcommand("check-config", "Validate a config file and its policy");
    check->add_option("--config", flags->config_file, "TOML config file")
        ->required()
        ->check(CLI::ExistingFile);
    check->add_option("--policy", flags->policy, "Policy TOML file")->check(CLI::ExistingFile);
    check->callback([flags, &status] {
        auto options = options_from(*flags);
        auto checked = options ? check_options(std::move(*options))
                               : Result<std::string>(make_error(options.error()));
        if (!checked) {
            status = fail(checked.error());
            return;
        }
        std::printf("%s\n", checked->c_str());
        status = 0;
    });
}

}  // namespace tlsgate::app
