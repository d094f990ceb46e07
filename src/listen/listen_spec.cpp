#include "listen/listen_spec.hpp"

#include <charconv>

#include "common/ip.hpp"

namespace tlsgate::listen {

const char* mode_name(Mode mode) {
    switch (mode) {
        case Mode::explicit_proxy:
            return "explicit";
        case Mode::transparent:
            return "transparent";
        case Mode::tproxy:
            return "tproxy";
        case Mode::socks5:
            return "socks5";
        case Mode::portal:
            return "portal";
    }
    return "?";
}

std::string ListenSpec::to_string() const {
    const bool v6 = address.find(':') != std::string::npos;
    return std::string(mode_name(mode)) + (proxy_protocol ? "+proxy" : "") + "@" +
           (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

Result<ListenSpec> parse_listen_spec(std::string_view text) {
    const auto at = text.find('@');
    if (at == std::string_view::npos) {
        return make_error("listener '" + std::string(text) + "': expected MODE@ADDR:PORT");
    }
    ListenSpec spec;
    auto mode = text.substr(0, at);
    if (mode.ends_with("+proxy")) {
        spec.proxy_protocol = true;
        mode.remove_suffix(6);
    }
    if (mode == "explicit") {
        spec.mode = Mode::explicit_proxy;
    } else if (mode == "transparent") {
        spec.mode = Mode::transparent;
    } else if (mode == "tproxy") {
        spec.mode = Mode::tproxy;
    } else if (mode == "socks5") {
        spec.mode = Mode::socks5;
    } else if (mode == "portal") {
        spec.mode = Mode::portal;
    } else {
        return make_error("listener '" + std::string(text) + "': unknown mode '" +
                          std::string(mode) +
                          "' (explicit, transparent, tproxy, socks5, portal; add +proxy for a "
                          "PROXY protocol header)");
    }
    auto rest = text.substr(at + 1);
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
        return make_error("listener '" + std::string(text) + "': missing :PORT");
    }
    auto address = rest.substr(0, colon);
    if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
        address = address.substr(1, address.size() - 2);
    }
    if (!IpAddress::parse(address)) {
        return make_error("listener '" + std::string(text) + "': '" + std::string(address) +
                          "' is not an IP address");
    }
    spec.address = std::string(address);
    const auto digits = rest.substr(colon + 1);
    unsigned port = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (error != std::errc{} || end != digits.data() + digits.size() || port > 65535) {
        return make_error("listener '" + std::string(text) + "': bad port");
    }
    spec.port = static_cast<std::uint16_t>(port);
    return spec;
}

}  // namespace tlsgate::listen
