#pragma once
// The policy's meaning written the slow, obvious way: a scan of the rules in order. The unit tests
// and the fuzz target check the compiled matcher against it, so both share this one copy.
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.hpp"

namespace tlsgate::policy::reference {

inline bool pattern_matches(std::string_view pattern, std::string_view host) {
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
inline bool cidr_contains(const Cidr& cidr, const IpAddress& address) {
    const IpAddress network = cidr.network.unmapped();
    if (!network.is_v6 && cidr.prefix_length >= 96) {
        return Cidr{network, cidr.prefix_length - 96}.contains(address);
    }
    return cidr.contains(address);
}

inline bool any_contains(const std::vector<Cidr>& cidrs, const std::optional<IpAddress>& address) {
    return cidrs.empty() ||
           (address && std::any_of(cidrs.begin(), cidrs.end(), [&](const Cidr& cidr) {
                return cidr_contains(cidr, *address);
            }));
}

// The index of the first rule that matches, or -1 for the default.
inline int decide(const std::vector<Rule>& rules, const Query& query) {
    for (std::size_t i = 0; i < rules.size(); ++i) {
        const Rule& rule = rules[i];
        const bool host_ok =
            rule.hosts.empty() ||
            std::any_of(rule.hosts.begin(), rule.hosts.end(), [&](const std::string& pattern) {
                return pattern_matches(pattern, query.host);
            });
        const bool port_ok =
            rule.ports.empty() ||
            std::any_of(rule.ports.begin(), rule.ports.end(),
                        [&](const PortRange& range) { return range.contains(query.port); });
        if (host_ok && port_ok && any_contains(rule.cidrs, query.destination) &&
            any_contains(rule.sources, query.source)) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

}  // namespace tlsgate::policy::reference
