#pragma once
// WebSocket frame reader (RFC 6455, sans-io): counts the messages and payload bytes one side of an
// upgraded connection sends. It walks frame headers only; payloads are skipped, never buffered
// and never unmasked (except the two bytes of a close code), so a long-lived socket costs a few
// dozen bytes of state whatever passes through it.
#include <cstddef>
#include <cstdint>
#include <span>

#include "inspect/exchange.hpp"

namespace tlsgate::inspect {

// One instance per direction: client frames must be masked and server frames must not be.
class WebSocketFrameReader {
public:
    explicit WebSocketFrameReader(Side sender);

    // Walks the frames in `bytes` (split at any byte) and adds them to the sender's half of
    // `summary`: messages once their last fragment has fully passed, counted under the opcode of
    // their first frame (control frames count as messages of their own), every payload byte as
    // it passes, and the close code of the first close frame that carries one. A framing error is
    // written to summary.error (unless it already holds one) and ends this direction's counting.
    void feed(std::span<const char> bytes, WebSocketSummary& summary);

    bool failed() const { return failed_; }

private:
    bool check_first_two_bytes(WebSocketSummary& summary);
    bool start_payload(WebSocketSummary& summary);
    void end_frame(WebSocketSummary& summary);
    void fail(WebSocketSummary& summary, const char* what);

    Side sender_;
    bool failed_ = false;

    // The frame header as it arrives: 2 bytes, then up to 8 of extended length and 4 of mask.
    static constexpr std::size_t kMaxHeaderBytes = 14;
    std::uint8_t header_[kMaxHeaderBytes]{};
    std::size_t header_filled_ = 0;
    std::size_t header_needed_ = 2;
    bool in_payload_ = false;

    // The frame whose payload is passing.
    int opcode_ = 0;
    bool final_fragment_ = false;
    std::uint64_t payload_remaining_ = 0;
    std::uint64_t payload_offset_ = 0;  // payload bytes of this frame already seen
    std::uint8_t mask_key_[4]{};
    bool masked_ = false;
    std::uint8_t close_code_bytes_[2]{};

    // A data message split over several frames: the opcode of its first frame.
    bool in_fragmented_message_ = false;
    int message_opcode_ = 0;
};

}  // namespace tlsgate::inspect
