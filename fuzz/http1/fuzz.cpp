// Fuzz target for the HTTP/1.x framing parser. Beyond "no crash, no UB" it checks the promises
// a sans-io caller relies on: a head's verdict does not change as more bytes arrive (except
// need_more turning into complete or error), and a body reader finds the same end however the
// stream is cut into pieces.
//
// Input layout: the first kPlanBytes bytes choose the piece sizes, a prefix cut, a small head
// limit and the request method; the rest is the stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "inspect/http1.hpp"

namespace {

namespace http1 = tlsgate::http1;

constexpr std::size_t kPlanBytes = 4;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "http1 fuzz: %s\n", what);
        std::abort();
    }
}

// Remembers what passed through without copying it: a count and an FNV-1a hash.
class HashingSink : public http1::BodySink {
public:
    void on_body_data(std::span<const char> data) override {
        require(!data.empty(), "empty payload delivered");
        for (const char c : data) {
            hash_ = (hash_ ^ static_cast<unsigned char>(c)) * 1099511628211ull;
        }
        bytes_ += data.size();
    }
    std::uint64_t hash() const { return hash_; }
    std::uint64_t bytes() const { return bytes_; }

private:
    std::uint64_t hash_ = 14695981039346656037ull;
    std::uint64_t bytes_ = 0;
};

struct BodyOutcome {
    std::size_t consumed = 0;
    bool done = false;
    bool error = false;
    std::string_view error_text;
    std::uint64_t payload_hash = 0;
    std::uint64_t payload_bytes = 0;

    bool operator==(const BodyOutcome&) const = default;
};

// Feeds `stream` in pieces whose sizes cycle through `plan` (each 1..64 bytes; the plan byte 0
// means "all the rest at once"), stopping at the body's end or an error.
BodyOutcome read_body(http1::BodyFraming framing, std::string_view stream,
                      std::span<const std::uint8_t> plan) {
    http1::BodyReader reader(framing);
    HashingSink sink;
    BodyOutcome outcome;
    std::size_t position = 0;
    std::size_t plan_index = 0;
    do {
        std::size_t piece = stream.size() - position;
        if (!plan.empty()) {
            const std::uint8_t choice = plan[plan_index++ % plan.size()];
            if (choice != 0) {
                piece = std::min<std::size_t>(piece, choice % 64 + 1);
            }
        }
        const auto step = reader.feed(stream.substr(position, piece), &sink);
        require(step.consumed <= piece, "consumed more than it was fed");
        position += step.consumed;
        outcome.consumed += step.consumed;
        if (step.error) {
            require(!step.error_text.empty(), "error without a message");
            require(!step.done, "error and done at once");
            outcome.error = true;
            outcome.error_text = step.error_text;
            const auto again = reader.feed(stream.substr(position), &sink);
            require(again.error && again.consumed == 0, "error is not sticky");
            break;
        }
        if (step.done) {
            require(reader.done(), "step done but reader not done");
            outcome.done = true;
            const auto again = reader.feed(stream.substr(position), &sink);
            require(again.done && again.consumed == 0, "consumed after done");
            break;
        }
        require(step.consumed == piece, "unfinished body left input unconsumed");
    } while (position < stream.size());
    outcome.payload_hash = sink.hash();
    outcome.payload_bytes = sink.bytes();
    require(reader.payload_bytes() == sink.bytes(), "payload_bytes disagrees with the sink");
    if (framing.kind == http1::BodyFraming::Kind::until_close) {
        require(!outcome.done && !outcome.error && outcome.consumed == stream.size(),
                "until_close must take everything and never end");
    }
    if (framing.kind == http1::BodyFraming::Kind::none) {
        require(outcome.done && outcome.consumed == 0, "none must end at once");
    }
    return outcome;
}

void check_body(http1::BodyFraming framing, std::string_view stream,
                std::span<const std::uint8_t> plan) {
    const BodyOutcome whole = read_body(framing, stream, {});
    const BodyOutcome pieces = read_body(framing, stream, plan);
    require(whole == pieces, "body outcome depends on how the stream is split");
    if (framing.kind == http1::BodyFraming::Kind::content_length) {
        require(whole.done == (stream.size() >= framing.length), "content_length end misplaced");
    }
}

// The verdict on a prefix must be compatible with the verdict on the whole buffer.
template <typename Result>
void check_prefix_consistency(const Result& prefix, const Result& whole, std::size_t prefix_size) {
    switch (prefix.status) {
        case http1::ParseStatus::need_more:
            break;
        case http1::ParseStatus::error:
            require(whole.status == http1::ParseStatus::error, "error on a prefix but not on more");
            break;
        case http1::ParseStatus::complete:
            require(
                whole.status == http1::ParseStatus::complete && whole.head_size == prefix.head_size,
                "complete on a prefix but different on more");
            break;
    }
    if (whole.status == http1::ParseStatus::complete && prefix_size < whole.head_size) {
        require(prefix.status == http1::ParseStatus::need_more, "head complete before its end");
    }
}

template <typename Result>
void check_head_result(const Result& result, std::size_t buffer_size, std::size_t max_head_bytes) {
    switch (result.status) {
        case http1::ParseStatus::complete:
            require(result.head_size > 0 && result.head_size <= buffer_size,
                    "head_size out of range");
            require(result.head_size <= max_head_bytes, "head larger than the limit");
            require(result.error.empty(), "complete with an error");
            require(result.head.headers.size() <= http1::kMaxHeaderLines, "too many headers");
            for (const auto& header : result.head.headers) {
                require(!header.name.empty(), "empty header name");
            }
            break;
        case http1::ParseStatus::error:
            require(!result.error.empty(), "error without a message");
            break;
        case http1::ParseStatus::need_more:
            require(buffer_size < max_head_bytes, "need_more at the limit");
            break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < kPlanBytes) {
        return 0;
    }
    const std::span<const std::uint8_t> plan(data, kPlanBytes);
    const std::string_view stream(reinterpret_cast<const char*>(data) + kPlanBytes,
                                  size - kPlanBytes);
    const std::size_t prefix_size = (plan[0] | (plan[1] << 8)) % (stream.size() + 1);
    const std::size_t small_limit = 16 + plan[2];
    static constexpr std::string_view kMethods[] = {"GET", "HEAD", "CONNECT", "POST"};
    const std::string_view method = kMethods[plan[3] % 4];

    // Requests.
    for (const std::size_t limit : {http1::kDefaultMaxHeadBytes, small_limit}) {
        const auto request = http1::parse_request_head(stream, limit);
        check_head_result(request, stream.size(), limit);
        const auto prefix = http1::parse_request_head(stream.substr(0, prefix_size), limit);
        check_prefix_consistency(prefix, request, prefix_size);
        if (request.status == http1::ParseStatus::complete) {
            require(!request.head.method.empty() && !request.head.target.empty(),
                    "request without method or target");
            const auto framing = http1::request_body_framing(request.head);
            require(framing.ok != !framing.error.empty(), "framing ok and error disagree");
            if (framing.ok) {
                check_body(framing.framing, stream.substr(request.head_size), plan);
            }
            (void)http1::wants_keep_alive(request.head.version_minor, request.head.headers);
            (void)http1::header_has_token(request.head.headers, "connection", "close");
            (void)http1::find_header(request.head.headers, "host");
            (void)http1::parse_authority(request.head.target);
            (void)http1::parse_absolute_url(request.head.target);
        }
    }

    // Responses.
    const auto response = http1::parse_response_head(stream, small_limit);
    check_head_result(response, stream.size(), small_limit);
    const auto response_prefix =
        http1::parse_response_head(stream.substr(0, prefix_size), small_limit);
    check_prefix_consistency(response_prefix, response, prefix_size);
    const auto full_response = http1::parse_response_head(stream);
    check_head_result(full_response, stream.size(), http1::kDefaultMaxHeadBytes);
    if (full_response.status == http1::ParseStatus::complete) {
        require(full_response.head.status >= 100 && full_response.head.status <= 999,
                "status out of range");
        const auto framing = http1::response_body_framing(full_response.head, method);
        if (framing.ok) {
            check_body(framing.framing, stream.substr(full_response.head_size), plan);
        }
    }

    // The whole stream as a body of every kind.
    check_body({http1::BodyFraming::Kind::chunked, 0}, stream, plan);
    check_body({http1::BodyFraming::Kind::content_length, plan[2]}, stream, plan);
    check_body({http1::BodyFraming::Kind::until_close, 0}, stream, plan);
    check_body({http1::BodyFraming::Kind::none, 0}, stream, plan);

    // Authorities and absolute URLs.
    if (const auto authority = http1::parse_authority(stream)) {
        require(!authority->host.empty() && authority->port != 0, "authority without host or port");
    }
    if (const auto url = http1::parse_absolute_url(stream)) {
        require(url->scheme == "http" || url->scheme == "https", "unexpected scheme");
        require(!url->authority.host.empty() && url->authority.port != 0, "url without host/port");
        require(!url->origin_form.empty() && url->origin_form.front() == '/',
                "origin form does not start with /");
    }
    return 0;
}
