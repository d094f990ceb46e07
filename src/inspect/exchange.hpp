#pragma once
// What a dissector reports: one HttpExchange per HTTP request/response pair (an HTTP/1.1 message
// pair, or one HTTP/2 stream). Dissectors are pure: they are fed the plaintext of both
// directions with the time it passed, never change it, and hand finished exchanges to a sink.
// Connection facts (addresses, SNI, TLS versions) are added by the caller.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "inspect/header_field.hpp"

namespace tlsgate::inspect {

using Clock = std::chrono::system_clock;

enum class Side { client, server };  // who sent the bytes

struct BodySummary {
    std::uint64_t size = 0;  // payload bytes (chunk framing removed; still content-encoded)
    std::string sha256;      // lower-case hex of those bytes; of nothing when size is 0
    std::string content_type;
    std::string content_encoding;  // as the header said ("gzip", "br"); the body is not decoded
    std::string captured;          // the first bytes, only with capture_bodies
    bool capture_truncated = false;
};

struct WebSocketSummary {
    std::uint64_t client_messages = 0;  // complete messages (fragments joined), control included
    std::uint64_t server_messages = 0;
    std::uint64_t client_payload_bytes = 0;
    std::uint64_t server_payload_bytes = 0;
    std::map<int, std::uint64_t> client_opcodes;  // opcode of each message -> count
    std::map<int, std::uint64_t> server_opcodes;
    std::optional<int> close_code;  // from the first close frame that carried one
    std::string error;              // framing error that ended WebSocket dissection
};

struct HttpExchange {
    std::string protocol;         // "HTTP/1.1", "HTTP/1.0", "HTTP/2"
    std::uint32_t stream_id = 0;  // HTTP/2 stream; 0 for HTTP/1
    std::uint64_t sequence = 0;   // 0-based position of the request on its connection
    Clock::time_point request_start{};
    std::optional<Clock::time_point> response_start;  // first byte of the (final) response
    Clock::time_point end{};  // the later of request and response end, or when abandoned
    std::string method;
    std::string scheme;              // "https" (HTTP/1 inside TLS, or :scheme), "http" for plain
    std::string authority;           // Host or :authority
    std::string path;                // request-target (origin form) or :path
    int status = 0;                  // final status; 0 when no response arrived
    std::string reason;              // HTTP/1 reason phrase
    std::vector<int> informational;  // 1xx statuses that preceded the final response
    std::vector<HeaderField> request_headers;
    std::vector<HeaderField> response_headers;
    BodySummary request_body;
    BodySummary response_body;
    std::optional<WebSocketSummary> websocket;  // after a successful Upgrade: websocket
    // Empty when the exchange completed; otherwise why not ("connection closed before the
    // response", "stream reset: CANCEL", "malformed response head: ...").
    std::string error;
};

struct DissectorOptions {
    bool capture_bodies = false;
    std::size_t body_capture_limit = 1024 * 1024;  // per body
    // Header names (lower case) whose values are replaced by "<redacted>".
    std::vector<std::string> redacted_headers = {"authorization", "proxy-authorization", "cookie",
                                                 "set-cookie"};
    std::string scheme = "https";
};

class ExchangeSink {
public:
    virtual ~ExchangeSink() = default;
    virtual void on_exchange(HttpExchange&& exchange) = 0;
};

// Fed every relayed byte, in order per side. Never throws, never blocks, keeps memory bounded
// (heads up to 64 KiB, captured bodies up to the limit). After a protocol error it stops
// dissecting (failed() is true) and later feeds are ignored; the relay carries on regardless.
class Dissector {
public:
    virtual ~Dissector() = default;
    virtual void feed(Side side, std::span<const char> bytes, Clock::time_point now) = 0;
    // That side finished sending (clean close or not).
    virtual void end(Side side, Clock::time_point now) = 0;
    // The connection is over: report what is still open, with an error saying why incomplete.
    virtual void finish(Clock::time_point now) = 0;
    bool failed() const { return !failure_.empty(); }
    const std::string& failure() const { return failure_; }

protected:
    std::string failure_;
};

}  // namespace tlsgate::inspect
