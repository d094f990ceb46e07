#pragma once
// Builds RFC 6455 frames for the WebSocket and HTTP/1 dissector tests (and their fuzz seeds).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tlsgate::testing {

enum class LengthForm { shortest, force_16bit, force_64bit };

// The masking key of RFC 6455 section 5.7's examples.
inline constexpr std::array<std::uint8_t, 4> kExampleMaskKey = {0x37, 0xfa, 0x21, 0x3d};

inline std::string websocket_frame(int opcode, std::string_view payload, bool final_fragment,
                                   bool masked, LengthForm form = LengthForm::shortest,
                                   std::array<std::uint8_t, 4> key = kExampleMaskKey) {
    std::string frame;
    frame.push_back(static_cast<char>((final_fragment ? 0x80 : 0x00) | (opcode & 0x0f)));
    const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
    const std::uint64_t size = payload.size();
    if (form == LengthForm::shortest && size <= 125) {
        frame.push_back(static_cast<char>(mask_bit | size));
    } else if (form != LengthForm::force_64bit && size <= 0xffff) {
        frame.push_back(static_cast<char>(mask_bit | 126));
        frame.push_back(static_cast<char>(size >> 8));
        frame.push_back(static_cast<char>(size & 0xff));
    } else {
        frame.push_back(static_cast<char>(mask_bit | 127));
        for (int shift = 56; shift >= 0; shift -= 8) {
            frame.push_back(static_cast<char>((size >> shift) & 0xff));
        }
    }
    if (masked) {
        for (const std::uint8_t byte : key) {
            frame.push_back(static_cast<char>(byte));
        }
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        const std::uint8_t key_byte = masked ? key[i % 4] : 0;
        frame.push_back(static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ key_byte));
    }
    return frame;
}

// Client frames are masked, server frames are not.
inline std::string client_frame(int opcode, std::string_view payload, bool final_fragment = true,
                                LengthForm form = LengthForm::shortest) {
    return websocket_frame(opcode, payload, final_fragment, true, form);
}
inline std::string server_frame(int opcode, std::string_view payload, bool final_fragment = true,
                                LengthForm form = LengthForm::shortest) {
    return websocket_frame(opcode, payload, final_fragment, false, form);
}

// A close frame's payload: the status code in network order, then an optional reason.
inline std::string close_payload(int code, std::string_view reason = {}) {
    std::string payload;
    payload.push_back(static_cast<char>((code >> 8) & 0xff));
    payload.push_back(static_cast<char>(code & 0xff));
    payload.append(reason);
    return payload;
}

}  // namespace tlsgate::testing
