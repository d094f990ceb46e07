// The compiled matcher. Rules stay in their configured order (the first match wins), but a
// decision never walks the rule list: host patterns are indexed by the name they anchor on, so a
// query looks up its own name and each parent name once and only inspects the rules found there,
// plus the (usually few) rules that name no host at all.
#include "policy/policy.hpp"

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>

#include "common/hostname.hpp"

namespace tlsgate::policy {

const char* to_string(Action action) {
    switch (action) {
        case Action::intercept:
            return "intercept";
        case Action::passthrough:
            return "passthrough";
        case Action::block:
            return "block";
    }
    return "unknown";
}

std::optional<Action> parse_action(std::string_view text) {
    if (text == "intercept") {
        return Action::intercept;
    }
    if (text == "passthrough") {
        return Action::passthrough;
    }
    if (text == "block") {
        return Action::block;
    }
    return std::nullopt;
}

const char* to_string(UpstreamErrorAction action) {
    switch (action) {
        case UpstreamErrorAction::mirror:
            return "mirror";
        case UpstreamErrorAction::block:
            return "block";
    }
    return "unknown";
}

std::optional<UpstreamErrorAction> parse_upstream_error_action(std::string_view text) {
    if (text == "mirror") {
        return UpstreamErrorAction::mirror;
    }
    if (text == "block") {
        return UpstreamErrorAction::block;
    }
    return std::nullopt;
}

namespace {

enum class PatternKind {
    any_host,             // "*"
    exact,                // "example.com"
    strict_subdomain,     // "*.example.com"
    name_and_subdomains,  // ".example.com"
};

struct ParsedPattern {
    PatternKind kind;
    std::string anchor;  // the normalized name the pattern hangs on; empty for "*"
};

std::optional<ParsedPattern> parse_pattern(std::string_view pattern) {
    if (pattern == "*") {
        return ParsedPattern{PatternKind::any_host, {}};
    }
    PatternKind kind = PatternKind::exact;
    if (pattern.starts_with("*.")) {
        kind = PatternKind::strict_subdomain;
        pattern.remove_prefix(2);
    } else if (pattern.starts_with(".")) {
        kind = PatternKind::name_and_subdomains;
        pattern.remove_prefix(1);
    }
    auto anchor = normalize_hostname(pattern);
    if (!anchor) {
        return std::nullopt;
    }
    return ParsedPattern{kind, std::move(*anchor)};
}

using RuleIndex = std::uint32_t;
constexpr RuleIndex kNoRule = UINT32_MAX;

// Candidate lists hold rule indices tagged with whether the rule also names CIDRs or ports, so
// that the common host-only rule is decided without touching the rule itself.
using Candidate = std::uint32_t;
constexpr Candidate kNeedsAddressOrPort = 0x8000'0000u;
constexpr RuleIndex rule_of(Candidate candidate) {
    return candidate & ~kNeedsAddressOrPort;
}

// The rules a name is a candidate for, ascending. Most names are named by a single rule; that
// candidate is kept in the list itself, saving the large-policy case a cache miss into the pool.
struct CandidateList {
    std::uint32_t count = 0;
    std::uint32_t single_or_offset = 0;  // the candidate when count == 1, else a pool offset
};

// The hash of a name is built from its last character towards its first, so one right-to-left
// pass over a query yields the hash of every parent name as it crosses each dot.
constexpr std::uint64_t kHashSeed = 0xcbf2'9ce4'8422'2325ull;  // FNV-1a 64
constexpr std::uint64_t hash_step(std::uint64_t hash, char c) {
    return (hash ^ static_cast<unsigned char>(c)) * 0x0000'0100'0000'01b3ull;
}
// FNV's low bits are weak; the table indexes by low bits, so mix them (murmur3's finalizer).
constexpr std::uint64_t hash_finish(std::uint64_t hash) {
    hash ^= hash >> 33;
    hash *= 0xff51'afd7'ed55'8ccdull;
    hash ^= hash >> 33;
    hash *= 0xc4ce'b9fe'1a85'ec53ull;
    hash ^= hash >> 33;
    return hash;
}
std::uint64_t hash_name(std::string_view name) {
    std::uint64_t hash = kHashSeed;
    for (auto c = name.rbegin(); c != name.rend(); ++c) {
        hash = hash_step(hash, *c);
    }
    return hash_finish(hash);
}

// An open-addressing table from a name to the rules anchored on it. Flat (one array of slots,
// one string arena), because with 100,000 patterns every pointer chased is a cache miss: a probe
// reads one slot, which already holds the candidate ranges, and compares the name only when the
// full 64-bit hash agrees.
class NameIndex {
public:
    struct Entry {
        CandidateList exact;       // rules naming exactly this name
        CandidateList subdomains;  // rules naming any strict subdomain of it
    };

    void reserve(std::size_t names) {
        std::size_t capacity = 16;
        while (capacity < names * 2) {  // load factor at most 1/2 keeps probe runs short
            capacity *= 2;
        }
        slots_.assign(capacity, Slot{});
        mask_ = capacity - 1;
    }

    // Returns the slot number of `name`, inserting it when new. The table must have been
    // reserved for every name that will be inserted.
    std::uint32_t insert(std::string_view name, std::uint64_t hash) {
        for (std::size_t at = hash & mask_;; at = (at + 1) & mask_) {
            Slot& slot = slots_[at];
            if (slot.name_length == 0) {
                slot.hash = hash;
                slot.name_offset = static_cast<std::uint32_t>(names_.size());
                slot.name_length = static_cast<std::uint32_t>(name.size());
                names_.append(name);
                return static_cast<std::uint32_t>(at);
            }
            if (slot.hash == hash && name_of(slot) == name) {
                return static_cast<std::uint32_t>(at);
            }
        }
    }

    const Entry* find(std::string_view name, std::uint64_t hash) const {
        if (slots_.empty()) {
            return nullptr;
        }
        for (std::size_t at = hash & mask_;; at = (at + 1) & mask_) {
            const Slot& slot = slots_[at];
            if (slot.name_length == 0) {
                return nullptr;
            }
            if (slot.hash == hash && name_of(slot) == name) {
                return &slot.entry;
            }
        }
    }

    Entry& entry(std::uint32_t slot) { return slots_[slot].entry; }
    std::size_t capacity() const { return slots_.size(); }

private:
    struct Slot {
        std::uint64_t hash = 0;
        std::uint32_t name_offset = 0;
        std::uint32_t name_length = 0;  // 0: empty slot (names are never empty)
        Entry entry;
    };

    std::string_view name_of(const Slot& slot) const {
        return std::string_view(names_).substr(slot.name_offset, slot.name_length);
    }

    std::vector<Slot> slots_;
    std::size_t mask_ = 0;
    std::string names_;
};

struct CompiledRule {
    Action action = Action::intercept;
    UpstreamErrorAction on_upstream_error = UpstreamErrorAction::mirror;  // the default resolved
    bool overrides_upstream_error_action = false;
    std::string name;
    std::vector<Cidr> cidrs;
    std::vector<PortRange> ports;
    std::vector<Cidr> sources;
};

bool matches_address_and_port(const CompiledRule& rule, const Query& query) {
    if (!rule.ports.empty()) {
        const bool port_matches =
            std::any_of(rule.ports.begin(), rule.ports.end(),
                        [&](const PortRange& range) { return range.contains(query.port); });
        if (!port_matches) {
            return false;
        }
    }
    if (!rule.cidrs.empty()) {
        if (!query.destination) {
            return false;
        }
        // contains() unmaps ::ffff:a.b.c.d, so IPv4 rules also catch dual-stack sockets.
        const bool address_matches =
            std::any_of(rule.cidrs.begin(), rule.cidrs.end(),
                        [&](const Cidr& cidr) { return cidr.contains(*query.destination); });
        if (!address_matches) {
            return false;
        }
    }
    if (!rule.sources.empty()) {
        if (!query.source) {
            return false;
        }
        const bool source_matches =
            std::any_of(rule.sources.begin(), rule.sources.end(),
                        [&](const Cidr& cidr) { return cidr.contains(*query.source); });
        if (!source_matches) {
            return false;
        }
    }
    return true;
}

// Cidr::contains unmaps the destination, so a network written in the IPv4-mapped form
// ("::ffff:192.0.2.0/120") would never match; it means the IPv4 network, so store it as that.
Cidr unmapped_network(const Cidr& cidr) {
    const IpAddress unmapped = cidr.network.unmapped();
    if (unmapped.is_v6 || cidr.prefix_length < 96) {
        return cidr;
    }
    return Cidr{unmapped, cidr.prefix_length - 96};
}

std::string describe_rule(const Rule& rule, std::size_t index) {
    const std::string number = std::to_string(index + 1);
    return rule.name.empty() ? "rule " + number : "rule \"" + rule.name + "\" (#" + number + ")";
}

}  // namespace

std::optional<std::string> normalize_host_pattern(std::string_view pattern) {
    auto parsed = parse_pattern(pattern);
    if (!parsed) {
        return std::nullopt;
    }
    switch (parsed->kind) {
        case PatternKind::any_host:
            return std::string("*");
        case PatternKind::exact:
            return std::move(parsed->anchor);
        case PatternKind::strict_subdomain:
            return "*." + parsed->anchor;
        case PatternKind::name_and_subdomains:
            return "." + parsed->anchor;
    }
    return std::nullopt;
}

struct Policy::Compiled {
    Action default_action = Action::intercept;
    UpstreamErrorAction on_upstream_error = UpstreamErrorAction::mirror;
    std::vector<CompiledRule> rules;
    NameIndex names;
    std::vector<Candidate> candidate_pool;  // lists of `names` with more than one candidate
    std::vector<Candidate> any_host_rules;  // "*": any non-empty host
    std::vector<Candidate> hostless_rules;  // no host criterion: candidates for every query

    std::span<const Candidate> candidates(const CandidateList& list) const {
        if (list.count == 1) {
            return std::span<const Candidate>(&list.single_or_offset, 1);
        }
        return std::span<const Candidate>(candidate_pool)
            .subspan(list.single_or_offset, list.count);
    }
};

Policy::Policy(std::unique_ptr<Compiled> compiled) : compiled_(std::move(compiled)) {}
Policy::~Policy() = default;

Result<std::shared_ptr<const Policy>> Policy::compile(PolicyConfig config) {
    // Candidates spend their top bit on a flag, and the name arena uses 32-bit offsets.
    std::size_t pattern_count = 0;
    std::size_t pattern_bytes = 0;
    for (const Rule& rule : config.rules) {
        pattern_count += rule.hosts.size();
        for (const std::string& host : rule.hosts) {
            pattern_bytes += host.size();
        }
    }
    if (config.rules.size() >= kNeedsAddressOrPort || pattern_count >= UINT32_MAX / 4 ||
        pattern_bytes >= UINT32_MAX) {
        return make_error("policy: too large (" + std::to_string(config.rules.size()) + " rules, " +
                          std::to_string(pattern_count) + " host patterns)");
    }

    auto compiled = std::make_unique<Compiled>();
    compiled->default_action = config.default_action;
    compiled->on_upstream_error = config.on_upstream_error;
    compiled->rules.reserve(config.rules.size());
    compiled->names.reserve(pattern_count);

    // Pass 1 validates, indexes every anchor name and counts the candidates per name; pass 2
    // lays the lists of more than one candidate out back to back in the pool. Rules are visited
    // in order both times, so every list comes out ascending.
    struct Placement {
        std::uint32_t slot;
        Candidate candidate;
        bool exact;
        bool subdomains;
    };
    std::vector<Placement> placements;
    placements.reserve(pattern_count);
    const auto append_once = [](std::vector<Candidate>& list, Candidate candidate) {
        if (list.empty() || list.back() != candidate) {
            list.push_back(candidate);
        }
    };
    // During pass 1 a list's single_or_offset holds the last candidate counted, which is how a
    // rule naming the same pattern twice is counted once.
    const auto count_once = [](CandidateList& list, Candidate candidate) {
        if (list.count > 0 && list.single_or_offset == candidate) {
            return false;
        }
        ++list.count;
        list.single_or_offset = candidate;
        return true;
    };

    for (std::size_t position = 0; position < config.rules.size(); ++position) {
        Rule& rule = config.rules[position];
        if (rule.hosts.empty() && rule.cidrs.empty() && rule.ports.empty() &&
            rule.sources.empty()) {
            return make_error("policy: " + describe_rule(rule, position) +
                              " names no criterion; give it hosts, cidrs, sources or ports");
        }
        if (rule.on_upstream_error && rule.action != Action::intercept) {
            return make_error("policy: " + describe_rule(rule, position) +
                              ": on_upstream_error applies to intercept rules only, not " +
                              to_string(rule.action));
        }
        for (const PortRange& range : rule.ports) {
            if (range.first == 0 || range.first > range.last) {
                return make_error("policy: " + describe_rule(rule, position) +
                                  ": invalid port range " + std::to_string(range.first) + "-" +
                                  std::to_string(range.last) +
                                  " (ports are 1..65535, first <= last)");
            }
        }
        for (Cidr& cidr : rule.cidrs) {
            cidr = unmapped_network(cidr);
        }
        for (Cidr& cidr : rule.sources) {
            cidr = unmapped_network(cidr);
        }
        const bool needs_address_or_port =
            !rule.cidrs.empty() || !rule.ports.empty() || !rule.sources.empty();
        const Candidate candidate =
            static_cast<Candidate>(position) | (needs_address_or_port ? kNeedsAddressOrPort : 0);
        for (const std::string& host : rule.hosts) {
            auto pattern = parse_pattern(host);
            if (!pattern) {
                return make_error("policy: " + describe_rule(rule, position) +
                                  ": invalid host pattern \"" + host + "\"");
            }
            if (pattern->kind == PatternKind::any_host) {
                append_once(compiled->any_host_rules, candidate);
                continue;
            }
            const std::uint32_t slot =
                compiled->names.insert(pattern->anchor, hash_name(pattern->anchor));
            NameIndex::Entry& entry = compiled->names.entry(slot);
            const bool exact = pattern->kind != PatternKind::strict_subdomain &&
                               count_once(entry.exact, candidate);
            const bool subdomains =
                pattern->kind != PatternKind::exact && count_once(entry.subdomains, candidate);
            placements.push_back(Placement{slot, candidate, exact, subdomains});
        }
        if (rule.hosts.empty()) {
            compiled->hostless_rules.push_back(candidate);
        }
        if (rule.name.empty()) {
            rule.name = "rule " + std::to_string(position + 1);
        }
        const UpstreamErrorAction on_upstream_error =
            rule.on_upstream_error.value_or(config.on_upstream_error);
        compiled->rules.push_back(CompiledRule{rule.action, on_upstream_error,
                                               on_upstream_error != config.on_upstream_error,
                                               std::move(rule.name), std::move(rule.cidrs),
                                               std::move(rule.ports), std::move(rule.sources)});
    }

    // Pass 2. A single candidate is already in place; longer lists get a pool offset, then fill
    // up in rule order through a write position per list.
    std::uint32_t pool_size = 0;
    const auto reserve_pool = [&](CandidateList& list) {
        if (list.count > 1) {
            list.single_or_offset = pool_size;
            pool_size += list.count;
        }
    };
    for (std::uint32_t slot = 0; slot < compiled->names.capacity(); ++slot) {
        NameIndex::Entry& entry = compiled->names.entry(slot);
        reserve_pool(entry.exact);
        reserve_pool(entry.subdomains);
    }
    compiled->candidate_pool.resize(pool_size);
    std::vector<std::uint32_t> filled(compiled->names.capacity() * 2, 0);
    const auto fill = [&](const CandidateList& list, std::uint32_t& written, Candidate candidate) {
        if (list.count > 1) {
            compiled->candidate_pool[list.single_or_offset + written++] = candidate;
        }
    };
    for (const Placement& placement : placements) {
        const NameIndex::Entry& entry = compiled->names.entry(placement.slot);
        if (placement.exact) {
            fill(entry.exact, filled[placement.slot * 2], placement.candidate);
        }
        if (placement.subdomains) {
            fill(entry.subdomains, filled[placement.slot * 2 + 1], placement.candidate);
        }
    }
    return std::shared_ptr<const Policy>(new Policy(std::move(compiled)));
}

std::shared_ptr<const Policy> Policy::intercept_all() {
    static const std::shared_ptr<const Policy> policy =
        std::shared_ptr<const Policy>(new Policy(std::make_unique<Compiled>()));
    return policy;
}

Decision Policy::decide(const Query& query) const {
    const Compiled& compiled = *compiled_;
    RuleIndex best = kNoRule;
    // Each candidate list is ascending, so within a list the first full match is its best, and a
    // list can be abandoned as soon as it reaches the best rule found so far.
    const auto consider = [&](std::span<const Candidate> candidates) {
        for (const Candidate candidate : candidates) {
            const RuleIndex index = rule_of(candidate);
            if (index >= best) {
                return;
            }
            if ((candidate & kNeedsAddressOrPort) == 0 ||
                matches_address_and_port(compiled.rules[index], query)) {
                best = index;
                return;
            }
        }
    };

    consider(compiled.hostless_rules);
    const std::string_view host = query.host;
    if (!host.empty()) {
        consider(compiled.any_host_rules);
        // Right to left: at each dot the hash so far is that of the parent name after it, so
        // "a.b.example.com" probes "com", "example.com" and "b.example.com" for subdomain
        // patterns, then the whole name for exact ones.
        std::uint64_t hash = kHashSeed;
        for (std::size_t i = host.size(); i-- > 0;) {
            if (host[i] == '.') {
                const NameIndex::Entry* parent =
                    compiled.names.find(host.substr(i + 1), hash_finish(hash));
                if (parent != nullptr) {
                    consider(compiled.candidates(parent->subdomains));
                }
            }
            hash = hash_step(hash, host[i]);
        }
        if (const NameIndex::Entry* name = compiled.names.find(host, hash_finish(hash))) {
            consider(compiled.candidates(name->exact));
        }
    }

    if (best == kNoRule) {
        return Decision{compiled.default_action, -1, "default", compiled.on_upstream_error};
    }
    const CompiledRule& rule = compiled.rules[best];
    return Decision{rule.action, static_cast<int>(best), rule.name, rule.on_upstream_error};
}

std::size_t Policy::rule_count() const {
    return compiled_->rules.size();
}

Action Policy::default_action() const {
    return compiled_->default_action;
}

UpstreamErrorAction Policy::default_upstream_error_action() const {
    return compiled_->on_upstream_error;
}

std::vector<std::string_view> Policy::rules_overriding_upstream_error_action() const {
    std::vector<std::string_view> names;
    for (const CompiledRule& rule : compiled_->rules) {
        if (rule.overrides_upstream_error_action) {
            names.push_back(rule.name);
        }
    }
    return names;
}

}  // namespace tlsgate::policy
