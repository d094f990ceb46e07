// How decide() scales with the number of host rules, and what compiling a large policy costs.
// The claim under test: a decision costs a few hash probes per label of the query, whatever the
// number of rules.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "policy/policy.hpp"

namespace tlsgate::policy {
namespace {

// Half the rules are exact names, half wildcards, interleaved so either kind spreads over the
// whole rule list.
PolicyConfig make_host_policy(int rule_count) {
    PolicyConfig config;
    config.default_action = Action::intercept;
    config.rules.reserve(rule_count);
    for (int i = 0; i < rule_count; ++i) {
        Rule rule;
        rule.action = i % 3 == 0 ? Action::block : Action::passthrough;
        rule.hosts = {i % 2 == 0 ? "host" + std::to_string(i) + ".exact.example"
                                 : "*.site" + std::to_string(i) + ".wild.example"};
        config.rules.push_back(std::move(rule));
    }
    return config;
}

// Queries rotate through many names so the 100,000-rule case pays its real cache misses.
constexpr int kQueryCount = 4096;

std::vector<std::string> exact_hits(int rule_count) {
    std::vector<std::string> hosts;
    for (int q = 0; q < kQueryCount; ++q) {
        const int i = static_cast<int>((q * 7919LL) % rule_count) & ~1;  // even: an exact rule
        hosts.push_back("host" + std::to_string(i) + ".exact.example");
    }
    return hosts;
}

std::vector<std::string> wildcard_hits(int rule_count) {
    std::vector<std::string> hosts;
    for (int q = 0; q < kQueryCount; ++q) {
        const int i = static_cast<int>((q * 7919LL) % rule_count) | 1;  // odd: a wildcard rule
        hosts.push_back("www.site" + std::to_string(i) + ".wild.example");
    }
    return hosts;
}

std::vector<std::string> four_label_misses(int /*rule_count*/) {
    std::vector<std::string> hosts;
    for (int q = 0; q < kQueryCount; ++q) {
        hosts.push_back("cdn" + std::to_string(q) + ".img.unknown" + std::to_string(q % 61) +
                        ".net");
    }
    return hosts;
}

template <std::vector<std::string> (*MakeHosts)(int), int ExpectedRuleFound>
void BM_Decide(benchmark::State& state) {
    const int rule_count = static_cast<int>(state.range(0));
    auto policy = Policy::compile(make_host_policy(rule_count));
    if (!policy) {
        state.SkipWithError(policy.error().c_str());
        return;
    }
    const std::vector<std::string> hosts = MakeHosts(rule_count);
    // Check once, outside the timed loop, that the benchmark measures what its name says.
    for (const std::string& host : hosts) {
        const bool found = (*policy)->decide(Query{host, std::nullopt, 443}).rule_index >= 0;
        if (found != static_cast<bool>(ExpectedRuleFound)) {
            state.SkipWithError(("unexpected decision for " + host).c_str());
            return;
        }
    }
    std::size_t next = 0;
    for (auto _ : state) {
        const Query query{hosts[next], std::nullopt, 443};
        benchmark::DoNotOptimize((*policy)->decide(query));
        next = (next + 1) % hosts.size();
    }
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK_TEMPLATE(BM_Decide, exact_hits, 1)
    ->Name("Decide/exact_hit")
    ->Arg(10)
    ->Arg(1000)
    ->Arg(100000);
BENCHMARK_TEMPLATE(BM_Decide, wildcard_hits, 1)
    ->Name("Decide/wildcard_hit")
    ->Arg(10)
    ->Arg(1000)
    ->Arg(100000);
BENCHMARK_TEMPLATE(BM_Decide, four_label_misses, 0)
    ->Name("Decide/miss_4_labels")
    ->Arg(10)
    ->Arg(1000)
    ->Arg(100000);

void BM_Compile(benchmark::State& state) {
    const PolicyConfig config = make_host_policy(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        state.PauseTiming();
        PolicyConfig copy = config;
        state.ResumeTiming();
        auto policy = Policy::compile(std::move(copy));
        benchmark::DoNotOptimize(policy);
        state.PauseTiming();
        {
            auto discard = std::move(policy);  // destruction is not part of compiling
        }
        state.ResumeTiming();
    }
}
BENCHMARK(BM_Compile)->Name("Compile")->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tlsgate::policy

BENCHMARK_MAIN();
