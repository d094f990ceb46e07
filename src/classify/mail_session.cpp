#include "classify/mail_session.hpp"

#include <algorithm>
#include <utility>

namespace tlsgate::classify {

namespace {

constexpr std::size_t kMaxDomainBytes = 255;

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

char to_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool istarts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), text.begin(),
                      [](char x, char y) { return to_lower(x) == to_lower(y); });
}

// The reply text after "<code> " or "<code>-", without a line ending; nothing for another code.
std::optional<std::string_view> reply_text(std::string_view line, std::string_view code) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
        line.remove_suffix(1);
    }
    if (line.size() < code.size() || line.substr(0, code.size()) != code) {
        return std::nullopt;
    }
    line.remove_prefix(code.size());
    if (!line.empty()) {
        if (line.front() != ' ' && line.front() != '-') {
            return std::nullopt;
        }
        line.remove_prefix(1);
    }
    return line;
}

// A decimal number of one to `max_digits` digits at `position`, not followed by another digit.
std::optional<unsigned> number_at(std::string_view text, std::size_t& position,
                                  std::size_t max_digits) {
    unsigned value = 0;
    std::size_t digits = 0;
    while (position < text.size() && is_digit(text[position])) {
        if (++digits > max_digits) {
            return std::nullopt;
        }
        value = value * 10 + static_cast<unsigned>(text[position] - '0');
        ++position;
    }
    if (digits == 0) {
        return std::nullopt;
    }
    return value;
}

void skip_spaces(std::string_view text, std::size_t& position) {
    while (position < text.size() && text[position] == ' ') {
        ++position;
    }
}

// h1,h2,h3,h4,p1,p2 starting at `position`.
std::optional<FtpPassiveReply> six_numbers_at(std::string_view text, std::size_t position) {
    std::array<unsigned, 6> numbers{};
    for (std::size_t index = 0; index < numbers.size(); ++index) {
        if (index > 0) {
            skip_spaces(text, position);
            if (position >= text.size() || text[position] != ',') {
                return std::nullopt;
            }
            ++position;
            skip_spaces(text, position);
        }
        const std::optional<unsigned> number = number_at(text, position, 3);
        if (!number || *number > 255) {
            return std::nullopt;
        }
        numbers[index] = *number;
    }
    skip_spaces(text, position);
    if (position < text.size() && text[position] == ',') {
        return std::nullopt;  // a seventh number: not the tuple
    }
    FtpPassiveReply reply;
    reply.address =
        Ipv4Address{static_cast<std::uint8_t>(numbers[0]), static_cast<std::uint8_t>(numbers[1]),
                    static_cast<std::uint8_t>(numbers[2]), static_cast<std::uint8_t>(numbers[3])};
    reply.port = static_cast<std::uint16_t>(numbers[4] * 256 + numbers[5]);
    return reply;
}

// Past a run of comma-separated numbers starting at `position`, so that a search does not
// restart inside a run that was not a tuple (seven numbers hold six).
std::size_t end_of_number_run(std::string_view text, std::size_t position) {
    while (true) {
        while (position < text.size() && is_digit(text[position])) {
            ++position;
        }
        std::size_t next = position;
        skip_spaces(text, next);
        if (next >= text.size() || text[next] != ',') {
            return position;
        }
        ++next;
        skip_spaces(text, next);
        if (next >= text.size() || !is_digit(text[next])) {
            return position;
        }
        position = next;
    }
}

}  // namespace

std::optional<FtpPassiveReply> parse_ftp_227(std::string_view line) {
    const std::optional<std::string_view> text = reply_text(line, "227");
    if (!text) {
        return std::nullopt;
    }
    std::size_t position = 0;
    while (position < text->size()) {
        if (!is_digit((*text)[position])) {
            ++position;
            continue;
        }
        if (std::optional<FtpPassiveReply> reply = six_numbers_at(*text, position)) {
            if (reply->port == 0) {
                return std::nullopt;
            }
            return reply;
        }
        position = end_of_number_run(*text, position);
    }
    return std::nullopt;
}

std::optional<FtpPassiveReply> parse_ftp_229(std::string_view line) {
    const std::optional<std::string_view> text = reply_text(line, "229");
    if (!text) {
        return std::nullopt;
    }
    const std::size_t open = text->find('(');
    if (open == std::string_view::npos || text->size() - open < 7) {
        return std::nullopt;
    }
    std::string_view rest = text->substr(open + 1);
    const char delimiter = rest[0];
    if (delimiter < 33 || delimiter > 126 || is_digit(delimiter) || rest[1] != delimiter ||
        rest[2] != delimiter) {
        return std::nullopt;
    }
    std::size_t position = 3;
    const std::optional<unsigned> port = number_at(rest, position, 5);
    if (!port || *port == 0 || *port > 65535 || position + 1 >= rest.size() ||
        rest[position] != delimiter || rest[position + 1] != ')') {
        return std::nullopt;
    }
    return FtpPassiveReply{std::nullopt, static_cast<std::uint16_t>(*port)};
}

MailSessionObserver::MailSessionObserver(DialogueProtocol protocol)
    : dialogue_(protocol), recorder_(protocol) {}

FeedResult MailSessionObserver::feed(Side side, std::span<const char> bytes) {
    return dialogue_.feed(side, bytes, &recorder_);
}

MailSessionSummary MailSessionObserver::summary() const {
    MailSessionSummary summary;
    summary.protocol = dialogue_.protocol();
    summary.upgrade = dialogue_.upgrade_outcome();
    summary.observed_inside_tls = dialogue_.inside_tls();
    summary.state = dialogue_.state();
    summary.error = dialogue_.error();
    summary.greeting_host = dialogue_.greeting_host();
    summary.capabilities = dialogue_.capabilities();
    summary.capabilities_inside_tls = dialogue_.capabilities_inside_tls();
    summary.upgrade_advertised = dialogue_.upgrade_advertised();
    summary.commands = recorder_.commands_;
    summary.other_commands = recorder_.other_commands_;
    summary.smtp = recorder_.smtp_;
    summary.ftp_data_endpoints = recorder_.endpoints_announced_;
    return summary;
}

std::vector<FtpDataEndpoint> MailSessionObserver::take_ftp_data_endpoints() {
    std::vector<FtpDataEndpoint> taken;
    taken.swap(recorder_.pending_endpoints_);
    return taken;
}

void MailSessionObserver::Recorder::on_client_command(const ClientCommand& command) {
    count_verb(command.verb);
    if (protocol_ != DialogueProtocol::smtp) {
        return;
    }
    if (command.verb == "MAIL") {
        ++smtp_.mail_from;
        record_sender(command.arguments);
    } else if (command.verb == "RCPT") {
        ++smtp_.rcpt_to;
    }
}

void MailSessionObserver::Recorder::count_verb(std::string_view verb) {
    if (verb.empty()) {
        ++other_commands_;
        return;
    }
    const auto known =
        std::find_if(commands_.begin(), commands_.end(),
                     [verb](const CommandCount& entry) { return entry.verb == verb; });
    if (known != commands_.end()) {
        ++known->count;
    } else if (commands_.size() < kMaxDistinctVerbs) {
        commands_.push_back(CommandCount{std::string(verb), 1});
    } else {
        ++other_commands_;
    }
}

// "FROM:<user@example.test> SIZE=1024": only the domain is kept, never the local part.
void MailSessionObserver::Recorder::record_sender(std::string_view arguments) {
    if (!istarts_with(arguments, "FROM:")) {
        return;
    }
    std::string_view path = arguments.substr(5);
    while (!path.empty() && path.front() == ' ') {
        path.remove_prefix(1);
    }
    if (!path.empty() && path.front() == '<') {
        const std::size_t close = path.find('>');
        if (close == std::string_view::npos) {
            return;
        }
        path = path.substr(1, close - 1);
    } else {
        path = path.substr(0, path.find(' '));
    }
    if (path.empty()) {
        ++smtp_.null_senders;
        return;
    }
    const std::size_t at = path.rfind('@');
    if (at == std::string_view::npos || at + 1 == path.size() ||
        path.size() - at - 1 > kMaxDomainBytes) {
        return;
    }
    std::string domain(path.substr(at + 1));
    std::transform(domain.begin(), domain.end(), domain.begin(), to_lower);
    if (smtp_.sender_domains.size() < kMaxSenderDomains &&
        std::find(smtp_.sender_domains.begin(), smtp_.sender_domains.end(), domain) ==
            smtp_.sender_domains.end()) {
        smtp_.sender_domains.push_back(std::move(domain));
    }
}

void MailSessionObserver::Recorder::on_server_line(const ServerLine& line) {
    if (protocol_ != DialogueProtocol::ftp || !line.ends_reply ||
        (line.code != 227 && line.code != 229)) {
        return;
    }
    const std::optional<FtpPassiveReply> reply =
        line.code == 227 ? parse_ftp_227(line.text) : parse_ftp_229(line.text);
    if (!reply) {
        return;
    }
    ++endpoints_announced_;
    if (pending_endpoints_.size() >= kMaxPendingEndpoints) {
        pending_endpoints_.erase(pending_endpoints_.begin());
    }
    pending_endpoints_.push_back(
        FtpDataEndpoint{reply->address, reply->port, line.code == 229, line.inside_tls});
}

void MailSessionObserver::Recorder::on_message(const MessageEnd& message) {
    ++smtp_.messages;
    smtp_.message_bytes += message.size;
    if (smtp_.message_sizes.size() < kMaxRecordedMessages) {
        smtp_.message_sizes.push_back(message.size);
    }
}

}  // namespace tlsgate::classify
