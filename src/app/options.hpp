#pragma once
// Everything `tlsgate run` needs, from embedded defaults, a TOML config file and flags (in that
// order of precedence, flags last).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "listen/listen_spec.hpp"
#include "listen/socks5.hpp"
#include "policy/auto_passthrough.hpp"
#include "policy/policy.hpp"
#include "relay/worker_context.hpp"

namespace tlsgate::app {

// What is recorded about intercepted traffic beyond the connection log ([record] in the config).
struct RecordOptions {
    std::vector<std::string> sinks = {"sqlite"};  // "sqlite", "jsonl"; empty: no flow records
    std::filesystem::path db;                     // default: DATA_DIR/flows.db
    std::filesystem::path jsonl;                  // default: DATA_DIR/flows.jsonl
    bool capture_bodies = false;
    std::size_t body_capture_limit = 1024 * 1024;
    std::vector<std::string> redact_headers = {"authorization", "proxy-authorization", "cookie",
                                               "set-cookie"};
    std::size_t queue_capacity = 10000;
    std::filesystem::path key_log;  // NSS key log of both legs; empty: none
    std::filesystem::path pcap;     // synthesized plaintext packets; empty: none
    int writer_delay_ms = 0;        // slows the flow writer per batch (backpressure tests)
};

struct RunOptions {
    std::vector<listen::ListenSpec> listeners;  // default: explicit@127.0.0.1:8080
    std::filesystem::path data_dir;             // default: ~/.local/share/tlsgate
    std::filesystem::path ca_dir;               // default: the data dir
    // The CA key in a PKCS#11 token instead of CA_DIR/ca.key (uri empty: the file).
    pki::TokenKeySpec ca_token_key;
    std::vector<std::string> upstream_ca_files;
    // More keys known to be used for interception ("SPKI-SHA256-HEX NAME" lines), refused in
    // upstream chains like the built-in ones.
    std::vector<std::string> interception_root_files;
    bool system_trust = true;
    std::string policy_file;
    std::optional<policy::PolicyConfig> inline_policy;  // a [policy] table in the config file
    int workers = 0;                                    // 0: one per CPU core
    std::filesystem::path connection_log;               // default: DATA_DIR/connections.jsonl
    relay::Timeouts timeouts;
    std::size_t leaf_cache_size = 10000;
    int shutdown_grace_seconds = 5;
    std::string log_level = "info";
    std::vector<std::pair<std::string, IpAddress>> static_hosts;  // --resolve NAME=ADDRESS
    listen::Socks5AuthConfig socks5;
    bool spoof_source = false;        // tproxy listeners connect upstream from the client's address
    std::size_t max_connections = 0;  // 0: unlimited (descriptors are the bound)
    std::size_t max_connections_per_client = 0;  // 0: unlimited
    RecordOptions record;
    // [auto_passthrough]: learn exemptions for hosts whose clients refuse the minted certificate.
    bool auto_passthrough = false;
    policy::AutoPassthroughSettings auto_passthrough_settings;
    std::string user;  // drop privileges to this user after binding (when started as root)
    // [portal]: who operates the gateway, shown on the install page.
    std::string portal_operator, portal_contact, portal_notice;
};

// "name=address" for --resolve and the config's resolve table.
Result<std::pair<std::string, IpAddress>> parse_static_host(const std::string& text);

std::filesystem::path default_data_dir();

// Reads a TOML config file into `options` (keys documented in the README). Unknown keys are
// errors, so a typo never silently falls back to a default.
Result<void> apply_config_file(const std::filesystem::path& file, RunOptions& options);

// Fills in what neither the config nor the flags set.
void apply_defaults(RunOptions& options);

}  // namespace tlsgate::app
