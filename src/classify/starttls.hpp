#pragma once
// Mail and FTP dialogues that upgrade to TLS in-band (sans-io): SMTP STARTTLS (RFC 3207), IMAP
// STARTTLS (RFC 3501), POP3 STLS (RFC 2595) and FTP AUTH TLS (RFC 4217). The shell relays the
// plaintext dialogue untouched and feeds each side's bytes here as it reads them; the dialogue
// tells when the server has accepted the upgrade, so the TLS that follows can be intercepted or
// passed through. It only observes: the gateway never strips or alters a capability (no
// downgrade), and a dialogue this code cannot follow is simply relayed.
//
// Feed order matters: feed the server's bytes before relaying them to the client. A client
// reacts only to what it has received, so the dialogue then sees both sides in causal order
// (the 354 before the message, the "+" before a SASL response, the 220 before the ClientHello).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tlsgate::classify {

enum class DialogueProtocol { smtp, imap, pop3, ftp };

const char* to_string(DialogueProtocol protocol);

// The dialogue protocol a server port usually speaks: 25 and 587 SMTP, 143 IMAP, 110 POP3, 21
// FTP. The implicit-TLS ports (465, 993, 995, 990) are not dialogues: TLS starts at once there.
std::optional<DialogueProtocol> starttls_protocol_for_port(std::uint16_t port);
bool is_implicit_tls_port(std::uint16_t port);

enum class Side { client, server };  // who sent the bytes

enum class DialogueState {
    plaintext,  // relay and keep feeding
    upgrading,  // the client asked for TLS; relay and keep feeding until the server answers
    // The server accepted: the plaintext phase ended with the last byte of its answer. The
    // client's next bytes are a TLS ClientHello; stop feeding (see continue_inside_tls()).
    upgraded,
    // The server refused the upgrade. The session may go on in cleartext: relay it untouched and
    // keep feeding (a later upgrade request is recognised again).
    refused,
    // The first bytes are not this protocol (the server's greeting, or the client's first byte):
    // relay untouched and stop feeding.
    not_this_protocol,
    // The client opened with a TLS record (byte 0x16) before any dialogue: the port is used for
    // implicit TLS. Nothing was consumed; hand the bytes to the ClientHello parser.
    tls_first,
    // The dialogue broke the rules this code relies on (error() says how): an over-long line,
    // a malformed reply, client bytes after the upgrade request and before its answer. Do not
    // intercept: relay untouched and stop feeding.
    error,
};

const char* to_string(DialogueState state);

enum class UpgradeOutcome { none, upgraded, refused };

const char* to_string(UpgradeOutcome outcome);

struct FeedResult {
    // Bytes of this feed that belong to the plaintext dialogue. All of them while the state is
    // plaintext, upgrading or refused. When the state turns upgraded: the bytes up to and
    // including the last byte of the server's accepting answer; anything after it is not
    // plaintext (a real server sends nothing before the ClientHello, so extra bytes there
    // deserve suspicion). In the failure states: the bytes read before the verdict, which is
    // reached at a byte, however the stream is split.
    std::size_t consumed = 0;
    DialogueState state = DialogueState::plaintext;
};

// What a dialogue tells a listener as it goes (the mail session summary is built from this).
// The string views are valid only during the call.
struct ClientCommand {
    std::string_view tag;   // IMAP tag; empty for the other protocols
    std::string_view verb;  // upper case ("UID FETCH" for IMAP UID commands); empty if malformed
    // As received, truncated at kMaxLineBytes. Always empty for commands that carry
    // credentials: PASS, APOP, ACCT, ADAT, LOGIN, AUTHENTICATE, and AUTH except FTP's.
    std::string_view arguments;
    bool inside_tls = false;
};

struct ServerLine {
    int code = 0;             // SMTP and FTP reply code; 0 for IMAP and POP3
    std::string_view text;    // the whole line without its line ending, truncated at kMaxLineBytes
    bool ends_reply = false;  // last line of an SMTP/FTP reply; IMAP and POP3 lines: always
    bool inside_tls = false;
};

struct MessageEnd {
    // Raw bytes of the message as sent: after DATA's 354 up to and including the CRLF that ends
    // the last line (the terminating ".\r\n" excluded, dot-stuffing left in), or the sum of the
    // BDAT chunks.
    std::uint64_t size = 0;
    bool chunked = false;  // sent with BDAT
    bool inside_tls = false;
};

class DialogueListener {
public:
    virtual ~DialogueListener() = default;
    // Commands only: SASL responses, literals and message content are never reported.
    virtual void on_client_command(const ClientCommand& /*command*/) {}
    // SMTP/FTP reply lines, POP3 status lines, IMAP response lines up to their first literal.
    virtual void on_server_line(const ServerLine& /*line*/) {}
    virtual void on_message(const MessageEnd& /*message*/) {}
};

// Follows one connection's dialogue. Lines may be split at any byte and may end in CRLF or a
// bare LF (except SMTP's end of data, which must be CRLF.CRLF as RFC 5321 says: reading a
// bare-LF variant as the end is how SMTP smuggling desynchronises observers). Memory is bounded:
// a line is kept up to kMaxLineBytes, and IMAP literals, BDAT chunks and message bodies are
// skipped without being stored.
//
// Pipelining (RFC 3207 section 4, RFC 2595 section 4, RFC 4217): the upgrade request must be the
// last command of its flight. A client byte after it and before the server's answer is the
// command injection of CVE-2011-0411 (or a broken client); the dialogue goes to error, and the
// caller must not intercept, only relay untouched. Likewise a client that sends message bytes
// before the server's answer to DATA is not followed (error), as that answer decides whether the
// bytes are content or commands.
class StartTlsDialogue {
public:
    // Command, reply and status lines longer than this are an error (RFC 5321 allows 512 bytes;
    // real servers send a little more). IMAP lines are not limited, only kept up to this size:
    // long untagged responses (SEARCH, LIST) are legitimate. Message and POP3 body lines are
    // not limited either, and not kept.
    static constexpr std::size_t kMaxLineBytes = 8 * 1024;
    // Commands sent and not yet answered (PIPELINING). More is an error.
    static constexpr std::size_t kMaxPendingCommands = 1024;
    static constexpr std::size_t kMaxCapabilities = 128;
    static constexpr std::size_t kMaxCapabilityBytes = 256;  // longer ones are truncated

    explicit StartTlsDialogue(DialogueProtocol protocol);

    // Feed the next bytes one side sent. The listener, if any, hears about this feed's commands,
    // replies and messages. Once the state is upgraded (before continue_inside_tls()),
    // not_this_protocol, tls_first or error, feeding consumes nothing and changes nothing.
    FeedResult feed(Side side, std::span<const char> bytes, DialogueListener* listener = nullptr);

    // The caller intercepted the TLS and will feed the decrypted dialogue from now on: the
    // dialogue restarts as RFC 3207 wants (no greeting; the client greets again), keeps the state
    // upgraded, and only turns to error if the inner dialogue breaks its rules. Returns false
    // (and does nothing) unless the state is upgraded.
    bool continue_inside_tls();

    DialogueProtocol protocol() const { return protocol_; }
    DialogueState state() const { return state_; }
    UpgradeOutcome upgrade_outcome() const { return outcome_; }
    bool inside_tls() const { return inside_tls_; }
    const std::string& error() const { return error_; }

    // Best effort: a host name the server's greeting names ("220 mail.example.test ESMTP").
    // Empty when the greeting names none.
    const std::string& greeting_host() const { return greeting_host_; }
    // What the server advertised in the plaintext phase, from the last answer that listed it:
    // SMTP EHLO keywords with their parameters ("SIZE 10240000"), IMAP CAPABILITY atoms, POP3
    // CAPA lines, FTP FEAT lines ("AUTH TLS"). Kept as sent, so a test can tell the upgrade was
    // still offered to the client.
    const std::vector<std::string>& capabilities() const { return plaintext_capabilities_; }
    // The same, advertised inside TLS (after continue_inside_tls()).
    const std::vector<std::string>& capabilities_inside_tls() const { return tls_capabilities_; }
    // Whether the plaintext capabilities include `capability` (case-insensitive), alone or as
    // the first words of an entry: "AUTH" matches "AUTH PLAIN LOGIN".
    bool advertises(std::string_view capability) const;
    // STARTTLS (SMTP, IMAP), STLS (POP3), AUTH TLS or AUTH SSL (FTP) among the capabilities.
    bool upgrade_advertised() const;

private:
    // What the next server reply answers, in command order.
    enum class Expect : std::uint8_t {
        greeting,
        ordinary,
        upgrade,
        smtp_ehlo,       // lists capabilities
        smtp_data,       // 354 starts the message
        sasl,            // continuations ask for a SASL response line
        pop3_multiline,  // +OK starts a dot-terminated body
        pop3_capa,       // the same, listing capabilities
        ftp_feat,        // lists capabilities
    };
    enum class ClientMode : std::uint8_t {
        command,
        literal,       // IMAP literal bytes
        chunk,         // BDAT chunk bytes
        data_pending,  // DATA sent, its answer not yet seen
        message,       // DATA content up to CRLF.CRLF
        closed,        // the upgrade request was sent: nothing more until the answer
    };
    enum class ServerMode : std::uint8_t { reply, literal, pop3_body };
    // How a line is kept and limited: strict (commands, replies: kept, limited), head_only
    // (IMAP: kept up to the limit, not limited), content (message and POP3 body lines: not
    // kept), listing (POP3 CAPA lines), sasl (SASL responses, IDLE's DONE: not kept).
    enum class LineKind : std::uint8_t { strict, head_only, content, listing, sasl };
    // Where the end of an IMAP line stands in a literal marker "{123}" or "{123+}".
    enum class Marker : std::uint8_t { none, open, digits, plus, closed, closed_cr };

    struct Line {
        std::string text;        // the bytes kept, line ending excluded
        std::size_t length = 0;  // bytes before the LF so far
        char last = 0;           // the byte before the LF
        bool begun = false;      // kind is chosen
        bool continued = false;  // IMAP: this segment follows a literal; text is the head
        LineKind kind = LineKind::strict;
        Marker marker = Marker::none;
        std::uint64_t literal = 0;  // value of the marker's digits
        bool literal_too_large = false;
    };

    std::size_t step_client(std::string_view input);
    std::size_t step_server(std::string_view input);
    // Takes bytes of `line` up to and including its LF; `complete` tells whether it ended.
    std::size_t take_line(Line& line, std::string_view input, bool& complete);
    void track_marker(Line& line, std::string_view bytes);
    bool enters_literal(Line& line, std::uint64_t& literal);
    void finish_line(Line& line);

    void on_client_line(Line& line);
    void on_message_line(Line& line);
    void on_client_command(std::string_view text);
    void on_imap_client_command(std::string_view text);
    void on_server_reply_line(std::string_view text);
    void on_reply_complete(int code);
    void on_pop3_server_line(std::string_view text);
    void on_pop3_body_line(std::string_view text);
    void on_imap_server_line(std::string_view text);
    void on_upgrade_answer(bool accepted, bool refused);

    bool greeting_prefix_possible(std::string_view seen, bool& decided) const;
    bool push_expect(Expect expect);
    void report_command(std::string_view tag, std::string_view verb, std::string_view arguments);
    void report_server_line(int code, std::string_view text, bool ends_reply);
    void end_message(std::uint64_t size, bool chunked);
    std::vector<std::string>& current_capabilities();
    void add_capability(std::vector<std::string>& list, std::string_view capability);
    void set_imap_capabilities(std::string_view atoms);
    bool accepting() const;
    void fail(DialogueState state, std::string message);

    DialogueProtocol protocol_;
    DialogueState state_ = DialogueState::plaintext;
    UpgradeOutcome outcome_ = UpgradeOutcome::none;
    bool inside_tls_ = false;
    std::string error_;
    DialogueListener* listener_ = nullptr;  // only during feed()

    // Client side.
    Line client_line_;
    ClientMode client_mode_ = ClientMode::command;
    bool client_started_ = false;
    std::uint64_t client_skip_ = 0;  // literal or chunk bytes still to come
    std::size_t sasl_lines_granted_ = 0;
    bool previous_line_crlf_ = true;  // in a message: whether the last line ended in CRLF
    std::uint64_t message_bytes_ = 0;
    bool last_chunk_ = false;  // the BDAT chunk being skipped ends the message
    std::string verb_;         // upper-cased verb of the command being handled

    // Server side.
    Line server_line_;
    ServerMode server_mode_ = ServerMode::reply;
    bool greeting_checked_ = false;
    std::uint64_t server_skip_ = 0;
    int multiline_code_ = 0;     // SMTP/FTP: the code of the multi-line reply under way
    bool body_is_capa_ = false;  // POP3: the body under way lists capabilities
    std::deque<Expect> expected_;
    std::string imap_upgrade_tag_;
    std::string imap_continuation_tag_;  // AUTHENTICATE or IDLE under way

    std::string greeting_host_;
    std::vector<std::string> plaintext_capabilities_;
    std::vector<std::string> tls_capabilities_;
    std::vector<std::string> staged_capabilities_;  // of the answer being read
};

}  // namespace tlsgate::classify
