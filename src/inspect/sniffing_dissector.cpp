#include "inspect/sniffing_dissector.hpp"

#include "inspect/http1_dissector.hpp"
#include "inspect/http2_dissector.hpp"

namespace tlsgate::inspect {
namespace {

constexpr std::string_view kHttp2Preface = kHttp2ClientPreface;
// Long enough for every registered method name and the space after it.
constexpr std::size_t kLongestMethod = 20;

bool is_token_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '!' || c == '#' || c == '$' || c == '%' || c == '&' ||
           c == '\'' || c == '*' || c == '+' || c == '^' || c == '`' || c == '|' || c == '~';
}

enum class Verdict { need_more, http1, http2, other };

Verdict sniff(std::string_view bytes) {
    const std::size_t common = std::min(bytes.size(), kHttp2Preface.size());
    if (bytes.substr(0, common) == kHttp2Preface.substr(0, common)) {
        return bytes.size() >= kHttp2Preface.size() ? Verdict::http2 : Verdict::need_more;
    }
    // A request line starts with a method token and a space (empty lines before it are allowed).
    std::size_t start = 0;
    while (start < bytes.size() && (bytes[start] == '\r' || bytes[start] == '\n'))
        ++start;
    for (std::size_t i = start; i < bytes.size(); ++i) {
        if (bytes[i] == ' ') {
            return i > start ? Verdict::http1 : Verdict::other;
        }
        if (!is_token_char(bytes[i]) || i - start >= kLongestMethod) {
            return Verdict::other;
        }
    }
    return Verdict::need_more;
}

}  // namespace

SniffingDissector::SniffingDissector(const DissectorOptions& options, ExchangeSink& sink,
                                     std::string_view alpn)
    : options_(options), sink_(sink) {
    if (alpn == "h2") {
        start_http2();
    } else if (alpn == "http/1.1" || alpn == "http/1.0") {
        start_http1();
    }
}

void SniffingDissector::start_http1() {
    chosen_ = std::make_unique<Http1Dissector>(options_, sink_);
    protocol_ = "HTTP/1";
}

void SniffingDissector::start_http2() {
    chosen_ = std::make_unique<Http2Dissector>(options_, sink_);
    protocol_ = "HTTP/2";
}

void SniffingDissector::feed(Side side, std::span<const char> bytes, Clock::time_point now) {
    if (chosen_) {
        chosen_->feed(side, bytes, now);
        if (chosen_->failed() && failure_.empty())
            failure_ = chosen_->failure();
        return;
    }
    if (protocol_ == "none" || bytes.empty())
        return;
    if (side == Side::server) {
        // The server spoke first: not HTTP.
        protocol_ = "none";
        sniffed_.clear();
        return;
    }
    if (sniffed_.empty())
        first_client_byte_ = now;
    const std::size_t take = std::min(bytes.size(), kHttp2Preface.size() - sniffed_.size());
    sniffed_.append(bytes.data(), take);
    switch (sniff(sniffed_)) {
        case Verdict::need_more:
            if (take == bytes.size())
                return;
            // More bytes than the preface and still undecided cannot happen: sniff decides by
            // then. Treat it as not HTTP to stay safe.
            protocol_ = "none";
            return;
        case Verdict::other:
            protocol_ = "none";
            sniffed_.clear();
            return;
        case Verdict::http1:
            start_http1();
            break;
        case Verdict::http2:
            start_http2();
            break;
    }
    const std::string held = std::move(sniffed_);
    sniffed_.clear();
    chosen_->feed(Side::client, held, first_client_byte_);
    chosen_->feed(Side::client, bytes.subspan(take), now);
    if (chosen_->failed() && failure_.empty())
        failure_ = chosen_->failure();
}

void SniffingDissector::end(Side side, Clock::time_point now) {
    if (chosen_) {
        chosen_->end(side, now);
        if (chosen_->failed() && failure_.empty())
            failure_ = chosen_->failure();
    }
}

void SniffingDissector::finish(Clock::time_point now) {
    if (chosen_) {
        chosen_->finish(now);
        if (chosen_->failed() && failure_.empty())
            failure_ = chosen_->failure();
    }
}

}  // namespace tlsgate::inspect
