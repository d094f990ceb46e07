#pragma once
// What a mail or FTP session did, for the flow record (sans-io). MailSessionObserver follows the
// dialogue before the upgrade to TLS and, when the gateway intercepts, the decrypted dialogue
// inside it, and sums it up: the commands used (verbs only, counted), the SMTP envelope and
// message sizes, the upgrade outcome, and the FTP passive data endpoints the gateway must
// expect. It never keeps an argument that may hold a credential, nor any message content.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "classify/starttls.hpp"

namespace tlsgate::classify {

using Ipv4Address = std::array<std::uint8_t, 4>;

struct FtpPassiveReply {
    std::optional<Ipv4Address> address;  // 227 names one; 229 does not (the control connection's)
    std::uint16_t port = 0;

    bool operator==(const FtpPassiveReply&) const = default;
};

// "227 Entering Passive Mode (192,0,2,10,195,80)", with or without the line ending. The six
// numbers are looked for anywhere in the text, as RFC 1123 section 4.1.2.6 tells clients to do
// (some servers leave out the parentheses). Nothing for another code, a number over 255 or
// port 0.
std::optional<FtpPassiveReply> parse_ftp_227(std::string_view line);
// "229 Entering Extended Passive Mode (|||50000|)" (RFC 2428): the three delimiters must be the
// same printable non-digit, the port 1 to 65535.
std::optional<FtpPassiveReply> parse_ftp_229(std::string_view line);

struct FtpDataEndpoint {
    std::optional<Ipv4Address> address;  // absent: the server address of the control connection
    std::uint16_t port = 0;
    bool extended = false;    // from a 229 (EPSV) reply
    bool inside_tls = false;  // announced inside the intercepted TLS session

    bool operator==(const FtpDataEndpoint&) const = default;
};

struct CommandCount {
    std::string verb;  // upper case, as the dialogue reports it ("UID FETCH" for IMAP)
    std::uint64_t count = 0;

    bool operator==(const CommandCount&) const = default;
};

struct SmtpEnvelope {
    std::uint64_t mail_from = 0;     // MAIL FROM commands
    std::uint64_t null_senders = 0;  // of which with the null reverse-path <>
    std::uint64_t rcpt_to = 0;       // RCPT TO commands
    // Distinct sender domains (lower case) in the order seen, at most kMaxSenderDomains.
    std::vector<std::string> sender_domains;
    std::uint64_t messages = 0;       // messages whose content ended (end of DATA, BDAT LAST)
    std::uint64_t message_bytes = 0;  // their sizes summed
    // Each message's size (see MessageEnd), for the first kMaxRecordedMessages messages.
    std::vector<std::uint64_t> message_sizes;

    bool operator==(const SmtpEnvelope&) const = default;
};

struct MailSessionSummary {
    DialogueProtocol protocol = DialogueProtocol::smtp;
    UpgradeOutcome upgrade = UpgradeOutcome::none;
    bool observed_inside_tls = false;                // the decrypted dialogue was fed
    DialogueState state = DialogueState::plaintext;  // where the dialogue stopped
    std::string error;                               // why observing stopped, if it did
    std::string greeting_host;
    std::vector<std::string> capabilities;  // advertised in the plaintext phase
    std::vector<std::string> capabilities_inside_tls;
    bool upgrade_advertised = false;
    // Commands by verb in the order first seen, at most kMaxDistinctVerbs of them; the others,
    // and commands without a well-formed verb, are only counted.
    std::vector<CommandCount> commands;
    std::uint64_t other_commands = 0;
    SmtpEnvelope smtp;
    std::uint64_t ftp_data_endpoints = 0;  // passive replies announced (drained or not)

    bool operator==(const MailSessionSummary&) const = default;
};

class MailSessionObserver {
public:
    static constexpr std::size_t kMaxDistinctVerbs = 64;
    static constexpr std::size_t kMaxSenderDomains = 16;
    static constexpr std::size_t kMaxRecordedMessages = 256;
    // Endpoints not yet taken; when more arrive, the oldest are dropped.
    static constexpr std::size_t kMaxPendingEndpoints = 64;

    explicit MailSessionObserver(DialogueProtocol protocol);

    // The same contract as StartTlsDialogue::feed(): the plaintext phase first; once upgraded
    // and intercepted, call continue_inside_tls() and feed the decrypted dialogue.
    FeedResult feed(Side side, std::span<const char> bytes);
    bool continue_inside_tls() { return dialogue_.continue_inside_tls(); }

    const StartTlsDialogue& dialogue() const { return dialogue_; }
    MailSessionSummary summary() const;

    // The FTP passive endpoints announced since the last call, oldest first. Take them after
    // feeding the server's bytes and before relaying them: the client connects as soon as it
    // reads the reply.
    std::vector<FtpDataEndpoint> take_ftp_data_endpoints();

private:
    class Recorder : public DialogueListener {
    public:
        explicit Recorder(DialogueProtocol protocol) : protocol_(protocol) {}
        void on_client_command(const ClientCommand& command) override;
        void on_server_line(const ServerLine& line) override;
        void on_message(const MessageEnd& message) override;

        DialogueProtocol protocol_;
        std::vector<CommandCount> commands_;
        std::uint64_t other_commands_ = 0;
        SmtpEnvelope smtp_;
        std::vector<FtpDataEndpoint> pending_endpoints_;
        std::uint64_t endpoints_announced_ = 0;

    private:
        void count_verb(std::string_view verb);
        void record_sender(std::string_view arguments);
    };

    StartTlsDialogue dialogue_;
    Recorder recorder_;
};

}  // namespace tlsgate::classify
