#include "app/options.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>

#include "common/hostname.hpp"
#include "policy/policy_toml.hpp"

namespace tlsgate::app {

std::filesystem::path default_data_dir() {
    if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
        return std::filesystem::path(xdg) / "tlsgate";
    }
    const char* home = std::getenv("HOME");
    return std::filesystem::path(home != nullptr && *home != '\0' ? home : ".") / ".local" /
           "share" / "tlsgate";
}

namespace {

Result<std::vector<std::string>> string_list(const toml::node& node, const std::string& key) {
    std::vector<std::string> values;
    if (auto text = node.value<std::string>()) {
        values.push_back(*text);
        return values;
    }
    const auto* array = node.as_array();
    if (array == nullptr) {
        return make_error("config: '" + key + "' must be a string or a list of strings");
    }
    for (const auto& element : *array) {
        auto text = element.value<std::string>();
        if (!text) {
            return make_error("config: '" + key + "' must contain only strings");
        }
        values.push_back(*text);
    }
    return values;
}

Result<void> apply_auto_passthrough(const toml::table& table, RunOptions& options) {
    auto& settings = options.auto_passthrough_settings;
    for (const auto& [key, node] : table) {
        const std::string name(key.str());
        if (name == "enabled") {
            auto flag = node.value<bool>();
            if (!flag) {
                return make_error("config: auto_passthrough.enabled must be true or false");
            }
            options.auto_passthrough = *flag;
            continue;
        }
        const auto number = node.value<std::int64_t>();
        if (!number || *number <= 0 || *number > 30 * 86400) {
            return make_error("config: auto_passthrough." + name +
                              " must be a positive number (seconds, or a count for failures)");
        }
        if (name == "failures") {
            settings.failures = static_cast<std::uint32_t>(*number);
        } else if (name == "window") {
            settings.window = std::chrono::seconds(*number);
        } else if (name == "duration") {
            settings.duration = std::chrono::seconds(*number);
        } else {
            return make_error("config: unknown key auto_passthrough." + name +
                              " (enabled, failures, window, duration)");
        }
    }
    return {};
}

Result<void> apply_timeouts(const toml::table& table, relay::Timeouts& timeouts) {
    for (const auto& [key, node] : table) {
        const auto seconds = node.value<std::int64_t>();
        if (!seconds || *seconds <= 0 || *seconds > 86400) {
            return make_error("config: timeouts." + std::string(key.str()) +
                              " must be a number of seconds (1..86400)");
        }
        const relay::Seconds value(*seconds);
        if (key == "request_head") {
            timeouts.request_head = value;
        } else if (key == "client_hello") {
            timeouts.client_hello = value;
        } else if (key == "connect") {
            timeouts.connect = value;
        } else if (key == "handshake") {
            timeouts.handshake = value;
        } else if (key == "idle") {
            timeouts.idle = value;
        } else if (key == "response_head") {
            timeouts.response_head = value;
        } else if (key == "total") {
            timeouts.total = value;
        } else {
            return make_error("config: unknown key timeouts." + std::string(key.str()));
        }
    }
    return {};
}

Result<void> apply_record(
    const toml::table& table, RecordOptions& record,
    const std::function<std::filesystem::path(const std::string&)>& relative) {
    for (const auto& [key_node, node] : table) {
        const std::string key(key_node.str());
        const std::string where = "config: record." + key;
        if (key == "sinks" || key == "redact_headers") {
            auto values = string_list(node, "record." + key);
            if (!values) {
                return make_error(values.error());
            }
            if (key == "sinks") {
                for (const auto& sink : *values) {
                    if (sink != "sqlite" && sink != "jsonl") {
                        return make_error(where + ": unknown sink '" + sink + "' (sqlite, jsonl)");
                    }
                }
                record.sinks = *values;
            } else {
                record.redact_headers.clear();
                for (auto name : *values) {
                    for (auto& c : name)
                        c = static_cast<char>(std::tolower(c));
                    record.redact_headers.push_back(name);
                }
            }
        } else if (key == "db" || key == "jsonl" || key == "key_log" || key == "pcap") {
            auto text = node.value<std::string>();
            if (!text || text->empty()) {
                return make_error(where + " must be a file name");
            }
            (key == "db"      ? record.db
             : key == "jsonl" ? record.jsonl
             : key == "pcap"  ? record.pcap
                              : record.key_log) = relative(*text);
        } else if (key == "capture_bodies") {
            auto flag = node.value<bool>();
            if (!flag) {
                return make_error(where + " must be true or false");
            }
            record.capture_bodies = *flag;
        } else if (key == "body_capture_limit" || key == "queue_capacity" ||
                   key == "writer_delay_ms") {
            auto number = node.value<std::int64_t>();
            if (!number || *number < 0 || *number > (std::int64_t{1} << 32)) {
                return make_error(where + " must be a non-negative integer");
            }
            if (key == "body_capture_limit") {
                record.body_capture_limit = static_cast<std::size_t>(*number);
            } else if (key == "queue_capacity") {
                record.queue_capacity = std::max<std::size_t>(1, *number);
            } else {
                record.writer_delay_ms = static_cast<int>(std::min<std::int64_t>(*number, 60000));
            }
        } else {
            return make_error("config: unknown key record." + key);
        }
    }
    return {};
}

}  // namespace

Result<void> apply_config_file(const std::filesystem::path& file, RunOptions& options) {
    std::ifstream stream(file, std::ios::binary);
    if (!stream) {
        return make_error("cannot read config " + file.string());
    }
    const std::string text((std::istreambuf_iterator<char>(stream)),
                           std::istreambuf_iterator<char>());
    auto parsed = policy::parse_toml_bounded(text, file.string());
    if (!parsed) {
        return make_error("config " + parsed.error());
    }
    const toml::table root = std::move(*parsed);
    const auto base_dir = file.parent_path();
    auto relative = [&](const std::string& path) {
        const std::filesystem::path p(path);
        return p.is_absolute() || base_dir.empty() ? p : base_dir / p;
    };
    for (const auto& [key_node, node] : root) {
        const std::string key(key_node.str());
        if (key == "listen") {
            auto specs = string_list(node, key);
            if (!specs) {
                return make_error(specs.error());
            }
            options.listeners.clear();
            for (const auto& text : *specs) {
                auto spec = listen::parse_listen_spec(text);
                if (!spec) {
                    return make_error("config: " + spec.error());
                }
                options.listeners.push_back(*spec);
            }
        } else if (key == "data_dir" || key == "ca_dir" || key == "log") {
            auto text = node.value<std::string>();
            if (!text) {
                return make_error("config: '" + key + "' must be a string");
            }
            (key == "data_dir" ? options.data_dir
             : key == "ca_dir" ? options.ca_dir
                               : options.connection_log) = relative(*text);
        } else if (key == "ca_key" || key == "pkcs11_module" || key == "pkcs11_pin_file") {
            auto text = node.value<std::string>();
            if (!text) {
                return make_error("config: '" + key + "' must be a string");
            }
            if (key == "ca_key") {
                if (!pki::is_pkcs11_uri(*text)) {
                    return make_error(
                        "config: 'ca_key' must be a pkcs11: URI (a key file lives "
                        "in the CA directory as ca.key)");
                }
                options.ca_token_key.uri = *text;
            } else if (key == "pkcs11_module") {
                options.ca_token_key.module = relative(*text).string();
            } else {
                options.ca_token_key.pin_file = relative(*text).string();
            }
        } else if (key == "upstream_ca" || key == "interception_roots") {
            auto files = string_list(node, key);
            if (!files) {
                return make_error(files.error());
            }
            auto& list =
                key == "upstream_ca" ? options.upstream_ca_files : options.interception_root_files;
            for (const auto& f : *files) {
                list.push_back(relative(f).string());
            }
        } else if (key == "spoof_source") {
            auto flag = node.value<bool>();
            if (!flag) {
                return make_error("config: 'spoof_source' must be true or false");
            }
            options.spoof_source = *flag;
        } else if (key == "system_trust") {
            auto flag = node.value<bool>();
            if (!flag) {
                return make_error("config: 'system_trust' must be true or false");
            }
            options.system_trust = *flag;
        } else if (key == "policy") {
            if (auto path = node.value<std::string>()) {
                options.policy_file = relative(*path).string();
            } else if (const auto* table = node.as_table()) {
                auto parsed = policy::policy_from_toml(*table, base_dir.string());
                if (!parsed) {
                    return make_error("config [policy]: " + parsed.error());
                }
                options.inline_policy = std::move(*parsed);
            } else {
                return make_error("config: 'policy' must be a file name or a [policy] table");
            }
        } else if (key == "max_connections" || key == "max_connections_per_client") {
            auto number = node.value<std::int64_t>();
            if (!number || *number < 0 || *number > 100000000) {
                return make_error("config: '" + key + "' must be a non-negative integer");
            }
            (key == "max_connections" ? options.max_connections
                                      : options.max_connections_per_client) =
                static_cast<std::size_t>(*number);
        } else if (key == "workers" || key == "leaf_cache_size" ||
                   key == "shutdown_grace_seconds") {
            auto number = node.value<std::int64_t>();
            if (!number || *number < 0 || *number > 100000000) {
                return make_error("config: '" + key + "' must be a non-negative integer");
            }
            if (key == "workers") {
                options.workers = static_cast<int>(*number);
            } else if (key == "leaf_cache_size") {
                options.leaf_cache_size = static_cast<std::size_t>(*number);
            } else {
                options.shutdown_grace_seconds = static_cast<int>(*number);
            }
        } else if (key == "user") {
            auto text = node.value<std::string>();
            if (!text || text->empty()) {
                return make_error("config: 'user' must be a user name");
            }
            options.user = *text;
        } else if (key == "auto_passthrough") {
            // `auto_passthrough = true` alone, or a table with the details
            if (auto flag = node.value<bool>()) {
                options.auto_passthrough = *flag;
            } else if (const auto* table = node.as_table()) {
                if (auto applied = apply_auto_passthrough(*table, options); !applied) {
                    return applied;
                }
            } else {
                return make_error("config: 'auto_passthrough' must be true, false or a table");
            }
        } else if (key == "portal") {
            const auto* table = node.as_table();
            if (table == nullptr) {
                return make_error("config: 'portal' must be a table");
            }
            for (const auto& [portal_key, value] : *table) {
                auto text = value.value<std::string>();
                const std::string name(portal_key.str());
                if (!text || text->size() > 4096) {
                    return make_error("config: portal." + name + " must be a string (4 KiB max)");
                }
                if (name == "operator") {
                    options.portal_operator = *text;
                } else if (name == "contact") {
                    options.portal_contact = *text;
                } else if (name == "notice") {
                    options.portal_notice = *text;
                } else {
                    return make_error("config: unknown key portal." + name +
                                      " (operator, contact, notice)");
                }
            }
        } else if (key == "log_level") {
            auto text = node.value<std::string>();
            if (!text) {
                return make_error("config: 'log_level' must be a string");
            }
            options.log_level = *text;
        } else if (key == "resolve") {
            const auto* table = node.as_table();
            if (table == nullptr) {
                return make_error("config: 'resolve' must be a table of name = \"address\"");
            }
            for (const auto& [name, value] : *table) {
                auto address = value.value<std::string>();
                auto entry = parse_static_host(std::string(name.str()) + "=" +
                                               (address ? *address : std::string()));
                if (!entry) {
                    return make_error("config: " + entry.error());
                }
                options.static_hosts.push_back(*entry);
            }
        } else if (key == "socks5") {
            const auto* table = node.as_table();
            if (table == nullptr) {
                return make_error("config: 'socks5' must be a table");
            }
            std::optional<bool> allow_no_auth;
            for (const auto& [socks_key, value] : *table) {
                if (socks_key == "allow_no_auth") {
                    allow_no_auth = value.value<bool>();
                    if (!allow_no_auth) {
                        return make_error("config: socks5.allow_no_auth must be true or false");
                    }
                } else if (socks_key == "users" && value.is_table()) {
                    for (const auto& [user, password] : *value.as_table()) {
                        auto text = password.value<std::string>();
                        if (!text || user.str().empty() || user.str().size() > 255 ||
                            text->empty() || text->size() > 255) {
                            return make_error(
                                "config: socks5.users: each user needs a password "
                                "(1..255 bytes each)");
                        }
                        options.socks5.users.push_back({std::string(user.str()), *text});
                    }
                } else {
                    return make_error("config: unknown or mistyped key socks5." +
                                      std::string(socks_key.str()));
                }
            }
            // Configuring users means wanting them used, unless said otherwise.
            options.socks5.allow_no_auth = allow_no_auth.value_or(options.socks5.users.empty());
        } else if (key == "record") {
            const auto* table = node.as_table();
            if (table == nullptr) {
                return make_error("config: 'record' must be a table");
            }
            if (auto applied = apply_record(*table, options.record, relative); !applied) {
                return applied;
            }
        } else if (key == "timeouts") {
            const auto* table = node.as_table();
            if (table == nullptr) {
                return make_error("config: 'timeouts' must be a table");
            }
            if (auto applied = apply_timeouts(*table, options.timeouts); !applied) {
                return applied;
            }
        } else {
            return make_error("config " + file.string() + ": unknown key '" + key + "'");
        }
    }
    return {};
}

Result<std::pair<std::string, IpAddress>> parse_static_host(const std::string& text) {
    const auto equals = text.find('=');
    if (equals == std::string::npos) {
        return make_error("resolve '" + text + "': expected NAME=ADDRESS");
    }
    auto name = normalize_hostname(text.substr(0, equals));
    auto address = IpAddress::parse(text.substr(equals + 1));
    if (!name || !address) {
        return make_error("resolve '" + text + "': expected a host name = an IP address");
    }
    return std::make_pair(*name, *address);
}

void apply_defaults(RunOptions& options) {
    if (options.listeners.empty()) {
        options.listeners.push_back({listen::Mode::explicit_proxy, false, "127.0.0.1", 8080});
    }
    if (options.data_dir.empty()) {
        options.data_dir = default_data_dir();
    }
    if (options.ca_dir.empty()) {
        options.ca_dir = options.data_dir;
    }
    if (options.connection_log.empty()) {
        options.connection_log = options.data_dir / "connections.jsonl";
    }
    if (options.record.db.empty()) {
        options.record.db = options.data_dir / "flows.db";
    }
    if (options.record.jsonl.empty()) {
        options.record.jsonl = options.data_dir / "flows.jsonl";
    }
    if (options.leaf_cache_size == 0) {
        options.leaf_cache_size = 1;
    }
}

}  // namespace tlsgate::app
