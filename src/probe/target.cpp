#include "probe/target.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/hostname.hpp"
#include "common/text.hpp"

namespace tlsgate::probe {
namespace {

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == b;
           });
}

Result<std::uint16_t> parse_port(std::string_view text, std::string_view whole) {
    unsigned value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size() || value == 0 ||
        value > 65535) {
        return make_error("bad port in \"" + std::string(whole) + "\"");
    }
    return static_cast<std::uint16_t>(value);
}

struct HostPort {
    std::string_view host;
    std::string_view port;  // empty: none given
};

// Splits "host:port", "[v6]:port", "[v6]" and a bare "v6" (more than one colon, no port).
Result<HostPort> split_host_port(std::string_view text) {
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            return make_error("missing ']' in \"" + std::string(text) + "\"");
        }
        HostPort parts{text.substr(1, close - 1), {}};
        const auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return make_error("unexpected text after ']' in \"" + std::string(text) + "\"");
            }
            parts.port = rest.substr(1);
            if (parts.port.empty()) {
                return make_error("bad port in \"" + std::string(text) + "\"");
            }
        }
        return parts;
    }
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons > 1) {
        return HostPort{text, {}};
    }
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        return HostPort{text, {}};
    }
    if (colon + 1 == text.size()) {
        return make_error("bad port in \"" + std::string(text) + "\"");
    }
    return HostPort{text.substr(0, colon), text.substr(colon + 1)};
}

std::string bracketed(const std::string& host, bool is_v6) {
    return is_v6 ? "[" + host + "]" : host;
}

}  // namespace

std::string Target::text() const {
    const bool is_v6 = is_ip && host.find(':') != std::string::npos;
    return bracketed(host, is_v6) + ":" + std::to_string(port);
}

Result<Target> parse_target(std::string_view text) {
    text = trim_ascii_space(text);
    if (starts_with_ignoring_case(text, "https://")) {
        text.remove_prefix(8);
        text = text.substr(0, text.find_first_of("/?#"));
    }
    if (text.empty()) {
        return make_error("empty host name");
    }
    auto parts = split_host_port(text);
    if (!parts) {
        return make_error(parts.error());
    }
    Target target;
    if (!parts->port.empty()) {
        auto port = parse_port(parts->port, text);
        if (!port) {
            return make_error(port.error());
        }
        target.port = *port;
    }
    if (auto address = IpAddress::parse(parts->host)) {
        target.host = address->to_string();
        target.is_ip = true;
        return target;
    }
    auto name = normalize_hostname(parts->host);
    if (!name) {
        return make_error("not a host name or IP address: \"" + std::string(parts->host) + "\"");
    }
    target.host = std::move(*name);
    return target;
}

Result<std::vector<Target>> parse_target_list(std::string_view text) {
    std::vector<Target> targets;
    std::size_t line_number = 0;
    while (!text.empty()) {
        const auto end = text.find('\n');
        auto line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        ++line_number;
        line = trim_ascii_space(line.substr(0, line.find('#')));
        if (line.empty()) {
            continue;
        }
        auto target = parse_target(line);
        if (!target) {
            return make_error("line " + std::to_string(line_number) + ": " + target.error());
        }
        targets.push_back(std::move(*target));
    }
    return targets;
}

std::string Endpoint::text() const {
    return bracketed(address.to_string(), address.is_v6) + ":" + std::to_string(port);
}

Result<Endpoint> parse_endpoint(std::string_view text) {
    auto target = parse_target(text);
    if (!target) {
        return make_error(target.error());
    }
    if (!target->is_ip) {
        return make_error("--connect needs an IP address, not \"" + target->host + "\"");
    }
    return Endpoint{*IpAddress::parse(target->host), target->port};
}

std::string ProxyUrl::text() const {
    const bool is_v6 = host_is_ip && host.find(':') != std::string::npos;
    return "http://" + bracketed(host, is_v6) + ":" + std::to_string(port);
}

Result<ProxyUrl> parse_proxy_url(std::string_view text) {
    const std::string whole(trim_ascii_space(text));
    std::string_view rest = whole;
    if (const auto scheme = rest.find("://"); scheme != std::string_view::npos) {
        if (!starts_with_ignoring_case(rest, "http://")) {
            return make_error("only http:// proxies (HTTP CONNECT) are supported: \"" + whole +
                              "\"");
        }
        rest.remove_prefix(scheme + 3);
    }
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        if (rest.substr(slash) != "/") {
            return make_error("a proxy URL has no path: \"" + whole + "\"");
        }
        rest = rest.substr(0, slash);
    }
    if (rest.find('@') != std::string_view::npos) {
        return make_error("proxy credentials are not supported: \"" + whole + "\"");
    }
    auto parts = split_host_port(rest);
    if (!parts || parts->host.empty()) {
        return make_error("bad proxy URL \"" + whole + "\"");
    }
    ProxyUrl proxy;
    if (!parts->port.empty()) {
        auto port = parse_port(parts->port, whole);
        if (!port) {
            return make_error(port.error());
        }
        proxy.port = *port;
    }
    if (auto address = IpAddress::parse(parts->host)) {
        proxy.host = address->to_string();
        proxy.host_is_ip = true;
    } else if (auto name = normalize_hostname(parts->host)) {
        proxy.host = std::move(*name);
    } else {
        return make_error("bad proxy host in \"" + whole + "\"");
    }
    return proxy;
}

}  // namespace tlsgate::probe
