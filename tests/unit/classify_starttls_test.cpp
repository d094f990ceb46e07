#include "classify/starttls.hpp"

#include <gtest/gtest.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tlsgate::classify {
namespace {

// ---------------------------------------------------------------------------------------------
// Helpers: a dialogue is a script of segments, each what one side sent in one read. Every test
// runs its script twice, each segment fed whole and then byte by byte, and the two runs must
// agree on everything: states, bytes consumed, error, greeting and capabilities.

std::span<const char> text(std::string_view bytes) {
    return std::span<const char>(bytes.data(), bytes.size());
}

struct Segment {
    Side side;
    std::string bytes;
};
using Script = std::vector<Segment>;

Segment client(std::string bytes) {
    return Segment{Side::client, std::move(bytes)};
}
Segment server(std::string bytes) {
    return Segment{Side::server, std::move(bytes)};
}

struct DialogueRun {
    explicit DialogueRun(DialogueProtocol protocol) : dialogue(protocol) {}
    StartTlsDialogue dialogue;
    std::vector<std::size_t> consumed;  // per segment
    std::vector<DialogueState> states;  // after each segment
};

DialogueRun run(DialogueProtocol protocol, const Script& script, bool byte_by_byte) {
    DialogueRun result(protocol);
    for (const Segment& segment : script) {
        std::size_t consumed = 0;
        DialogueState state = result.dialogue.state();
        if (byte_by_byte) {
            for (std::size_t i = 0; i < segment.bytes.size(); ++i) {
                const FeedResult fed =
                    result.dialogue.feed(segment.side, text(segment.bytes).subspan(i, 1));
                consumed += fed.consumed;
                state = fed.state;
            }
        } else {
            const FeedResult fed = result.dialogue.feed(segment.side, text(segment.bytes));
            consumed = fed.consumed;
            state = fed.state;
        }
        result.consumed.push_back(consumed);
        result.states.push_back(state);
    }
    return result;
}

DialogueRun run_both_ways(DialogueProtocol protocol, const Script& script) {
    DialogueRun whole = run(protocol, script, false);
    const DialogueRun bytewise = run(protocol, script, true);
    EXPECT_EQ(whole.consumed, bytewise.consumed) << "byte-by-byte feeding consumed differently";
    EXPECT_EQ(whole.states, bytewise.states) << "byte-by-byte feeding changed the states";
    EXPECT_EQ(whole.dialogue.error(), bytewise.dialogue.error());
    EXPECT_EQ(whole.dialogue.greeting_host(), bytewise.dialogue.greeting_host());
    EXPECT_EQ(whole.dialogue.capabilities(), bytewise.dialogue.capabilities());
    EXPECT_EQ(whole.dialogue.upgrade_outcome(), bytewise.dialogue.upgrade_outcome());
    return whole;
}

void expect_all_consumed(const DialogueRun& run, const Script& script) {
    for (std::size_t i = 0; i < script.size(); ++i) {
        EXPECT_EQ(run.consumed[i], script[i].bytes.size()) << "segment " << i;
    }
}

// A TLS 1.2 record header and the start of a ClientHello: what follows an accepted upgrade.
const std::string kClientHelloStart("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);

// ---------------------------------------------------------------------------------------------
// Ports

TEST(StartTlsPorts, DialoguePorts) {
    EXPECT_EQ(starttls_protocol_for_port(25), DialogueProtocol::smtp);
    EXPECT_EQ(starttls_protocol_for_port(587), DialogueProtocol::smtp);
    EXPECT_EQ(starttls_protocol_for_port(143), DialogueProtocol::imap);
    EXPECT_EQ(starttls_protocol_for_port(110), DialogueProtocol::pop3);
    EXPECT_EQ(starttls_protocol_for_port(21), DialogueProtocol::ftp);
    for (const std::uint16_t port : {465, 993, 995, 990, 443, 80, 0, 22}) {
        EXPECT_FALSE(starttls_protocol_for_port(port).has_value()) << port;
    }
}

TEST(StartTlsPorts, ImplicitTlsPorts) {
    for (const std::uint16_t port : {465, 993, 995, 990}) {
        EXPECT_TRUE(is_implicit_tls_port(port)) << port;
    }
    for (const std::uint16_t port : {25, 587, 143, 110, 21, 443}) {
        EXPECT_FALSE(is_implicit_tls_port(port)) << port;
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP (Postfix)

const char* const kPostfixGreeting = "220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n";
const char* const kPostfixEhlo =
    "250-mail.example.test\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-VRFY\r\n"
    "250-ETRN\r\n"
    "250-STARTTLS\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n";

TEST(StartTlsSmtp, UpgradeAccepted) {
    const Script script = {
        server(kPostfixGreeting), client("EHLO client.example.test\r\n"),     server(kPostfixEhlo),
        client("STARTTLS\r\n"),   server("220 2.0.0 Ready to start TLS\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.states,
              (std::vector<DialogueState>{DialogueState::plaintext, DialogueState::plaintext,
                                          DialogueState::plaintext, DialogueState::upgrading,
                                          DialogueState::upgraded}));
    EXPECT_EQ(r.dialogue.upgrade_outcome(), UpgradeOutcome::upgraded);
    EXPECT_EQ(r.dialogue.greeting_host(), "mail.example.test");
    EXPECT_TRUE(r.dialogue.upgrade_advertised());
    EXPECT_TRUE(r.dialogue.advertises("starttls"));
    EXPECT_TRUE(r.dialogue.advertises("SIZE"));
    EXPECT_FALSE(r.dialogue.advertises("AUTH"));
    EXPECT_EQ(r.dialogue.capabilities(),
              (std::vector<std::string>{"PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
                                        "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8",
                                        "CHUNKING"}));
    EXPECT_TRUE(r.dialogue.error().empty());
}

TEST(StartTlsSmtp, ConsumedStopsAtTheEndOfTheAcceptingReply) {
    const std::string accept = "220-2.0.0 Ready\r\n220 2.0.0 go ahead\r\n";
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO c\r\n"),
        server(kPostfixEhlo),
        client("STARTTLS\r\n"),
        server(accept + "unexpected bytes from the server"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.consumed.back(), accept.size());
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);

    // Once upgraded, nothing more is consumed from either side.
    StartTlsDialogue dialogue = r.dialogue;
    EXPECT_EQ(dialogue.feed(Side::client, text(kClientHelloStart)).consumed, 0u);
    EXPECT_EQ(dialogue.feed(Side::server, text("250 ok\r\n")).consumed, 0u);
    EXPECT_EQ(dialogue.state(), DialogueState::upgraded);
}

TEST(StartTlsSmtp, UpgradeRefusedThenCleartext) {
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO client.example.test\r\n"),
        server(kPostfixEhlo),
        client("STARTTLS\r\n"),
        server("454 4.7.0 TLS not available due to local problem\r\n"),
        client("MAIL FROM:<alice@example.org>\r\n"),
        server("250 2.1.0 Ok\r\n"),
        client("QUIT\r\n"),
        server("221 2.0.0 Bye\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.states[4], DialogueState::refused);
    EXPECT_EQ(r.states.back(), DialogueState::refused);
    EXPECT_EQ(r.dialogue.upgrade_outcome(), UpgradeOutcome::refused);
}

TEST(StartTlsSmtp, RefusedWith5xxAndRetriedLaterIsAnUpgrade) {
    const Script script = {
        server(kPostfixGreeting),
        client("STARTTLS\r\n"),
        server("503 5.5.1 Error: send HELO/EHLO first\r\n"),
        client("EHLO c\r\n"),
        server(kPostfixEhlo),
        client("STARTTLS\r\n"),
        server("220 2.0.0 Ready to start TLS\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states[2], DialogueState::refused);
    EXPECT_EQ(r.states[5], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
}

TEST(StartTlsSmtp, ClientNeverAsks) {
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO client.example.test\r\n"),
        server(kPostfixEhlo),
        client("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"),
        server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),
        // Lines of the message that look like commands are content, not commands.
        client("Subject: test\r\n\r\nSTARTTLS\r\nRSET\r\n.\r\n"),
        server("250 2.0.0 Ok: queued as 4Tq0Zb1x2Kz9\r\n"),
        client("QUIT\r\n"),
        server("221 2.0.0 Bye\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    expect_all_consumed(r, script);
    for (const DialogueState state : r.states) {
        EXPECT_EQ(state, DialogueState::plaintext);
    }
    EXPECT_EQ(r.dialogue.upgrade_outcome(), UpgradeOutcome::none);
    EXPECT_TRUE(r.dialogue.upgrade_advertised());  // offered, not taken
}

TEST(StartTlsSmtp, SaslResponseIsNotACommand) {
    // "STARTTLS" is valid base64: as the answer to a 334 challenge it is no upgrade request.
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO c\r\n"),
        server("250-mail.example.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"),
        client("AUTH LOGIN\r\n"),
        server("334 VXNlcm5hbWU6\r\n"),
        client("STARTTLS\r\n"),
        server("334 UGFzc3dvcmQ6\r\n"),
        client("c2VjcmV0\r\n"),
        server("235 2.7.0 Authentication successful\r\n"),
        client("STARTTLS\r\n"),
        server("220 2.0.0 Ready to start TLS\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states[5], DialogueState::plaintext);
    EXPECT_EQ(r.states[9], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
    EXPECT_TRUE(r.dialogue.advertises("AUTH"));
    EXPECT_TRUE(r.dialogue.advertises("auth plain"));
}

TEST(StartTlsSmtp, BdatChunkIsNotACommand) {
    const std::string chunk = "STARTTLS\r\nQUIT\r\n";
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO c\r\n"),
        server(kPostfixEhlo),
        client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"),
        server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
        client("BDAT " + std::to_string(chunk.size()) + " LAST\r\n" + chunk),
        server("250 2.0.0 Ok: queued\r\n"),
        client("STARTTLS\r\n"),
        server("220 2.0.0 Ready to start TLS\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states[5], DialogueState::plaintext);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
}

TEST(StartTlsSmtp, CommandsPipelinedAfterStartTlsAreAnError) {
    // CVE-2011-0411: a command injected behind STARTTLS in the same flight.
    const std::string request = "STARTTLS\r\n";
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO c\r\n"),
        server(kPostfixEhlo),
        client(request + "MAIL FROM:<evil@example.org>\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.consumed.back(), request.size());
    EXPECT_EQ(r.states.back(), DialogueState::error);
    EXPECT_NE(r.dialogue.error().find("pipelined"), std::string::npos) << r.dialogue.error();

    // The same in a later read, before the server's answer.
    const Script later = {
        server(kPostfixGreeting),
        client("STARTTLS\r\n"),
        client("R"),
    };
    const DialogueRun l = run_both_ways(DialogueProtocol::smtp, later);
    EXPECT_EQ(l.consumed.back(), 0u);
    EXPECT_EQ(l.states.back(), DialogueState::error);
}

TEST(StartTlsSmtp, PipelinedRepliesAreMatchedInOrder) {
    // RSET is answered first; its 250 is not the answer to STARTTLS.
    const Script script = {
        server(kPostfixGreeting),   client("EHLO c\r\n"),
        server(kPostfixEhlo),       client("RSET\r\nSTARTTLS\r\n"),
        server("250 2.0.0 Ok\r\n"), server("220 2.0.0 Ready to start TLS\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states[4], DialogueState::upgrading);
    EXPECT_EQ(r.states[5], DialogueState::upgraded);
}

TEST(StartTlsSmtp, UnexpectedAnswerToStartTlsIsAnError) {
    const Script script = {
        server(kPostfixGreeting),
        client("STARTTLS\r\n"),
        server("250 2.0.0 Ok\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states.back(), DialogueState::error);
}

TEST(StartTlsSmtp, ServerIsNotSmtp) {
    const Script ssh = {server("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")};
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, ssh);
    EXPECT_EQ(r.states.back(), DialogueState::not_this_protocol);
    EXPECT_EQ(r.consumed.back(), 0u);

    // "2" could start "220"; "25" cannot.
    const Script almost = {server("250 hello\r\n")};
    const DialogueRun a = run_both_ways(DialogueProtocol::smtp, almost);
    EXPECT_EQ(a.states.back(), DialogueState::not_this_protocol);
    EXPECT_EQ(a.consumed.back(), 1u);

    const Script no_service = {server("554 5.7.1 No SMTP service here\r\n")};
    EXPECT_EQ(run_both_ways(DialogueProtocol::smtp, no_service).states.back(),
              DialogueState::not_this_protocol);

    const Script glued = {server("220mail.example.test\r\n")};
    const DialogueRun g = run_both_ways(DialogueProtocol::smtp, glued);
    EXPECT_EQ(g.states.back(), DialogueState::not_this_protocol);
    EXPECT_EQ(g.consumed.back(), 3u);
}

TEST(StartTlsSmtp, MultiLineGreeting) {
    const Script script = {
        server("220-mx.example.test ESMTP\r\n220-No UCE\r\n220 ready\r\n"),
        client("STARTTLS\r\n"),
        server("220 go\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.dialogue.greeting_host(), "mx.example.test");
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
}

TEST(StartTlsSmtp, MalformedMultiLineReplyIsAnError) {
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO c\r\n"),
        server("250-mail.example.test\r\n251 other code\r\n"),
    };
    EXPECT_EQ(run_both_ways(DialogueProtocol::smtp, script).states.back(), DialogueState::error);
}

TEST(StartTlsSmtp, TlsFirst) {
    const Script script = {client(kClientHelloStart)};
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states.back(), DialogueState::tls_first);
    EXPECT_EQ(r.consumed.back(), 0u);
}

TEST(StartTlsSmtp, ClientStartingWithBinaryIsNotThisProtocol) {
    const Script script = {server(kPostfixGreeting), client(std::string("\x00\x01\x02", 3))};
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states.back(), DialogueState::not_this_protocol);
    // A TLS record after the dialogue began is no longer "TLS first".
    const Script late = {server(kPostfixGreeting), client("EHLO c\r\n"), client(kClientHelloStart)};
    EXPECT_EQ(run_both_ways(DialogueProtocol::smtp, late).states.back(), DialogueState::plaintext);
}

TEST(StartTlsSmtp, OverLongLineIsAnErrorAtTheLimit) {
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO " + std::string(StartTlsDialogue::kMaxLineBytes, 'a') + "\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states.back(), DialogueState::error);
    EXPECT_EQ(r.consumed.back(), StartTlsDialogue::kMaxLineBytes);

    // A line of exactly the limit (its CR included) is fine.
    const Script at_limit = {
        server(kPostfixGreeting),
        client("NOOP " + std::string(StartTlsDialogue::kMaxLineBytes - 6, 'a') + "\r\n"),
    };
    EXPECT_EQ(run_both_ways(DialogueProtocol::smtp, at_limit).states.back(),
              DialogueState::plaintext);
}

TEST(StartTlsSmtp, LongMessageLinesAreFine) {
    const Script script = {
        server(kPostfixGreeting),
        client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"),
        server("250 Ok\r\n250 Ok\r\n354 go\r\n"),
        client(std::string(100000, 'x') + "\r\n.\r\n"),
        server("250 Ok\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states.back(), DialogueState::plaintext);
}

TEST(StartTlsSmtp, DataContentBeforeTheAnswerIsAnError) {
    const Script script = {
        server(kPostfixGreeting),
        client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\nSubject: x\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    EXPECT_EQ(r.states.back(), DialogueState::error);
}

TEST(StartTlsSmtp, DataRefusedMeansCommandsFollow) {
    const Script script = {
        server(kPostfixGreeting),
        client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"),
        server("250 Ok\r\n554 5.1.1 rejected\r\n554 5.5.1 Error: no valid recipients\r\n"),
        client("STARTTLS\r\n"),
        server("220 2.0.0 Ready to start TLS\r\n"),
    };
    EXPECT_EQ(run_both_ways(DialogueProtocol::smtp, script).states.back(), DialogueState::upgraded);
}

TEST(StartTlsSmtp, ContinueInsideTls) {
    const Script script = {
        server(kPostfixGreeting),
        client("EHLO c\r\n"),
        server(kPostfixEhlo),
        client("STARTTLS\r\n"),
        server("220 2.0.0 Ready to start TLS\r\n"),
    };
    DialogueRun r = run_both_ways(DialogueProtocol::smtp, script);
    StartTlsDialogue& dialogue = r.dialogue;
    ASSERT_TRUE(dialogue.continue_inside_tls());
    EXPECT_FALSE(dialogue.continue_inside_tls());
    const std::string inner_client = "EHLO c\r\nSTARTTLS\r\n";
    const std::string inner_server =
        "250-mail.example.test\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10240000\r\n"
        "554 5.5.1 Error: TLS already active\r\n";
    EXPECT_EQ(dialogue.feed(Side::client, text(inner_client)).consumed, inner_client.size());
    const FeedResult fed = dialogue.feed(Side::server, text(inner_server));
    EXPECT_EQ(fed.consumed, inner_server.size());
    EXPECT_EQ(fed.state, DialogueState::upgraded);
    EXPECT_TRUE(dialogue.inside_tls());
    EXPECT_EQ(dialogue.capabilities_inside_tls(),
              (std::vector<std::string>{"AUTH PLAIN LOGIN", "SIZE 10240000"}));
    EXPECT_TRUE(dialogue.advertises("STARTTLS"));  // the plaintext list is kept

    StartTlsDialogue fresh(DialogueProtocol::smtp);
    EXPECT_FALSE(fresh.continue_inside_tls());
}

// ---------------------------------------------------------------------------------------------
// IMAP (Dovecot)

const char* const kDovecotGreeting =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
    "LOGINDISABLED] Dovecot (Debian) ready.\r\n";

TEST(StartTlsImap, UpgradeAccepted) {
    const Script script = {
        server(kDovecotGreeting),
        client("a1 CAPABILITY\r\n"),
        server("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
               "LOGINDISABLED\r\na1 OK Pre-login capabilities listed, post-login capabilities "
               "have more.\r\n"),
        client("a2 STARTTLS\r\n"),
        server("a2 OK Begin TLS negotiation now.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::imap, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.states[3], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
    EXPECT_TRUE(r.dialogue.upgrade_advertised());
    EXPECT_TRUE(r.dialogue.advertises("LOGINDISABLED"));
    EXPECT_EQ(r.dialogue.capabilities().size(), 9u);
    EXPECT_EQ(r.dialogue.greeting_host(), "");
}

TEST(StartTlsImap, GreetingCapabilitiesAndHost) {
    const Script script = {
        server("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] imap.example.test Cyrus IMAP "
               "server ready\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::imap, script);
    EXPECT_EQ(r.dialogue.greeting_host(), "imap.example.test");
    EXPECT_EQ(r.dialogue.capabilities(),
              (std::vector<std::string>{"IMAP4rev1", "STARTTLS", "AUTH=PLAIN"}));
}

TEST(StartTlsImap, UpgradeRefused) {
    const Script script = {
        server(kDovecotGreeting),
        client("a1 STARTTLS\r\n"),
        server("a1 NO [UNAVAILABLE] TLS support isn't enabled.\r\n"),
        client("a2 LOGOUT\r\n"),
        server("* BYE Logging out\r\na2 OK Logout completed.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::imap, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.states[2], DialogueState::refused);
    EXPECT_EQ(r.dialogue.upgrade_outcome(), UpgradeOutcome::refused);

    const Script bad = {server(kDovecotGreeting), client("a1 STARTTLS\r\n"),
                        server("a1 BAD Unknown command.\r\n")};
    EXPECT_EQ(run_both_ways(DialogueProtocol::imap, bad).states.back(), DialogueState::refused);
}

TEST(StartTlsImap, LiteralContainingStartTlsIsNotACommand) {
    const std::string literal = "b STARTTLS\r\nc LOGOUT\r\n";
    const Script script = {
        server(kDovecotGreeting),
        client("a1 APPEND INBOX {" + std::to_string(literal.size()) + "}\r\n"),
        server("+ OK\r\n"),
        client(literal + " (\\Seen)\r\n"),
        server("a1 NO [PRIVACYREQUIRED] Plaintext authentication disallowed.\r\n"),
        client("a2 STARTTLS\r\n"),
        server("a2 OK Begin TLS negotiation now.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::imap, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.states[3], DialogueState::plaintext);
    EXPECT_EQ(r.states[5], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
}

TEST(StartTlsImap, NonSynchronizingLiteralsInOneFlight) {
    const std::string first = "a9 OK";
    const std::string second = "{3}\r\n";  // looks like a marker, but it is literal data
    const Script script = {
        server(kDovecotGreeting),
        client("a1 LOGIN {" + std::to_string(first.size()) + "+}\r\n" + first + " {" +
               std::to_string(second.size()) + "+}\r\n" + second + "\r\na2 STARTTLS\r\n"),
        server("a1 NO [PRIVACYREQUIRED] Plaintext authentication disallowed.\r\n"),
        server("a2 OK Begin TLS negotiation now.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::imap, script);
    EXPECT_EQ(r.states[1], DialogueState::upgrading);
    EXPECT_EQ(r.states[2], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
}

TEST(StartTlsImap, ServerLiteralIsNotAResponse) {
    const std::string literal = "a2 OK Begin TLS negotiation now.\r\n";
    const std::string answer = "a2 OK Begin TLS negotiation now.\r\n";
    const Script script = {
        server(kDovecotGreeting),
        client("a1 NOOP\r\na2 STARTTLS\r\n"),
        server("* 1 FETCH (BODY[HEADER] {" + std::to_string(literal.size()) + "}\r\n" + literal +
               ")\r\na1 OK NOOP completed.\r\n"),
        server(answer + kClientHelloStart),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::imap, script);
    EXPECT_EQ(r.states[2], DialogueState::upgrading);
    EXPECT_EQ(r.states[3], DialogueState::upgraded);
    EXPECT_EQ(r.consumed[3], answer.size());
}

TEST(StartTlsImap, AuthenticateResponseIsNotACommand) {
    const Script script = {
        server(kDovecotGreeting),
        client("a1 AUTHENTICATE PLAIN\r\n"),
        server("+ \r\n"),
        client("b STARTTLS\r\n"),  // the SASL response, however odd
        server("a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
        client("a2 IDLE\r\n"),
        server("+ idling\r\n"),
        client("DONE\r\n"),
        server("a2 OK Idle completed.\r\n"),
        client("a3 STARTTLS\r\n"),
        server("a3 OK Begin TLS negotiation now.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::imap, script);
    EXPECT_EQ(r.states[3], DialogueState::plaintext);
    EXPECT_EQ(r.states[7], DialogueState::plaintext);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
}

TEST(StartTlsImap, ServerIsNotImap) {
    const Script pop3 = {server("+OK Dovecot ready.\r\n")};
    const DialogueRun r = run_both_ways(DialogueProtocol::imap, pop3);
    EXPECT_EQ(r.states.back(), DialogueState::not_this_protocol);
    EXPECT_EQ(r.consumed.back(), 0u);

    const Script bye = {server("* BYE Too many connections\r\n")};
    EXPECT_EQ(run_both_ways(DialogueProtocol::imap, bye).states.back(),
              DialogueState::not_this_protocol);

    const Script preauth = {server("* PREAUTH IMAP4rev1 server logged in as alice\r\n")};
    EXPECT_EQ(run_both_ways(DialogueProtocol::imap, preauth).states.back(),
              DialogueState::plaintext);
}

TEST(StartTlsImap, LongUntaggedResponseIsFine) {
    std::string search = "* SEARCH";
    for (int i = 1; i < 5000; ++i) {
        search += " " + std::to_string(i);
    }
    const Script script = {
        server(kDovecotGreeting),
        client("a1 SEARCH ALL\r\n"),
        server(search + "\r\na1 OK Search completed.\r\n"),
        client("a2 STARTTLS\r\n"),
        server("a2 OK Begin TLS negotiation now.\r\n"),
    };
    EXPECT_EQ(run_both_ways(DialogueProtocol::imap, script).states.back(), DialogueState::upgraded);
}

TEST(StartTlsImap, TlsFirst) {
    EXPECT_EQ(run_both_ways(DialogueProtocol::imap, {client(kClientHelloStart)}).states.back(),
              DialogueState::tls_first);
}

// ---------------------------------------------------------------------------------------------
// POP3 (Dovecot)

const char* const kDovecotPop3Capa =
    "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\n"
    "SASL PLAIN\r\n.\r\n";

TEST(StartTlsPop3, UpgradeAccepted) {
    const Script script = {
        server("+OK Dovecot (Debian) ready.\r\n"),
        client("CAPA\r\n"),
        server(kDovecotPop3Capa),
        client("STLS\r\n"),
        server("+OK Begin TLS negotiation now.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::pop3, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.states[3], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
    EXPECT_TRUE(r.dialogue.upgrade_advertised());
    EXPECT_TRUE(r.dialogue.advertises("SASL"));
    EXPECT_EQ(r.dialogue.capabilities().size(), 9u);
}

TEST(StartTlsPop3, UpgradeRefused) {
    const Script script = {
        server("+OK Dovecot (Debian) ready.\r\n"),
        client("STLS\r\n"),
        server("-ERR TLS support isn't enabled.\r\n"),
        client("USER alice\r\n"),
        server("+OK\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::pop3, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.states[2], DialogueState::refused);
    EXPECT_EQ(r.states.back(), DialogueState::refused);
}

TEST(StartTlsPop3, MultiLineBodyIsNotStatus) {
    // The message holds "+OK" at a line start: it must not be read as the answer to STLS.
    const Script script = {
        server("+OK pop.example.test POP3 server ready <1896.697170952@pop.example.test>\r\n"),
        client("USER alice\r\n"),
        server("+OK\r\n"),
        client("PASS secret\r\n"),
        server("+OK Logged in.\r\n"),
        client("RETR 1\r\nSTLS\r\n"),
        server(
            "+OK 64 octets\r\nSubject: hi\r\n\r\n+OK fake status\r\n..\r\n-ERR also fake\r\n.\r\n"),
        server("-ERR Unknown command.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::pop3, script);
    EXPECT_EQ(r.dialogue.greeting_host(), "pop.example.test");
    EXPECT_EQ(r.states[6], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::refused);
}

TEST(StartTlsPop3, ServerIsNotPop3) {
    const Script script = {server("-ERR [SYS/TEMP] Too many connections\r\n")};
    const DialogueRun r = run_both_ways(DialogueProtocol::pop3, script);
    EXPECT_EQ(r.states.back(), DialogueState::not_this_protocol);
    EXPECT_EQ(r.consumed.back(), 0u);
}

TEST(StartTlsPop3, AuthContinuationLineIsNotACommand) {
    const Script script = {
        server("+OK ready\r\n"),
        client("AUTH PLAIN\r\n"),
        server("+ \r\n"),
        client("STLS\r\n"),
        server("-ERR [AUTH] Authentication failed.\r\n"),
        client("STLS\r\n"),
        server("+OK Begin TLS negotiation now.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::pop3, script);
    EXPECT_EQ(r.states[3], DialogueState::plaintext);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
}

// ---------------------------------------------------------------------------------------------
// FTP (vsftpd)

const char* const kVsftpdFeat =
    "211-Features:\r\n AUTH SSL\r\n AUTH TLS\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n PBSZ\r\n"
    " PROT\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End\r\n";

TEST(StartTlsFtp, UpgradeAccepted) {
    const Script script = {
        server("220 (vsFTPd 3.0.3)\r\n"),
        client("FEAT\r\n"),
        server(kVsftpdFeat),
        client("AUTH TLS\r\n"),
        server("234 Proceed with negotiation.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::ftp, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.states[3], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
    EXPECT_TRUE(r.dialogue.upgrade_advertised());
    EXPECT_TRUE(r.dialogue.advertises("REST STREAM"));
    EXPECT_EQ(r.dialogue.capabilities().size(), 12u);
    EXPECT_EQ(r.dialogue.greeting_host(), "");
}

TEST(StartTlsFtp, UpgradeRefused) {
    const Script script = {
        server("220 ftp.example.test FTP server ready\r\n"), client("AUTH SSL\r\n"),
        server("530 Please login with USER and PASS.\r\n"),  client("USER anonymous\r\n"),
        server("331 Please specify the password.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::ftp, script);
    expect_all_consumed(r, script);
    EXPECT_EQ(r.dialogue.greeting_host(), "ftp.example.test");
    EXPECT_EQ(r.states[2], DialogueState::refused);
}

TEST(StartTlsFtp, MultiLineRepliesWithDigitLines) {
    // Inside an FTP multi-line reply, any line goes until "<same code> ".
    const Script script = {
        server("220-Welcome\r\n220-\r\n226 this line does not end it\r\n220 ready\r\n"),
        client("AUTH TLS\r\n"),
        server("234 AUTH TLS successful\r\n"),
    };
    EXPECT_EQ(run_both_ways(DialogueProtocol::ftp, script).states.back(), DialogueState::upgraded);
}

TEST(StartTlsFtp, PreliminaryRepliesDoNotAnswer) {
    const Script script = {
        server("120 Service ready in 1 minute\r\n220 ready\r\n"),
        client("USER anonymous\r\nPASS guest\r\nLIST\r\nAUTH TLS\r\n"),
        server("331 Password required\r\n230 Logged in\r\n150 Here comes the listing\r\n"),
        server("226 Directory send OK.\r\n"),
        server("234 Proceed with negotiation.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::ftp, script);
    EXPECT_EQ(r.states[2], DialogueState::upgrading);
    EXPECT_EQ(r.states[3], DialogueState::upgrading);
    EXPECT_EQ(r.states.back(), DialogueState::upgraded);
}

TEST(StartTlsFtp, ServerIsNotFtp) {
    const Script script = {server("HTTP/1.1 400 Bad Request\r\n")};
    EXPECT_EQ(run_both_ways(DialogueProtocol::ftp, script).states.back(),
              DialogueState::not_this_protocol);
    const Script refused = {server("421 Too many users\r\n")};
    EXPECT_EQ(run_both_ways(DialogueProtocol::ftp, refused).states.back(),
              DialogueState::not_this_protocol);
}

TEST(StartTlsFtp, TlsFirst) {
    EXPECT_EQ(run_both_ways(DialogueProtocol::ftp, {client(kClientHelloStart)}).states.back(),
              DialogueState::tls_first);
}

TEST(StartTlsFtp, AuthOtherThanTlsIsNoUpgrade) {
    const Script script = {
        server("220 ready\r\n"),
        client("AUTH GSSAPI\r\n"),
        server("504 Unknown AUTH type.\r\n"),
    };
    const DialogueRun r = run_both_ways(DialogueProtocol::ftp, script);
    EXPECT_EQ(r.states.back(), DialogueState::plaintext);
    EXPECT_EQ(r.dialogue.upgrade_outcome(), UpgradeOutcome::none);
}

// ---------------------------------------------------------------------------------------------
// Listener

class RecordingListener : public DialogueListener {
public:
    void on_client_command(const ClientCommand& command) override {
        commands.push_back(std::string(command.tag) + "|" + std::string(command.verb) + "|" +
                           std::string(command.arguments));
    }
    void on_server_line(const ServerLine& line) override {
        lines.push_back(std::to_string(line.code) + (line.ends_reply ? " " : "-") +
                        std::string(line.text));
    }
    void on_message(const MessageEnd& message) override { messages.push_back(message.size); }

    std::vector<std::string> commands;
    std::vector<std::string> lines;
    std::vector<std::uint64_t> messages;
};

TEST(StartTlsListener, CredentialsAreNeverReported) {
    RecordingListener listener;
    StartTlsDialogue imap(DialogueProtocol::imap);
    imap.feed(Side::server, text(kDovecotGreeting), &listener);
    imap.feed(Side::client, text("a1 LOGIN alice hunter2\r\na2 uid fetch 1:* (FLAGS)\r\n"),
              &listener);
    EXPECT_EQ(listener.commands,
              (std::vector<std::string>{"a1|LOGIN|", "a2|UID FETCH|1:* (FLAGS)"}));

    listener.commands.clear();
    StartTlsDialogue pop3(DialogueProtocol::pop3);
    pop3.feed(Side::server, text("+OK ready\r\n"), &listener);
    pop3.feed(Side::client,
              text("USER alice\r\nPASS hunter2\r\nAPOP alice c4c9334bac560ecc979e58001b3e22fb\r\n"),
              &listener);
    EXPECT_EQ(listener.commands, (std::vector<std::string>{"|USER|alice", "|PASS|", "|APOP|"}));

    listener.commands.clear();
    StartTlsDialogue smtp(DialogueProtocol::smtp);
    smtp.feed(Side::server, text(kPostfixGreeting), &listener);
    smtp.feed(Side::client, text("AUTH PLAIN AGFsaWNlAGh1bnRlcjI=\r\n"), &listener);
    EXPECT_EQ(listener.commands, (std::vector<std::string>{"|AUTH|"}));

    listener.commands.clear();
    StartTlsDialogue ftp(DialogueProtocol::ftp);
    ftp.feed(Side::server, text("220 ready\r\n"), &listener);
    ftp.feed(Side::client,
             text("USER bob\r\nPASS hunter2\r\n\xff\xf4\xff\xf2"
                  "ABOR\r\n"),
             &listener);
    EXPECT_EQ(listener.commands, (std::vector<std::string>{"|USER|bob", "|PASS|", "|ABOR|"}));
}

TEST(StartTlsListener, ReplyLines) {
    RecordingListener listener;
    StartTlsDialogue ftp(DialogueProtocol::ftp);
    ftp.feed(Side::server, text("220-a\r\n x\r\n220 b\r\n"), &listener);
    EXPECT_EQ(listener.lines, (std::vector<std::string>{"220-220-a", "220- x", "220 220 b"}));
}

}  // namespace
}  // namespace tlsgate::classify
