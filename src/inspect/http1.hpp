#pragma once
// HTTP/1.x message framing (sans-io): request and response heads, body framing and a body
// reader that finds where a body ends without changing a byte. Used by the explicit proxy
// (CONNECT, absolute-form requests) and by the HTTP/1.1 dissector.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tlsgate::http1 {

struct Header {
    std::string name;   // as received
    std::string value;  // leading/trailing whitespace trimmed
};

struct RequestHead {
    std::string method;
    std::string target;  // request-target as received
    int version_minor = 1;  // HTTP/1.<minor>
    std::vector<Header> headers;
};

struct ResponseHead {
    int version_minor = 1;
    int status = 0;
    std::string reason;
    std::vector<Header> headers;
};

enum class ParseStatus { need_more, complete, error };

template <typename Head>
struct HeadResult {
    ParseStatus status = ParseStatus::need_more;
    Head head;
    std::size_t head_size = 0;  // bytes up to and including the blank line, when complete
    std::string error;          // when status == error
};

inline constexpr std::size_t kDefaultMaxHeadBytes = 64 * 1024;

// Parse a head at the start of `buffer`. need_more while the blank line has not arrived (and the
// buffer is under max_head_bytes); error for anything that is not a well-formed HTTP/1.x head
// (bad request line, bare LF inside a line is accepted, obsolete line folding and NUL/CTL bytes
// rejected, head too large, more than 200 header lines).
HeadResult<RequestHead> parse_request_head(std::string_view buffer,
                                           std::size_t max_head_bytes = kDefaultMaxHeadBytes);
HeadResult<ResponseHead> parse_response_head(std::string_view buffer,
                                             std::size_t max_head_bytes = kDefaultMaxHeadBytes);

// First header with this name (case-insensitive), if any.
std::optional<std::string_view> find_header(const std::vector<Header>& headers,
                                            std::string_view name);
// Whether a comma-separated header (e.g. Connection) lists `token`, case-insensitively.
bool header_has_token(const std::vector<Header>& headers, std::string_view name,
                      std::string_view token);
// HTTP/1.1 keep-alive unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive".
bool wants_keep_alive(int version_minor, const std::vector<Header>& headers);

struct BodyFraming {
    enum class Kind { none, content_length, chunked, until_close } kind = Kind::none;
    std::uint64_t length = 0;  // for content_length
};

struct FramingResult {
    bool ok = true;
    BodyFraming framing;
    std::string error;  // e.g. conflicting Content-Length, Transfer-Encoding other than chunked last
};

// RFC 9112 section 6: requests without Content-Length/Transfer-Encoding have no body.
FramingResult request_body_framing(const RequestHead& head);
// Responses to HEAD, 1xx, 204 and 304 have no body; without a length a body runs until close.
FramingResult response_body_framing(const ResponseHead& head, std::string_view request_method);

// Receives the body's payload bytes (chunk framing removed) as the reader passes them.
class BodySink {
public:
    virtual ~BodySink() = default;
    virtual void on_body_data(std::span<const char> data) = 0;
};

// Walks a body in the raw stream: tells how many input bytes belong to the body (including chunk
// sizes, extensions and trailers) and when it has ended. Never copies the body.
class BodyReader {
public:
    explicit BodyReader(BodyFraming framing);

    struct Step {
        std::size_t consumed = 0;  // bytes of `input` that belong to this body
        bool done = false;         // the body ended within those bytes
        bool error = false;        // malformed chunked encoding (error_text says what)
        std::string_view error_text;
    };
    Step feed(std::string_view input, BodySink* sink = nullptr);
    // For until_close bodies: the peer closed, so the body is complete.
    bool finish_on_close() const { return framing_.kind == BodyFraming::Kind::until_close; }
    bool done() const { return done_; }
    std::uint64_t payload_bytes() const { return payload_bytes_; }

private:
    BodyFraming framing_;
    bool done_ = false;
    std::uint64_t payload_bytes_ = 0;
    // chunked-decoding state
    enum class ChunkState { size, extension, size_lf, data, data_cr, data_lf, trailer_line_start,
                            trailer_line, trailer_lf, final_lf } chunk_state_ = ChunkState::size;
    std::uint64_t chunk_remaining_ = 0;
    int size_digits_ = 0;
    std::size_t trailer_bytes_ = 0;
};

struct Authority {
    std::string host;  // without brackets for IPv6 literals
    std::uint16_t port = 0;
};

// "host:port", "[2001:db8::1]:443" (CONNECT authority-form). The port is required.
std::optional<Authority> parse_authority(std::string_view text);

struct AbsoluteUrl {
    std::string scheme;  // lower-case, "http" or "https"
    Authority authority; // port defaulted from the scheme
    std::string origin_form;  // path and query, "/" when empty
};

// "http://host[:port]/path?query" (absolute-form request target).
std::optional<AbsoluteUrl> parse_absolute_url(std::string_view target);

}  // namespace tlsgate::http1
