#include "inspect/http1_dissector.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace tlsgate::inspect {
namespace {

constexpr std::size_t kMaxHeadBytes = http1::kDefaultMaxHeadBytes;
// Up to this size a growing head is re-parsed on every feed, so garbage (a TLS record, another
// protocol) is refused at its first bytes. Beyond it the head is re-parsed only when the verdict
// can change: the first line ends, a blank line arrives or the limit is reached.
constexpr std::size_t kEagerParseBytes = 256;
constexpr std::string_view kRedacted = "<redacted>";
// A server may send 102 Processing for as long as it likes; the record keeps the first ones.
constexpr std::size_t kMaxInformationalRecorded = 16;

constexpr char to_lower_ascii(char c) {
    return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return to_lower_ascii(x) == to_lower_ascii(y);
           });
}

bool contains_lf(std::string_view text) {
    return !text.empty() && std::memchr(text.data(), '\n', text.size()) != nullptr;
}

// Whether a blank line (LF LF or LF CR LF) ends at or after index `from`: the only way bytes
// appended at `from` can complete a head.
bool blank_line_ends_at_or_after(std::string_view buffer, std::size_t from) {
    std::size_t search = from >= 2 ? from - 2 : 0;
    while (search < buffer.size()) {
        const void* found = std::memchr(buffer.data() + search, '\n', buffer.size() - search);
        if (found == nullptr) {
            return false;
        }
        const std::size_t lf =
            static_cast<std::size_t>(static_cast<const char*>(found) - buffer.data());
        if (lf + 1 < buffer.size() && buffer[lf + 1] == '\n') {
            return true;
        }
        if (lf + 2 < buffer.size() && buffer[lf + 1] == '\r' && buffer[lf + 2] == '\n') {
            return true;
        }
        search = lf + 1;
    }
    return false;
}

// Whether the first line (after any empty lines a client may send before a request) has its LF:
// the parser has then checked all of it, and only a blank line or the size limit can change
// its verdict.
bool first_line_complete(std::string_view buffer) {
    const std::size_t start = buffer.find_first_not_of("\r\n");
    return start != std::string_view::npos && buffer.find('\n', start) != std::string_view::npos;
}

template <typename Result>
struct HeadStep {
    Result result;             // as the parser said (need_more when it was not worth asking)
    std::size_t consumed = 0;  // bytes of the input that belong to the head
};

// Adds `input` to a head being gathered and parses when that can give a new verdict. A head
// that arrives whole in one feed is parsed straight from the input, never copied.
template <typename Buffer, typename Parse>
auto collect_head(Buffer& buffer, std::string_view input, Parse parse) {
    HeadStep<decltype(parse(input))> step;
    const std::size_t before = buffer.bytes.size();
    if (before == 0) {
        step.result = parse(input);
        if (step.result.status == http1::ParseStatus::complete) {
            step.consumed = step.result.head_size;
        } else if (step.result.status == http1::ParseStatus::need_more) {
            // need_more promises the input is under the head limit.
            buffer.bytes.assign(input);
            buffer.first_line_checked = first_line_complete(input);
            step.consumed = input.size();
        }
        return step;
    }
    const std::size_t take = std::min(input.size(), kMaxHeadBytes - before);
    buffer.bytes.append(input.data(), take);
    step.consumed = take;
    const std::string_view bytes = buffer.bytes;
    const bool worth_parsing = bytes.size() <= kEagerParseBytes || bytes.size() >= kMaxHeadBytes ||
                               blank_line_ends_at_or_after(bytes, before) ||
                               (!buffer.first_line_checked && contains_lf(bytes.substr(before)));
    if (!worth_parsing) {
        return step;
    }
    step.result = parse(bytes);
    switch (step.result.status) {
        case http1::ParseStatus::need_more:
            buffer.first_line_checked = first_line_complete(bytes);
            return step;
        case http1::ParseStatus::complete:
            // Every earlier blank line was parsed when it arrived, so the head ends in the new
            // bytes; anything else would lose body bytes, hence the check.
            if (step.result.head_size <= before) {
                step.result.status = http1::ParseStatus::error;
                step.result.error = "head end found in bytes already passed";
            } else {
                step.consumed = step.result.head_size - before;
            }
            break;
        case http1::ParseStatus::error:
            break;
    }
    buffer.bytes.clear();
    buffer.first_line_checked = false;
    return step;
}

auto parse_request(std::string_view bytes) {
    return http1::parse_request_head(bytes);
}

auto parse_response(std::string_view bytes) {
    return http1::parse_response_head(bytes);
}

std::string protocol_name(int version_minor) {
    return version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

std::string header_or_empty(const std::vector<http1::Header>& headers, std::string_view name) {
    return std::string(http1::find_header(headers, name).value_or(std::string_view{}));
}

// The parsed list becomes the record's, with the sensitive values replaced.
std::vector<HeaderField> recorded_headers(std::vector<HeaderField>&& headers,
                                          const std::vector<std::string>& redacted_names) {
    for (HeaderField& header : headers) {
        if (std::any_of(redacted_names.begin(), redacted_names.end(),
                        [&](const std::string& name) { return iequals(header.name, name); })) {
            header.value = kRedacted;
        }
    }
    return std::move(headers);
}

// The authority of an absolute-form target exactly as written ("example.com:8080").
std::string authority_text(std::string_view absolute_target) {
    const std::size_t scheme_end = absolute_target.find("://");
    const std::string_view rest = absolute_target.substr(scheme_end + 3);
    return std::string(rest.substr(0, rest.find_first_of("/?")));
}

}  // namespace

Http1Dissector::Http1Dissector(const DissectorOptions& options, ExchangeSink& sink)
    : options_(options),
      sink_(sink),
      capture_limit_(options.capture_bodies ? options.body_capture_limit : 0) {}

void Http1Dissector::feed(Side side, std::span<const char> bytes, Clock::time_point now) {
    if (stopped_ || bytes.empty()) {
        return;
    }
    const std::string_view input(bytes.data(), bytes.size());
    if (side == Side::client) {
        feed_client(input, now);
    } else {
        feed_server(input, now);
    }
}

void Http1Dissector::feed_client(std::string_view input, Clock::time_point now) {
    while (!input.empty() && !stopped_) {
        switch (client_.phase) {
            case Phase::head:
                input = take_request_head(input, now);
                break;
            case Phase::body:
                input = take_request_body(input, now);
                break;
            case Phase::awaiting_switch:
                if (held_client_bytes_.size() + input.size() > kMaxHeldClientBytes) {
                    fail("client sent too much before the answer to its CONNECT or Upgrade", now);
                    return;
                }
                if (held_client_bytes_.empty()) {
                    held_since_ = now;
                }
                held_client_bytes_.append(input);
                return;
            case Phase::websocket:
                if (PendingExchange* upgraded = websocket_exchange()) {
                    client_.websocket.feed(input, *upgraded->record.websocket);
                }
                return;
            case Phase::ended:
                return;
        }
    }
}

void Http1Dissector::feed_server(std::string_view input, Clock::time_point now) {
    while (!input.empty() && !stopped_) {
        switch (server_.phase) {
            case Phase::head:
                input = take_response_head(input, now);
                break;
            case Phase::body:
                input = take_response_body(input, now);
                break;
            case Phase::websocket:
                if (PendingExchange* upgraded = websocket_exchange()) {
                    server_.websocket.feed(input, *upgraded->record.websocket);
                }
                return;
            case Phase::awaiting_switch:  // the server side never waits
            case Phase::ended:
                return;
        }
    }
}

std::string_view Http1Dissector::take_request_head(std::string_view input, Clock::time_point now) {
    if (client_.head.bytes.empty()) {
        client_.head.started = now;
    }
    auto step = collect_head(client_.head, input, parse_request);
    switch (step.result.status) {
        case http1::ParseStatus::need_more:
            return {};
        case http1::ParseStatus::error:
            fail("malformed request head: " + step.result.error, now);
            return {};
        case http1::ParseStatus::complete:
            start_request(std::move(step.result.head), now);
            break;
    }
    return input.substr(step.consumed);
}

std::string_view Http1Dissector::take_response_head(std::string_view input, Clock::time_point now) {
    if (server_.head.bytes.empty()) {
        // Checked at the first byte: the relay passes a request on before its answer can come
        // back, so server bytes with nothing to answer are not HTTP/1 as we know it.
        if (awaiting_response() == nullptr) {
            fail("response without a request", now);
            return {};
        }
        server_.head.started = now;
    }
    auto step = collect_head(server_.head, input, parse_response);
    switch (step.result.status) {
        case http1::ParseStatus::need_more:
            return {};
        case http1::ParseStatus::error:
            fail("malformed response head: " + step.result.error, now);
            return {};
        case http1::ParseStatus::complete:
            start_response(std::move(step.result.head), now);
            break;
    }
    return input.substr(step.consumed);
}

std::string_view Http1Dissector::take_request_body(std::string_view input, Clock::time_point now) {
    const http1::BodyReader::Step step = client_.body->feed(input, &client_.sink);
    if (step.error) {
        fail("malformed request body: " + std::string(step.error_text), now);
        return {};
    }
    if (step.done) {
        complete_request(now);
    }
    return input.substr(step.consumed);
}

std::string_view Http1Dissector::take_response_body(std::string_view input, Clock::time_point now) {
    const http1::BodyReader::Step step = server_.body->feed(input, &server_.sink);
    if (step.error) {
        fail("malformed response body: " + std::string(step.error_text), now);
        return {};
    }
    if (step.done) {
        complete_response(now);
    }
    return input.substr(step.consumed);
}

void Http1Dissector::start_request(http1::RequestHead&& head, Clock::time_point now) {
    if (pending_.size() >= kMaxPendingRequests) {
        fail("more than " + std::to_string(kMaxPendingRequests) + " requests awaiting responses",
             now);
        return;
    }
    const http1::FramingResult framing = http1::request_body_framing(head);
    PendingExchange& exchange = pending_.emplace_back();
    HttpExchange& record = exchange.record;
    record.protocol = protocol_name(head.version_minor);
    record.sequence = next_sequence_++;
    record.request_start = client_.head.started;
    record.scheme = options_.scheme;
    if (head.method == "CONNECT") {
        record.authority = head.target;  // authority-form: the target is all there is
    } else if (const auto url = http1::parse_absolute_url(head.target)) {
        record.authority = authority_text(head.target);
        record.path = url->origin_form;
    } else {
        record.authority = header_or_empty(head.headers, "host");
        record.path = head.target;
    }
    if (head.method == "CONNECT" || http1::find_header(head.headers, "upgrade")) {
        exchange.protocol_switch = Switch::undecided;
        exchange.websocket_requested =
            http1::header_has_token(head.headers, "upgrade", "websocket");
    }
    record.request_body.content_type = header_or_empty(head.headers, "content-type");
    record.request_body.content_encoding = header_or_empty(head.headers, "content-encoding");
    record.method = std::move(head.method);
    record.request_headers = recorded_headers(std::move(head.headers), options_.redacted_headers);
    if (!framing.ok) {
        fail("malformed request: " + framing.error, now);
        return;
    }
    client_.body.emplace(framing.framing);
    client_.sink.recorder.start(capture_limit_);
    client_.phase = Phase::body;
    if (client_.body->done()) {
        complete_request(now);
    }
}

void Http1Dissector::start_response(http1::ResponseHead&& head, Clock::time_point now) {
    PendingExchange& exchange = *awaiting_response();
    HttpExchange& record = exchange.record;
    if (!record.response_start) {
        record.response_start = server_.head.started;
    }
    if (head.status == 101) {
        switch_protocols(exchange, std::move(head), now);
        return;
    }
    if (head.status < 200) {
        if (record.informational.size() < kMaxInformationalRecorded) {
            record.informational.push_back(head.status);
        }
        return;  // the final response follows
    }
    const http1::FramingResult framing = http1::response_body_framing(head, record.method);
    record.status = head.status;
    record.reason = std::move(head.reason);
    record.response_body.content_type = header_or_empty(head.headers, "content-type");
    record.response_body.content_encoding = header_or_empty(head.headers, "content-encoding");
    record.response_headers = recorded_headers(std::move(head.headers), options_.redacted_headers);
    if (!framing.ok) {
        fail("malformed response: " + framing.error, now);
        return;
    }
    if (record.method == "CONNECT" && record.status >= 200 && record.status < 300) {
        open_tunnel(exchange, now);
        return;
    }
    server_.body.emplace(framing.framing);
    server_.sink.recorder.start(capture_limit_);
    server_.phase = Phase::body;
    if (server_.body->done()) {
        complete_response(now);
    }
}

void Http1Dissector::switch_protocols(PendingExchange& exchange, http1::ResponseHead&& head,
                                      Clock::time_point now) {
    HttpExchange& record = exchange.record;
    const bool websocket_accepted = http1::header_has_token(head.headers, "upgrade", "websocket");
    record.status = head.status;
    record.reason = std::move(head.reason);
    record.response_headers = recorded_headers(std::move(head.headers), options_.redacted_headers);
    if (exchange.protocol_switch == Switch::not_asked) {
        fail("101 Switching Protocols without an Upgrade request", now);
        return;
    }
    // A 101 has no body; recording nothing still gives the summary its empty-input hash.
    server_.sink.recorder.start(0);
    server_.sink.recorder.finish_into(record.response_body);
    exchange.response_complete = true;
    exchange.response_end = now;
    ++responded_;
    if (!exchange.websocket_requested || !websocket_accepted) {
        open_tunnel(exchange, now);  // h2c or another protocol we do not read
        return;
    }
    exchange.protocol_switch = Switch::websocket;
    record.websocket.emplace();
    server_.phase = Phase::websocket;
    // A client still sending its request body switches when that body ends (complete_request).
    if (client_.phase == Phase::awaiting_switch) {
        enter_client_websocket();
    }
}

void Http1Dissector::complete_request(Clock::time_point now) {
    PendingExchange& exchange = pending_.back();  // the request being read is always the newest
    client_.sink.recorder.finish_into(exchange.record.request_body);
    client_.body.reset();
    exchange.request_complete = true;
    exchange.request_end = now;
    switch (exchange.protocol_switch) {
        case Switch::not_asked:
        case Switch::declined:
            client_.phase = Phase::head;
            break;
        case Switch::undecided:
            client_.phase = Phase::awaiting_switch;
            break;
        case Switch::websocket:
            client_.phase = Phase::websocket;
            break;
    }
    emit_completed();
}

void Http1Dissector::complete_response(Clock::time_point now) {
    PendingExchange& exchange = pending_at(responded_);
    server_.sink.recorder.finish_into(exchange.record.response_body);
    server_.body.reset();
    exchange.response_complete = true;
    exchange.response_end = now;
    ++responded_;
    server_.phase = Phase::head;
    const bool switch_declined = exchange.protocol_switch == Switch::undecided;
    if (switch_declined) {
        exchange.protocol_switch = Switch::declined;
    }
    emit_completed();  // may report `exchange`: not to be touched below
    if (switch_declined && client_.phase == Phase::awaiting_switch) {
        resume_client_after_declined_switch();
    }
}

void Http1Dissector::abandon_request_body(std::string_view why, Clock::time_point now) {
    PendingExchange& exchange = pending_.back();
    client_.sink.recorder.finish_into(exchange.record.request_body);
    client_.body.reset();
    if (exchange.record.error.empty()) {
        exchange.record.error = why;
    }
    exchange.request_complete = true;
    exchange.request_end = now;
}

void Http1Dissector::abandon_response_body(std::string_view why, Clock::time_point now) {
    PendingExchange& exchange = pending_at(responded_);
    server_.sink.recorder.finish_into(exchange.record.response_body);
    server_.body.reset();
    if (exchange.record.error.empty()) {
        exchange.record.error = why;
    }
    exchange.response_complete = true;
    exchange.response_end = now;
    ++responded_;
}

void Http1Dissector::enter_client_websocket() {
    client_.phase = Phase::websocket;
    const std::string held = std::move(held_client_bytes_);
    held_client_bytes_.clear();
    if (PendingExchange* upgraded = websocket_exchange(); upgraded && !held.empty()) {
        client_.websocket.feed(held, *upgraded->record.websocket);
    }
}

void Http1Dissector::resume_client_after_declined_switch() {
    client_.phase = Phase::head;
    const std::string held = std::move(held_client_bytes_);
    held_client_bytes_.clear();
    if (!held.empty()) {
        feed_client(held, held_since_);
    }
}

void Http1Dissector::open_tunnel(PendingExchange& exchange, Clock::time_point now) {
    if (!exchange.request_complete) {
        // A CONNECT or Upgrade request that declared a body: the switch cuts it where it is.
        client_.sink.recorder.finish_into(exchange.record.request_body);
        client_.body.reset();
        exchange.request_complete = true;
        exchange.request_end = now;
    }
    if (!exchange.response_complete) {
        server_.sink.recorder.start(0);
        server_.sink.recorder.finish_into(exchange.record.response_body);
        exchange.response_complete = true;
        exchange.response_end = now;
        ++responded_;
    }
    emit_completed();
    // Nothing else can be pending (the client waits for the answer before sending more), but
    // if something were, it would never get its answer now.
    for (PendingExchange& left : pending_) {
        if (left.record.error.empty()) {
            left.record.error = "the connection became an opaque tunnel";
        }
        emit(left, now);
    }
    pending_.clear();
    responded_ = 0;
    stopped_ = true;
}

void Http1Dissector::emit_completed() {
    while (!pending_.empty()) {
        PendingExchange& front = pending_.front();
        // The upgrade exchange waits for its WebSocket summary (end or finish).
        if (!front.request_complete || !front.response_complete ||
            front.protocol_switch == Switch::websocket) {
            return;
        }
        emit(front, std::max(front.request_end, front.response_end));
        pending_.pop_front();
        --responded_;
    }
}

void Http1Dissector::emit(PendingExchange& exchange, Clock::time_point end) {
    exchange.record.end = end;
    sink_.on_exchange(std::move(exchange.record));
}

void Http1Dissector::fail(std::string reason, Clock::time_point now) {
    failure_ = std::move(reason);
    if (client_.phase == Phase::body) {
        abandon_request_body(failure_, now);
    }
    if (server_.phase == Phase::body) {
        abandon_response_body(failure_, now);
    }
    for (PendingExchange& exchange : pending_) {
        if (exchange.record.error.empty()) {
            exchange.record.error = failure_;
        }
        emit(exchange, now);
    }
    pending_.clear();
    responded_ = 0;
    held_client_bytes_.clear();
    stopped_ = true;
}

// Re-parsing a growing head is skipped while it cannot complete, which can leave a bad first
// line unjudged when a side stops sending: give the verdict a whole feed would have given.
void Http1Dissector::judge_partial_heads(Clock::time_point now) {
    if (stopped_) {
        return;
    }
    if (!client_.head.bytes.empty() && client_.phase == Phase::head) {
        const auto result = parse_request(client_.head.bytes);
        if (result.status == http1::ParseStatus::error) {
            fail("malformed request head: " + result.error, now);
            return;
        }
    }
    if (!server_.head.bytes.empty() && server_.phase == Phase::head) {
        const auto result = parse_response(server_.head.bytes);
        if (result.status == http1::ParseStatus::error) {
            fail("malformed response head: " + result.error, now);
        }
    }
}

void Http1Dissector::end(Side side, Clock::time_point now) {
    judge_partial_heads(now);
    if (stopped_) {
        return;
    }
    Direction& direction = side == Side::client ? client_ : server_;
    if (direction.ended) {
        return;
    }
    direction.ended = true;
    if (side == Side::client) {
        if (client_.phase == Phase::body) {
            abandon_request_body("request body truncated", now);
        }
        client_.phase = Phase::ended;
        held_client_bytes_.clear();
    } else {
        if (server_.phase == Phase::body) {
            if (server_.body->finish_on_close()) {
                complete_response(now);  // the close is what ends an until-close body
                if (stopped_) {
                    return;
                }
            } else {
                abandon_response_body("response body truncated", now);
            }
        }
        // Whatever still waits for an answer will not get one.
        const bool head_started = !server_.head.bytes.empty();
        for (std::size_t i = responded_; i < pending_.size(); ++i) {
            PendingExchange& exchange = pending_at(i);
            if (exchange.record.error.empty()) {
                exchange.record.error = i == responded_ && head_started
                                            ? "connection closed during the response head"
                                            : "connection closed before the response";
            }
            exchange.response_complete = true;
            exchange.response_end = now;
        }
        responded_ = pending_.size();
        server_.phase = Phase::ended;
        server_.head.bytes.clear();
    }
    if (client_.ended && server_.ended) {
        finish(now);
        return;
    }
    emit_completed();
}

void Http1Dissector::finish(Clock::time_point now) {
    judge_partial_heads(now);
    if (stopped_) {
        return;
    }
    if (client_.phase == Phase::body) {
        abandon_request_body("request body truncated", now);
    }
    if (server_.phase == Phase::body) {
        if (server_.body->finish_on_close()) {
            complete_response(now);
            if (stopped_) {
                return;
            }
        } else {
            abandon_response_body("response body truncated", now);
        }
    }
    const bool head_started = !server_.head.bytes.empty();
    for (std::size_t i = 0; i < pending_.size(); ++i) {
        PendingExchange& exchange = pending_at(i);
        if (exchange.record.error.empty()) {
            if (!exchange.request_complete) {
                exchange.record.error = "connection closed before the request was complete";
            } else if (!exchange.response_complete) {
                exchange.record.error = i == responded_ && head_started
                                            ? "connection closed during the response head"
                                            : "connection closed before the response";
            }
        }
        emit(exchange, now);
    }
    pending_.clear();
    responded_ = 0;
    held_client_bytes_.clear();
    stopped_ = true;
}

Http1Dissector::PendingExchange& Http1Dissector::pending_at(std::size_t index) {
    return *std::next(pending_.begin(), static_cast<std::ptrdiff_t>(index));
}

Http1Dissector::PendingExchange* Http1Dissector::awaiting_response() {
    return responded_ < pending_.size() ? &pending_at(responded_) : nullptr;
}

Http1Dissector::PendingExchange* Http1Dissector::websocket_exchange() {
    // The upgrade request is the last one read: the client waited for the 101 before sending
    // anything else.
    if (!pending_.empty() && pending_.back().protocol_switch == Switch::websocket) {
        return &pending_.back();
    }
    return nullptr;
}

}  // namespace tlsgate::inspect
