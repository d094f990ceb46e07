#include "inspect/http1.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "common/ip.hpp"

namespace tlsgate::http1 {
namespace {

constexpr std::size_t kNotFound = std::string_view::npos;
// Chunk extensions and trailers are skipped, not stored, but a peer must not make us walk an
// unbounded size line or trailer section while no payload moves.
constexpr std::size_t kMaxChunkExtensionBytes = 4096;
constexpr std::size_t kMaxTrailerBytes = 64 * 1024;
constexpr int kMaxChunkSizeDigits = 16;  // 16 hex digits fill a uint64 exactly

// RFC 9110 section 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
constexpr bool is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
            return true;
        default:
            return false;
    }
}

constexpr bool is_ctl(unsigned char c) {
    return c < 0x20 || c == 0x7f;
}
constexpr bool is_space_or_tab(char c) {
    return c == ' ' || c == '\t';
}
constexpr bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Field values and reason phrases: HTAB, SP, VCHAR and obs-text; every other control byte
// (NUL, a stray CR, ...) is how header injection and smuggling start.
constexpr bool is_field_value_byte(unsigned char c) {
    return c == '\t' || !is_ctl(c);
}

bool is_token(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return is_tchar(static_cast<unsigned char>(c));
    });
}

constexpr char to_lower_ascii(char c) {
    return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return to_lower_ascii(x) == to_lower_ascii(y);
           });
}

std::string_view trim_whitespace(std::string_view text) {
    while (!text.empty() && is_space_or_tab(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_space_or_tab(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

// Calls `visit` with each trimmed, non-empty element of a comma-separated list. Empty elements
// are ignored, as RFC 9110 section 5.6.1 asks of recipients.
template <typename Visit>
void for_each_list_element(std::string_view list, Visit&& visit) {
    while (true) {
        const std::size_t comma = list.find(',');
        const std::string_view element = trim_whitespace(list.substr(0, comma));
        if (!element.empty()) {
            visit(element);
        }
        if (comma == kNotFound) {
            return;
        }
        list.remove_prefix(comma + 1);
    }
}

// Index just past the blank line that ends a head, searching from `from` (which must be at or
// before the LF ending the first line), or kNotFound. A head ends at LF followed by LF or CRLF;
// that covers "\r\n\r\n", "\n\n", "\r\n\n" and "\n\r\n".
std::size_t find_head_end(std::string_view buffer, std::size_t from) {
    const char* const data = buffer.data();
    const std::size_t size = buffer.size();
    while (from < size) {
        const void* found = std::memchr(data + from, '\n', size - from);
        if (found == nullptr) {
            return kNotFound;
        }
        const std::size_t lf = static_cast<std::size_t>(static_cast<const char*>(found) - data);
        if (lf + 1 < size && data[lf + 1] == '\n') {
            return lf + 2;
        }
        if (lf + 2 < size && data[lf + 1] == '\r' && data[lf + 2] == '\n') {
            return lf + 3;
        }
        from = lf + 1;
    }
    return kNotFound;
}

// The first line as far as it has arrived: `text` excludes the line end, `complete` says whether
// the LF has arrived, `end` is the index of that LF (or the buffer size).
struct FirstLine {
    std::string_view text;
    bool complete = false;
    std::size_t end = 0;
};

FirstLine first_line_at(std::string_view buffer, std::size_t start) {
    FirstLine line;
    const std::size_t lf = buffer.find('\n', start);
    line.complete = lf != kNotFound;
    line.end = line.complete ? lf : buffer.size();
    line.text = buffer.substr(start, line.end - start);
    // A trailing CR is the line end's (or, while incomplete, may become it); any other CR is a
    // control byte the line checks reject.
    if (!line.text.empty() && line.text.back() == '\r') {
        line.text.remove_suffix(1);
    }
    return line;
}

// Outcome of checking a first line that may not have fully arrived.
struct LineCheck {
    enum class Verdict { valid, incomplete, invalid } verdict = Verdict::valid;
    const char* error = nullptr;
};

LineCheck line_invalid(const char* why) {
    return {LineCheck::Verdict::invalid, why};
}

// Checks `version` (possibly a prefix of it, while incomplete) against "HTTP/1.0" / "HTTP/1.1".
// On success stores the minor version.
LineCheck check_version(std::string_view version, bool complete, int& version_minor) {
    static constexpr std::string_view kPrefix = "HTTP/1.";
    const std::size_t prefix_bytes = std::min(version.size(), kPrefix.size());
    if (version.substr(0, prefix_bytes) != kPrefix.substr(0, prefix_bytes)) {
        return line_invalid("not an HTTP/1.x version");
    }
    if (version.size() <= kPrefix.size()) {
        return complete ? line_invalid("truncated HTTP version")
                        : LineCheck{LineCheck::Verdict::incomplete};
    }
    const char minor = version[kPrefix.size()];
    if (minor != '0' && minor != '1') {
        return line_invalid("unsupported HTTP version (only HTTP/1.0 and HTTP/1.1)");
    }
    version_minor = minor - '0';
    return {};
}

// request-line = method SP request-target SP HTTP-version
LineCheck check_request_line(std::string_view line, bool complete, RequestHead& head) {
    const LineCheck incomplete{LineCheck::Verdict::incomplete};
    std::size_t i = 0;
    while (i < line.size() && is_tchar(static_cast<unsigned char>(line[i]))) {
        ++i;
    }
    if (i == line.size()) {
        return complete ? line_invalid("request line has no target") : incomplete;
    }
    if (line[i] != ' ') {
        return line_invalid("request method is not a token");
    }
    if (i == 0) {
        return line_invalid("request line has no method");
    }
    const std::size_t target_start = ++i;
    while (i < line.size() && line[i] != ' ' && !is_ctl(static_cast<unsigned char>(line[i]))) {
        ++i;
    }
    if (i == line.size()) {
        return complete ? line_invalid("request line has no HTTP version") : incomplete;
    }
    if (line[i] != ' ') {
        return line_invalid("request target contains a control byte");
    }
    if (i == target_start) {
        return line_invalid("request target is empty");
    }
    const std::size_t version_start = i + 1;
    const std::string_view version = line.substr(version_start);
    static constexpr std::size_t kVersionSize = 8;  // "HTTP/1.1"
    LineCheck check = check_version(version.substr(0, kVersionSize),
                                    complete && version.size() <= kVersionSize, head.version_minor);
    if (check.verdict != LineCheck::Verdict::valid) {
        return check;
    }
    if (version.size() > kVersionSize) {
        return line_invalid("unexpected bytes after the HTTP version");
    }
    if (!complete) {
        return incomplete;
    }
    head.method.assign(line.substr(0, target_start - 1));
    head.target.assign(line.substr(target_start, i - target_start));
    return {};
}

// status-line = HTTP-version SP status-code SP [ reason-phrase ]
// The SP after the code is optional: servers that send "HTTP/1.1 200\r\n" exist.
LineCheck check_status_line(std::string_view line, bool complete, ResponseHead& head) {
    const LineCheck incomplete{LineCheck::Verdict::incomplete};
    static constexpr std::size_t kVersionSize = 8;
    LineCheck check = check_version(line.substr(0, kVersionSize),
                                    complete && line.size() <= kVersionSize, head.version_minor);
    if (check.verdict != LineCheck::Verdict::valid) {
        return check;
    }
    if (line.size() == kVersionSize) {
        return complete ? line_invalid("status line has no status code") : incomplete;
    }
    if (line[kVersionSize] != ' ') {
        return line_invalid("unexpected bytes after the HTTP version");
    }
    static constexpr std::size_t kCodeStart = kVersionSize + 1;
    static constexpr std::size_t kCodeDigits = 3;
    int status = 0;
    for (std::size_t i = kCodeStart; i < kCodeStart + kCodeDigits; ++i) {
        if (i == line.size()) {
            return complete ? line_invalid("status code is not 3 digits") : incomplete;
        }
        if (!is_digit(line[i]) || (i == kCodeStart && line[i] == '0')) {
            return line_invalid("status code is not 3 digits");
        }
        status = status * 10 + (line[i] - '0');
    }
    static constexpr std::size_t kCodeEnd = kCodeStart + kCodeDigits;
    std::string_view reason;
    if (line.size() > kCodeEnd) {
        if (line[kCodeEnd] != ' ') {
            return line_invalid("status code is not 3 digits");
        }
        reason = line.substr(kCodeEnd + 1);
        const bool reason_ok = std::all_of(reason.begin(), reason.end(), [](char c) {
            return is_field_value_byte(static_cast<unsigned char>(c));
        });
        if (!reason_ok) {
            return line_invalid("reason phrase contains a control byte");
        }
    }
    if (!complete) {
        return incomplete;
    }
    head.status = status;
    head.reason.assign(reason);
    return {};
}

constexpr auto kTcharTable = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 256; ++c) {
        table[c] = is_tchar(static_cast<unsigned char>(c));
    }
    return table;
}();

constexpr auto kFieldValueTable = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 256; ++c) {
        table[c] = is_field_value_byte(static_cast<unsigned char>(c));
    }
    return table;
}();

// Why a header line (without its line end) is not a valid field line; nullptr if it is.
const char* header_line_error(std::string_view line) {
    if (is_space_or_tab(line.front())) {
        return "obsolete line folding in header";
    }
    const std::size_t colon = line.find(':');
    if (colon == kNotFound) {
        return "header line without a colon";
    }
    const std::string_view name = line.substr(0, colon);
    if (name.empty()) {
        return "empty header name";
    }
    if (is_space_or_tab(name.back())) {
        // RFC 9112 section 5.1: servers must reject this; proxies must strip it. Rejecting
        // is the safe choice for both roles.
        return "whitespace between header name and colon";
    }
    if (!is_token(name)) {
        return "header name is not a token";
    }
    const std::string_view value = line.substr(colon + 1);
    if (!std::all_of(value.begin(), value.end(),
                     [](char c) { return is_field_value_byte(static_cast<unsigned char>(c)); })) {
        return "control byte in header value";
    }
    return nullptr;
}

// Parses the header lines in `fields` (everything between the first line's LF and the end of
// the blank line). Returns an error message, or nullptr on success.
// One pass per line on the hot path (every head the dissector and the proxy see): the name is
// checked byte by byte up to its colon, the value up to the line end. Anything unexpected is
// handed to header_line_error for the precise reason.
const char* parse_header_lines(std::string_view fields, std::vector<Header>& headers) {
    // One allocation for the list instead of a reallocation (moving every header) per doubling.
    headers.reserve(std::min<std::size_t>(
        static_cast<std::size_t>(std::count(fields.begin(), fields.end(), '\n')), kMaxHeaderLines));
    const auto byte_at = [&fields](std::size_t i) { return static_cast<unsigned char>(fields[i]); };
    std::size_t line_count = 0;
    std::size_t at = 0;
    while (true) {
        const std::size_t line_end = fields.find('\n', at);
        if (line_end == kNotFound) {
            return "header section has no end";  // unreachable: find_head_end saw the blank line
        }
        const std::size_t content_end =
            line_end > at && fields[line_end - 1] == '\r' ? line_end - 1 : line_end;
        if (content_end == at) {
            return nullptr;
        }
        if (++line_count > kMaxHeaderLines) {
            return "too many header lines";
        }
        std::size_t colon = at;
        while (colon < content_end && kTcharTable[byte_at(colon)]) {
            ++colon;
        }
        const bool name_ok = colon > at && colon < content_end && fields[colon] == ':';
        std::size_t value_end = colon + 1;
        while (name_ok && value_end < content_end && kFieldValueTable[byte_at(value_end)]) {
            ++value_end;
        }
        if (!name_ok || value_end < content_end) {
            const char* error = header_line_error(fields.substr(at, content_end - at));
            return error != nullptr ? error : "malformed header line";
        }
        headers.push_back(Header{
            std::string(fields.substr(at, colon - at)),
            std::string(trim_whitespace(fields.substr(colon + 1, content_end - colon - 1)))});
        at = line_end + 1;
    }
}

// The steps shared by requests and responses. `start` is where the first line begins; the
// checker validates (and on completion stores) the first line.
template <typename Head, typename CheckFirstLine>
HeadResult<Head> parse_head(std::string_view buffer, std::size_t start, std::size_t max_head_bytes,
                            CheckFirstLine&& check_first_line) {
    HeadResult<Head> result;
    auto fail = [&result](std::string message) {
        result.status = ParseStatus::error;
        result.error = std::move(message);
        return std::move(result);
    };
    auto too_large = [&] {
        return fail("head exceeds " + std::to_string(max_head_bytes) + " bytes");
    };
    // Only the first max_head_bytes bytes may hold the head.
    const std::string_view window = buffer.substr(0, std::min(buffer.size(), max_head_bytes));
    const bool window_is_full = buffer.size() >= max_head_bytes;

    const FirstLine line = first_line_at(window, std::min(start, window.size()));
    const LineCheck check = check_first_line(line.text, line.complete, result.head);
    if (check.verdict == LineCheck::Verdict::invalid) {
        return fail(check.error);
    }
    if (check.verdict == LineCheck::Verdict::incomplete) {
        if (window_is_full) {
            return too_large();
        }
        return result;
    }
    const std::size_t head_end = find_head_end(window, line.end);
    if (head_end == kNotFound) {
        if (window_is_full) {
            return too_large();
        }
        return result;
    }
    if (const char* error = parse_header_lines(window.substr(line.end + 1, head_end - line.end - 1),
                                               result.head.headers)) {
        return fail(error);
    }
    result.status = ParseStatus::complete;
    result.head_size = head_end;
    return result;
}

// RFC 9112 section 2.2: a server should ignore empty lines received before the request line
// (some clients send an extra CRLF after a POST body). Returns the index of the first byte that
// is not part of such a line.
std::size_t skip_leading_empty_lines(std::string_view buffer) {
    std::size_t i = 0;
    while (i < buffer.size()) {
        if (buffer[i] == '\n') {
            ++i;
        } else if (buffer[i] == '\r' && i + 1 < buffer.size() && buffer[i + 1] == '\n') {
            i += 2;
        } else {
            break;
        }
    }
    return i;
}

struct ContentLength {
    enum class State { absent, valid, invalid, conflicting } state = State::absent;
    std::uint64_t value = 0;
};

// All Content-Length fields and list elements must agree ("42, 42" is one length, RFC 9110
// section 8.6); anything else is a framing error.
ContentLength find_content_length(const std::vector<Header>& headers) {
    ContentLength result;
    for (const Header& header : headers) {
        if (!iequals(header.name, "content-length")) {
            continue;
        }
        std::string_view list = header.value;
        while (true) {
            const std::size_t comma = list.find(',');
            const std::string_view element = trim_whitespace(list.substr(0, comma));
            if (element.empty()) {
                return {ContentLength::State::invalid};
            }
            std::uint64_t value = 0;
            for (const char c : element) {
                if (!is_digit(c)) {
                    return {ContentLength::State::invalid};
                }
                const auto digit = static_cast<std::uint64_t>(c - '0');
                if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
                    return {ContentLength::State::invalid};
                }
                value = value * 10 + digit;
            }
            if (result.state == ContentLength::State::valid && result.value != value) {
                return {ContentLength::State::conflicting};
            }
            result = {ContentLength::State::valid, value};
            if (comma == kNotFound) {
                break;
            }
            list.remove_prefix(comma + 1);
        }
    }
    return result;
}

struct TransferCodings {
    bool present = false;            // a Transfer-Encoding field exists
    bool chunked_last_only = false;  // codings end in "chunked", which appears nowhere else
};

TransferCodings find_transfer_codings(const std::vector<Header>& headers) {
    TransferCodings result;
    int chunked_count = 0;
    bool last_is_chunked = false;
    for (const Header& header : headers) {
        if (!iequals(header.name, "transfer-encoding")) {
            continue;
        }
        result.present = true;
        for_each_list_element(header.value, [&](std::string_view coding) {
            last_is_chunked = iequals(coding, "chunked");
            if (last_is_chunked) {
                ++chunked_count;
            }
        });
    }
    result.chunked_last_only = last_is_chunked && chunked_count == 1;
    return result;
}

FramingResult framing_error(std::string message) {
    FramingResult result;
    result.ok = false;
    result.error = std::move(message);
    return result;
}

FramingResult framing_of(BodyFraming::Kind kind, std::uint64_t length = 0) {
    FramingResult result;
    result.framing.kind = kind;
    result.framing.length = length;
    return result;
}

const char* content_length_error(ContentLength::State state) {
    return state == ContentLength::State::conflicting ? "conflicting Content-Length values"
                                                      : "invalid Content-Length";
}

bool is_reg_name_byte(char c) {
    // RFC 3986 reg-name = *( unreserved / pct-encoded / sub-delims )
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return std::string_view("-._~%!$&'()*+,;=").find(c) != kNotFound;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
    if (text.empty() || text.size() > 5) {
        return std::nullopt;
    }
    unsigned value = 0;
    for (const char c : text) {
        if (!is_digit(c)) {
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) {
        return std::nullopt;
    }
    return static_cast<std::uint16_t>(value);
}

// host [ ":" port ]; with require_port the port must be there.
std::optional<Authority> parse_host_and_port(std::string_view text, bool require_port,
                                             std::uint16_t default_port) {
    Authority authority;
    std::string_view rest;
    if (!text.empty() && text.front() == '[') {
        const std::size_t close = text.find(']');
        if (close == kNotFound) {
            return std::nullopt;
        }
        const std::string_view literal = text.substr(1, close - 1);
        // inet_pton stops at NUL, so check the alphabet first; zone IDs are not accepted.
        const bool alphabet_ok =
            !literal.empty() && std::all_of(literal.begin(), literal.end(), [](char c) {
                return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                       c == ':' || c == '.';
            });
        if (!alphabet_ok) {
            return std::nullopt;
        }
        const std::optional<IpAddress> address = IpAddress::parse(literal);
        if (!address || !address->is_v6) {
            return std::nullopt;
        }
        authority.host.assign(literal);
        rest = text.substr(close + 1);
    } else {
        const std::size_t colon = text.find(':');
        const std::string_view host = text.substr(0, colon);
        if (host.empty() || !std::all_of(host.begin(), host.end(), is_reg_name_byte)) {
            return std::nullopt;
        }
        authority.host.assign(host);
        rest = colon == kNotFound ? std::string_view{} : text.substr(colon);
    }
    if (rest.empty()) {
        if (require_port) {
            return std::nullopt;
        }
        authority.port = default_port;
        return authority;
    }
    if (rest.front() != ':') {
        return std::nullopt;
    }
    const std::optional<std::uint16_t> port = parse_port(rest.substr(1));
    if (!port) {
        return std::nullopt;
    }
    authority.port = *port;
    return authority;
}

}  // namespace

HeadResult<RequestHead> parse_request_head(std::string_view buffer, std::size_t max_head_bytes) {
    return parse_head<RequestHead>(buffer, skip_leading_empty_lines(buffer), max_head_bytes,
                                   check_request_line);
}

HeadResult<ResponseHead> parse_response_head(std::string_view buffer, std::size_t max_head_bytes) {
    return parse_head<ResponseHead>(buffer, 0, max_head_bytes, check_status_line);
}

std::optional<std::string_view> find_header(const std::vector<Header>& headers,
                                            std::string_view name) {
    for (const Header& header : headers) {
        if (iequals(header.name, name)) {
            return std::string_view(header.value);
        }
    }
    return std::nullopt;
}

bool header_has_token(const std::vector<Header>& headers, std::string_view name,
                      std::string_view token) {
    bool found = false;
    for (const Header& header : headers) {
        if (!found && iequals(header.name, name)) {
            for_each_list_element(header.value, [&](std::string_view element) {
                found = found || iequals(element, token);
            });
        }
    }
    return found;
}

bool wants_keep_alive(int version_minor, const std::vector<Header>& headers) {
    if (header_has_token(headers, "connection", "close")) {
        return false;
    }
    return version_minor >= 1 || header_has_token(headers, "connection", "keep-alive");
}

FramingResult request_body_framing(const RequestHead& head) {
    const TransferCodings codings = find_transfer_codings(head.headers);
    const ContentLength length = find_content_length(head.headers);
    if (codings.present) {
        // A front end and a back end that disagree on which of the two wins is exactly request
        // smuggling, so a request carrying both is refused rather than interpreted.
        if (length.state != ContentLength::State::absent) {
            return framing_error("both Transfer-Encoding and Content-Length in request");
        }
        if (head.version_minor == 0) {
            return framing_error("Transfer-Encoding in an HTTP/1.0 request");
        }
        if (!codings.chunked_last_only) {
            return framing_error("request Transfer-Encoding does not end in a single chunked");
        }
        return framing_of(BodyFraming::Kind::chunked);
    }
    switch (length.state) {
        case ContentLength::State::absent:
            return framing_of(BodyFraming::Kind::none);
        case ContentLength::State::valid:
            return framing_of(BodyFraming::Kind::content_length, length.value);
        default:
            return framing_error(content_length_error(length.state));
    }
}

FramingResult response_body_framing(const ResponseHead& head, std::string_view request_method) {
    const bool informational = head.status >= 100 && head.status < 200;
    if (request_method == "HEAD" || informational || head.status == 204 || head.status == 304) {
        return framing_of(BodyFraming::Kind::none);
    }
    if (request_method == "CONNECT" && head.status >= 200 && head.status < 300) {
        return framing_of(BodyFraming::Kind::none);  // the tunnel starts after the head
    }
    const TransferCodings codings = find_transfer_codings(head.headers);
    if (codings.present) {
        // RFC 9112 section 6.3 items 3 and 4: Transfer-Encoding overrides Content-Length; without
        // chunked last (or in HTTP/1.0, where framing is faulty) the body ends at close.
        if (head.version_minor >= 1 && codings.chunked_last_only) {
            return framing_of(BodyFraming::Kind::chunked);
        }
        return framing_of(BodyFraming::Kind::until_close);
    }
    const ContentLength length = find_content_length(head.headers);
    switch (length.state) {
        case ContentLength::State::absent:
            return framing_of(BodyFraming::Kind::until_close);
        case ContentLength::State::valid:
            return framing_of(BodyFraming::Kind::content_length, length.value);
        default:
            return framing_error(content_length_error(length.state));
    }
}

BodyReader::BodyReader(BodyFraming framing, LineEnds line_ends)
    : framing_(framing), line_ends_(line_ends) {
    switch (framing_.kind) {
        case BodyFraming::Kind::none:
            done_ = true;
            break;
        case BodyFraming::Kind::content_length:
            remaining_ = framing_.length;
            done_ = remaining_ == 0;
            break;
        case BodyFraming::Kind::chunked:
        case BodyFraming::Kind::until_close:
            break;
    }
}

void BodyReader::deliver(std::string_view payload, BodySink* sink) {
    if (payload.empty()) {
        return;
    }
    payload_bytes_ += payload.size();
    if (sink != nullptr) {
        sink->on_body_data(std::span<const char>(payload.data(), payload.size()));
    }
}

BodyReader::Step BodyReader::fail(std::size_t consumed, const char* why) {
    error_text_ = why;
    Step step;
    step.consumed = consumed;
    step.error = true;
    step.error_text = why;
    return step;
}

BodyReader::Step BodyReader::feed(std::string_view input, BodySink* sink) {
    if (error_text_ != nullptr) {
        return fail(0, error_text_);
    }
    Step step;
    if (done_) {
        step.done = true;
        return step;
    }
    switch (framing_.kind) {
        case BodyFraming::Kind::none:
            break;  // done_ was set by the constructor
        case BodyFraming::Kind::content_length: {
            const std::size_t take =
                static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, input.size()));
            deliver(input.substr(0, take), sink);
            remaining_ -= take;
            done_ = remaining_ == 0;
            step.consumed = take;
            break;
        }
        case BodyFraming::Kind::until_close:
            deliver(input, sink);
            step.consumed = input.size();
            break;
        case BodyFraming::Kind::chunked:
            return feed_chunked(input, sink);
    }
    step.done = done_;
    return step;
}

void BodyReader::end_of_size_line() {
    chunk_state_ = remaining_ == 0 ? ChunkState::trailer_line_start : ChunkState::data;
}

BodyReader::Step BodyReader::feed_chunked(std::string_view input, BodySink* sink) {
    std::size_t i = 0;
    while (i < input.size() && !done_) {
        const char c = input[i];
        switch (chunk_state_) {
            case ChunkState::size: {
                int nibble = -1;
                if (is_digit(c)) {
                    nibble = c - '0';
                } else if (c >= 'a' && c <= 'f') {
                    nibble = c - 'a' + 10;
                } else if (c >= 'A' && c <= 'F') {
                    nibble = c - 'A' + 10;
                }
                if (nibble >= 0) {
                    if (size_digits_ == kMaxChunkSizeDigits) {
                        return fail(i, "chunk size has more than 16 hex digits");
                    }
                    remaining_ = (remaining_ << 4) | static_cast<std::uint64_t>(nibble);
                    ++size_digits_;
                } else if (size_digits_ == 0) {
                    return fail(i, "chunk size is not a hex number");
                } else if (c == ';') {
                    chunk_state_ = ChunkState::extension;
                } else if (is_space_or_tab(c)) {
                    chunk_state_ = ChunkState::size_whitespace;
                } else if (c == '\r') {
                    chunk_state_ = ChunkState::size_lf;
                } else if (c == '\n') {
                    if (line_ends_ == LineEnds::crlf_only) {
                        return fail(i, "bare LF after chunk size");
                    }
                    end_of_size_line();
                } else {
                    return fail(i, "invalid byte after chunk size");
                }
                ++i;
                break;
            }
            case ChunkState::size_whitespace:
                // Whitespace is only allowed before an extension (BWS ";"); "5 \r\n" is a
                // smuggling vector when another parser reads it differently.
                if (c == ';') {
                    chunk_state_ = ChunkState::extension;
                } else if (!is_space_or_tab(c)) {
                    return fail(i, "invalid byte after chunk size");
                }
                if (++size_line_bytes_ > kMaxChunkExtensionBytes) {
                    return fail(i, "chunk extension too long");
                }
                ++i;
                break;
            case ChunkState::extension:
                if (c == '\r') {
                    chunk_state_ = ChunkState::size_lf;
                } else if (c == '\n') {
                    if (line_ends_ == LineEnds::crlf_only) {
                        return fail(i, "bare LF after chunk extension");
                    }
                    end_of_size_line();
                } else if (!is_field_value_byte(static_cast<unsigned char>(c))) {
                    return fail(i, "control byte in chunk extension");
                } else if (++size_line_bytes_ > kMaxChunkExtensionBytes) {
                    return fail(i, "chunk extension too long");
                }
                ++i;
                break;
            case ChunkState::size_lf:
                if (c != '\n') {
                    return fail(i, "CR without LF after chunk size");
                }
                end_of_size_line();
                ++i;
                break;
            case ChunkState::data: {
                const std::size_t take =
                    static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, input.size() - i));
                deliver(input.substr(i, take), sink);
                remaining_ -= take;
                i += take;
                if (remaining_ == 0) {
                    chunk_state_ = ChunkState::data_cr;
                }
                break;
            }
            case ChunkState::data_cr:
            case ChunkState::data_lf:
                if (c == '\r' && chunk_state_ == ChunkState::data_cr) {
                    chunk_state_ = ChunkState::data_lf;
                } else if (c == '\n' && (chunk_state_ == ChunkState::data_lf ||
                                         line_ends_ == LineEnds::lenient)) {
                    chunk_state_ = ChunkState::size;
                    size_digits_ = 0;
                    size_line_bytes_ = 0;
                } else {
                    return fail(i, "chunk data not followed by CRLF");
                }
                ++i;
                break;
            case ChunkState::trailer_line_start:
            case ChunkState::trailer_line:
                if (c == '\r') {
                    chunk_state_ = chunk_state_ == ChunkState::trailer_line_start
                                       ? ChunkState::final_lf
                                       : ChunkState::trailer_lf;
                } else if (c == '\n') {
                    if (line_ends_ == LineEnds::crlf_only) {
                        return fail(i, "bare LF in trailer");
                    }
                    if (chunk_state_ == ChunkState::trailer_line_start) {
                        done_ = true;
                    } else {
                        chunk_state_ = ChunkState::trailer_line_start;
                    }
                } else if (!is_field_value_byte(static_cast<unsigned char>(c))) {
                    return fail(i, "control byte in trailer");
                } else {
                    chunk_state_ = ChunkState::trailer_line;
                }
                if (++trailer_bytes_ > kMaxTrailerBytes) {
                    return fail(i, "trailer section too large");
                }
                ++i;
                break;
            case ChunkState::trailer_lf:
            case ChunkState::final_lf:
                if (c != '\n') {
                    return fail(i, "CR without LF in trailer section");
                }
                if (chunk_state_ == ChunkState::final_lf) {
                    done_ = true;
                } else {
                    chunk_state_ = ChunkState::trailer_line_start;
                }
                ++i;
                break;
        }
    }
    Step step;
    step.consumed = i;
    step.done = done_;
    return step;
}

std::optional<Authority> parse_authority(std::string_view text) {
    return parse_host_and_port(text, /*require_port=*/true, 0);
}

std::optional<AbsoluteUrl> parse_absolute_url(std::string_view target) {
    const bool clean = std::all_of(target.begin(), target.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte != ' ' && !is_ctl(byte) && c != '#';
    });
    if (!clean) {
        return std::nullopt;
    }
    const std::size_t scheme_end = target.find("://");
    if (scheme_end == kNotFound) {
        return std::nullopt;
    }
    AbsoluteUrl url;
    const std::string_view scheme = target.substr(0, scheme_end);
    std::uint16_t default_port = 0;
    if (iequals(scheme, "http")) {
        url.scheme = "http";
        default_port = 80;
    } else if (iequals(scheme, "https")) {
        url.scheme = "https";
        default_port = 443;
    } else {
        return std::nullopt;
    }
    const std::string_view rest = target.substr(scheme_end + 3);
    const std::size_t authority_end = rest.find_first_of("/?");
    const std::string_view authority_text = rest.substr(0, authority_end);
    if (authority_text.find('@') != kNotFound) {
        return std::nullopt;  // userinfo: a classic way to disguise the real host
    }
    std::optional<Authority> authority =
        parse_host_and_port(authority_text, /*require_port=*/false, default_port);
    if (!authority) {
        return std::nullopt;
    }
    url.authority = std::move(*authority);
    const std::string_view path =
        authority_end == kNotFound ? std::string_view{} : rest.substr(authority_end);
    if (path.empty() || path.front() == '?') {
        url.origin_form = "/";
    }
    url.origin_form.append(path);
    return url;
}

}  // namespace tlsgate::http1
