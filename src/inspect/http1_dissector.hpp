#pragma once
// HTTP/1.x dissector: turns the plaintext of one connection (both directions, cut anywhere and
// interleaved however the relay saw them) into HttpExchange records. It only observes: it never
// holds bytes back from the relay and never changes them. Heads are buffered until complete
// (at most http1::kDefaultMaxHeadBytes each); bodies stream through http1::BodyReader into a
// BodyRecorder, so a body of any size costs constant memory.
//
// Covers keep-alive and pipelining, Content-Length, chunked and until-close bodies, 1xx interim
// responses, HEAD, 204/304, CONNECT (a 2xx answer makes the rest an opaque tunnel: the exchange
// is reported and dissection stops, which is not a failure) and Upgrade: websocket (after the
// 101 both directions go to WebSocketFrameReader; the upgrade exchange is reported with its
// WebSocketSummary once both sides have ended or the connection finishes).
#include <cstddef>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "inspect/body_recorder.hpp"
#include "inspect/exchange.hpp"
#include "inspect/http1.hpp"
#include "inspect/websocket.hpp"

namespace tlsgate::inspect {

class Http1Dissector final : public Dissector {
public:
    // Requests that may await their responses at once (pipelining); one more is a failure, so a
    // client cannot make the dissector hold an unbounded queue.
    static constexpr std::size_t kMaxPendingRequests = 64;
    // Bytes a client may send after a CONNECT or Upgrade request before the answer says whether
    // the connection switched protocols; they are held to be read as whichever protocol won.
    static constexpr std::size_t kMaxHeldClientBytes = http1::kDefaultMaxHeadBytes;

    // `options` and `sink` must outlive the dissector.
    Http1Dissector(const DissectorOptions& options, ExchangeSink& sink);
    Http1Dissector(DissectorOptions&& options, ExchangeSink& sink) = delete;

    void feed(Side side, std::span<const char> bytes, Clock::time_point now) override;
    void end(Side side, Clock::time_point now) override;
    void finish(Clock::time_point now) override;

private:
    // Whether the request asked to leave HTTP/1 (CONNECT, Upgrade) and what the answer said.
    enum class Switch { not_asked, undecided, declined, websocket };

    struct PendingExchange {
        HttpExchange record;
        bool request_complete = false;
        bool response_complete = false;
        Switch protocol_switch = Switch::not_asked;
        bool websocket_requested = false;
        Clock::time_point request_end{};
        Clock::time_point response_end{};
    };

    // A head's bytes gathered across feeds, and enough about them to skip parses whose verdict
    // cannot have changed (so a head trickled in byte by byte costs linear time).
    struct HeadBuffer {
        std::string bytes;
        bool first_line_checked = false;
        Clock::time_point started{};  // when its first byte arrived
    };

    // Hands a body's payload to the recorder: one virtual call per contiguous piece.
    class RecordingSink final : public http1::BodySink {
    public:
        void on_body_data(std::span<const char> data) override { recorder.add(data); }
        BodyRecorder recorder;
    };

    enum class Phase { head, body, awaiting_switch, websocket, ended };

    struct Direction {
        explicit Direction(Side side) : websocket(side) {}
        Phase phase = Phase::head;
        HeadBuffer head;
        std::optional<http1::BodyReader> body;
        RecordingSink sink;
        WebSocketFrameReader websocket;
        bool ended = false;
    };

    void feed_client(std::string_view input, Clock::time_point now);
    void feed_server(std::string_view input, Clock::time_point now);
    std::string_view take_request_head(std::string_view input, Clock::time_point now);
    std::string_view take_response_head(std::string_view input, Clock::time_point now);
    std::string_view take_request_body(std::string_view input, Clock::time_point now);
    std::string_view take_response_body(std::string_view input, Clock::time_point now);
    void start_request(http1::RequestHead&& head, Clock::time_point now);
    void start_response(http1::ResponseHead&& head, Clock::time_point now);
    void switch_protocols(PendingExchange& exchange, http1::ResponseHead&& head,
                          Clock::time_point now);
    void complete_request(Clock::time_point now);
    void complete_response(Clock::time_point now);
    void abandon_request_body(std::string_view why, Clock::time_point now);
    void abandon_response_body(std::string_view why, Clock::time_point now);
    void enter_client_websocket();
    void resume_client_after_declined_switch();
    void open_tunnel(PendingExchange& exchange, Clock::time_point now);
    void emit_completed();
    void emit(PendingExchange& exchange, Clock::time_point end);
    void fail(std::string reason, Clock::time_point now);
    void judge_partial_heads(Clock::time_point now);
    PendingExchange& pending_at(std::size_t index);
    PendingExchange* awaiting_response();
    PendingExchange* websocket_exchange();

    const DissectorOptions& options_;  // the caller's, shared by many dissectors
    ExchangeSink& sink_;
    std::size_t capture_limit_ = 0;
    // Requests in arrival order until reported. The first `responded_` of them have their
    // response complete (responses come in request order); the one being read by the client
    // side, if any, is the last.
    // A list, not a deque: an empty libstdc++ deque still holds a node (here one 850-byte
    // exchange) and its map, which every idle keep-alive connection would carry.
    std::list<PendingExchange> pending_;
    std::size_t responded_ = 0;
    std::uint64_t next_sequence_ = 0;
    Direction client_{Side::client};
    Direction server_{Side::server};
    // Client bytes that arrived while a protocol switch was undecided.
    std::string held_client_bytes_;
    Clock::time_point held_since_{};
    // Dissection is over: failure, tunnel or finish. Later calls do nothing.
    bool stopped_ = false;
};

}  // namespace tlsgate::inspect
