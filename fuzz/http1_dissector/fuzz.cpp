// Fuzz target for the HTTP/1.x dissector (and the WebSocket frame reader behind it). Beyond "no
// crash, no UB, no leak" it checks what the record consumers rely on: exchanges arrive in
// request order, nothing is reported after a failure, captures respect their limit, and (when
// neither run failed) the same conversation gives the same exchanges however it is cut.
//
// Input layout: byte 0 is the plan (bit 0: capture on; the rest seeds the piece sizes, 0 meaning
// whole segments). The rest is a conversation: segments separated by kSeparator, alternately
// client->server and server->client (starting with the client). An empty segment means that side
// ended (end()); finish() always comes last.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "inspect/http1_dissector.hpp"

namespace {

namespace inspect = tlsgate::inspect;

constexpr std::string_view kSeparator = "\xff\xfe";

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "http1_dissector fuzz: %s\n", what);
        std::abort();
    }
}

struct Segment {
    inspect::Side side;
    std::string_view bytes;  // empty: the side ended
};

std::vector<Segment> segments_of(std::string_view conversation) {
    std::vector<Segment> segments;
    bool client_turn = true;
    while (true) {
        const std::size_t separator = conversation.find(kSeparator);
        segments.push_back({client_turn ? inspect::Side::client : inspect::Side::server,
                            conversation.substr(0, separator)});
        if (separator == std::string_view::npos) {
            return segments;
        }
        conversation.remove_prefix(separator + kSeparator.size());
        client_turn = !client_turn;
    }
}

class CheckingSink final : public inspect::ExchangeSink {
public:
    explicit CheckingSink(const inspect::DissectorOptions& options) : options_(options) {}

    void on_exchange(inspect::HttpExchange&& exchange) override {
        require(exchanges.empty() || exchange.sequence > exchanges.back().sequence,
                "exchanges out of request order");
        for (const inspect::BodySummary* body : {&exchange.request_body, &exchange.response_body}) {
            const std::size_t limit = options_.capture_bodies ? options_.body_capture_limit : 0;
            require(body->captured.size() <= limit, "capture over its limit");
            require(body->captured.size() <= body->size, "captured more than the body");
            require(!body->capture_truncated || body->size > body->captured.size(),
                    "truncated capture of a body that fit");
            require(body->sha256.empty() || body->sha256.size() == 64, "bad hash length");
        }
        require(!exchange.websocket || exchange.status == 101, "websocket without a 101");
        require(exchange.status == 0 || (exchange.status >= 100 && exchange.status <= 999),
                "status out of range");
        require(!exchange.protocol.empty() && !exchange.method.empty(), "exchange without request");
        exchanges.push_back(std::move(exchange));
    }

    std::vector<inspect::HttpExchange> exchanges;

private:
    inspect::DissectorOptions options_;
};

struct RunResult {
    std::vector<inspect::HttpExchange> exchanges;
    bool failed = false;
};

// Plays the conversation; with a non-zero seed each segment is cut into pieces of 1..32 bytes.
RunResult play(const std::vector<Segment>& segments, const inspect::DissectorOptions& options,
               std::uint32_t seed) {
    CheckingSink sink(options);
    inspect::Http1Dissector dissector(options, sink);
    const auto start = inspect::Clock::time_point{};
    std::uint32_t random = seed;
    std::size_t reported_at_failure = 0;
    bool seen_failure = false;
    auto check_failure_is_final = [&] {
        if (seen_failure) {
            require(sink.exchanges.size() == reported_at_failure, "reported after the failure");
            require(dissector.failed(), "failure went away");
        } else if (dissector.failed()) {
            seen_failure = true;
            reported_at_failure = sink.exchanges.size();
            require(!dissector.failure().empty(), "failed without a reason");
        }
    };
    std::int64_t tick = 0;
    for (const Segment& segment : segments) {
        const auto now = start + std::chrono::milliseconds(++tick);
        if (segment.bytes.empty()) {
            dissector.end(segment.side, now);
            check_failure_is_final();
            continue;
        }
        std::size_t position = 0;
        while (position < segment.bytes.size()) {
            std::size_t piece = segment.bytes.size() - position;
            if (seed != 0) {
                random = random * 1103515245u + 12345u;
                piece = std::min<std::size_t>(piece, (random >> 16) % 32 + 1);
            }
            dissector.feed(segment.side,
                           std::span<const char>(segment.bytes.data() + position, piece), now);
            position += piece;
            check_failure_is_final();
        }
    }
    dissector.finish(start + std::chrono::milliseconds(++tick));
    check_failure_is_final();
    // finish() reports everything: later calls change nothing.
    const std::size_t reported = sink.exchanges.size();
    dissector.feed(inspect::Side::client, std::span<const char>("GET / HTTP/1.1\r\n\r\n", 18),
                   start);
    dissector.finish(start);
    require(sink.exchanges.size() == reported, "reported after finish");
    return {std::move(sink.exchanges), dissector.failed()};
}

bool same_body(const inspect::BodySummary& a, const inspect::BodySummary& b) {
    return a.size == b.size && a.sha256 == b.sha256 && a.content_type == b.content_type &&
           a.content_encoding == b.content_encoding && a.captured == b.captured &&
           a.capture_truncated == b.capture_truncated;
}

bool same_websocket(const std::optional<inspect::WebSocketSummary>& a,
                    const std::optional<inspect::WebSocketSummary>& b) {
    if (a.has_value() != b.has_value()) {
        return false;
    }
    if (!a) {
        return true;
    }
    return a->client_messages == b->client_messages && a->server_messages == b->server_messages &&
           a->client_payload_bytes == b->client_payload_bytes &&
           a->server_payload_bytes == b->server_payload_bytes &&
           a->client_opcodes == b->client_opcodes && a->server_opcodes == b->server_opcodes &&
           a->close_code == b->close_code && a->error == b->error;
}

// Everything but the times, which depend on how the bytes were cut.
bool same_exchange(const inspect::HttpExchange& a, const inspect::HttpExchange& b) {
    auto same_headers = [](const std::vector<inspect::HeaderField>& x,
                           const std::vector<inspect::HeaderField>& y) {
        if (x.size() != y.size()) {
            return false;
        }
        for (std::size_t i = 0; i < x.size(); ++i) {
            if (x[i].name != y[i].name || x[i].value != y[i].value) {
                return false;
            }
        }
        return true;
    };
    return a.protocol == b.protocol && a.sequence == b.sequence && a.method == b.method &&
           a.scheme == b.scheme && a.authority == b.authority && a.path == b.path &&
           a.status == b.status && a.reason == b.reason && a.informational == b.informational &&
           a.response_start.has_value() == b.response_start.has_value() &&
           same_headers(a.request_headers, b.request_headers) &&
           same_headers(a.response_headers, b.response_headers) &&
           same_body(a.request_body, b.request_body) &&
           same_body(a.response_body, b.response_body) &&
           same_websocket(a.websocket, b.websocket) && a.error == b.error;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const std::uint8_t plan = data[0];
    const std::string_view conversation(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::vector<Segment> segments = segments_of(conversation);

    inspect::DissectorOptions options;
    options.capture_bodies = (plan & 1) != 0;
    options.body_capture_limit = 1 + (plan >> 1) % 16;
    options.redacted_headers.push_back("x-secret");

    const RunResult whole = play(segments, options, 0);
    const std::uint32_t seed = plan >> 1;
    if (seed == 0) {
        return 0;
    }
    const RunResult pieces = play(segments, options, seed);
    require(whole.failed == pieces.failed, "failure depends on how the stream is cut");
    if (!whole.failed) {
        require(whole.exchanges.size() == pieces.exchanges.size(),
                "exchange count depends on how the stream is cut");
        for (std::size_t i = 0; i < whole.exchanges.size(); ++i) {
            require(same_exchange(whole.exchanges[i], pieces.exchanges[i]),
                    "exchange depends on how the stream is cut");
        }
    }
    return 0;
}
