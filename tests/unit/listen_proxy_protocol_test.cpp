#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "listen/proxy_protocol.hpp"

namespace tlsgate::listen {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bytes(std::initializer_list<int> values) {
    Bytes out;
    for (int value : values) {
        out.push_back(static_cast<std::uint8_t>(value));
    }
    return out;
}

Bytes text(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

Bytes operator+(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

const Bytes kV2Signature =
    bytes({0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a});

// A v2 header: signature, ver_cmd, fam, big-endian length of `rest`, then `rest`.
Bytes v2(int version_command, int family, const Bytes& rest) {
    return kV2Signature +
           bytes({version_command, family, static_cast<int>(rest.size() >> 8),
                  static_cast<int>(rest.size() & 0xff)}) +
           rest;
}

Bytes tlv(int type, const Bytes& value) {
    return bytes(
               {type, static_cast<int>(value.size() >> 8), static_cast<int>(value.size() & 0xff)}) +
           value;
}

// What HAProxy's send-proxy-v2 writes for a client 192.0.2.10:51234 that connected to
// 198.51.100.7:443: PROXY command, TCP over IPv4, 12 address bytes.
const Bytes kHaproxyV2Ipv4 =
    v2(0x21, 0x11, bytes({192, 0, 2, 10, 198, 51, 100, 7, 0xc8, 0x22, 0x01, 0xbb}));
// The same over IPv6: 2001:db8::10 port 51234 -> 2001:db8:1::7 port 443.
const Bytes kHaproxyV2Ipv6 =
    v2(0x21, 0x21,
       bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    0,    0x10, 0x20, 0x01,
              0x0d, 0xb8, 0,    1,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07, 0xc8, 0x22, 0x01, 0xbb}));
// HAProxy health checks (check-send-proxy) and "LOCAL" senders: no addresses at all.
const Bytes kHaproxyV2Local = v2(0x20, 0x00, {});
// send-proxy-v2 with proxy-v2-options authority,unique-id, an ALPN TLV and NOOP padding, and an
// AWS-style vendor TLV (0xea).
const Bytes kHaproxyV2WithTlvs =
    v2(0x21, 0x11,
       bytes({192, 0, 2, 10, 198, 51, 100, 7, 0xc8, 0x22, 0x01, 0xbb}) + tlv(0x01, text("h2")) +
           tlv(0x02, text("example.com")) + tlv(0x05, text("unique-id-1234")) +
           tlv(0x04, Bytes(5, 0)) + tlv(0xea, bytes({0x01}) + text("vpce-0123")) + tlv(0x04, {}));

// send-proxy (v1), the spec's examples with documentation addresses.
const Bytes kHaproxyV1Tcp4 = text("PROXY TCP4 192.0.2.10 198.51.100.7 51234 443\r\n");
const Bytes kHaproxyV1Tcp6 = text("PROXY TCP6 2001:db8::10 2001:db8:1::7 51234 443\r\n");
const Bytes kV1Unknown = text("PROXY UNKNOWN\r\n");
// The spec's worst case: exactly 107 bytes.
const Bytes kV1UnknownLongest = text(
    "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
    "65535 65535\r\n");

const Bytes kPayload = text("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");

ProxyHeaderResult parse(const Bytes& input) {
    return parse_proxy_header(input);
}

ProxyEndpoint endpoint(std::string_view address, std::uint16_t port) {
    return ProxyEndpoint{*IpAddress::parse(address), port};
}

// Calls the parser the way the shell does: on a growing buffer, until the status is settled.
// Every shorter prefix must be need_more, and the settled result must match the whole input's.
ProxyHeaderResult parse_growing(const Bytes& input, std::size_t* settled_at = nullptr) {
    const ProxyHeaderResult whole = parse(input);
    for (std::size_t length = 0; length <= input.size(); ++length) {
        const Bytes prefix(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(length));
        const ProxyHeaderResult result = parse(prefix);
        if (result.status == ProxyHeaderStatus::need_more) {
            EXPECT_TRUE(result.error.empty());
            continue;
        }
        EXPECT_EQ(result.status, whole.status) << "prefix of " << length;
        if (result.status == ProxyHeaderStatus::complete) {
            EXPECT_EQ(result.header, whole.header);
            EXPECT_EQ(result.header.length, length) << "complete before its last byte";
            EXPECT_TRUE(result.error.empty());
        } else {
            EXPECT_FALSE(result.error.empty());
        }
        if (settled_at != nullptr) {
            *settled_at = length;
        }
        return result;
    }
    EXPECT_EQ(whole.status, ProxyHeaderStatus::need_more);
    return whole;
}

void expect_complete(const Bytes& header, int version, std::optional<ProxyAddresses> addresses) {
    const Bytes stream = header + kPayload;
    std::size_t settled_at = 0;
    const ProxyHeaderResult result = parse_growing(stream, &settled_at);
    ASSERT_EQ(result.status, ProxyHeaderStatus::complete) << result.error;
    EXPECT_EQ(settled_at, header.size());
    EXPECT_EQ(result.header.version, version);
    EXPECT_EQ(result.header.length, header.size());
    EXPECT_EQ(result.header.addresses, addresses);
    EXPECT_EQ(result.header.is_local(), !addresses.has_value());
    EXPECT_EQ(parse(stream).header, result.header);
}

const ProxyAddresses kV4Addresses{endpoint("192.0.2.10", 51234), endpoint("198.51.100.7", 443)};
const ProxyAddresses kV6Addresses{endpoint("2001:db8::10", 51234), endpoint("2001:db8:1::7", 443)};

TEST(ProxyProtocolV1, Tcp4AsHaproxySendsIt) {
    expect_complete(kHaproxyV1Tcp4, 1, kV4Addresses);
}

TEST(ProxyProtocolV1, Tcp6AsHaproxySendsIt) {
    expect_complete(kHaproxyV1Tcp6, 1, kV6Addresses);
}

TEST(ProxyProtocolV1, UnknownIsLocalAndIgnoresTheRestOfTheLine) {
    expect_complete(kV1Unknown, 1, std::nullopt);
    ASSERT_EQ(kV1UnknownLongest.size(), 107u);
    expect_complete(kV1UnknownLongest, 1, std::nullopt);
    expect_complete(text("PROXY UNKNOWN anything at all\r\n"), 1, std::nullopt);
}

TEST(ProxyProtocolV1, LongestTcp6HeaderAndExtremePorts) {
    const Bytes header =
        text("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ::ffff:192.0.2.1 0 65535\r\n");
    expect_complete(header, 1,
                    ProxyAddresses{endpoint("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0),
                                   endpoint("::ffff:192.0.2.1", 65535)});
}

TEST(ProxyProtocolV1, HeaderOver107BytesIsInvalid) {
    // 108 bytes: one more character of "ignored" text than the spec allows.
    const Bytes too_long = text(
        "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "65535 655350\r\n");
    ASSERT_EQ(too_long.size(), 108u);
    std::size_t settled_at = 0;
    const auto result = parse_growing(too_long, &settled_at);
    EXPECT_EQ(result.status, ProxyHeaderStatus::invalid);
    EXPECT_EQ(settled_at, 107u);  // decided at the cap, not later
    // No CRLF at all: the buffer never grows past the cap.
    const auto endless = parse_growing(text("PROXY UNKNOWN ") + Bytes(500, 'x'), &settled_at);
    EXPECT_EQ(endless.status, ProxyHeaderStatus::invalid);
    EXPECT_EQ(settled_at, 107u);
}

struct InvalidCase {
    const char* name;
    Bytes input;
    std::size_t decided_at;  // the prefix length at which the parser says invalid
};

void expect_invalid_cases(const std::vector<InvalidCase>& cases) {
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        std::size_t settled_at = 0;
        const auto result = parse_growing(c.input + kPayload, &settled_at);
        EXPECT_EQ(result.status, ProxyHeaderStatus::invalid);
        EXPECT_FALSE(result.error.empty());
        EXPECT_EQ(settled_at, c.decided_at) << result.error;
    }
}

TEST(ProxyProtocolV1, MalformedHeadersAreInvalid) {
    const auto line = [](std::string_view s) { return text(s); };
    const auto at_crlf = [](std::string_view s) { return s.size(); };  // CRLF complete
    const std::vector<InvalidCase> cases = {
        {"lower-case signature", line("proxy TCP4 ..."), 1},
        {"PROXY without space", line("PROXY\r\n"), 6},
        {"unknown protocol", line("PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n"), 10},
        {"HTTP after PROXY", line("PROXY HTTP/1.1\r\n"), 7},
        {"UNKNOWNX", line("PROXY UNKNOWNX\r\n"), 14},
        {"TCP4 with IPv6 addresses", line("PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n"),
         at_crlf("PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n")},
        {"TCP6 with IPv4 addresses", line("PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n"),
         at_crlf("PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n")},
        {"bad destination", line("PROXY TCP4 192.0.2.1 192.0.2.256 1 2\r\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.256 1 2\r\n")},
        {"host name for address", line("PROXY TCP4 example.com 192.0.2.2 1 2\r\n"),
         at_crlf("PROXY TCP4 example.com 192.0.2.2 1 2\r\n")},
        {"port 65536", line("PROXY TCP4 192.0.2.1 192.0.2.2 65536 443\r\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 65536 443\r\n")},
        {"six-digit port", line("PROXY TCP4 192.0.2.1 192.0.2.2 1 000443\r\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 1 000443\r\n")},
        {"negative port", line("PROXY TCP4 192.0.2.1 192.0.2.2 -1 443\r\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 -1 443\r\n")},
        {"port with a sign", line("PROXY TCP4 192.0.2.1 192.0.2.2 +1 443\r\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 +1 443\r\n")},
        {"missing port", line("PROXY TCP4 192.0.2.1 192.0.2.2 443\r\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 443\r\n")},
        {"extra field", line("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n")},
        {"two spaces", line("PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n"),
         at_crlf("PROXY TCP4 192.0.2.1  192.0.2.2 1 2\r\n")},
        {"trailing space", line("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n")},
        {"no addresses", line("PROXY TCP4 \r\n"), at_crlf("PROXY TCP4 \r\n")},
        {"LF without CR", line("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n")},
        {"CR without LF", line("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX"),
         at_crlf("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rX")},
        {"tab separator", line("PROXY TCP4\t192.0.2.1"), 11},
        {"NUL byte", line("PROXY TCP4 192.0.2.1") + bytes({0}), 21},
        {"high byte", line("PROXY UNKNOWN \xc3\xa9\r\n"), 15},
    };
    expect_invalid_cases(cases);
}

TEST(ProxyProtocol, NonHeadersAreRejectedOnTheFirstByte) {
    const std::vector<InvalidCase> cases = {
        {"TLS ClientHello", bytes({0x16, 0x03, 0x01, 0x02, 0x00}), 1},
        {"HTTP request", text("GET / HTTP/1.1\r\n"), 1},
        {"SOCKS5 greeting", bytes({0x05, 0x01, 0x00}), 1},
        {"LF first", bytes({0x0a}), 1},
        {"NUL first", bytes({0x00}), 1},
        {"CONNECT", text("CONNECT example.com:443 HTTP/1.1\r\n"), 1},
        // 'P' and CR start a header, so these are decided at the first byte that differs.
        {"POST", text("POST / HTTP/1.1\r\n"), 2},
        {"PROXZ", text("PROXZ"), 5},
        {"CRLF then text", text("\r\nHello"), 3},
        {"signature off at its last byte",
         Bytes(kV2Signature.begin(), kV2Signature.end() - 1) + bytes({0x0b}), 12},
    };
    expect_invalid_cases(cases);
}

TEST(ProxyProtocol, EmptyAndPartialInputNeedsMore) {
    EXPECT_EQ(parse({}).status, ProxyHeaderStatus::need_more);
    EXPECT_EQ(parse(text("P")).status, ProxyHeaderStatus::need_more);
    EXPECT_EQ(parse(text("PROXY TCP4 192.0.2.1")).status, ProxyHeaderStatus::need_more);
    EXPECT_EQ(parse(bytes({0x0d})).status, ProxyHeaderStatus::need_more);
    EXPECT_EQ(parse(kV2Signature).status, ProxyHeaderStatus::need_more);
}

TEST(ProxyProtocolV2, Ipv4AsHaproxySendsIt) {
    expect_complete(kHaproxyV2Ipv4, 2, kV4Addresses);
}

TEST(ProxyProtocolV2, Ipv6AsHaproxySendsIt) {
    expect_complete(kHaproxyV2Ipv6, 2, kV6Addresses);
}

TEST(ProxyProtocolV2, TlvsAreSkipped) {
    expect_complete(kHaproxyV2WithTlvs, 2, kV4Addresses);
    // The largest header the spec allows, padded out with one NOOP TLV.
    const Bytes largest = v2(0x21, 0x11,
                             bytes({192, 0, 2, 10, 198, 51, 100, 7, 0xc8, 0x22, 0x01, 0xbb}) +
                                 tlv(0x04, Bytes(65535 - 12 - 3, 0)));
    ASSERT_EQ(largest.size(), kMaxProxyHeaderBytes);
    const auto result = parse(largest + kPayload);
    ASSERT_EQ(result.status, ProxyHeaderStatus::complete) << result.error;
    EXPECT_EQ(result.header.length, kMaxProxyHeaderBytes);
    EXPECT_EQ(result.header.addresses, kV4Addresses);
    EXPECT_EQ(parse(Bytes(largest.begin(), largest.end() - 1)).status,
              ProxyHeaderStatus::need_more);
}

TEST(ProxyProtocolV2, LocalAndUnspecifiedUseTheRealEndpoints) {
    expect_complete(kHaproxyV2Local, 2, std::nullopt);
    // LOCAL ignores the family and whatever the block holds, even an odd family or short block.
    expect_complete(v2(0x20, 0x11, bytes({192, 0, 2, 10, 198, 51, 100, 7, 0, 1, 0, 2})), 2,
                    std::nullopt);
    expect_complete(v2(0x20, 0x31, bytes({1, 2, 3})), 2, std::nullopt);
    expect_complete(v2(0x20, 0x99, {}), 2, std::nullopt);
    // PROXY with AF_UNSPEC: the spec lets the receiver accept it with the real endpoints.
    expect_complete(v2(0x21, 0x00, {}), 2, std::nullopt);
    expect_complete(v2(0x21, 0x00, tlv(0x01, text("h2"))), 2, std::nullopt);
}

TEST(ProxyProtocolV2, MalformedHeadersAreInvalidAsEarlyAsPossible) {
    const Bytes v4_block = bytes({192, 0, 2, 10, 198, 51, 100, 7, 0xc8, 0x22, 0x01, 0xbb});
    const std::vector<InvalidCase> cases = {
        {"version 1", v2(0x11, 0x11, v4_block), 13},
        {"version 3", v2(0x31, 0x11, v4_block), 13},
        {"command 2", v2(0x22, 0x11, v4_block), 13},
        {"command 15", v2(0x2f, 0x11, v4_block), 13},
        {"UDP over IPv4", v2(0x21, 0x12, v4_block), 14},
        {"UDP over IPv6", v2(0x21, 0x22, Bytes(36, 0)), 14},
        {"UNIX stream", v2(0x21, 0x31, Bytes(216, 0)), 14},
        {"UNIX datagram", v2(0x21, 0x32, Bytes(216, 0)), 14},
        {"IPv4 with unspecified protocol", v2(0x21, 0x10, v4_block), 14},
        {"unknown family", v2(0x21, 0x41, v4_block), 14},
        {"unknown protocol", v2(0x21, 0x13, v4_block), 14},
        {"IPv4 block too short", v2(0x21, 0x11, Bytes(11, 0)), 16},
        {"IPv6 block too short", v2(0x21, 0x21, Bytes(35, 0)), 16},
        {"IPv6 family, IPv4-sized block", v2(0x21, 0x21, v4_block), 16},
        {"TLV header cut short", v2(0x21, 0x11, v4_block + bytes({0x04, 0x00})), 16 + 12 + 2},
        {"TLV overruns", v2(0x21, 0x11, v4_block + bytes({0x04, 0x00, 0x05, 1, 2, 3, 4})),
         16 + 12 + 7},
        {"TLV one byte too long", v2(0x21, 0x11, v4_block + tlv(0x01, text("h2")) + bytes({0})),
         16 + 12 + 6},
    };
    expect_invalid_cases(cases);
}

TEST(ProxyProtocolV2, HeadersOverTheCallersCapAreInvalidOnceTheLengthIsKnown) {
    const Bytes header = kHaproxyV2WithTlvs;
    const auto over = parse_proxy_header(header, header.size() - 1);
    EXPECT_EQ(over.status, ProxyHeaderStatus::invalid);
    EXPECT_NE(over.error.find("exceeds"), std::string::npos) << over.error;
    // Decided with the fixed part alone.
    EXPECT_EQ(parse_proxy_header(std::span(header).first(16), header.size() - 1).status,
              ProxyHeaderStatus::invalid);
    EXPECT_EQ(parse_proxy_header(std::span(header).first(15), header.size() - 1).status,
              ProxyHeaderStatus::need_more);
    EXPECT_EQ(parse_proxy_header(header, header.size()).status, ProxyHeaderStatus::complete);
    // The cap bounds v1 too.
    EXPECT_EQ(parse_proxy_header(kHaproxyV1Tcp4, kHaproxyV1Tcp4.size() - 1).status,
              ProxyHeaderStatus::invalid);
    EXPECT_EQ(parse_proxy_header(kHaproxyV1Tcp4, kHaproxyV1Tcp4.size()).status,
              ProxyHeaderStatus::complete);
}

TEST(ProxyProtocol, StatusNames) {
    EXPECT_STREQ(to_string(ProxyHeaderStatus::need_more), "need_more");
    EXPECT_STREQ(to_string(ProxyHeaderStatus::complete), "complete");
    EXPECT_STREQ(to_string(ProxyHeaderStatus::invalid), "invalid");
}

}  // namespace
}  // namespace tlsgate::listen
