#include "common/ip.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace tlsgate {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.empty() || text.size() > INET6_ADDRSTRLEN) {
        return std::nullopt;
    }
    char buffer[INET6_ADDRSTRLEN + 1];
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    IpAddress address;
    if (inet_pton(AF_INET, buffer, address.bytes.data()) == 1) {
        return address;
    }
    if (inet_pton(AF_INET6, buffer, address.bytes.data()) == 1) {
        address.is_v6 = true;
        return address;
    }
    return std::nullopt;
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
    IpAddress address;
    address.bytes[0] = static_cast<std::uint8_t>(host_order >> 24);
    address.bytes[1] = static_cast<std::uint8_t>(host_order >> 16);
    address.bytes[2] = static_cast<std::uint8_t>(host_order >> 8);
    address.bytes[3] = static_cast<std::uint8_t>(host_order);
    return address;
}

std::string IpAddress::to_string() const {
    char buffer[INET6_ADDRSTRLEN];
    if (inet_ntop(is_v6 ? AF_INET6 : AF_INET, bytes.data(), buffer, sizeof buffer) == nullptr) {
        return {};
    }
    return buffer;
}

IpAddress IpAddress::unmapped() const {
    static constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!is_v6 || std::memcmp(bytes.data(), kMappedPrefix, sizeof kMappedPrefix) != 0) {
        return *this;
    }
    IpAddress v4;
    std::memcpy(v4.bytes.data(), bytes.data() + 12, 4);
    return v4;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
    const auto slash = text.find('/');
    auto address = IpAddress::parse(text.substr(0, slash));
    if (!address) {
        return std::nullopt;
    }
    const int max_length = address->is_v6 ? 128 : 32;
    int length = max_length;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        if (digits.empty() || digits.front() < '0' || digits.front() > '9') {
            return std::nullopt;
        }
        auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
        if (error != std::errc{} || end != digits.data() + digits.size() || digits.empty() ||
            length < 0 || length > max_length) {
            return std::nullopt;
        }
    }
    // An IPv4-mapped network (::ffff:192.0.2.0/120) is the IPv4 network it maps, so it matches
    // the IPv4 addresses contains() compares it with.
    if (address->is_v6 && length >= 96 && address->unmapped() != *address) {
        address = address->unmapped();
        length -= 96;
    }
    Cidr cidr{*address, length};
    // Clear host bits so contains() can compare whole bytes.
    for (int bit = length; bit < (address->is_v6 ? 128 : 32); ++bit) {
        cidr.network.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    }
    return cidr;
}

bool Cidr::contains(const IpAddress& candidate) const {
    const IpAddress address = candidate.unmapped();
    if (address.is_v6 != network.is_v6) {
        return false;
    }
    const int whole_bytes = prefix_length / 8;
    if (std::memcmp(address.bytes.data(), network.bytes.data(), whole_bytes) != 0) {
        return false;
    }
    const int rest = prefix_length % 8;
    if (rest == 0) {
        return true;
    }
    const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
    return (address.bytes[whole_bytes] & mask) == network.bytes[whole_bytes];
}

std::string Cidr::to_string() const {
    return network.to_string() + "/" + std::to_string(prefix_length);
}

}  // namespace tlsgate
