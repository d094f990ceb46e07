#pragma once
// IP addresses and CIDR prefixes as plain values, so pure modules (policy, pki) need no socket
// library.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tlsgate {

struct IpAddress {
    bool is_v6 = false;
    // IPv4 uses the first 4 bytes.
    std::array<std::uint8_t, 16> bytes{};

    static std::optional<IpAddress> parse(std::string_view text);
    static IpAddress v4(std::uint32_t host_order);
    std::string to_string() const;
    std::size_t size() const { return is_v6 ? 16 : 4; }
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4; anything else unchanged.
    IpAddress unmapped() const;

    friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct Cidr {
    IpAddress network;
    int prefix_length = 0;

    // "192.0.2.0/24", "2001:db8::/32", or a bare address (a full-length prefix).
    static std::optional<Cidr> parse(std::string_view text);
    bool contains(const IpAddress& address) const;
    std::string to_string() const;
};

}  // namespace tlsgate
