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

#include "inspect/header_field.hpp"

namespace tlsgate::http1 {

using Header = inspect::HeaderField;

struct RequestHead {
    std::string method;
    std::string target;     // request-target as received
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
inline constexpr std::size_t kMaxHeaderLines = 200;

// Parse a head at the start of `buffer`. need_more while the blank line has not arrived (and the
// buffer is under max_head_bytes); error for anything that is not a well-formed HTTP/1.x head:
// bad request/status line, version other than HTTP/1.0 or HTTP/1.1, header names that are not
// tokens, whitespace before the colon, obsolete line folding, NUL/CTL bytes in values, head too
// large, more than kMaxHeaderLines header lines. Lines may end in CRLF or a bare LF.
// The first line is checked as it arrives, so garbage (a TLS ClientHello, random bytes) is an
// error as soon as its first bytes cannot start a request/status line. Empty lines before a
// request line are skipped (RFC 9112 section 2.2) and counted in head_size.
// Re-parsing a growing buffer is fine: until the head is complete only the first line is
// validated and the blank line is searched with memchr.
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
    // e.g. conflicting Content-Length, Transfer-Encoding other than chunked last
    std::string error;
};

// RFC 9112 section 6.3: requests without Content-Length/Transfer-Encoding have no body.
// Stricter than the RFC where leniency enables request smuggling: Transfer-Encoding together with
// Content-Length, Transfer-Encoding in HTTP/1.0, or a coding list not ending in a single
// "chunked" is an error. Content-Length 0 gives kind content_length with length 0.
FramingResult request_body_framing(const RequestHead& head);
// Responses to HEAD, 1xx, 204 and 304 have no body, nor has a 2xx answer to CONNECT (a tunnel
// starts). Transfer-Encoding wins over Content-Length; one not ending in chunked (or in an
// HTTP/1.0 response) means until_close, as does a response without either.
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
    // RFC 9112 section 7.1 ends chunk lines with CRLF; recipients may accept a bare LF. The
    // dissector does (it only watches); a forwarder must not: it passes the body on unchanged,
    // and a peer that reads a bare LF differently would see other chunk boundaries than ours.
    enum class LineEnds { lenient, crlf_only };
    explicit BodyReader(BodyFraming framing, LineEnds line_ends = LineEnds::lenient);

    struct Step {
        std::size_t consumed = 0;     // bytes of `input` that belong to this body
        bool done = false;            // the body ended within those bytes (or had already ended)
        bool error = false;           // malformed chunked encoding (error_text says what)
        std::string_view error_text;  // a string literal, valid forever
    };
    // Accepts input split at any byte. Once done, consumes nothing more (what follows is the
    // next message); once failed, every later feed reports the same error.
    Step feed(std::string_view input, BodySink* sink = nullptr);
    // For until_close bodies: the peer closed, so the body is complete.
    bool finish_on_close() const { return framing_.kind == BodyFraming::Kind::until_close; }
    bool done() const { return done_; }
    std::uint64_t payload_bytes() const { return payload_bytes_; }

private:
    Step feed_chunked(std::string_view input, BodySink* sink);
    void deliver(std::string_view payload, BodySink* sink);
    Step fail(std::size_t consumed, const char* why);
    void end_of_size_line();

    BodyFraming framing_;
    LineEnds line_ends_;
    bool done_ = false;
    std::uint64_t payload_bytes_ = 0;
    // Bytes left in the current chunk, or in the whole body for content_length.
    std::uint64_t remaining_ = 0;
    const char* error_text_ = nullptr;  // set once the body is malformed
    // chunked-decoding state
    enum class ChunkState {
        size,                // hex digits of the chunk size
        size_whitespace,     // BWS between the size and ';'
        extension,           // chunk extensions, skipped up to the line end
        size_lf,             // CR seen after the size line
        data,                // chunk payload
        data_cr,             // expecting CRLF (or LF) after the payload
        data_lf,             // CR seen after the payload
        trailer_line_start,  // after the last chunk: a trailer field or the final empty line
        trailer_line,
        trailer_lf,
        final_lf,  // CR of the final empty line seen
    } chunk_state_ = ChunkState::size;
    int size_digits_ = 0;
    std::size_t size_line_bytes_ = 0;  // extension bytes of the current size line (capped)
    std::size_t trailer_bytes_ = 0;    // trailer section bytes (capped)
};

struct Authority {
    std::string host;  // without brackets for IPv6 literals
    std::uint16_t port = 0;
};

// "host:port", "[2001:db8::1]:443" (CONNECT authority-form). The port (1..65535) is required.
// A host name is only checked for RFC 3986 reg-name characters (callers normalise it with
// normalize_hostname before use); an IPv6 literal in brackets must parse as one (no zone IDs).
std::optional<Authority> parse_authority(std::string_view text);

struct AbsoluteUrl {
    std::string scheme;       // lower-case, "http" or "https"
    Authority authority;      // port defaulted from the scheme
    std::string origin_form;  // path and query, "/" when empty
};

// "http://host[:port]/path?query" (absolute-form request target). The scheme is
// case-insensitive; userinfo ("user@host"), fragments, an empty or out-of-range port and any
// whitespace/CTL byte are rejected.
std::optional<AbsoluteUrl> parse_absolute_url(std::string_view target);

}  // namespace tlsgate::http1
