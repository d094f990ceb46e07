#include "inspect/http2_dissector.hpp"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tlsgate::inspect {
namespace {

using namespace std::literals;
using Fields = std::vector<std::pair<std::string, std::string>>;

// Frame types and flags (RFC 9113 section 6), spelled out so the tests read like the RFC.
constexpr std::uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4,
                       kPushPromise = 0x5, kPing = 0x6, kGoaway = 0x7, kWindowUpdate = 0x8,
                       kContinuation = 0x9;
constexpr std::uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8,
                       kPriorityFlag = 0x20;
constexpr std::uint32_t kCancel = 0x8;

constexpr std::string_view kHelloSha256 =
    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string sha256_hex(std::string_view bytes) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
        hex += "0123456789abcdef"[digest[i] >> 4];
        hex += "0123456789abcdef"[digest[i] & 0xf];
    }
    return hex;
}

std::string be32(std::uint32_t value) {
    return {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
            static_cast<char>(value >> 8), static_cast<char>(value)};
}

std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream_id,
                  std::string_view payload) {
    std::string bytes = {static_cast<char>(payload.size() >> 16),
                         static_cast<char>(payload.size() >> 8), static_cast<char>(payload.size()),
                         static_cast<char>(type), static_cast<char>(flags)};
    bytes += be32(stream_id);
    bytes += payload;
    return bytes;
}

std::string settings(std::vector<std::pair<std::uint16_t, std::uint32_t>> parameters = {}) {
    std::string payload;
    for (const auto& [identifier, value] : parameters) {
        payload += static_cast<char>(identifier >> 8);
        payload += static_cast<char>(identifier);
        payload += be32(value);
    }
    return frame(kSettings, 0, 0, payload);
}

std::string settings_ack() {
    return frame(kSettings, kAck, 0, "");
}

// Pad Length, the content, then `padding` zero bytes (RFC 9113 section 6.1).
std::string padded(std::string_view content, std::uint8_t padding) {
    return static_cast<char>(padding) + std::string(content) + std::string(padding, '\0');
}

class HpackEncoder {
public:
    // The table starts at the protocol's 4096 bytes; change_table_size may grow it to 64 KiB.
    HpackEncoder() { nghttp2_hd_deflate_new(&deflater_, 65536); }
    ~HpackEncoder() { nghttp2_hd_deflate_del(deflater_); }
    HpackEncoder(const HpackEncoder&) = delete;
    HpackEncoder& operator=(const HpackEncoder&) = delete;

    std::string encode(const Fields& fields) {
        std::vector<nghttp2_nv> list;
        for (const auto& [name, value] : fields) {
            list.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                            reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())),
                            name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
        }
        std::string block(nghttp2_hd_deflate_bound(deflater_, list.data(), list.size()), '\0');
        const auto written =
            nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<std::uint8_t*>(block.data()),
                                  block.size(), list.data(), list.size());
        EXPECT_GE(written, 0);
        block.resize(written < 0 ? 0 : static_cast<std::size_t>(written));
        return block;
    }
    void change_table_size(std::size_t size) {
        EXPECT_EQ(nghttp2_hd_deflate_change_table_size(deflater_, size), 0);
    }

private:
    nghttp2_hd_deflater* deflater_ = nullptr;
};

struct Event {
    Side side;
    std::string bytes;
};

// A connection as a script of what each side sends, in causal order, each event one second
// after the previous one.
class Script {
public:
    static inline const Clock::time_point kStart = Clock::time_point{} + std::chrono::hours(1);

    // Preface and SETTINGS both ways, acknowledged.
    void handshake(std::string client_settings = settings(),
                   std::string server_settings = settings()) {
        client(std::string(kHttp2ClientPreface) + client_settings);
        server(server_settings + settings_ack());
        client(settings_ack());
    }
    void client(std::string bytes) { events.push_back({Side::client, std::move(bytes)}); }
    void server(std::string bytes) { events.push_back({Side::server, std::move(bytes)}); }

    void request(std::uint32_t stream_id, const Fields& fields, bool end_stream = true) {
        client(frame(kHeaders, kEndHeaders | (end_stream ? kEndStream : 0), stream_id,
                     client_hpack.encode(fields)));
    }
    void response(std::uint32_t stream_id, const Fields& fields, bool end_stream = false) {
        server(frame(kHeaders, kEndHeaders | (end_stream ? kEndStream : 0), stream_id,
                     server_hpack.encode(fields)));
    }
    void client_data(std::uint32_t stream_id, std::string_view body, bool end_stream = true) {
        client(frame(kData, end_stream ? kEndStream : 0, stream_id, body));
    }
    void server_data(std::uint32_t stream_id, std::string_view body, bool end_stream = true) {
        server(frame(kData, end_stream ? kEndStream : 0, stream_id, body));
    }
    // The time of the event with this index (the last one when negative).
    Clock::time_point time_of(int index) const {
        if (index < 0) {
            index += static_cast<int>(events.size());
        }
        return kStart + std::chrono::seconds(index);
    }
    int last() const { return static_cast<int>(events.size()) - 1; }

    std::vector<Event> events;
    HpackEncoder client_hpack;
    HpackEncoder server_hpack;
};

Fields get(std::string path, std::string authority = "example.com") {
    return {{":method", "GET"},
            {":scheme", "https"},
            {":authority", std::move(authority)},
            {":path", std::move(path)},
            {"user-agent", "curl/7.88.1"},
            {"accept", "*/*"}};
}

Fields post(std::string path) {
    return {{":method", "POST"},
            {":scheme", "https"},
            {":authority", "api.example.com"},
            {":path", std::move(path)},
            {"content-type", "application/json"}};
}

Fields ok(std::string content_type = "text/plain") {
    return {{":status", "200"}, {"content-type", std::move(content_type)}, {"server", "test"}};
}

class Recorder final : public ExchangeSink {
public:
    void on_exchange(HttpExchange&& exchange) override { exchanges.push_back(std::move(exchange)); }
    std::vector<HttpExchange> exchanges;
};

struct Outcome {
    std::vector<HttpExchange> exchanges;  // in the order the dissector reported them
    std::string failure;
    std::size_t open_before_finish = 0;

    const HttpExchange* stream(std::uint32_t id) const {
        for (const auto& exchange : exchanges) {
            if (exchange.stream_id == id) {
                return &exchange;
            }
        }
        return nullptr;
    }
};

enum class Split { whole, byte_by_byte, random, client_first };

// Feeds the script. whole: one feed per event. byte_by_byte: one feed per byte. random: runs of
// consecutive same-side events are joined and cut at random points (a piece takes the time of
// its first byte's event). client_first: all client bytes, then all server bytes.
Outcome run(const Script& script, Split split, unsigned seed = 0, DissectorOptions options = {},
            bool finish = true) {
    Recorder recorder;
    Http2Dissector dissector(options, recorder);
    const auto& events = script.events;
    auto feed = [&](Side side, std::string_view bytes, Clock::time_point now) {
        dissector.feed(side, std::span<const char>(bytes.data(), bytes.size()), now);
    };
    switch (split) {
        case Split::whole:
            for (std::size_t i = 0; i < events.size(); ++i) {
                feed(events[i].side, events[i].bytes, script.time_of(static_cast<int>(i)));
            }
            break;
        case Split::byte_by_byte:
            for (std::size_t i = 0; i < events.size(); ++i) {
                for (const char byte : events[i].bytes) {
                    feed(events[i].side, std::string_view(&byte, 1),
                         script.time_of(static_cast<int>(i)));
                }
            }
            break;
        case Split::random: {
            std::mt19937 random(seed);
            for (std::size_t first = 0; first < events.size();) {
                std::size_t end = first;
                std::string joined;
                std::vector<int> event_of_byte;
                while (end < events.size() && events[end].side == events[first].side) {
                    joined += events[end].bytes;
                    event_of_byte.insert(event_of_byte.end(), events[end].bytes.size(),
                                         static_cast<int>(end));
                    ++end;
                }
                for (std::size_t position = 0; position < joined.size();) {
                    const std::size_t piece = std::min<std::size_t>(
                        joined.size() - position,
                        random() % 4 == 0 ? random() % 4096 + 1 : random() % 24 + 1);
                    feed(events[first].side, std::string_view(joined).substr(position, piece),
                         script.time_of(event_of_byte[position]));
                    position += piece;
                }
                first = end;
            }
            break;
        }
        case Split::client_first:
            for (const Side side : {Side::client, Side::server}) {
                for (std::size_t i = 0; i < events.size(); ++i) {
                    if (events[i].side == side) {
                        feed(side, events[i].bytes, script.time_of(static_cast<int>(i)));
                    }
                }
            }
            break;
    }
    Outcome outcome;
    outcome.open_before_finish = dissector.open_streams();
    if (finish) {
        dissector.finish(script.time_of(-1) + std::chrono::seconds(1));
    }
    outcome.exchanges = std::move(recorder.exchanges);
    outcome.failure = dissector.failure();
    EXPECT_EQ(dissector.failed(), !outcome.failure.empty());
    return outcome;
}

// Everything but the times, to compare outcomes across splits.
std::string describe(const HttpExchange& exchange) {
    std::string text = exchange.protocol + " stream " + std::to_string(exchange.stream_id) + " #" +
                       std::to_string(exchange.sequence) + " " + exchange.method + " " +
                       exchange.scheme + "://" + exchange.authority + exchange.path + " -> " +
                       std::to_string(exchange.status) + " error=" + exchange.error + "\n";
    for (const int status : exchange.informational) {
        text += " 1xx " + std::to_string(status);
    }
    for (const auto& field : exchange.request_headers) {
        text += " > " + field.name + ": " + field.value + "\n";
    }
    for (const auto& field : exchange.response_headers) {
        text += " < " + field.name + ": " + field.value + "\n";
    }
    for (const BodySummary* body : {&exchange.request_body, &exchange.response_body}) {
        text += " body " + std::to_string(body->size) + " " + body->sha256 + " " +
                body->content_type + " " + body->content_encoding + " [" + body->captured + "]" +
                (body->capture_truncated ? " truncated" : "") + "\n";
    }
    return text;
}

std::string describe(const Outcome& outcome) {
    std::string text = "failure=" + outcome.failure + "\n";
    for (const auto& exchange : outcome.exchanges) {
        text += describe(exchange);
    }
    return text;
}

// Runs the script whole, byte by byte and at random split points, checks that all agree (times
// apart), and hands each outcome to `check` (times are exact except for Split::random).
void for_each_split(const Script& script, const std::function<void(const Outcome&, Split)>& check,
                    DissectorOptions options = {}, bool also_client_first = false) {
    const Outcome whole = run(script, Split::whole, 0, options);
    {
        SCOPED_TRACE("fed whole");
        check(whole, Split::whole);
    }
    {
        SCOPED_TRACE("fed byte by byte");
        const Outcome bytes = run(script, Split::byte_by_byte, 0, options);
        EXPECT_EQ(describe(bytes), describe(whole));
        check(bytes, Split::byte_by_byte);
    }
    for (unsigned seed = 1; seed <= 25; ++seed) {
        SCOPED_TRACE("random split, seed " + std::to_string(seed));
        const Outcome pieces = run(script, Split::random, seed, options);
        EXPECT_EQ(describe(pieces), describe(whole));
        check(pieces, Split::random);
    }
    if (also_client_first) {
        SCOPED_TRACE("all client bytes first");
        check(run(script, Split::client_first, 0, options), Split::client_first);
    }
}

std::vector<std::string> header_values(const std::vector<HeaderField>& fields,
                                       std::string_view name) {
    std::vector<std::string> values;
    for (const auto& field : fields) {
        if (field.name == name) {
            values.push_back(field.value);
        }
    }
    return values;
}

bool exact_times(Split split) {
    return split == Split::whole || split == Split::byte_by_byte;
}

// --- The preface --------------------------------------------------------------------------------

PrefaceMatch match(std::string_view bytes) {
    return starts_with_http2_preface(std::span<const char>(bytes.data(), bytes.size()));
}

TEST(Http2Preface, RecognisesThePrefaceAtEveryLength) {
    const std::string bytes = std::string(kHttp2ClientPreface) + settings();
    for (std::size_t length = 0; length < kHttp2ClientPreface.size(); ++length) {
        EXPECT_EQ(match(std::string_view(bytes).substr(0, length)), PrefaceMatch::need_more)
            << length;
    }
    EXPECT_EQ(match(kHttp2ClientPreface), PrefaceMatch::http2);
    EXPECT_EQ(match(bytes), PrefaceMatch::http2);
}

TEST(Http2Preface, RejectsOtherProtocolsAtTheFirstDifferentByte) {
    EXPECT_EQ(match("GET / HTTP/1.1\r\n"), PrefaceMatch::not_http2);
    EXPECT_EQ(match("POST"), PrefaceMatch::not_http2);
    EXPECT_EQ(match("PRI * HTTP/1.1"), PrefaceMatch::not_http2);
    EXPECT_EQ(match("\x16\x03\x01\x02\x00"sv), PrefaceMatch::not_http2);  // a TLS ClientHello
    EXPECT_EQ(match("PRI * HTTP/2.0\r\n\r\nSM\r\n\r"), PrefaceMatch::need_more);
}

// --- Exchanges ----------------------------------------------------------------------------------

TEST(Http2Dissector, OneGet) {
    Script script;
    script.handshake();
    script.request(1, get("/index.html"));
    const int request_event = script.last();
    script.response(1, {{":status", "200"},
                        {"content-type", "text/html"},
                        {"content-encoding", "gzip"},
                        {"content-length", "5"}});
    const int response_event = script.last();
    script.server_data(1, "hello");
    for_each_split(script, [&](const Outcome& outcome, Split split) {
        EXPECT_EQ(outcome.failure, "");
        EXPECT_EQ(outcome.open_before_finish, 0u);
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        const HttpExchange& exchange = outcome.exchanges[0];
        EXPECT_EQ(exchange.protocol, "HTTP/2");
        EXPECT_EQ(exchange.stream_id, 1u);
        EXPECT_EQ(exchange.sequence, 0u);
        EXPECT_EQ(exchange.method, "GET");
        EXPECT_EQ(exchange.scheme, "https");
        EXPECT_EQ(exchange.authority, "example.com");
        EXPECT_EQ(exchange.path, "/index.html");
        EXPECT_EQ(exchange.status, 200);
        EXPECT_TRUE(exchange.informational.empty());
        EXPECT_EQ(exchange.error, "");
        ASSERT_EQ(exchange.request_headers.size(), 2u);  // pseudo-headers have their own fields
        EXPECT_EQ(exchange.request_headers[0].name, "user-agent");
        EXPECT_EQ(exchange.request_headers[0].value, "curl/7.88.1");
        EXPECT_EQ(exchange.request_headers[1].name, "accept");
        ASSERT_EQ(exchange.response_headers.size(), 3u);
        EXPECT_EQ(exchange.response_headers[0].name, "content-type");
        EXPECT_EQ(exchange.request_body.size, 0u);
        EXPECT_EQ(exchange.request_body.sha256, kEmptySha256);
        EXPECT_EQ(exchange.response_body.size, 5u);
        EXPECT_EQ(exchange.response_body.sha256, kHelloSha256);
        EXPECT_EQ(exchange.response_body.content_type, "text/html");
        EXPECT_EQ(exchange.response_body.content_encoding, "gzip");
        EXPECT_EQ(exchange.response_body.captured, "");  // capture is off by default
        if (exact_times(split)) {
            EXPECT_EQ(exchange.request_start, script.time_of(request_event));
            EXPECT_EQ(exchange.response_start, script.time_of(response_event));
            EXPECT_EQ(exchange.end, script.time_of(-1));
        }
    });
}

TEST(Http2Dissector, HostHeaderStandsInForAMissingAuthority) {
    Script script;
    script.handshake();
    script.request(
        1, {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "legacy.example"}});
    script.response(1, ok(), true);
    for_each_split(script, [](const Outcome& outcome, Split) {
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].authority, "legacy.example");
        EXPECT_EQ(outcome.exchanges[0].scheme, "http");
        EXPECT_EQ(outcome.exchanges[0].response_body.size, 0u);
    });
}

std::string body_for(std::uint32_t stream_id, std::string_view what) {
    std::string body;
    for (std::uint32_t i = 0; i <= stream_id * 7; ++i) {
        body += std::string(what) + "-" + std::to_string(stream_id) + "-" + std::to_string(i) + ";";
    }
    return body;
}

TEST(Http2Dissector, TwentyConcurrentInterleavedStreamsWithBodies) {
    Script script;
    script.handshake();
    std::vector<std::uint32_t> ids;
    for (std::uint32_t id = 1; id < 40; id += 2) {
        ids.push_back(id);
        script.request(id, post("/upload/" + std::to_string(id)), false);
    }
    // Request bodies in 100-byte DATA frames, round robin across the streams.
    auto interleave = [&](Side side, std::string_view what) {
        std::vector<std::size_t> offsets(ids.size(), 0);
        for (bool more = true; more;) {
            more = false;
            for (std::size_t i = 0; i < ids.size(); ++i) {
                const std::string body = body_for(ids[i], what);
                if (offsets[i] >= body.size()) {
                    continue;
                }
                const std::string piece = body.substr(offsets[i], 100);
                offsets[i] += piece.size();
                const bool last = offsets[i] >= body.size();
                if (side == Side::client) {
                    script.client_data(ids[i], piece, last);
                } else {
                    script.server_data(ids[i], piece, last);
                }
                more = more || !last;
            }
        }
    };
    interleave(Side::client, "request");
    for (auto id = ids.rbegin(); id != ids.rend(); ++id) {
        script.response(*id, ok("text/csv"));
    }
    interleave(Side::server, "response");
    for_each_split(
        script,
        [&](const Outcome& outcome, Split) {
            EXPECT_EQ(outcome.failure, "");
            ASSERT_EQ(outcome.exchanges.size(), ids.size());
            for (std::size_t i = 0; i < ids.size(); ++i) {
                const HttpExchange* exchange = outcome.stream(ids[i]);
                ASSERT_NE(exchange, nullptr) << ids[i];
                EXPECT_EQ(exchange->sequence, i);
                EXPECT_EQ(exchange->method, "POST");
                EXPECT_EQ(exchange->path, "/upload/" + std::to_string(ids[i]));
                EXPECT_EQ(exchange->status, 200);
                EXPECT_EQ(exchange->error, "");
                const std::string request = body_for(ids[i], "request");
                const std::string response = body_for(ids[i], "response");
                EXPECT_EQ(exchange->request_body.size, request.size());
                EXPECT_EQ(exchange->request_body.sha256, sha256_hex(request));
                EXPECT_EQ(exchange->request_body.content_type, "application/json");
                EXPECT_EQ(exchange->response_body.size, response.size());
                EXPECT_EQ(exchange->response_body.sha256, sha256_hex(response));
                EXPECT_EQ(exchange->response_body.content_type, "text/csv");
            }
        },
        {}, /*also_client_first=*/true);
}

TEST(Http2Dissector, PostBodyWithPaddingAndPriority) {
    Script script;
    script.handshake();
    // HEADERS with Pad Length, the priority fields (exclusive, depends on 0, weight 15), the
    // block and 7 bytes of padding.
    const std::string block = script.client_hpack.encode(post("/form"));
    script.client(frame(kHeaders, kEndHeaders | kPadded | kPriorityFlag, 1,
                        padded("\x80\x00\x00\x00\x0f"s + block, 7)));
    script.client(frame(kData, kPadded, 1, padded("hel", 10)));
    script.client(frame(kData, kPadded | kEndStream, 1, padded("lo", 0)));
    script.response(1, {{":status", "201"}});
    script.server(frame(kData, kPadded | kEndStream, 1, padded("created", 255)));
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        const HttpExchange& exchange = outcome.exchanges[0];
        EXPECT_EQ(exchange.method, "POST");
        EXPECT_EQ(exchange.path, "/form");
        EXPECT_EQ(exchange.status, 201);
        EXPECT_EQ(exchange.request_body.size, 5u);
        EXPECT_EQ(exchange.request_body.sha256, kHelloSha256);
        EXPECT_EQ(exchange.response_body.size, 7u);
        EXPECT_EQ(exchange.response_body.sha256, sha256_hex("created"));
    });
}

TEST(Http2Dissector, PaddingLongerThanTheFrameFails) {
    Script script;
    script.handshake();
    script.request(1, post("/"), false);
    script.client(frame(kData, kPadded, 1, "\x05"s + "abc"));
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "padding longer than the frame");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].error, "padding longer than the frame");
    });
}

TEST(Http2Dissector, HeaderBlocksAcrossContinuationFrames) {
    Script script;
    script.handshake();
    Fields fields = get("/continued");
    fields.push_back({"x-long", std::string(3000, 'x')});
    const std::string block = script.client_hpack.encode(fields);
    ASSERT_GT(block.size(), 100u);
    // END_STREAM rides on HEADERS, END_HEADERS on the last CONTINUATION.
    script.client(frame(kHeaders, kEndStream, 1, block.substr(0, 10)) +
                  frame(kContinuation, 0, 1, block.substr(10, 50)) +
                  frame(kContinuation, 0, 1, "") +
                  frame(kContinuation, kEndHeaders, 1, block.substr(60)));
    const std::string response = script.server_hpack.encode(ok());
    script.server(frame(kHeaders, 0, 1, response.substr(0, 1)) +
                  frame(kContinuation, kEndHeaders, 1, response.substr(1)));
    script.server_data(1, "hello");
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        const HttpExchange& exchange = outcome.exchanges[0];
        EXPECT_EQ(exchange.path, "/continued");
        EXPECT_EQ(header_values(exchange.request_headers, "x-long"),
                  std::vector<std::string>{std::string(3000, 'x')});
        EXPECT_EQ(exchange.status, 200);
        EXPECT_EQ(exchange.response_body.sha256, kHelloSha256);
        EXPECT_EQ(exchange.error, "");
    });
}

TEST(Http2Dissector, ContinuationOutOfSequenceFails) {
    Script script;
    script.handshake();
    script.request(1, get("/a"), false);
    const std::string block = script.client_hpack.encode(get("/b"));
    // HEADERS without END_HEADERS, then a DATA frame where a CONTINUATION must come.
    script.client(frame(kHeaders, 0, 3, block) + frame(kData, 0, 1, "x"));
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "CONTINUATION out of sequence");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].error, "CONTINUATION out of sequence");
    });

    Script stray;
    stray.handshake();
    stray.client(frame(kContinuation, kEndHeaders, 1, stray.client_hpack.encode(get("/"))));
    for_each_split(stray, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "CONTINUATION out of sequence");
        EXPECT_TRUE(outcome.exchanges.empty());
    });
}

TEST(Http2Dissector, InformationalResponsesThenTheFinalOne) {
    Script script;
    script.handshake();
    script.request(1, post("/upload"), false);
    script.response(1, {{":status", "103"}, {"link", "</style.css>; rel=preload"}});
    script.response(1, {{":status", "100"}});
    script.client_data(1, "hello");
    script.response(1, ok());
    const int final_event = script.last();
    script.server_data(1, "done");
    for_each_split(script, [&](const Outcome& outcome, Split split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        const HttpExchange& exchange = outcome.exchanges[0];
        EXPECT_EQ(exchange.informational, (std::vector<int>{103, 100}));
        EXPECT_EQ(exchange.status, 200);
        EXPECT_TRUE(header_values(exchange.response_headers, "link").empty());
        EXPECT_EQ(header_values(exchange.response_headers, "server"),
                  std::vector<std::string>{"test"});
        EXPECT_EQ(exchange.request_body.sha256, kHelloSha256);
        if (exact_times(split)) {
            EXPECT_EQ(exchange.response_start, script.time_of(final_event));
        }
    });
}

TEST(Http2Dissector, TrailersAreAppendedToTheHeaderLists) {
    Script script;
    script.handshake();
    script.request(1, post("/grpc.Service/Call"), false);
    script.client_data(1, "hello", false);
    script.request(1, {{"x-request-checksum", "abc"}}, true);  // request trailers
    script.response(1, ok("application/grpc"));
    script.server_data(1, "hello", false);
    script.response(1, {{"grpc-status", "0"}, {"grpc-message", "OK"}}, true);
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        const HttpExchange& exchange = outcome.exchanges[0];
        EXPECT_EQ(exchange.error, "");
        EXPECT_EQ(exchange.request_headers.back().name, "x-request-checksum");
        EXPECT_EQ(exchange.request_body.sha256, kHelloSha256);
        ASSERT_EQ(exchange.response_headers.size(), 4u);
        EXPECT_EQ(exchange.response_headers[0].name, "content-type");
        EXPECT_EQ(exchange.response_headers[2].name, "grpc-status");
        EXPECT_EQ(exchange.response_headers[2].value, "0");
        EXPECT_EQ(exchange.response_body.sha256, kHelloSha256);
        EXPECT_EQ(exchange.status, 200);
    });
}

TEST(Http2Dissector, ResetStreamIsReportedAtOnceAndOthersCarryOn) {
    Script script;
    script.handshake();
    script.request(1, get("/slow"));
    script.request(3, get("/fast"));
    script.response(1, ok(), false);
    script.server_data(1, "partial", false);
    script.client(frame(kRstStream, 0, 1, be32(kCancel)));
    const int reset_event = script.last();
    script.server_data(1, "late data for a reset stream");  // in flight: ignored
    script.response(3, ok(), false);
    script.server_data(3, "hello");
    for_each_split(script, [&](const Outcome& outcome, Split split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 2u);
        const HttpExchange& reset = outcome.exchanges[0];
        EXPECT_EQ(reset.stream_id, 1u);
        EXPECT_EQ(reset.error, "stream reset: CANCEL");
        EXPECT_EQ(reset.status, 200);
        EXPECT_EQ(reset.response_body.size, 7u);
        if (exact_times(split)) {
            EXPECT_EQ(reset.end, script.time_of(reset_event));
        }
        EXPECT_EQ(outcome.exchanges[1].stream_id, 3u);
        EXPECT_EQ(outcome.exchanges[1].error, "");
        EXPECT_EQ(outcome.exchanges[1].response_body.sha256, kHelloSha256);
    });
}

TEST(Http2Dissector, ServerResetWithNoErrorAfterAFullResponseIsComplete) {
    Script script;
    script.handshake();
    script.request(1, post("/big-upload"), false);
    script.client_data(1, "part", false);
    script.response(1, {{":status", "413"}}, true);
    script.server(frame(kRstStream, 0, 1, be32(0)));
    script.request(3, get("/"), true);
    script.server(frame(kRstStream, 0, 3, be32(0x7)));
    script.request(5, get("/"), true);
    script.server(frame(kRstStream, 0, 5, be32(0x1234)));
    for_each_split(script, [](const Outcome& outcome, Split) {
        ASSERT_EQ(outcome.exchanges.size(), 3u);
        EXPECT_EQ(outcome.exchanges[0].status, 413);
        EXPECT_EQ(outcome.exchanges[0].error, "");
        EXPECT_EQ(outcome.exchanges[1].error, "stream reset: REFUSED_STREAM");
        EXPECT_EQ(outcome.exchanges[2].error, "stream reset: 0x1234");
    });
}

TEST(Http2Dissector, GoawayRefusesStreamsAboveTheLastOne) {
    Script script;
    script.handshake();
    script.request(1, get("/1"));
    script.request(3, get("/3"));
    script.request(5, get("/5"));
    script.response(1, ok(), false);
    script.server(frame(kGoaway, 0, 0, be32(3) + be32(0) + "shutting down"));
    script.request(7, get("/7"));  // sent before the client saw GOAWAY
    script.server_data(1, "one");
    script.response(3, ok(), true);
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 4u);
        EXPECT_EQ(outcome.exchanges[0].stream_id, 5u);
        EXPECT_EQ(outcome.exchanges[0].error, "refused by GOAWAY");
        EXPECT_EQ(outcome.exchanges[1].stream_id, 7u);
        EXPECT_EQ(outcome.exchanges[1].error, "refused by GOAWAY");
        EXPECT_EQ(outcome.exchanges[1].path, "/7");
        EXPECT_EQ(outcome.exchanges[2].stream_id, 1u);
        EXPECT_EQ(outcome.exchanges[2].error, "");
        EXPECT_EQ(outcome.exchanges[3].stream_id, 3u);
        EXPECT_EQ(outcome.exchanges[3].error, "");
    });
}

TEST(Http2Dissector, RedactsConfiguredHeaders) {
    Script script;
    script.handshake();
    Fields fields = get("/account");
    fields.push_back({"authorization", "Bearer secret-token"});
    fields.push_back({"cookie", "a=1"});
    fields.push_back({"cookie", "b=2"});
    fields.push_back({"x-api-key", "k-123"});
    fields.push_back({"x-visible", "fine"});
    script.request(1, fields);
    script.response(1, {{":status", "200"}, {"set-cookie", "session=abc"}, {"x-visible", "ok"}});
    script.server_data(1, "hello");
    for_each_split(script, [](const Outcome& outcome, Split) {
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        const HttpExchange& exchange = outcome.exchanges[0];
        EXPECT_EQ(header_values(exchange.request_headers, "authorization"),
                  std::vector<std::string>{"<redacted>"});
        EXPECT_EQ(header_values(exchange.request_headers, "cookie"),
                  (std::vector<std::string>{"<redacted>", "<redacted>"}));
        EXPECT_EQ(header_values(exchange.request_headers, "x-api-key"),
                  std::vector<std::string>{"k-123"});
        EXPECT_EQ(header_values(exchange.request_headers, "x-visible"),
                  std::vector<std::string>{"fine"});
        EXPECT_EQ(header_values(exchange.response_headers, "set-cookie"),
                  std::vector<std::string>{"<redacted>"});
    });

    DissectorOptions options;
    options.redacted_headers = {"x-api-key"};
    const Outcome custom = run(script, Split::whole, 0, options);
    ASSERT_EQ(custom.exchanges.size(), 1u);
    EXPECT_EQ(header_values(custom.exchanges[0].request_headers, "x-api-key"),
              std::vector<std::string>{"<redacted>"});
    EXPECT_EQ(header_values(custom.exchanges[0].request_headers, "authorization"),
              std::vector<std::string>{"Bearer secret-token"});
}

TEST(Http2Dissector, CapturesBodiesOnlyWhenAsked) {
    Script script;
    script.handshake();
    script.request(1, post("/echo"), false);
    script.client_data(1, "hello");
    script.response(1, ok());
    script.server_data(1, "hello", false);
    script.server_data(1, " world");

    for_each_split(script, [](const Outcome& outcome, Split) {
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].request_body.captured, "");
        EXPECT_FALSE(outcome.exchanges[0].request_body.capture_truncated);
        EXPECT_EQ(outcome.exchanges[0].response_body.captured, "");
        EXPECT_EQ(outcome.exchanges[0].response_body.size, 11u);
    });

    DissectorOptions capture;
    capture.capture_bodies = true;
    for_each_split(
        script,
        [](const Outcome& outcome, Split) {
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.exchanges[0].request_body.captured, "hello");
            EXPECT_EQ(outcome.exchanges[0].response_body.captured, "hello world");
            EXPECT_FALSE(outcome.exchanges[0].response_body.capture_truncated);
        },
        capture);

    capture.body_capture_limit = 3;
    for_each_split(
        script,
        [](const Outcome& outcome, Split) {
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.exchanges[0].request_body.captured, "hel");
            EXPECT_TRUE(outcome.exchanges[0].request_body.capture_truncated);
            EXPECT_EQ(outcome.exchanges[0].response_body.captured, "hel");
            EXPECT_EQ(outcome.exchanges[0].response_body.sha256, sha256_hex("hello world"));
        },
        capture);
}

TEST(Http2Dissector, DynamicTableIsSharedAcrossRequests) {
    Script script;
    script.handshake();
    Fields fields = get("/first");
    fields.push_back({"x-session-label", "a fairly long value the encoder will index"});
    const std::string first = script.client_hpack.encode(fields);
    script.client(frame(kHeaders, kEndHeaders | kEndStream, 1, first));
    script.response(1, ok(), true);
    const std::string second = script.client_hpack.encode(fields);
    // All but :path (which nghttp2 never indexes) are now one-byte references into the
    // dynamic table.
    EXPECT_LT(second.size() * 4, first.size());
    script.client(frame(kHeaders, kEndHeaders | kEndStream, 3, second));
    script.response(3, ok(), true);
    for_each_split(script, [&](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 2u);
        EXPECT_EQ(describe(outcome.exchanges[1]).substr(describe(outcome.exchanges[1]).find('\n')),
                  describe(outcome.exchanges[0]).substr(describe(outcome.exchanges[0]).find('\n')));
        EXPECT_EQ(outcome.exchanges[1].path, "/first");
        EXPECT_EQ(header_values(outcome.exchanges[1].request_headers, "x-session-label"),
                  std::vector<std::string>{"a fairly long value the encoder will index"});
        EXPECT_EQ(header_values(outcome.exchanges[1].response_headers, "server"),
                  std::vector<std::string>{"test"});
    });
}

TEST(Http2Dissector, HonoursASmallerHeaderTableOnceAcknowledged) {
    Script script;
    // The server allows no dynamic table; once the client acknowledges, its encoder must say so
    // at the start of its next block (nghttp2's deflater does).
    script.handshake(settings(), settings({{0x1, 0}}));
    script.client_hpack.change_table_size(0);
    script.request(1, get("/"));
    script.response(1, ok(), true);
    script.request(3, get("/again"));
    script.response(3, ok(), true);
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 2u);
        EXPECT_EQ(outcome.exchanges[1].path, "/again");
    });

    // A client that ignores it is caught: its encoder still indexes into a table that may not
    // exist, and it never sent the size update the decoder now insists on.
    Script stubborn;
    stubborn.handshake(settings(), settings({{0x1, 0}}));
    stubborn.request(1, get("/"));
    for_each_split(stubborn, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "HPACK decoding error");
    });
}

TEST(Http2Dissector, AcceptsALargerHeaderTableTheServerAllows) {
    Script script;
    script.handshake(settings(), settings({{0x1, 65536}}));
    script.client_hpack.change_table_size(65536);  // announces 65536 in its next block
    Fields fields = get("/");
    fields.push_back({"x-big", std::string(10000, 'v')});  // fits only in the larger table
    script.request(1, fields);
    script.response(1, ok(), true);
    const std::string second = script.client_hpack.encode(fields);
    EXPECT_LT(second.size(), 100u);  // x-big came from the dynamic table
    script.client(frame(kHeaders, kEndHeaders | kEndStream, 3, second));
    script.response(3, ok(), true);
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 2u);
        EXPECT_EQ(header_values(outcome.exchanges[1].request_headers, "x-big"),
                  std::vector<std::string>{std::string(10000, 'v')});
    });

    // Without those SETTINGS the same announcement is a decoding error.
    Script unannounced;
    unannounced.handshake();
    unannounced.client_hpack.change_table_size(65536);
    unannounced.request(1, fields);
    EXPECT_EQ(run(unannounced, Split::whole).failure, "HPACK decoding error");
}

TEST(Http2Dissector, FramesAboveTheMaxFrameSizeFailUntilTheReceiverRaisesIt) {
    const std::string big(40000, 'b');
    Script script;
    script.handshake();
    script.request(1, post("/big"), false);
    script.client_data(1, big);
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "frame larger than SETTINGS_MAX_FRAME_SIZE");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].error, "frame larger than SETTINGS_MAX_FRAME_SIZE");
    });

    Script raised;
    raised.handshake(settings(), settings({{0x5, 65536}}));
    raised.request(1, post("/big"), false);
    raised.client_data(1, big);
    raised.response(1, ok(), true);
    for_each_split(raised, [&](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].request_body.sha256, sha256_hex(big));
    });
}

TEST(Http2Dissector, PushPromiseOpensAPushedExchange) {
    Script script;
    script.handshake();
    script.request(1, get("/page"));
    const Fields promised = {{":method", "GET"},
                             {":scheme", "https"},
                             {":authority", "example.com"},
                             {":path", "/style.css"}};
    script.server(frame(kPushPromise, kEndHeaders | kPadded, 1,
                        padded(be32(2) + script.server_hpack.encode(promised), 3)));
    const int promise_event = script.last();
    script.response(1, ok("text/html"));
    script.server_data(1, "<html>");
    script.response(2, ok("text/css"));
    script.server_data(2, "hello");
    for_each_split(script, [&](const Outcome& outcome, Split split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 2u);
        const HttpExchange* pushed = outcome.stream(2);
        ASSERT_NE(pushed, nullptr);
        EXPECT_EQ(pushed->sequence, 1u);
        EXPECT_EQ(pushed->path, "/style.css");
        EXPECT_EQ(pushed->status, 200);
        EXPECT_EQ(pushed->response_body.content_type, "text/css");
        EXPECT_EQ(pushed->response_body.sha256, kHelloSha256);
        EXPECT_EQ(pushed->error, "");
        if (exact_times(split)) {
            EXPECT_EQ(pushed->request_start, script.time_of(promise_event));
        }
        EXPECT_EQ(outcome.stream(1)->response_body.size, 6u);
    });
}

TEST(Http2Dissector, ControlFramesAreSkipped) {
    Script script;
    script.handshake();
    script.client(frame(kPing, 0, 0, "12345678"));
    script.server(frame(kPing, kAck, 0, "12345678"));
    script.request(1, get("/"));
    script.client(frame(0x2, 0, 1, "\x00\x00\x00\x03\x10"s));  // PRIORITY
    script.server(frame(kWindowUpdate, 0, 0, be32(65535)));
    script.server(frame(0xfa, 0x3, 1, "an extension frame"));
    script.response(1, ok(), false);
    script.server(frame(kWindowUpdate, 0, 1, be32(1000)));
    script.server_data(1, "hello");
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].response_body.sha256, kHelloSha256);
    });
}

TEST(Http2Dissector, FinishReportsOpenStreams) {
    Script script;
    script.handshake();
    script.request(1, get("/no-answer"));
    script.request(3, get("/half-answer"));
    script.response(3, ok(), false);
    script.server_data(3, "hel", false);
    script.request(5, post("/upload"), false);
    script.response(5, {{":status", "200"}}, true);
    for_each_split(script, [&](const Outcome& outcome, Split split) {
        EXPECT_EQ(outcome.failure, "");
        EXPECT_EQ(outcome.open_before_finish, 3u);
        ASSERT_EQ(outcome.exchanges.size(), 3u);
        EXPECT_EQ(outcome.exchanges[0].error, "connection closed before the response");
        EXPECT_EQ(outcome.exchanges[1].error, "connection closed before the response ended");
        EXPECT_EQ(outcome.exchanges[1].response_body.size, 3u);
        EXPECT_EQ(outcome.exchanges[2].error, "connection closed before the request ended");
        if (exact_times(split)) {
            EXPECT_EQ(outcome.exchanges[0].end, script.time_of(-1) + std::chrono::seconds(1));
        }
    });
}

// --- Failures -----------------------------------------------------------------------------------

TEST(Http2Dissector, BadPrefaceFailsAndLaterFeedsAreIgnored) {
    Script script;
    script.client("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    script.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "bad client preface");
        EXPECT_TRUE(outcome.exchanges.empty());
    });

    Script server_first;
    server_first.client(std::string(kHttp2ClientPreface) + settings());
    server_first.server("HTTP/1.1 400 Bad Request\r\n\r\n");
    EXPECT_EQ(run(server_first, Split::whole).failure, "server preface is not a SETTINGS frame");

    Script no_settings;
    no_settings.client(std::string(kHttp2ClientPreface) + frame(kPing, 0, 0, "12345678"));
    EXPECT_EQ(run(no_settings, Split::whole).failure, "client preface not followed by SETTINGS");
}

TEST(Http2Dissector, HpackGarbageFailsAndReportsOpenStreams) {
    Script script;
    script.handshake();
    script.request(1, get("/open"));
    // An indexed field far beyond the static and dynamic tables.
    script.client(frame(kHeaders, kEndHeaders | kEndStream, 3, "\xff\xff\xff\xff\x0f"s));
    script.response(1, ok(), true);  // fed after the failure: ignored
    for_each_split(script, [](const Outcome& outcome, Split) {
        EXPECT_EQ(outcome.failure, "HPACK decoding error");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].stream_id, 1u);
        EXPECT_EQ(outcome.exchanges[0].error, "HPACK decoding error");
        EXPECT_EQ(outcome.exchanges[0].status, 0);
    });
}

TEST(Http2Dissector, OversizedHeaderBlockFails) {
    Script script;
    script.handshake();
    std::string continuations = frame(kHeaders, 0, 1, std::string(16000, '\0'));
    for (int i = 0; i < 17; ++i) {
        continuations += frame(kContinuation, 0, 1, std::string(16000, '\0'));
    }
    script.client(continuations);
    const Outcome outcome = run(script, Split::whole);
    EXPECT_EQ(outcome.failure, "header block larger than 256 KiB");
}

TEST(Http2Dissector, TooManyConcurrentStreamsFails) {
    Script script;
    script.handshake();
    for (std::uint32_t i = 0; i <= Http2Dissector::kMaxTrackedStreams; ++i) {
        script.request(2 * i + 1, get("/" + std::to_string(i)));
    }
    const Outcome outcome = run(script, Split::whole);
    EXPECT_EQ(outcome.failure, "more than 1000 concurrent streams");
    ASSERT_EQ(outcome.exchanges.size(), Http2Dissector::kMaxTrackedStreams);
    EXPECT_EQ(outcome.exchanges.front().sequence, 0u);
    EXPECT_EQ(outcome.exchanges.back().sequence, Http2Dissector::kMaxTrackedStreams - 1);
    EXPECT_EQ(outcome.exchanges.back().error, "more than 1000 concurrent streams");
}

TEST(Http2Dissector, ProtocolViolationsFail) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {frame(kData, 0, 0, "x"), "DATA on stream 0"},
        {frame(kSettings, 0, 1, ""), "SETTINGS on a stream"},
        {frame(kSettings, 0, 0, "12345"), "SETTINGS of the wrong size"},
        {frame(kSettings, kAck, 0, "123456"), "SETTINGS ACK with data"},
        {frame(kRstStream, 0, 1, "12"), "RST_STREAM of the wrong size"},
        {frame(kGoaway, 0, 0, "1234"), "GOAWAY too short"},
        {frame(kHeaders, kPriorityFlag, 1, "1234"),
         "frame shorter than its padding and priority fields"},
        {frame(kPushPromise, kEndHeaders, 1, be32(2)), "PUSH_PROMISE from the client"},
        {settings({{0x5, 100}}), "invalid SETTINGS_MAX_FRAME_SIZE"},
    };
    for (const auto& [bytes, failure] : cases) {
        Script script;
        script.handshake();
        script.client(bytes);
        EXPECT_EQ(run(script, Split::byte_by_byte).failure, failure);
    }
}

// --- Fuzz seeds ---------------------------------------------------------------------------------

// Writes some of the scripts above as seeds for fuzz/http2_dissector (its input format: an
// options byte, then records of a tag byte - bit 7 the side, bits 0-6 the length minus one -
// and up to 128 bytes). Run with --gtest_also_run_disabled_tests and TLSGATE_HTTP2_SEEDS=<dir>.
TEST(Http2Dissector, DISABLED_WriteFuzzSeeds) {
    const char* directory = std::getenv("TLSGATE_HTTP2_SEEDS");
    ASSERT_NE(directory, nullptr);
    auto write = [&](const std::string& name, const Script& script, std::uint8_t options) {
        std::string bytes(1, static_cast<char>(options));
        for (const Event& event : script.events) {
            for (std::size_t position = 0; position < event.bytes.size(); position += 128) {
                const std::string piece = event.bytes.substr(position, 128);
                bytes +=
                    static_cast<char>((event.side == Side::server ? 0x80 : 0) | (piece.size() - 1));
                bytes += piece;
            }
        }
        std::ofstream(std::filesystem::path(directory) / name, std::ios::binary) << bytes;
    };
    {
        Script script;
        script.handshake();
        script.request(1, get("/index.html"));
        script.response(1, ok("text/html"));
        script.server_data(1, "hello");
        write("get.bin", script, 0);
    }
    {
        Script script;
        script.handshake(settings({{0x2, 0}, {0x4, 65535}}), settings({{0x3, 100}, {0x5, 32768}}));
        script.request(1, post("/form"), false);
        script.client(frame(kData, kPadded, 1, padded("hel", 4)));
        script.client(frame(kData, kEndStream, 1, "lo"));
        script.response(1, {{":status", "100"}});
        script.response(1, ok());
        script.server_data(1, "created", false);
        script.response(1, {{"grpc-status", "0"}}, true);
        write("post_padded_trailers.bin", script, 1);
    }
    {
        Script script;
        script.handshake();
        const std::string block = script.client_hpack.encode(get("/continued"));
        script.client(frame(kHeaders, kEndStream | kPriorityFlag, 1,
                            "\x00\x00\x00\x00\x10"s + block.substr(0, 5)) +
                      frame(kContinuation, kEndHeaders, 1, block.substr(5)));
        script.request(3, get("/continued"));
        script.server(frame(kPushPromise, kEndHeaders, 1,
                            be32(2) + script.server_hpack.encode(get("/pushed"))));
        script.response(1, ok(), true);
        script.response(2, ok(), false);
        script.client(frame(kRstStream, 0, 2, be32(kCancel)));
        script.server(frame(kGoaway, 0, 0, be32(1) + be32(0)));
        write("continuation_push_reset_goaway.bin", script, 3);
    }
    {
        Script script;
        script.handshake(settings(), settings({{0x1, 0}}));
        script.client_hpack.change_table_size(0);
        script.request(1, get("/"));
        script.client(frame(kPing, 0, 0, "12345678"));
        script.server(frame(kWindowUpdate, 0, 0, be32(1000)));
        script.response(1, ok(), true);
        write("table_size_zero.bin", script, 0);
    }
}

}  // namespace
}  // namespace tlsgate::inspect
