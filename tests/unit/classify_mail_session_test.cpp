#include "classify/mail_session.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tlsgate::classify {
namespace {

// ---------------------------------------------------------------------------------------------
// Helpers: a session is a script of reads, plus the point where the gateway intercepts the TLS
// and starts feeding the decrypted dialogue. Each script runs fed whole and byte by byte; the
// summaries and the FTP endpoints must be the same.

struct Step {
    enum class Kind { bytes, intercept } kind = Kind::bytes;
    Side side = Side::client;
    std::string bytes;
};
using Script = std::vector<Step>;

Step client(std::string bytes) {
    return Step{Step::Kind::bytes, Side::client, std::move(bytes)};
}
Step server(std::string bytes) {
    return Step{Step::Kind::bytes, Side::server, std::move(bytes)};
}
Step intercept() {
    return Step{Step::Kind::intercept, Side::client, {}};
}

std::span<const char> text(std::string_view bytes) {
    return std::span<const char>(bytes.data(), bytes.size());
}

struct SessionRun {
    MailSessionSummary summary;
    std::vector<FtpDataEndpoint> endpoints;  // drained after every server read
};

SessionRun run(DialogueProtocol protocol, const Script& script, bool byte_by_byte) {
    MailSessionObserver observer(protocol);
    SessionRun result;
    for (const Step& step : script) {
        if (step.kind == Step::Kind::intercept) {
            EXPECT_TRUE(observer.continue_inside_tls());
            continue;
        }
        if (byte_by_byte) {
            for (std::size_t i = 0; i < step.bytes.size(); ++i) {
                observer.feed(step.side, text(step.bytes).subspan(i, 1));
            }
        } else {
            observer.feed(step.side, text(step.bytes));
        }
        for (FtpDataEndpoint& endpoint : observer.take_ftp_data_endpoints()) {
            result.endpoints.push_back(endpoint);
        }
    }
    result.summary = observer.summary();
    return result;
}

SessionRun run_both_ways(DialogueProtocol protocol, const Script& script) {
    SessionRun whole = run(protocol, script, false);
    const SessionRun bytewise = run(protocol, script, true);
    EXPECT_TRUE(whole.summary == bytewise.summary) << "byte-by-byte feeding changed the summary";
    EXPECT_EQ(whole.endpoints, bytewise.endpoints);
    return whole;
}

std::uint64_t count_of(const MailSessionSummary& summary, std::string_view verb) {
    for (const CommandCount& entry : summary.commands) {
        if (entry.verb == verb) {
            return entry.count;
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// SMTP

const char* const kPostfixGreeting = "220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n";
const char* const kPostfixEhlo =
    "250-mail.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
    "250-8BITMIME\r\n250 CHUNKING\r\n";

TEST(MailSessionSmtp, EnvelopeAndMessagesInsideTls) {
    // A message with a line holding a single "." (sent dot-stuffed as "..") and the end of data
    // split across reads at every byte of "\r\n.\r\n".
    const std::string message =
        "From: Alice <alice@example.org>\r\n"
        "To: bob@example.test, carol@example.test\r\n"
        "Subject: dots\r\n"
        "\r\n"
        "a line with only a dot follows\r\n"
        "..\r\n"
        "end\r";
    const std::string chunk_one = "Subject: chunked\r\n\r\n";
    const std::string chunk_two = "body.\r\n";
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO client.example.test\r\n"),
        server(kPostfixEhlo),
        client("STARTTLS\r\n"),
        server("220 2.0.0 Ready to start TLS\r\n"),
        intercept(),
        client("EHLO client.example.test\r\n"),
        server(
            "250-mail.example.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n"),
        client("AUTH PLAIN AGFsaWNlAGh1bnRlcjI=\r\n"),
        server("235 2.7.0 Authentication successful\r\n"),
        client("MAIL FROM:<Alice@Example.ORG> SIZE=180\r\nRCPT TO:<bob@example.test>\r\n"
               "RCPT TO:<carol@example.test>\r\nDATA\r\n"),
        server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
               "354 End data with <CR><LF>.<CR><LF>\r\n"),
        client(message),
        client("\n"),
        client("."),
        client("\r"),
        client("\n"),
        server("250 2.0.0 Ok: queued as 4Tq0Zb1x2Kz9\r\n"),
        client("MAIL FROM:<> \r\nRCPT TO:<postmaster@example.test>\r\n"),
        server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
        client("BDAT " + std::to_string(chunk_one.size()) + "\r\n" + chunk_one),
        server("250 2.0.0 Ok: 20 octets\r\n"),
        client("BDAT " + std::to_string(chunk_two.size()) + " LAST\r\n" + chunk_two),
        server("250 2.0.0 Ok: queued as 4Tq0Zc0yKlz9\r\n"),
        client("MAIL FROM:<other@example.net>\r\nRCPT TO:<bob@example.test>\r\nBDAT 0 LAST\r\n"),
        server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued\r\n"),
        client("QUIT\r\n"),
        server("221 2.0.0 Bye\r\n"),
    };
    const SessionRun r = run_both_ways(DialogueProtocol::smtp, script);
    const MailSessionSummary& s = r.summary;
    EXPECT_EQ(s.protocol, DialogueProtocol::smtp);
    EXPECT_EQ(s.upgrade, UpgradeOutcome::upgraded);
    EXPECT_TRUE(s.observed_inside_tls);
    EXPECT_EQ(s.state, DialogueState::upgraded);
    EXPECT_TRUE(s.error.empty()) << s.error;
    EXPECT_EQ(s.greeting_host, "mail.example.test");
    EXPECT_TRUE(s.upgrade_advertised);
    EXPECT_EQ(s.capabilities.size(), 5u);
    EXPECT_EQ(s.capabilities_inside_tls,
              (std::vector<std::string>{"PIPELINING", "AUTH PLAIN LOGIN", "CHUNKING"}));

    EXPECT_EQ(s.smtp.mail_from, 3u);
    EXPECT_EQ(s.smtp.null_senders, 1u);
    EXPECT_EQ(s.smtp.rcpt_to, 4u);
    EXPECT_EQ(s.smtp.sender_domains, (std::vector<std::string>{"example.org", "example.net"}));
    EXPECT_EQ(s.smtp.messages, 3u);
    // The first message: every byte after the 354 up to and including the CRLF before ".".
    const std::uint64_t first_size = message.size() + 1;
    const std::uint64_t second_size = chunk_one.size() + chunk_two.size();
    EXPECT_EQ(s.smtp.message_sizes, (std::vector<std::uint64_t>{first_size, second_size, 0}));
    EXPECT_EQ(s.smtp.message_bytes, first_size + second_size);

    EXPECT_EQ(count_of(s, "EHLO"), 2u);
    EXPECT_EQ(count_of(s, "STARTTLS"), 1u);
    EXPECT_EQ(count_of(s, "AUTH"), 1u);
    EXPECT_EQ(count_of(s, "MAIL"), 3u);
    EXPECT_EQ(count_of(s, "RCPT"), 4u);
    EXPECT_EQ(count_of(s, "DATA"), 1u);
    EXPECT_EQ(count_of(s, "BDAT"), 3u);
    EXPECT_EQ(count_of(s, "QUIT"), 1u);
    EXPECT_EQ(s.commands.size(), 8u);
    EXPECT_EQ(s.other_commands, 0u);
}

TEST(MailSessionSmtp, OnlyCrlfDotCrlfEndsTheMessage) {
    // Bare-LF variants of the terminator are content (the SMTP smuggling lesson); so is a dot
    // line after a line that ended in a bare LF.
    const std::string content = "a\n.\nb\r\n.\nc\n.\r\nd\r\n";
    const Script script = {
        server(kPostfixGreeting),
        client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"),
        server("250 Ok\r\n250 Ok\r\n354 go\r\n"),
        client(content + ".\r\n"),
        server("250 Ok\r\n"),
    };
    const SessionRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.summary.smtp.messages, 1u);
    EXPECT_EQ(r.summary.smtp.message_sizes, (std::vector<std::uint64_t>{content.size()}));
    EXPECT_EQ(r.summary.state, DialogueState::plaintext);
}

TEST(MailSessionSmtp, EmptyMessage) {
    const Script script = {
        server(kPostfixGreeting),
        client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"),
        server("250 Ok\r\n250 Ok\r\n354 go\r\n"),
        client(".\r\n"),
        server("250 Ok\r\n"),
    };
    const SessionRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.summary.smtp.message_sizes, (std::vector<std::uint64_t>{0}));
}

TEST(MailSessionSmtp, CleartextSessionAfterRefusal) {
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO c\r\n"),
        server(kPostfixEhlo),
        client("STARTTLS\r\n"),
        server("454 4.7.0 TLS not available due to local problem\r\n"),
        client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"),
        server("250 Ok\r\n250 Ok\r\n354 go\r\n"),
        client("hello\r\n.\r\n"),
        server("250 Ok\r\n"),
    };
    const SessionRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.summary.upgrade, UpgradeOutcome::refused);
    EXPECT_FALSE(r.summary.observed_inside_tls);
    EXPECT_EQ(r.summary.state, DialogueState::refused);
    EXPECT_EQ(r.summary.smtp.messages, 1u);
    EXPECT_EQ(r.summary.smtp.message_sizes, (std::vector<std::uint64_t>{7}));
}

TEST(MailSessionSmtp, DistinctVerbsAreBounded) {
    std::string commands;
    for (int i = 0; i < 100; ++i) {
        commands += "XCMD" + std::to_string(i) + "\r\n";
    }
    commands += "NOOP\r\n\x01\x02\r\n";
    const Script script = {server(kPostfixGreeting), client(commands)};
    const SessionRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.summary.commands.size(), MailSessionObserver::kMaxDistinctVerbs);
    EXPECT_EQ(r.summary.other_commands, 100 - MailSessionObserver::kMaxDistinctVerbs + 2);
    EXPECT_EQ(r.summary.commands.front().verb, "XCMD0");
}

// ---------------------------------------------------------------------------------------------
// IMAP and POP3

TEST(MailSessionImap, CommandsCountedWithoutArguments) {
    const std::string literal = "hunter2";
    const Script script = {
        server("* OK [CAPABILITY IMAP4rev1 LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"),
        client("a1 STARTTLS\r\n"),
        server("a1 OK Begin TLS negotiation now.\r\n"),
        intercept(),
        client("a2 LOGIN alice {" + std::to_string(literal.size()) + "+}\r\n" + literal + "\r\n"),
        server("a2 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n"),
        client("a3 SELECT INBOX\r\na4 UID FETCH 1:* (FLAGS)\r\na5 uid fetch 2 BODY[]\r\n"),
        server("* 2 EXISTS\r\na3 OK [READ-WRITE] Select completed.\r\n"
               "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* 2 FETCH (UID 2 FLAGS ())\r\n"
               "a4 OK Fetch completed.\r\n* 2 FETCH (UID 2 BODY[] {12}\r\na6 LOGOUT\r\n)\r\n"
               "a5 OK Fetch completed.\r\n"),
        client("a6 LOGOUT\r\n"),
        server("* BYE Logging out\r\na6 OK Logout completed.\r\n"),
    };
    const SessionRun r = run_both_ways(DialogueProtocol::imap, script);
    const MailSessionSummary& s = r.summary;
    EXPECT_EQ(s.upgrade, UpgradeOutcome::upgraded);
    EXPECT_TRUE(s.observed_inside_tls);
    EXPECT_TRUE(s.error.empty()) << s.error;
    EXPECT_EQ(s.commands,
              (std::vector<CommandCount>{
                  {"STARTTLS", 1}, {"LOGIN", 1}, {"SELECT", 1}, {"UID FETCH", 2}, {"LOGOUT", 1}}));
    EXPECT_EQ(s.capabilities_inside_tls, (std::vector<std::string>{"IMAP4rev1", "IDLE", "MOVE"}));
}

TEST(MailSessionPop3, CleartextSession) {
    const Script script = {
        server("+OK Dovecot (Debian) ready.\r\n"),
        client("CAPA\r\n"),
        server("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nUSER\r\n.\r\n"),
        client("USER alice\r\n"),
        server("+OK\r\n"),
        client("PASS hunter2\r\n"),
        server("+OK Logged in.\r\n"),
        client("STAT\r\nLIST\r\nRETR 1\r\n"),
        server("+OK 1 12\r\n+OK 1 messages:\r\n1 12\r\n.\r\n+OK 12 octets\r\nhi\r\n..\r\n.\r\n"),
        client("QUIT\r\n"),
        server("+OK Logging out.\r\n"),
    };
    const SessionRun r = run_both_ways(DialogueProtocol::pop3, script);
    const MailSessionSummary& s = r.summary;
    EXPECT_EQ(s.upgrade, UpgradeOutcome::none);
    EXPECT_FALSE(s.upgrade_advertised);
    EXPECT_EQ(s.state, DialogueState::plaintext);
    EXPECT_EQ(s.commands, (std::vector<CommandCount>{{"CAPA", 1},
                                                     {"USER", 1},
                                                     {"PASS", 1},
                                                     {"STAT", 1},
                                                     {"LIST", 1},
                                                     {"RETR", 1},
                                                     {"QUIT", 1}}));
    EXPECT_EQ(s.smtp, SmtpEnvelope{});
}

// ---------------------------------------------------------------------------------------------
// FTP

TEST(MailSessionFtp, PassiveEndpointsBeforeAndInsideTls) {
    const Script script = {
        server("220 (vsFTPd 3.0.3)\r\n"),
        client("USER anonymous\r\n"),
        server("331 Please specify the password.\r\n"),
        client("PASS guest@\r\n"),
        server("230 Login successful.\r\n"),
        client("PASV\r\n"),
        server("227 Entering Passive Mode (192,0,2,10,195,80).\r\n"),
        client("LIST\r\n"),
        server("150 Here comes the directory listing.\r\n226 Directory send OK.\r\n"),
        client("EPSV\r\n"),
        server("229 Entering Extended Passive Mode (|||50001|)\r\n"),
        client("AUTH TLS\r\n"),
        server("234 Proceed with negotiation.\r\n"),
        intercept(),
        client("PBSZ 0\r\nPROT P\r\nPASV\r\n"),
        server("200 PBSZ set to 0.\r\n200 PROT now Private.\r\n"
               "227 Entering Passive Mode (198,51,100,7,4,1)\r\n"),
        client("QUIT\r\n"),
        server("221 Goodbye.\r\n"),
    };
    const SessionRun r = run_both_ways(DialogueProtocol::ftp, script);
    const std::vector<FtpDataEndpoint> expected = {
        {Ipv4Address{192, 0, 2, 10}, 50000, false, false},
        {std::nullopt, 50001, true, false},
        {Ipv4Address{198, 51, 100, 7}, 1025, false, true},
    };
    EXPECT_EQ(r.endpoints, expected);
    EXPECT_EQ(r.summary.ftp_data_endpoints, 3u);
    EXPECT_EQ(r.summary.upgrade, UpgradeOutcome::upgraded);
    EXPECT_EQ(count_of(r.summary, "PASV"), 2u);
    EXPECT_EQ(count_of(r.summary, "PASS"), 1u);
}

TEST(MailSessionFtp, PendingEndpointsAreBounded) {
    MailSessionObserver observer(DialogueProtocol::ftp);
    observer.feed(Side::server, text("220 ready\r\n"));
    for (int i = 1; i <= 70; ++i) {
        observer.feed(Side::client, text("PASV\r\n"));
        const std::string reply =
            "227 Entering Passive Mode (10,0,0,1,1," + std::to_string(i) + ")\r\n";
        observer.feed(Side::server, text(reply));
    }
    const std::vector<FtpDataEndpoint> endpoints = observer.take_ftp_data_endpoints();
    ASSERT_EQ(endpoints.size(), MailSessionObserver::kMaxPendingEndpoints);
    EXPECT_EQ(endpoints.front().port, 256 + 7);  // the six oldest were dropped
    EXPECT_EQ(endpoints.back().port, 256 + 70);
    EXPECT_TRUE(observer.take_ftp_data_endpoints().empty());
    EXPECT_EQ(observer.summary().ftp_data_endpoints, 70u);
}

TEST(FtpPassive, Parse227) {
    const FtpPassiveReply expected{Ipv4Address{192, 0, 2, 10}, 50000};
    EXPECT_EQ(parse_ftp_227("227 Entering Passive Mode (192,0,2,10,195,80)."), expected);
    EXPECT_EQ(parse_ftp_227("227 Entering Passive Mode (192,0,2,10,195,80)\r\n"), expected);
    EXPECT_EQ(parse_ftp_227("227 Entering Passive Mode 192,0,2,10,195,80"), expected);
    EXPECT_EQ(parse_ftp_227("227 =192,0,2,10,195,80"), expected);
    EXPECT_EQ(parse_ftp_227("227 Entering Passive Mode (192, 0, 2, 10, 195, 80)"), expected);
    // The first number that does not start a tuple is passed over.
    EXPECT_EQ(parse_ftp_227("227 Mode 2 (192,0,2,10,195,80)"), expected);
    EXPECT_EQ(parse_ftp_227("227 (0,0,0,0,0,21)"), (FtpPassiveReply{Ipv4Address{0, 0, 0, 0}, 21}));
}

TEST(FtpPassive, Parse227Malformed) {
    for (const std::string_view line : {
             "",
             "227",
             "227 Entering Passive Mode",
             "228 Entering Passive Mode (192,0,2,10,195,80)",
             "2270 (192,0,2,10,195,80)",
             "227 Entering Passive Mode (192,0,2,10,195)",
             "227 Entering Passive Mode (192,0,2,10,195,80,1)",
             "227 Entering Passive Mode (256,0,2,10,195,80)",
             "227 Entering Passive Mode (192,0,2,10,195,256)",
             "227 Entering Passive Mode (192,0,2,10,0,0)",
             "227 Entering Passive Mode (0192,0,2,10,195,80)",
             "227 Entering Passive Mode (192,0,2,10,,80)",
             "227 Entering Passive Mode (a,b,c,d,e,f)",
             "227 Entering Passive Mode (99999999999999999999,0,2,10,195,80)",
         }) {
        EXPECT_FALSE(parse_ftp_227(line).has_value()) << line;
    }
}

TEST(FtpPassive, Parse229) {
    const FtpPassiveReply expected{std::nullopt, 50001};
    EXPECT_EQ(parse_ftp_229("229 Entering Extended Passive Mode (|||50001|)"), expected);
    EXPECT_EQ(parse_ftp_229("229 Entering Extended Passive Mode (|||50001|)\r\n"), expected);
    EXPECT_EQ(parse_ftp_229("229 Entering Extended Passive Mode (!!!50001!)."), expected);
    EXPECT_EQ(parse_ftp_229("229 (|||1|)"), (FtpPassiveReply{std::nullopt, 1}));
    EXPECT_EQ(parse_ftp_229("229 (|||65535|)"), (FtpPassiveReply{std::nullopt, 65535}));
}

TEST(FtpPassive, Parse229Malformed) {
    for (const std::string_view line : {
             "",
             "229",
             "227 Entering Extended Passive Mode (|||50001|)",
             "229 Entering Extended Passive Mode |||50001|",
             "229 Entering Extended Passive Mode (||50001|)",
             "229 Entering Extended Passive Mode (|||50001)",
             "229 Entering Extended Passive Mode (|||50001|",
             "229 Entering Extended Passive Mode (|!|50001|)",
             "229 Entering Extended Passive Mode (|||0|)",
             "229 Entering Extended Passive Mode (|||65536|)",
             "229 Entering Extended Passive Mode (|||123456|)",
             "229 Entering Extended Passive Mode (||||)",
             "229 Entering Extended Passive Mode (1115000011)",
             "229 Entering Extended Passive Mode (   5000 )",
         }) {
        EXPECT_FALSE(parse_ftp_229(line).has_value()) << line;
    }
}

}  // namespace
}  // namespace tlsgate::classify
