#include "policy/policy.hpp"
#include "policy_reference.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "policy/policy_toml.hpp"

namespace tlsgate::policy {
namespace {

// gmock's HasSubstr would need libgmock; this reads as well.
::testing::AssertionResult mentions(const std::string& text, std::string_view part) {
    if (text.find(part) != std::string::npos) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "\"" << text << "\" does not mention \"" << part << "\"";
}

std::shared_ptr<const Policy> compile_or_die(PolicyConfig config) {
    auto policy = Policy::compile(std::move(config));
    EXPECT_TRUE(policy.ok()) << (policy.ok() ? "" : policy.error());
    return policy.ok() ? *policy : Policy::intercept_all();
}

Rule host_rule(Action action, std::vector<std::string> hosts, std::string name = {}) {
    Rule rule;
    rule.action = action;
    rule.name = std::move(name);
    rule.hosts = std::move(hosts);
    return rule;
}

Query host_query(std::string_view host) {
    Query query;
    query.host = host;
    query.port = 443;
    return query;
}

Query address_query(std::string_view address, std::uint16_t port, std::string_view host = {}) {
    Query query;
    query.host = host;
    query.destination = IpAddress::parse(address);
    EXPECT_TRUE(query.destination.has_value()) << address;
    query.port = port;
    return query;
}

Cidr cidr(std::string_view text) {
    auto parsed = Cidr::parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(Cidr{});
}

// True when `host` is matched by a one-rule policy with `pattern`.
bool pattern_matches(std::string_view pattern, std::string_view host) {
    PolicyConfig config;
    config.default_action = Action::intercept;
    config.rules.push_back(host_rule(Action::block, {std::string(pattern)}));
    return compile_or_die(std::move(config))->decide(host_query(host)).rule_index == 0;
}

// ---------------------------------------------------------------------------------------------
// Actions and patterns

TEST(PolicyAction, RoundTripsThroughText) {
    for (Action action : {Action::intercept, Action::passthrough, Action::block}) {
        EXPECT_EQ(parse_action(to_string(action)), action);
    }
    EXPECT_STREQ(to_string(Action::passthrough), "passthrough");
    EXPECT_FALSE(parse_action("allow").has_value());
    EXPECT_FALSE(parse_action("").has_value());
    EXPECT_FALSE(parse_action("Block").has_value());
}

TEST(PolicyPattern, NormalizesAndRejects) {
    EXPECT_EQ(normalize_host_pattern("Example.COM."), "example.com");
    EXPECT_EQ(normalize_host_pattern("*.Example.com"), "*.example.com");
    EXPECT_EQ(normalize_host_pattern(".Example.com."), ".example.com");
    EXPECT_EQ(normalize_host_pattern("*"), "*");
    for (std::string_view bad :
         {"", ".", "*.", "**.example.com", "a.*.example.com", "example.*", ".*.example.com",
          "exa mple.com", "a..b", "-bad.example", "*example.com", "..example.com"}) {
        EXPECT_FALSE(normalize_host_pattern(bad).has_value()) << bad;
    }
}

TEST(PolicyMatch, ExactPatternMatchesOnlyThatName) {
    EXPECT_TRUE(pattern_matches("example.com", "example.com"));
    EXPECT_FALSE(pattern_matches("example.com", "www.example.com"));
    EXPECT_FALSE(pattern_matches("example.com", "com"));
    EXPECT_FALSE(pattern_matches("example.com", "badexample.com"));
    EXPECT_FALSE(pattern_matches("example.com", "example.co"));
}

TEST(PolicyMatch, WildcardMatchesSubdomainsAtAnyDepthButNotTheName) {
    EXPECT_TRUE(pattern_matches("*.example.com", "www.example.com"));
    EXPECT_TRUE(pattern_matches("*.example.com", "a.b.c.example.com"));
    EXPECT_FALSE(pattern_matches("*.example.com", "example.com"));
    EXPECT_FALSE(pattern_matches("*.example.com", "badexample.com"));
    EXPECT_FALSE(pattern_matches("*.example.com", "www.example.org"));
}

TEST(PolicyMatch, LeadingDotMatchesTheNameAndSubdomains) {
    EXPECT_TRUE(pattern_matches(".example.com", "example.com"));
    EXPECT_TRUE(pattern_matches(".example.com", "www.example.com"));
    EXPECT_TRUE(pattern_matches(".example.com", "x.y.example.com"));
    EXPECT_FALSE(pattern_matches(".example.com", "badexample.com"));
    EXPECT_FALSE(pattern_matches(".example.com", "com"));
}

TEST(PolicyMatch, StarMatchesAnyNonEmptyHost) {
    EXPECT_TRUE(pattern_matches("*", "example.com"));
    EXPECT_TRUE(pattern_matches("*", "localhost"));
    EXPECT_FALSE(pattern_matches("*", ""));
}

TEST(PolicyMatch, PatternsAreNormalized) {
    EXPECT_TRUE(pattern_matches("EXAMPLE.com.", "example.com"));
    EXPECT_TRUE(pattern_matches("*.Example.Com", "www.example.com"));
    EXPECT_TRUE(pattern_matches(".EXAMPLE.COM.", "example.com"));
}

TEST(PolicyMatch, EmptyHostNeverMatchesHostPatterns) {
    for (std::string_view pattern : {"example.com", "*.example.com", ".example.com", "*", "com"}) {
        EXPECT_FALSE(pattern_matches(pattern, "")) << pattern;
    }
}

TEST(PolicyMatch, TopLevelAndSingleLabelNames) {
    EXPECT_TRUE(pattern_matches("*.com", "example.com"));
    EXPECT_FALSE(pattern_matches("*.com", "com"));
    EXPECT_TRUE(pattern_matches("localhost", "localhost"));
    EXPECT_TRUE(pattern_matches(".internal", "db.internal"));
}

// ---------------------------------------------------------------------------------------------
// Ordering, criteria and the default

TEST(PolicyDecide, NoMatchGivesTheDefault) {
    PolicyConfig config;
    config.default_action = Action::passthrough;
    config.rules.push_back(host_rule(Action::block, {"blocked.example"}));
    auto policy = compile_or_die(std::move(config));
    const Decision decision = policy->decide(host_query("other.example"));
    EXPECT_EQ(decision.action, Action::passthrough);
    EXPECT_EQ(decision.rule_index, -1);
    EXPECT_EQ(decision.rule_name, "default");
    EXPECT_EQ(policy->default_action(), Action::passthrough);
    EXPECT_EQ(policy->rule_count(), 1u);
}

TEST(PolicyDecide, InterceptAllHasNoRules) {
    auto policy = Policy::intercept_all();
    ASSERT_NE(policy, nullptr);
    EXPECT_EQ(policy->rule_count(), 0u);
    EXPECT_EQ(policy->default_action(), Action::intercept);
    const Decision decision = policy->decide(address_query("192.0.2.1", 443, "example.com"));
    EXPECT_EQ(decision.action, Action::intercept);
    EXPECT_EQ(decision.rule_index, -1);
    EXPECT_EQ(decision.rule_name, "default");
}

TEST(PolicyDecide, EmptyPolicyCompiles) {
    PolicyConfig config;
    config.default_action = Action::block;
    auto policy = compile_or_die(std::move(config));
    EXPECT_EQ(policy->decide(host_query("example.com")).action, Action::block);
}

TEST(PolicyDecide, FirstMatchWinsWhicheverPatternKindComesFirst) {
    PolicyConfig config;
    config.rules.push_back(host_rule(Action::passthrough, {"*.example.com"}, "broad"));
    config.rules.push_back(host_rule(Action::block, {"www.example.com"}, "narrow"));
    config.rules.push_back(host_rule(Action::block, {"example.com"}, "apex"));
    config.rules.push_back(host_rule(Action::passthrough, {".example.com"}, "dotted"));
    auto policy = compile_or_die(std::move(config));

    Decision decision = policy->decide(host_query("www.example.com"));
    EXPECT_EQ(decision.rule_index, 0);
    EXPECT_EQ(decision.rule_name, "broad");
    EXPECT_EQ(decision.action, Action::passthrough);

    decision = policy->decide(host_query("example.com"));
    EXPECT_EQ(decision.rule_index, 2);
    EXPECT_EQ(decision.rule_name, "apex");
    EXPECT_EQ(decision.action, Action::block);
}

TEST(PolicyDecide, SpecificRuleBeforeBroadRuleWins) {
    PolicyConfig config;
    config.rules.push_back(host_rule(Action::block, {"ads.example.com"}));
    config.rules.push_back(host_rule(Action::passthrough, {".example.com"}));
    config.rules.push_back(host_rule(Action::intercept, {"*"}));
    config.default_action = Action::block;
    auto policy = compile_or_die(std::move(config));
    EXPECT_EQ(policy->decide(host_query("ads.example.com")).rule_index, 0);
    EXPECT_EQ(policy->decide(host_query("ads.example.com")).rule_name, "rule 1");
    EXPECT_EQ(policy->decide(host_query("cdn.ads.example.com")).rule_index, 1);
    EXPECT_EQ(policy->decide(host_query("example.com")).rule_index, 1);
    EXPECT_EQ(policy->decide(host_query("example.org")).rule_index, 2);
    EXPECT_EQ(policy->decide(host_query("example.org")).rule_name, "rule 3");
    EXPECT_EQ(policy->decide(host_query("")).rule_index, -1);
}

TEST(PolicyDecide, HostlessRuleOrderedAmongHostRules) {
    PolicyConfig config;
    config.rules.push_back(host_rule(Action::block, {"a.example"}));
    Rule by_port;
    by_port.action = Action::passthrough;
    by_port.ports = {{443, 443}};
    config.rules.push_back(by_port);
    config.rules.push_back(host_rule(Action::block, {"b.example"}));
    auto policy = compile_or_die(std::move(config));
    EXPECT_EQ(policy->decide(host_query("a.example")).rule_index, 0);
    EXPECT_EQ(policy->decide(host_query("b.example")).rule_index, 1);
    Query other_port = host_query("b.example");
    other_port.port = 80;
    EXPECT_EQ(policy->decide(other_port).rule_index, 2);
}

TEST(PolicyDecide, ARuleMatchesOnlyWhenAllItsCriteriaMatch) {
    PolicyConfig config;
    Rule rule = host_rule(Action::passthrough, {".bank.example"});
    rule.cidrs = {cidr("192.0.2.0/24")};
    rule.ports = {{443, 443}, {8443, 8443}};
    config.rules.push_back(rule);
    auto policy = compile_or_die(std::move(config));

    EXPECT_EQ(policy->decide(address_query("192.0.2.7", 443, "www.bank.example")).rule_index, 0);
    EXPECT_EQ(policy->decide(address_query("192.0.2.7", 8443, "bank.example")).rule_index, 0);
    // One criterion off each time.
    EXPECT_EQ(policy->decide(address_query("192.0.2.7", 443, "www.other.example")).rule_index, -1);
    EXPECT_EQ(policy->decide(address_query("198.51.100.1", 443, "bank.example")).rule_index, -1);
    EXPECT_EQ(policy->decide(address_query("192.0.2.7", 80, "bank.example")).rule_index, -1);
    // No destination known: a CIDR criterion cannot match.
    EXPECT_EQ(policy->decide(host_query("bank.example")).rule_index, -1);
}

TEST(PolicyDecide, CidrOnlyAndPortOnlyRulesIgnoreTheHost) {
    PolicyConfig config;
    Rule by_network;
    by_network.action = Action::block;
    by_network.cidrs = {cidr("10.0.0.0/8")};
    Rule by_port;
    by_port.action = Action::passthrough;
    by_port.ports = {{993, 993}};
    config.rules = {by_network, by_port};
    auto policy = compile_or_die(std::move(config));

    EXPECT_EQ(policy->decide(address_query("10.1.2.3", 443)).rule_index, 0);
    EXPECT_EQ(policy->decide(address_query("10.1.2.3", 443, "example.com")).rule_index, 0);
    EXPECT_EQ(policy->decide(address_query("11.1.2.3", 993, "example.com")).rule_index, 1);
    EXPECT_EQ(policy->decide(address_query("11.1.2.3", 443, "example.com")).rule_index, -1);
}

TEST(PolicyDecide, CidrAndPortTogether) {
    PolicyConfig config;
    Rule rule;
    rule.action = Action::block;
    rule.cidrs = {cidr("203.0.113.0/25"), cidr("2001:db8::/32")};
    rule.ports = {{25, 25}, {587, 587}};
    config.rules.push_back(rule);
    auto policy = compile_or_die(std::move(config));
    EXPECT_EQ(policy->decide(address_query("203.0.113.100", 587)).rule_index, 0);
    EXPECT_EQ(policy->decide(address_query("203.0.113.200", 587)).rule_index, -1);
    EXPECT_EQ(policy->decide(address_query("2001:db8:1::25", 25)).rule_index, 0);
    EXPECT_EQ(policy->decide(address_query("2001:db8:1::25", 443)).rule_index, -1);
}

TEST(PolicyDecide, Ipv6AndMappedDestinations) {
    PolicyConfig config;
    Rule v4;
    v4.action = Action::passthrough;
    v4.cidrs = {cidr("192.0.2.0/24")};
    Rule v6;
    v6.action = Action::block;
    v6.cidrs = {cidr("2001:db8::/32")};
    config.rules = {v4, v6};
    auto policy = compile_or_die(std::move(config));

    EXPECT_EQ(policy->decide(address_query("::ffff:192.0.2.9", 443)).rule_index, 0);
    EXPECT_EQ(policy->decide(address_query("::ffff:198.51.100.9", 443)).rule_index, -1);
    EXPECT_EQ(policy->decide(address_query("2001:db8::1", 443)).rule_index, 1);
    EXPECT_EQ(policy->decide(address_query("2001:db9::1", 443)).rule_index, -1);
    // The IPv4-compatible form is not the mapped form.
    EXPECT_EQ(policy->decide(address_query("::192.0.2.9", 443)).rule_index, -1);
}

TEST(PolicyDecide, MappedNetworkMeansTheIpv4Network) {
    PolicyConfig config;
    Rule rule;
    rule.action = Action::block;
    rule.cidrs = {cidr("::ffff:192.0.2.0/120")};
    config.rules.push_back(rule);
    auto policy = compile_or_die(std::move(config));
    EXPECT_EQ(policy->decide(address_query("192.0.2.200", 443)).rule_index, 0);
    EXPECT_EQ(policy->decide(address_query("::ffff:192.0.2.200", 443)).rule_index, 0);
    EXPECT_EQ(policy->decide(address_query("192.0.3.1", 443)).rule_index, -1);
}

TEST(PolicyDecide, PortRangesAreInclusive) {
    PolicyConfig config;
    Rule rule;
    rule.action = Action::block;
    rule.ports = {{8000, 8999}, {65535, 65535}, {1, 1}};
    config.rules.push_back(rule);
    auto policy = compile_or_die(std::move(config));
    for (std::uint16_t port : {1, 8000, 8500, 8999, 65535}) {
        EXPECT_EQ(policy->decide(address_query("192.0.2.1", port)).rule_index, 0) << port;
    }
    for (std::uint16_t port : {0, 2, 7999, 9000, 65534}) {
        EXPECT_EQ(policy->decide(address_query("192.0.2.1", port)).rule_index, -1) << port;
    }
}

TEST(PolicyDecide, SamePatternInManyRulesKeepsOrder) {
    PolicyConfig config;
    Rule wrong_port = host_rule(Action::block, {"x.example", "x.example"});
    wrong_port.ports = {{80, 80}};
    config.rules.push_back(wrong_port);
    config.rules.push_back(host_rule(Action::passthrough, {".x.example", "x.example"}));
    config.rules.push_back(host_rule(Action::block, {"x.example"}));
    auto policy = compile_or_die(std::move(config));
    EXPECT_EQ(policy->decide(host_query("x.example")).rule_index, 1);
    Query port80 = host_query("x.example");
    port80.port = 80;
    EXPECT_EQ(policy->decide(port80).rule_index, 0);
}

TEST(PolicyDecide, RuleNameOutlivesTheConfig) {
    std::shared_ptr<const Policy> policy;
    {
        PolicyConfig config;
        config.rules.push_back(host_rule(Action::block, {"a.example"}, "named rule"));
        policy = compile_or_die(std::move(config));
    }
    EXPECT_EQ(policy->decide(host_query("a.example")).rule_name, "named rule");
}

// ---------------------------------------------------------------------------------------------
// Compile errors

TEST(PolicyCompile, RuleWithoutCriteriaIsAnErrorNamingTheRule) {
    PolicyConfig config;
    config.rules.push_back(host_rule(Action::block, {"a.example"}));
    Rule empty;
    empty.name = "catch-nothing";
    config.rules.push_back(empty);
    auto policy = Policy::compile(std::move(config));
    ASSERT_FALSE(policy.ok());
    EXPECT_TRUE(mentions(policy.error(), "catch-nothing"));
    EXPECT_TRUE(mentions(policy.error(), "criterion"));
}

TEST(PolicyCompile, UnnamedRuleIsNamedByPosition) {
    PolicyConfig config;
    config.rules.push_back(host_rule(Action::block, {"a.example"}));
    config.rules.push_back(Rule{});
    auto policy = Policy::compile(std::move(config));
    ASSERT_FALSE(policy.ok());
    EXPECT_TRUE(mentions(policy.error(), "rule 2"));
}

TEST(PolicyCompile, InvalidPatternIsAnErrorNamingPatternAndRule) {
    PolicyConfig config;
    config.rules.push_back(host_rule(Action::block, {"good.example", "bad..example"}, "mine"));
    auto policy = Policy::compile(std::move(config));
    ASSERT_FALSE(policy.ok());
    EXPECT_TRUE(mentions(policy.error(), "bad..example"));
    EXPECT_TRUE(mentions(policy.error(), "mine"));
}

TEST(PolicyCompile, InvalidPortRangeIsAnError) {
    for (PortRange range : {PortRange{0, 10}, PortRange{20, 10}, PortRange{0, 0}}) {
        PolicyConfig config;
        Rule rule;
        rule.ports = {range};
        config.rules.push_back(rule);
        EXPECT_FALSE(Policy::compile(std::move(config)).ok());
    }
}

// ---------------------------------------------------------------------------------------------
// The compiled matcher against the reference scan (tests/support/policy_reference.hpp).

int reference_decide(const std::vector<Rule>& rules, const Query& query) {
    return reference::decide(rules, query);
}

TEST(PolicyDecide, AgreesWithAPlainScanOnRandomPolicies) {
    // A tiny label alphabet makes patterns of every kind collide with each other and with queries.
    std::mt19937 random(12345);
    const std::vector<std::string> labels = {"a", "b", "c", "ab"};
    const auto random_name = [&](int max_labels) {
        const int count = 1 + static_cast<int>(random() % max_labels);
        std::string name;
        for (int i = 0; i < count; ++i) {
            name += (i ? "." : "") + labels[random() % labels.size()];
        }
        return name;
    };
    for (int round = 0; round < 200; ++round) {
        std::vector<Rule> rules;
        const int rule_count = 1 + static_cast<int>(random() % 12);
        for (int r = 0; r < rule_count; ++r) {
            Rule rule;
            rule.action = static_cast<Action>(random() % 3);
            const int host_count = static_cast<int>(random() % 3);
            for (int h = 0; h < host_count; ++h) {
                const char* prefixes[] = {"", "*.", "."};
                rule.hosts.push_back(random() % 20 == 0 ? "*"
                                                        : prefixes[random() % 3] + random_name(3));
            }
            if (random() % 3 == 0) {
                rule.ports = {{443, 443}};
            }
            if (random() % 4 == 0) {
                rule.cidrs = {cidr(random() % 2 ? "10.0.0.0/8" : "2001:db8::/32")};
            }
            if (rule.hosts.empty() && rule.ports.empty() && rule.cidrs.empty()) {
                rule.ports = {{80, 80}};
            }
            rules.push_back(rule);
        }
        PolicyConfig config;
        config.rules = rules;
        auto policy = compile_or_die(std::move(config));
        for (int q = 0; q < 50; ++q) {
            const std::string host = random() % 10 == 0 ? std::string() : random_name(5);
            const char* addresses[] = {"10.1.1.1", "::ffff:10.2.2.2", "2001:db8::5", "192.0.2.1"};
            Query query = address_query(addresses[random() % 4], random() % 2 ? 443 : 80, host);
            if (random() % 5 == 0) {
                query.destination.reset();
            }
            ASSERT_EQ(policy->decide(query).rule_index, reference_decide(rules, query))
                << "round " << round << " host " << host;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 100,000 patterns

std::string numbered_name(int i) {
    return "host" + std::to_string(i) + ".zone" + std::to_string(i % 97) + ".example";
}

TEST(PolicyScale, HundredThousandHostRulesDecideCorrectly) {
    constexpr int kRules = 100'000;
    PolicyConfig config;
    config.default_action = Action::intercept;
    config.rules.reserve(kRules + 2);
    for (int i = 0; i < kRules; ++i) {
        // Cycle through the three kinds; actions cycle too, so a wrong index shows up.
        const std::string name = numbered_name(i);
        const std::string pattern = i % 3 == 0 ? name : (i % 3 == 1 ? "*." + name : "." + name);
        config.rules.push_back(host_rule(static_cast<Action>(i % 3), {pattern}));
    }
    // A late catch-all: only reached by hosts no earlier rule names.
    config.rules.push_back(host_rule(Action::block, {".example"}, "zone catch-all"));
    const std::vector<Rule> reference = config.rules;
    auto policy = compile_or_die(std::move(config));
    ASSERT_EQ(policy->rule_count(), static_cast<std::size_t>(kRules + 1));

    for (int i : {0, 1, 2, 3, 4, 5, 49'999, 50'000, 50'001, 99'997, 99'998, 99'999}) {
        const std::string name = numbered_name(i);
        const std::string sub = "www." + name;
        const std::string deep = "a.b." + name;
        for (const std::string& host : {name, sub, deep}) {
            const Decision decision = policy->decide(host_query(host));
            EXPECT_EQ(decision.rule_index, reference_decide(reference, host_query(host))) << host;
        }
        // Spot-check the expectations directly too.
        EXPECT_EQ(policy->decide(host_query(name)).rule_index, i % 3 == 1 ? kRules : i);
        EXPECT_EQ(policy->decide(host_query(sub)).rule_index, i % 3 == 0 ? kRules : i);
    }
    EXPECT_EQ(policy->decide(host_query("unknown.zone1.example")).rule_index, kRules);
    EXPECT_EQ(policy->decide(host_query("host1.zone1.example.org")).rule_index, -1);
    EXPECT_EQ(policy->decide(host_query("a.b.c.d")).rule_index, -1);
}

// ---------------------------------------------------------------------------------------------
// TOML

class TempDir {
public:
    TempDir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "policy_test.XXXXXX").string();
        path_ = mkdtemp(pattern.data());
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::string& path() const { return path_; }
    std::string write(const std::string& name, const std::string& contents) const {
        const std::string file = path_ + "/" + name;
        std::ofstream(file, std::ios::binary) << contents;
        return file;
    }

private:
    std::string path_;
};

PolicyConfig parse_ok(std::string_view text, const std::string& base_dir = {}) {
    auto config = parse_policy_toml(text, base_dir);
    EXPECT_TRUE(config.ok()) << (config.ok() ? "" : config.error()) << "\n" << text;
    return config.ok() ? *config : PolicyConfig{};
}

std::string parse_error(std::string_view text, const std::string& base_dir = {}) {
    auto config = parse_policy_toml(text, base_dir);
    EXPECT_FALSE(config.ok()) << text;
    return config.ok() ? std::string() : config.error();
}

TEST(PolicyToml, ParsesTheDocumentedExample) {
    TempDir dir;
    dir.write("names.txt", "# pinned apps\nApp.Pinned.example\n\n  *.cdn.example  # trailing\n");
    const PolicyConfig config = parse_ok(R"(
default = "block"

[[rules]]
name = "banks"
action = "passthrough"
hosts = ["bank.example", "*.bank.example", ".pinned.example"]
hosts_file = "names.txt"
cidrs = ["192.0.2.0/24", "2001:db8::/32"]
ports = [443, "8000-8999", "25"]

[[rules]]
action = "intercept"
hosts = ["*"]
)",
                                         dir.path());
    EXPECT_EQ(config.default_action, Action::block);
    ASSERT_EQ(config.rules.size(), 2u);
    const Rule& banks = config.rules[0];
    EXPECT_EQ(banks.name, "banks");
    EXPECT_EQ(banks.action, Action::passthrough);
    EXPECT_EQ(banks.hosts,
              (std::vector<std::string>{"bank.example", "*.bank.example", ".pinned.example",
                                        "app.pinned.example", "*.cdn.example"}));
    ASSERT_EQ(banks.cidrs.size(), 2u);
    EXPECT_EQ(banks.cidrs[0].to_string(), "192.0.2.0/24");
    EXPECT_EQ(banks.cidrs[1].to_string(), "2001:db8::/32");
    ASSERT_EQ(banks.ports.size(), 3u);
    EXPECT_EQ(banks.ports[0].first, 443);
    EXPECT_EQ(banks.ports[0].last, 443);
    EXPECT_EQ(banks.ports[1].first, 8000);
    EXPECT_EQ(banks.ports[1].last, 8999);
    EXPECT_EQ(banks.ports[2].first, 25);
    EXPECT_EQ(config.rules[1].name, "rule 2");
    EXPECT_EQ(config.rules[1].action, Action::intercept);

    auto policy = compile_or_die(config);
    EXPECT_EQ(policy->decide(address_query("192.0.2.5", 8080, "www.bank.example")).rule_name,
              "banks");
    EXPECT_EQ(policy->decide(address_query("192.0.2.5", 443, "x.cdn.example")).rule_name, "banks");
    EXPECT_EQ(policy->decide(address_query("192.0.2.5", 443, "other.example")).rule_name, "rule 2");
    EXPECT_EQ(policy->decide(address_query("192.0.2.5", 443)).action, Action::block);
}

TEST(PolicyToml, EmptyDocumentInterceptsEverything) {
    const PolicyConfig config = parse_ok("");
    EXPECT_EQ(config.default_action, Action::intercept);
    EXPECT_TRUE(config.rules.empty());
    EXPECT_EQ(parse_ok("default = \"passthrough\"").default_action, Action::passthrough);
}

TEST(PolicyToml, InlineTableRulesWork) {
    const PolicyConfig config = parse_ok(
        R"(rules = [{ action = "block", ports = [25] }, { action = "block", cidrs = ["10.0.0.0/8"] }])");
    ASSERT_EQ(config.rules.size(), 2u);
    EXPECT_EQ(config.rules[1].cidrs.size(), 1u);
}

struct ErrorCase {
    const char* text;
    std::vector<const char*> mentions;
};

TEST(PolicyToml, EveryErrorIsReportedWithContext) {
    const std::vector<ErrorCase> cases = {
        // Syntax, with the line.
        {"default = \n", {"policy:1"}},
        {"[[rules]]\naction = \"block\"\nports = [443\n", {"policy:"}},
        // Top level.
        {"defualt = \"block\"", {"unknown key", "defualt"}},
        {"default = 1", {"default", "string", "integer"}},
        {"default = \"allow\"", {"allow", "intercept, passthrough or block"}},
        {"rules = 1", {"rules", "array"}},
        {"rules = [1]", {"rules entry 1", "table"}},
        {"[rules]\naction = \"block\"", {"rules", "array"}},
        // Rules.
        {"[[rules]]\naction = \"block\"\nhost = [\"a.example\"]",
         {"unknown key", "\"host\"", "rule 1"}},
        {"[[rules]]\nhosts = [\"a.example\"]", {"missing action", "rule 1"}},
        {"[[rules]]\naction = 3\nhosts = [\"a.example\"]", {"action", "string"}},
        {"[[rules]]\naction = \"allow\"\nhosts = [\"a.example\"]", {"unknown action", "allow"}},
        {"[[rules]]\nname = 5\naction = \"block\"\nports = [1]", {"name", "string"}},
        {"[[rules]]\nname = \"\"\naction = \"block\"\nports = [1]", {"name", "empty"}},
        {"[[rules]]\nname = \"lazy\"\naction = \"block\"", {"lazy", "criterion"}},
        {"[[rules]]\naction = \"block\"\nports = [1]\n[[rules]]\nname = \"x\"\naction = "
         "\"block\"\nhosts = \"a.example\"",
         {"rule \"x\"", "hosts", "array", "string", "policy:7"}},
        {"[[rules]]\naction = \"block\"\nhosts = [1]", {"hosts entries", "strings"}},
        {"[[rules]]\nname = \"n\"\naction = \"block\"\nhosts = [\"ok.example\", \"bad..example\"]",
         {"bad..example", "rule \"n\"", "policy:4"}},
        {"[[rules]]\naction = \"block\"\nhosts = []", {"hosts", "empty"}},
        {"[[rules]]\naction = \"block\"\nhosts_file = 7", {"hosts_file", "string"}},
        {"[[rules]]\naction = \"block\"\ncidrs = \"10.0.0.0/8\"", {"cidrs", "array"}},
        {"[[rules]]\naction = \"block\"\ncidrs = [10]", {"cidrs entries", "strings"}},
        {"[[rules]]\naction = \"block\"\ncidrs = [\"10.0.0.0/33\"]",
         {"invalid CIDR", "10.0.0.0/33"}},
        {"[[rules]]\naction = \"block\"\ncidrs = [\"example.com\"]", {"invalid CIDR"}},
        {"[[rules]]\naction = \"block\"\ncidrs = []", {"cidrs", "empty"}},
        {"[[rules]]\naction = \"block\"\nports = 443", {"ports", "array"}},
        {"[[rules]]\naction = \"block\"\nports = []", {"ports", "empty"}},
        {"[[rules]]\naction = \"block\"\nports = [0]", {"invalid port 0"}},
        {"[[rules]]\naction = \"block\"\nports = [65536]", {"invalid port 65536"}},
        {"[[rules]]\naction = \"block\"\nports = [-1]", {"invalid port -1"}},
        {"[[rules]]\naction = \"block\"\nports = [\"9000-8000\"]", {"invalid port", "9000-8000"}},
        {"[[rules]]\naction = \"block\"\nports = [\"80-\"]", {"invalid port", "80-"}},
        {"[[rules]]\naction = \"block\"\nports = [\"-80\"]", {"invalid port"}},
        {"[[rules]]\naction = \"block\"\nports = [\"http\"]", {"invalid port", "http"}},
        {"[[rules]]\naction = \"block\"\nports = [\"1-2-3\"]", {"invalid port"}},
        {"[[rules]]\naction = \"block\"\nports = [\"0-10\"]", {"invalid port"}},
        {"[[rules]]\naction = \"block\"\nports = [\" 80\"]", {"invalid port"}},
        {"[[rules]]\naction = \"block\"\nports = [443.0]", {"ports entries", "float"}},
        {"[[rules]]\naction = \"block\"\nports = [true]", {"ports entries", "boolean"}},
        {"[[rules]]\naction = \"block\"\nports = [[443]]", {"ports entries", "array"}},
    };
    for (const ErrorCase& error_case : cases) {
        const std::string error = parse_error(error_case.text);
        for (const char* mention : error_case.mentions) {
            EXPECT_TRUE(mentions(error, mention)) << "input:\n" << error_case.text;
        }
    }
}

TEST(PolicyToml, DeepNestingIsRejectedBeforeParsing) {
    const std::string brackets = "x = " + std::string(10'000, '[') + std::string(10'000, ']');
    EXPECT_TRUE(mentions(parse_error(brackets), "nested deeper"));

    std::string dotted = "a";
    for (int i = 0; i < 10'000; ++i) {
        dotted += ".a";
    }
    EXPECT_TRUE(mentions(parse_error(dotted + " = 1"), "dotted key"));
    EXPECT_TRUE(mentions(parse_error("[" + dotted + "]"), "dotted key"));

    // Brackets and dots inside strings and comments are not structure.
    const std::string quiet =
        "# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ ....................................\n"
        "default = \"block\"\n"
        "[[rules]]\n"
        "name = \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \\\" "
        "..................................\"\n"
        "action = '''\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ "
        "...................................\n'''\n";
    EXPECT_TRUE(mentions(parse_error(quiet), "unknown action"));
    // Host lists put many dots on one line, inside strings.
    std::string many_hosts = "[[rules]]\naction = \"block\"\nhosts = [";
    for (int i = 0; i < 1000; ++i) {
        many_hosts += "\"a.b.c.d.e" + std::to_string(i) + ".example\", ";
    }
    many_hosts += "]\n";
    EXPECT_EQ(parse_ok(many_hosts).rules.at(0).hosts.size(), 1000u);
}

TEST(PolicyToml, OversizedTextIsRejected) {
    std::string huge = "# " + std::string(9 * 1024 * 1024, 'x') + "\n";
    EXPECT_TRUE(mentions(parse_error(huge), "larger than"));
}

TEST(PolicyToml, HostsFileErrors) {
    TempDir dir;
    dir.write("bad.txt", "good.example\n\n# comment\nbad..example\n");
    dir.write("empty.txt", "# nothing here\n\n   \n");
    const std::string rule = "[[rules]]\nname = \"files\"\naction = \"block\"\nhosts_file = ";

    std::string error = parse_error(rule + "\"bad.txt\"", dir.path());
    EXPECT_TRUE(mentions(error, "bad.txt:4"));
    EXPECT_TRUE(mentions(error, "bad..example"));
    EXPECT_TRUE(mentions(error, "files"));

    error = parse_error(rule + "\"empty.txt\"", dir.path());
    EXPECT_TRUE(mentions(error, "no patterns"));

    error = parse_error(rule + "\"missing.txt\"", dir.path());
    EXPECT_TRUE(mentions(error, dir.path() + "/missing.txt"));

    error = parse_error(rule + "\"/dev/zero\"", dir.path());
    EXPECT_TRUE(mentions(error, "not a regular file"));

    error = parse_error(rule + "\".\"", dir.path());
    EXPECT_TRUE(mentions(error, "not a regular file"));
}

TEST(PolicyToml, HostsFileCombinesWithHostsAndAcceptsCrLfAndAbsolutePaths) {
    TempDir dir;
    const std::string absolute = dir.write("list.txt", "One.example\r\n.two.example\r\n*\r\n");
    const PolicyConfig config = parse_ok(
        "[[rules]]\naction = \"block\"\nhosts = [\"zero.example\"]\n"
        "hosts_file = \"" +
            absolute + "\"",
        "/nonexistent-base");
    EXPECT_EQ(config.rules.at(0).hosts,
              (std::vector<std::string>{"zero.example", "one.example", ".two.example", "*"}));
}

TEST(PolicyToml, LoadPolicyFileResolvesHostsFileNextToIt) {
    TempDir dir;
    std::filesystem::create_directory(dir.path() + "/lists");
    dir.write("lists/pinned.txt", "pinned.example\n");
    const std::string path =
        dir.write("policy.toml",
                  "default = \"passthrough\"\n[[rules]]\naction = \"intercept\"\n"
                  "hosts_file = \"lists/pinned.txt\"\n");
    auto config = load_policy_file(path);
    ASSERT_TRUE(config.ok()) << config.error();
    EXPECT_EQ(config->default_action, Action::passthrough);
    EXPECT_EQ(config->rules.at(0).hosts, std::vector<std::string>{"pinned.example"});
}

TEST(PolicyToml, LoadPolicyFileErrorsMentionThePath) {
    TempDir dir;
    auto missing = load_policy_file(dir.path() + "/absent.toml");
    ASSERT_FALSE(missing.ok());
    EXPECT_TRUE(mentions(missing.error(), dir.path() + "/absent.toml"));

    const std::string path =
        dir.write("broken.toml", "default = \"intercept\"\n[[rules]]\nactoin = \"block\"\n");
    auto broken = load_policy_file(path);
    ASSERT_FALSE(broken.ok());
    EXPECT_TRUE(mentions(broken.error(), path + ":3"));
    EXPECT_TRUE(mentions(broken.error(), "actoin"));

    const std::string syntax = dir.write("syntax.toml", "default = \"intercept\"\n[[rules]\n");
    auto bad_syntax = load_policy_file(syntax);
    ASSERT_FALSE(bad_syntax.ok());
    EXPECT_TRUE(mentions(bad_syntax.error(), syntax + ":2"));
}

TEST(PolicyToml, PolicyFromAnEmbeddedTable) {
    TempDir dir;
    dir.write("names.txt", "embedded.example\n");
    auto document = parse_toml_bounded(R"(
[listen]
mode = "explicit"

[policy]
default = "block"
[[policy.rules]]
action = "intercept"
hosts_file = "names.txt"
)",
                                       "tlsgate.toml");
    ASSERT_TRUE(document.ok()) << document.error();
    const toml::table* section = (*document)["policy"].as_table();
    ASSERT_NE(section, nullptr);
    auto config = policy_from_toml(*section, dir.path());
    ASSERT_TRUE(config.ok()) << config.error();
    EXPECT_EQ(config->default_action, Action::block);
    EXPECT_EQ(config->rules.at(0).hosts, std::vector<std::string>{"embedded.example"});

    // Errors point into the embedding file.
    auto bad_document =
        parse_toml_bounded("[policy]\ndefault = \"block\"\nfoo = 1\n", "tlsgate.toml");
    ASSERT_TRUE(bad_document.ok());
    auto bad = policy_from_toml(*(*bad_document)["policy"].as_table(), dir.path());
    ASSERT_FALSE(bad.ok());
    EXPECT_TRUE(mentions(bad.error(), "tlsgate.toml:3"));
    EXPECT_TRUE(mentions(bad.error(), "foo"));
}

TEST(PolicyToml, HundredThousandPatternsFromAHostsFile) {
    TempDir dir;
    std::string names;
    for (int i = 0; i < 100'000; ++i) {
        names += (i % 2 ? ".n" : "n") + std::to_string(i) + ".list.example\n";
    }
    dir.write("big.txt", names);
    const PolicyConfig config =
        parse_ok("[[rules]]\nname = \"big\"\naction = \"passthrough\"\nhosts_file = \"big.txt\"\n",
                 dir.path());
    ASSERT_EQ(config.rules.at(0).hosts.size(), 100'000u);
    auto policy = compile_or_die(config);
    EXPECT_EQ(policy->decide(host_query("n0.list.example")).rule_name, "big");
    EXPECT_EQ(policy->decide(host_query("www.n0.list.example")).rule_index, -1);
    EXPECT_EQ(policy->decide(host_query("www.n99999.list.example")).rule_index, 0);
    EXPECT_EQ(policy->decide(host_query("n100000.list.example")).rule_index, -1);
}

// ---------------------------------------------------------------------------------------------
// on_upstream_error: what an intercepted client sees when the upstream certificate is refused

TEST(PolicyUpstreamError, RoundTripsThroughText) {
    for (UpstreamErrorAction action : {UpstreamErrorAction::mirror, UpstreamErrorAction::block}) {
        EXPECT_EQ(parse_upstream_error_action(to_string(action)), action);
    }
    EXPECT_STREQ(to_string(UpstreamErrorAction::mirror), "mirror");
    for (std::string_view bad : {"", "Mirror", "alert", "intercept", "passthrough"}) {
        EXPECT_FALSE(parse_upstream_error_action(bad).has_value()) << bad;
    }
}

TEST(PolicyUpstreamError, MirrorIsTheDefaultEverywhere) {
    EXPECT_EQ(PolicyConfig{}.on_upstream_error, UpstreamErrorAction::mirror);
    EXPECT_EQ(Policy::intercept_all()->default_upstream_error_action(),
              UpstreamErrorAction::mirror);
    EXPECT_EQ(Policy::intercept_all()->decide(host_query("a.example")).on_upstream_error,
              UpstreamErrorAction::mirror);
    const PolicyConfig empty = parse_ok("");
    EXPECT_EQ(empty.on_upstream_error, UpstreamErrorAction::mirror);
    const PolicyConfig rule_without = parse_ok("[[rules]]\naction = \"intercept\"\nports = [443]");
    EXPECT_FALSE(rule_without.rules.at(0).on_upstream_error.has_value());
    EXPECT_EQ(compile_or_die(rule_without)->decide(host_query("a.example")).on_upstream_error,
              UpstreamErrorAction::mirror);
}

TEST(PolicyUpstreamError, TopLevelAndPerRuleSettingsReachTheDecision) {
    const PolicyConfig config = parse_ok(R"(
default = "intercept"
on_upstream_error = "block"

[[rules]]
name = "lab"
action = "intercept"
hosts = [".lab.example"]
on_upstream_error = "mirror"

[[rules]]
name = "strict"
action = "intercept"
hosts = ["strict.example"]
on_upstream_error = "block"

[[rules]]
name = "inherits"
action = "intercept"
ports = [8443]

[[rules]]
name = "private"
action = "passthrough"
hosts = ["bank.example"]
)");
    EXPECT_EQ(config.on_upstream_error, UpstreamErrorAction::block);
    EXPECT_EQ(config.rules.at(0).on_upstream_error, UpstreamErrorAction::mirror);
    EXPECT_EQ(config.rules.at(1).on_upstream_error, UpstreamErrorAction::block);
    EXPECT_FALSE(config.rules.at(2).on_upstream_error.has_value());

    auto policy = compile_or_die(config);
    EXPECT_EQ(policy->default_upstream_error_action(), UpstreamErrorAction::block);
    EXPECT_EQ(policy->decide(host_query("www.lab.example")).on_upstream_error,
              UpstreamErrorAction::mirror);
    EXPECT_EQ(policy->decide(host_query("strict.example")).on_upstream_error,
              UpstreamErrorAction::block);
    EXPECT_EQ(policy->decide(address_query("192.0.2.1", 8443, "x.example")).on_upstream_error,
              UpstreamErrorAction::block);
    EXPECT_EQ(policy->decide(host_query("other.example")).on_upstream_error,
              UpstreamErrorAction::block);
    // Only the rule that differs from the default is an override worth listing.
    EXPECT_EQ(policy->rules_overriding_upstream_error_action(),
              std::vector<std::string_view>{"lab"});
}

TEST(PolicyUpstreamError, EmbeddedInTheConfigFile) {
    auto document = parse_toml_bounded(
        "[policy]\non_upstream_error = \"block\"\n[[policy.rules]]\naction = \"intercept\"\n"
        "hosts = [\"a.example\"]\non_upstream_error = \"mirror\"\n",
        "tlsgate.toml");
    ASSERT_TRUE(document.ok()) << document.error();
    auto config = policy_from_toml(*(*document)["policy"].as_table(), "");
    ASSERT_TRUE(config.ok()) << config.error();
    EXPECT_EQ(config->on_upstream_error, UpstreamErrorAction::block);
    EXPECT_EQ(config->rules.at(0).on_upstream_error, UpstreamErrorAction::mirror);
}

TEST(PolicyUpstreamError, BadSettingsAreReportedWithContext) {
    const std::vector<ErrorCase> cases = {
        {"on_upstream_error = \"alert\"", {"on_upstream_error", "alert", "mirror or block"}},
        {"on_upstream_error = true", {"on_upstream_error", "string", "boolean"}},
        {"default = \"block\"\non_upstream_error = \"\"", {"policy:2", "mirror or block"}},
        {"[[rules]]\nname = \"r\"\naction = \"intercept\"\nports = [443]\n"
         "on_upstream_error = \"Block\"",
         {"rule \"r\"", "on_upstream_error", "Block", "policy:5"}},
        {"[[rules]]\naction = \"intercept\"\nports = [443]\non_upstream_error = [\"block\"]",
         {"rule 1", "on_upstream_error", "string", "array"}},
        // Only an intercepted connection verifies upstream: elsewhere the key would mislead.
        {"[[rules]]\nname = \"p\"\naction = \"passthrough\"\nhosts = [\"a.example\"]\n"
         "on_upstream_error = \"block\"",
         {"rule \"p\"", "intercept rules only", "passthrough", "policy:5"}},
        {"[[rules]]\non_upstream_error = \"mirror\"\naction = \"block\"\nports = [25]",
         {"rule 1", "intercept rules only", "block"}},
        // The unknown-key messages list the new key.
        {"on_upstream = \"block\"", {"unknown key", "on_upstream_error"}},
        {"[[rules]]\naction = \"intercept\"\nports = [1]\nupstream_error = \"block\"",
         {"unknown key", "on_upstream_error"}},
    };
    for (const ErrorCase& error_case : cases) {
        const std::string error = parse_error(error_case.text);
        for (const char* mention : error_case.mentions) {
            EXPECT_TRUE(mentions(error, mention)) << "input:\n" << error_case.text;
        }
    }
}

TEST(PolicyUpstreamError, CompileRefusesItOnRulesThatDoNotIntercept) {
    PolicyConfig config;
    Rule rule = host_rule(Action::passthrough, {"a.example"}, "pass");
    rule.on_upstream_error = UpstreamErrorAction::block;
    config.rules.push_back(rule);
    auto refused = Policy::compile(config);
    ASSERT_FALSE(refused.ok());
    EXPECT_TRUE(mentions(refused.error(), "rule \"pass\""));
    EXPECT_TRUE(mentions(refused.error(), "intercept rules only"));

    config.rules[0].action = Action::intercept;
    auto accepted = compile_or_die(config);
    EXPECT_EQ(accepted->decide(host_query("a.example")).on_upstream_error,
              UpstreamErrorAction::block);
    EXPECT_EQ(accepted->decide(host_query("b.example")).on_upstream_error,
              UpstreamErrorAction::mirror);
}

// The two deployments in the reports: a list of names (2019), and everything leaving domestic
// prefixes except domestic destinations (the 2015 plan).
TEST(PolicyDeployments, NameListAndDomesticPrefixesAreExpressible) {
    auto names = parse_policy_toml(R"(
default = "passthrough"
[[rules]]
action = "intercept"
hosts = [".social.example", "video.example"]
)",
                                   "/nonexistent");
    ASSERT_TRUE(names) << names.error();
    auto by_name = compile_or_die(std::move(*names));
    EXPECT_EQ(by_name->decide(host_query("m.social.example")).action, Action::intercept);
    EXPECT_EQ(by_name->decide(host_query("bank.example")).action, Action::passthrough);

    auto prefixes = parse_policy_toml(R"(
default = "passthrough"
[[rules]]
name = "domestic destinations"
action = "passthrough"
cidrs = ["198.51.100.0/24"]
[[rules]]
name = "leaving the domestic network"
action = "intercept"
sources = ["192.0.2.0/24", "2001:db8:2::/48"]
)",
                                      "/nonexistent");
    ASSERT_TRUE(prefixes) << prefixes.error();
    auto by_prefix = compile_or_die(std::move(*prefixes));
    const auto domestic_client = IpAddress::parse("192.0.2.7");
    const auto foreign_client = IpAddress::parse("203.0.113.9");
    const auto domestic_server = IpAddress::parse("198.51.100.10");
    const auto foreign_server = IpAddress::parse("203.0.113.80");
    auto decide = [&](std::optional<IpAddress> client, std::optional<IpAddress> server) {
        return by_prefix->decide(Query{"any.example", server, 443, client});
    };
    EXPECT_EQ(decide(domestic_client, foreign_server).action, Action::intercept);
    EXPECT_EQ(decide(domestic_client, domestic_server).action, Action::passthrough);
    EXPECT_EQ(decide(foreign_client, foreign_server).action, Action::passthrough);
    EXPECT_EQ(decide(IpAddress::parse("::ffff:192.0.2.7"), foreign_server).action,
              Action::intercept);
    EXPECT_EQ(decide(std::nullopt, foreign_server).action, Action::passthrough);
    EXPECT_EQ(decide(IpAddress::parse("2001:db8:2::5"), foreign_server).rule_name,
              "leaving the domestic network");
}

TEST(PolicyToml, SourcesAreValidatedLikeCidrs) {
    auto bad =
        parse_policy_toml("[[rules]]\naction = \"block\"\nsources = [\"nope\"]\n", "/nonexistent");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().find("sources"), std::string::npos) << bad.error();
    auto empty = parse_policy_toml("[[rules]]\naction = \"block\"\nsources = []\n", "/nonexistent");
    EXPECT_FALSE(empty);
}

}  // namespace
}  // namespace tlsgate::policy
