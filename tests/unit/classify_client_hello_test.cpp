#include "classify/client_hello.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace tlsgate::classify {
namespace {

using Bytes = std::vector<std::uint8_t>;

// ---------------------------------------------------------------------------------------------
// Helpers: captured hellos, hand-built hellos, and a comparable summary of a parse.

Bytes read_capture(const std::string& name) {
    const std::string path = std::string(TLSGATE_TEST_DATA) + "/client_hello/" + name;
    std::ifstream file(path, std::ios::binary);
    EXPECT_TRUE(file.good()) << "missing test data " << path;
    return Bytes(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

Bytes to_bytes(std::string_view text) {
    return Bytes(text.begin(), text.end());
}

void append_u8(Bytes& out, std::size_t value) {
    out.push_back(static_cast<std::uint8_t>(value));
}
void append_u16(Bytes& out, std::size_t value) {
    append_u8(out, value >> 8);
    append_u8(out, value);
}
void append_u24(Bytes& out, std::size_t value) {
    append_u8(out, value >> 16);
    append_u16(out, value);
}
void append(Bytes& out, const Bytes& more) {
    out.insert(out.end(), more.begin(), more.end());
}

struct Extension {
    std::uint16_t type;
    Bytes data;
};

Extension sni_extension(std::string_view host) {
    Bytes entry;
    append_u8(entry, 0);  // host_name
    append_u16(entry, host.size());
    append(entry, to_bytes(host));
    Bytes data;
    append_u16(data, entry.size());
    append(data, entry);
    return {0, data};
}

Extension alpn_extension(const std::vector<std::string>& protocols) {
    Bytes list;
    for (const auto& protocol : protocols) {
        append_u8(list, protocol.size());
        append(list, to_bytes(protocol));
    }
    Bytes data;
    append_u16(data, list.size());
    append(data, list);
    return {16, data};
}

Extension versions_extension(const std::vector<std::uint16_t>& versions) {
    Bytes data;
    append_u8(data, versions.size() * 2);
    for (auto version : versions) {
        append_u16(data, version);
    }
    return {43, data};
}

Extension padding_extension(std::size_t length) {
    return {21, Bytes(length, 0)};
}

// The handshake message (4-byte header included) of a ClientHello with the given extensions.
Bytes hello_message(const std::vector<Extension>& extensions) {
    Bytes body;
    append_u16(body, 0x0303);
    body.insert(body.end(), 32, 0xab);  // random
    append_u8(body, 32);                // session_id
    body.insert(body.end(), 32, 0xcd);
    append_u16(body, 4);  // cipher_suites
    append_u16(body, 0x1301);
    append_u16(body, 0xc02f);
    append_u8(body, 1);  // compression_methods: null
    append_u8(body, 0);
    Bytes block;
    for (const auto& extension : extensions) {
        append_u16(block, extension.type);
        append_u16(block, extension.data.size());
        append(block, extension.data);
    }
    append_u16(body, block.size());
    append(body, block);
    Bytes message;
    append_u8(message, 1);
    append_u24(message, body.size());
    append(message, body);
    return message;
}

// Wraps handshake bytes into records of the given fragment sizes; the last record takes the rest.
Bytes in_records(const Bytes& message, const std::vector<std::size_t>& fragment_sizes = {}) {
    Bytes stream;
    std::size_t position = 0;
    auto emit = [&](std::size_t size) {
        append_u8(stream, 0x16);
        append_u16(stream, 0x0301);
        append_u16(stream, size);
        stream.insert(stream.end(), message.begin() + position, message.begin() + position + size);
        position += size;
    };
    for (auto size : fragment_sizes) {
        emit(size);
    }
    while (position < message.size()) {
        emit(std::min<std::size_t>(16384, message.size() - position));
    }
    return stream;
}

Bytes typical_hello() {
    return in_records(hello_message({sni_extension("example.com"), alpn_extension({"h2"}),
                                     versions_extension({0x0304, 0x0303})}));
}

// Everything a parse produced, so that two ways of feeding the same bytes can be compared.
struct Outcome {
    HelloStatus status;
    std::string error;
    std::size_t consumed;
    ClientHello hello;
    bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Outcome& outcome) {
    return out << to_string(outcome.status) << " consumed=" << outcome.consumed << " error='"
               << outcome.error << "' sni='" << outcome.hello.sni << "'";
}

Outcome outcome_of(const ClientHelloParser& parser) {
    return {parser.status(), parser.error(), parser.bytes_consumed(), parser.hello()};
}

Outcome parse_whole(const Bytes& bytes, std::size_t max = ClientHelloParser::kDefaultMaxBytes) {
    ClientHelloParser parser(max);
    parser.feed(bytes);
    return outcome_of(parser);
}

Outcome parse_in_pieces(const Bytes& bytes, std::size_t piece,
                        std::size_t max = ClientHelloParser::kDefaultMaxBytes) {
    ClientHelloParser parser(max);
    for (std::size_t position = 0; position < bytes.size(); position += piece) {
        const std::size_t size = std::min(piece, bytes.size() - position);
        parser.feed(std::span<const std::uint8_t>(bytes).subspan(position, size));
    }
    return outcome_of(parser);
}

// Compares without copying the hello: the split tests parse the 20 KiB capture (852 ALPN
// names) tens of thousands of times, and copies would dominate a sanitizer build's run time.
testing::AssertionResult same_as_whole(const ClientHelloParser& parser, const Outcome& whole) {
    if (parser.status() == whole.status && parser.error() == whole.error &&
        parser.bytes_consumed() == whole.consumed && parser.hello() == whole.hello) {
        return testing::AssertionSuccess();
    }
    return testing::AssertionFailure() << outcome_of(parser) << " instead of " << whole;
}

testing::AssertionResult split_gives_the_same(const Bytes& bytes, std::size_t split,
                                              const Outcome& whole) {
    ClientHelloParser parser;
    const std::span<const std::uint8_t> all(bytes);
    parser.feed(all.first(split));
    parser.feed(all.subspan(split));
    return same_as_whole(parser, whole) << " (split at " << split << ")";
}

struct Capture {
    std::string file;
    std::string sni;
    std::vector<std::string> first_alpn;  // the leading protocols offered
    std::size_t alpn_count;
    std::size_t records;
};

const std::vector<Capture>& captures() {
    static const std::vector<Capture> list = {
        {"openssl_s_client.bin", "example.com", {"h2", "http/1.1"}, 2, 1},
        {"curl_http1.bin", "www.example.org", {"http/1.1"}, 1, 1},
        {"curl_http2.bin", "api.example.net", {"h2", "http/1.1"}, 2, 1},
        {"openssl_large_8k.bin", "large.example.com", {"h2", "http/1.1"}, 332, 1},
        {"openssl_multi_record_20k.bin", "multi.example.com", {"h2", "http/1.1"}, 852, 2},
    };
    return list;
}

// ---------------------------------------------------------------------------------------------
// Real captured hellos.

TEST(ClientHelloCapture, EachCaptureParsesWithItsNamesAndVersions) {
    for (const auto& capture : captures()) {
        SCOPED_TRACE(capture.file);
        const Bytes bytes = read_capture(capture.file);
        ASSERT_GT(bytes.size(), 100u);
        const ClientHelloParser parser = parse_client_hello(bytes);
        ASSERT_EQ(parser.status(), HelloStatus::complete) << parser.error();
        EXPECT_TRUE(parser.error().empty());
        const ClientHello& hello = parser.hello();
        EXPECT_TRUE(hello.has_sni);
        EXPECT_EQ(hello.sni, capture.sni);
        ASSERT_EQ(hello.alpn.size(), capture.alpn_count);
        EXPECT_TRUE(
            std::equal(capture.first_alpn.begin(), capture.first_alpn.end(), hello.alpn.begin()));
        EXPECT_EQ(hello.record_version, 0x0301);
        EXPECT_EQ(hello.legacy_version, 0x0303);
        EXPECT_NE(
            std::find(hello.supported_versions.begin(), hello.supported_versions.end(), 0x0304),
            hello.supported_versions.end());
        EXPECT_NE(std::find(hello.cipher_suites.begin(), hello.cipher_suites.end(), 0x1301),
                  hello.cipher_suites.end());
        EXPECT_EQ(parser.bytes_consumed(), bytes.size());
        EXPECT_EQ(hello.handshake_length, bytes.size() - 5 * capture.records);
    }
}

TEST(ClientHelloCapture, LargeHellosAreAsBigAsPostQuantumOnes) {
    EXPECT_GE(read_capture("openssl_large_8k.bin").size(), 8192u);
    EXPECT_GT(read_capture("openssl_multi_record_20k.bin").size(), 16384u + 5);
}

// Every position for hellos up to 16 KiB. Beyond that (the two-record capture), every position
// within 64 bytes of a record boundary and every 16th elsewhere: all positions there would take a
// minute in the sanitizer build while the middle of an extension list teaches nothing new.
std::vector<std::size_t> split_positions(const Bytes& bytes) {
    std::vector<std::size_t> positions;
    if (bytes.size() <= 16 * 1024) {
        for (std::size_t split = 0; split <= bytes.size(); ++split) {
            positions.push_back(split);
        }
        return positions;
    }
    std::vector<std::size_t> boundaries;
    for (std::size_t record = 0; record + 5 <= bytes.size();
         record += 5 + ((std::size_t{bytes[record + 3]} << 8) | bytes[record + 4])) {
        boundaries.push_back(record);
    }
    boundaries.push_back(bytes.size());
    for (std::size_t split = 0; split <= bytes.size(); ++split) {
        const bool near_boundary =
            std::any_of(boundaries.begin(), boundaries.end(), [split](std::size_t boundary) {
                return split + 64 >= boundary && split <= boundary + 64;
            });
        if (near_boundary || split % 16 == 0) {
            positions.push_back(split);
        }
    }
    return positions;
}

TEST(ClientHelloCapture, EverySplitIntoTwoPiecesGivesTheSameResult) {
    for (const auto& capture : captures()) {
        SCOPED_TRACE(capture.file);
        const Bytes bytes = read_capture(capture.file);
        const Outcome whole = parse_whole(bytes);
        ASSERT_EQ(whole.status, HelloStatus::complete);
        for (std::size_t split : split_positions(bytes)) {
            ASSERT_TRUE(split_gives_the_same(bytes, split, whole));
        }
    }
}

TEST(ClientHelloCapture, ByteByByteAndOtherPieceSizesGiveTheSameResult) {
    for (const auto& capture : captures()) {
        SCOPED_TRACE(capture.file);
        const Bytes bytes = read_capture(capture.file);
        const Outcome whole = parse_whole(bytes);
        for (std::size_t piece : {1, 2, 3, 5, 7, 100, 1460, 4096}) {
            EXPECT_EQ(parse_in_pieces(bytes, piece), whole) << "pieces of " << piece;
        }
    }
}

TEST(ClientHelloCapture, RandomSplitsIntoManyPiecesGiveTheSameResult) {
    std::mt19937 random(20240601);
    for (const auto& capture : captures()) {
        SCOPED_TRACE(capture.file);
        const Bytes bytes = read_capture(capture.file);
        const Outcome whole = parse_whole(bytes);
        for (int round = 0; round < 50; ++round) {
            ClientHelloParser parser;
            std::size_t position = 0;
            while (position < bytes.size()) {
                const std::size_t size = std::min<std::size_t>(
                    std::uniform_int_distribution<std::size_t>(0, 700)(random),
                    bytes.size() - position);
                parser.feed(std::span<const std::uint8_t>(bytes).subspan(position, size));
                position += size;
            }
            ASSERT_TRUE(same_as_whole(parser, whole)) << "round " << round;
        }
    }
}

TEST(ClientHelloCapture, EveryTruncatedPrefixNeedsMore) {
    for (const auto& capture : captures()) {
        SCOPED_TRACE(capture.file);
        const Bytes bytes = read_capture(capture.file);
        ClientHelloParser incremental;
        for (std::size_t length = 0; length < bytes.size(); ++length) {
            const ClientHelloParser prefix =
                parse_client_hello(std::span<const std::uint8_t>(bytes).first(length));
            ASSERT_EQ(prefix.status(), HelloStatus::need_more) << "prefix " << length;
            ASSERT_EQ(prefix.bytes_consumed(), length);
            ASSERT_EQ(incremental.status(), HelloStatus::need_more) << "prefix " << length;
            incremental.feed(std::span<const std::uint8_t>(bytes).subspan(length, 1));
        }
        EXPECT_EQ(incremental.status(), HelloStatus::complete);
    }
}

TEST(ClientHelloCapture, TrailingBytesAreNotConsumed) {
    for (const auto& capture : captures()) {
        SCOPED_TRACE(capture.file);
        Bytes bytes = read_capture(capture.file);
        const std::size_t hello_size = bytes.size();
        // What a TLS 1.3 client may send right behind its hello: change_cipher_spec and early
        // data.
        append(bytes,
               {0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb});
        for (std::size_t piece : {bytes.size(), std::size_t{1}, std::size_t{7}}) {
            const Outcome outcome = parse_in_pieces(bytes, piece);
            EXPECT_EQ(outcome.status, HelloStatus::complete);
            EXPECT_EQ(outcome.consumed, hello_size) << "pieces of " << piece;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reassembly of hand-built hellos.

TEST(ClientHelloReassembly, HandshakeHeaderSplitAcrossTinyRecords) {
    const Bytes message = hello_message({sni_extension("tiny.example"), alpn_extension({"h2"})});
    const Bytes stream = in_records(message, {1, 1, 1, 1, 2, 50});
    const Outcome outcome = parse_whole(stream);
    ASSERT_EQ(outcome.status, HelloStatus::complete) << outcome.error;
    EXPECT_EQ(outcome.hello.sni, "tiny.example");
    EXPECT_EQ(outcome.consumed, stream.size());
    EXPECT_EQ(outcome.hello.handshake_length, message.size());
    EXPECT_EQ(parse_in_pieces(stream, 1), outcome);
}

TEST(ClientHelloReassembly, AHelloNearTheDefaultCapByteByByte) {
    // Four records of nearly 16 KiB each: the worst a client may legitimately send by default.
    const std::size_t padding = 65536 - 4 * 5 - 4 - 200;
    const Bytes message = hello_message({sni_extension("big.example"), padding_extension(padding)});
    const Bytes stream = in_records(message);
    ASSERT_LE(stream.size(), ClientHelloParser::kDefaultMaxBytes);
    ASSERT_GT(stream.size(), ClientHelloParser::kDefaultMaxBytes - 300);
    const Outcome whole = parse_whole(stream);
    ASSERT_EQ(whole.status, HelloStatus::complete) << whole.error;
    EXPECT_EQ(whole.hello.sni, "big.example");
    // Not timed, but a quadratic parser would take minutes here rather than milliseconds.
    EXPECT_EQ(parse_in_pieces(stream, 1), whole);
}

TEST(ClientHelloReassembly, HelloEndingMidRecordCountsThroughTheRecordEnd) {
    // Whatever follows the hello inside its own record belongs to the hello's bytes.
    Bytes message = hello_message({sni_extension("mid.example")});
    const std::size_t hello_size = message.size();
    append(message, {0x0b, 0x00, 0x00, 0x00});  // some further handshake message
    const Bytes stream = in_records(message);
    const std::span<const std::uint8_t> all(stream);

    ClientHelloParser parser;
    EXPECT_EQ(parser.feed(all.first(5 + hello_size)), HelloStatus::need_more);
    EXPECT_EQ(parser.feed(all.subspan(5 + hello_size, 3)), HelloStatus::need_more);
    Bytes rest(all.begin() + 5 + hello_size + 3, all.end());
    append(rest, {0x17, 0x03, 0x03});
    EXPECT_EQ(parser.feed(rest), HelloStatus::complete);
    EXPECT_EQ(parser.bytes_consumed(), stream.size());
    EXPECT_EQ(parser.hello().handshake_length, hello_size);
}

TEST(ClientHelloReassembly, HelloWithoutExtensionsOrOptionalOnes) {
    Bytes message = hello_message({});
    // Drop the empty extensions block entirely, as SSLv3-era clients do.
    message.resize(message.size() - 2);
    message[3] = static_cast<std::uint8_t>(message[3] - 2);
    const Outcome outcome = parse_whole(in_records(message));
    ASSERT_EQ(outcome.status, HelloStatus::complete) << outcome.error;
    EXPECT_FALSE(outcome.hello.has_sni);
    EXPECT_TRUE(outcome.hello.sni.empty());
    EXPECT_TRUE(outcome.hello.alpn.empty());
    EXPECT_TRUE(outcome.hello.supported_versions.empty());
    EXPECT_EQ(outcome.hello.cipher_suites, (std::vector<std::uint16_t>{0x1301, 0xc02f}));
}

TEST(ClientHelloReassembly, SniIsKeptRawForLaterValidation) {
    const Outcome outcome = parse_whole(in_records(hello_message({sni_extension("Bad Name\x01")})));
    ASSERT_EQ(outcome.status, HelloStatus::complete) << outcome.error;
    EXPECT_EQ(outcome.hello.sni, "Bad Name\x01");
}

TEST(ClientHelloReassembly, UnknownServerNameTypesAreSkipped) {
    Bytes list;
    append_u8(list, 7);  // an unknown name type
    append_u16(list, 3);
    append(list, to_bytes("abc"));
    append_u8(list, 0);
    append_u16(list, 6);
    append(list, to_bytes("x.test"));
    Bytes data;
    append_u16(data, list.size());
    append(data, list);
    const Outcome outcome = parse_whole(in_records(hello_message({{0, data}})));
    ASSERT_EQ(outcome.status, HelloStatus::complete) << outcome.error;
    EXPECT_EQ(outcome.hello.sni, "x.test");
}

TEST(ClientHelloReassembly, FeedAfterTheEndIsIgnored) {
    const Bytes bytes = typical_hello();
    ClientHelloParser parser;
    ASSERT_EQ(parser.feed(bytes), HelloStatus::complete);
    const Outcome before = outcome_of(parser);
    EXPECT_EQ(parser.feed(bytes), HelloStatus::complete);
    EXPECT_EQ(outcome_of(parser), before);

    ClientHelloParser not_tls;
    ASSERT_EQ(not_tls.feed(to_bytes("GET")), HelloStatus::not_tls);
    EXPECT_EQ(not_tls.feed(bytes), HelloStatus::not_tls);
}

TEST(ClientHelloReassembly, EmptyFeedsChangeNothing) {
    ClientHelloParser parser;
    EXPECT_EQ(parser.feed({}), HelloStatus::need_more);
    EXPECT_EQ(parser.bytes_consumed(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Not TLS.

TEST(ClientHelloNotTls, PlainProtocolsAreRecognisedOnTheFirstByte) {
    for (std::string_view text : {"GET / HTTP/1.1\r\n", "SSH-2.0-OpenSSH_9.2\r\n",
                                  "PRI * HTTP/2.0\r\n", "\x05\x01\x00", "EHLO x\r\n"}) {
        SCOPED_TRACE(text);
        ClientHelloParser parser;
        EXPECT_EQ(parser.feed(to_bytes(text.substr(0, 1))), HelloStatus::not_tls);
        EXPECT_FALSE(parser.error().empty());
        EXPECT_EQ(parse_whole(to_bytes(text)).status, HelloStatus::not_tls);
    }
}

TEST(ClientHelloNotTls, Sslv2HelloIsNotTls) {
    const Bytes sslv2 = {0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
    EXPECT_EQ(parse_whole(sslv2).status, HelloStatus::not_tls);
}

TEST(ClientHelloNotTls, WrongMajorVersionIsDecidedOnTheSecondByte) {
    ClientHelloParser parser;
    EXPECT_EQ(parser.feed(Bytes{0x16}), HelloStatus::need_more);
    EXPECT_EQ(parser.feed(Bytes{0x02}), HelloStatus::not_tls);
}

// ---------------------------------------------------------------------------------------------
// Invalid hellos: each says why.

struct InvalidCase {
    std::string name;
    Bytes stream;
    std::string error_contains;
};

Bytes with_byte(Bytes bytes, std::size_t index, std::uint8_t value) {
    bytes.at(index) = value;
    return bytes;
}

std::vector<InvalidCase> invalid_cases() {
    std::vector<InvalidCase> cases;
    const Bytes typical = typical_hello();
    // Offsets in typical_hello(): record header 0..4, handshake header 5..8, version 9..10,
    // random 11..42, session_id length 43, session_id 44..75, cipher_suites length 76..77,
    // suites 78..81, compression 82..83, extensions length 84..85, extensions from 86.
    cases.push_back({"zero-length record", {0x16, 0x03, 0x01, 0x00, 0x00}, "zero-length"});
    cases.push_back({"record too long", {0x16, 0x03, 0x01, 0x48, 0x01}, "exceeds the maximum"});
    cases.push_back({"server hello", with_byte(typical, 5, 2), "not ClientHello"});
    cases.push_back({"tiny handshake length",
                     {0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00, 0x02, 0x03, 0x03},
                     "too short"});
    cases.push_back({"session id too long", with_byte(typical, 43, 33), "session_id"});
    cases.push_back({"odd cipher suites", with_byte(typical, 77, 3), "cipher_suites"});
    cases.push_back({"no compression", with_byte(typical, 82, 0), "compression"});
    cases.push_back({"extensions overrun", with_byte(typical, 85, typical[85] + 1), "extensions"});
    cases.push_back(
        {"extensions short", with_byte(typical, 85, typical[85] - 1), "trailing bytes"});

    const Bytes alert_in_middle = [] {
        Bytes stream = in_records(hello_message({sni_extension("a.example")}), {10});
        stream.at(5 + 10) = 0x15;  // the second record becomes an alert
        return stream;
    }();
    cases.push_back({"alert between fragments", alert_in_middle, "content type 0x15"});
    const Bytes bad_version_in_middle = with_byte(alert_in_middle, 5 + 10, 0x16);
    cases.push_back({"second record not TLS", with_byte(bad_version_in_middle, 16, 0x04),
                     "record version major"});

    cases.push_back({"duplicate extension",
                     in_records(hello_message({alpn_extension({"h2"}), sni_extension("a.test"),
                                               alpn_extension({"h2"})})),
                     "duplicate extension 0x0010"});

    auto with_extension = [](std::uint16_t type, Bytes data) {
        return in_records(hello_message({{type, std::move(data)}}));
    };
    cases.push_back({"sni list length mismatch",
                     with_extension(0, {0x00, 0x05, 0x00, 0x00, 0x01, 'a'}), "server_name"});
    cases.push_back(
        {"sni entry overrun", with_extension(0, {0x00, 0x04, 0x00, 0x00, 0x05, 'a'}), "overruns"});
    cases.push_back({"sni empty list", with_extension(0, {0x00, 0x00}), "empty server name list"});
    cases.push_back({"sni empty extension", with_extension(0, {}), "server_name"});
    cases.push_back(
        {"sni empty host", with_extension(0, {0x00, 0x03, 0x00, 0x00, 0x00}), "empty host_name"});
    cases.push_back({"sni two hosts",
                     with_extension(0, {0x00, 0x08, 0x00, 0x00, 0x01, 'a', 0x00, 0x00, 0x01, 'b'}),
                     "more than one host_name"});
    cases.push_back({"alpn empty list", with_extension(16, {0x00, 0x00}), "empty protocol list"});
    cases.push_back(
        {"alpn empty name", with_extension(16, {0x00, 0x03, 0x02, 'h', '2', 0x00}), "ALPN"});
    cases.push_back({"alpn empty name at end",
                     with_extension(16, {0x00, 0x04, 0x02, 'h', '2', 0x00}),
                     "empty protocol name"});
    cases.push_back({"alpn overrun", with_extension(16, {0x00, 0x03, 0x05, 'h', '2'}), "overruns"});
    cases.push_back(
        {"versions odd", with_extension(43, {0x03, 0x03, 0x04, 0x03}), "supported_versions"});
    cases.push_back(
        {"versions mismatch", with_extension(43, {0x04, 0x03, 0x04}), "supported_versions"});
    return cases;
}

TEST(ClientHelloInvalid, EachMalformedHelloIsInvalidWithAReason) {
    for (const auto& test_case : invalid_cases()) {
        SCOPED_TRACE(test_case.name);
        const Outcome whole = parse_whole(test_case.stream);
        EXPECT_EQ(whole.status, HelloStatus::invalid) << whole.error;
        EXPECT_NE(whole.error.find(test_case.error_contains), std::string::npos) << whole.error;
        EXPECT_EQ(whole.hello, ClientHello{}) << "no half-filled hello on failure";
        EXPECT_EQ(parse_in_pieces(test_case.stream, 1), whole);
    }
}

TEST(ClientHelloInvalid, CorruptingAnyByteNeverCrashesAndIgnoresTheSplit) {
    // Every byte of a real hello replaced by a few telling values: lengths grow, shrink, vanish.
    for (const char* file : {"openssl_s_client.bin", "curl_http2.bin"}) {
        SCOPED_TRACE(file);
        const Bytes original = read_capture(file);
        for (std::size_t index = 0; index < original.size(); ++index) {
            for (std::uint8_t value : {0x00, 0x01, 0x7f, 0xff}) {
                if (original[index] == value) {
                    continue;
                }
                const Bytes corrupted = with_byte(original, index, value);
                const Outcome whole = parse_whole(corrupted);
                ASSERT_EQ(parse_in_pieces(corrupted, 1), whole)
                    << "byte " << index << " = " << int{value};
                if (whole.status == HelloStatus::complete) {
                    EXPECT_LE(whole.consumed, corrupted.size());
                }
            }
        }
    }
}

TEST(ClientHelloInvalid, FlippedLengthFieldsAreInvalid) {
    const Bytes typical = typical_hello();
    // The handshake length claims less than the record carries: the hello ends early, and the
    // message cut short is malformed.
    EXPECT_EQ(parse_whole(with_byte(typical, 8, typical[8] - 10)).status, HelloStatus::invalid);
    // The SNI extension's own length grows: its list length no longer matches.
    EXPECT_EQ(parse_whole(with_byte(typical, 89, typical[89] + 1)).status, HelloStatus::invalid);
}

// ---------------------------------------------------------------------------------------------
// The byte cap.

TEST(ClientHelloCap, SmallCapGivesTooLargeAsSoonAsTheRecordHeaderSaysSo) {
    const Bytes bytes = read_capture("openssl_large_8k.bin");
    ClientHelloParser parser(1024);
    EXPECT_EQ(parser.feed(std::span<const std::uint8_t>(bytes).first(4)), HelloStatus::need_more);
    EXPECT_EQ(parser.feed(std::span<const std::uint8_t>(bytes).subspan(4, 1)),
              HelloStatus::too_large);
    EXPECT_FALSE(parser.error().empty());
    EXPECT_EQ(parse_whole(bytes, 1024).status, HelloStatus::too_large);
    EXPECT_EQ(parse_in_pieces(bytes, 1, 1024).status, HelloStatus::too_large);
}

TEST(ClientHelloCap, CapIsExactInStreamBytes) {
    for (const auto& capture : captures()) {
        SCOPED_TRACE(capture.file);
        const Bytes bytes = read_capture(capture.file);
        EXPECT_EQ(parse_whole(bytes, bytes.size()).status, HelloStatus::complete);
        EXPECT_EQ(parse_whole(bytes, bytes.size() - 1).status, HelloStatus::too_large);
        EXPECT_EQ(parse_in_pieces(bytes, 1, bytes.size() - 1).status, HelloStatus::too_large);
    }
}

TEST(ClientHelloCap, HandshakeLengthBeyondTheCapIsDecidedEarly) {
    // A small first record whose handshake header announces a message the cap cannot hold.
    const Bytes message = hello_message({padding_extension(70000 - 200)});
    const Bytes stream = in_records(message, {4});
    ClientHelloParser parser;
    EXPECT_EQ(parser.feed(std::span<const std::uint8_t>(stream).first(9)), HelloStatus::too_large);
    EXPECT_EQ(parser.bytes_consumed(), 9u);
}

TEST(ClientHelloCap, MultiRecordHelloOverTheCapByItsSecondHeader) {
    const Bytes bytes = read_capture("openssl_multi_record_20k.bin");
    // Room for the first record but not the second header plus the rest.
    const Outcome outcome = parse_in_pieces(bytes, 3, 16384 + 5 + 100);
    EXPECT_EQ(outcome.status, HelloStatus::too_large);
    EXPECT_LE(outcome.consumed, 16384u + 5 + 100);
}

TEST(ClientHelloStatus, ToStringNamesEveryStatus) {
    EXPECT_STREQ(to_string(HelloStatus::need_more), "need_more");
    EXPECT_STREQ(to_string(HelloStatus::complete), "complete");
    EXPECT_STREQ(to_string(HelloStatus::not_tls), "not_tls");
    EXPECT_STREQ(to_string(HelloStatus::invalid), "invalid");
    EXPECT_STREQ(to_string(HelloStatus::too_large), "too_large");
}

}  // namespace
}  // namespace tlsgate::classify
