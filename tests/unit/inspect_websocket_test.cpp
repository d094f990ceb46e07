#include "inspect/websocket.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "websocket_frames.hpp"

namespace tlsgate::inspect {
namespace {

using testing::client_frame;
using testing::close_payload;
using testing::LengthForm;
using testing::server_frame;

constexpr int kContinuation = 0x0;
constexpr int kText = 0x1;
constexpr int kBinary = 0x2;
constexpr int kClose = 0x8;
constexpr int kPing = 0x9;
constexpr int kPong = 0xa;

enum class Split { whole, byte_by_byte, random };

// Feeds one direction's stream to a fresh reader, cut as `split` says.
WebSocketSummary read_stream(Side sender, std::string_view stream, Split split,
                             std::uint32_t seed = 1) {
    WebSocketFrameReader reader(sender);
    WebSocketSummary summary;
    std::mt19937 random(seed);
    std::size_t position = 0;
    while (position < stream.size()) {
        std::size_t piece = stream.size() - position;
        if (split == Split::byte_by_byte) {
            piece = 1;
        } else if (split == Split::random) {
            piece = std::min<std::size_t>(piece, random() % 19 + 1);
        }
        reader.feed(std::span<const char>(stream.data() + position, piece), summary);
        position += piece;
    }
    return summary;
}

// Runs `check` on the summary of every way of cutting the stream: whole, byte by byte and at
// random points.
template <typename Check>
void for_every_split(Side sender, std::string_view stream, Check check) {
    {
        SCOPED_TRACE("whole");
        check(read_stream(sender, stream, Split::whole));
    }
    {
        SCOPED_TRACE("byte by byte");
        check(read_stream(sender, stream, Split::byte_by_byte));
    }
    for (std::uint32_t seed = 1; seed <= 5; ++seed) {
        SCOPED_TRACE("random split, seed " + std::to_string(seed));
        check(read_stream(sender, stream, Split::random, seed));
    }
}

TEST(WebSocketFrameReader, ClientMessagesOfEveryKind) {
    std::string stream;
    stream += client_frame(kText, "hello");
    stream += client_frame(kBinary, std::string(3, '\0'));
    stream += client_frame(kPing, "are you there");
    stream += client_frame(kPong, "");
    stream += client_frame(kClose, close_payload(1000, "bye"));
    for_every_split(Side::client, stream, [](const WebSocketSummary& summary) {
        EXPECT_EQ(summary.error, "");
        EXPECT_EQ(summary.client_messages, 5u);
        EXPECT_EQ(summary.server_messages, 0u);
        EXPECT_EQ(summary.client_payload_bytes, 5u + 3u + 13u + 0u + 5u);
        const std::map<int, std::uint64_t> opcodes = {
            {kText, 1}, {kBinary, 1}, {kClose, 1}, {kPing, 1}, {kPong, 1}};
        EXPECT_EQ(summary.client_opcodes, opcodes);
        EXPECT_EQ(summary.close_code, 1000);
    });
}

TEST(WebSocketFrameReader, ServerMessagesGoToTheServerCounters) {
    std::string stream;
    stream += server_frame(kText, "hi");
    stream += server_frame(kClose, close_payload(1001));
    for_every_split(Side::server, stream, [](const WebSocketSummary& summary) {
        EXPECT_EQ(summary.error, "");
        EXPECT_EQ(summary.server_messages, 2u);
        EXPECT_EQ(summary.client_messages, 0u);
        EXPECT_EQ(summary.server_payload_bytes, 4u);
        EXPECT_EQ(summary.client_payload_bytes, 0u);
        EXPECT_EQ(summary.close_code, 1001);
    });
}

TEST(WebSocketFrameReader, SixteenAndSixtyFourBitLengths) {
    const std::string medium(300, 'm');    // 126: 16-bit length
    const std::string large(70'000, 'L');  // 127: 64-bit length
    std::string stream;
    stream += server_frame(kBinary, medium);
    stream += server_frame(kBinary, large);
    // Longer length forms than needed are still read (the reader does not insist on the
    // shortest form).
    stream += server_frame(kText, "tiny", true, LengthForm::force_64bit);
    stream += server_frame(kText, "small", true, LengthForm::force_16bit);
    for_every_split(Side::server, stream, [](const WebSocketSummary& summary) {
        EXPECT_EQ(summary.error, "");
        EXPECT_EQ(summary.server_messages, 4u);
        EXPECT_EQ(summary.server_payload_bytes, 300u + 70'000u + 4u + 5u);
        const std::map<int, std::uint64_t> opcodes = {{kText, 2}, {kBinary, 2}};
        EXPECT_EQ(summary.server_opcodes, opcodes);
    });
    // The same for masked client frames.
    std::string client_stream = client_frame(kBinary, large) + client_frame(kBinary, medium);
    for_every_split(Side::client, client_stream, [](const WebSocketSummary& summary) {
        EXPECT_EQ(summary.error, "");
        EXPECT_EQ(summary.client_messages, 2u);
        EXPECT_EQ(summary.client_payload_bytes, 70'300u);
    });
}

TEST(WebSocketFrameReader, FragmentsAreJoinedUnderTheFirstOpcode) {
    std::string stream;
    stream += client_frame(kText, "frag", false);
    stream += client_frame(kPing, "p");  // control frames may come between fragments
    stream += client_frame(kContinuation, "men", false);
    stream += client_frame(kContinuation, "ted", true);
    stream += client_frame(kBinary, "b1", false);
    stream += client_frame(kContinuation, "b2", true);
    for_every_split(Side::client, stream, [](const WebSocketSummary& summary) {
        EXPECT_EQ(summary.error, "");
        EXPECT_EQ(summary.client_messages, 3u);
        const std::map<int, std::uint64_t> opcodes = {{kText, 1}, {kBinary, 1}, {kPing, 1}};
        EXPECT_EQ(summary.client_opcodes, opcodes);
        EXPECT_EQ(summary.client_payload_bytes, 4u + 1u + 3u + 3u + 2u + 2u);
    });
}

TEST(WebSocketFrameReader, EmptyFinalFrames) {
    const std::string stream = server_frame(kText, "", false) + server_frame(kContinuation, "") +
                               server_frame(kBinary, "");
    for_every_split(Side::server, stream, [](const WebSocketSummary& summary) {
        EXPECT_EQ(summary.error, "");
        EXPECT_EQ(summary.server_messages, 2u);
        EXPECT_EQ(summary.server_payload_bytes, 0u);
    });
}

TEST(WebSocketFrameReader, CloseCodeComesFromTheFirstCloseThatCarriesOne) {
    // A close without a code does not set it; the client's code is unmasked.
    const std::string server_stream = server_frame(kClose, "");
    const std::string client_stream = client_frame(kClose, close_payload(4000, "app")) +
                                      client_frame(kClose, close_payload(1011));
    WebSocketSummary summary;
    WebSocketFrameReader server(Side::server);
    WebSocketFrameReader client(Side::client);
    server.feed(server_stream, summary);
    EXPECT_FALSE(summary.close_code.has_value());
    client.feed(client_stream, summary);
    EXPECT_EQ(summary.close_code, 4000);
    EXPECT_EQ(summary.client_opcodes.at(kClose), 2u);
    EXPECT_EQ(summary.server_opcodes.at(kClose), 1u);
    for_every_split(Side::client, client_stream, [](const WebSocketSummary& split_summary) {
        EXPECT_EQ(split_summary.close_code, 4000);
    });
}

TEST(WebSocketFrameReader, CloseCodeUnmaskedWithAnyKey) {
    // A key whose bytes would turn 1000 into something else if left applied.
    const std::string frame = testing::websocket_frame(kClose, close_payload(1000), true, true,
                                                       LengthForm::shortest, {0xff, 0x01, 0, 0});
    for_every_split(Side::client, frame, [](const WebSocketSummary& summary) {
        EXPECT_EQ(summary.error, "");
        EXPECT_EQ(summary.close_code, 1000);
    });
}

TEST(WebSocketFrameReader, PayloadBytesCountAsTheyPass) {
    const std::string frame = server_frame(kBinary, std::string(1000, 'x'));
    WebSocketFrameReader reader(Side::server);
    WebSocketSummary summary;
    reader.feed(std::string_view(frame).substr(0, 4 + 400), summary);  // 4-byte header
    EXPECT_EQ(summary.server_payload_bytes, 400u);
    EXPECT_EQ(summary.server_messages, 0u);  // the message is not complete yet
    reader.feed(std::string_view(frame).substr(4 + 400), summary);
    EXPECT_EQ(summary.server_payload_bytes, 1000u);
    EXPECT_EQ(summary.server_messages, 1u);
}

struct FramingErrorCase {
    const char* name;
    Side sender;
    std::string stream;
    std::string error;
};

TEST(WebSocketFrameReader, FramingErrorsStopTheDirection) {
    std::string top_bit_length = server_frame(kBinary, "");
    top_bit_length[1] = 127;
    top_bit_length += std::string("\x80\0\0\0\0\0\0\0", 8);
    std::string reserved_opcode = server_frame(kText, "x");
    reserved_opcode[0] = static_cast<char>(0x83);
    std::string long_control = server_frame(kPing, std::string(126, 'p'));
    std::string fragmented_control = server_frame(kPing, "p", false);
    std::string one_byte_close = server_frame(kClose, "x");
    const std::vector<FramingErrorCase> cases = {
        {"unmasked client frame", Side::client, server_frame(kText, "hi"),
         "client frame: not masked"},
        {"masked server frame", Side::server, client_frame(kText, "hi"), "server frame: masked"},
        {"reserved opcode", Side::server, reserved_opcode, "server frame: reserved opcode"},
        {"control frame over 125 bytes", Side::server, long_control,
         "server frame: control frame payload over 125 bytes"},
        {"fragmented control frame", Side::server, fragmented_control,
         "server frame: fragmented control frame"},
        {"close with 1-byte payload", Side::server, one_byte_close,
         "server frame: close frame with a 1-byte payload"},
        {"continuation without a message", Side::server, server_frame(kContinuation, "x"),
         "server frame: continuation frame without a message to continue"},
        {"new message inside a fragmented one", Side::server,
         server_frame(kText, "a", false) + server_frame(kBinary, "b"),
         "server frame: new message before the fragmented one ended"},
        {"64-bit length with the top bit set", Side::server, top_bit_length,
         "server frame: 64-bit payload length with the top bit set"},
    };
    for (const FramingErrorCase& test : cases) {
        SCOPED_TRACE(test.name);
        // Valid frames after the error are not counted.
        const std::string valid_after = test.sender == Side::client ? client_frame(kText, "later")
                                                                    : server_frame(kText, "later");
        for_every_split(test.sender, test.stream + valid_after,
                        [&](const WebSocketSummary& summary) {
                            EXPECT_EQ(summary.error, test.error);
                            EXPECT_EQ(summary.client_messages + summary.server_messages, 0u);
                        });
    }
}

TEST(WebSocketFrameReader, FirstErrorIsKeptAndOtherDirectionGoesOn) {
    WebSocketSummary summary;
    WebSocketFrameReader client(Side::client);
    WebSocketFrameReader server(Side::server);
    client.feed(server_frame(kText, "unmasked"), summary);
    EXPECT_TRUE(client.failed());
    const std::string server_stream = client_frame(kText, "masked");
    server.feed(server_stream, summary);
    EXPECT_TRUE(server.failed());
    EXPECT_EQ(summary.error, "client frame: not masked");

    WebSocketSummary second;
    WebSocketFrameReader bad_client(Side::client);
    WebSocketFrameReader good_server(Side::server);
    bad_client.feed(server_frame(kText, "x"), second);
    good_server.feed(server_frame(kText, "fine"), second);
    EXPECT_FALSE(good_server.failed());
    EXPECT_EQ(second.server_messages, 1u);
    EXPECT_EQ(second.client_messages, 0u);
}

TEST(WebSocketFrameReader, GarbageIsAnErrorAtItsFirstFrame) {
    for_every_split(Side::server, "GET / HTTP/1.1\r\n\r\n", [](const WebSocketSummary& summary) {
        EXPECT_FALSE(summary.error.empty());
        EXPECT_EQ(summary.server_messages, 0u);
    });
}

}  // namespace
}  // namespace tlsgate::inspect
