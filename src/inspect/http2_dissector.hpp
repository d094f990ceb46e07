#pragma once
// HTTP/2 dissector (RFC 9113), sans-io: fed the plaintext of both directions, it reports one
// HttpExchange per stream. It parses frames itself and uses only libnghttp2's HPACK inflater,
// never its session API: a session would want to speak the protocol, and we only watch it.
//
// What is kept in memory: one frame header per direction, each direction's header block while
// it is assembled (up to kMaxHeaderBlockBytes), the HPACK tables, and the open streams (up to
// kMaxTrackedStreams, each with its decoded heads and captured body prefixes). DATA payloads are
// streamed into BodyRecorders; a stream is reported and freed as soon as it is closed both ways
// or reset.
//
// Choices the record format leaves open:
//  - Pseudo-headers with a field of their own (:method, :scheme, :authority, :path, :status) are
//    not repeated in the header lists; others (:protocol) are kept there.
//  - Trailers are appended to the request or response header list.
//  - Only the statuses of 1xx responses are kept (HttpExchange::informational), not their fields.
//  - PUSH_PROMISE opens a pushed exchange: the promised request, with its response from the
//    pushed stream.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "inspect/exchange.hpp"

namespace tlsgate::inspect {

// What an HTTP/2 client sends first, before its SETTINGS frame.
inline constexpr std::string_view kHttp2ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class PrefaceMatch {
    need_more,  // every byte so far matches, but the preface is not complete
    http2,      // the bytes start with the whole preface
    not_http2,  // a byte differs: this is not HTTP/2 with prior knowledge
};

// For a cleartext or ALPN-less connection: whether the client's first bytes are the HTTP/2
// connection preface, so the caller can pick this dissector rather than the HTTP/1 one.
PrefaceMatch starts_with_http2_preface(std::span<const char> first_client_bytes);

class Http2Dissector final : public Dissector {
public:
    // A header block (HEADERS or PUSH_PROMISE plus its CONTINUATIONs) as received, and the same
    // block decoded (name + value + 32 per field, RFC 9113 section 6.5.2): larger is a failure.
    static constexpr std::size_t kMaxHeaderBlockBytes = 256 * 1024;
    static constexpr std::size_t kMaxDecodedHeaderBytes = 256 * 1024;
    // Streams opened and not yet reported; one more is a failure.
    static constexpr std::size_t kMaxTrackedStreams = 1000;
    // The HPACK dynamic table we agree to keep per direction, whatever the peer advertises: an
    // encoder that makes use of more makes decoding fail rather than memory grow.
    static constexpr std::size_t kMaxHeaderTableSize = 1024 * 1024;
    // SETTINGS frames sent and not yet acknowledged by the other side.
    static constexpr std::size_t kMaxUnacknowledgedSettings = 64;
    // 1xx statuses kept per exchange; further ones are dropped.
    static constexpr std::size_t kMaxInformational = 16;

    // `options` and `sink` must outlive the dissector.
    Http2Dissector(const DissectorOptions& options, ExchangeSink& sink);
    Http2Dissector(DissectorOptions&& options, ExchangeSink& sink) = delete;
    ~Http2Dissector() override;
    Http2Dissector(const Http2Dissector&) = delete;
    Http2Dissector& operator=(const Http2Dissector&) = delete;

    // Side::client: the connection preface, then frames. Side::server: frames. Any split, any
    // interleaving that respects causality (a response is fed after its request; a side's
    // SETTINGS before the HEADERS of the other side that rely on them).
    void feed(Side side, std::span<const char> bytes, Clock::time_point now) override;
    // Nothing to do: an end of stream mid-frame or mid-exchange is reported by finish().
    void end(Side side, Clock::time_point now) override;
    // Reports every open stream with an error saying what was missing. Later feeds are ignored.
    void finish(Clock::time_point now) override;

    std::size_t open_streams() const { return streams_.size(); }

private:
    struct Direction;
    struct Stream;
    struct FieldList;
    using StreamMap = std::map<std::uint32_t, std::unique_ptr<Stream>>;

    void consume(Direction& from, std::span<const char> bytes);
    void begin_frame(Direction& from);
    void begin_content(Direction& from);
    void after_content(Direction& from);
    void end_frame(Direction& from);
    void take_content(Direction& from, std::span<const char> chunk);
    void take_settings_bytes(Direction& from, std::span<const char> chunk);

    void on_settings(Direction& sender);
    void on_settings_ack(Direction& acknowledger);
    void refresh_limits(Direction& encoder);
    void complete_header_block(Direction& from);
    bool inflate(Direction& from, FieldList& fields);
    void on_request_head(FieldList& fields, Direction& from);
    void on_response_head(FieldList& fields, Direction& from);
    void on_push_promise(FieldList& fields, Direction& from);
    void on_reset(std::uint32_t stream_id, std::uint32_t error_code);
    void on_goaway(Direction& sender, std::uint32_t last_stream_id);

    Stream* open_stream(std::uint32_t stream_id, Clock::time_point request_start);
    void fill_request(Stream& stream, FieldList& fields);
    void end_side(std::uint32_t stream_id, Side side);
    void emit(StreamMap::iterator position, std::string error);
    // Emits, in the order they were opened, the streams `select` picks.
    template <typename Select>
    void emit_in_order(Select select, const std::string& error);
    void fail(std::string reason);
    Direction& other(const Direction& direction);

    const DissectorOptions& options_;  // the caller's, shared by many dissectors
    ExchangeSink& sink_;
    std::size_t capture_limit_ = 0;
    std::unique_ptr<Direction> client_;
    std::unique_ptr<Direction> server_;
    StreamMap streams_;
    std::uint64_t next_sequence_ = 0;
    std::uint32_t last_client_stream_ = 0;
    std::uint32_t last_promised_stream_ = 0;
    Clock::time_point now_{};  // of the call being handled
    bool finished_ = false;
};

}  // namespace tlsgate::inspect
