// Feeds arbitrary text to the policy loader. Whatever it accepts must compile (the loader
// validates every rule, so "parsed but failed to compile" is a bug), and the compiled matcher
// must agree with a plain first-match scan of the rules on hosts derived from the patterns.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.hpp"

using namespace tlsgate;
using namespace tlsgate::policy;

namespace {

bool scan_pattern_matches(std::string_view pattern, std::string_view host) {
    if (host.empty()) {
        return false;
    }
    if (pattern == "*") {
        return true;
    }
    const auto is_strict_subdomain = [&](std::string_view name) {
        return host.size() > name.size() + 1 && host.ends_with(name) &&
               host[host.size() - name.size() - 1] == '.';
    };
    if (pattern.starts_with("*.")) {
        return is_strict_subdomain(pattern.substr(2));
    }
    if (pattern.starts_with(".")) {
        return host == pattern.substr(1) || is_strict_subdomain(pattern.substr(1));
    }
    return host == pattern;
}

// The policy reads a network in the IPv4-mapped form as the IPv4 network.
bool scan_cidr_contains(const Cidr& cidr, const IpAddress& address) {
    const IpAddress network = cidr.network.unmapped();
    if (!network.is_v6 && cidr.prefix_length >= 96) {
        return Cidr{network, cidr.prefix_length - 96}.contains(address);
    }
    return cidr.contains(address);
}

int scan_decide(const std::vector<Rule>& rules, const Query& query) {
    for (std::size_t i = 0; i < rules.size(); ++i) {
        const Rule& rule = rules[i];
        const bool host_ok =
            rule.hosts.empty() ||
            std::any_of(rule.hosts.begin(), rule.hosts.end(), [&](const std::string& pattern) {
                return scan_pattern_matches(pattern, query.host);
            });
        const bool port_ok =
            rule.ports.empty() ||
            std::any_of(rule.ports.begin(), rule.ports.end(),
                        [&](const PortRange& range) { return range.contains(query.port); });
        const bool address_ok =
            rule.cidrs.empty() ||
            (query.destination &&
             std::any_of(rule.cidrs.begin(), rule.cidrs.end(), [&](const Cidr& cidr) {
                 return scan_cidr_contains(cidr, *query.destination);
             }));
        const bool source_ok =
            rule.sources.empty() ||
            (query.source &&
             std::any_of(rule.sources.begin(), rule.sources.end(), [&](const Cidr& cidr) {
                 return scan_cidr_contains(cidr, *query.source);
             }));
        if (host_ok && port_ok && address_ok && source_ok) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // A base directory that does not exist keeps relative hosts_file paths off the disk.
    auto config = parse_policy_toml(text, "/nonexistent/tlsgate-fuzz");
    if (!config) {
        return 0;
    }
    const std::vector<Rule> rules = config->rules;  // the loader already normalized the patterns
    auto policy = Policy::compile(std::move(*config));
    if (!policy) {
        __builtin_trap();
    }

    std::vector<std::string> hosts = {"", "example.com", "www.bank.example", "a.b.c.d.example"};
    for (const Rule& rule : rules) {
        for (const std::string& pattern : rule.hosts) {
            std::string_view anchor = pattern;
            if (anchor.starts_with("*.")) {
                anchor.remove_prefix(2);
            } else if (anchor.starts_with(".")) {
                anchor.remove_prefix(1);
            }
            hosts.emplace_back(anchor);
            hosts.push_back("x." + std::string(anchor));
            if (hosts.size() > 64) {
                break;
            }
        }
    }
    static const std::optional<IpAddress> destinations[] = {
        std::nullopt, IpAddress::parse("192.0.2.1"), IpAddress::parse("::ffff:10.0.0.1"),
        IpAddress::parse("2001:db8::1")};
    const Policy& compiled = **policy;
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        const Query query{hosts[i], destinations[i % std::size(destinations)],
                          static_cast<std::uint16_t>(i % 3 == 0 ? 443 : 8080)};
        const Decision decision = compiled.decide(query);
        if (decision.rule_index != scan_decide(rules, query)) {
            __builtin_trap();
        }
        if (decision.rule_index < 0 && decision.action != compiled.default_action()) {
            __builtin_trap();
        }
    }
    return 0;
}
