#pragma once
// What the probe is told to test and where to send it: HOST[:PORT] names (from the command line
// or a list file), the --connect address and the --proxy URL, parsed and validated once.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip.hpp"
#include "common/result.hpp"

namespace tlsgate::probe {

inline constexpr std::uint16_t kDefaultTlsPort = 443;

struct Target {
    std::string host;  // a normalised DNS name, or an IP literal without brackets
    std::uint16_t port = kDefaultTlsPort;
    bool is_ip = false;  // IP literals get no SNI and are checked against SAN iPAddress

    std::string text() const;  // "host:port", "[2001:db8::1]:443"
};

// "example.com", "example.com:8443", "192.0.2.1", "[2001:db8::1]:443", "2001:db8::1", and, for
// lists pasted from a browser, "https://example.com[:port][/path]". Names are lower-cased.
Result<Target> parse_target(std::string_view text);
// One target per line; blank lines and '#' comments are skipped. Errors name the line.
Result<std::vector<Target>> parse_target_list(std::string_view text);

// --connect: an IP address with an optional port (default 443).
struct Endpoint {
    IpAddress address;
    std::uint16_t port = kDefaultTlsPort;
    std::string text() const;
};
Result<Endpoint> parse_endpoint(std::string_view text);

// --proxy: "http://HOST[:PORT][/]" or "HOST:PORT" (an HTTP proxy that supports CONNECT). The
// port defaults to 80, as for any http URL.
struct ProxyUrl {
    std::string host;
    std::uint16_t port = 80;
    bool host_is_ip = false;
    std::string text() const;  // "http://host:port"
};
Result<ProxyUrl> parse_proxy_url(std::string_view text);

}  // namespace tlsgate::probe
