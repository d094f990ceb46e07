#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "listen/socks5.hpp"

namespace tlsgate::listen {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes bytes(std::initializer_list<int> values) {
    Bytes out;
    for (int value : values) {
        out.push_back(static_cast<std::uint8_t>(value));
    }
    return out;
}

Bytes text(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

Bytes operator+(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// What curl sends, byte for byte (lib/socks.c): the greeting offers no-auth, plus
// username/password when credentials are given; --socks5-hostname sends the name (ATYP 3),
// --socks5 the address curl resolved itself (ATYP 1 or 4).
const Bytes kCurlGreeting = bytes({0x05, 0x01, 0x00});
const Bytes kCurlGreetingWithCredentials = bytes({0x05, 0x02, 0x00, 0x02});
const Bytes kCurlCredentials =
    bytes({0x01, 5}) + text("alice") + bytes({12}) + text("correct-pass");
const Bytes kCurlHostnameRequest =
    bytes({0x05, 0x01, 0x00, 0x03, 11}) + text("example.com") + bytes({0x01, 0xbb});
const Bytes kCurlIpv4Request = bytes({0x05, 0x01, 0x00, 0x01, 192, 0, 2, 7, 0x00, 0x50});
const Bytes kCurlIpv6Request =
    bytes({0x05, 0x01, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,
           0,    0,    0,    0,    0,    0,    0,    0,    0x01, 0x20, 0xfb});
// The start of a TLS ClientHello record, pipelined right behind the request.
const Bytes kClientHelloStart = bytes({0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc});

std::shared_ptr<const Socks5AuthConfig> no_auth_only() {
    return std::make_shared<const Socks5AuthConfig>(Socks5AuthConfig{true, {}});
}

std::shared_ptr<const Socks5AuthConfig> credentials_only() {
    return std::make_shared<const Socks5AuthConfig>(
        Socks5AuthConfig{false, {{"bob", "hunter2"}, {"alice", "correct-pass"}}});
}

std::shared_ptr<const Socks5AuthConfig> either() {
    return std::make_shared<const Socks5AuthConfig>(
        Socks5AuthConfig{true, {{"alice", "correct-pass"}}});
}

// Everything a conversation produced, whatever the pieces it arrived in.
struct Outcome {
    Socks5Status status = Socks5Status::need_more;
    Bytes replies;             // all reply bytes, in order
    std::size_t consumed = 0;  // bytes the handshake took from the stream
    Socks5Phase phase = Socks5Phase::awaiting_greeting;
    Socks5Request request;
    Socks5Failure failure = Socks5Failure::none;
    std::string error;

    bool operator==(const Outcome&) const = default;
};

Outcome run(std::shared_ptr<const Socks5AuthConfig> config, const Bytes& stream,
            const std::vector<std::size_t>& cuts) {
    Socks5ServerHandshake handshake(config);
    Outcome outcome;
    std::size_t begin = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(stream.size());
    for (std::size_t end : ends) {
        const auto step = handshake.feed(std::span(stream).subspan(begin, end - begin));
        EXPECT_LE(step.consumed, end - begin);
        outcome.replies.insert(outcome.replies.end(), step.reply.begin(), step.reply.end());
        outcome.consumed += step.consumed;
        outcome.status = step.status;
        begin = end;
    }
    EXPECT_EQ(outcome.consumed, handshake.bytes_consumed());
    outcome.phase = handshake.phase();
    if (outcome.status == Socks5Status::request_ready) {
        outcome.request = handshake.request();
    }
    outcome.failure = handshake.failure();
    outcome.error = handshake.error();
    return outcome;
}

Outcome run_whole(std::shared_ptr<const Socks5AuthConfig> config, const Bytes& stream) {
    return run(config, stream, {});
}

// Feeds the stream whole, split in two at every position, and byte by byte: the outcome must
// not depend on how TCP cut it up.
Outcome run_every_split(std::shared_ptr<const Socks5AuthConfig> config, const Bytes& stream) {
    const Outcome whole = run_whole(config, stream);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        EXPECT_EQ(run(config, stream, {cut}), whole) << "split at " << cut;
    }
    std::vector<std::size_t> every_byte;
    for (std::size_t cut = 1; cut < stream.size(); ++cut) {
        every_byte.push_back(cut);
    }
    EXPECT_EQ(run(config, stream, every_byte), whole) << "byte by byte";
    return whole;
}

Socks5Destination named(std::string name, std::uint16_t port) {
    return Socks5Destination{std::move(name), port};
}

Socks5Destination addressed(std::string_view address, std::uint16_t port) {
    return Socks5Destination{*IpAddress::parse(address), port};
}

TEST(Socks5Handshake, CurlSocks5HostnameWithoutCredentials) {
    const Bytes stream = kCurlGreeting + kCurlHostnameRequest + kClientHelloStart;
    const Outcome outcome = run_every_split(no_auth_only(), stream);
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    EXPECT_EQ(outcome.phase, Socks5Phase::request_ready);
    EXPECT_EQ(outcome.replies, bytes({0x05, 0x00}));
    // The pipelined ClientHello is left to the caller.
    EXPECT_EQ(outcome.consumed, kCurlGreeting.size() + kCurlHostnameRequest.size());
    EXPECT_EQ(outcome.request.destination, named("example.com", 443));
    EXPECT_EQ(outcome.request.method, Socks5Method::no_auth);
    EXPECT_EQ(outcome.request.username, "");
    EXPECT_TRUE(outcome.request.destination.is_domain());
    EXPECT_EQ(outcome.request.destination.host_text(), "example.com");
    EXPECT_EQ(outcome.error, "");
}

TEST(Socks5Handshake, StepByStepAsCurlSendsIt) {
    Socks5ServerHandshake handshake(no_auth_only());
    EXPECT_EQ(handshake.phase(), Socks5Phase::awaiting_greeting);
    auto step = handshake.feed(kCurlGreeting);
    EXPECT_EQ(step.status, Socks5Status::need_more);
    EXPECT_EQ(step.reply, bytes({0x05, 0x00}));
    EXPECT_EQ(step.consumed, 3u);
    EXPECT_EQ(handshake.phase(), Socks5Phase::awaiting_request);
    const Bytes request_and_hello = kCurlHostnameRequest + kClientHelloStart;
    step = handshake.feed(request_and_hello);
    EXPECT_EQ(step.status, Socks5Status::request_ready);
    EXPECT_TRUE(step.reply.empty());
    EXPECT_EQ(step.consumed, kCurlHostnameRequest.size());
    EXPECT_EQ(handshake.request().destination, named("example.com", 443));
    EXPECT_EQ(handshake.bytes_consumed(), 3 + kCurlHostnameRequest.size());
    // Done: later bytes are payload, never consumed.
    step = handshake.feed(kClientHelloStart);
    EXPECT_EQ(step.status, Socks5Status::request_ready);
    EXPECT_EQ(step.consumed, 0u);
    EXPECT_TRUE(step.reply.empty());
}

TEST(Socks5Handshake, EmptyFeedsChangeNothing) {
    Socks5ServerHandshake handshake(no_auth_only());
    auto step = handshake.feed({});
    EXPECT_EQ(step.status, Socks5Status::need_more);
    EXPECT_EQ(step.consumed, 0u);
    EXPECT_TRUE(step.reply.empty());
    EXPECT_EQ(handshake.phase(), Socks5Phase::awaiting_greeting);
}

TEST(Socks5Handshake, CurlSocks5WithResolvedAddresses) {
    Outcome outcome = run_every_split(no_auth_only(), kCurlGreeting + kCurlIpv4Request);
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    EXPECT_EQ(outcome.request.destination, addressed("192.0.2.7", 80));
    EXPECT_FALSE(outcome.request.destination.is_domain());
    EXPECT_EQ(outcome.request.destination.host_text(), "192.0.2.7");

    outcome = run_every_split(no_auth_only(), kCurlGreeting + kCurlIpv6Request);
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    EXPECT_EQ(outcome.request.destination, addressed("2001:db8::1", 8443));
    EXPECT_EQ(outcome.request.destination.host_text(), "2001:db8::1");
}

TEST(Socks5Handshake, DomainNamesAreNormalisedAndIpLiteralsBecomeAddresses) {
    const auto request_for = [](std::string_view name) {
        return bytes({0x05, 0x01, 0x00, 0x03, static_cast<int>(name.size())}) + text(name) +
               bytes({0x00, 0x50});
    };
    Outcome outcome = run_whole(no_auth_only(), kCurlGreeting + request_for("WWW.Example.COM."));
    EXPECT_EQ(outcome.request.destination, named("www.example.com", 80));
    outcome = run_whole(no_auth_only(), kCurlGreeting + request_for("198.51.100.9"));
    EXPECT_EQ(outcome.request.destination, addressed("198.51.100.9", 80));
    outcome = run_whole(no_auth_only(), kCurlGreeting + request_for("2001:db8::5"));
    EXPECT_EQ(outcome.request.destination, addressed("2001:db8::5", 80));
    // The longest name DNS allows (253 characters) is fine.
    std::string longest;
    for (int label = 0; label < 25; ++label) {
        longest += "abcdefghi.";
    }
    longest += "xyz";
    ASSERT_EQ(longest.size(), 253u);
    outcome = run_whole(no_auth_only(), kCurlGreeting + request_for(longest));
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    EXPECT_EQ(outcome.request.destination, named(longest, 80));
}

TEST(Socks5Handshake, CurlWithCredentials) {
    const Bytes stream =
        kCurlGreetingWithCredentials + kCurlCredentials + kCurlHostnameRequest + kClientHelloStart;
    const Outcome outcome = run_every_split(credentials_only(), stream);
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    // Method selection, then the RFC 1929 status.
    EXPECT_EQ(outcome.replies, bytes({0x05, 0x02, 0x01, 0x00}));
    EXPECT_EQ(outcome.consumed, stream.size() - kClientHelloStart.size());
    EXPECT_EQ(outcome.request.method, Socks5Method::username_password);
    EXPECT_EQ(outcome.request.username, "alice");
    EXPECT_EQ(outcome.request.destination, named("example.com", 443));
}

TEST(Socks5Handshake, CredentialsAreRequestedStepByStep) {
    Socks5ServerHandshake handshake(credentials_only());
    auto step = handshake.feed(kCurlGreetingWithCredentials);
    EXPECT_EQ(step.status, Socks5Status::need_more);
    EXPECT_EQ(step.reply, bytes({0x05, 0x02}));
    EXPECT_EQ(handshake.phase(), Socks5Phase::awaiting_credentials);
    step = handshake.feed(kCurlCredentials);
    EXPECT_EQ(step.status, Socks5Status::need_more);
    EXPECT_EQ(step.reply, bytes({0x01, 0x00}));
    EXPECT_EQ(handshake.phase(), Socks5Phase::awaiting_request);
    step = handshake.feed(kCurlHostnameRequest);
    EXPECT_EQ(step.status, Socks5Status::request_ready);
    EXPECT_EQ(handshake.request().username, "alice");
}

TEST(Socks5Handshake, ClientOfferingCredentialsAuthenticatesEvenWhenNoAuthIsAllowed) {
    Outcome outcome =
        run_whole(either(), kCurlGreetingWithCredentials + kCurlCredentials + kCurlIpv4Request);
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    EXPECT_EQ(outcome.request.method, Socks5Method::username_password);
    EXPECT_EQ(outcome.request.username, "alice");
    // A client offering only no-auth gets it.
    outcome = run_whole(either(), kCurlGreeting + kCurlIpv4Request);
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    EXPECT_EQ(outcome.request.method, Socks5Method::no_auth);
    // Offering credentials to a listener without users selects no-auth.
    outcome = run_whole(no_auth_only(), kCurlGreetingWithCredentials + kCurlIpv4Request);
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    EXPECT_EQ(outcome.replies, bytes({0x05, 0x00}));
}

TEST(Socks5Handshake, WrongCredentialsGetAuthFailureAndClose) {
    const auto credentials = [](std::string_view user, std::string_view password) {
        return bytes({0x01, static_cast<int>(user.size())}) + text(user) +
               bytes({static_cast<int>(password.size())}) + text(password);
    };
    for (const auto& [user, password] :
         std::vector<std::pair<std::string, std::string>>{{"alice", "wrong-pass!!"},
                                                          {"alice", "correct-pas"},
                                                          {"alice", "correct-pass2"},
                                                          {"alice", ""},
                                                          {"alicf", "correct-pass"},
                                                          {"", ""},
                                                          {"mallory", "correct-pass"},
                                                          {"bob", "correct-pass"},
                                                          {"alice", "hunter2"}}) {
        const Bytes stream =
            kCurlGreetingWithCredentials + credentials(user, password) + kCurlHostnameRequest;
        const Outcome outcome = run_every_split(credentials_only(), stream);
        EXPECT_EQ(outcome.status, Socks5Status::failed) << user << ":" << password;
        EXPECT_EQ(outcome.failure, Socks5Failure::bad_credentials);
        EXPECT_EQ(outcome.phase, Socks5Phase::failed);
        EXPECT_EQ(outcome.replies, bytes({0x05, 0x02, 0x01, 0x01}));
        // The request after the credentials is never read.
        EXPECT_EQ(outcome.consumed, stream.size() - kCurlHostnameRequest.size());
        EXPECT_NE(outcome.error.find("'" + user + "'"), std::string::npos) << outcome.error;
    }
    // Each configured user works with their own password only.
    const Outcome bob =
        run_whole(credentials_only(),
                  kCurlGreetingWithCredentials + credentials("bob", "hunter2") + kCurlIpv4Request);
    EXPECT_EQ(bob.status, Socks5Status::request_ready);
    EXPECT_EQ(bob.request.username, "bob");
}

TEST(Socks5Handshake, UsernamesInErrorsAreMadePrintable) {
    const Bytes stream = kCurlGreetingWithCredentials + bytes({0x01, 3, 'a', 0x00, '\n', 1, 'x'});
    const Outcome outcome = run_whole(credentials_only(), stream);
    EXPECT_EQ(outcome.failure, Socks5Failure::bad_credentials);
    EXPECT_NE(outcome.error.find("'a\?\?'"), std::string::npos) << outcome.error;
}

TEST(Socks5Handshake, WrongGreetingVersionClosesWithoutReply) {
    // A SOCKS4 CONNECT and a TLS ClientHello sent to the SOCKS port.
    for (const Bytes& stream :
         {bytes({0x04, 0x01, 0x01, 0xbb, 192, 0, 2, 1, 0x00}), kClientHelloStart}) {
        const Outcome outcome = run_every_split(no_auth_only(), stream);
        EXPECT_EQ(outcome.status, Socks5Status::failed);
        EXPECT_EQ(outcome.failure, Socks5Failure::bad_version);
        EXPECT_TRUE(outcome.replies.empty());
        EXPECT_EQ(outcome.consumed, 1u);  // decided on the first byte
        EXPECT_FALSE(outcome.error.empty());
    }
}

TEST(Socks5Handshake, NoAcceptableMethodGets05FF) {
    struct Case {
        std::shared_ptr<const Socks5AuthConfig> config;
        Bytes greeting;
    };
    const std::vector<Case> cases = {
        {credentials_only(), kCurlGreeting},          // no-auth offered, not allowed
        {no_auth_only(), bytes({0x05, 0x01, 0x02})},  // credentials offered, no users
        {no_auth_only(), bytes({0x05, 0x00})},        // no methods at all
        {either(), bytes({0x05, 0x02, 0x01, 0x80})},  // GSS-API and a private method
        {nullptr, kCurlGreeting},                     // no configuration accepts nobody
        {std::make_shared<const Socks5AuthConfig>(Socks5AuthConfig{false, {}}), kCurlGreeting},
    };
    for (const auto& c : cases) {
        const Outcome outcome = run_every_split(c.config, c.greeting + kCurlIpv4Request);
        EXPECT_EQ(outcome.status, Socks5Status::failed);
        EXPECT_EQ(outcome.failure, Socks5Failure::no_acceptable_method);
        EXPECT_EQ(outcome.replies, bytes({0x05, 0xff}));
        EXPECT_EQ(outcome.consumed, c.greeting.size());
    }
}

TEST(Socks5Handshake, WrongCredentialsVersionGetsAuthFailure) {
    const Bytes stream = kCurlGreetingWithCredentials + bytes({0x05, 5}) + text("alice");
    const Outcome outcome = run_every_split(credentials_only(), stream);
    EXPECT_EQ(outcome.status, Socks5Status::failed);
    EXPECT_EQ(outcome.failure, Socks5Failure::bad_auth_version);
    EXPECT_EQ(outcome.replies, bytes({0x05, 0x02, 0x01, 0x01}));
    EXPECT_EQ(outcome.consumed, kCurlGreetingWithCredentials.size() + 1);
}

// The error reply every request failure carries: VER REP RSV ATYP=1 0.0.0.0 port 0.
Bytes failure_reply(int code) {
    return bytes({0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0});
}

struct RequestFailure {
    const char* name;
    Bytes request;
    Socks5Failure failure;
    int reply_code;
    std::size_t consumed;  // request bytes read before the verdict
};

TEST(Socks5Handshake, BadRequestsGetTheMatchingErrorReply) {
    const std::string too_long(254, 'a');  // one over DNS's 253 (and a 254-byte label)
    // 254 characters in labels of at most 63: only the total is too long.
    const std::string long_labels = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                    std::string(63, 'c') + "." + std::string(62, 'd');
    const std::vector<RequestFailure> cases = {
        {"version 4", bytes({0x04, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0, 80}),
         Socks5Failure::bad_request_version, 0x01, 1},
        {"BIND", bytes({0x05, 0x02, 0x00, 0x01, 192, 0, 2, 1, 0, 80}),
         Socks5Failure::command_not_supported, 0x07, 2},
        {"UDP ASSOCIATE", bytes({0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0}),
         Socks5Failure::command_not_supported, 0x07, 2},
        {"unknown command", bytes({0x05, 0x09, 0x00, 0x01, 0, 0, 0, 0, 0, 0}),
         Socks5Failure::command_not_supported, 0x07, 2},
        {"address type 2", bytes({0x05, 0x01, 0x00, 0x02, 1, 2, 3, 4, 0, 80}),
         Socks5Failure::address_type_not_supported, 0x08, 4},
        {"address type 0", bytes({0x05, 0x01, 0x00, 0x00}),
         Socks5Failure::address_type_not_supported, 0x08, 4},
        {"address type 255", bytes({0x05, 0x01, 0x00, 0xff, 0, 80}),
         Socks5Failure::address_type_not_supported, 0x08, 4},
        {"empty domain", bytes({0x05, 0x01, 0x00, 0x03, 0, 0, 80}), Socks5Failure::bad_domain_name,
         0x04, 5},
        {"overlong domain",
         bytes({0x05, 0x01, 0x00, 0x03, static_cast<int>(too_long.size())}) + text(too_long) +
             bytes({0, 80}),
         Socks5Failure::bad_domain_name, 0x04, 5 + too_long.size() + 2},
        {"domain of 255 bytes",
         bytes({0x05, 0x01, 0x00, 0x03, 255}) + text(std::string(255, 'x')) + bytes({0, 80}),
         Socks5Failure::bad_domain_name, 0x04, 5 + 255 + 2},
        {"domain over 253 in short labels",
         bytes({0x05, 0x01, 0x00, 0x03, static_cast<int>(long_labels.size())}) + text(long_labels) +
             bytes({0, 80}),
         Socks5Failure::bad_domain_name, 0x04, 5 + long_labels.size() + 2},
        {"NUL in domain", bytes({0x05, 0x01, 0x00, 0x03, 3, 'a', 0, 'b', 0, 80}),
         Socks5Failure::bad_domain_name, 0x04, 10},
        {"space in domain", bytes({0x05, 0x01, 0x00, 0x03, 3, 'a', ' ', 'b', 0, 80}),
         Socks5Failure::bad_domain_name, 0x04, 10},
        {"empty label", bytes({0x05, 0x01, 0x00, 0x03, 4, 'a', '.', '.', 'b', 0, 80}),
         Socks5Failure::bad_domain_name, 0x04, 11},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const Bytes stream = kCurlGreeting + c.request + kClientHelloStart;
        const Outcome outcome = run_every_split(no_auth_only(), stream);
        EXPECT_EQ(outcome.status, Socks5Status::failed);
        EXPECT_EQ(outcome.failure, c.failure);
        EXPECT_EQ(outcome.replies, bytes({0x05, 0x00}) + failure_reply(c.reply_code));
        EXPECT_EQ(outcome.consumed, kCurlGreeting.size() + c.consumed);
        EXPECT_FALSE(outcome.error.empty());
    }
}

TEST(Socks5Handshake, ErrorMessagesNameTheOffendingValue) {
    Outcome outcome = run_whole(no_auth_only(), kCurlGreeting + bytes({0x05, 0x02, 0x00, 0x01}));
    EXPECT_NE(outcome.error.find("BIND"), std::string::npos) << outcome.error;
    outcome = run_whole(no_auth_only(), kCurlGreeting + bytes({0x05, 0x03}));
    EXPECT_NE(outcome.error.find("UDP ASSOCIATE"), std::string::npos) << outcome.error;
    outcome = run_whole(no_auth_only(), bytes({0x04}));
    EXPECT_NE(outcome.error.find("4"), std::string::npos) << outcome.error;
    outcome = run_whole(credentials_only(), bytes({0x05, 0x02, 0x00, 0x01}));
    EXPECT_NE(outcome.error.find("[0,1]"), std::string::npos) << outcome.error;
}

TEST(Socks5Handshake, TerminalStatesConsumeNothingMore) {
    Socks5ServerHandshake handshake(credentials_only());
    auto step = handshake.feed(kCurlGreeting);
    EXPECT_EQ(step.status, Socks5Status::failed);
    const auto failure = handshake.error();
    step = handshake.feed(kCurlGreetingWithCredentials);
    EXPECT_EQ(step.status, Socks5Status::failed);
    EXPECT_EQ(step.consumed, 0u);
    EXPECT_TRUE(step.reply.empty());
    EXPECT_EQ(handshake.error(), failure);
    EXPECT_EQ(handshake.bytes_consumed(), kCurlGreeting.size());
}

TEST(Socks5Handshake, NonZeroReservedByteIsTolerated) {
    const Outcome outcome = run_whole(
        no_auth_only(), kCurlGreeting + bytes({0x05, 0x01, 0x7f, 0x01, 192, 0, 2, 1, 0, 25}));
    EXPECT_EQ(outcome.status, Socks5Status::request_ready);
    EXPECT_EQ(outcome.request.destination, addressed("192.0.2.1", 25));
}

TEST(Socks5Reply, FinalRepliesCarryCodeAndBoundAddress) {
    EXPECT_EQ(Socks5ServerHandshake::reply_for(Socks5Reply::succeeded,
                                               *IpAddress::parse("192.0.2.10"), 40000),
              bytes({0x05, 0x00, 0x00, 0x01, 192, 0, 2, 10, 0x9c, 0x40}));
    EXPECT_EQ(Socks5ServerHandshake::reply_for(Socks5Reply::succeeded,
                                               *IpAddress::parse("2001:db8::a"), 443),
              bytes({0x05, 0x00, 0x00, 0x04, 0x20, 0x01, 0x0d, 0xb8, 0,    0,    0,
                     0,    0,    0,    0,    0,    0,    0,    0,    0x0a, 0x01, 0xbb}));
    const std::vector<std::pair<Socks5Reply, int>> codes = {
        {Socks5Reply::general_failure, 1},       {Socks5Reply::not_allowed_by_ruleset, 2},
        {Socks5Reply::network_unreachable, 3},   {Socks5Reply::host_unreachable, 4},
        {Socks5Reply::connection_refused, 5},    {Socks5Reply::ttl_expired, 6},
        {Socks5Reply::command_not_supported, 7}, {Socks5Reply::address_type_not_supported, 8},
    };
    for (const auto& [reply, code] : codes) {
        EXPECT_EQ(Socks5ServerHandshake::reply_for(reply), failure_reply(code)) << code;
        EXPECT_STRNE(to_string(reply), "unknown reply");
    }
}

TEST(Socks5Reply, ConnectErrorsMapToTheClosestCode) {
    EXPECT_EQ(socks5_reply_for_connect_error(std::errc::connection_refused),
              Socks5Reply::connection_refused);
    EXPECT_EQ(socks5_reply_for_connect_error(std::errc::network_unreachable),
              Socks5Reply::network_unreachable);
    EXPECT_EQ(socks5_reply_for_connect_error(std::errc::host_unreachable),
              Socks5Reply::host_unreachable);
    EXPECT_EQ(socks5_reply_for_connect_error(std::errc::timed_out), Socks5Reply::ttl_expired);
    EXPECT_EQ(socks5_reply_for_connect_error(std::errc::permission_denied),
              Socks5Reply::not_allowed_by_ruleset);
    EXPECT_EQ(socks5_reply_for_connect_error(std::errc::no_buffer_space),
              Socks5Reply::general_failure);
}

TEST(Socks5Failure, EveryReasonHasAName) {
    for (auto failure :
         {Socks5Failure::none, Socks5Failure::bad_version, Socks5Failure::no_acceptable_method,
          Socks5Failure::bad_auth_version, Socks5Failure::bad_credentials,
          Socks5Failure::bad_request_version, Socks5Failure::command_not_supported,
          Socks5Failure::address_type_not_supported, Socks5Failure::bad_domain_name}) {
        EXPECT_STRNE(to_string(failure), "unknown");
    }
}

}  // namespace
}  // namespace tlsgate::listen
