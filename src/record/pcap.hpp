#pragma once
// Writes the plaintext of intercepted connections as a pcap of synthesized TCP/IP packets (as
// SSLsplit does), so Wireshark and tshark dissect the decrypted HTTP with their own tools. Pure:
// the functions append bytes to a string and the caller writes files on its own thread.
//
// The capture is classic pcap (microsecond timestamps, little-endian) with LINKTYPE_RAW, so IPv4
// and IPv6 packets share one file without an invented link layer.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/ip.hpp"
#include "inspect/exchange.hpp"

namespace tlsgate::record {

struct Endpoint {
    IpAddress address;
    std::uint16_t port = 0;

    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// "192.0.2.10:53422" or "[2001:db8::1]:443", as FlowRecord and ConnectionRecord store addresses.
// The port is required (0..65535); an IPv6 address needs its brackets.
std::optional<Endpoint> parse_endpoint(std::string_view text);
// The inverse: "192.0.2.10:53422", "[2001:db8::1]:443".
std::string format_endpoint(const Endpoint& endpoint);

inline constexpr std::uint32_t kPcapSnapLength = 262144;
inline constexpr std::uint32_t kLinkTypeRaw = 101;
// Payload per synthesized segment: far below the 65,535-byte limit of an IPv4 packet and of an
// IPv6 payload, and the size of a TLS record, which is where the plaintext came from.
inline constexpr std::size_t kSegmentPayloadBytes = 16384;

// The 24-byte file header that starts every capture.
std::string pcap_file_header();

// One connection's packets: a handshake, data segments with consistent sequence and
// acknowledgement numbers, and the closing FINs. Every call appends complete pcap records
// (record header + IP packet) to `out`; no call keeps a copy of the payload.
//
// Calls must follow TCP's rules for a side: data after that side's close() or after reset() is
// dropped, data() before open() opens first, and repeated close() calls are ignored.
class SynthesizedTcpFlow {
public:
    // When one address is IPv4 and the other IPv6, the IPv4 one is written IPv4-mapped
    // (::ffff:a.b.c.d): a packet has one address family.
    SynthesizedTcpFlow(Endpoint client, Endpoint server);

    // SYN, SYN-ACK, ACK.
    void open(inspect::Clock::time_point when, std::string& out);
    // The bytes in segments of at most kSegmentPayloadBytes (PSH on the last one), then one ACK
    // from the other side for all of them.
    void data(inspect::Side from, std::span<const char> bytes, inspect::Clock::time_point when,
              std::string& out);
    // FIN/ACK from `from`, then the other side's ACK of it.
    void close(inspect::Side from, inspect::Clock::time_point when, std::string& out);
    // RST/ACK from `from`; the flow is over for both sides.
    void reset(inspect::Side from, inspect::Clock::time_point when, std::string& out);

    const Endpoint& client() const { return client_; }
    const Endpoint& server() const { return server_; }

private:
    struct Direction {
        std::uint32_t next_sequence = 0;
        std::uint16_t ip_identification = 0;
        bool closed = false;
    };

    void emit(inspect::Side from, std::uint8_t flags, std::span<const char> payload,
              inspect::Clock::time_point when, std::string& out);
    Direction& direction(inspect::Side side) {
        return side == inspect::Side::client ? client_direction_ : server_direction_;
    }

    Endpoint client_;
    Endpoint server_;
    Direction client_direction_;
    Direction server_direction_;
    bool opened_ = false;
    bool reset_ = false;
};

}  // namespace tlsgate::record
