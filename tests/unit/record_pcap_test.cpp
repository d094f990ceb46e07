#include "record/pcap.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace tlsgate::record {
namespace {

using inspect::Side;
using namespace std::chrono_literals;

constexpr std::uint8_t kFin = 0x01;
constexpr std::uint8_t kSyn = 0x02;
constexpr std::uint8_t kRst = 0x04;
constexpr std::uint8_t kPsh = 0x08;
constexpr std::uint8_t kAck = 0x10;

const inspect::Clock::time_point kWhen{std::chrono::seconds(1709546400) + 123456us};

std::uint32_t le32(std::string_view bytes, std::size_t at) {
    return static_cast<std::uint8_t>(bytes[at]) | static_cast<std::uint8_t>(bytes[at + 1]) << 8 |
           static_cast<std::uint8_t>(bytes[at + 2]) << 16 |
           static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[at + 3])) << 24;
}

std::uint16_t le16(std::string_view bytes, std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<std::uint8_t>(bytes[at]) |
                                      static_cast<std::uint8_t>(bytes[at + 1]) << 8);
}

std::uint16_t be16(std::string_view bytes, std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<std::uint8_t>(bytes[at]) << 8 |
                                      static_cast<std::uint8_t>(bytes[at + 1]));
}

std::uint32_t be32(std::string_view bytes, std::size_t at) {
    return static_cast<std::uint32_t>(be16(bytes, at)) << 16 | be16(bytes, at + 2);
}

// The plain RFC 1071 definition, written independently of the code under test: the 16-bit
// one's-complement sum over data that includes its checksum is 0xffff.
std::uint32_t word_sum(std::string_view bytes) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < bytes.size(); i += 2) {
        const std::uint32_t high = static_cast<std::uint8_t>(bytes[i]);
        const std::uint32_t low =
            i + 1 < bytes.size() ? static_cast<std::uint8_t>(bytes[i + 1]) : 0;
        sum += high << 8 | low;
    }
    return sum;
}

std::uint16_t fold(std::uint32_t sum) {
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(sum);
}

struct Packet {
    std::uint32_t seconds = 0;
    std::uint32_t micros = 0;
    bool v6 = false;
    std::string source;  // raw address bytes
    std::string destination;
    std::uint16_t source_port = 0;
    std::uint16_t destination_port = 0;
    std::uint32_t sequence = 0;
    std::uint32_t acknowledgement = 0;
    std::uint8_t flags = 0;
    std::string payload;
    bool ip_checksum_ok = true;
    bool tcp_checksum_ok = false;
};

// Reads the records appended by SynthesizedTcpFlow (no file header), checking framing as it goes.
std::vector<Packet> parse_records(std::string_view bytes) {
    std::vector<Packet> packets;
    std::size_t at = 0;
    while (at < bytes.size()) {
        EXPECT_GE(bytes.size() - at, 16u) << "truncated record header";
        if (bytes.size() - at < 16) {
            break;
        }
        Packet packet;
        packet.seconds = le32(bytes, at);
        packet.micros = le32(bytes, at + 4);
        const std::uint32_t included = le32(bytes, at + 8);
        EXPECT_EQ(le32(bytes, at + 12), included) << "snapped packet";
        EXPECT_LE(included, kPcapSnapLength);
        EXPECT_LE(included, 65535u + 40u);
        at += 16;
        EXPECT_LE(included, bytes.size() - at);
        if (included > bytes.size() - at) {
            break;
        }
        const std::string_view ip = bytes.substr(at, included);
        at += included;

        std::size_t tcp_at = 0;
        std::string pseudo;
        const std::uint8_t version = static_cast<std::uint8_t>(ip[0]) >> 4;
        if (version == 4) {
            EXPECT_EQ(static_cast<std::uint8_t>(ip[0]), 0x45);
            EXPECT_EQ(be16(ip, 2), ip.size()) << "IPv4 total length";
            EXPECT_EQ(static_cast<std::uint8_t>(ip[9]), 6) << "protocol";
            packet.ip_checksum_ok = fold(word_sum(ip.substr(0, 20))) == 0xffff;
            packet.source = std::string(ip.substr(12, 4));
            packet.destination = std::string(ip.substr(16, 4));
            tcp_at = 20;
            pseudo = packet.source + packet.destination + std::string(1, '\0') + '\x06';
            pseudo.push_back(static_cast<char>((ip.size() - 20) >> 8));
            pseudo.push_back(static_cast<char>((ip.size() - 20) & 0xff));
        } else {
            EXPECT_EQ(version, 6);
            packet.v6 = true;
            EXPECT_EQ(be16(ip, 4), ip.size() - 40) << "IPv6 payload length";
            EXPECT_EQ(static_cast<std::uint8_t>(ip[6]), 6) << "next header";
            packet.source = std::string(ip.substr(8, 16));
            packet.destination = std::string(ip.substr(24, 16));
            tcp_at = 40;
            const std::uint32_t tcp_length = static_cast<std::uint32_t>(ip.size() - 40);
            pseudo = packet.source + packet.destination;
            for (int shift = 24; shift >= 0; shift -= 8) {
                pseudo.push_back(static_cast<char>((tcp_length >> shift) & 0xff));
            }
            pseudo += std::string(3, '\0') + '\x06';
        }
        const std::string_view tcp = ip.substr(tcp_at);
        packet.source_port = be16(tcp, 0);
        packet.destination_port = be16(tcp, 2);
        packet.sequence = be32(tcp, 4);
        packet.acknowledgement = be32(tcp, 8);
        const std::size_t header_length = (static_cast<std::uint8_t>(tcp[12]) >> 4) * 4u;
        packet.flags = static_cast<std::uint8_t>(tcp[13]);
        packet.payload = std::string(tcp.substr(header_length));
        packet.tcp_checksum_ok = fold(word_sum(pseudo) + word_sum(tcp)) == 0xffff;
        packets.push_back(std::move(packet));
    }
    return packets;
}

Endpoint endpoint(std::string_view text) {
    auto parsed = parse_endpoint(text);
    EXPECT_TRUE(parsed) << text;
    return parsed.value_or(Endpoint{});
}

std::string raw(const IpAddress& address) {
    return std::string(reinterpret_cast<const char*>(address.bytes.data()), address.size());
}

TEST(ParseEndpoint, ReadsIpv4AndBracketedIpv6) {
    const auto v4 = parse_endpoint("192.0.2.10:53422");
    ASSERT_TRUE(v4);
    EXPECT_FALSE(v4->address.is_v6);
    EXPECT_EQ(v4->address.to_string(), "192.0.2.10");
    EXPECT_EQ(v4->port, 53422);
    const auto v6 = parse_endpoint("[2001:db8::1]:443");
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->address.is_v6);
    EXPECT_EQ(v6->address.to_string(), "2001:db8::1");
    EXPECT_EQ(v6->port, 443);
    EXPECT_EQ(parse_endpoint("0.0.0.0:0")->port, 0);
    EXPECT_EQ(parse_endpoint("[::1]:65535")->port, 65535);
    EXPECT_EQ(format_endpoint(*v4), "192.0.2.10:53422");
    EXPECT_EQ(format_endpoint(*v6), "[2001:db8::1]:443");
}

TEST(ParseEndpoint, RejectsWhatIsNotIpColonPort) {
    for (const char* bad :
         {"", ":", "192.0.2.10", "192.0.2.10:", "192.0.2.10:65536", "192.0.2.10:-1",
          "192.0.2.10:44x", "192.0.2.10:000443", "2001:db8::1:443", "[2001:db8::1]",
          "[2001:db8::1]443", "[192.0.2.10]:443", "example.test:443", "[::1:443", "[]:443",
          "192.0.2.10: 443", " 192.0.2.10:443"}) {
        EXPECT_FALSE(parse_endpoint(bad)) << bad;
    }
}

TEST(PcapFileHeader, IsClassicMicrosecondRawIp) {
    const std::string header = pcap_file_header();
    ASSERT_EQ(header.size(), 24u);
    EXPECT_EQ(le32(header, 0), 0xa1b2c3d4u);
    EXPECT_EQ(le16(header, 4), 2);
    EXPECT_EQ(le16(header, 6), 4);
    EXPECT_EQ(le32(header, 8), 0u);
    EXPECT_EQ(le32(header, 12), 0u);
    EXPECT_EQ(le32(header, 16), 262144u);
    EXPECT_EQ(le32(header, 20), 101u);
}

TEST(SynthesizedTcpFlow, OpenWritesTheThreeWayHandshake) {
    const Endpoint client = endpoint("192.0.2.10:53422");
    const Endpoint server = endpoint("203.0.113.5:443");
    SynthesizedTcpFlow flow(client, server);
    std::string out;
    flow.open(kWhen, out);
    flow.open(kWhen, out);  // once only
    const auto packets = parse_records(out);
    ASSERT_EQ(packets.size(), 3u);
    const auto& syn = packets[0];
    const auto& syn_ack = packets[1];
    const auto& ack = packets[2];
    EXPECT_EQ(syn.flags, kSyn);
    EXPECT_EQ(syn.acknowledgement, 0u);
    EXPECT_EQ(syn_ack.flags, kSyn | kAck);
    EXPECT_EQ(syn_ack.acknowledgement, syn.sequence + 1);
    EXPECT_EQ(ack.flags, kAck);
    EXPECT_EQ(ack.sequence, syn.sequence + 1);
    EXPECT_EQ(ack.acknowledgement, syn_ack.sequence + 1);
    for (const auto& packet : packets) {
        EXPECT_FALSE(packet.v6);
        EXPECT_TRUE(packet.ip_checksum_ok);
        EXPECT_TRUE(packet.tcp_checksum_ok);
        EXPECT_EQ(packet.seconds, 1709546400u);
        EXPECT_EQ(packet.micros, 123456u);
        EXPECT_TRUE(packet.payload.empty());
    }
    EXPECT_EQ(syn.source, raw(client.address));
    EXPECT_EQ(syn.destination, raw(server.address));
    EXPECT_EQ(syn.source_port, 53422);
    EXPECT_EQ(syn.destination_port, 443);
    EXPECT_EQ(syn_ack.source, raw(server.address));
    EXPECT_EQ(syn_ack.source_port, 443);
    EXPECT_EQ(syn_ack.destination_port, 53422);
}

// Bytes whose sum differs by position, so a misplaced segment changes the checksum and payload.
std::string pattern(std::size_t size, int seed) {
    std::string bytes(size, '\0');
    for (std::size_t i = 0; i < size; ++i) {
        bytes[i] = static_cast<char>((i * 31 + seed) & 0xff);
    }
    return bytes;
}

TEST(SynthesizedTcpFlow, DataIsSegmentedWithConsecutiveSequenceNumbers) {
    SynthesizedTcpFlow flow(endpoint("192.0.2.10:53422"), endpoint("203.0.113.5:443"));
    std::string out;
    flow.open(kWhen, out);
    const auto handshake = parse_records(out);
    const std::uint32_t client_next = handshake[0].sequence + 1;
    const std::uint32_t server_next = handshake[1].sequence + 1;
    out.clear();

    const std::string request = pattern(40001, 1);  // odd: the checksum pads the last byte
    flow.data(Side::client, request, kWhen + 1ms, out);
    auto packets = parse_records(out);
    ASSERT_EQ(packets.size(), 4u);  // 16384 + 16384 + 7233, then the server's ACK
    std::string reassembled;
    std::uint32_t expected_sequence = client_next;
    for (std::size_t i = 0; i < 3; ++i) {
        const auto& segment = packets[i];
        EXPECT_EQ(segment.source_port, 53422);
        EXPECT_EQ(segment.sequence, expected_sequence);
        EXPECT_EQ(segment.acknowledgement, server_next);
        EXPECT_EQ(segment.flags, i == 2 ? (kPsh | kAck) : kAck);
        EXPECT_LE(segment.payload.size(), kSegmentPayloadBytes);
        EXPECT_TRUE(segment.ip_checksum_ok);
        EXPECT_TRUE(segment.tcp_checksum_ok);
        EXPECT_EQ(segment.micros, 124456u);
        expected_sequence += static_cast<std::uint32_t>(segment.payload.size());
        reassembled += segment.payload;
    }
    EXPECT_EQ(reassembled, request);
    EXPECT_EQ(packets[3].source_port, 443);
    EXPECT_EQ(packets[3].flags, kAck);
    EXPECT_EQ(packets[3].sequence, server_next);
    EXPECT_EQ(packets[3].acknowledgement, client_next + 40001);
    EXPECT_TRUE(packets[3].tcp_checksum_ok);

    out.clear();
    flow.data(Side::server, std::string_view("HTTP/1.1 204 No Content\r\n\r\n"), kWhen, out);
    flow.data(Side::server, std::string_view(), kWhen, out);  // nothing to send
    packets = parse_records(out);
    ASSERT_EQ(packets.size(), 2u);
    EXPECT_EQ(packets[0].sequence, server_next);
    EXPECT_EQ(packets[0].acknowledgement, client_next + 40001);
    EXPECT_EQ(packets[0].flags, kPsh | kAck);
    EXPECT_EQ(packets[1].acknowledgement, server_next + 27);
}

TEST(SynthesizedTcpFlow, CloseSendsFinsThatTakeOneSequenceNumber) {
    SynthesizedTcpFlow flow(endpoint("192.0.2.10:53422"), endpoint("203.0.113.5:443"));
    std::string out;
    flow.data(Side::client, std::string_view("ping"), kWhen, out);  // opens first
    auto packets = parse_records(out);
    ASSERT_EQ(packets.size(), 5u);
    EXPECT_EQ(packets[0].flags, kSyn);
    const std::uint32_t client_next = packets[0].sequence + 1 + 4;
    const std::uint32_t server_next = packets[1].sequence + 1;

    out.clear();
    flow.close(Side::client, kWhen, out);
    flow.close(Side::client, kWhen, out);                           // ignored
    flow.data(Side::client, std::string_view("late"), kWhen, out);  // after FIN: dropped
    flow.close(Side::server, kWhen, out);
    packets = parse_records(out);
    ASSERT_EQ(packets.size(), 4u);
    EXPECT_EQ(packets[0].flags, kFin | kAck);
    EXPECT_EQ(packets[0].sequence, client_next);
    EXPECT_EQ(packets[1].flags, kAck);
    EXPECT_EQ(packets[1].acknowledgement, client_next + 1);
    EXPECT_EQ(packets[2].flags, kFin | kAck);
    EXPECT_EQ(packets[2].sequence, server_next);
    EXPECT_EQ(packets[2].acknowledgement, client_next + 1);
    EXPECT_EQ(packets[3].sequence, client_next + 1);
    EXPECT_EQ(packets[3].acknowledgement, server_next + 1);
    for (const auto& packet : packets) {
        EXPECT_TRUE(packet.tcp_checksum_ok);
        EXPECT_TRUE(packet.payload.empty());
    }
}

TEST(SynthesizedTcpFlow, ResetEndsTheFlowForBothSides) {
    SynthesizedTcpFlow flow(endpoint("192.0.2.10:53422"), endpoint("203.0.113.5:443"));
    std::string out;
    flow.open(kWhen, out);
    out.clear();
    flow.reset(Side::server, kWhen, out);
    flow.data(Side::client, std::string_view("x"), kWhen, out);
    flow.close(Side::client, kWhen, out);
    flow.reset(Side::client, kWhen, out);
    const auto packets = parse_records(out);
    ASSERT_EQ(packets.size(), 1u);
    EXPECT_EQ(packets[0].flags, kRst | kAck);
    EXPECT_EQ(packets[0].source_port, 443);
}

TEST(SynthesizedTcpFlow, Ipv6UsesItsPseudoHeader) {
    const Endpoint client = endpoint("[2001:db8::10]:50000");
    const Endpoint server = endpoint("[2001:db8::1]:8080");
    SynthesizedTcpFlow flow(client, server);
    std::string out;
    flow.open(kWhen, out);
    flow.data(Side::client, pattern(20000, 7), kWhen, out);
    flow.close(Side::client, kWhen, out);
    const auto packets = parse_records(out);
    ASSERT_EQ(packets.size(), 3u + 3u + 2u);
    for (const auto& packet : packets) {
        EXPECT_TRUE(packet.v6);
        EXPECT_TRUE(packet.tcp_checksum_ok);
    }
    EXPECT_EQ(packets[0].source, raw(client.address));
    EXPECT_EQ(packets[0].destination, raw(server.address));
    EXPECT_EQ(packets[3].payload.size(), kSegmentPayloadBytes);
    EXPECT_EQ(packets[4].payload.size(), 20000 - kSegmentPayloadBytes);
}

TEST(SynthesizedTcpFlow, MixedFamiliesShareOne) {
    // An IPv4-mapped client talking to an IPv4 server: both IPv4.
    SynthesizedTcpFlow mapped(endpoint("[::ffff:192.0.2.10]:1000"), endpoint("203.0.113.5:443"));
    EXPECT_FALSE(mapped.client().address.is_v6);
    EXPECT_EQ(mapped.client().address.to_string(), "192.0.2.10");
    // An IPv4 client and an IPv6 server: the IPv4 one is mapped into IPv6.
    SynthesizedTcpFlow mixed(endpoint("192.0.2.10:1000"), endpoint("[2001:db8::1]:443"));
    EXPECT_TRUE(mixed.client().address.is_v6);
    EXPECT_EQ(mixed.client().address.to_string(), "::ffff:192.0.2.10");
    std::string out;
    mixed.open(kWhen, out);
    for (const auto& packet : parse_records(out)) {
        EXPECT_TRUE(packet.v6);
        EXPECT_TRUE(packet.tcp_checksum_ok);
    }
}

TEST(SynthesizedTcpFlow, TimesBeforeTheEpochClampToZero) {
    SynthesizedTcpFlow flow(endpoint("192.0.2.10:1000"), endpoint("203.0.113.5:443"));
    std::string out;
    flow.open(inspect::Clock::time_point{} - 5s, out);
    for (const auto& packet : parse_records(out)) {
        EXPECT_EQ(packet.seconds, 0u);
        EXPECT_EQ(packet.micros, 0u);
    }
}

// End to end: what tshark makes of a capture.
class TsharkReads : public ::testing::Test {
protected:
    void SetUp() override {
        if (access("/usr/bin/tshark", X_OK) != 0) {
            GTEST_SKIP() << "tshark is not installed";
        }
        path_ = std::filesystem::temp_directory_path() /
                ("tlsgate_pcap_test_" + std::to_string(getpid()) + "_" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".pcap");
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove(path_, ignored);
    }

    std::string tshark(const std::string& capture, const std::string& arguments) {
        {
            std::ofstream file(path_, std::ios::binary);
            file << capture;
        }
        const std::string command =
            "/usr/bin/tshark -r '" + path_.string() + "' " + arguments + " 2>/dev/null";
        std::string output;
        if (FILE* pipe = popen(command.c_str(), "r")) {
            char buffer[4096];
            std::size_t n;
            while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) {
                output.append(buffer, n);
            }
            pclose(pipe);
        }
        return output;
    }

    std::filesystem::path path_;
};

std::string exchange_capture(const Endpoint& client, const Endpoint& server,
                             std::string_view response) {
    std::string capture = pcap_file_header();
    SynthesizedTcpFlow flow(client, server);
    flow.open(kWhen, capture);
    flow.data(Side::client, std::string_view("GET /hello HTTP/1.1\r\nHost: example.test\r\n\r\n"),
              kWhen + 1ms, capture);
    flow.data(Side::server, response, kWhen + 2ms, capture);
    flow.close(Side::server, kWhen + 3ms, capture);
    flow.close(Side::client, kWhen + 3ms, capture);
    return capture;
}

constexpr std::string_view kHelloResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

TEST_F(TsharkReads, Ipv4RequestOnPort443) {
    const auto capture =
        exchange_capture(endpoint("192.0.2.10:53422"), endpoint("203.0.113.5:443"), kHelloResponse);
    const auto output = tshark(capture,
                               "-d tcp.port==443,http -Y http.request -T fields "
                               "-e ip.src -e http.request.method -e http.request.uri");
    EXPECT_EQ(output, "192.0.2.10\tGET\t/hello\n");
    const auto bad = tshark(capture,
                            "-o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -Y "
                            "'tcp.analysis.flags || ip.checksum.status == \"Bad\" || "
                            "tcp.checksum.status == \"Bad\"'");
    EXPECT_EQ(bad, "") << "tshark found TCP or checksum problems";
}

TEST_F(TsharkReads, Ipv6RequestOnPort8080) {
    const auto capture = exchange_capture(endpoint("[2001:db8::10]:50000"),
                                          endpoint("[2001:db8::1]:8080"), kHelloResponse);
    const auto output = tshark(capture,
                               "-d tcp.port==8080,http -Y http.request -T fields "
                               "-e ipv6.dst -e http.request.method -e http.request.uri");
    EXPECT_EQ(output, "2001:db8::1\tGET\t/hello\n");
    const auto response = tshark(capture,
                                 "-d tcp.port==8080,http -Y http.response -T fields "
                                 "-e http.response.code -e http.file_data");
    EXPECT_NE(response.find("200\thello"), std::string::npos) << response;
    const auto bad = tshark(capture,
                            "-o tcp.check_checksum:TRUE "
                            "-Y 'tcp.analysis.flags || tcp.checksum.status == \"Bad\"'");
    EXPECT_EQ(bad, "");
}

TEST_F(TsharkReads, LargeResponseReassembles) {
    std::string response =
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        "Content-Length: 102400\r\n\r\n";
    response += pattern(102400, 3);
    const auto capture =
        exchange_capture(endpoint("192.0.2.10:53422"), endpoint("203.0.113.5:443"), response);
    const auto output = tshark(capture,
                               "-d tcp.port==443,http -Y http.response -T fields "
                               "-e http.response.code -e tcp.reassembled.length");
    EXPECT_EQ(output, "200\t" + std::to_string(response.size()) + "\n");
}

}  // namespace
}  // namespace tlsgate::record
