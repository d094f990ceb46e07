#include "listen/proxy_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>
#include <utility>

namespace tlsgate::listen {

namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
// What may follow "PROXY ": the protocol token and the byte after it. Matching a prefix of these
// rejects "PROXY HTTP/1.1" at its first wrong byte instead of at the end of the line.
constexpr std::array<std::string_view, 4> kV1Protocols = {"TCP4 ", "TCP6 ", "UNKNOWN ",
                                                          "UNKNOWN\r"};

constexpr std::array<std::uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                       0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kV2FixedSize = 16;  // signature, ver_cmd, fam, len
constexpr std::uint8_t kV2Version = 0x2;
constexpr std::uint8_t kV2CommandLocal = 0x0;
constexpr std::uint8_t kV2CommandProxy = 0x1;
// fam byte: address family in the high nibble, transport protocol in the low one.
constexpr std::uint8_t kV2Unspec = 0x00;
constexpr std::uint8_t kV2TcpOverIpv4 = 0x11;
constexpr std::uint8_t kV2TcpOverIpv6 = 0x21;
constexpr std::size_t kV2Ipv4BlockSize = 4 + 4 + 2 + 2;
constexpr std::size_t kV2Ipv6BlockSize = 16 + 16 + 2 + 2;
constexpr std::size_t kV2TlvHeaderSize = 3;  // type, length (16 bits)

ProxyHeaderResult need_more() {
    return ProxyHeaderResult{};
}

ProxyHeaderResult invalid(std::string reason) {
    ProxyHeaderResult result;
    result.status = ProxyHeaderStatus::invalid;
    result.error = std::move(reason);
    return result;
}

ProxyHeaderResult complete(ProxyHeader header) {
    ProxyHeaderResult result;
    result.status = ProxyHeaderStatus::complete;
    result.header = std::move(header);
    return result;
}

std::string hex_byte(std::uint8_t byte) {
    static constexpr char kDigits[] = "0123456789abcdef";
    return std::string("0x") + kDigits[byte >> 4] + kDigits[byte & 0xf];
}

// True when the available bytes agree with `expected` as far as both go.
bool agrees_with(std::span<const std::uint8_t> available, std::string_view expected) {
    const std::size_t length = std::min(available.size(), expected.size());
    return std::equal(available.begin(), available.begin() + static_cast<std::ptrdiff_t>(length),
                      expected.begin(),
                      [](std::uint8_t a, char b) { return a == static_cast<std::uint8_t>(b); });
}

std::uint16_t read_u16(std::span<const std::uint8_t> bytes, std::size_t at) {
    return static_cast<std::uint16_t>((bytes[at] << 8) | bytes[at + 1]);
}

std::optional<std::uint16_t> parse_v1_port(std::string_view text) {
    if (text.empty() || text.size() > 5 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    unsigned value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

// "TCP4 192.0.2.1 198.51.100.7 51234 443" (the line after "PROXY ", without CRLF).
ProxyHeaderResult parse_v1_line(std::string_view line, std::size_t header_length) {
    ProxyHeader header;
    header.version = 1;
    header.length = header_length;
    if (line.starts_with("UNKNOWN") && (line.size() == 7 || line[7] == ' ')) {
        // The sender does not know the addresses; whatever follows is to be ignored.
        return complete(header);
    }
    const bool is_v6 = line.starts_with("TCP6 ");
    if (!is_v6 && !line.starts_with("TCP4 ")) {
        return invalid("v1 header names neither TCP4, TCP6 nor UNKNOWN");
    }
    line.remove_prefix(5);
    // Exactly four fields separated by single spaces.
    std::array<std::string_view, 4> fields;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const auto space = line.find(' ');
        const bool last = i + 1 == fields.size();
        if (last != (space == std::string_view::npos)) {
            return invalid("v1 header needs exactly: source destination source-port dest-port");
        }
        fields[i] = line.substr(0, space);
        if (fields[i].empty()) {
            return invalid("v1 header has an empty field (two spaces in a row?)");
        }
        line.remove_prefix(last ? line.size() : space + 1);
    }
    const auto source = IpAddress::parse(fields[0]);
    const auto destination = IpAddress::parse(fields[1]);
    const char* family = is_v6 ? "TCP6" : "TCP4";
    if (!source || source->is_v6 != is_v6) {
        return invalid(std::string("v1 source is not an address of family ") + family);
    }
    if (!destination || destination->is_v6 != is_v6) {
        return invalid(std::string("v1 destination is not an address of family ") + family);
    }
    const auto source_port = parse_v1_port(fields[2]);
    const auto destination_port = parse_v1_port(fields[3]);
    if (!source_port || !destination_port) {
        return invalid("v1 port is not a decimal number from 0 to 65535");
    }
    header.addresses = ProxyAddresses{{*source, *source_port}, {*destination, *destination_port}};
    return complete(header);
}

ProxyHeaderResult parse_v1(std::span<const std::uint8_t> bytes, std::size_t max_header_bytes) {
    if (!agrees_with(bytes, kV1Prefix)) {
        return invalid("not a PROXY header: starts with 'P' but not with \"PROXY \"");
    }
    if (bytes.size() > kV1Prefix.size()) {
        const auto after_prefix = bytes.subspan(kV1Prefix.size());
        if (std::none_of(kV1Protocols.begin(), kV1Protocols.end(), [&](std::string_view protocol) {
                return agrees_with(after_prefix, protocol);
            })) {
            return invalid("v1 protocol is not TCP4, TCP6 or UNKNOWN");
        }
    }
    // Find the CRLF, checking each byte on the way: the line is printable ASCII, and its length,
    // CRLF included, is capped.
    const std::size_t limit = std::min(kMaxProxyV1HeaderBytes, max_header_bytes);
    for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
        const std::uint8_t byte = bytes[i];
        if (byte == '\r') {
            if (i + 1 >= limit) {
                break;  // the LF could only come past the cap
            }
            if (i + 1 == bytes.size()) {
                return need_more();
            }
            if (bytes[i + 1] != '\n') {
                return invalid("v1 header has a CR not followed by LF");
            }
            const std::string_view line(reinterpret_cast<const char*>(bytes.data()), i);
            return parse_v1_line(line.substr(kV1Prefix.size()), i + 2);
        }
        if (byte < 0x20 || byte > 0x7e) {
            return invalid("v1 header has a non-printable byte " + hex_byte(byte) + " at offset " +
                           std::to_string(i));
        }
    }
    if (bytes.size() >= limit) {
        return invalid("v1 header has no CRLF within " + std::to_string(limit) + " bytes");
    }
    return need_more();
}

ProxyHeaderResult parse_v2(std::span<const std::uint8_t> bytes, std::size_t max_header_bytes) {
    const std::size_t signature_length = std::min(bytes.size(), kV2Signature.size());
    if (!std::equal(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(signature_length),
                    kV2Signature.begin())) {
        return invalid("not a PROXY header: starts with CR but not with the v2 signature");
    }
    if (bytes.size() <= 12) {
        return need_more();
    }
    const std::uint8_t version = bytes[12] >> 4;
    const std::uint8_t command = bytes[12] & 0x0f;
    if (version != kV2Version) {
        return invalid("v2 header with version " + std::to_string(version) + ", not 2");
    }
    if (command != kV2CommandLocal && command != kV2CommandProxy) {
        return invalid("v2 command " + std::to_string(command) + " is neither LOCAL nor PROXY");
    }
    if (bytes.size() <= 13) {
        return need_more();
    }
    // LOCAL ignores the family, as the spec says; PROXY must name one we can use.
    const std::uint8_t family = bytes[13];
    std::size_t address_block_size = 0;
    if (command == kV2CommandProxy) {
        switch (family) {
            case kV2Unspec:
                break;
            case kV2TcpOverIpv4:
                address_block_size = kV2Ipv4BlockSize;
                break;
            case kV2TcpOverIpv6:
                address_block_size = kV2Ipv6BlockSize;
                break;
            case 0x12:
            case 0x22:
                return invalid("v2 header for UDP: only TCP is relayed");
            case 0x31:
            case 0x32:
                return invalid("v2 header for a UNIX socket: no client address to use");
            default:
                return invalid("v2 address family/protocol " + hex_byte(family) +
                               " is not defined");
        }
    }
    if (bytes.size() < kV2FixedSize) {
        return need_more();
    }
    const std::size_t total = kV2FixedSize + read_u16(bytes, 14);
    if (total > max_header_bytes) {
        return invalid("v2 header of " + std::to_string(total) + " bytes exceeds the cap of " +
                       std::to_string(max_header_bytes));
    }
    if (total - kV2FixedSize < address_block_size) {
        return invalid("v2 header of " + std::to_string(total - kV2FixedSize) +
                       " bytes is shorter than its " + std::to_string(address_block_size) +
                       "-byte address block");
    }
    if (bytes.size() < total) {
        return need_more();
    }

    ProxyHeader header;
    header.version = 2;
    header.length = total;
    if (address_block_size == 0) {
        // LOCAL or AF_UNSPEC: the whole block, TLVs included, is to be discarded.
        return complete(header);
    }
    const auto block = bytes.subspan(kV2FixedSize, total - kV2FixedSize);
    const std::size_t address_size = family == kV2TcpOverIpv6 ? 16 : 4;
    ProxyAddresses addresses;
    addresses.source.address.is_v6 = address_size == 16;
    addresses.destination.address.is_v6 = address_size == 16;
    std::copy_n(block.begin(), address_size, addresses.source.address.bytes.begin());
    std::copy_n(block.begin() + static_cast<std::ptrdiff_t>(address_size), address_size,
                addresses.destination.address.bytes.begin());
    addresses.source.port = read_u16(block, 2 * address_size);
    addresses.destination.port = read_u16(block, 2 * address_size + 2);

    // TLVs (ALPN, authority, SSL details, ...) carry nothing we use, but a list that does not
    // tile the rest of the block exactly means the header is corrupt.
    std::size_t at = address_block_size;
    while (at < block.size()) {
        if (block.size() - at < kV2TlvHeaderSize) {
            return invalid("v2 TLV header cut short at offset " +
                           std::to_string(kV2FixedSize + at));
        }
        const std::size_t value_length = read_u16(block, at + 1);
        if (block.size() - at - kV2TlvHeaderSize < value_length) {
            return invalid("v2 TLV of type " + hex_byte(block[at]) + " overruns the header");
        }
        at += kV2TlvHeaderSize + value_length;
    }
    header.addresses = addresses;
    return complete(header);
}

}  // namespace

const char* to_string(ProxyHeaderStatus status) {
    switch (status) {
        case ProxyHeaderStatus::need_more:
            return "need_more";
        case ProxyHeaderStatus::complete:
            return "complete";
        case ProxyHeaderStatus::invalid:
            return "invalid";
    }
    return "unknown";
}

ProxyHeaderResult parse_proxy_header(std::span<const std::uint8_t> bytes,
                                     std::size_t max_header_bytes) {
    if (bytes.empty()) {
        return need_more();
    }
    if (bytes[0] == kV1Prefix[0]) {
        return parse_v1(bytes, max_header_bytes);
    }
    if (bytes[0] == kV2Signature[0]) {
        return parse_v2(bytes, max_header_bytes);
    }
    return invalid("not a PROXY header: first byte " + hex_byte(bytes[0]) +
                   " starts neither v1 ('P') nor v2 (CR)");
}

}  // namespace tlsgate::listen
