#include "classify/starttls.hpp"
#include "common/text.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

namespace tlsgate::classify {

namespace {

constexpr unsigned char kTlsHandshakeRecord = 0x16;
constexpr unsigned char kTelnetInterpretAsCommand = 0xff;
constexpr std::size_t kMaxVerbBytes = 32;
// How many words of a greeting are searched for a host name (SMTP names it first).
constexpr std::size_t kMaxGreetingWords = 16;
// The message terminator ".\r\n" is not part of the message.
constexpr std::uint64_t kEndOfDataLineBytes = 3;

char to_upper(char c) {
    return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}
char to_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool istarts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() &&
           equals_ignoring_case(text.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

// The next space-separated word of `rest`, which moves past it and the spaces after it.
std::string_view next_word(std::string_view& rest) {
    while (!rest.empty() && rest.front() == ' ') {
        rest.remove_prefix(1);
    }
    const std::size_t end = std::min(rest.find(' '), rest.size());
    const std::string_view word = rest.substr(0, end);
    rest.remove_prefix(end);
    while (!rest.empty() && rest.front() == ' ') {
        rest.remove_prefix(1);
    }
    return word;
}

// A byte a text protocol's first command can start with.
bool is_text_byte(unsigned char c) {
    return (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\r' || c == '\n';
}

bool looks_like_host_name(std::string_view name) {
    if (name.size() < 3 || name.size() > 253) {
        return false;
    }
    std::size_t label_length = 0;
    bool label_has_letter = false;
    bool has_dot = false;
    for (const char c : name) {
        if (c == '.') {
            if (label_length == 0) {
                return false;
            }
            has_dot = true;
            label_length = 0;
            label_has_letter = false;
        } else if (is_alpha(c) || is_digit(c) || c == '-') {
            if (++label_length > 63) {
                return false;
            }
            label_has_letter = label_has_letter || is_alpha(c);
        } else {
            return false;
        }
    }
    // A letter in the last label tells a name from a version ("3.0.3") or an address.
    return has_dot && label_length > 0 && label_has_letter;
}

std::string host_name_in(std::string_view text, bool first_word_only) {
    for (std::size_t word_index = 0; word_index < kMaxGreetingWords && !text.empty();
         ++word_index) {
        std::string_view word = next_word(text);
        if (!word.empty() && word.back() == '.') {
            word.remove_suffix(1);  // the end of a sentence
        }
        if (looks_like_host_name(word)) {
            std::string host(word);
            std::transform(host.begin(), host.end(), host.begin(), to_lower);
            return host;
        }
        if (first_word_only) {
            break;
        }
    }
    return {};
}

// IMAP's capability response code: "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready".
constexpr std::string_view kCapabilityCode = "[CAPABILITY ";

// The atoms of a "[CAPABILITY ...]" response code.
std::string_view response_code_text(std::string_view text) {
    text.remove_prefix(kCapabilityCode.size());
    return text.substr(0, text.find(']'));
}

// Reply code of an SMTP/FTP line, or -1 when it does not start with three digits.
int reply_code(std::string_view text) {
    if (text.size() < 3 || !is_digit(text[0]) || !is_digit(text[1]) || !is_digit(text[2])) {
        return -1;
    }
    return (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
}

bool parse_decimal(std::string_view digits, std::uint64_t& value) {
    if (digits.empty() || digits.size() > 19) {
        return false;
    }
    value = 0;
    for (const char c : digits) {
        if (!is_digit(c)) {
            return false;
        }
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
}

}  // namespace

const char* to_string(DialogueProtocol protocol) {
    switch (protocol) {
        case DialogueProtocol::smtp:
            return "smtp";
        case DialogueProtocol::imap:
            return "imap";
        case DialogueProtocol::pop3:
            return "pop3";
        case DialogueProtocol::ftp:
            return "ftp";
    }
    return "?";
}

const char* to_string(DialogueState state) {
    switch (state) {
        case DialogueState::plaintext:
            return "plaintext";
        case DialogueState::upgrading:
            return "upgrading";
        case DialogueState::upgraded:
            return "upgraded";
        case DialogueState::refused:
            return "refused";
        case DialogueState::not_this_protocol:
            return "not_this_protocol";
        case DialogueState::tls_first:
            return "tls_first";
        case DialogueState::error:
            return "error";
    }
    return "?";
}

const char* to_string(UpgradeOutcome outcome) {
    switch (outcome) {
        case UpgradeOutcome::none:
            return "none";
        case UpgradeOutcome::upgraded:
            return "upgraded";
        case UpgradeOutcome::refused:
            return "refused";
    }
    return "?";
}

std::optional<DialogueProtocol> starttls_protocol_for_port(std::uint16_t port) {
    switch (port) {
        case 25:
        case 587:
            return DialogueProtocol::smtp;
        case 143:
            return DialogueProtocol::imap;
        case 110:
            return DialogueProtocol::pop3;
        case 21:
            return DialogueProtocol::ftp;
        default:
            return std::nullopt;
    }
}

bool is_implicit_tls_port(std::uint16_t port) {
    return port == 465 || port == 993 || port == 995 || port == 990;
}

StartTlsDialogue::StartTlsDialogue(DialogueProtocol protocol) : protocol_(protocol) {
    expected_.push_back(Expect::greeting);
}

bool StartTlsDialogue::accepting() const {
    switch (state_) {
        case DialogueState::plaintext:
        case DialogueState::upgrading:
        case DialogueState::refused:
            return true;
        case DialogueState::upgraded:
            return inside_tls_;
        default:
            return false;
    }
}

void StartTlsDialogue::fail(DialogueState state, std::string message) {
    state_ = state;
    error_ = std::move(message);
}

FeedResult StartTlsDialogue::feed(Side side, std::span<const char> bytes,
                                  DialogueListener* listener) {
    listener_ = listener;
    std::size_t used = 0;
    while (used < bytes.size() && accepting()) {
        const std::string_view rest(bytes.data() + used, bytes.size() - used);
        const std::size_t taken = side == Side::client ? step_client(rest) : step_server(rest);
        if (taken == 0 && accepting()) {
            break;  // cannot happen: every step takes a byte or reaches a verdict
        }
        used += taken;
    }
    listener_ = nullptr;
    return FeedResult{used, state_};
}

bool StartTlsDialogue::continue_inside_tls() {
    if (state_ != DialogueState::upgraded || inside_tls_) {
        return false;
    }
    inside_tls_ = true;
    finish_line(client_line_);
    finish_line(server_line_);
    client_mode_ = ClientMode::command;
    client_started_ = true;
    client_skip_ = 0;
    sasl_lines_granted_ = 0;
    message_bytes_ = 0;
    last_chunk_ = false;
    server_mode_ = ServerMode::reply;
    greeting_checked_ = true;  // no greeting inside TLS
    server_skip_ = 0;
    multiline_code_ = 0;
    body_is_capa_ = false;
    expected_.clear();
    imap_upgrade_tag_.clear();
    imap_continuation_tag_.clear();
    staged_capabilities_.clear();
    return true;
}

bool StartTlsDialogue::advertises(std::string_view capability) const {
    return std::any_of(plaintext_capabilities_.begin(), plaintext_capabilities_.end(),
                       [capability](const std::string& entry) {
                           return equals_ignoring_case(entry, capability) ||
                                  (entry.size() > capability.size() &&
                                   istarts_with(entry, capability) &&
                                   entry[capability.size()] == ' ');
                       });
}

bool StartTlsDialogue::upgrade_advertised() const {
    switch (protocol_) {
        case DialogueProtocol::smtp:
        case DialogueProtocol::imap:
            return advertises("STARTTLS");
        case DialogueProtocol::pop3:
            return advertises("STLS");
        case DialogueProtocol::ftp:
            return advertises("AUTH TLS") || advertises("AUTH SSL");
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// Lines

std::size_t StartTlsDialogue::take_line(Line& line, std::string_view input, bool& complete) {
    const std::size_t newline = input.find('\n');
    complete = newline != std::string_view::npos;
    const std::size_t before_newline = complete ? newline : input.size();
    if (line.kind == LineKind::strict && line.length + before_newline > kMaxLineBytes) {
        // The verdict falls on the first byte past the limit, however the line was split.
        const std::size_t allowed = kMaxLineBytes - line.length;
        complete = false;
        fail(DialogueState::error, "a line longer than " + std::to_string(kMaxLineBytes) +
                                       " bytes (" + to_string(protocol_) + ")");
        return allowed;
    }
    const std::string_view bytes = input.substr(0, before_newline);
    std::size_t keep = 0;
    switch (line.kind) {
        case LineKind::strict:
        case LineKind::head_only:
            keep = kMaxLineBytes;
            break;
        case LineKind::content:
            keep = 2;  // enough to recognise "." and ".\r"
            break;
        case LineKind::listing:
            keep = kMaxCapabilityBytes + 1;  // and a stuffed dot
            break;
        case LineKind::sasl:
            keep = 0;
            break;
    }
    if (!line.continued && line.text.size() < keep) {
        line.text.append(bytes.substr(0, keep - line.text.size()));
    }
    if (protocol_ == DialogueProtocol::imap && line.kind != LineKind::sasl) {
        track_marker(line, bytes);
    }
    if (!bytes.empty()) {
        line.last = bytes.back();
    }
    line.length += before_newline;
    return complete ? newline + 1 : input.size();
}

void StartTlsDialogue::track_marker(Line& line, std::string_view bytes) {
    const auto restart = [&line](char c) {
        line.marker = c == '{' ? Marker::open : Marker::none;
        line.literal = 0;
        line.literal_too_large = false;
    };
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
    for (const char c : bytes) {
        switch (line.marker) {
            case Marker::none:
            case Marker::closed_cr:
                restart(c);
                break;
            case Marker::open:
            case Marker::digits:
                if (is_digit(c)) {
                    const auto digit = static_cast<std::uint64_t>(c - '0');
                    if (line.literal > (kMax - digit) / 10) {
                        line.literal_too_large = true;
                    } else {
                        line.literal = line.literal * 10 + digit;
                    }
                    line.marker = Marker::digits;
                } else if (line.marker == Marker::digits && c == '+') {
                    line.marker = Marker::plus;  // LITERAL+: the client does not wait
                } else if (line.marker == Marker::digits && c == '}') {
                    line.marker = Marker::closed;
                } else {
                    restart(c);
                }
                break;
            case Marker::plus:
                if (c == '}') {
                    line.marker = Marker::closed;
                } else {
                    restart(c);
                }
                break;
            case Marker::closed:
                if (c == '\r') {
                    line.marker = Marker::closed_cr;
                } else {
                    restart(c);
                }
                break;
        }
    }
}

void StartTlsDialogue::finish_line(Line& line) {
    line.text.clear();
    line.length = 0;
    line.last = 0;
    line.begun = false;
    line.continued = false;
    line.kind = LineKind::strict;
    line.marker = Marker::none;
    line.literal = 0;
    line.literal_too_large = false;
}

namespace {

// The line without its CR, as far as it was kept.
std::string_view line_content(const std::string& text, std::size_t length, char last,
                              bool continued) {
    std::string_view kept(text);
    if (continued) {
        return kept;  // the head segment, its CR already dropped
    }
    const std::size_t content_length = length > 0 && last == '\r' ? length - 1 : length;
    return kept.substr(0, std::min(kept.size(), content_length));
}

}  // namespace

// An IMAP line that ends in a literal marker goes on after the literal: keep its head (the tag
// and the command or status) and skip the literal.
bool StartTlsDialogue::enters_literal(Line& line, std::uint64_t& literal) {
    if (protocol_ != DialogueProtocol::imap || line.kind == LineKind::sasl ||
        (line.marker != Marker::closed && line.marker != Marker::closed_cr)) {
        return false;
    }
    if (line.literal_too_large) {
        fail(DialogueState::error, "an IMAP literal larger than 2^64 bytes");
        return true;
    }
    if (!line.continued) {
        line.text.resize(line_content(line.text, line.length, line.last, false).size());
        line.continued = true;
    }
    literal = line.literal;
    line.length = 0;
    line.last = 0;
    line.marker = Marker::none;
    line.literal = 0;
    return true;
}

// ---------------------------------------------------------------------------------------------
// Client side

std::size_t StartTlsDialogue::step_client(std::string_view input) {
    if (!client_started_) {
        const auto first = static_cast<unsigned char>(input.front());
        if (first == kTlsHandshakeRecord) {
            // No command starts with a control byte, so one byte decides: waiting for the
            // second would let the first slip into the plaintext relay.
            fail(DialogueState::tls_first, "the client opened with a TLS record (implicit TLS)");
            return 0;
        }
        if (!is_text_byte(first)) {
            fail(DialogueState::not_this_protocol, "the client's first byte is not text");
            return 0;
        }
        client_started_ = true;
    }
    bool complete = false;
    switch (client_mode_) {
        case ClientMode::closed:
            fail(DialogueState::error,
                 "the client sent bytes after its upgrade request, before the server answered "
                 "(commands pipelined after STARTTLS: possible command injection)");
            return 0;
        case ClientMode::data_pending:
            fail(DialogueState::error, "the client sent bytes before the server answered DATA");
            return 0;
        case ClientMode::literal: {
            const auto taken =
                static_cast<std::size_t>(std::min<std::uint64_t>(client_skip_, input.size()));
            client_skip_ -= taken;
            if (client_skip_ == 0) {
                client_mode_ = ClientMode::command;
            }
            return taken;
        }
        case ClientMode::chunk: {
            const auto taken =
                static_cast<std::size_t>(std::min<std::uint64_t>(client_skip_, input.size()));
            client_skip_ -= taken;
            message_bytes_ += taken;
            if (client_skip_ == 0) {
                client_mode_ = ClientMode::command;
                if (last_chunk_) {
                    end_message(message_bytes_, true);
                }
            }
            return taken;
        }
        case ClientMode::message: {
            if (!client_line_.begun) {
                client_line_.begun = true;
                client_line_.kind = LineKind::content;
            }
            const std::size_t taken = take_line(client_line_, input, complete);
            message_bytes_ += taken;
            if (complete) {
                on_message_line(client_line_);
            }
            return taken;
        }
        case ClientMode::command:
            break;
    }
    if (!client_line_.begun) {
        client_line_.begun = true;
        if (sasl_lines_granted_ > 0) {
            --sasl_lines_granted_;
            client_line_.kind = LineKind::sasl;
        } else {
            client_line_.kind =
                protocol_ == DialogueProtocol::imap ? LineKind::head_only : LineKind::strict;
        }
    }
    const std::size_t taken = take_line(client_line_, input, complete);
    if (!complete || !accepting()) {
        return taken;
    }
    std::uint64_t literal = 0;
    if (enters_literal(client_line_, literal)) {
        if (accepting() && literal > 0) {
            client_skip_ = literal;
            client_mode_ = ClientMode::literal;
        }
        return taken;
    }
    on_client_line(client_line_);
    return taken;
}

void StartTlsDialogue::on_message_line(Line& line) {
    const bool ends_in_crlf = line.length > 0 && line.last == '\r';
    const std::string_view content = line_content(line.text, line.length, line.last, false);
    const bool lone_dot = ends_in_crlf && line.length == 2 && content == ".";
    if (lone_dot && previous_line_crlf_) {
        end_message(message_bytes_ - kEndOfDataLineBytes, false);
        client_mode_ = ClientMode::command;
        push_expect(Expect::ordinary);  // the answer to the message
    } else {
        previous_line_crlf_ = ends_in_crlf;
    }
    finish_line(line);
}

void StartTlsDialogue::on_client_line(Line& line) {
    if (line.kind != LineKind::sasl) {
        const std::string_view text =
            line_content(line.text, line.length, line.last, line.continued);
        if (protocol_ == DialogueProtocol::imap) {
            on_imap_client_command(text);
        } else {
            on_client_command(text);
        }
    }
    finish_line(line);
}

namespace {

bool is_verb_byte(char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '_';
}

// Upper-cases a well-formed verb into `out`; leaves `out` empty otherwise.
void normalize_verb(std::string_view word, std::string& out) {
    out.clear();
    if (word.empty() || word.size() > kMaxVerbBytes ||
        !std::all_of(word.begin(), word.end(), is_verb_byte)) {
        return;
    }
    out.resize(word.size());
    std::transform(word.begin(), word.end(), out.begin(), to_upper);
}

}  // namespace

void StartTlsDialogue::on_client_command(std::string_view text) {
    if (protocol_ == DialogueProtocol::ftp) {
        // ABOR may come after Telnet "interrupt process" and "synch" (RFC 959 section 4.1.3).
        while (text.size() >= 2 &&
               static_cast<unsigned char>(text.front()) == kTelnetInterpretAsCommand) {
            text.remove_prefix(2);
        }
    }
    std::string_view arguments = text;
    const std::string_view word = next_word(arguments);
    normalize_verb(word, verb_);
    arguments = trim(arguments);
    const std::string_view verb = verb_;

    bool secret = false;
    switch (protocol_) {
        case DialogueProtocol::smtp:
            secret = verb == "AUTH";
            break;
        case DialogueProtocol::pop3:
            secret = verb == "PASS" || verb == "APOP" || verb == "AUTH";
            break;
        case DialogueProtocol::ftp:
            secret = verb == "PASS" || verb == "ACCT" || verb == "ADAT";
            break;
        case DialogueProtocol::imap:
            break;
    }
    report_command({}, verb, secret ? std::string_view() : arguments);

    Expect expect = Expect::ordinary;
    bool upgrade = false;
    switch (protocol_) {
        case DialogueProtocol::smtp:
            if (verb == "STARTTLS") {
                upgrade = true;
            } else if (verb == "EHLO") {
                expect = Expect::smtp_ehlo;
            } else if (verb == "DATA") {
                expect = Expect::smtp_data;
                client_mode_ = ClientMode::data_pending;
                message_bytes_ = 0;
            } else if (verb == "AUTH") {
                expect = Expect::sasl;
            } else if (verb == "BDAT") {
                std::string_view rest = arguments;
                std::uint64_t size = 0;
                const bool size_ok = parse_decimal(next_word(rest), size);
                const std::string_view last = next_word(rest);
                if (!size_ok || !(last.empty() || equals_ignoring_case(last, "LAST")) ||
                    !rest.empty()) {
                    fail(DialogueState::error, "a malformed BDAT command");
                    return;
                }
                last_chunk_ = !last.empty();
                if (size > 0) {
                    client_skip_ = size;
                    client_mode_ = ClientMode::chunk;
                } else if (last_chunk_) {
                    end_message(message_bytes_, true);
                }
            }
            break;
        case DialogueProtocol::pop3:
            if (verb == "STLS") {
                upgrade = true;
            } else if (verb == "CAPA") {
                expect = Expect::pop3_capa;
            } else if (verb == "RETR" || verb == "TOP" ||
                       ((verb == "LIST" || verb == "UIDL" || verb == "AUTH") &&
                        arguments.empty())) {
                expect = Expect::pop3_multiline;
            } else if (verb == "AUTH") {
                expect = Expect::sasl;
            }
            break;
        case DialogueProtocol::ftp:
            if (verb == "AUTH") {
                const std::string_view mechanism = arguments;
                upgrade = equals_ignoring_case(mechanism, "TLS") ||
                          equals_ignoring_case(mechanism, "SSL") ||
                          equals_ignoring_case(mechanism, "TLS-C") ||
                          equals_ignoring_case(mechanism, "TLS-P");
            } else if (verb == "FEAT") {
                expect = Expect::ftp_feat;
            }
            break;
        case DialogueProtocol::imap:
            break;
    }
    if (upgrade && !inside_tls_) {
        expect = Expect::upgrade;
        state_ = DialogueState::upgrading;
        client_mode_ = ClientMode::closed;
    }
    push_expect(expect);
}

void StartTlsDialogue::on_imap_client_command(std::string_view text) {
    std::string_view arguments = text;
    const std::string_view tag = next_word(arguments);
    normalize_verb(next_word(arguments), verb_);
    if (verb_ == "UID") {
        // UID FETCH, UID STORE...: the second word says what the command does.
        std::string second;
        normalize_verb(next_word(arguments), second);
        if (!second.empty()) {
            verb_ += ' ';
            verb_ += second;
        }
    }
    arguments = trim(arguments);
    const std::string_view verb = verb_;
    const bool secret = verb == "LOGIN" || verb == "AUTHENTICATE";
    report_command(tag, verb, secret ? std::string_view() : arguments);

    if (verb == "STARTTLS" && !inside_tls_) {
        imap_upgrade_tag_.assign(tag);
        state_ = DialogueState::upgrading;
        client_mode_ = ClientMode::closed;
    } else if (verb == "AUTHENTICATE" || verb == "IDLE") {
        imap_continuation_tag_.assign(tag);
        sasl_lines_granted_ = 0;
    }
}

bool StartTlsDialogue::push_expect(Expect expect) {
    if (expected_.size() >= kMaxPendingCommands) {
        fail(DialogueState::error,
             "more than " + std::to_string(kMaxPendingCommands) + " commands awaiting answers");
        return false;
    }
    expected_.push_back(expect);
    return true;
}

void StartTlsDialogue::report_command(std::string_view tag, std::string_view verb,
                                      std::string_view arguments) {
    if (listener_ != nullptr) {
        listener_->on_client_command(ClientCommand{tag, verb, arguments, inside_tls_});
    }
}

void StartTlsDialogue::end_message(std::uint64_t size, bool chunked) {
    message_bytes_ = 0;
    last_chunk_ = false;
    if (listener_ != nullptr) {
        listener_->on_message(MessageEnd{size, chunked, inside_tls_});
    }
}

// ---------------------------------------------------------------------------------------------
// Server side

bool StartTlsDialogue::greeting_prefix_possible(std::string_view seen, bool& decided) const {
    static constexpr std::array<std::string_view, 1> kSmtp{"220"};
    static constexpr std::array<std::string_view, 2> kFtp{"220", "120"};
    static constexpr std::array<std::string_view, 1> kPop3{"+OK"};
    static constexpr std::array<std::string_view, 2> kImap{"* OK", "* PREAUTH"};
    std::span<const std::string_view> candidates;
    std::string_view separators = " \r\n";
    switch (protocol_) {
        case DialogueProtocol::smtp:
            candidates = kSmtp;
            separators = " -\r\n";
            break;
        case DialogueProtocol::ftp:
            candidates = kFtp;
            separators = " -\r\n";
            break;
        case DialogueProtocol::pop3:
            candidates = kPop3;
            break;
        case DialogueProtocol::imap:
            candidates = kImap;
            break;
    }
    for (const std::string_view candidate : candidates) {
        if (seen.size() <= candidate.size()) {
            if (equals_ignoring_case(seen, candidate.substr(0, seen.size()))) {
                return true;
            }
        } else if (istarts_with(seen, candidate) &&
                   separators.find(seen[candidate.size()]) != std::string_view::npos) {
            decided = true;
            return true;
        }
    }
    return false;
}

std::size_t StartTlsDialogue::step_server(std::string_view input) {
    if (server_mode_ == ServerMode::literal) {
        const auto taken =
            static_cast<std::size_t>(std::min<std::uint64_t>(server_skip_, input.size()));
        server_skip_ -= taken;
        if (server_skip_ == 0) {
            server_mode_ = ServerMode::reply;
        }
        return taken;
    }
    if (!greeting_checked_) {
        // The greeting's first bytes are judged one at a time, so a server that is not this
        // protocol is told at the first byte that shows it.
        std::string seen = server_line_.text;
        seen.push_back(input.front());
        bool decided = false;
        if (!greeting_prefix_possible(seen, decided)) {
            fail(DialogueState::not_this_protocol,
                 std::string("the server's greeting is not ") + to_string(protocol_));
            return 0;
        }
        greeting_checked_ = decided;
        input = input.substr(0, 1);
    }
    if (!server_line_.begun) {
        server_line_.begun = true;
        if (server_mode_ == ServerMode::pop3_body) {
            server_line_.kind = body_is_capa_ ? LineKind::listing : LineKind::content;
        } else {
            server_line_.kind =
                protocol_ == DialogueProtocol::imap ? LineKind::head_only : LineKind::strict;
        }
    }
    bool complete = false;
    const std::size_t taken = take_line(server_line_, input, complete);
    if (!complete || !accepting()) {
        return taken;
    }
    std::uint64_t literal = 0;
    if (enters_literal(server_line_, literal)) {
        if (accepting() && literal > 0) {
            server_skip_ = literal;
            server_mode_ = ServerMode::literal;
        }
        return taken;
    }
    const std::string_view text = line_content(server_line_.text, server_line_.length,
                                               server_line_.last, server_line_.continued);
    switch (protocol_) {
        case DialogueProtocol::smtp:
        case DialogueProtocol::ftp:
            on_server_reply_line(text);
            break;
        case DialogueProtocol::pop3:
            if (server_mode_ == ServerMode::pop3_body) {
                on_pop3_body_line(text);
            } else {
                on_pop3_server_line(text);
            }
            break;
        case DialogueProtocol::imap:
            on_imap_server_line(text);
            break;
    }
    finish_line(server_line_);
    return taken;
}

void StartTlsDialogue::report_server_line(int code, std::string_view text, bool ends_reply) {
    if (listener_ != nullptr) {
        listener_->on_server_line(ServerLine{code, text, ends_reply, inside_tls_});
    }
}

void StartTlsDialogue::on_server_reply_line(std::string_view text) {
    const bool smtp = protocol_ == DialogueProtocol::smtp;
    const int code = reply_code(text);
    const char separator = text.size() > 3 ? text[3] : ' ';
    const Expect expect = expected_.empty() ? Expect::ordinary : expected_.front();
    if (multiline_code_ != 0) {
        const bool last = code == multiline_code_ && separator == ' ';
        if (smtp && !last && !(code == multiline_code_ && separator == '-')) {
            fail(DialogueState::error, "a malformed line in a multi-line SMTP reply");
            return;
        }
        report_server_line(multiline_code_, text, last);
        if (expect == Expect::smtp_ehlo) {
            add_capability(staged_capabilities_,
                           trim(text.substr(std::min<std::size_t>(4, text.size()))));
        } else if (expect == Expect::ftp_feat && !last) {
            add_capability(staged_capabilities_, trim(text));
        }
        if (last) {
            multiline_code_ = 0;
            on_reply_complete(code);
        }
        return;
    }
    const int lowest_class = smtp ? 2 : 1;
    if (code < lowest_class * 100 || code >= 600 || (separator != ' ' && separator != '-')) {
        fail(DialogueState::error,
             std::string("a malformed ") + (smtp ? "SMTP" : "FTP") + " reply line");
        return;
    }
    report_server_line(code, text, separator == ' ');
    if (expect == Expect::greeting && code == 220 && greeting_host_.empty()) {
        greeting_host_ = host_name_in(text.substr(std::min<std::size_t>(4, text.size())), smtp);
    }
    staged_capabilities_.clear();
    if (separator == '-') {
        multiline_code_ = code;
    } else {
        on_reply_complete(code);
    }
}

void StartTlsDialogue::on_reply_complete(int code) {
    if (code < 200 || expected_.empty()) {
        return;  // FTP's preliminary 1xx, or an unsolicited reply (a 421 before closing)
    }
    const Expect expect = expected_.front();
    if (expect == Expect::sasl && code == 334) {
        ++sasl_lines_granted_;  // the next client line answers the challenge
        return;
    }
    expected_.pop_front();
    switch (expect) {
        case Expect::greeting:
            if (code != 220) {
                fail(DialogueState::not_this_protocol,
                     "the server's greeting is " + std::to_string(code) + ", not 220");
            }
            break;
        case Expect::upgrade:
            on_upgrade_answer(code == (protocol_ == DialogueProtocol::smtp ? 220 : 234),
                              code >= 400);
            break;
        case Expect::smtp_ehlo:
        case Expect::ftp_feat:
            if (code / 100 == 2) {
                current_capabilities() = staged_capabilities_;
            }
            staged_capabilities_.clear();
            break;
        case Expect::smtp_data:
            if (code == 354) {
                client_mode_ = ClientMode::message;
                previous_line_crlf_ = true;  // the DATA line's CRLF
                message_bytes_ = 0;
            } else {
                client_mode_ = ClientMode::command;
            }
            break;
        case Expect::sasl:
            sasl_lines_granted_ = 0;
            break;
        default:
            break;
    }
}

void StartTlsDialogue::on_upgrade_answer(bool accepted, bool refused) {
    if (accepted) {
        state_ = DialogueState::upgraded;
        outcome_ = UpgradeOutcome::upgraded;
    } else if (refused) {
        state_ = DialogueState::refused;
        outcome_ = UpgradeOutcome::refused;
        client_mode_ = ClientMode::command;
    } else {
        fail(DialogueState::error, "an unexpected answer to the upgrade request");
    }
}

void StartTlsDialogue::on_pop3_server_line(std::string_view text) {
    enum class Status { ok, err, continuation } status;
    if (istarts_with(text, "+OK") && (text.size() == 3 || text[3] == ' ')) {
        status = Status::ok;
    } else if (istarts_with(text, "-ERR") && (text.size() == 4 || text[4] == ' ')) {
        status = Status::err;
    } else if (!text.empty() && text[0] == '+' && (text.size() == 1 || text[1] == ' ')) {
        status = Status::continuation;
    } else {
        fail(DialogueState::error, "a malformed POP3 status line");
        return;
    }
    report_server_line(0, text, true);
    if (expected_.empty()) {
        return;
    }
    const Expect expect = expected_.front();
    if (expect == Expect::sasl && status == Status::continuation) {
        ++sasl_lines_granted_;
        return;
    }
    expected_.pop_front();
    switch (expect) {
        case Expect::greeting:
            if (status != Status::ok) {
                fail(DialogueState::not_this_protocol, "the server's greeting is not +OK");
            } else {
                greeting_host_ = host_name_in(text.substr(3), false);
            }
            break;
        case Expect::upgrade:
            on_upgrade_answer(status == Status::ok, status == Status::err);
            break;
        case Expect::pop3_multiline:
        case Expect::pop3_capa:
            if (status == Status::ok) {
                server_mode_ = ServerMode::pop3_body;
                body_is_capa_ = expect == Expect::pop3_capa;
                staged_capabilities_.clear();
            }
            break;
        case Expect::sasl:
            sasl_lines_granted_ = 0;
            break;
        default:
            break;
    }
}

void StartTlsDialogue::on_pop3_body_line(std::string_view text) {
    // POP3 is read leniently: CRLF.CRLF or a bare LF after the dot both end the body.
    const bool lone_dot =
        server_line_.length - (server_line_.last == '\r' ? 1 : 0) == 1 && text == ".";
    if (lone_dot) {
        server_mode_ = ServerMode::reply;
        if (body_is_capa_) {
            current_capabilities() = staged_capabilities_;
        }
        body_is_capa_ = false;
        staged_capabilities_.clear();
        return;
    }
    if (body_is_capa_) {
        if (!text.empty() && text.front() == '.') {
            text.remove_prefix(1);  // byte-stuffed
        }
        add_capability(staged_capabilities_, trim(text));
    }
}

void StartTlsDialogue::on_imap_server_line(std::string_view text) {
    report_server_line(0, text, true);
    std::string_view rest = text;
    const std::string_view tag = next_word(rest);
    const bool greeting_pending = !expected_.empty() && expected_.front() == Expect::greeting;
    if (tag == "*") {
        const std::string_view status = next_word(rest);
        if (greeting_pending) {
            expected_.pop_front();
            if (!equals_ignoring_case(status, "OK") && !equals_ignoring_case(status, "PREAUTH")) {
                fail(DialogueState::not_this_protocol, "the server's greeting is not * OK");
                return;
            }
            std::string_view after_code = rest;
            if (!after_code.empty() && after_code.front() == '[') {
                const std::size_t close = after_code.find(']');
                after_code = close == std::string_view::npos ? std::string_view()
                                                             : after_code.substr(close + 1);
            }
            greeting_host_ = host_name_in(after_code, false);
        }
        if (equals_ignoring_case(status, "CAPABILITY")) {
            set_imap_capabilities(rest);
        } else if (istarts_with(rest, kCapabilityCode)) {
            set_imap_capabilities(response_code_text(rest));
        }
        return;
    }
    if (tag == "+") {
        // A continuation request: for AUTHENTICATE or IDLE it asks for a line that is not a
        // command; while the client is in a synchronizing literal it asks for the literal.
        if (!imap_continuation_tag_.empty() && client_mode_ != ClientMode::literal &&
            !client_line_.continued) {
            ++sasl_lines_granted_;
        }
        return;
    }
    const std::string_view status = next_word(rest);
    if (equals_ignoring_case(status, "OK") && istarts_with(rest, kCapabilityCode)) {
        set_imap_capabilities(response_code_text(rest));
    }
    if (!imap_continuation_tag_.empty() && tag == imap_continuation_tag_) {
        imap_continuation_tag_.clear();
        sasl_lines_granted_ = 0;
    }
    if (state_ == DialogueState::upgrading && tag == imap_upgrade_tag_) {
        imap_upgrade_tag_.clear();
        on_upgrade_answer(
            equals_ignoring_case(status, "OK"),
            equals_ignoring_case(status, "NO") || equals_ignoring_case(status, "BAD"));
    }
}

void StartTlsDialogue::set_imap_capabilities(std::string_view atoms) {
    std::vector<std::string>& list = current_capabilities();
    list.clear();
    while (!atoms.empty()) {
        add_capability(list, next_word(atoms));
    }
}

std::vector<std::string>& StartTlsDialogue::current_capabilities() {
    return inside_tls_ ? tls_capabilities_ : plaintext_capabilities_;
}

void StartTlsDialogue::add_capability(std::vector<std::string>& list, std::string_view capability) {
    if (capability.empty() || list.size() >= kMaxCapabilities) {
        return;
    }
    list.emplace_back(capability.substr(0, kMaxCapabilityBytes));
}

}  // namespace tlsgate::classify
