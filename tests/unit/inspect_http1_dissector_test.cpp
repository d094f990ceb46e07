#include "inspect/http1_dissector.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "websocket_frames.hpp"

namespace tlsgate::inspect {
namespace {

using namespace std::literals;
using testing::client_frame;
using testing::close_payload;
using testing::server_frame;

const Clock::time_point kStart = Clock::time_point{} + 1'700'000'000s;

std::string sha256_hex(std::string_view bytes) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
        hex.push_back(kHex[digest[i] >> 4]);
        hex.push_back(kHex[digest[i] & 0xf]);
    }
    return hex;
}

const std::string kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

class CollectingSink final : public ExchangeSink {
public:
    void on_exchange(HttpExchange&& exchange) override { exchanges.push_back(std::move(exchange)); }
    std::vector<HttpExchange> exchanges;
};

// One step of a conversation: bytes one side sent, or that side closing.
struct Event {
    enum class Kind { data, end } kind = Kind::data;
    Side side = Side::client;
    std::string bytes;
};

Event client(std::string_view bytes) {
    return {Event::Kind::data, Side::client, std::string(bytes)};
}
Event server(std::string_view bytes) {
    return {Event::Kind::data, Side::server, std::string(bytes)};
}
Event client_end() {
    return {Event::Kind::end, Side::client, {}};
}
Event server_end() {
    return {Event::Kind::end, Side::server, {}};
}

enum class Split { whole, byte_by_byte, random };

struct Outcome {
    std::vector<HttpExchange> exchanges;
    std::string failure;
    // Exchanges reported before finish() was called.
    std::size_t reported_before_finish = 0;
};

// Plays the events in order, each event's bytes cut as `split` says; every feed is 1 ms later
// than the one before. Calls finish() at the end unless told not to.
Outcome play(const std::vector<Event>& events, Split split, const DissectorOptions& options = {},
             std::uint32_t seed = 1, bool call_finish = true) {
    CollectingSink sink;
    Http1Dissector dissector(options, sink);
    std::mt19937 random(seed);
    Clock::time_point now = kStart;
    for (const Event& event : events) {
        if (event.kind == Event::Kind::end) {
            dissector.end(event.side, now);
            now += 1ms;
            continue;
        }
        std::size_t position = 0;
        while (position < event.bytes.size()) {
            std::size_t piece = event.bytes.size() - position;
            if (split == Split::byte_by_byte) {
                piece = 1;
            } else if (split == Split::random) {
                // Mostly small pieces, now and then a large one.
                const std::size_t limit = random() % 8 == 0 ? 4096 : 23;
                piece = std::min<std::size_t>(piece, random() % limit + 1);
            }
            dissector.feed(event.side, std::span<const char>(event.bytes.data() + position, piece),
                           now);
            now += 1ms;
            position += piece;
        }
    }
    Outcome outcome;
    outcome.reported_before_finish = sink.exchanges.size();
    if (call_finish) {
        dissector.finish(now);
    }
    outcome.exchanges = std::move(sink.exchanges);
    outcome.failure = dissector.failure();
    EXPECT_EQ(dissector.failed(), !outcome.failure.empty());
    return outcome;
}

// Runs `check` on the outcome of every way of cutting the conversation: each event whole, byte
// by byte, and at random points with a few seeds.
template <typename Check>
void for_every_split(const std::vector<Event>& events, Check check,
                     const DissectorOptions& options = {}, bool call_finish = true) {
    {
        SCOPED_TRACE("whole");
        check(play(events, Split::whole, options, 1, call_finish));
    }
    {
        SCOPED_TRACE("byte by byte");
        check(play(events, Split::byte_by_byte, options, 1, call_finish));
    }
    for (std::uint32_t seed = 1; seed <= 5; ++seed) {
        SCOPED_TRACE("random split, seed " + std::to_string(seed));
        check(play(events, Split::random, options, seed, call_finish));
    }
}

std::string header_value(const std::vector<HeaderField>& headers, std::string_view name) {
    for (const HeaderField& header : headers) {
        if (header.name == name) {
            return header.value;
        }
    }
    return "<absent>";
}

constexpr std::string_view kGetIndex =
    "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n\r\n";
constexpr std::string_view kHelloResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

TEST(Http1Dissector, SingleExchangeFillsEveryField) {
    for_every_split({client(kGetIndex), server(kHelloResponse)}, [](const Outcome& outcome) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.reported_before_finish, 1u);  // complete: reported without finish
        const HttpExchange& exchange = outcome.exchanges[0];
        EXPECT_EQ(exchange.protocol, "HTTP/1.1");
        EXPECT_EQ(exchange.stream_id, 0u);
        EXPECT_EQ(exchange.sequence, 0u);
        EXPECT_EQ(exchange.method, "GET");
        EXPECT_EQ(exchange.scheme, "https");
        EXPECT_EQ(exchange.authority, "example.com");
        EXPECT_EQ(exchange.path, "/index.html?q=1");
        EXPECT_EQ(exchange.status, 200);
        EXPECT_EQ(exchange.reason, "OK");
        EXPECT_TRUE(exchange.informational.empty());
        ASSERT_EQ(exchange.request_headers.size(), 3u);
        EXPECT_EQ(exchange.request_headers[0].name, "Host");
        EXPECT_EQ(exchange.request_headers[1].value, "curl/7.88.1");
        ASSERT_EQ(exchange.response_headers.size(), 2u);
        EXPECT_EQ(exchange.response_headers[1].name, "Content-Length");
        EXPECT_EQ(exchange.request_body.size, 0u);
        EXPECT_EQ(exchange.request_body.sha256, kEmptySha256);
        EXPECT_EQ(exchange.response_body.size, 5u);
        // sha256("hello")
        EXPECT_EQ(exchange.response_body.sha256,
                  "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        EXPECT_EQ(exchange.response_body.content_type, "text/plain");
        EXPECT_EQ(exchange.response_body.captured, "");  // capture is off by default
        EXPECT_FALSE(exchange.websocket.has_value());
        EXPECT_EQ(exchange.error, "");
        ASSERT_TRUE(exchange.response_start.has_value());
        EXPECT_GE(*exchange.response_start, exchange.request_start);
        EXPECT_GE(exchange.end, *exchange.response_start);
    });
}

TEST(Http1Dissector, Timestamps) {
    CollectingSink sink;
    const DissectorOptions options;
    Http1Dissector dissector(options, sink);
    const std::string_view request = kGetIndex;
    const std::string_view response = kHelloResponse;
    dissector.feed(Side::client, request.substr(0, 10), kStart + 1s);
    dissector.feed(Side::client, request.substr(10), kStart + 2s);
    dissector.feed(Side::server, response.substr(0, 5), kStart + 3s);
    dissector.feed(Side::server, response.substr(5, response.size() - 7), kStart + 4s);
    EXPECT_TRUE(sink.exchanges.empty());
    dissector.feed(Side::server, response.substr(response.size() - 2), kStart + 5s);
    ASSERT_EQ(sink.exchanges.size(), 1u);
    EXPECT_EQ(sink.exchanges[0].request_start, kStart + 1s);
    EXPECT_EQ(sink.exchanges[0].response_start, kStart + 3s);
    EXPECT_EQ(sink.exchanges[0].end, kStart + 5s);
}

TEST(Http1Dissector, ThreePipelinedRequests) {
    const std::string requests =
        "GET /one HTTP/1.1\r\nHost: a.example\r\n\r\n"
        "POST /two HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc"
        "GET /three HTTP/1.1\r\nHost: a.example\r\n\r\n";
    const std::string responses =
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
        "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
    for_every_split({client(requests), server(responses)}, [](const Outcome& outcome) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 3u);
        EXPECT_EQ(outcome.reported_before_finish, 3u);
        const char* paths[] = {"/one", "/two", "/three"};
        const int statuses[] = {200, 201, 404};
        for (std::size_t i = 0; i < 3; ++i) {
            EXPECT_EQ(outcome.exchanges[i].sequence, i);
            EXPECT_EQ(outcome.exchanges[i].path, paths[i]);
            EXPECT_EQ(outcome.exchanges[i].status, statuses[i]);
            EXPECT_EQ(outcome.exchanges[i].error, "");
        }
        EXPECT_EQ(outcome.exchanges[1].method, "POST");
        EXPECT_EQ(outcome.exchanges[1].request_body.size, 3u);
        EXPECT_EQ(outcome.exchanges[1].request_body.sha256, sha256_hex("abc"));
        EXPECT_EQ(outcome.exchanges[2].response_body.sha256, sha256_hex("not found"));
    });
}

TEST(Http1Dissector, RequestsAndResponsesInterleaved) {
    // The second request arrives while the first response is still coming.
    for_every_split(
        {client("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), server("HTTP/1.1 200 OK\r\nContent-Le"),
         client("GET /b HTTP/1.1\r\nHost: h\r\n\r\n"), server("ngth: 2\r\n\r\nA"),
         server("AHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB")},
        [](const Outcome& outcome) {
            EXPECT_EQ(outcome.failure, "");
            ASSERT_EQ(outcome.exchanges.size(), 2u);
            EXPECT_EQ(outcome.exchanges[0].path, "/a");
            EXPECT_EQ(outcome.exchanges[0].response_body.size, 2u);
            EXPECT_EQ(outcome.exchanges[1].path, "/b");
            EXPECT_EQ(outcome.exchanges[1].response_body.sha256, sha256_hex("B"));
        });
}

TEST(Http1Dissector, ChunkedUploadAndDownloadWithTrailers) {
    const std::string request =
        "POST /upload HTTP/1.1\r\nHost: up.example\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
        "4;name=value\r\nWiki\r\n5\r\npedia\r\n0\r\nChecksum: abc\r\n\r\n";
    const std::string response =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
        "Content-Encoding: gzip\r\n\r\n"
        "2\r\n{}\r\nA\r\n0123456789\r\n0\r\nServer-Timing: db;dur=53\r\nX-Tail: 1\r\n\r\n";
    const std::string next = "GET /after HTTP/1.1\r\nHost: up.example\r\n\r\n";
    const std::string next_response = "HTTP/1.1 204 No Content\r\n\r\n";
    for_every_split(
        {client(request), server(response), client(next), server(next_response)},
        [](const Outcome& outcome) {
            EXPECT_EQ(outcome.failure, "");
            ASSERT_EQ(outcome.exchanges.size(), 2u);
            const HttpExchange& upload = outcome.exchanges[0];
            EXPECT_EQ(upload.request_body.size, 9u);
            EXPECT_EQ(upload.request_body.sha256, sha256_hex("Wikipedia"));
            EXPECT_EQ(upload.request_body.content_type, "application/octet-stream");
            EXPECT_EQ(upload.response_body.size, 12u);
            EXPECT_EQ(upload.response_body.sha256, sha256_hex("{}0123456789"));
            EXPECT_EQ(upload.response_body.content_type, "application/json");
            EXPECT_EQ(upload.response_body.content_encoding, "gzip");
            EXPECT_EQ(outcome.exchanges[1].path, "/after");
            EXPECT_EQ(outcome.exchanges[1].status, 204);
            EXPECT_EQ(outcome.exchanges[1].response_body.size, 0u);
        },
        DissectorOptions{.capture_bodies = true});
}

TEST(Http1Dissector, HeadResponseHasNoBodyDespiteContentLength) {
    for_every_split(
        {client("HEAD /big HTTP/1.1\r\nHost: h\r\n\r\nGET /small HTTP/1.1\r\nHost: h\r\n\r\n"),
         server("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")},
        [](const Outcome& outcome) {
            EXPECT_EQ(outcome.failure, "");
            ASSERT_EQ(outcome.exchanges.size(), 2u);
            EXPECT_EQ(outcome.exchanges[0].method, "HEAD");
            EXPECT_EQ(outcome.exchanges[0].response_body.size, 0u);
            EXPECT_EQ(header_value(outcome.exchanges[0].response_headers, "Content-Length"),
                      "100000");
            EXPECT_EQ(outcome.exchanges[1].response_body.size, 2u);
            EXPECT_EQ(outcome.exchanges[1].error, "");
        });
}

TEST(Http1Dissector, NotModifiedAndNoContentHaveNoBody) {
    for_every_split({client("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
                            "HTTP/1.1 204 No Content\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 2u);
                        EXPECT_EQ(outcome.exchanges[0].status, 304);
                        EXPECT_EQ(outcome.exchanges[1].status, 204);
                        EXPECT_EQ(outcome.exchanges[0].error, "");
                        EXPECT_EQ(outcome.exchanges[1].error, "");
                    });
}

TEST(Http1Dissector, ExpectContinue) {
    for_every_split({client("PUT /file HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                            "Expect: 100-continue\r\n\r\n"),
                     server("HTTP/1.1 100 Continue\r\n\r\n"), client("12345"),
                     server("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                            "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        const HttpExchange& exchange = outcome.exchanges[0];
                        EXPECT_EQ(exchange.informational, (std::vector<int>{100, 103}));
                        EXPECT_EQ(exchange.status, 201);
                        EXPECT_EQ(exchange.reason, "Created");
                        EXPECT_EQ(exchange.request_body.size, 5u);
                        EXPECT_EQ(exchange.error, "");
                        // Only the final response's headers are kept.
                        EXPECT_EQ(header_value(exchange.response_headers, "Link"), "<absent>");
                    });
    // response_start is the first byte of the 100 Continue.
    CollectingSink sink;
    const DissectorOptions options;
    Http1Dissector dissector(options, sink);
    dissector.feed(
        Side::client,
        "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n"sv, kStart);
    dissector.feed(Side::server, "HTTP/1.1 100 Continue\r\n\r\n"sv, kStart + 1s);
    dissector.feed(Side::client, "x"sv, kStart + 2s);
    dissector.feed(Side::server, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"sv, kStart + 3s);
    ASSERT_EQ(sink.exchanges.size(), 1u);
    EXPECT_EQ(sink.exchanges[0].response_start, kStart + 1s);
    EXPECT_EQ(sink.exchanges[0].end, kStart + 3s);
}

TEST(Http1Dissector, EndlessInterimResponsesAreNotAllKept) {
    std::string interim;
    for (int i = 0; i < 40; ++i) {
        interim += "HTTP/1.1 102 Processing\r\n\r\n";
    }
    for_every_split({client("PROPFIND /dav HTTP/1.1\r\nHost: h\r\n\r\n"), server(interim),
                     server("HTTP/1.1 207 Multi-Status\r\nContent-Length: 0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.exchanges[0].informational, std::vector<int>(16, 102));
                        EXPECT_EQ(outcome.exchanges[0].status, 207);
                    });
}

TEST(Http1Dissector, ConnectionCloseBodyEndsWithTheConnection) {
    const std::string body(5000, 'z');
    for_every_split({client("GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"), server(body),
                     server_end(), client_end()},
                    [&](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.reported_before_finish, 1u);  // end(server) completed it
                        EXPECT_EQ(outcome.exchanges[0].response_body.size, body.size());
                        EXPECT_EQ(outcome.exchanges[0].response_body.sha256, sha256_hex(body));
                        EXPECT_EQ(outcome.exchanges[0].error, "");
                    });
    // An HTTP/1.0 exchange, finished without end(): finish closes the until-close body too.
    for_every_split({client("GET / HTTP/1.0\r\n\r\n"), server("HTTP/1.0 200 OK\r\n\r\nold")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.reported_before_finish, 0u);
                        EXPECT_EQ(outcome.exchanges[0].protocol, "HTTP/1.0");
                        EXPECT_EQ(outcome.exchanges[0].authority, "");
                        EXPECT_EQ(outcome.exchanges[0].response_body.size, 3u);
                        EXPECT_EQ(outcome.exchanges[0].error, "");
                    });
}

TEST(Http1Dissector, SensitiveHeadersAreRedacted) {
    DissectorOptions options;
    options.redacted_headers.push_back("x-api-key");
    for_every_split(
        {client("GET / HTTP/1.1\r\nHost: h\r\nAUTHORIZATION: Bearer secret\r\n"
                "Cookie: session=1\r\nX-Api-Key: k\r\nAccept: */*\r\n\r\n"),
         server("HTTP/1.1 200 OK\r\nset-cookie: id=2\r\nContent-Length: 0\r\n\r\n")},
        [](const Outcome& outcome) {
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            const HttpExchange& exchange = outcome.exchanges[0];
            EXPECT_EQ(header_value(exchange.request_headers, "AUTHORIZATION"), "<redacted>");
            EXPECT_EQ(header_value(exchange.request_headers, "Cookie"), "<redacted>");
            EXPECT_EQ(header_value(exchange.request_headers, "X-Api-Key"), "<redacted>");
            EXPECT_EQ(header_value(exchange.request_headers, "Accept"), "*/*");
            EXPECT_EQ(header_value(exchange.request_headers, "Host"), "h");
            EXPECT_EQ(header_value(exchange.response_headers, "set-cookie"), "<redacted>");
            EXPECT_EQ(header_value(exchange.response_headers, "Content-Length"), "0");
        },
        options);
}

TEST(Http1Dissector, BodyCapture) {
    const std::vector<Event> events = {
        client("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"),
        server("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")};
    // Off: nothing captured, but size and hash as always.
    for_every_split(events, [](const Outcome& outcome) {
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.exchanges[0].request_body.captured, "");
        EXPECT_FALSE(outcome.exchanges[0].request_body.capture_truncated);
        EXPECT_EQ(outcome.exchanges[0].request_body.size, 11u);
        EXPECT_EQ(outcome.exchanges[0].request_body.sha256, sha256_hex("hello world"));
    });
    // On, with a limit the request body exceeds and the response body does not.
    DissectorOptions options;
    options.capture_bodies = true;
    options.body_capture_limit = 5;
    for_every_split(
        events,
        [](const Outcome& outcome) {
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.exchanges[0].request_body.captured, "hello");
            EXPECT_TRUE(outcome.exchanges[0].request_body.capture_truncated);
            EXPECT_EQ(outcome.exchanges[0].request_body.size, 11u);
            EXPECT_EQ(outcome.exchanges[0].response_body.captured, "abc");
            EXPECT_FALSE(outcome.exchanges[0].response_body.capture_truncated);
        },
        options);
}

TEST(Http1Dissector, ConnectSuccessTurnsTheRestIntoATunnel) {
    const std::string tls_bytes("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"sv);
    for_every_split(
        {client("CONNECT inner.example:443 HTTP/1.1\r\nHost: inner.example:443\r\n\r\n"),
         server("HTTP/1.1 200 Connection established\r\n\r\n"), client(tls_bytes),
         server("\x16\x03\x03 not http at all"), client_end(), server_end()},
        [](const Outcome& outcome) {
            EXPECT_EQ(outcome.failure, "");
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.reported_before_finish, 1u);
            const HttpExchange& exchange = outcome.exchanges[0];
            EXPECT_EQ(exchange.method, "CONNECT");
            EXPECT_EQ(exchange.authority, "inner.example:443");
            EXPECT_EQ(exchange.path, "");
            EXPECT_EQ(exchange.status, 200);
            EXPECT_EQ(exchange.error, "");
        });
    // A client that sends its first tunnel bytes before the answer.
    for_every_split({client("CONNECT inner.example:443 HTTP/1.1\r\n\r\n"), client(tls_bytes),
                     server("HTTP/1.1 200 OK\r\n\r\n"), server("\x16\x03\x03")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.exchanges[0].status, 200);
                    });
}

TEST(Http1Dissector, ConnectRefusedKeepsSpeakingHttp) {
    for_every_split({client("CONNECT blocked.example:443 HTTP/1.1\r\n\r\n"),
                     server("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n"
                            "Proxy-Authenticate: Basic\r\n\r\ndeny"),
                     client("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 2u);
                        EXPECT_EQ(outcome.exchanges[0].status, 407);
                        EXPECT_EQ(outcome.exchanges[0].response_body.size, 4u);
                        EXPECT_EQ(outcome.exchanges[1].path, "/");
                        EXPECT_EQ(outcome.exchanges[1].status, 200);
                    });
}

constexpr std::string_view kUpgradeRequest =
    "GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
constexpr std::string_view kSwitchingProtocols =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

std::vector<Event> websocket_conversation() {
    constexpr int kText = 1, kBinary = 2, kClose = 8, kPing = 9, kPong = 10;
    return {
        client(kUpgradeRequest),
        server(kSwitchingProtocols),
        client(client_frame(kText, "hello server")),
        server(server_frame(kText, "hello client")),
        client(client_frame(kBinary, std::string(300, '\x01'))),
        client(client_frame(kText, "frag", false) + client_frame(0, "mented", false) +
               client_frame(0, "!", true)),
        server(server_frame(kPing, "ping")),
        client(client_frame(kPong, "ping")),
        server(server_frame(kBinary, std::string(70000, 'b'), false) +
               server_frame(0, "tail", true)),
        client(client_frame(kClose, close_payload(1000, "done"))),
        server(server_frame(kClose, close_payload(1000))),
    };
}

void expect_websocket_summary(const HttpExchange& exchange) {
    EXPECT_EQ(exchange.status, 101);
    EXPECT_EQ(exchange.path, "/chat");
    EXPECT_EQ(exchange.error, "");
    ASSERT_TRUE(exchange.websocket.has_value());
    const WebSocketSummary& summary = *exchange.websocket;
    EXPECT_EQ(summary.error, "");
    EXPECT_EQ(summary.client_messages, 5u);
    EXPECT_EQ(summary.server_messages, 4u);
    EXPECT_EQ(summary.client_opcodes,
              (std::map<int, std::uint64_t>{{1, 2}, {2, 1}, {8, 1}, {10, 1}}));
    EXPECT_EQ(summary.server_opcodes,
              (std::map<int, std::uint64_t>{{1, 1}, {2, 1}, {8, 1}, {9, 1}}));
    EXPECT_EQ(summary.client_payload_bytes, 12u + 300u + 11u + 4u + 6u);
    EXPECT_EQ(summary.server_payload_bytes, 12u + 4u + 70004u + 2u);
    EXPECT_EQ(summary.close_code, 1000);
}

TEST(Http1Dissector, WebSocketUpgradeReportedAtFinish) {
    for_every_split(websocket_conversation(), [](const Outcome& outcome) {
        EXPECT_EQ(outcome.failure, "");
        ASSERT_EQ(outcome.exchanges.size(), 1u);
        EXPECT_EQ(outcome.reported_before_finish, 0u);  // held for its summary
        expect_websocket_summary(outcome.exchanges[0]);
    });
}

TEST(Http1Dissector, WebSocketUpgradeReportedWhenBothSidesEnded) {
    std::vector<Event> events = websocket_conversation();
    events.push_back(client_end());
    events.push_back(server_end());
    for_every_split(
        events,
        [](const Outcome& outcome) {
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            expect_websocket_summary(outcome.exchanges[0]);
        },
        {}, /*call_finish=*/false);
}

TEST(Http1Dissector, WebSocketFramesSentBeforeThe101AreHeld) {
    for_every_split({client(kUpgradeRequest), client(client_frame(1, "eager")),
                     server(kSwitchingProtocols), server(server_frame(1, "ok"))},
                    [](const Outcome& outcome) {
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        ASSERT_TRUE(outcome.exchanges[0].websocket.has_value());
                        EXPECT_EQ(outcome.exchanges[0].websocket->client_messages, 1u);
                        EXPECT_EQ(outcome.exchanges[0].websocket->client_payload_bytes, 5u);
                        EXPECT_EQ(outcome.exchanges[0].websocket->server_messages, 1u);
                    });
}

TEST(Http1Dissector, WebSocketFramingErrorIsNotADissectorFailure) {
    for_every_split({client(kUpgradeRequest), server(kSwitchingProtocols),
                     client(server_frame(1, "unmasked")), server(server_frame(1, "fine"))},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        ASSERT_TRUE(outcome.exchanges[0].websocket.has_value());
                        EXPECT_EQ(outcome.exchanges[0].websocket->error,
                                  "client frame: not masked");
                        EXPECT_EQ(outcome.exchanges[0].websocket->server_messages, 1u);
                    });
}

TEST(Http1Dissector, UpgradeDeclinedKeepsSpeakingHttp) {
    for_every_split(
        {client(kUpgradeRequest), client("GET /next HTTP/1.1\r\nHost: ws.example\r\n\r\n"),
         server("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"),
         server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")},
        [](const Outcome& outcome) {
            EXPECT_EQ(outcome.failure, "");
            ASSERT_EQ(outcome.exchanges.size(), 2u);
            EXPECT_EQ(outcome.exchanges[0].status, 426);
            EXPECT_FALSE(outcome.exchanges[0].websocket.has_value());
            EXPECT_EQ(outcome.exchanges[1].path, "/next");
            EXPECT_EQ(outcome.exchanges[1].sequence, 1u);
        });
}

TEST(Http1Dissector, UpgradeToAnotherProtocolIsAnOpaqueTunnel) {
    for_every_split(
        {client("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"),
         server("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                "\x00\x00\x00\x04\x00\x00\x00\x00\x00"sv),
         client("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")},
        [](const Outcome& outcome) {
            EXPECT_EQ(outcome.failure, "");
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.exchanges[0].status, 101);
            EXPECT_FALSE(outcome.exchanges[0].websocket.has_value());
            EXPECT_EQ(outcome.exchanges[0].error, "");
        });
}

TEST(Http1Dissector, SwitchingProtocolsWithoutUpgradeRequestIsAFailure) {
    for_every_split({client("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure,
                                  "101 Switching Protocols without an Upgrade request");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.exchanges[0].error, outcome.failure);
                    });
}

TEST(Http1Dissector, MalformedResponseHead) {
    for_every_split({client("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"),
                     client("GET /c HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure,
                                  "malformed response head: status code is not 3 digits");
                        // Both pending requests are reported with the failure; later bytes are
                        // ignored.
                        ASSERT_EQ(outcome.exchanges.size(), 2u);
                        EXPECT_EQ(outcome.exchanges[0].path, "/a");
                        EXPECT_EQ(outcome.exchanges[0].error, outcome.failure);
                        EXPECT_EQ(outcome.exchanges[0].status, 0);
                        EXPECT_EQ(outcome.exchanges[1].path, "/b");
                        EXPECT_EQ(outcome.exchanges[1].error, outcome.failure);
                    });
}

TEST(Http1Dissector, MalformedResponseFraming) {
    for_every_split({client("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure,
                                  "malformed response: conflicting Content-Length values");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.exchanges[0].status, 200);
                    });
}

TEST(Http1Dissector, MalformedChunkedBody) {
    for_every_split(
        {client(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n")},
        [](const Outcome& outcome) {
            EXPECT_EQ(outcome.failure, "malformed request body: chunk size is not a hex number");
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.exchanges[0].request_body.size, 3u);
            EXPECT_EQ(outcome.exchanges[0].error, outcome.failure);
        });
}

TEST(Http1Dissector, SmugglingShapedRequestIsAFailure) {
    for_every_split({client("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure,
                                  "malformed request: both Transfer-Encoding and Content-Length "
                                  "in request");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                    });
}

TEST(Http1Dissector, ResponseWithoutRequest) {
    for_every_split({server("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "response without a request");
                        EXPECT_TRUE(outcome.exchanges.empty());
                    });
    // One response too many.
    for_every_split({client("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "response without a request");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.exchanges[0].error, "");
                    });
}

TEST(Http1Dissector, GarbageInsteadOfHttp) {
    // A TLS ClientHello where plaintext HTTP was expected.
    const std::string garbage("\x16\x03\x01\x00\xf8\x01\x00\x00\xf4\x03\x03"sv);
    for_every_split({client(garbage)}, [](const Outcome& outcome) {
        EXPECT_EQ(outcome.failure.rfind("malformed request head: ", 0), 0u) << outcome.failure;
        EXPECT_TRUE(outcome.exchanges.empty());
    });
    for_every_split({client("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")},
                    [](const Outcome& outcome) { EXPECT_FALSE(outcome.failure.empty()); });
}

TEST(Http1Dissector, TruncatedBodyAtFinish) {
    for_every_split({client("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.exchanges[0].status, 200);
                        EXPECT_EQ(outcome.exchanges[0].error, "response body truncated");
                        EXPECT_EQ(outcome.exchanges[0].response_body.size, 4u);
                        EXPECT_EQ(outcome.exchanges[0].response_body.sha256, sha256_hex("1234"));
                    });
    // A truncated chunked body, ended by the server's close rather than finish.
    for_every_split(
        {client("GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
         server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"), server_end()},
        [](const Outcome& outcome) {
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.reported_before_finish, 1u);
            EXPECT_EQ(outcome.exchanges[0].error, "response body truncated");
            EXPECT_EQ(outcome.exchanges[0].response_body.size, 2u);
        });
    // A truncated request body.
    for_every_split(
        {client("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12"), client_end()},
        [](const Outcome& outcome) {
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.exchanges[0].error, "request body truncated");
            EXPECT_EQ(outcome.exchanges[0].request_body.size, 2u);
        });
}

TEST(Http1Dissector, ClosedBeforeTheResponse) {
    for_every_split({client("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 50")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 2u);
                        EXPECT_EQ(outcome.exchanges[0].error, "");
                        EXPECT_EQ(outcome.exchanges[1].error,
                                  "connection closed during the response head");
                    });
    // The server closing is enough to know no answer is coming.
    for_every_split(
        {client("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), server_end()},
        [](const Outcome& outcome) {
            ASSERT_EQ(outcome.exchanges.size(), 1u);
            EXPECT_EQ(outcome.reported_before_finish, 1u);
            EXPECT_EQ(outcome.exchanges[0].error, "connection closed before the response");
            EXPECT_FALSE(outcome.exchanges[0].response_start.has_value());
            EXPECT_EQ(outcome.exchanges[0].status, 0);
        },
        {}, /*call_finish=*/false);
}

TEST(Http1Dissector, TooManyPipelinedRequests) {
    std::string requests;
    for (std::size_t i = 0; i <= Http1Dissector::kMaxPendingRequests; ++i) {
        requests += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n";
    }
    const Outcome outcome = play({client(requests)}, Split::whole);
    EXPECT_EQ(outcome.failure, "more than 64 requests awaiting responses");
    EXPECT_EQ(outcome.exchanges.size(), Http1Dissector::kMaxPendingRequests);
}

TEST(Http1Dissector, AbsoluteFormTarget) {
    for_every_split({client("GET http://proxy.example:8080/p/a?x=y HTTP/1.1\r\n"
                            "Host: ignored.example\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        ASSERT_EQ(outcome.exchanges.size(), 1u);
                        EXPECT_EQ(outcome.exchanges[0].authority, "proxy.example:8080");
                        EXPECT_EQ(outcome.exchanges[0].path, "/p/a?x=y");
                    });
}

TEST(Http1Dissector, SchemeComesFromTheOptions) {
    DissectorOptions options;
    options.scheme = "http";
    const Outcome outcome =
        play({client(kGetIndex), server(kHelloResponse)}, Split::whole, options);
    ASSERT_EQ(outcome.exchanges.size(), 1u);
    EXPECT_EQ(outcome.exchanges[0].scheme, "http");
}

TEST(Http1Dissector, OversizedHeadIsAFailure) {
    std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
    while (head.size() <= http1::kDefaultMaxHeadBytes) {
        head += "X-Filler: " + std::string(100, 'f') + "\r\n";
    }
    for (const Split split : {Split::whole, Split::random}) {
        const Outcome outcome = play({client(head)}, split);
        EXPECT_EQ(outcome.failure.rfind("malformed request head: head exceeds", 0), 0u)
            << outcome.failure;
    }
}

TEST(Http1Dissector, LargeHeadTrickledByteByByte) {
    // Many header lines arriving one byte at a time: exercises the skipped re-parses.
    std::string head = "GET /big-head HTTP/1.1\r\nHost: h\r\n";
    for (int i = 0; i < 150; ++i) {
        head += "X-Header-" + std::to_string(i) + ": " + std::string(200, 'v') + "\r\n";
    }
    head += "\r\n";
    const Outcome outcome =
        play({client(head), server("HTTP/1.1 204 No Content\r\n\r\n")}, Split::byte_by_byte);
    EXPECT_EQ(outcome.failure, "");
    ASSERT_EQ(outcome.exchanges.size(), 1u);
    EXPECT_EQ(outcome.exchanges[0].request_headers.size(), 151u);
}

TEST(Http1Dissector, LeadingEmptyLineBeforeTheNextRequest) {
    // Some clients send an extra CRLF after a POST body.
    for_every_split({client("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx\r\n"
                            "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
                     server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")},
                    [](const Outcome& outcome) {
                        EXPECT_EQ(outcome.failure, "");
                        ASSERT_EQ(outcome.exchanges.size(), 2u);
                        EXPECT_EQ(outcome.exchanges[1].path, "/next");
                    });
}

TEST(Http1Dissector, CallsAfterFinishAreIgnored) {
    CollectingSink sink;
    const DissectorOptions options;
    Http1Dissector dissector(options, sink);
    dissector.feed(Side::client, kGetIndex, kStart);
    dissector.finish(kStart);
    ASSERT_EQ(sink.exchanges.size(), 1u);
    EXPECT_EQ(sink.exchanges[0].error, "connection closed before the response");
    dissector.feed(Side::server, kHelloResponse, kStart);
    dissector.end(Side::server, kStart);
    dissector.finish(kStart);
    EXPECT_EQ(sink.exchanges.size(), 1u);
    EXPECT_FALSE(dissector.failed());
}

// A 100 MB body streamed in 64 KiB pieces: constant memory (nothing is buffered, the capture is
// bounded) and the hash of every byte.
TEST(Http1Dissector, HundredMegabyteBody) {
    constexpr std::uint64_t kBodySize = 100ull * 1024 * 1024;
    const std::string piece(64 * 1024, 'd');
    DissectorOptions options;
    options.capture_bodies = true;
    options.body_capture_limit = 16;
    CollectingSink sink;
    Http1Dissector dissector(options, sink);
    dissector.feed(Side::client, "GET /large HTTP/1.1\r\nHost: h\r\n\r\n"sv, kStart);
    dissector.feed(Side::server,
                   "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kBodySize) + "\r\n\r\n",
                   kStart);
    EVP_MD_CTX* hash = EVP_MD_CTX_new();
    EVP_DigestInit_ex(hash, EVP_sha256(), nullptr);
    for (std::uint64_t sent = 0; sent < kBodySize; sent += piece.size()) {
        dissector.feed(Side::server, piece, kStart);
        EVP_DigestUpdate(hash, piece.data(), piece.size());
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(hash, digest, &length);
    EVP_MD_CTX_free(hash);
    ASSERT_EQ(sink.exchanges.size(), 1u);
    const BodySummary& body = sink.exchanges[0].response_body;
    EXPECT_EQ(body.size, kBodySize);
    EXPECT_EQ(body.captured, std::string(16, 'd'));
    EXPECT_TRUE(body.capture_truncated);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string expected;
    for (unsigned int i = 0; i < length; ++i) {
        expected.push_back(kHex[digest[i] >> 4]);
        expected.push_back(kHex[digest[i] & 0xf]);
    }
    EXPECT_EQ(body.sha256, expected);
}

}  // namespace
}  // namespace tlsgate::inspect
