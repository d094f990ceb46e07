// Fuzz target for the STARTTLS dialogues and the mail session observer. Beyond "no crash, no UB"
// it checks what the gateway relies on: the verdicts, the bytes consumed and the summary do not
// depend on how TCP cut the stream; every byte is consumed while the plaintext phase lasts; a
// verdict, once reached, sticks; and what the summary keeps stays within its bounds.
//
// Input layout: the first byte chooses the protocol (bits 0-1) and whether the TLS is
// intercepted after an upgrade (bit 2: the rest is then fed as the decrypted dialogue). The rest
// is cut at each NUL byte into reads, which alternate sides starting with the server: an empty
// read lets one side send twice in a row.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "classify/mail_session.hpp"

namespace {

using namespace tlsgate::classify;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "starttls fuzz: %s\n", what);
        std::abort();
    }
}

struct Read {
    Side side;
    std::span<const char> bytes;
};

struct Outcome {
    MailSessionSummary summary;
    std::vector<FtpDataEndpoint> endpoints;
    std::vector<std::size_t> consumed;  // per read
};

bool plaintext_phase(DialogueState state) {
    return state == DialogueState::plaintext || state == DialogueState::upgrading ||
           state == DialogueState::refused;
}

// Feeds one piece; after an accepted upgrade, optionally intercepts and feeds the rest of the
// piece as the decrypted dialogue. Returns the bytes consumed.
std::size_t feed_piece(MailSessionObserver& observer, Side side, std::span<const char> piece,
                       bool intercept) {
    const DialogueState before = observer.dialogue().state();
    const bool was_inside = observer.dialogue().inside_tls();
    const FeedResult result = observer.feed(side, piece);
    require(result.consumed <= piece.size(), "consumed more than it was fed");
    require(result.state == observer.dialogue().state(), "feed result and state differ");
    const bool accepting_before = plaintext_phase(before) || was_inside;
    if (!accepting_before) {
        require(result.consumed == 0 && result.state == before, "a verdict did not stick");
    }
    if (plaintext_phase(result.state) || observer.dialogue().inside_tls()) {
        require(result.consumed == piece.size() || result.state == DialogueState::error,
                "plaintext bytes left unconsumed");
    }
    const bool failed = result.state == DialogueState::error ||
                        result.state == DialogueState::not_this_protocol ||
                        result.state == DialogueState::tls_first;
    require(failed != observer.dialogue().error().empty(), "error text and state disagree");
    if (result.state == DialogueState::tls_first) {
        require(result.consumed == 0, "tls_first consumed bytes");
    }
    std::size_t consumed = result.consumed;
    if (intercept && result.state == DialogueState::upgraded && !was_inside) {
        require(observer.continue_inside_tls(), "could not continue inside TLS");
        const FeedResult inner = observer.feed(side, piece.subspan(result.consumed));
        require(
            inner.consumed == piece.size() - result.consumed || inner.state == DialogueState::error,
            "decrypted bytes left unconsumed");
        consumed += inner.consumed;
    }
    return consumed;
}

Outcome run(DialogueProtocol protocol, const std::vector<Read>& reads, std::size_t piece,
            bool intercept) {
    MailSessionObserver observer(protocol);
    Outcome outcome;
    for (const Read& read : reads) {
        std::size_t consumed = 0;
        const std::size_t step = piece == 0 ? std::max<std::size_t>(read.bytes.size(), 1) : piece;
        for (std::size_t position = 0; position < read.bytes.size(); position += step) {
            const std::size_t length = std::min(step, read.bytes.size() - position);
            consumed +=
                feed_piece(observer, read.side, read.bytes.subspan(position, length), intercept);
        }
        outcome.consumed.push_back(consumed);
        for (const FtpDataEndpoint& endpoint : observer.take_ftp_data_endpoints()) {
            require(endpoint.port != 0, "endpoint with port 0");
            require(!endpoint.extended || !endpoint.address, "229 endpoint with an address");
            outcome.endpoints.push_back(endpoint);
        }
    }
    outcome.summary = observer.summary();
    const MailSessionSummary& summary = outcome.summary;
    require(summary.commands.size() <= MailSessionObserver::kMaxDistinctVerbs, "too many verbs");
    require(summary.smtp.sender_domains.size() <= MailSessionObserver::kMaxSenderDomains,
            "too many sender domains");
    require(summary.smtp.message_sizes.size() <= MailSessionObserver::kMaxRecordedMessages,
            "too many message sizes");
    require(summary.smtp.messages >= summary.smtp.message_sizes.size(), "message count");
    require(summary.smtp.null_senders <= summary.smtp.mail_from, "null senders");
    for (const auto* list : {&summary.capabilities, &summary.capabilities_inside_tls}) {
        require(list->size() <= StartTlsDialogue::kMaxCapabilities, "too many capabilities");
        for (const std::string& capability : *list) {
            require(
                !capability.empty() && capability.size() <= StartTlsDialogue::kMaxCapabilityBytes,
                "capability size");
        }
    }
    return outcome;
}

bool same(const Outcome& a, const Outcome& b) {
    return a.summary == b.summary && a.endpoints == b.endpoints && a.consumed == b.consumed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    constexpr DialogueProtocol kProtocols[] = {DialogueProtocol::smtp, DialogueProtocol::imap,
                                               DialogueProtocol::pop3, DialogueProtocol::ftp};
    const DialogueProtocol protocol = kProtocols[data[0] & 3];
    const bool intercept = (data[0] & 4) != 0;

    const std::span<const char> stream(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::vector<Read> reads;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= stream.size(); ++i) {
        if (i == stream.size() || stream[i] == '\0') {
            const Side side = reads.size() % 2 == 0 ? Side::server : Side::client;
            reads.push_back(Read{side, stream.subspan(start, i - start)});
            start = i + 1;
        }
    }

    const Outcome whole = run(protocol, reads, 0, intercept);
    // Byte by byte is the harshest split; on large inputs it would slow the fuzzer too much, so
    // those are fed in small pieces instead.
    const std::size_t piece = size <= 4096 ? 1 : 1 + data[size / 2] % 64;
    require(same(whole, run(protocol, reads, piece, intercept)),
            "piecewise feed differs from whole feed");
    const std::size_t other_piece = 2 + data[size - 1] % 7;
    require(same(whole, run(protocol, reads, other_piece, intercept)),
            "second piecewise feed differs from whole feed");

    // The FTP reply parsers on arbitrary text.
    for (const Read& read : reads) {
        const std::string_view text(read.bytes.data(), read.bytes.size());
        if (const auto reply = parse_ftp_227(text)) {
            require(reply->address.has_value() && reply->port != 0, "227 without address or port");
        }
        if (const auto reply = parse_ftp_229(text)) {
            require(!reply->address.has_value() && reply->port != 0, "229 with address or no port");
        }
    }
    return 0;
}
