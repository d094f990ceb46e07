// The policy file format, and the only translation unit of the policy library that includes
// toml++ (it is heavy to compile).
//
//   # What happens to a connection no rule matches: intercept | passthrough | block.
//   default = "intercept"                # optional; "intercept" when absent
//   # What an intercepted client sees when the upstream certificate fails verification:
//   # mirror (a certificate from the untrusted CA with upstream's names and dates, so the
//   # client's own warning shows) | block (a fatal TLS alert).
//   on_upstream_error = "mirror"         # optional; "mirror" when absent
//
//   # Rules are tried in order; the first rule whose criteria all match decides.
//   [[rules]]
//   name = "banks"                       # optional; "rule N" (1-based) when absent
//   action = "passthrough"               # required: intercept | passthrough | block
//   hosts = ["bank.example",             # that name only
//            "*.bank.example",           # any subdomain (any depth), not the name itself
//            ".pinned.example",          # the name and any subdomain
//            "*"]                        # any host name (not a connection without one)
//   hosts_file = "names.txt"             # more patterns, one per line; '#' starts a comment;
//                                        # relative to the policy file's directory
//   sources = ["198.51.100.0/24"]                # client address
//   cidrs = ["192.0.2.0/24", "2001:db8::/32"]  # destination address; IPv4 networks also match
//                                              # IPv4-mapped IPv6 destinations (::ffff:a.b.c.d)
//   ports = [443, "8000-8999"]           # destination port or inclusive range, 1..65535
//   on_upstream_error = "block"          # optional, intercept rules only; the top-level
//                                        # on_upstream_error when absent
//
// A rule must name at least one of hosts, hosts_file, cidrs, ports; a criterion it omits matches
// anything. Host patterns are case-insensitive and may end with a dot. An unknown key is an error
// (so a typo such as "host =" cannot silently widen a rule), and so is an empty list (an empty
// hosts list would otherwise turn a rule about some hosts into a rule about all of them).
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>

#include "policy/policy.hpp"
#include "policy/policy_toml.hpp"

namespace tlsgate::policy {

namespace {

// Generous for a policy (100,000 inline patterns take about 3 MiB); bigger lists belong in a
// hosts_file.
constexpr std::size_t kMaxTomlBytes = 8 * 1024 * 1024;
constexpr std::size_t kMaxHostsFileBytes = 64 * 1024 * 1024;
// toml++ parses nested arrays, inline tables and dotted keys into a tree it later destroys
// recursively; a hostile file with thousands of levels overflows the stack. A policy needs two
// levels of brackets ([[rules]]) and a few dotted key parts, so these bounds never bite real
// files while keeping the tree depth under (brackets + 1) * (parts + 1).
constexpr int kMaxBracketDepth = 32;
constexpr int kMaxDottedKeyParts = 32;

std::string where(const toml::node& node) {
    const toml::source_region& region = node.source();
    std::string location = region.path ? *region.path : std::string("policy");
    if (region.begin.line > 0) {
        location += ":" + std::to_string(region.begin.line);
    }
    return location + ": ";
}

std::string in_quotes(std::string_view text) {
    return "\"" + std::string(text) + "\"";
}

std::string_view type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
        case toml::node_type::time:
        case toml::node_type::date_time:
            return "a date/time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

Error wrong_type(const toml::node& node, std::string_view subject, std::string_view expected) {
    return make_error(where(node) + std::string(subject) + " must be " + std::string(expected) +
                      ", not " + std::string(type_name(node)));
}

std::string_view trim(std::string_view text) {
    constexpr std::string_view kSpace = " \t\r\f\v";
    const auto first = text.find_first_not_of(kSpace);
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(kSpace);
    return text.substr(first, last - first + 1);
}

// Reads at most `max_bytes`, refusing anything but a regular file so that a path such as
// /dev/zero or a FIFO cannot stall or exhaust the loader.
Result<std::string> read_text_file(const std::filesystem::path& path, std::size_t max_bytes,
                                   std::string_view what) {
    const std::string shown = path.string();
    std::error_code error;
    const auto status = std::filesystem::status(path, error);
    if (error) {
        return make_error("cannot read " + std::string(what) + " " + shown + ": " +
                          error.message());
    }
    if (!std::filesystem::is_regular_file(status)) {
        return make_error("cannot read " + std::string(what) + " " + shown +
                          ": not a regular file");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return make_error("cannot read " + std::string(what) + " " + shown + ": " +
                          std::strerror(errno));
    }
    std::string contents;
    char chunk[64 * 1024];
    while (in) {
        in.read(chunk, sizeof chunk);
        contents.append(chunk, static_cast<std::size_t>(in.gcount()));
        if (contents.size() > max_bytes) {
            return make_error(std::string(what) + " " + shown + " is larger than " +
                              std::to_string(max_bytes / (1024 * 1024)) + " MiB");
        }
    }
    if (in.bad()) {
        return make_error("cannot read " + std::string(what) + " " + shown + ": read error");
    }
    return contents;
}

// A lexical pass over TOML that only knows strings, comments, brackets and key separators,
// enough to bound the nesting toml++ would build. It agrees with the TOML grammar on every
// valid prefix, so text it misreads is text toml++ rejects before reaching the misread part.
Result<void> check_nesting(std::string_view text, std::string_view source_name) {
    enum class State { code, comment, basic, literal, multiline_basic, multiline_literal };
    State state = State::code;
    int bracket_depth = 0;
    int dots_in_key = 0;
    std::size_t line = 1;
    const auto fail = [&](std::string what) {
        return make_error(std::string(source_name) + ":" + std::to_string(line) + ": " + what);
    };
    const auto at = [&](std::size_t i, std::string_view token) {
        return text.substr(i, token.size()) == token;
    };
    // A multi-line string may end with up to two extra quotes that belong to its content.
    const auto close_multiline = [&](std::size_t& i, char quote) {
        i += 2;
        for (int extra = 0; extra < 2 && i + 1 < text.size() && text[i + 1] == quote; ++extra) {
            ++i;
        }
    };

    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') {
            ++line;
        }
        switch (state) {
            case State::code:
                switch (c) {
                    case '#':
                        state = State::comment;
                        break;
                    case '"':
                        if (at(i, "\"\"\"")) {
                            state = State::multiline_basic;
                            i += 2;
                        } else {
                            state = State::basic;
                        }
                        break;
                    case '\'':
                        if (at(i, "'''")) {
                            state = State::multiline_literal;
                            i += 2;
                        } else {
                            state = State::literal;
                        }
                        break;
                    case '[':
                    case '{':
                        if (++bracket_depth > kMaxBracketDepth) {
                            return fail("arrays/tables nested deeper than " +
                                        std::to_string(kMaxBracketDepth) + " levels");
                        }
                        break;
                    case ']':
                    case '}':
                        bracket_depth = std::max(0, bracket_depth - 1);
                        break;
                    case '.':
                        if (++dots_in_key >= kMaxDottedKeyParts) {
                            return fail("a dotted key with more than " +
                                        std::to_string(kMaxDottedKeyParts) + " parts");
                        }
                        break;
                    case '=':
                    case ',':
                    case '\n':
                        dots_in_key = 0;
                        break;
                    default:
                        break;
                }
                break;
            case State::comment:
                if (c == '\n') {
                    state = State::code;
                    dots_in_key = 0;
                }
                break;
            case State::basic:
                if (c == '\\') {
                    ++i;
                } else if (c == '"' || c == '\n') {
                    state = State::code;
                    dots_in_key = c == '\n' ? 0 : dots_in_key;
                }
                break;
            case State::literal:
                if (c == '\'' || c == '\n') {
                    state = State::code;
                    dots_in_key = c == '\n' ? 0 : dots_in_key;
                }
                break;
            case State::multiline_basic:
                if (c == '\\') {
                    if (++i < text.size() && text[i] == '\n') {
                        ++line;
                    }
                } else if (at(i, "\"\"\"")) {
                    close_multiline(i, '"');
                    state = State::code;
                }
                break;
            case State::multiline_literal:
                if (at(i, "'''")) {
                    close_multiline(i, '\'');
                    state = State::code;
                }
                break;
        }
    }
    return {};
}

std::optional<std::uint16_t> parse_port_number(std::string_view digits) {
    unsigned long value = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() ||
        value < 1 || value > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

// "443" or "8000-8999".
std::optional<PortRange> parse_port_range(std::string_view text) {
    const auto dash = text.find('-');
    const auto first = parse_port_number(text.substr(0, dash));
    const auto last =
        dash == std::string_view::npos ? first : parse_port_number(text.substr(dash + 1));
    if (!first || !last || *first > *last) {
        return std::nullopt;
    }
    return PortRange{*first, *last};
}

Result<UpstreamErrorAction> read_upstream_error_action(const toml::node& value,
                                                       const std::string& subject) {
    const auto* text = value.as_string();
    if (text == nullptr) {
        return wrong_type(value, subject, "a string");
    }
    auto action = parse_upstream_error_action(text->get());
    if (!action) {
        return make_error(where(value) + subject + ": unknown value " + in_quotes(text->get()) +
                          " (expected mirror or block)");
    }
    return *action;
}

class RuleReader {
public:
    RuleReader(const toml::table& table, std::size_t position, const std::string& base_dir)
        : table_(table), position_(position), base_dir_(base_dir) {
        rule_.name = "rule " + std::to_string(position + 1);
    }

    Result<Rule> read() {
        // The name first, so every later message can say which rule it is about.
        if (const toml::node* name = table_.get("name")) {
            const auto* text = name->as_string();
            if (text == nullptr) {
                return wrong_type(*name, label() + ": name", "a string");
            }
            if (text->get().empty()) {
                return make_error(where(*name) + label() + ": name must not be empty");
            }
            rule_.name = text->get();
            named_ = true;
        }
        std::optional<Action> action;
        const toml::node* on_upstream_error = nullptr;
        bool names_hosts = false;
        for (auto&& [key, value] : table_) {
            const std::string_view key_name = key.str();
            Result<void> outcome;
            if (key_name == "name") {
                continue;
            } else if (key_name == "action") {
                const auto* text = value.as_string();
                if (text == nullptr) {
                    return wrong_type(value, label() + ": action", "a string");
                }
                action = parse_action(text->get());
                if (!action) {
                    return make_error(where(value) + label() + ": unknown action " +
                                      in_quotes(text->get()) +
                                      " (expected intercept, passthrough or block)");
                }
            } else if (key_name == "hosts") {
                names_hosts = true;
                outcome = read_hosts(value);
            } else if (key_name == "hosts_file") {
                names_hosts = true;
                outcome = read_hosts_file(value);
            } else if (key_name == "cidrs") {
                outcome = read_cidrs(value, "cidrs", rule_.cidrs);
            } else if (key_name == "sources") {
                outcome = read_cidrs(value, "sources", rule_.sources);
            } else if (key_name == "ports") {
                outcome = read_ports(value);
            } else if (key_name == "on_upstream_error") {
                auto parsed = read_upstream_error_action(value, label() + ": on_upstream_error");
                if (!parsed) {
                    return make_error(parsed.error());
                }
                rule_.on_upstream_error = *parsed;
                on_upstream_error = &value;
            } else {
                return make_error(where(value) + label() + ": unknown key " + in_quotes(key_name) +
                                  " (expected name, action, hosts, hosts_file, cidrs, sources, "
                                  "ports, on_upstream_error)");
            }
            if (!outcome) {
                return make_error(outcome.error());
            }
        }
        if (!action) {
            return make_error(where(table_) + label() +
                              ": missing action (intercept, passthrough or block)");
        }
        rule_.action = *action;
        if (on_upstream_error != nullptr && *action != Action::intercept) {
            // Only an intercepted connection verifies upstream; elsewhere the key would mislead.
            return make_error(where(*on_upstream_error) + label() +
                              ": on_upstream_error applies to intercept rules only, not " +
                              to_string(*action));
        }
        if (names_hosts && rule_.hosts.empty()) {
            return make_error(where(table_) + label() +
                              ": hosts/hosts_file name no pattern; an empty host list would "
                              "match every host");
        }
        if (rule_.hosts.empty() && rule_.cidrs.empty() && rule_.ports.empty() &&
            rule_.sources.empty()) {
            return make_error(where(table_) + label() +
                              " names no criterion; give it hosts, hosts_file, cidrs, sources or "
                              "ports");
        }
        return std::move(rule_);
    }

private:
    std::string label() const {
        return named_ ? "rule " + in_quotes(rule_.name) : "rule " + std::to_string(position_ + 1);
    }

    Result<const toml::array*> non_empty_array(const toml::node& node, std::string_view key) {
        const auto* array = node.as_array();
        if (array == nullptr) {
            return wrong_type(node, label() + ": " + std::string(key), "an array");
        }
        if (array->empty()) {
            return make_error(where(node) + label() + ": " + std::string(key) +
                              " is empty; remove the key to match anything");
        }
        return array;
    }

    Result<void> read_hosts(const toml::node& node) {
        auto array = non_empty_array(node, "hosts");
        if (!array) {
            return make_error(array.error());
        }
        for (const toml::node& element : **array) {
            const auto* text = element.as_string();
            if (text == nullptr) {
                return wrong_type(element, label() + ": hosts entries", "strings");
            }
            auto pattern = normalize_host_pattern(text->get());
            if (!pattern) {
                return make_error(where(element) + label() + ": invalid host pattern " +
                                  in_quotes(text->get()));
            }
            rule_.hosts.push_back(std::move(*pattern));
        }
        return {};
    }

    Result<void> read_hosts_file(const toml::node& node) {
        const auto* text = node.as_string();
        if (text == nullptr) {
            return wrong_type(node, label() + ": hosts_file", "a string (a path)");
        }
        std::filesystem::path path(text->get());
        if (path.is_relative() && !base_dir_.empty()) {
            path = std::filesystem::path(base_dir_) / path;
        }
        auto contents = read_text_file(path, kMaxHostsFileBytes, "hosts_file");
        if (!contents) {
            return make_error(where(node) + label() + ": " + contents.error());
        }
        const std::string shown = path.string();
        std::string_view rest = *contents;
        std::size_t line_number = 0;
        const std::size_t hosts_before = rule_.hosts.size();
        while (!rest.empty()) {
            ++line_number;
            const auto newline = rest.find('\n');
            std::string_view line = rest.substr(0, newline);
            rest =
                newline == std::string_view::npos ? std::string_view{} : rest.substr(newline + 1);
            // '#' never occurs in a host name, so it can start a comment anywhere on the line.
            line = trim(line.substr(0, line.find('#')));
            if (line.empty()) {
                continue;
            }
            auto pattern = normalize_host_pattern(line);
            if (!pattern) {
                return make_error(shown + ":" + std::to_string(line_number) + ": " + label() +
                                  ": invalid host pattern " + in_quotes(line));
            }
            rule_.hosts.push_back(std::move(*pattern));
        }
        if (rule_.hosts.size() == hosts_before) {
            return make_error(where(node) + label() + ": hosts_file " + shown + " has no patterns");
        }
        return {};
    }

    Result<void> read_cidrs(const toml::node& node, std::string_view key, std::vector<Cidr>& into) {
        auto array = non_empty_array(node, key);
        if (!array) {
            return make_error(array.error());
        }
        for (const toml::node& element : **array) {
            const auto* text = element.as_string();
            if (text == nullptr) {
                return wrong_type(element, label() + ": " + std::string(key) + " entries",
                                  "strings");
            }
            auto cidr = Cidr::parse(text->get());
            if (!cidr) {
                return make_error(where(element) + label() + ": " + std::string(key) +
                                  ": invalid CIDR " + in_quotes(text->get()) +
                                  " (expected e.g. \"192.0.2.0/24\" or \"2001:db8::/32\")");
            }
            into.push_back(*cidr);
        }
        return {};
    }

    Result<void> read_ports(const toml::node& node) {
        auto array = non_empty_array(node, "ports");
        if (!array) {
            return make_error(array.error());
        }
        for (const toml::node& element : **array) {
            std::optional<PortRange> range;
            std::string shown;
            if (const auto* number = element.as_integer()) {
                shown = std::to_string(number->get());
                if (number->get() >= 1 && number->get() <= 65535) {
                    const auto port = static_cast<std::uint16_t>(number->get());
                    range = PortRange{port, port};
                }
            } else if (const auto* text = element.as_string()) {
                shown = in_quotes(text->get());
                range = parse_port_range(text->get());
            } else {
                return wrong_type(element, label() + ": ports entries",
                                  "integers or \"first-last\" strings");
            }
            if (!range) {
                return make_error(where(element) + label() + ": invalid port " + shown +
                                  " (expected 1..65535, or \"first-last\" with first <= last)");
            }
            rule_.ports.push_back(*range);
        }
        return {};
    }

    const toml::table& table_;
    std::size_t position_;
    const std::string& base_dir_;
    Rule rule_;
    bool named_ = false;
};

Result<PolicyConfig> read_policy(const toml::table& table, const std::string& base_dir) {
    PolicyConfig config;
    for (auto&& [key, value] : table) {
        const std::string_view key_name = key.str();
        if (key_name == "default") {
            const auto* text = value.as_string();
            if (text == nullptr) {
                return wrong_type(value, "default", "a string");
            }
            auto action = parse_action(text->get());
            if (!action) {
                return make_error(where(value) + "unknown default action " +
                                  in_quotes(text->get()) +
                                  " (expected intercept, passthrough or block)");
            }
            config.default_action = *action;
        } else if (key_name == "on_upstream_error") {
            auto action = read_upstream_error_action(value, "on_upstream_error");
            if (!action) {
                return make_error(action.error());
            }
            config.on_upstream_error = *action;
        } else if (key_name == "rules") {
            const auto* rules = value.as_array();
            if (rules == nullptr) {
                return wrong_type(value, "rules", "an array of tables (write [[rules]])");
            }
            config.rules.reserve(rules->size());
            for (std::size_t position = 0; position < rules->size(); ++position) {
                const toml::node& element = *rules->get(position);
                const auto* rule_table = element.as_table();
                if (rule_table == nullptr) {
                    return wrong_type(element, "rules entry " + std::to_string(position + 1),
                                      "a table (write [[rules]])");
                }
                auto rule = RuleReader(*rule_table, position, base_dir).read();
                if (!rule) {
                    return make_error(rule.error());
                }
                config.rules.push_back(std::move(*rule));
            }
        } else {
            return make_error(where(value) + "unknown key " + in_quotes(key_name) +
                              " (expected default, on_upstream_error, rules)");
        }
    }
    return config;
}

Result<PolicyConfig> parse_policy_text(std::string_view text, const std::string& base_dir,
                                       std::string_view source_name) {
    auto table = parse_toml_bounded(text, source_name);
    if (!table) {
        return make_error(table.error());
    }
    return policy_from_toml(*table, base_dir);
}

}  // namespace

Result<toml::table> parse_toml_bounded(std::string_view text, std::string_view source_name) {
    try {
        if (text.size() > kMaxTomlBytes) {
            return make_error(std::string(source_name) + ": larger than " +
                              std::to_string(kMaxTomlBytes / (1024 * 1024)) + " MiB");
        }
        if (auto shape = check_nesting(text, source_name); !shape) {
            return make_error(shape.error());
        }
        return toml::parse(text, source_name);
    } catch (const toml::parse_error& error) {
        const toml::source_position& begin = error.source().begin;
        return make_error(std::string(source_name) + ":" + std::to_string(begin.line) + ":" +
                          std::to_string(begin.column) + ": " + std::string(error.description()));
    } catch (const std::exception& error) {
        return make_error(std::string(source_name) + ": " + error.what());
    }
}

Result<PolicyConfig> policy_from_toml(const toml::table& table, const std::string& base_dir) {
    try {
        return read_policy(table, base_dir);
    } catch (const std::exception& error) {
        // Allocation failure or a filesystem error: still a value, never an exception.
        return make_error(std::string("policy: ") + error.what());
    }
}

Result<PolicyConfig> parse_policy_toml(std::string_view text, const std::string& base_dir) {
    try {
        return parse_policy_text(text, base_dir, "policy");
    } catch (const std::exception& error) {
        return make_error(std::string("policy: ") + error.what());
    }
}

Result<PolicyConfig> load_policy_file(const std::string& path) {
    try {
        auto text = read_text_file(path, kMaxTomlBytes, "policy file");
        if (!text) {
            return make_error(text.error());
        }
        const std::string base_dir = std::filesystem::path(path).parent_path().string();
        return parse_policy_text(*text, base_dir, path);
    } catch (const std::exception& error) {
        return make_error(path + ": " + error.what());
    }
}

}  // namespace tlsgate::policy
