#include "inspect/http1.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tlsgate::http1 {
namespace {

using namespace std::literals;

// What curl 7.88.1 sends, byte for byte (curl -v), directly and through a proxy (-x).
constexpr std::string_view kCurlGet =
    "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
constexpr std::string_view kCurlConnect =
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/7.88.1\r\n"
    "Proxy-Connection: Keep-Alive\r\n\r\n";
constexpr std::string_view kCurlAbsoluteGet =
    "GET http://example.com/index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n"
    "User-Agent: curl/7.88.1\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n";
constexpr std::string_view kCurlPostHead =
    "POST /post HTTP/1.1\r\nHost: httpbin.org\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
    "Content-Length: 7\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
constexpr std::string_view kServerResponse =
    "HTTP/1.1 200 OK\r\nAge: 52153\r\nCache-Control: max-age=604800\r\n"
    "Content-Type: text/html; charset=UTF-8\r\nDate: Mon, 04 Mar 2024 10:00:00 GMT\r\n"
    "Server: ECS (nyd/D13E)\r\nContent-Length: 1256\r\n\r\n";
constexpr std::string_view kConnectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";

// A sans-io caller re-parses its growing buffer, so "fed whole", "split in two at every byte"
// and "fed byte by byte" all come down to: every proper prefix of the head is need_more, and
// the whole head (with or without bytes after it) is complete with the same size.
template <typename Parse>
auto expect_complete_at_every_split(std::string_view raw, Parse parse) {
    for (std::size_t cut = 0; cut < raw.size(); ++cut) {
        const auto partial = parse(raw.substr(0, cut));
        EXPECT_EQ(partial.status, ParseStatus::need_more)
            << "prefix of " << cut << " bytes: " << partial.error;
        // The second piece of a 2-way split arrives: the head completes.
        const auto whole = parse(std::string(raw.substr(0, cut)) + std::string(raw.substr(cut)));
        EXPECT_EQ(whole.status, ParseStatus::complete) << whole.error;
    }
    const auto with_next_bytes = parse(std::string(raw) + "NEXT MESSAGE BYTES");
    EXPECT_EQ(with_next_bytes.status, ParseStatus::complete) << with_next_bytes.error;
    EXPECT_EQ(with_next_bytes.head_size, raw.size());
    auto result = parse(raw);
    EXPECT_EQ(result.status, ParseStatus::complete) << result.error;
    EXPECT_EQ(result.head_size, raw.size());
    return result;
}

auto parse_request = [](std::string_view buffer) { return parse_request_head(buffer); };
auto parse_response = [](std::string_view buffer) { return parse_response_head(buffer); };

TEST(Http1RequestHead, CurlGet) {
    const auto result = expect_complete_at_every_split(kCurlGet, parse_request);
    EXPECT_EQ(result.head.method, "GET");
    EXPECT_EQ(result.head.target, "/");
    EXPECT_EQ(result.head.version_minor, 1);
    ASSERT_EQ(result.head.headers.size(), 3u);
    EXPECT_EQ(result.head.headers[0].name, "Host");
    EXPECT_EQ(result.head.headers[0].value, "example.com");
    EXPECT_EQ(result.head.headers[1].name, "User-Agent");
    EXPECT_EQ(result.head.headers[1].value, "curl/7.88.1");
    EXPECT_EQ(result.head.headers[2].value, "*/*");
}

TEST(Http1RequestHead, CurlConnectThroughProxy) {
    const auto result = expect_complete_at_every_split(kCurlConnect, parse_request);
    EXPECT_EQ(result.head.method, "CONNECT");
    EXPECT_EQ(result.head.target, "example.com:443");
    EXPECT_EQ(find_header(result.head.headers, "proxy-connection"), "Keep-Alive");
    const auto framing = request_body_framing(result.head);
    ASSERT_TRUE(framing.ok);
    EXPECT_EQ(framing.framing.kind, BodyFraming::Kind::none);
    const auto authority = parse_authority(result.head.target);
    ASSERT_TRUE(authority);
    EXPECT_EQ(authority->host, "example.com");
    EXPECT_EQ(authority->port, 443);
}

TEST(Http1RequestHead, CurlAbsoluteFormGet) {
    const auto result = expect_complete_at_every_split(kCurlAbsoluteGet, parse_request);
    EXPECT_EQ(result.head.target, "http://example.com/index.html?q=1");
    const auto url = parse_absolute_url(result.head.target);
    ASSERT_TRUE(url);
    EXPECT_EQ(url->scheme, "http");
    EXPECT_EQ(url->authority.host, "example.com");
    EXPECT_EQ(url->authority.port, 80);
    EXPECT_EQ(url->origin_form, "/index.html?q=1");
}

TEST(Http1RequestHead, CurlPostWithBody) {
    const auto result = expect_complete_at_every_split(kCurlPostHead, parse_request);
    EXPECT_EQ(result.head.method, "POST");
    const auto framing = request_body_framing(result.head);
    ASSERT_TRUE(framing.ok);
    EXPECT_EQ(framing.framing.kind, BodyFraming::Kind::content_length);
    EXPECT_EQ(framing.framing.length, 7u);
}

TEST(Http1RequestHead, Http10WithoutHeaders) {
    const auto result = expect_complete_at_every_split("GET /x HTTP/1.0\r\n\r\n", parse_request);
    EXPECT_EQ(result.head.version_minor, 0);
    EXPECT_TRUE(result.head.headers.empty());
}

TEST(Http1RequestHead, BareLfLineEndsAreAccepted) {
    const auto lf_only =
        expect_complete_at_every_split("GET / HTTP/1.1\nHost: a\n\n", parse_request);
    ASSERT_EQ(lf_only.head.headers.size(), 1u);
    EXPECT_EQ(lf_only.head.headers[0].value, "a");
    const auto mixed =
        expect_complete_at_every_split("GET / HTTP/1.1\r\nHost: a\r\n\n", parse_request);
    EXPECT_EQ(mixed.head.headers.size(), 1u);
    const auto mixed2 =
        expect_complete_at_every_split("GET / HTTP/1.1\nHost: a\n\r\n", parse_request);
    EXPECT_EQ(mixed2.head.headers.size(), 1u);
    expect_complete_at_every_split("GET / HTTP/1.1\n\n", parse_request);
}

TEST(Http1RequestHead, ValuesAreTrimmedAndMayBeEmptyOrObsText) {
    const auto result = expect_complete_at_every_split(
        "GET / HTTP/1.1\r\nX-A:\t  spaced value \t\r\nX-Empty:\r\nX-Utf8: caf\xc3\xa9\r\n\r\n",
        parse_request);
    ASSERT_EQ(result.head.headers.size(), 3u);
    EXPECT_EQ(result.head.headers[0].value, "spaced value");
    EXPECT_EQ(result.head.headers[1].value, "");
    EXPECT_EQ(result.head.headers[2].value, "caf\xc3\xa9");
}

TEST(Http1RequestHead, EmptyLinesBeforeTheRequestLineAreSkipped) {
    const std::string raw = "\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const auto result = expect_complete_at_every_split(raw, parse_request);
    EXPECT_EQ(result.head.method, "GET");
    EXPECT_EQ(result.head_size, raw.size());
}

TEST(Http1RequestHead, ExactlyMaxHeadBytesIsAccepted) {
    const std::string raw = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a') + "\r\n\r\n";
    EXPECT_EQ(parse_request_head(raw, raw.size()).status, ParseStatus::complete);
    const auto over = parse_request_head(raw, raw.size() - 1);
    EXPECT_EQ(over.status, ParseStatus::error);
    EXPECT_NE(over.error.find("exceeds"), std::string::npos) << over.error;
}

TEST(Http1RequestHead, IncompleteHeadUnderTheLimitNeedsMore) {
    const std::string raw = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a');
    EXPECT_EQ(parse_request_head(raw, raw.size() + 1).status, ParseStatus::need_more);
    EXPECT_EQ(parse_request_head(raw, raw.size()).status, ParseStatus::error);
    // A first line that never ends hits the same limit.
    const std::string long_target = "GET /" + std::string(200, 'a');
    EXPECT_EQ(parse_request_head(long_target, 1000).status, ParseStatus::need_more);
    EXPECT_EQ(parse_request_head(long_target, 200).status, ParseStatus::error);
}

TEST(Http1RequestHead, TwoHundredHeaderLinesAreTheLimit) {
    std::string raw = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 200; ++i) {
        raw += "X-" + std::to_string(i) + ": v\r\n";
    }
    const auto at_limit = parse_request_head(raw + "\r\n");
    ASSERT_EQ(at_limit.status, ParseStatus::complete) << at_limit.error;
    EXPECT_EQ(at_limit.head.headers.size(), 200u);
    const auto over = parse_request_head(raw + "X-201: v\r\n\r\n");
    EXPECT_EQ(over.status, ParseStatus::error);
    EXPECT_NE(over.error.find("too many"), std::string::npos) << over.error;
}

struct BadHead {
    const char* why;
    std::string raw;
};

class Http1BadRequestHead : public testing::TestWithParam<BadHead> {};

TEST_P(Http1BadRequestHead, IsAnError) {
    const auto result = parse_request_head(GetParam().raw);
    EXPECT_EQ(result.status, ParseStatus::error) << GetParam().why;
    EXPECT_FALSE(result.error.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Http1BadRequestHead,
    testing::Values(BadHead{"HTTP/2 version", "GET / HTTP/2.0\r\n\r\n"},
                    BadHead{"HTTP/1.2", "GET / HTTP/1.2\r\n\r\n"},
                    BadHead{"lower-case version", "GET / http/1.1\r\n\r\n"},
                    BadHead{"garbage version", "GET / FOO\r\n\r\n"},
                    BadHead{"version too long", "GET / HTTP/1.10\r\n\r\n"},
                    BadHead{"trailing space", "GET / HTTP/1.1 \r\n\r\n"},
                    BadHead{"HTTP/0.9", "GET /\r\n\r\n"}, BadHead{"method only", "GET\r\n\r\n"},
                    BadHead{"empty lines, then not a method", "\r\n\r\n\n\x16"},
                    BadHead{"double space", "GET  / HTTP/1.1\r\n\r\n"},
                    BadHead{"leading space", " GET / HTTP/1.1\r\n\r\n"},
                    BadHead{"space in target", "GET /a b HTTP/1.1\r\n\r\n"},
                    BadHead{"CTL in target", "GET /a\x01 HTTP/1.1\r\n\r\n"},
                    BadHead{"tab as separator", "GET\t/ HTTP/1.1\r\n\r\n"},
                    BadHead{"non-token method", "G(T / HTTP/1.1\r\n\r\n"},
                    BadHead{"bare CR in line", "GET / HTTP/1.1\rX\r\n\r\n"},
                    BadHead{"header name not a token", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"},
                    BadHead{"header name with @", "GET / HTTP/1.1\r\nBad@: x\r\n\r\n"},
                    BadHead{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n"},
                    BadHead{"tab before colon", "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n"},
                    BadHead{"empty header name", "GET / HTTP/1.1\r\n: x\r\n\r\n"},
                    BadHead{"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n"},
                    BadHead{"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n"},
                    BadHead{"obs-fold tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"},
                    BadHead{"NUL in value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"s},
                    BadHead{"CTL in value", "GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"},
                    BadHead{"DEL in value", "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"},
                    BadHead{"bare CR in value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"},
                    BadHead{"CR CR LF", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n"}));

TEST(Http1RequestHead, GarbageIsAnErrorOnTheFirstByteThatCannotBeARequestLine) {
    // The start of a TLS 1.3 ClientHello: record type 0x16 is not a token character.
    const std::string client_hello = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s;
    for (std::size_t size = 1; size <= client_hello.size(); ++size) {
        EXPECT_EQ(parse_request_head(client_hello.substr(0, size)).status, ParseStatus::error);
    }
    EXPECT_EQ(parse_request_head("\x80").status, ParseStatus::error);
    EXPECT_EQ(parse_request_head("GE\x01").status, ParseStatus::error);
    EXPECT_EQ(parse_request_head("GET\t").status, ParseStatus::error);
    EXPECT_EQ(parse_request_head(" ").status, ParseStatus::error);
    EXPECT_EQ(parse_request_head("GET /\x7f").status, ParseStatus::error);
    EXPECT_EQ(parse_request_head("GET / X").status, ParseStatus::error);
    EXPECT_EQ(parse_request_head("GET / HTTP/2").status, ParseStatus::error);
    EXPECT_EQ(parse_request_head("GET / HTTP/1.1X").status, ParseStatus::error);
    EXPECT_EQ(parse_request_head("GET / HTTP/1.1\rX").status, ParseStatus::error);
    // ...while a valid start keeps asking for more.
    EXPECT_EQ(parse_request_head("GET / HTTP/1.1\r").status, ParseStatus::need_more);
    EXPECT_EQ(parse_request_head("GET / HTTP/1.").status, ParseStatus::need_more);
    EXPECT_EQ(parse_request_head("").status, ParseStatus::need_more);
    EXPECT_EQ(parse_request_head("\r").status, ParseStatus::need_more);
}

TEST(Http1ResponseHead, TypicalServerResponse) {
    const auto result = expect_complete_at_every_split(kServerResponse, parse_response);
    EXPECT_EQ(result.head.status, 200);
    EXPECT_EQ(result.head.reason, "OK");
    EXPECT_EQ(result.head.version_minor, 1);
    EXPECT_EQ(find_header(result.head.headers, "CONTENT-TYPE"), "text/html; charset=UTF-8");
    const auto framing = response_body_framing(result.head, "GET");
    ASSERT_TRUE(framing.ok);
    EXPECT_EQ(framing.framing.kind, BodyFraming::Kind::content_length);
    EXPECT_EQ(framing.framing.length, 1256u);
}

TEST(Http1ResponseHead, ConnectEstablishedStartsATunnel) {
    const auto result = expect_complete_at_every_split(kConnectEstablished, parse_response);
    EXPECT_EQ(result.head.status, 200);
    EXPECT_EQ(result.head.reason, "Connection established");
    const auto framing = response_body_framing(result.head, "CONNECT");
    ASSERT_TRUE(framing.ok);
    EXPECT_EQ(framing.framing.kind, BodyFraming::Kind::none);
}

TEST(Http1ResponseHead, ReasonMayBeEmptyOrMissing) {
    EXPECT_EQ(expect_complete_at_every_split("HTTP/1.1 204 \r\n\r\n", parse_response).head.reason,
              "");
    const auto no_space = expect_complete_at_every_split("HTTP/1.0 404\r\n\r\n", parse_response);
    EXPECT_EQ(no_space.head.status, 404);
    EXPECT_EQ(no_space.head.version_minor, 0);
    EXPECT_EQ(
        expect_complete_at_every_split("HTTP/1.1 500 Bad\tThing \xe2\x9c\x93\n\n", parse_response)
            .head.reason,
        "Bad\tThing \xe2\x9c\x93");
}

class Http1BadResponseHead : public testing::TestWithParam<BadHead> {};

TEST_P(Http1BadResponseHead, IsAnError) {
    const auto result = parse_response_head(GetParam().raw);
    EXPECT_EQ(result.status, ParseStatus::error) << GetParam().why;
    EXPECT_FALSE(result.error.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Http1BadResponseHead,
    testing::Values(BadHead{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n"},
                    BadHead{"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n"},
                    BadHead{"letters", "HTTP/1.1 abc OK\r\n\r\n"},
                    BadHead{"leading zero", "HTTP/1.1 099 OK\r\n\r\n"},
                    BadHead{"no status", "HTTP/1.1\r\n\r\n"},
                    BadHead{"no status after space", "HTTP/1.1 \r\n\r\n"},
                    BadHead{"HTTP/2", "HTTP/2 200 OK\r\n\r\n"},
                    BadHead{"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n"},
                    BadHead{"ICY", "ICY 200 OK\r\n\r\n"},
                    BadHead{"CTL in reason", "HTTP/1.1 200 O\x01K\r\n\r\n"},
                    BadHead{"empty line first", "\r\nHTTP/1.1 200 OK\r\n\r\n"},
                    BadHead{"space before colon", "HTTP/1.1 200 OK\r\nServer : x\r\n\r\n"},
                    BadHead{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"},
                    BadHead{"NUL in value", "HTTP/1.1 200 OK\r\nX: \0\r\n\r\n"s}));

TEST(Http1ResponseHead, GarbageIsAnErrorEarly) {
    EXPECT_EQ(parse_response_head("\x16").status, ParseStatus::error);
    EXPECT_EQ(parse_response_head("HTTQ").status, ParseStatus::error);
    EXPECT_EQ(parse_response_head("HTTP/1.1 2x").status, ParseStatus::error);
    EXPECT_EQ(parse_response_head("HTTP/1.1 200X").status, ParseStatus::error);
    EXPECT_EQ(parse_response_head("HTTP/1.1 2").status, ParseStatus::need_more);
    EXPECT_EQ(parse_response_head("HTTP/1.1 200").status, ParseStatus::need_more);
    EXPECT_EQ(parse_response_head("HTT").status, ParseStatus::need_more);
}

std::vector<Header> headers_of(std::vector<std::pair<std::string, std::string>> pairs) {
    std::vector<Header> headers;
    for (auto& [name, value] : pairs) {
        headers.push_back(Header{name, value});
    }
    return headers;
}

TEST(Http1Headers, FindHeaderIsCaseInsensitiveAndReturnsTheFirst) {
    const auto headers = headers_of({{"Host", "a"}, {"X-Dup", "1"}, {"x-dup", "2"}});
    EXPECT_EQ(find_header(headers, "host"), "a");
    EXPECT_EQ(find_header(headers, "X-DUP"), "1");
    EXPECT_FALSE(find_header(headers, "Hos"));
    EXPECT_FALSE(find_header(headers, "Hostx"));
}

TEST(Http1Headers, HeaderHasToken) {
    const auto headers =
        headers_of({{"Connection", " Keep-Alive ,\tUpgrade"}, {"connection", "x, ,te"}});
    EXPECT_TRUE(header_has_token(headers, "connection", "keep-alive"));
    EXPECT_TRUE(header_has_token(headers, "Connection", "upgrade"));
    EXPECT_TRUE(header_has_token(headers, "Connection", "TE"));
    EXPECT_FALSE(header_has_token(headers, "Connection", "keep"));
    EXPECT_FALSE(header_has_token(headers, "Connection", "close"));
    EXPECT_FALSE(header_has_token(headers, "Connection", ""));
    EXPECT_FALSE(header_has_token(headers, "Upgrade", "upgrade"));
}

TEST(Http1Headers, WantsKeepAlive) {
    EXPECT_TRUE(wants_keep_alive(1, {}));
    EXPECT_FALSE(wants_keep_alive(1, headers_of({{"Connection", "close"}})));
    EXPECT_FALSE(wants_keep_alive(1, headers_of({{"Connection", "Upgrade, Close"}})));
    EXPECT_FALSE(wants_keep_alive(0, {}));
    EXPECT_TRUE(wants_keep_alive(0, headers_of({{"Connection", "Keep-Alive"}})));
    EXPECT_FALSE(wants_keep_alive(0, headers_of({{"Connection", "keep-alive, close"}})));
    EXPECT_TRUE(wants_keep_alive(1, headers_of({{"Proxy-Connection", "close"}})));
}

struct RequestFramingCase {
    const char* why;
    int version_minor;
    std::vector<std::pair<std::string, std::string>> headers;
    bool ok;
    BodyFraming::Kind kind;
    std::uint64_t length;
};

class Http1RequestFraming : public testing::TestWithParam<RequestFramingCase> {};

TEST_P(Http1RequestFraming, Table) {
    const auto& c = GetParam();
    RequestHead head;
    head.method = "POST";
    head.target = "/";
    head.version_minor = c.version_minor;
    head.headers = headers_of(c.headers);
    const auto result = request_body_framing(head);
    EXPECT_EQ(result.ok, c.ok) << c.why << ": " << result.error;
    if (c.ok) {
        EXPECT_EQ(result.framing.kind, c.kind) << c.why;
        EXPECT_EQ(result.framing.length, c.length) << c.why;
    } else {
        EXPECT_FALSE(result.error.empty()) << c.why;
    }
}

using Kind = BodyFraming::Kind;
INSTANTIATE_TEST_SUITE_P(
    Cases, Http1RequestFraming,
    testing::Values(
        RequestFramingCase{"no headers", 1, {}, true, Kind::none, 0},
        RequestFramingCase{
            "content-length", 1, {{"Content-Length", "42"}}, true, Kind::content_length, 42},
        RequestFramingCase{
            "zero length", 1, {{"content-length", "0"}}, true, Kind::content_length, 0},
        RequestFramingCase{"same twice",
                           1,
                           {{"Content-Length", "5"}, {"Content-Length", "5"}},
                           true,
                           Kind::content_length,
                           5},
        RequestFramingCase{
            "same list", 1, {{"Content-Length", "5, 5"}}, true, Kind::content_length, 5},
        RequestFramingCase{"max uint64",
                           1,
                           {{"Content-Length", "18446744073709551615"}},
                           true,
                           Kind::content_length,
                           18446744073709551615ull},
        RequestFramingCase{"differing",
                           1,
                           {{"Content-Length", "5"}, {"Content-Length", "6"}},
                           false,
                           Kind::none,
                           0},
        RequestFramingCase{"differing list", 1, {{"Content-Length", "5,6"}}, false, Kind::none, 0},
        RequestFramingCase{"negative", 1, {{"Content-Length", "-1"}}, false, Kind::none, 0},
        RequestFramingCase{"plus", 1, {{"Content-Length", "+1"}}, false, Kind::none, 0},
        RequestFramingCase{"hex", 1, {{"Content-Length", "0x10"}}, false, Kind::none, 0},
        RequestFramingCase{"empty", 1, {{"Content-Length", ""}}, false, Kind::none, 0},
        RequestFramingCase{"empty element", 1, {{"Content-Length", "5,"}}, false, Kind::none, 0},
        RequestFramingCase{
            "overflow", 1, {{"Content-Length", "18446744073709551616"}}, false, Kind::none, 0},
        RequestFramingCase{
            "chunked", 1, {{"Transfer-Encoding", "chunked"}}, true, Kind::chunked, 0},
        RequestFramingCase{
            "Chunked mixed case", 1, {{"transfer-encoding", "ChUnKeD"}}, true, Kind::chunked, 0},
        RequestFramingCase{"gzip then chunked",
                           1,
                           {{"Transfer-Encoding", "gzip, chunked"}},
                           true,
                           Kind::chunked,
                           0},
        RequestFramingCase{"split over fields",
                           1,
                           {{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}},
                           true,
                           Kind::chunked,
                           0},
        RequestFramingCase{
            "chunked not last", 1, {{"Transfer-Encoding", "chunked, gzip"}}, false, Kind::none, 0},
        RequestFramingCase{
            "chunked twice", 1, {{"Transfer-Encoding", "chunked, chunked"}}, false, Kind::none, 0},
        RequestFramingCase{
            "identity", 1, {{"Transfer-Encoding", "identity"}}, false, Kind::none, 0},
        RequestFramingCase{"empty TE", 1, {{"Transfer-Encoding", ""}}, false, Kind::none, 0},
        RequestFramingCase{"TE and CL",
                           1,
                           {{"Transfer-Encoding", "chunked"}, {"Content-Length", "5"}},
                           false,
                           Kind::none,
                           0},
        RequestFramingCase{
            "TE in HTTP/1.0", 0, {{"Transfer-Encoding", "chunked"}}, false, Kind::none, 0}));

struct ResponseFramingCase {
    const char* why;
    int version_minor;
    int status;
    const char* method;
    std::vector<std::pair<std::string, std::string>> headers;
    bool ok;
    BodyFraming::Kind kind;
    std::uint64_t length;
};

class Http1ResponseFraming : public testing::TestWithParam<ResponseFramingCase> {};

TEST_P(Http1ResponseFraming, Table) {
    const auto& c = GetParam();
    ResponseHead head;
    head.version_minor = c.version_minor;
    head.status = c.status;
    head.headers = headers_of(c.headers);
    const auto result = response_body_framing(head, c.method);
    EXPECT_EQ(result.ok, c.ok) << c.why << ": " << result.error;
    if (c.ok) {
        EXPECT_EQ(result.framing.kind, c.kind) << c.why;
        EXPECT_EQ(result.framing.length, c.length) << c.why;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Http1ResponseFraming,
    testing::Values(
        ResponseFramingCase{"no length", 1, 200, "GET", {}, true, Kind::until_close, 0},
        ResponseFramingCase{
            "length", 1, 200, "GET", {{"Content-Length", "10"}}, true, Kind::content_length, 10},
        ResponseFramingCase{
            "chunked", 1, 200, "GET", {{"Transfer-Encoding", "chunked"}}, true, Kind::chunked, 0},
        ResponseFramingCase{"TE wins over CL",
                            1,
                            200,
                            "GET",
                            {{"Content-Length", "10"}, {"Transfer-Encoding", "chunked"}},
                            true,
                            Kind::chunked,
                            0},
        ResponseFramingCase{"TE wins over a bad CL",
                            1,
                            200,
                            "GET",
                            {{"Content-Length", "x"}, {"Transfer-Encoding", "chunked"}},
                            true,
                            Kind::chunked,
                            0},
        ResponseFramingCase{"chunked not last",
                            1,
                            200,
                            "GET",
                            {{"Transfer-Encoding", "chunked, gzip"}},
                            true,
                            Kind::until_close,
                            0},
        ResponseFramingCase{"gzip only",
                            1,
                            200,
                            "GET",
                            {{"Transfer-Encoding", "gzip"}},
                            true,
                            Kind::until_close,
                            0},
        ResponseFramingCase{"TE in HTTP/1.0",
                            0,
                            200,
                            "GET",
                            {{"Transfer-Encoding", "chunked"}},
                            true,
                            Kind::until_close,
                            0},
        ResponseFramingCase{
            "HEAD", 1, 200, "HEAD", {{"Content-Length", "10"}}, true, Kind::none, 0},
        ResponseFramingCase{"HEAD chunked",
                            1,
                            200,
                            "HEAD",
                            {{"Transfer-Encoding", "chunked"}},
                            true,
                            Kind::none,
                            0},
        ResponseFramingCase{"100", 1, 100, "POST", {}, true, Kind::none, 0},
        ResponseFramingCase{"101", 1, 101, "GET", {{"Content-Length", "10"}}, true, Kind::none, 0},
        ResponseFramingCase{"204", 1, 204, "GET", {{"Content-Length", "10"}}, true, Kind::none, 0},
        ResponseFramingCase{
            "304", 1, 304, "GET", {{"Transfer-Encoding", "chunked"}}, true, Kind::none, 0},
        ResponseFramingCase{"CONNECT 200", 1, 200, "CONNECT", {}, true, Kind::none, 0},
        ResponseFramingCase{
            "CONNECT 299", 1, 299, "CONNECT", {{"Content-Length", "5"}}, true, Kind::none, 0},
        ResponseFramingCase{"CONNECT refused",
                            1,
                            407,
                            "CONNECT",
                            {{"Content-Length", "5"}},
                            true,
                            Kind::content_length,
                            5},
        ResponseFramingCase{
            "CONNECT refused without length", 1, 403, "CONNECT", {}, true, Kind::until_close, 0},
        ResponseFramingCase{"differing CL",
                            1,
                            200,
                            "GET",
                            {{"Content-Length", "1"}, {"Content-Length", "2"}},
                            false,
                            Kind::none,
                            0},
        ResponseFramingCase{
            "invalid CL", 1, 200, "GET", {{"Content-Length", "1.5"}}, false, Kind::none, 0}));

// Collects the payload a BodyReader passes on.
class CollectingSink : public BodySink {
public:
    void on_body_data(std::span<const char> data) override {
        payload.append(data.data(), data.size());
    }
    std::string payload;
};

struct BodyRun {
    std::size_t consumed = 0;
    bool done = false;
    bool error = false;
    std::string payload;
};

// Feeds `stream` in pieces cut at `cuts` (ascending offsets), like a socket would deliver it,
// stopping at the end of the body or at an error.
BodyRun run_body(BodyFraming framing, std::string_view stream, std::vector<std::size_t> cuts) {
    BodyReader reader(framing);
    CollectingSink sink;
    BodyRun run;
    cuts.push_back(stream.size());
    std::size_t piece_start = 0;
    for (const std::size_t cut : cuts) {
        std::string_view piece = stream.substr(piece_start, cut - piece_start);
        piece_start = cut;
        const auto step = reader.feed(piece, &sink);
        EXPECT_LE(step.consumed, piece.size());
        run.consumed += step.consumed;
        if (step.error) {
            run.error = true;
            break;
        }
        if (step.done) {
            run.done = true;
            EXPECT_TRUE(reader.done());
            break;
        }
        EXPECT_EQ(step.consumed, piece.size()) << "an unfinished body takes all it is given";
    }
    run.payload = sink.payload;
    EXPECT_EQ(reader.payload_bytes(), run.payload.size());
    return run;
}

// Checks a body fed whole, split in two at every byte, and byte by byte.
void expect_body_at_every_split(BodyFraming framing, std::string_view body,
                                std::string_view payload) {
    const std::string stream = std::string(body) + "NEXT";
    const auto whole = run_body(framing, stream, {});
    EXPECT_TRUE(whole.done);
    EXPECT_FALSE(whole.error);
    EXPECT_EQ(whole.consumed, body.size());
    EXPECT_EQ(whole.payload, payload);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        const auto split = run_body(framing, stream, {cut});
        EXPECT_TRUE(split.done) << "cut at " << cut;
        EXPECT_EQ(split.consumed, body.size()) << "cut at " << cut;
        EXPECT_EQ(split.payload, payload) << "cut at " << cut;
    }
    std::vector<std::size_t> every_byte;
    for (std::size_t cut = 1; cut < stream.size(); ++cut) {
        every_byte.push_back(cut);
    }
    const auto bytewise = run_body(framing, stream, every_byte);
    EXPECT_TRUE(bytewise.done);
    EXPECT_EQ(bytewise.consumed, body.size());
    EXPECT_EQ(bytewise.payload, payload);
}

const BodyFraming kChunked{BodyFraming::Kind::chunked, 0};

TEST(Http1BodyReader, ContentLength) {
    expect_body_at_every_split({BodyFraming::Kind::content_length, 11}, "hello world",
                               "hello world");
}

TEST(Http1BodyReader, ZeroContentLengthIsDoneAtOnce) {
    BodyReader reader({BodyFraming::Kind::content_length, 0});
    EXPECT_TRUE(reader.done());
    const auto step = reader.feed("GET");
    EXPECT_TRUE(step.done);
    EXPECT_EQ(step.consumed, 0u);
}

TEST(Http1BodyReader, NoneIsDoneAtOnceAndConsumesNothing) {
    BodyReader reader({BodyFraming::Kind::none, 0});
    EXPECT_TRUE(reader.done());
    EXPECT_FALSE(reader.finish_on_close());
    const auto step = reader.feed("HTTP/1.1 200 OK\r\n");
    EXPECT_TRUE(step.done);
    EXPECT_FALSE(step.error);
    EXPECT_EQ(step.consumed, 0u);
}

TEST(Http1BodyReader, UntilCloseTakesEverythingAndNeverEnds) {
    BodyReader reader({BodyFraming::Kind::until_close, 0});
    CollectingSink sink;
    EXPECT_TRUE(reader.finish_on_close());
    for (std::string_view piece : {"abc", "", "0\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"}) {
        const auto step = reader.feed(piece, &sink);
        EXPECT_EQ(step.consumed, piece.size());
        EXPECT_FALSE(step.done);
        EXPECT_FALSE(step.error);
    }
    EXPECT_FALSE(reader.done());
    EXPECT_EQ(sink.payload, "abc0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
    EXPECT_EQ(reader.payload_bytes(), sink.payload.size());
}

TEST(Http1BodyReader, ChunkedWithExtensionsAndTrailers) {
    expect_body_at_every_split(kChunked,
                               "4\r\nWiki\r\n"
                               "5;name=value\r\npedia\r\n"
                               "e ; a=\"quoted; \\\" value\" ;b\r\n in\r\n\r\nchunks.\r\n"
                               "0;last\r\n"
                               "Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
                               "X-Checksum: abc\r\n"
                               "\r\n",
                               "Wikipedia in\r\n\r\nchunks.");
}

TEST(Http1BodyReader, ChunkedMinimalAndUpperCaseHex) {
    expect_body_at_every_split(kChunked, "0\r\n\r\n", "");
    expect_body_at_every_split(kChunked, "A\r\n0123456789\r\n00\r\n\r\n", "0123456789");
    expect_body_at_every_split(kChunked, "0000000000000001\r\nx\r\n0\r\n\r\n", "x");
}

TEST(Http1BodyReader, ChunkedWithBareLfLineEnds) {
    expect_body_at_every_split(kChunked, "3\nabc\n3\r\ndef\n0\nTrailer: x\n\n", "abcdef");
}

TEST(Http1BodyReader, ChunkedLargestSizeNeedsMoreData) {
    BodyReader reader(kChunked);
    const auto step = reader.feed("ffffffffffffffff\r\nabc");
    EXPECT_FALSE(step.error);
    EXPECT_FALSE(step.done);
    EXPECT_EQ(step.consumed, 21u);
    EXPECT_EQ(reader.payload_bytes(), 3u);
}

class Http1BadChunkedBody : public testing::TestWithParam<BadHead> {};

TEST_P(Http1BadChunkedBody, IsAnErrorHoweverSplit) {
    const std::string& body = GetParam().raw;
    const auto whole = run_body(kChunked, body, {});
    EXPECT_TRUE(whole.error) << GetParam().why;
    std::vector<std::size_t> every_byte;
    for (std::size_t cut = 1; cut < body.size(); ++cut) {
        every_byte.push_back(cut);
    }
    const auto bytewise = run_body(kChunked, body, every_byte);
    EXPECT_TRUE(bytewise.error) << GetParam().why;
    EXPECT_EQ(bytewise.consumed, whole.consumed) << GetParam().why;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Http1BadChunkedBody,
    testing::Values(BadHead{"not hex", "g\r\n"}, BadHead{"empty size", "\r\n"},
                    BadHead{"sign", "-1\r\n"}, BadHead{"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
                    BadHead{"17 hex digits", "10000000000000000\r\n"},
                    BadHead{"17 zeros", "00000000000000000\r\n\r\n"},
                    BadHead{"whitespace then CRLF", "5 \r\nhello\r\n0\r\n\r\n"},
                    BadHead{"leading space", " 5\r\nhello\r\n0\r\n\r\n"},
                    BadHead{"junk after size", "5x\r\nhello\r\n0\r\n\r\n"},
                    BadHead{"CR without LF", "5\rhello\r\n0\r\n\r\n"},
                    BadHead{"data too long", "5\r\nhelloX\r\n0\r\n\r\n"},
                    BadHead{"data CR without LF", "5\r\nhello\rX0\r\n\r\n"},
                    BadHead{"NUL in extension", "5;a\0\r\nhello\r\n0\r\n\r\n"s},
                    BadHead{"extension too long", "5;" + std::string(5000, 'a') + "\r\nhello\r\n"},
                    BadHead{"NUL in trailer", "0\r\nX: \0\r\n\r\n"s},
                    BadHead{"trailer CR without LF", "0\r\nX: a\rb\r\n\r\n"},
                    BadHead{"final CR without LF", "0\r\n\rX"},
                    BadHead{"trailers too large", "0\r\n" + std::string(70000, 'a') + "\r\n\r\n"}));

// A forwarder passes chunked bodies on unchanged, so it accepts only CRLF line ends: a peer that
// read a bare LF differently would see other chunk boundaries (request smuggling).
TEST(Http1BodyReader, CrlfOnlyRefusesEveryBareLfTheLenientReaderTakes) {
    const std::string_view cases[] = {
        "3\nabc\r\n0\r\n\r\n",      // after the size
        "3;x=y\nabc\r\n0\r\n\r\n",  // after an extension
        "3\r\nabc\n0\r\n\r\n",      // after the data
        "0\r\nX: a\n\r\n",          // ending a trailer
        "0\r\n\n",                  // the final line
    };
    for (const std::string_view body : cases) {
        BodyReader lenient(kChunked);
        EXPECT_TRUE(lenient.feed(body).done) << body;
        BodyReader strict(kChunked, BodyReader::LineEnds::crlf_only);
        const auto step = strict.feed(body);
        EXPECT_TRUE(step.error) << body;
        EXPECT_FALSE(step.done) << body;
    }
    BodyReader strict(kChunked, BodyReader::LineEnds::crlf_only);
    const auto step = strict.feed("3;x=y\r\nabc\r\n0\r\nX: a\r\n\r\n");
    EXPECT_TRUE(step.done);
    EXPECT_EQ(strict.payload_bytes(), 3u);
}

TEST(Http1BodyReader, ErrorsAreSticky) {
    BodyReader reader(kChunked);
    const auto first = reader.feed("zz");
    ASSERT_TRUE(first.error);
    EXPECT_FALSE(first.error_text.empty());
    const auto again = reader.feed("0\r\n\r\n");
    EXPECT_TRUE(again.error);
    EXPECT_EQ(again.error_text, first.error_text);
    EXPECT_EQ(again.consumed, 0u);
}

TEST(Http1BodyReader, FeedAfterDoneConsumesNothing) {
    BodyReader reader(kChunked);
    const auto step = reader.feed("0\r\n\r\nGET");
    EXPECT_TRUE(step.done);
    EXPECT_EQ(step.consumed, 5u);
    const auto after = reader.feed("GET / HTTP/1.1\r\n");
    EXPECT_TRUE(after.done);
    EXPECT_EQ(after.consumed, 0u);
}

TEST(Http1BodyReader, NoSinkIsFine) {
    BodyReader reader(kChunked);
    const auto step = reader.feed("3\r\nabc\r\n0\r\n\r\n");
    EXPECT_TRUE(step.done);
    EXPECT_EQ(reader.payload_bytes(), 3u);
}

// A keep-alive connection: each message is a head, then a body whose end the reader finds.
struct Message {
    std::string method;
    std::string target;
    std::string payload;
    std::size_t size = 0;
};

// Walks a stream of pipelined requests as a proxy would when the bytes arrive in pieces of
// `piece_size`, keeping unconsumed bytes in a buffer.
std::vector<Message> walk_requests(std::string_view stream, std::size_t piece_size) {
    std::vector<Message> messages;
    std::string buffer;
    std::optional<BodyReader> body;
    CollectingSink sink;
    Message current;
    std::size_t offset = 0;
    while (offset < stream.size() || !buffer.empty()) {
        if (offset < stream.size()) {
            buffer.append(stream.substr(offset, piece_size));
            offset += std::min(piece_size, stream.size() - offset);
        }
        bool progress = true;
        while (progress && !buffer.empty()) {
            progress = false;
            if (!body) {
                const auto head = parse_request_head(buffer);
                EXPECT_NE(head.status, ParseStatus::error) << head.error;
                if (head.status != ParseStatus::complete) {
                    break;
                }
                const auto framing = request_body_framing(head.head);
                EXPECT_TRUE(framing.ok) << framing.error;
                current = Message{head.head.method, head.head.target, "", head.head_size};
                buffer.erase(0, head.head_size);
                body.emplace(framing.framing);
                sink.payload.clear();
                progress = true;
            }
            const auto step = body->feed(buffer, &sink);
            EXPECT_FALSE(step.error);
            buffer.erase(0, step.consumed);
            current.size += step.consumed;
            if (step.done) {
                current.payload = sink.payload;
                messages.push_back(current);
                body.reset();
                progress = true;
            }
        }
        if (offset >= stream.size() && !progress) {
            break;
        }
    }
    EXPECT_TRUE(buffer.empty());
    EXPECT_FALSE(body);
    return messages;
}

TEST(Http1Pipelining, RequestsBackToBackAreSeparatedExactly) {
    const std::string post = std::string(kCurlPostHead) + "name=me";
    const std::string chunked_put =
        "PUT /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nDigest: z\r\n\r\n";
    const std::string get = std::string(kCurlGet);
    const std::string stream = post + chunked_put + get;
    for (std::size_t piece_size :
         {stream.size(), std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{64}}) {
        const auto messages = walk_requests(stream, piece_size);
        ASSERT_EQ(messages.size(), 3u) << "piece size " << piece_size;
        EXPECT_EQ(messages[0].method, "POST");
        EXPECT_EQ(messages[0].payload, "name=me");
        EXPECT_EQ(messages[0].size, post.size());
        EXPECT_EQ(messages[1].method, "PUT");
        EXPECT_EQ(messages[1].payload, "abcde");
        EXPECT_EQ(messages[1].size, chunked_put.size());
        EXPECT_EQ(messages[2].method, "GET");
        EXPECT_EQ(messages[2].payload, "");
        EXPECT_EQ(messages[2].size, get.size());
    }
}

TEST(Http1Pipelining, HeadSizeAndBodyConsumptionAddUp) {
    const std::string first = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    const std::string second =
        "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n";
    const std::string stream = first + second;
    const auto head1 = parse_request_head(stream);
    ASSERT_EQ(head1.status, ParseStatus::complete);
    EXPECT_EQ(head1.head.target, "/a");
    BodyReader body1(request_body_framing(head1.head).framing);
    const auto step1 = body1.feed(std::string_view(stream).substr(head1.head_size));
    ASSERT_TRUE(step1.done);
    EXPECT_EQ(head1.head_size + step1.consumed, first.size());

    const auto rest = std::string_view(stream).substr(first.size());
    const auto head2 = parse_request_head(rest);
    ASSERT_EQ(head2.status, ParseStatus::complete);
    EXPECT_EQ(head2.head.target, "/b");
    BodyReader body2(request_body_framing(head2.head).framing);
    const auto step2 = body2.feed(rest.substr(head2.head_size));
    ASSERT_TRUE(step2.done);
    EXPECT_EQ(head2.head_size + step2.consumed, second.size());
}

TEST(Http1Authority, Valid) {
    const auto plain = parse_authority("example.com:443");
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->host, "example.com");
    EXPECT_EQ(plain->port, 443);
    const auto v4 = parse_authority("192.0.2.1:8080");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->host, "192.0.2.1");
    EXPECT_EQ(v4->port, 8080);
    const auto v6 = parse_authority("[2001:db8::1]:443");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "2001:db8::1");
    EXPECT_EQ(v6->port, 443);
    const auto max_port = parse_authority("a:65535");
    ASSERT_TRUE(max_port);
    EXPECT_EQ(max_port->port, 65535);
    EXPECT_TRUE(parse_authority("[::ffff:192.0.2.1]:1"));
}

TEST(Http1Authority, Invalid) {
    for (std::string_view text : {"",
                                  "example.com",
                                  "example.com:",
                                  ":443",
                                  "example.com:0",
                                  "example.com:65536",
                                  "example.com:99999",
                                  "example.com:123456",
                                  "example.com:-1",
                                  "example.com:+80",
                                  "example.com:80:80",
                                  "example.com:8 0",
                                  "exa mple.com:80",
                                  "user@example.com:80",
                                  "example.com/:80",
                                  "2001:db8::1:443",
                                  "[2001:db8::1]",
                                  "[2001:db8::1]443",
                                  "[2001:db8::1:443",
                                  "[]:443",
                                  "[192.0.2.1]:443",
                                  "[fe80::1%eth0]:443",
                                  "[::1]x:443",
                                  "[v1.x]:443",
                                  "host\r:80"}) {
        EXPECT_FALSE(parse_authority(text)) << text;
    }
    EXPECT_FALSE(parse_authority("a\0b:80"sv));
    EXPECT_FALSE(parse_authority("[::1\0]:80"sv));
}

TEST(Http1AbsoluteUrl, Valid) {
    struct Case {
        std::string_view target, scheme, host;
        std::uint16_t port;
        std::string_view origin_form;
    };
    for (const Case& c : {
             Case{"http://example.com/path?q=1", "http", "example.com", 80, "/path?q=1"},
             Case{"http://example.com", "http", "example.com", 80, "/"},
             Case{"HTTP://Example.com:8080", "http", "Example.com", 8080, "/"},
             Case{"https://example.com/", "https", "example.com", 443, "/"},
             Case{"HtTpS://example.com:8443/a/b", "https", "example.com", 8443, "/a/b"},
             Case{"http://example.com?x=y", "http", "example.com", 80, "/?x=y"},
             Case{"http://[2001:db8::1]:81/x", "http", "2001:db8::1", 81, "/x"},
             Case{"http://[::1]/", "http", "::1", 80, "/"},
             Case{"http://192.0.2.1/a?b=c/d", "http", "192.0.2.1", 80, "/a?b=c/d"},
             Case{"http://example.com/a@b", "http", "example.com", 80, "/a@b"},
         }) {
        const auto url = parse_absolute_url(c.target);
        ASSERT_TRUE(url) << c.target;
        EXPECT_EQ(url->scheme, c.scheme) << c.target;
        EXPECT_EQ(url->authority.host, c.host) << c.target;
        EXPECT_EQ(url->authority.port, c.port) << c.target;
        EXPECT_EQ(url->origin_form, c.origin_form) << c.target;
    }
}

TEST(Http1AbsoluteUrl, Invalid) {
    for (std::string_view target : {"",
                                    "/",
                                    "example.com",
                                    "example.com:80",
                                    "ftp://example.com/",
                                    "http:/example.com/",
                                    "http//example.com/",
                                    "http://",
                                    "http:///path",
                                    "http://:80/",
                                    "http://user@example.com/",
                                    "http://user:pass@example.com/",
                                    "http://example.com@evil.com/",
                                    "http://example.com:/",
                                    "http://example.com:0/",
                                    "http://example.com:65536/",
                                    "http://example.com:http/",
                                    "http://example.com/#frag",
                                    "http://exa mple.com/",
                                    "http://example.com/a b",
                                    "http://example.com/\x01",
                                    "http://[::1/",
                                    "http://[zz::1]/",
                                    "http://[::1]:/",
                                    "httpx://example.com/",
                                    "xhttp://example.com/"}) {
        EXPECT_FALSE(parse_absolute_url(target)) << target;
    }
}

}  // namespace
}  // namespace tlsgate::http1
