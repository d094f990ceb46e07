#pragma once
// "MODE@ADDR:PORT", e.g. explicit@127.0.0.1:8080 or transparent@[::]:8443.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace tlsgate::listen {

// explicit: an HTTP proxy (CONNECT, absolute-form requests). transparent: connections redirected
// by netfilter REDIRECT (destination from SO_ORIGINAL_DST). tproxy: connections delivered by
// netfilter TPROXY to an IP_TRANSPARENT socket (destination = the accepted socket's own address).
// socks5: a SOCKS5 server (RFC 1928 CONNECT, optional RFC 1929 username/password).
// portal: the install page, certificate downloads, /metrics and /healthz over plain HTTP.
enum class Mode { explicit_proxy, transparent, tproxy, socks5, portal };

struct ListenSpec {
    Mode mode = Mode::explicit_proxy;
    // "+proxy": every connection starts with a PROXY protocol v1/v2 header (from HAProxy or a
    // load balancer) that names the real client and destination; without one it is refused.
    bool proxy_protocol = false;
    std::string address;
    std::uint16_t port = 0;

    std::string to_string() const;
};

Result<ListenSpec> parse_listen_spec(std::string_view text);
const char* mode_name(Mode mode);

}  // namespace tlsgate::listen
