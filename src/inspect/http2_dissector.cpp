#include "inspect/http2_dissector.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <optional>
#include <utility>

#include "inspect/body_recorder.hpp"

namespace tlsgate::inspect {
namespace {

// RFC 9113 section 6.
enum FrameType : std::uint8_t {
    kData = 0x0,
    kHeaders = 0x1,
    kPriority = 0x2,
    kRstStream = 0x3,
    kSettings = 0x4,
    kPushPromise = 0x5,
    kPing = 0x6,
    kGoaway = 0x7,
    kWindowUpdate = 0x8,
    kContinuation = 0x9,
};

constexpr std::uint8_t kFlagEndStream = 0x1;
constexpr std::uint8_t kFlagAck = 0x1;
constexpr std::uint8_t kFlagEndHeaders = 0x4;
constexpr std::uint8_t kFlagPadded = 0x8;
constexpr std::uint8_t kFlagPriority = 0x20;

constexpr std::uint16_t kSettingHeaderTableSize = 0x1;
constexpr std::uint16_t kSettingMaxFrameSize = 0x5;

constexpr std::size_t kFrameHeaderBytes = 9;
constexpr std::uint32_t kDefaultMaxFrameSize = 16384;
constexpr std::uint32_t kLargestMaxFrameSize = (1u << 24) - 1;
constexpr std::uint32_t kDefaultHeaderTableSize = 4096;
constexpr std::uint32_t kStreamIdMask = 0x7fffffff;

std::uint32_t read_u32(const unsigned char* bytes) {
    return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
           (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

std::string error_code_name(std::uint32_t code) {
    static constexpr const char* kNames[] = {
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    };
    if (code < std::size(kNames)) {
        return kNames[code];
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string name = "0x";
    bool leading = true;
    for (int shift = 28; shift >= 0; shift -= 4) {
        const unsigned digit = (code >> shift) & 0xf;
        if (leading && digit == 0 && shift > 0) {
            continue;
        }
        leading = false;
        name += kHex[digit];
    }
    return name;
}

bool equals_lower_case(std::string_view text, std::string_view lower) {
    if (text.size() != lower.size()) {
        return false;
    }
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (c != lower[i]) {
            return false;
        }
    }
    return true;
}

// ":status" is three digits (RFC 9113 section 8.3.2); anything else reads as 0.
int parse_status(std::string_view text) {
    if (text.size() != 3) {
        return 0;
    }
    int status = 0;
    for (const char c : text) {
        if (c < '0' || c > '9') {
            return 0;
        }
        status = status * 10 + (c - '0');
    }
    return status;
}

struct InflaterDeleter {
    void operator()(nghttp2_hd_inflater* inflater) const { nghttp2_hd_inflate_del(inflater); }
};

// The two settings that change how the other side's frames must be read. A SETTINGS frame
// binds its sender's peer once the peer has acknowledged it.
struct SettingsChange {
    std::optional<std::uint32_t> header_table_size;
    std::optional<std::uint32_t> max_frame_size;
};

}  // namespace

struct Http2Dissector::FieldList {
    std::vector<HeaderField> fields;  // as decoded: not redacted yet
    std::size_t decoded_bytes = 0;

    std::string_view find(std::string_view name) const {
        for (const auto& field : fields) {
            if (field.name == name) {
                return field.value;
            }
        }
        return {};
    }
};

struct Http2Dissector::Stream {
    HttpExchange exchange;
    BodyRecorder request_body;
    BodyRecorder response_body;
    bool request_ended = false;   // END_STREAM from the client (or a promised request)
    bool response_ended = false;  // END_STREAM from the server
    bool final_response = false;  // a HEADERS block with a non-1xx status arrived
};

// One direction of the connection: the frames one side sends, and how to read them.
struct Http2Dissector::Direction {
    enum class State { preface, frame_header, prefix, content, padding };

    explicit Direction(Side sender) : side(sender) {}

    Side side;
    State state = State::frame_header;
    std::size_t preface_matched = 0;
    bool saw_first_frame = false;

    // The frame being read.
    std::array<unsigned char, kFrameHeaderBytes> header_bytes{};
    std::size_t header_filled = 0;
    Clock::time_point frame_start{};
    std::uint32_t length = 0;
    std::uint8_t type = 0;
    std::uint8_t flags = 0;
    std::uint32_t stream_id = 0;
    // Pad Length, priority fields and Promised Stream ID come before a frame's content.
    std::array<unsigned char, 6> prefix{};
    std::size_t prefix_size = 0;
    std::size_t prefix_filled = 0;
    std::uint32_t content_remaining = 0;
    std::uint32_t padding_remaining = 0;
    // The start of a RST_STREAM or GOAWAY payload (GOAWAY debug data is skipped).
    std::array<unsigned char, 8> control{};
    std::size_t control_filled = 0;
    // A SETTINGS frame's parameters, one 6-byte entry at a time.
    std::array<unsigned char, 6> setting{};
    std::size_t setting_filled = 0;
    SettingsChange settings_in_frame;

    // The header block being assembled.
    bool expecting_continuation = false;
    std::string block;
    std::uint32_t block_stream = 0;
    std::uint32_t promised_stream = 0;
    bool block_is_push = false;
    bool block_ends_stream = false;
    Clock::time_point block_start{};

    // How to read what this side sends, as the other side's SETTINGS say. Values count once
    // this side acknowledges them; until then the larger of old and new is accepted, since a
    // frame may be in flight either way.
    std::unique_ptr<nghttp2_hd_inflater, InflaterDeleter> inflater;
    std::uint32_t acked_max_frame_size = kDefaultMaxFrameSize;
    std::uint32_t acked_header_table_size = kDefaultHeaderTableSize;
    std::deque<SettingsChange> unacknowledged;
    // Acknowledgements fed before the SETTINGS they answer (the caller fed this side first).
    std::size_t early_acks = 0;
    std::uint32_t max_frame_size = kDefaultMaxFrameSize;
    std::size_t header_table_size = kDefaultHeaderTableSize;

    // Set once this side sent GOAWAY: streams the other side opens above it are refused.
    std::optional<std::uint32_t> goaway_last_stream;
};

PrefaceMatch starts_with_http2_preface(std::span<const char> first_client_bytes) {
    const std::size_t compared = std::min(first_client_bytes.size(), kHttp2ClientPreface.size());
    if (compared == 0) {
        return PrefaceMatch::need_more;  // an empty span may have no data() for memcmp
    }
    if (std::memcmp(first_client_bytes.data(), kHttp2ClientPreface.data(), compared) != 0) {
        return PrefaceMatch::not_http2;
    }
    return compared == kHttp2ClientPreface.size() ? PrefaceMatch::http2 : PrefaceMatch::need_more;
}

Http2Dissector::Http2Dissector(const DissectorOptions& options, ExchangeSink& sink)
    : options_(options),
      sink_(sink),
      capture_limit_(options.capture_bodies ? options.body_capture_limit : 0),
      client_(std::make_unique<Direction>(Side::client)),
      server_(std::make_unique<Direction>(Side::server)) {
    client_->state = Direction::State::preface;
    for (Direction* direction : {client_.get(), server_.get()}) {
        nghttp2_hd_inflater* inflater = nullptr;
        if (nghttp2_hd_inflate_new2(&inflater, nullptr) != 0) {
            failure_ = "cannot create an HPACK decoder";
            return;
        }
        direction->inflater.reset(inflater);
    }
}

Http2Dissector::~Http2Dissector() = default;

void Http2Dissector::feed(Side side, std::span<const char> bytes, Clock::time_point now) {
    if (failed() || finished_) {
        return;
    }
    now_ = now;
    // Only allocation can throw here; the relay must not notice, so dissection just stops.
    try {
        consume(side == Side::client ? *client_ : *server_, bytes);
    } catch (...) {
        failure_ = "internal error";
        streams_.clear();
    }
}

void Http2Dissector::end(Side, Clock::time_point) {}

void Http2Dissector::finish(Clock::time_point now) {
    if (finished_) {
        return;
    }
    finished_ = true;
    now_ = now;
    // Open streams were reported when it failed.
    if (failed()) {
        return;
    }
    try {
        while (!streams_.empty()) {
            auto first = std::min_element(
                streams_.begin(), streams_.end(), [](const auto& left, const auto& right) {
                    return left.second->exchange.sequence < right.second->exchange.sequence;
                });
            const Stream& stream = *first->second;
            const char* why = !stream.final_response ? "connection closed before the response"
                              : !stream.response_ended
                                  ? "connection closed before the response ended"
                                  : "connection closed before the request ended";
            emit(first, why);
        }
    } catch (...) {
        streams_.clear();
    }
}

Http2Dissector::Direction& Http2Dissector::other(const Direction& direction) {
    return direction.side == Side::client ? *server_ : *client_;
}

void Http2Dissector::consume(Direction& from, std::span<const char> bytes) {
    using State = Direction::State;
    std::size_t position = 0;
    while (position < bytes.size() && !failed()) {
        const std::span<const char> rest = bytes.subspan(position);
        switch (from.state) {
            case State::preface: {
                const std::size_t take =
                    std::min(rest.size(), kHttp2ClientPreface.size() - from.preface_matched);
                if (std::memcmp(rest.data(), kHttp2ClientPreface.data() + from.preface_matched,
                                take) != 0) {
                    fail("bad client preface");
                    return;
                }
                from.preface_matched += take;
                position += take;
                if (from.preface_matched == kHttp2ClientPreface.size()) {
                    from.state = State::frame_header;
                }
                break;
            }
            case State::frame_header: {
                if (from.header_filled == 0) {
                    from.frame_start = now_;
                }
                const std::size_t take =
                    std::min(rest.size(), kFrameHeaderBytes - from.header_filled);
                std::memcpy(from.header_bytes.data() + from.header_filled, rest.data(), take);
                from.header_filled += take;
                position += take;
                if (from.header_filled == kFrameHeaderBytes) {
                    from.header_filled = 0;
                    begin_frame(from);
                }
                break;
            }
            case State::prefix: {
                const std::size_t take =
                    std::min(rest.size(), from.prefix_size - from.prefix_filled);
                std::memcpy(from.prefix.data() + from.prefix_filled, rest.data(), take);
                from.prefix_filled += take;
                position += take;
                if (from.prefix_filled == from.prefix_size) {
                    begin_content(from);
                }
                break;
            }
            case State::content: {
                const std::size_t take = std::min<std::size_t>(rest.size(), from.content_remaining);
                from.content_remaining -= static_cast<std::uint32_t>(take);
                position += take;
                take_content(from, rest.first(take));
                if (from.content_remaining == 0 && !failed()) {
                    after_content(from);
                }
                break;
            }
            case State::padding: {
                const std::size_t take = std::min<std::size_t>(rest.size(), from.padding_remaining);
                from.padding_remaining -= static_cast<std::uint32_t>(take);
                position += take;
                if (from.padding_remaining == 0) {
                    end_frame(from);
                }
                break;
            }
        }
    }
}

void Http2Dissector::begin_frame(Direction& from) {
    const auto& header = from.header_bytes;
    from.length = (std::uint32_t{header[0]} << 16) | (std::uint32_t{header[1]} << 8) | header[2];
    from.type = header[3];
    from.flags = header[4];
    from.stream_id = read_u32(header.data() + 5) & kStreamIdMask;
    const bool on_stream = from.stream_id != 0;

    if (!from.saw_first_frame) {
        from.saw_first_frame = true;
        if (from.type != kSettings || (from.flags & kFlagAck) != 0) {
            fail(from.side == Side::client ? "client preface not followed by SETTINGS"
                                           : "server preface is not a SETTINGS frame");
            return;
        }
    }
    if (from.length > from.max_frame_size) {
        fail("frame larger than SETTINGS_MAX_FRAME_SIZE");
        return;
    }
    // A header block is a contiguous run of frames (RFC 9113 section 4.3).
    const bool continues_block = from.type == kContinuation && from.stream_id == from.block_stream;
    if (from.expecting_continuation ? !continues_block : from.type == kContinuation) {
        fail("CONTINUATION out of sequence");
        return;
    }

    const std::size_t pad_length_bytes = (from.flags & kFlagPadded) != 0 ? 1 : 0;
    from.prefix_size = 0;
    const char* malformed = nullptr;
    switch (from.type) {
        case kData:
            if (!on_stream) {
                malformed = "DATA on stream 0";
            }
            from.prefix_size = pad_length_bytes;
            break;
        case kHeaders:
        case kPushPromise:
            if (!on_stream) {
                malformed = "header block on stream 0";
            }
            if (from.type == kPushPromise && from.side == Side::client) {
                malformed = "PUSH_PROMISE from the client";
            }
            from.prefix_size = pad_length_bytes;
            if (from.type == kPushPromise) {
                from.prefix_size += 4;
            }
            if (from.type == kHeaders && (from.flags & kFlagPriority) != 0) {
                from.prefix_size += 5;
            }
            from.block.clear();
            from.block_stream = from.stream_id;
            from.block_is_push = from.type == kPushPromise;
            from.block_ends_stream = from.type == kHeaders && (from.flags & kFlagEndStream) != 0;
            from.block_start = from.frame_start;
            break;
        case kPriority:
            if (!on_stream) {
                malformed = "PRIORITY on stream 0";
            }
            break;
        case kRstStream:
            if (!on_stream) {
                malformed = "RST_STREAM on stream 0";
            }
            if (from.length != 4) {
                malformed = "RST_STREAM of the wrong size";
            }
            break;
        case kSettings:
            if (on_stream) {
                malformed = "SETTINGS on a stream";
            }
            if (from.length % 6 != 0) {
                malformed = "SETTINGS of the wrong size";
            }
            if ((from.flags & kFlagAck) != 0 && from.length != 0) {
                malformed = "SETTINGS ACK with data";
            }
            from.settings_in_frame = {};
            from.setting_filled = 0;
            break;
        case kPing:
            if (on_stream) {
                malformed = "PING on a stream";
            }
            if (from.length != 8) {
                malformed = "PING of the wrong size";
            }
            break;
        case kGoaway:
            if (on_stream) {
                malformed = "GOAWAY on a stream";
            }
            if (from.length < 8) {
                malformed = "GOAWAY too short";
            }
            break;
        case kWindowUpdate:
            if (from.length != 4) {
                malformed = "WINDOW_UPDATE of the wrong size";
            }
            break;
        default:  // CONTINUATION (checked above) and extension frames
            break;
    }
    if (malformed == nullptr && from.prefix_size > from.length) {
        malformed = "frame shorter than its padding and priority fields";
    }
    if (malformed != nullptr) {
        fail(malformed);
        return;
    }
    from.prefix_filled = 0;
    from.control_filled = 0;
    if (from.prefix_size > 0) {
        from.state = Direction::State::prefix;
    } else {
        begin_content(from);
    }
}

void Http2Dissector::begin_content(Direction& from) {
    const bool padded = (from.flags & kFlagPadded) != 0 &&
                        (from.type == kData || from.type == kHeaders || from.type == kPushPromise);
    const std::uint32_t padding = padded ? from.prefix[0] : 0;
    if (from.prefix_size + padding > from.length) {
        fail("padding longer than the frame");
        return;
    }
    if (from.type == kPushPromise) {
        from.promised_stream = read_u32(from.prefix.data() + (padded ? 1 : 0)) & kStreamIdMask;
    }
    from.content_remaining = from.length - static_cast<std::uint32_t>(from.prefix_size) - padding;
    from.padding_remaining = padding;
    if (from.content_remaining > 0) {
        from.state = Direction::State::content;
    } else {
        after_content(from);
    }
}

void Http2Dissector::after_content(Direction& from) {
    if (from.padding_remaining > 0) {
        from.state = Direction::State::padding;
    } else {
        end_frame(from);
    }
}

void Http2Dissector::take_content(Direction& from, std::span<const char> chunk) {
    switch (from.type) {
        case kData: {
            const auto found = streams_.find(from.stream_id);
            // Closed or never opened: nothing to record.
            if (found == streams_.end()) {
                return;
            }
            Stream& stream = *found->second;
            if (from.side == Side::client && !stream.request_ended) {
                stream.request_body.add(chunk);
            } else if (from.side == Side::server && !stream.response_ended) {
                stream.response_body.add(chunk);
            }
            return;
        }
        case kHeaders:
        case kPushPromise:
        case kContinuation:
            if (from.block.size() + chunk.size() > kMaxHeaderBlockBytes) {
                fail("header block larger than 256 KiB");
                return;
            }
            from.block.append(chunk.data(), chunk.size());
            return;
        case kSettings:
            take_settings_bytes(from, chunk);
            return;
        case kRstStream:
        case kGoaway: {
            const std::size_t take =
                std::min(chunk.size(), from.control.size() - from.control_filled);
            std::memcpy(from.control.data() + from.control_filled, chunk.data(), take);
            from.control_filled += take;
            return;
        }
        default:  // PING, WINDOW_UPDATE, PRIORITY and extension frames: nothing to learn
            return;
    }
}

void Http2Dissector::take_settings_bytes(Direction& from, std::span<const char> chunk) {
    for (const char byte : chunk) {
        from.setting[from.setting_filled++] = static_cast<unsigned char>(byte);
        if (from.setting_filled < from.setting.size()) {
            continue;
        }
        from.setting_filled = 0;
        const std::uint16_t identifier =
            static_cast<std::uint16_t>((from.setting[0] << 8) | from.setting[1]);
        const std::uint32_t value = read_u32(from.setting.data() + 2);
        if (identifier == kSettingHeaderTableSize) {
            from.settings_in_frame.header_table_size = value;
        } else if (identifier == kSettingMaxFrameSize) {
            if (value < kDefaultMaxFrameSize || value > kLargestMaxFrameSize) {
                fail("invalid SETTINGS_MAX_FRAME_SIZE");
                return;
            }
            from.settings_in_frame.max_frame_size = value;
        }
    }
}

void Http2Dissector::end_frame(Direction& from) {
    from.state = Direction::State::frame_header;
    switch (from.type) {
        case kData:
            if ((from.flags & kFlagEndStream) != 0) {
                end_side(from.stream_id, from.side);
            }
            return;
        case kHeaders:
        case kPushPromise:
        case kContinuation:
            from.expecting_continuation = (from.flags & kFlagEndHeaders) == 0;
            if (!from.expecting_continuation) {
                complete_header_block(from);
            }
            return;
        case kSettings:
            if ((from.flags & kFlagAck) != 0) {
                on_settings_ack(from);
            } else {
                on_settings(from);
            }
            return;
        case kRstStream:
            on_reset(from.stream_id, read_u32(from.control.data()));
            return;
        case kGoaway:
            on_goaway(from, read_u32(from.control.data()) & kStreamIdMask);
            return;
        default:
            return;
    }
}

void Http2Dissector::on_settings(Direction& sender) {
    Direction& encoder = other(sender);
    if (encoder.early_acks > 0) {
        --encoder.early_acks;
        encoder.unacknowledged.push_front(sender.settings_in_frame);
        on_settings_ack(encoder);
        return;
    }
    if (encoder.unacknowledged.size() >= kMaxUnacknowledgedSettings) {
        fail("too many unacknowledged SETTINGS");
        return;
    }
    encoder.unacknowledged.push_back(sender.settings_in_frame);
    refresh_limits(encoder);
}

void Http2Dissector::on_settings_ack(Direction& acknowledger) {
    if (acknowledger.unacknowledged.empty()) {
        acknowledger.early_acks = std::min(acknowledger.early_acks + 1, kMaxUnacknowledgedSettings);
        return;
    }
    const SettingsChange& change = acknowledger.unacknowledged.front();
    if (change.header_table_size) {
        acknowledger.acked_header_table_size = *change.header_table_size;
    }
    if (change.max_frame_size) {
        acknowledger.acked_max_frame_size = *change.max_frame_size;
    }
    acknowledger.unacknowledged.pop_front();
    refresh_limits(acknowledger);
}

void Http2Dissector::refresh_limits(Direction& encoder) {
    std::uint32_t max_frame_size = encoder.acked_max_frame_size;
    std::size_t header_table_size = encoder.acked_header_table_size;
    for (const SettingsChange& change : encoder.unacknowledged) {
        if (change.max_frame_size) {
            max_frame_size = std::max(max_frame_size, *change.max_frame_size);
        }
        if (change.header_table_size) {
            header_table_size = std::max<std::size_t>(header_table_size, *change.header_table_size);
        }
    }
    encoder.max_frame_size = max_frame_size;
    header_table_size = std::min(header_table_size, kMaxHeaderTableSize);
    if (header_table_size == encoder.header_table_size) {
        return;
    }
    // Settings frames never fall inside a header block, so the inflater is between blocks. A
    // smaller size makes it insist on a table size update at the start of the next block, as
    // RFC 7541 section 4.2 requires of the encoder.
    if (nghttp2_hd_inflate_change_table_size(encoder.inflater.get(), header_table_size) != 0) {
        fail("HPACK table size change failed");
        return;
    }
    encoder.header_table_size = header_table_size;
}

bool Http2Dissector::inflate(Direction& from, FieldList& list) {
    // Every block is decoded, even for streams no longer tracked: the dynamic table must stay in
    // step with the encoder's.
    const auto* input = reinterpret_cast<const std::uint8_t*>(from.block.data());
    std::size_t left = from.block.size();
    for (;;) {
        nghttp2_nv field;
        int inflate_flags = 0;
        const auto used = nghttp2_hd_inflate_hd2(from.inflater.get(), &field, &inflate_flags, input,
                                                 left, /*in_final=*/1);
        if (used < 0) {
            fail("HPACK decoding error");
            return false;
        }
        input += used;
        left -= static_cast<std::size_t>(used);
        if ((inflate_flags & NGHTTP2_HD_INFLATE_EMIT) != 0) {
            list.decoded_bytes += field.namelen + field.valuelen + 32;
            if (list.decoded_bytes > kMaxDecodedHeaderBytes) {
                fail("decoded header list larger than 256 KiB");
                return false;
            }
            list.fields.push_back(
                {std::string(reinterpret_cast<const char*>(field.name), field.namelen),
                 std::string(reinterpret_cast<const char*>(field.value), field.valuelen)});
        }
        if ((inflate_flags & NGHTTP2_HD_INFLATE_FINAL) != 0) {
            nghttp2_hd_inflate_end_headers(from.inflater.get());
            break;
        }
        if ((inflate_flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) {
            fail("HPACK block ends mid-field");
            return false;
        }
    }
    // A large block is rare; do not keep its buffer for the connection's lifetime.
    from.block.clear();
    if (from.block.capacity() > 16 * 1024) {
        from.block.shrink_to_fit();
    }
    return true;
}

void Http2Dissector::complete_header_block(Direction& from) {
    FieldList list;
    if (!inflate(from, list)) {
        return;
    }
    if (from.block_is_push) {
        on_push_promise(list, from);
    } else if (from.side == Side::client) {
        on_request_head(list, from);
    } else {
        on_response_head(list, from);
    }
}

namespace {

bool is_redacted(const DissectorOptions& options, std::string_view name) {
    for (const auto& redacted : options.redacted_headers) {
        if (equals_lower_case(name, redacted)) {
            return true;
        }
    }
    return false;
}

// Moves the fields into `target`, leaving out the pseudo-headers `skip_pseudo` names.
void append_fields(const DissectorOptions& options, std::vector<HeaderField>& fields,
                   std::vector<HeaderField>& target,
                   std::initializer_list<std::string_view> skip_pseudo) {
    for (auto& field : fields) {
        if (std::find(skip_pseudo.begin(), skip_pseudo.end(), field.name) != skip_pseudo.end()) {
            continue;
        }
        if (is_redacted(options, field.name)) {
            field.value = "<redacted>";
        }
        target.push_back(std::move(field));
    }
}

}  // namespace

Http2Dissector::Stream* Http2Dissector::open_stream(std::uint32_t stream_id,
                                                    Clock::time_point request_start) {
    if (streams_.size() >= kMaxTrackedStreams) {
        fail("more than 1000 concurrent streams");
        return nullptr;
    }
    auto stream = std::make_unique<Stream>();
    stream->exchange.protocol = "HTTP/2";
    stream->exchange.stream_id = stream_id;
    stream->exchange.sequence = next_sequence_++;
    stream->exchange.request_start = request_start;
    stream->request_body.start(capture_limit_);
    stream->response_body.start(capture_limit_);
    Stream* opened = stream.get();
    streams_[stream_id] = std::move(stream);
    return opened;
}

void Http2Dissector::fill_request(Stream& stream, FieldList& list) {
    HttpExchange& exchange = stream.exchange;
    exchange.method = list.find(":method");
    exchange.scheme = list.find(":scheme");
    exchange.authority = list.find(":authority");
    if (exchange.authority.empty()) {
        exchange.authority = list.find("host");
    }
    exchange.path = list.find(":path");
    exchange.request_body.content_type = list.find("content-type");
    exchange.request_body.content_encoding = list.find("content-encoding");
    append_fields(options_, list.fields, exchange.request_headers,
                  {":method", ":scheme", ":authority", ":path"});
}

void Http2Dissector::on_request_head(FieldList& list, Direction& from) {
    const std::uint32_t id = from.block_stream;
    if (id % 2 == 0) {
        fail("client HEADERS on an even stream");
        return;
    }
    if (const auto found = streams_.find(id); found != streams_.end()) {
        Stream& stream = *found->second;
        // HEADERS on a half-closed stream: nothing to add.
        if (stream.request_ended) {
            return;
        }
        append_fields(options_, list.fields, stream.exchange.request_headers, {});  // trailers
    } else {
        // A stream already reported.
        if (id <= last_client_stream_) {
            return;
        }
        last_client_stream_ = id;
        Stream* stream = open_stream(id, from.block_start);
        if (stream == nullptr) {
            return;
        }
        fill_request(*stream, list);
        if (server_->goaway_last_stream && id > *server_->goaway_last_stream) {
            emit(streams_.find(id), "refused by GOAWAY");
            return;
        }
    }
    if (from.block_ends_stream) {
        end_side(id, Side::client);
    }
}

void Http2Dissector::on_response_head(FieldList& list, Direction& from) {
    const std::uint32_t id = from.block_stream;
    const auto found = streams_.find(id);
    if (found == streams_.end()) {
        return;
    }
    Stream& stream = *found->second;
    HttpExchange& exchange = stream.exchange;
    if (stream.response_ended) {
        return;
    }
    if (stream.final_response) {
        append_fields(options_, list.fields, exchange.response_headers, {});  // trailers
    } else {
        const int status = parse_status(list.find(":status"));
        if (status >= 100 && status < 200) {
            if (exchange.informational.size() < kMaxInformational) {
                exchange.informational.push_back(status);
            }
        } else {
            stream.final_response = true;
            exchange.status = status;
            exchange.response_start = from.block_start;
            exchange.response_body.content_type = list.find("content-type");
            exchange.response_body.content_encoding = list.find("content-encoding");
            append_fields(options_, list.fields, exchange.response_headers, {":status"});
        }
    }
    if (from.block_ends_stream) {
        end_side(id, Side::server);
    }
}

void Http2Dissector::on_push_promise(FieldList& list, Direction& from) {
    const std::uint32_t id = from.promised_stream;
    if (id == 0 || id % 2 != 0 || id <= last_promised_stream_) {
        fail("PUSH_PROMISE with an invalid promised stream");
        return;
    }
    last_promised_stream_ = id;
    Stream* stream = open_stream(id, from.block_start);
    if (stream == nullptr) {
        return;
    }
    fill_request(*stream, list);
    stream->request_ended = true;  // a promised request has no body
    if (client_->goaway_last_stream && id > *client_->goaway_last_stream) {
        emit(streams_.find(id), "refused by GOAWAY");
    }
}

void Http2Dissector::end_side(std::uint32_t stream_id, Side side) {
    const auto found = streams_.find(stream_id);
    if (found == streams_.end()) {
        return;
    }
    Stream& stream = *found->second;
    (side == Side::client ? stream.request_ended : stream.response_ended) = true;
    if (stream.request_ended && stream.response_ended) {
        emit(found, {});
    }
}

void Http2Dissector::on_reset(std::uint32_t stream_id, std::uint32_t error_code) {
    const auto found = streams_.find(stream_id);
    if (found == streams_.end()) {
        return;
    }
    // A server may answer in full and then reset with NO_ERROR to stop an upload it does not
    // need (RFC 9113 section 8.1): the exchange is complete.
    const bool answered = found->second->response_ended && error_code == 0;
    emit(found, answered ? std::string() : "stream reset: " + error_code_name(error_code));
}

void Http2Dissector::on_goaway(Direction& sender, std::uint32_t last_stream_id) {
    if (!sender.goaway_last_stream || last_stream_id < *sender.goaway_last_stream) {
        sender.goaway_last_stream = last_stream_id;
    }
    // The GOAWAY sender will not process streams its peer opened above last_stream_id; those
    // the sender opened itself carry on.
    const std::uint32_t peer_parity = sender.side == Side::server ? 1 : 0;
    const std::uint32_t limit = *sender.goaway_last_stream;
    emit_in_order(
        [&](const Stream& stream) {
            const std::uint32_t id = stream.exchange.stream_id;
            return id % 2 == peer_parity && id > limit;
        },
        "refused by GOAWAY");
}

template <typename Select>
void Http2Dissector::emit_in_order(Select select, const std::string& error) {
    std::vector<std::pair<std::uint64_t, std::uint32_t>> chosen;  // sequence, stream id
    for (const auto& [id, stream] : streams_) {
        if (select(*stream)) {
            chosen.emplace_back(stream->exchange.sequence, id);
        }
    }
    std::sort(chosen.begin(), chosen.end());
    for (const auto& [sequence, id] : chosen) {
        if (const auto found = streams_.find(id); found != streams_.end()) {
            emit(found, error);
        }
    }
}

void Http2Dissector::emit(StreamMap::iterator position, std::string error) {
    std::unique_ptr<Stream> stream = std::move(position->second);
    streams_.erase(position);
    HttpExchange& exchange = stream->exchange;
    stream->request_body.finish_into(exchange.request_body);
    stream->response_body.finish_into(exchange.response_body);
    exchange.end = now_;
    exchange.error = std::move(error);
    sink_.on_exchange(std::move(exchange));
}

void Http2Dissector::fail(std::string reason) {
    if (failed()) {
        return;
    }
    failure_ = std::move(reason);
    emit_in_order([](const Stream&) { return true; }, failure_);
}

}  // namespace tlsgate::inspect
