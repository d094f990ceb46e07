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
#include "policy_reference.hpp"

using namespace tlsgate;
using namespace tlsgate::policy;

namespace {

int scan_decide(const std::vector<Rule>& rules, const Query& query) {
    return reference::decide(rules, query);
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
