#include "classify/client_hello.hpp"

#include <algorithm>
#include <string_view>
#include <utility>

namespace tlsgate::classify {

namespace {

constexpr std::uint8_t kContentTypeHandshake = 0x16;
constexpr std::uint8_t kRecordVersionMajor = 3;
constexpr std::uint8_t kHandshakeTypeClientHello = 1;
constexpr std::size_t kRecordHeaderSize = 5;
constexpr std::size_t kHandshakeHeaderSize = 4;
// Smallest possible ClientHello body: version, random, and the one-byte session_id,
// two-byte cipher_suites and one-byte compression_methods lengths.
constexpr std::size_t kMinClientHelloBody = 2 + 32 + 1 + 2 + 1;
// TLSPlaintext allows 2^14; the extra 2048 is TLSCiphertext's allowance. Being lenient by that
// much costs nothing and avoids rejecting an odd but harmless client.
constexpr std::size_t kMaxRecordLength = 16384 + 2048;

constexpr std::uint16_t kExtServerName = 0;
constexpr std::uint16_t kExtAlpn = 16;
constexpr std::uint16_t kExtSupportedVersions = 43;
constexpr std::uint8_t kServerNameTypeHostName = 0;

// "0x16" for a byte, "0x002b" for a 16-bit value: how the RFCs and Wireshark print them.
std::string hex(unsigned value, int digit_count) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out = "0x";
    for (int shift = (digit_count - 1) * 4; shift >= 0; shift -= 4) {
        out.push_back(digits[(value >> shift) & 0xf]);
    }
    return out;
}
std::string hex8(std::uint8_t value) {
    return hex(value, 2);
}
std::string hex16(std::uint16_t value) {
    return hex(value, 4);
}

// Bounds-checked big-endian reader over untrusted bytes. Every read reports failure instead of
// reading past the end, so the parsing code below is a straight line of "read or fail".
class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

    std::size_t remaining() const { return bytes_.size() - position_; }
    bool empty() const { return remaining() == 0; }

    bool read_u8(std::uint8_t& out) {
        if (remaining() < 1) {
            return false;
        }
        out = bytes_[position_++];
        return true;
    }

    bool read_u16(std::uint16_t& out) {
        if (remaining() < 2) {
            return false;
        }
        out = static_cast<std::uint16_t>((bytes_[position_] << 8) | bytes_[position_ + 1]);
        position_ += 2;
        return true;
    }

    bool read_bytes(std::size_t count, std::span<const std::uint8_t>& out) {
        if (remaining() < count) {
            return false;
        }
        out = bytes_.subspan(position_, count);
        position_ += count;
        return true;
    }

    // A vector<floor..ceiling> with a length prefix of one or two bytes, as TLS defines them.
    bool read_vector8(std::span<const std::uint8_t>& out) {
        std::uint8_t length = 0;
        return read_u8(length) && read_bytes(length, out);
    }
    bool read_vector16(std::span<const std::uint8_t>& out) {
        std::uint16_t length = 0;
        return read_u16(length) && read_bytes(length, out);
    }

private:
    std::span<const std::uint8_t> bytes_;
    std::size_t position_ = 0;
};

std::string_view as_chars(std::span<const std::uint8_t> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Each extension parser returns an empty string on success, or what is wrong.
std::string parse_server_name(std::span<const std::uint8_t> data, ClientHello& hello) {
    Reader reader(data);
    std::span<const std::uint8_t> list;
    if (!reader.read_vector16(list) || !reader.empty()) {
        return "server_name extension: list length does not match the extension length";
    }
    if (list.empty()) {
        return "server_name extension: empty server name list";
    }
    Reader entries(list);
    while (!entries.empty()) {
        std::uint8_t name_type = 0;
        std::span<const std::uint8_t> name;
        // RFC 6066 only defines host_name, but every name type deployed since has used the same
        // two-byte length prefix, so unknown types are skipped rather than rejected.
        if (!entries.read_u8(name_type) || !entries.read_vector16(name)) {
            return "server_name extension: entry overruns the server name list";
        }
        if (name_type != kServerNameTypeHostName) {
            continue;
        }
        if (hello.has_sni) {
            return "server_name extension: more than one host_name entry";
        }
        if (name.empty()) {
            return "server_name extension: empty host_name";
        }
        hello.sni.assign(as_chars(name));
        hello.has_sni = true;
    }
    return {};
}

constexpr std::size_t kMaxAlpnNamesKept = 1024;

std::string parse_alpn(std::span<const std::uint8_t> data, ClientHello& hello) {
    Reader reader(data);
    std::span<const std::uint8_t> list;
    if (!reader.read_vector16(list) || !reader.empty()) {
        return "ALPN extension: list length does not match the extension length";
    }
    if (list.empty()) {
        return "ALPN extension: empty protocol list";
    }
    Reader entries(list);
    while (!entries.empty()) {
        std::span<const std::uint8_t> protocol;
        if (!entries.read_vector8(protocol)) {
            return "ALPN extension: protocol name overruns the list";
        }
        if (protocol.empty()) {
            return "ALPN extension: empty protocol name";
        }
        // A hostile hello of one-byte names would otherwise cost ~1 MiB of strings per
        // connection; the names past the cap are still validated, only not kept.
        if (hello.alpn.size() < kMaxAlpnNamesKept) {
            hello.alpn.emplace_back(as_chars(protocol));
        }
    }
    return {};
}

std::string parse_supported_versions(std::span<const std::uint8_t> data, ClientHello& hello) {
    Reader reader(data);
    std::span<const std::uint8_t> list;
    if (!reader.read_vector8(list) || !reader.empty()) {
        return "supported_versions extension: list length does not match the extension length";
    }
    if (list.empty() || list.size() % 2 != 0) {
        return "supported_versions extension: list length must be even and non-zero";
    }
    Reader entries(list);
    hello.supported_versions.reserve(list.size() / 2);
    std::uint16_t version = 0;
    while (entries.read_u16(version)) {
        hello.supported_versions.push_back(version);
    }
    return {};
}

// Parses the ClientHello body (after the 4-byte handshake header) into `hello`. Returns an empty
// string on success, otherwise the reason the message is malformed.
std::string parse_client_hello_body(std::span<const std::uint8_t> body, ClientHello& hello) {
    Reader reader(body);
    std::span<const std::uint8_t> random;
    std::span<const std::uint8_t> session_id;
    if (!reader.read_u16(hello.legacy_version) || !reader.read_bytes(32, random)) {
        return "ClientHello too short for version and random";
    }
    if (!reader.read_vector8(session_id)) {
        return "ClientHello session_id overruns the message";
    }
    if (session_id.size() > 32) {
        return "ClientHello session_id longer than 32 bytes";
    }

    std::span<const std::uint8_t> suites;
    if (!reader.read_vector16(suites)) {
        return "ClientHello cipher_suites overrun the message";
    }
    if (suites.empty() || suites.size() % 2 != 0) {
        return "ClientHello cipher_suites length must be even and non-zero";
    }
    hello.cipher_suites.reserve(suites.size() / 2);
    Reader suite_reader(suites);
    std::uint16_t suite = 0;
    while (suite_reader.read_u16(suite)) {
        hello.cipher_suites.push_back(suite);
    }

    std::span<const std::uint8_t> compression_methods;
    if (!reader.read_vector8(compression_methods)) {
        return "ClientHello compression_methods overrun the message";
    }
    if (compression_methods.empty()) {
        return "ClientHello offers no compression method";
    }

    // SSLv3-era hellos may end here: no extensions block at all.
    if (reader.empty()) {
        return {};
    }
    std::span<const std::uint8_t> extensions;
    if (!reader.read_vector16(extensions)) {
        return "ClientHello extensions block overruns the message";
    }
    if (!reader.empty()) {
        return "ClientHello has trailing bytes after the extensions block";
    }

    // Duplicates are detected by sorting the types seen: linear-logarithmic even for a hostile
    // hello made of thousands of empty extensions, where a pairwise check would be quadratic.
    std::vector<std::uint16_t> seen_types;
    seen_types.reserve(32);
    Reader extension_reader(extensions);
    while (!extension_reader.empty()) {
        std::uint16_t type = 0;
        std::span<const std::uint8_t> data;
        if (!extension_reader.read_u16(type) || !extension_reader.read_vector16(data)) {
            return "ClientHello extension overruns the extensions block";
        }
        seen_types.push_back(type);
        std::string problem;
        switch (type) {
            case kExtServerName:
                problem = parse_server_name(data, hello);
                break;
            case kExtAlpn:
                problem = parse_alpn(data, hello);
                break;
            case kExtSupportedVersions:
                problem = parse_supported_versions(data, hello);
                break;
            default:
                break;
        }
        if (!problem.empty()) {
            return problem;
        }
    }
    std::sort(seen_types.begin(), seen_types.end());
    const auto duplicate = std::adjacent_find(seen_types.begin(), seen_types.end());
    if (duplicate != seen_types.end()) {
        return "ClientHello has a duplicate extension " + hex16(*duplicate);
    }
    return {};
}

}  // namespace

const char* to_string(HelloStatus status) {
    switch (status) {
        case HelloStatus::need_more:
            return "need_more";
        case HelloStatus::complete:
            return "complete";
        case HelloStatus::not_tls:
            return "not_tls";
        case HelloStatus::invalid:
            return "invalid";
        case HelloStatus::too_large:
            return "too_large";
    }
    return "unknown";
}

ClientHelloParser::ClientHelloParser(std::size_t max_bytes) : max_bytes_(max_bytes) {}

HelloStatus ClientHelloParser::fail(HelloStatus status, std::string message) {
    status_ = status;
    error_ = std::move(message);
    hello_ = ClientHello{};
    handshake_ = {};
    return status_;
}

HelloStatus ClientHelloParser::feed(std::span<const std::uint8_t> bytes) {
    std::size_t position = 0;
    while (status_ == HelloStatus::need_more && position < bytes.size()) {
        if (header_filled_ < kRecordHeaderSize) {
            // Header bytes are judged one at a time so that plain HTTP or SSH is recognised from
            // its first byte, without waiting for a full record header that may never come.
            const std::uint8_t byte = bytes[position];
            if ((header_filled_ == 0 && byte != kContentTypeHandshake) ||
                (header_filled_ == 1 && byte != kRecordVersionMajor)) {
                return reject_header_byte(byte);
            }
            header_[header_filled_++] = byte;
            ++position;
            ++consumed_;
            if (header_filled_ == kRecordHeaderSize) {
                const HelloStatus status = start_record();
                if (status != HelloStatus::need_more) {
                    return status;
                }
            }
            continue;
        }

        const std::size_t available = bytes.size() - position;
        const std::size_t take = std::min(available, record_remaining_);
        if (hello_parsed_) {
            // The hello is whole but its record is not: its tail belongs to the hello's bytes.
            position += take;
            consumed_ += take;
            record_remaining_ -= take;
        } else if (const std::size_t whole = whole_message_at(bytes.subspan(position, take));
                   whole != 0) {
            // Common case: the message sits whole in this feed and record, so it is parsed in
            // place. Only messages that pass every header check take this path, so the outcome
            // is the same as gathering them byte by byte.
            position += whole;
            consumed_ += whole;
            record_remaining_ -= whole;
            const HelloStatus status = finish_message(bytes.subspan(position - whole, whole));
            if (status != HelloStatus::need_more) {
                return status;
            }
        } else {
            const std::size_t append = std::min(take, handshake_checkpoint_ - handshake_.size());
            if (append == 1) {
                handshake_.push_back(bytes[position]);
            } else {
                const auto first = bytes.begin() + static_cast<std::ptrdiff_t>(position);
                handshake_.insert(handshake_.end(), first,
                                  first + static_cast<std::ptrdiff_t>(append));
            }
            position += append;
            consumed_ += append;
            record_remaining_ -= append;
            if (handshake_.size() == handshake_checkpoint_) {
                const HelloStatus status = at_handshake_checkpoint();
                if (status != HelloStatus::need_more) {
                    return status;
                }
            }
        }
        if (record_remaining_ == 0) {
            header_filled_ = 0;
            if (hello_parsed_) {
                status_ = HelloStatus::complete;
            }
        }
    }
    return status_;
}

// Kept out of feed() so that the per-byte path stays small: a client trickling one byte at a time
// should cost little more than one sending its hello whole.
HelloStatus ClientHelloParser::reject_header_byte(std::uint8_t byte) {
    const bool first_record = consumed_ < kRecordHeaderSize;
    if (header_filled_ == 0) {
        return first_record ? fail(HelloStatus::not_tls,
                                   "first byte " + hex8(byte) + " is not a TLS handshake record")
                            : fail(HelloStatus::invalid, "record of content type " + hex8(byte) +
                                                             " before the ClientHello was whole");
    }
    return first_record
               ? fail(HelloStatus::not_tls, "record version major " + hex8(byte) + " is not TLS")
               : fail(HelloStatus::invalid,
                      "record version major " + hex8(byte) + " before the ClientHello was whole");
}

// Called once a record header is complete: validates its length and the byte cap.
HelloStatus ClientHelloParser::start_record() {
    record_remaining_ = (std::size_t{header_[3]} << 8) | header_[4];
    if (consumed_ == kRecordHeaderSize) {
        hello_.record_version = static_cast<std::uint16_t>((header_[1] << 8) | header_[2]);
    }
    if (record_remaining_ == 0) {
        return fail(HelloStatus::invalid, "zero-length handshake record");
    }
    if (record_remaining_ > kMaxRecordLength) {
        return fail(HelloStatus::invalid,
                    "record length " + std::to_string(record_remaining_) + " exceeds the maximum");
    }
    // The whole record will be consumed: the hello needs at least its first byte, and a record
    // that completes the hello is counted through its end.
    if (consumed_ + record_remaining_ > max_bytes_) {
        return fail(HelloStatus::too_large, "ClientHello records exceed the cap of " +
                                                std::to_string(max_bytes_) + " bytes");
    }
    return HelloStatus::need_more;
}

// Length of the handshake message at the start of `bytes` when nothing of it has been gathered
// yet, it lies wholly inside `bytes`, and its header passes the checks at_handshake_checkpoint()
// makes; otherwise 0.
std::size_t ClientHelloParser::whole_message_at(std::span<const std::uint8_t> bytes) const {
    if (!handshake_.empty() || bytes.size() < kHandshakeHeaderSize ||
        bytes[0] != kHandshakeTypeClientHello) {
        return 0;
    }
    const std::size_t body_length =
        (std::size_t{bytes[1]} << 16) | (std::size_t{bytes[2]} << 8) | bytes[3];
    const std::size_t message_length = kHandshakeHeaderSize + body_length;
    // Within the record, so within the cap that start_record() already checked.
    if (body_length < kMinClientHelloBody || message_length > bytes.size()) {
        return 0;
    }
    return message_length;
}

// The handshake bytes are gathered up to checkpoints where something can be decided: the type
// byte alone (so a wrong type is reported at the same stream offset however the bytes were
// split), then the 4-byte header, then the whole message.
HelloStatus ClientHelloParser::at_handshake_checkpoint() {
    if (handshake_.size() == 1) {
        if (handshake_[0] != kHandshakeTypeClientHello) {
            return fail(HelloStatus::invalid,
                        "handshake message type " + hex8(handshake_[0]) + " is not ClientHello");
        }
        handshake_checkpoint_ = kHandshakeHeaderSize;
        return HelloStatus::need_more;
    }
    if (handshake_.size() == kHandshakeHeaderSize) {
        const std::size_t body_length =
            (std::size_t{handshake_[1]} << 16) | (std::size_t{handshake_[2]} << 8) | handshake_[3];
        if (body_length < kMinClientHelloBody) {
            return fail(HelloStatus::invalid,
                        "ClientHello length " + std::to_string(body_length) + " is too short");
        }
        // Lower bound on the stream bytes the hello takes: the rest of the message, at least to
        // the end of the current record, plus a record header if it spills over.
        std::size_t lower_bound = consumed_ + std::max(body_length, record_remaining_);
        if (body_length > record_remaining_) {
            lower_bound += kRecordHeaderSize;
        }
        if (lower_bound > max_bytes_) {
            return fail(HelloStatus::too_large, "ClientHello of " + std::to_string(body_length) +
                                                    " bytes exceeds the cap of " +
                                                    std::to_string(max_bytes_) + " bytes");
        }
        handshake_checkpoint_ = kHandshakeHeaderSize + body_length;
        handshake_.reserve(handshake_checkpoint_);
        return HelloStatus::need_more;
    }
    std::vector<std::uint8_t> message = std::move(handshake_);
    handshake_ = {};
    return finish_message(message);
}

// Parses a whole ClientHello message (header included) whose header already passed its checks.
HelloStatus ClientHelloParser::finish_message(std::span<const std::uint8_t> message) {
    ClientHello parsed;
    parsed.record_version = hello_.record_version;
    parsed.handshake_length = message.size();
    const std::string problem =
        parse_client_hello_body(message.subspan(kHandshakeHeaderSize), parsed);
    if (!problem.empty()) {
        return fail(HelloStatus::invalid, problem);
    }
    hello_ = std::move(parsed);
    hello_parsed_ = true;
    return HelloStatus::need_more;
}

ClientHelloParser parse_client_hello(std::span<const std::uint8_t> bytes) {
    ClientHelloParser parser;
    parser.feed(bytes);
    return parser;
}

}  // namespace tlsgate::classify
