#include "inspect/websocket.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace tlsgate::inspect {
namespace {

constexpr std::uint8_t kFinalFragmentBit = 0x80;
constexpr std::uint8_t kOpcodeBits = 0x0f;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kLengthBits = 0x7f;
constexpr std::uint8_t kLength16 = 126;  // a 16-bit length follows
constexpr std::uint8_t kLength64 = 127;  // a 64-bit length follows
constexpr std::size_t kBaseHeaderBytes = 2;
constexpr std::size_t kMaskKeyBytes = 4;
constexpr std::uint64_t kMaxControlPayload = 125;

constexpr int kOpcodeContinuation = 0x0;
constexpr int kOpcodeText = 0x1;
constexpr int kOpcodeBinary = 0x2;
constexpr int kOpcodeClose = 0x8;
constexpr int kOpcodePing = 0x9;
constexpr int kOpcodePong = 0xa;

constexpr bool is_control(int opcode) {
    return (opcode & 0x8) != 0;
}

constexpr bool is_defined(int opcode) {
    switch (opcode) {
        case kOpcodeContinuation:
        case kOpcodeText:
        case kOpcodeBinary:
        case kOpcodeClose:
        case kOpcodePing:
        case kOpcodePong:
            return true;
        default:
            return false;
    }
}

// The sender's half of the summary.
struct Counters {
    std::uint64_t& messages;
    std::uint64_t& payload_bytes;
    std::map<int, std::uint64_t>& opcodes;
};

Counters counters_of(Side sender, WebSocketSummary& summary) {
    if (sender == Side::client) {
        return {summary.client_messages, summary.client_payload_bytes, summary.client_opcodes};
    }
    return {summary.server_messages, summary.server_payload_bytes, summary.server_opcodes};
}

}  // namespace

WebSocketFrameReader::WebSocketFrameReader(Side sender) : sender_(sender) {}

void WebSocketFrameReader::fail(WebSocketSummary& summary, const char* what) {
    failed_ = true;
    if (summary.error.empty()) {
        summary.error =
            std::string(sender_ == Side::client ? "client" : "server") + " frame: " + what;
    }
}

// Everything that can be judged from the first two bytes is judged there, so a stream that is
// not WebSocket at all stops at its first frame rather than after a bogus 64-bit length.
bool WebSocketFrameReader::check_first_two_bytes(WebSocketSummary& summary) {
    const int opcode = header_[0] & kOpcodeBits;
    const bool final_fragment = (header_[0] & kFinalFragmentBit) != 0;
    const bool masked = (header_[1] & kMaskBit) != 0;
    const std::uint8_t length_code = header_[1] & kLengthBits;
    // The RSV bits are not checked: extensions such as permessage-deflate set them, and the
    // extensions in force were negotiated in headers this reader does not see.
    if (!is_defined(opcode)) {
        fail(summary, "reserved opcode");
        return false;
    }
    if (sender_ == Side::client && !masked) {
        fail(summary, "not masked");
        return false;
    }
    if (sender_ == Side::server && masked) {
        fail(summary, "masked");
        return false;
    }
    if (is_control(opcode)) {
        if (!final_fragment) {
            fail(summary, "fragmented control frame");
            return false;
        }
        if (length_code > kMaxControlPayload) {
            fail(summary, "control frame payload over 125 bytes");
            return false;
        }
        if (opcode == kOpcodeClose && length_code == 1) {
            fail(summary, "close frame with a 1-byte payload");
            return false;
        }
    } else if (opcode == kOpcodeContinuation) {
        if (!in_fragmented_message_) {
            fail(summary, "continuation frame without a message to continue");
            return false;
        }
    } else if (in_fragmented_message_) {
        fail(summary, "new message before the fragmented one ended");
        return false;
    }
    std::size_t extended_length_bytes = 0;
    if (length_code == kLength16) {
        extended_length_bytes = 2;
    } else if (length_code == kLength64) {
        extended_length_bytes = 8;
    }
    header_needed_ = kBaseHeaderBytes + extended_length_bytes + (masked ? kMaskKeyBytes : 0);
    return true;
}

bool WebSocketFrameReader::start_payload(WebSocketSummary& summary) {
    opcode_ = header_[0] & kOpcodeBits;
    final_fragment_ = (header_[0] & kFinalFragmentBit) != 0;
    masked_ = (header_[1] & kMaskBit) != 0;
    const std::uint8_t length_code = header_[1] & kLengthBits;
    std::size_t position = kBaseHeaderBytes;
    std::uint64_t length = length_code;
    if (length_code == kLength16 || length_code == kLength64) {
        const std::size_t bytes = length_code == kLength16 ? 2 : 8;
        length = 0;
        for (std::size_t i = 0; i < bytes; ++i) {
            length = (length << 8) | header_[position + i];
        }
        position += bytes;
        if (bytes == 8 && (length >> 63) != 0) {
            fail(summary, "64-bit payload length with the top bit set");
            return false;
        }
    }
    if (masked_) {
        std::memcpy(mask_key_, header_ + position, kMaskKeyBytes);
    }
    if (opcode_ != kOpcodeContinuation && !is_control(opcode_)) {
        message_opcode_ = opcode_;
        in_fragmented_message_ = !final_fragment_;
    }
    payload_remaining_ = length;
    payload_offset_ = 0;
    in_payload_ = true;
    return true;
}

void WebSocketFrameReader::end_frame(WebSocketSummary& summary) {
    const Counters counters = counters_of(sender_, summary);
    if (is_control(opcode_)) {
        ++counters.messages;
        ++counters.opcodes[opcode_];
        if (opcode_ == kOpcodeClose && payload_offset_ >= 2 && !summary.close_code) {
            summary.close_code = (close_code_bytes_[0] << 8) | close_code_bytes_[1];
        }
    } else if (final_fragment_) {
        ++counters.messages;
        ++counters.opcodes[message_opcode_];
        in_fragmented_message_ = false;
    }
    in_payload_ = false;
    header_filled_ = 0;
    header_needed_ = kBaseHeaderBytes;
}

void WebSocketFrameReader::feed(std::span<const char> bytes, WebSocketSummary& summary) {
    const char* data = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0 && !failed_) {
        if (!in_payload_) {
            const std::size_t take = std::min(header_needed_ - header_filled_, left);
            std::memcpy(header_ + header_filled_, data, take);
            header_filled_ += take;
            data += take;
            left -= take;
            if (header_filled_ < header_needed_) {
                return;
            }
            if (header_filled_ == kBaseHeaderBytes && !check_first_two_bytes(summary)) {
                return;
            }
            if (header_filled_ < header_needed_) {
                continue;  // extended length and mask key still to come
            }
            if (!start_payload(summary)) {
                return;
            }
            if (payload_remaining_ == 0) {
                end_frame(summary);
            }
            continue;
        }
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(payload_remaining_, left));
        if (opcode_ == kOpcodeClose && payload_offset_ < 2) {
            const std::size_t code_bytes = std::min<std::size_t>(2 - payload_offset_, take);
            for (std::size_t i = 0; i < code_bytes; ++i) {
                const std::size_t offset = static_cast<std::size_t>(payload_offset_) + i;
                const std::uint8_t key = masked_ ? mask_key_[offset % kMaskKeyBytes] : 0;
                close_code_bytes_[offset] = static_cast<std::uint8_t>(data[i]) ^ key;
            }
        }
        counters_of(sender_, summary).payload_bytes += take;
        payload_remaining_ -= take;
        payload_offset_ += take;
        data += take;
        left -= take;
        if (payload_remaining_ == 0) {
            end_frame(summary);
        }
    }
}

}  // namespace tlsgate::inspect
