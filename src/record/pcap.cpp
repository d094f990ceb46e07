#include "record/pcap.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>

namespace tlsgate::record {
namespace {

using inspect::Side;

constexpr std::uint8_t kFin = 0x01;
constexpr std::uint8_t kSyn = 0x02;
constexpr std::uint8_t kRst = 0x04;
constexpr std::uint8_t kPsh = 0x08;
constexpr std::uint8_t kAck = 0x10;

constexpr std::size_t kIpv4HeaderBytes = 20;
constexpr std::size_t kIpv6HeaderBytes = 40;
constexpr std::size_t kTcpHeaderBytes = 20;
constexpr std::uint8_t kProtocolTcp = 6;
constexpr std::uint16_t kWindow = 65535;

// pcap's own fields are little-endian (the magic number tells readers so); the packets inside
// are in network byte order.
void put_le32(std::string& out, std::uint32_t value) {
    for (int shift = 0; shift < 32; shift += 8) {
        out.push_back(static_cast<char>((value >> shift) & 0xff));
    }
}

void put_le16(std::string& out, std::uint16_t value) {
    out.push_back(static_cast<char>(value & 0xff));
    out.push_back(static_cast<char>(value >> 8));
}

void put_be16(std::string& out, std::uint16_t value) {
    out.push_back(static_cast<char>(value >> 8));
    out.push_back(static_cast<char>(value & 0xff));
}

void put_be32(std::string& out, std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<char>((value >> shift) & 0xff));
    }
}

void store_be16(std::string& out, std::size_t at, std::uint16_t value) {
    out[at] = static_cast<char>(value >> 8);
    out[at + 1] = static_cast<char>(value & 0xff);
}

void put_address(std::string& out, const IpAddress& address) {
    out.append(reinterpret_cast<const char*>(address.bytes.data()), address.size());
}

// RFC 1071 one's-complement sum, fed in pieces; the pieces may have odd lengths.
class InternetChecksum {
public:
    void add(std::string_view bytes) {
        for (const char c : bytes) {
            const auto byte = static_cast<std::uint8_t>(c);
            sum_ += odd_ ? byte : static_cast<std::uint32_t>(byte) << 8;
            odd_ = !odd_;
            // Fold now and then so the 32-bit sum never overflows on large inputs.
            if (sum_ >= 0x80000000u) {
                sum_ = (sum_ & 0xffff) + (sum_ >> 16);
            }
        }
    }
    std::uint16_t finish() const {
        std::uint32_t sum = sum_;
        while (sum >> 16) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return static_cast<std::uint16_t>(~sum & 0xffff);
    }

private:
    std::uint32_t sum_ = 0;
    bool odd_ = false;
};

IpAddress as_v6(const IpAddress& address) {
    if (address.is_v6) {
        return address;
    }
    IpAddress mapped;
    mapped.is_v6 = true;
    mapped.bytes[10] = 0xff;
    mapped.bytes[11] = 0xff;
    std::copy_n(address.bytes.begin(), 4, mapped.bytes.begin() + 12);
    return mapped;
}

// A fixed initial sequence number per endpoint: captures of the same input are identical, and
// the two directions of a flow start far apart, as real ones do.
std::uint32_t initial_sequence(const Endpoint& endpoint) {
    std::uint32_t hash = 2166136261u;
    const auto mix = [&hash](std::uint8_t byte) { hash = (hash ^ byte) * 16777619u; };
    for (std::size_t i = 0; i < endpoint.address.size(); ++i) {
        mix(endpoint.address.bytes[i]);
    }
    mix(static_cast<std::uint8_t>(endpoint.port >> 8));
    mix(static_cast<std::uint8_t>(endpoint.port));
    return hash;
}

}  // namespace

std::optional<Endpoint> parse_endpoint(std::string_view text) {
    std::string_view host;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    const auto [end, error] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || port_text.size() > 5 || error != std::errc{} ||
        end != port_text.data() + port_text.size() || port > 65535) {
        return std::nullopt;
    }
    auto address = IpAddress::parse(host);
    // "2001:db8::1:443" is ambiguous: an IPv6 address must come in brackets.
    if (!address || (address->is_v6 && text.front() != '[') ||
        (!address->is_v6 && text.front() == '[')) {
        return std::nullopt;
    }
    return Endpoint{*address, static_cast<std::uint16_t>(port)};
}

std::string format_endpoint(const Endpoint& endpoint) {
    const std::string address = endpoint.address.to_string();
    const std::string port = std::to_string(endpoint.port);
    return endpoint.address.is_v6 ? "[" + address + "]:" + port : address + ":" + port;
}

std::string pcap_file_header() {
    std::string header;
    put_le32(header, 0xa1b2c3d4);  // microsecond timestamps
    put_le16(header, 2);           // version 2.4
    put_le16(header, 4);
    put_le32(header, 0);  // timestamps are UTC
    put_le32(header, 0);  // accuracy: unspecified
    put_le32(header, kPcapSnapLength);
    put_le32(header, kLinkTypeRaw);
    return header;
}

SynthesizedTcpFlow::SynthesizedTcpFlow(Endpoint client, Endpoint server)
    : client_(std::move(client)), server_(std::move(server)) {
    if (client_.address.is_v6 != server_.address.is_v6) {
        client_.address = client_.address.unmapped();
        server_.address = server_.address.unmapped();
        if (client_.address.is_v6 != server_.address.is_v6) {
            client_.address = as_v6(client_.address);
            server_.address = as_v6(server_.address);
        }
    }
    client_direction_.next_sequence = initial_sequence(client_);
    server_direction_.next_sequence = initial_sequence(server_) ^ 0x5a5a5a5au;
}

void SynthesizedTcpFlow::open(inspect::Clock::time_point when, std::string& out) {
    if (opened_) {
        return;
    }
    opened_ = true;
    emit(Side::client, kSyn, {}, when, out);
    client_direction_.next_sequence += 1;  // a SYN takes one sequence number
    emit(Side::server, kSyn | kAck, {}, when, out);
    server_direction_.next_sequence += 1;
    emit(Side::client, kAck, {}, when, out);
}

void SynthesizedTcpFlow::data(Side from, std::span<const char> bytes,
                              inspect::Clock::time_point when, std::string& out) {
    if (bytes.empty() || reset_ || direction(from).closed) {
        return;
    }
    open(when, out);
    Direction& sender = direction(from);
    while (!bytes.empty()) {
        const std::size_t length = std::min(bytes.size(), kSegmentPayloadBytes);
        const bool last = length == bytes.size();
        emit(from, last ? kPsh | kAck : kAck, bytes.first(length), when, out);
        sender.next_sequence += static_cast<std::uint32_t>(length);
        bytes = bytes.subspan(length);
    }
    const Side receiver = from == Side::client ? Side::server : Side::client;
    emit(receiver, kAck, {}, when, out);
}

void SynthesizedTcpFlow::close(Side from, inspect::Clock::time_point when, std::string& out) {
    if (reset_ || direction(from).closed) {
        return;
    }
    open(when, out);
    Direction& sender = direction(from);
    emit(from, kFin | kAck, {}, when, out);
    sender.next_sequence += 1;  // so does a FIN
    sender.closed = true;
    const Side receiver = from == Side::client ? Side::server : Side::client;
    emit(receiver, kAck, {}, when, out);
}

void SynthesizedTcpFlow::reset(Side from, inspect::Clock::time_point when, std::string& out) {
    if (reset_) {
        return;
    }
    open(when, out);
    emit(from, kRst | kAck, {}, when, out);
    reset_ = true;
}

void SynthesizedTcpFlow::emit(Side from, std::uint8_t flags, std::span<const char> payload,
                              inspect::Clock::time_point when, std::string& out) {
    const bool from_client = from == Side::client;
    const Endpoint& source = from_client ? client_ : server_;
    const Endpoint& destination = from_client ? server_ : client_;
    Direction& sender = direction(from);
    const Direction& receiver = from_client ? server_direction_ : client_direction_;
    const bool v6 = source.address.is_v6;
    const std::size_t tcp_length = kTcpHeaderBytes + payload.size();
    const std::size_t packet_length = (v6 ? kIpv6HeaderBytes : kIpv4HeaderBytes) + tcp_length;

    // Record header. Times before the epoch (a default time_point) clamp to zero.
    const auto micros = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count());
    out.reserve(out.size() + 16 + packet_length);
    put_le32(out, static_cast<std::uint32_t>(micros / 1000000));
    put_le32(out, static_cast<std::uint32_t>(micros % 1000000));
    put_le32(out, static_cast<std::uint32_t>(packet_length));
    put_le32(out, static_cast<std::uint32_t>(packet_length));

    // IP header.
    const std::size_t ip_start = out.size();
    if (v6) {
        put_be32(out, 0x60000000u);  // version 6, no traffic class, no flow label
        put_be16(out, static_cast<std::uint16_t>(tcp_length));
        out.push_back(static_cast<char>(kProtocolTcp));
        out.push_back(static_cast<char>(64));  // hop limit
        put_address(out, source.address);
        put_address(out, destination.address);
    } else {
        out.push_back(static_cast<char>(0x45));  // version 4, 5 words of header
        out.push_back(0);
        put_be16(out, static_cast<std::uint16_t>(packet_length));
        put_be16(out, sender.ip_identification++);
        put_be16(out, 0x4000);                 // don't fragment
        out.push_back(static_cast<char>(64));  // TTL
        out.push_back(static_cast<char>(kProtocolTcp));
        put_be16(out, 0);  // checksum, filled in below
        put_address(out, source.address);
        put_address(out, destination.address);
        InternetChecksum header_sum;
        header_sum.add(std::string_view(out).substr(ip_start, kIpv4HeaderBytes));
        store_be16(out, ip_start + 10, header_sum.finish());
    }

    // TCP header.
    const std::size_t tcp_start = out.size();
    put_be16(out, source.port);
    put_be16(out, destination.port);
    put_be32(out, sender.next_sequence);
    // Every segment but the first SYN acknowledges all the peer has sent.
    put_be32(out, (flags & kAck) != 0 ? receiver.next_sequence : 0);
    out.push_back(static_cast<char>(5 << 4));  // data offset: 5 words, no options
    out.push_back(static_cast<char>(flags));
    put_be16(out, kWindow);
    put_be16(out, 0);  // checksum, filled in below
    put_be16(out, 0);  // urgent pointer
    out.append(payload.data(), payload.size());

    // The TCP checksum covers a pseudo-header of addresses, protocol and length.
    // The addresses are already in the IP header; protocol and length follow as 16-bit words,
    // which sum the same for the IPv4 and the IPv6 layout.
    InternetChecksum tcp_sum;
    const std::size_t addresses_at = ip_start + (v6 ? 8 : 12);
    tcp_sum.add(std::string_view(out).substr(addresses_at, 2 * source.address.size()));
    const char protocol_and_length[4] = {0, static_cast<char>(kProtocolTcp),
                                         static_cast<char>((tcp_length >> 8) & 0xff),
                                         static_cast<char>(tcp_length & 0xff)};
    tcp_sum.add(std::string_view(protocol_and_length, sizeof protocol_and_length));
    tcp_sum.add(std::string_view(out).substr(tcp_start, tcp_length));
    store_be16(out, tcp_start + 16, tcp_sum.finish());
}

}  // namespace tlsgate::record
