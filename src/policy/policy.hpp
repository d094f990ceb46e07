#pragma once
// The interception policy: ordered rules, first match wins, compiled into a matcher whose cost
// depends on the number of labels in the host name, not on the number of rules.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip.hpp"
#include "common/result.hpp"

namespace tlsgate::policy {

enum class Action { intercept, passthrough, block };

const char* to_string(Action action);
std::optional<Action> parse_action(std::string_view text);

// What an intercepted client sees when the upstream certificate fails verification. mirror: the
// client handshake completes with a leaf from the separate untrusted CA that keeps upstream's
// names and dates, so the client's own checks fail the way they would directly (an HTTP client
// that goes ahead anyway gets a page explaining the refusal, never the upstream). block: a fatal
// handshake_failure alert.
enum class UpstreamErrorAction { mirror, block };

const char* to_string(UpstreamErrorAction action);
std::optional<UpstreamErrorAction> parse_upstream_error_action(std::string_view text);

// A host pattern in canonical form ("*.Example.COM." -> "*.example.com"), or nullopt when it is
// not one of: "*", "name", "*.name", ".name" with a name that normalize_hostname accepts. The
// TOML loader uses it to report a bad pattern with its file and line; compile() checks again.
std::optional<std::string> normalize_host_pattern(std::string_view pattern);

struct PortRange {
    std::uint16_t first = 0;
    std::uint16_t last = 0;
    bool contains(std::uint16_t port) const { return port >= first && port <= last; }
};

// A rule matches when every criterion it names matches (a criterion left empty matches
// anything). Host patterns: "example.com" that name only, "*.example.com" any subdomain but not
// the name itself, ".example.com" the name and any subdomain.
struct Rule {
    Action action = Action::intercept;
    std::string name;  // shown in logs; defaults to "rule N"
    std::vector<std::string> hosts;
    std::vector<Cidr> cidrs;    // destination addresses
    std::vector<Cidr> sources;  // client addresses (e.g. "traffic leaving these prefixes")
    std::vector<PortRange> ports;
    // Only for intercept rules; nullopt: the policy's on_upstream_error.
    std::optional<UpstreamErrorAction> on_upstream_error;
};

struct PolicyConfig {
    Action default_action = Action::intercept;
    // For the default action and every rule that does not set its own.
    UpstreamErrorAction on_upstream_error = UpstreamErrorAction::mirror;
    std::vector<Rule> rules;
};

struct Query {
    std::string_view host;  // normalized host name (see normalize_hostname); empty when unknown
    std::optional<IpAddress> destination;
    std::uint16_t port = 0;
    std::optional<IpAddress> source;  // the client
};

struct Decision {
    Action action = Action::intercept;
    int rule_index = -1;         // -1: the default action
    std::string_view rule_name;  // "default" for the default; valid while the Policy lives
    UpstreamErrorAction on_upstream_error = UpstreamErrorAction::mirror;
};

class Policy {
public:
    // Validates patterns (a host pattern must normalize, a rule needs at least one criterion).
    static Result<std::shared_ptr<const Policy>> compile(PolicyConfig config);
    // The built-in default: intercept everything.
    static std::shared_ptr<const Policy> intercept_all();

    Decision decide(const Query& query) const;
    std::size_t rule_count() const;
    Action default_action() const;
    UpstreamErrorAction default_upstream_error_action() const;
    // Rules whose on_upstream_error differs from the default (check-config lists them).
    std::vector<std::string_view> rules_overriding_upstream_error_action() const;

    ~Policy();
    Policy(const Policy&) = delete;
    Policy& operator=(const Policy&) = delete;

private:
    struct Compiled;
    explicit Policy(std::unique_ptr<Compiled> compiled);
    std::unique_ptr<Compiled> compiled_;
};

// Parses the policy TOML format documented in the README:
//   default = "intercept"; on_upstream_error = "mirror"    # or "block"
//   [[rules]]
//   name = "banks"; action = "passthrough"; hosts = [".bank.example"]; cidrs = ["192.0.2.0/24"]
//   ports = [443, "8000-8999"]; hosts_file = "names.txt"   # one pattern per line, '#' comments
//   on_upstream_error = "block"                            # intercept rules only
// `base_dir` resolves relative hosts_file paths.
Result<PolicyConfig> parse_policy_toml(std::string_view text, const std::string& base_dir);
Result<PolicyConfig> load_policy_file(const std::string& path);

}  // namespace tlsgate::policy
