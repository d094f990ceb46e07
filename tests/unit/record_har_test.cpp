#include "record/har.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>

namespace tlsgate::record {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// 2024-03-04T10:00:00.123456Z
const inspect::Clock::time_point kStart{std::chrono::seconds(1709546400) + 123456us};

FlowRecord get_flow() {
    FlowRecord flow;
    flow.connection_id = 42;
    flow.client_address = "192.0.2.10:53422";
    flow.server_address = "203.0.113.5:443";
    flow.sni = "example.test";
    flow.client_tls_version = "TLSv1.3";
    flow.upstream_tls_version = "TLSv1.2";
    flow.alpn = "http/1.1";
    auto& exchange = flow.exchange;
    exchange.protocol = "HTTP/1.1";
    exchange.sequence = 2;
    exchange.request_start = kStart;
    exchange.response_start = kStart + 20ms;
    exchange.end = kStart + 35ms;
    exchange.method = "GET";
    exchange.scheme = "https";
    exchange.authority = "example.test";
    exchange.path = "/hello";
    exchange.status = 200;
    exchange.reason = "OK";
    exchange.request_headers = {{"Host", "example.test"}, {"User-Agent", "curl/7.88.1"}};
    exchange.response_headers = {{"Content-Type", "text/plain"}, {"Content-Length", "5"}};
    exchange.request_body.sha256 =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    exchange.response_body.size = 5;
    exchange.response_body.sha256 =
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    exchange.response_body.content_type = "text/plain";
    return flow;
}

// Every field HAR 1.2 marks required, with its type.
void expect_name_value_list(const Json& list, const char* what) {
    ASSERT_TRUE(list.is_array()) << what;
    for (const auto& item : list) {
        EXPECT_TRUE(item.is_object() && item.contains("name") && item["name"].is_string() &&
                    item.contains("value") && item["value"].is_string())
            << what << ": " << item.dump();
    }
}

// "2024-03-04T10:00:00.123Z". (Not std::regex: GCC 12 warns inside <regex> under ASan.)
bool is_iso8601_millis_utc(const std::string& text) {
    constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
    return text.size() == kShape.size() &&
           std::equal(text.begin(), text.end(), kShape.begin(), [](char c, char shape) {
               return shape == 'd' ? c >= '0' && c <= '9' : c == shape;
           });
}

void expect_valid_entry(const Json& entry) {
    ASSERT_TRUE(entry.is_object());
    ASSERT_TRUE(entry["startedDateTime"].is_string());
    EXPECT_TRUE(is_iso8601_millis_utc(entry["startedDateTime"].get<std::string>()))
        << entry["startedDateTime"];
    ASSERT_TRUE(entry["time"].is_number());
    EXPECT_GE(entry["time"].get<double>(), 0);

    const Json& request = entry["request"];
    ASSERT_TRUE(request.is_object());
    EXPECT_TRUE(request["method"].is_string());
    EXPECT_TRUE(request["url"].is_string());
    EXPECT_TRUE(request["httpVersion"].is_string());
    expect_name_value_list(request["cookies"], "request cookies");
    expect_name_value_list(request["headers"], "request headers");
    expect_name_value_list(request["queryString"], "queryString");
    EXPECT_TRUE(request["headersSize"].is_number_integer());
    EXPECT_TRUE(request["bodySize"].is_number_integer());
    if (request.contains("postData")) {
        const Json& post_data = request["postData"];
        EXPECT_TRUE(post_data["mimeType"].is_string());
        EXPECT_TRUE(post_data["text"].is_string());
        if (post_data.contains("params")) {
            expect_name_value_list(post_data["params"], "params");
        }
    }

    const Json& response = entry["response"];
    ASSERT_TRUE(response.is_object());
    EXPECT_TRUE(response["status"].is_number_integer());
    EXPECT_TRUE(response["statusText"].is_string());
    EXPECT_TRUE(response["httpVersion"].is_string());
    expect_name_value_list(response["cookies"], "response cookies");
    expect_name_value_list(response["headers"], "response headers");
    const Json& content = response["content"];
    ASSERT_TRUE(content.is_object());
    EXPECT_TRUE(content["size"].is_number_integer());
    EXPECT_TRUE(content["mimeType"].is_string());
    if (content.contains("text")) {
        EXPECT_TRUE(content["text"].is_string());
    }
    if (content.contains("encoding")) {
        EXPECT_EQ(content["encoding"], "base64");
    }
    EXPECT_TRUE(response["redirectURL"].is_string());
    EXPECT_TRUE(response["headersSize"].is_number_integer());
    EXPECT_TRUE(response["bodySize"].is_number_integer());

    EXPECT_TRUE(entry["cache"].is_object());
    const Json& timings = entry["timings"];
    ASSERT_TRUE(timings.is_object());
    double sum = 0;
    for (const char* required : {"send", "wait", "receive"}) {
        ASSERT_TRUE(timings[required].is_number()) << required;
        EXPECT_GE(timings[required].get<double>(), 0) << required;
        sum += timings[required].get<double>();
    }
    for (const char* optional : {"blocked", "dns", "connect", "ssl"}) {
        if (timings.contains(optional)) {
            EXPECT_EQ(timings[optional], -1) << optional;
        }
    }
    EXPECT_DOUBLE_EQ(entry["time"].get<double>(), sum);
    if (entry.contains("serverIPAddress")) {
        EXPECT_TRUE(entry["serverIPAddress"].is_string());
    }
    if (entry.contains("connection")) {
        EXPECT_TRUE(entry["connection"].is_string());
    }
    // Whatever the flow carried, the result must dump (network strings are made UTF-8).
    EXPECT_NO_THROW((void)entry.dump());
}

Json single_entry(const FlowRecord& flow) {
    const Json har = flows_to_har({flow}, "0.1.0");
    EXPECT_EQ(har["log"]["entries"].size(), 1u);
    return har["log"]["entries"][0];
}

std::string base64_decode(const std::string& text) {
    std::string decoded(text.size(), '\0');
    const int length =
        EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                        reinterpret_cast<const unsigned char*>(text.data()), text.size());
    EXPECT_GE(length, 0);
    decoded.resize(length);
    // EVP_DecodeBlock keeps the zero bytes that stand for '=' padding.
    const std::size_t padding = text.ends_with("==") ? 2 : text.ends_with("=") ? 1 : 0;
    decoded.resize(decoded.size() - padding);
    return decoded;
}

TEST(Har, LogHasVersionCreatorAndEntriesInOrder) {
    auto second = get_flow();
    second.exchange.path = "/second";
    const Json har = flows_to_har({get_flow(), second}, "0.1.0");
    ASSERT_TRUE(har["log"].is_object());
    EXPECT_EQ(har["log"]["version"], "1.2");
    EXPECT_EQ(har["log"]["creator"], (Json{{"name", "tlsgate"}, {"version", "0.1.0"}}));
    ASSERT_EQ(har["log"]["entries"].size(), 2u);
    EXPECT_EQ(har["log"]["entries"][1]["request"]["url"], "https://example.test/second");
    for (const auto& entry : har["log"]["entries"]) {
        expect_valid_entry(entry);
    }
    const Json empty = flows_to_har({}, "0.1.0");
    EXPECT_TRUE(empty["log"]["entries"].is_array());
    EXPECT_TRUE(empty["log"]["entries"].empty());
}

TEST(Har, GetExchange) {
    const Json entry = single_entry(get_flow());
    expect_valid_entry(entry);
    EXPECT_EQ(entry["startedDateTime"], "2024-03-04T10:00:00.123Z");
    EXPECT_DOUBLE_EQ(entry["time"].get<double>(), 35.0);
    EXPECT_EQ(entry["timings"]["send"], 0);
    EXPECT_DOUBLE_EQ(entry["timings"]["wait"].get<double>(), 20.0);
    EXPECT_DOUBLE_EQ(entry["timings"]["receive"].get<double>(), 15.0);
    EXPECT_EQ(entry["serverIPAddress"], "203.0.113.5");
    EXPECT_EQ(entry["connection"], "42");

    const Json& request = entry["request"];
    EXPECT_EQ(request["method"], "GET");
    EXPECT_EQ(request["url"], "https://example.test/hello");
    EXPECT_EQ(request["httpVersion"], "HTTP/1.1");
    EXPECT_EQ(request["headers"][1], (Json{{"name", "User-Agent"}, {"value", "curl/7.88.1"}}));
    EXPECT_TRUE(request["queryString"].empty());
    EXPECT_TRUE(request["cookies"].empty());
    EXPECT_EQ(request["headersSize"], -1);
    EXPECT_EQ(request["bodySize"], 0);
    EXPECT_FALSE(request.contains("postData"));

    const Json& response = entry["response"];
    EXPECT_EQ(response["status"], 200);
    EXPECT_EQ(response["statusText"], "OK");
    EXPECT_EQ(response["httpVersion"], "HTTP/1.1");
    EXPECT_EQ(response["content"]["size"], 5);
    EXPECT_EQ(response["content"]["mimeType"], "text/plain");
    EXPECT_FALSE(response["content"].contains("text"));  // not captured
    EXPECT_EQ(response["redirectURL"], "");
    EXPECT_EQ(response["bodySize"], 5);

    const Json& tlsgate = entry["_tlsgate"];
    EXPECT_EQ(tlsgate["sni"], "example.test");
    EXPECT_EQ(tlsgate["client_tls_version"], "TLSv1.3");
    EXPECT_EQ(tlsgate["upstream_tls_version"], "TLSv1.2");
    EXPECT_EQ(tlsgate["alpn"], "http/1.1");
    EXPECT_EQ(tlsgate["sequence"], 2);
    EXPECT_EQ(tlsgate["response_sha256"], get_flow().exchange.response_body.sha256);
    EXPECT_FALSE(tlsgate.contains("error"));
    EXPECT_FALSE(tlsgate.contains("stream_id"));
}

TEST(Har, CapturedTextBodies) {
    auto flow = get_flow();
    auto& exchange = flow.exchange;
    exchange.method = "POST";
    exchange.path = "/form";
    exchange.request_body.size = 24;
    exchange.request_body.content_type = "application/x-www-form-urlencoded";
    exchange.request_body.captured = "name=J%C3%BCrgen&city=Z+H";
    exchange.response_body.captured = "h\xc3\xa9llo";  // UTF-8 stays text
    exchange.response_body.capture_truncated = true;
    exchange.response_headers.push_back({"Location", "/done"});
    const Json entry = single_entry(flow);
    expect_valid_entry(entry);
    const Json& post_data = entry["request"]["postData"];
    EXPECT_EQ(post_data["mimeType"], "application/x-www-form-urlencoded");
    EXPECT_EQ(post_data["text"], "name=J%C3%BCrgen&city=Z+H");
    EXPECT_FALSE(post_data.contains("_encoding"));
    EXPECT_EQ(post_data["params"], (Json{{{"name", "name"}, {"value", "J\xc3\xbcrgen"}},
                                         {{"name", "city"}, {"value", "Z H"}}}));
    EXPECT_EQ(entry["request"]["bodySize"], 24);
    const Json& content = entry["response"]["content"];
    EXPECT_EQ(content["text"], "h\xc3\xa9llo");
    EXPECT_FALSE(content.contains("encoding"));
    EXPECT_EQ(content["_truncated"], true);
    EXPECT_EQ(entry["response"]["redirectURL"], "/done");
}

TEST(Har, CapturedBinaryBodiesAreBase64) {
    auto flow = get_flow();
    auto& exchange = flow.exchange;
    exchange.method = "POST";
    const std::string binary("\x00\x01\xff\xfe\x80png", 8);
    exchange.request_body.size = binary.size();
    exchange.request_body.content_type = "application/octet-stream";
    exchange.request_body.captured = binary;
    exchange.response_body.content_encoding = "gzip";
    exchange.response_body.captured = std::string("\x1f\x8b\x08\x00", 4);
    const Json entry = single_entry(flow);
    expect_valid_entry(entry);
    const Json& post_data = entry["request"]["postData"];
    EXPECT_EQ(post_data["_encoding"], "base64");
    EXPECT_EQ(base64_decode(post_data["text"]), binary);
    EXPECT_FALSE(post_data.contains("params"));
    const Json& content = entry["response"]["content"];
    EXPECT_EQ(content["encoding"], "base64");
    EXPECT_EQ(content["text"], "H4sIAA==");
    EXPECT_EQ(content["_contentEncoding"], "gzip");
}

TEST(Har, Http2Exchange) {
    auto flow = get_flow();
    flow.server_address = "[2001:db8::1]:443";
    flow.alpn = "h2";
    auto& exchange = flow.exchange;
    exchange.protocol = "HTTP/2";
    exchange.stream_id = 3;
    exchange.reason.clear();
    exchange.request_headers = {
        {":method", "GET"},  {":scheme", "https"}, {":authority", "example.test"},
        {":path", "/hello"}, {"cookie", "a=1"},    {"cookie", "b=2"}};
    exchange.response_headers = {{":status", "200"}, {"content-type", "text/plain"}};
    const Json entry = single_entry(flow);
    expect_valid_entry(entry);
    EXPECT_EQ(entry["request"]["httpVersion"], "http/2.0");
    EXPECT_EQ(entry["response"]["httpVersion"], "http/2.0");
    EXPECT_EQ(entry["response"]["statusText"], "");
    EXPECT_EQ(entry["serverIPAddress"], "2001:db8::1");
    EXPECT_EQ(entry["_tlsgate"]["stream_id"], 3);
    EXPECT_EQ(entry["_tlsgate"]["alpn"], "h2");
    // HTTP/2 splits cookies into one field each; HAR lists them all.
    EXPECT_EQ(entry["request"]["cookies"].size(), 2u);
}

TEST(Har, ExchangeWithoutResponse) {
    auto flow = get_flow();
    auto& exchange = flow.exchange;
    exchange.status = 0;
    exchange.reason.clear();
    exchange.response_start.reset();
    exchange.response_headers.clear();
    exchange.response_body = {};
    exchange.end = kStart + 5s;
    exchange.error = "connection closed before the response";
    const Json entry = single_entry(flow);
    expect_valid_entry(entry);
    EXPECT_EQ(entry["response"]["status"], 0);
    EXPECT_EQ(entry["response"]["httpVersion"], "");
    EXPECT_EQ(entry["response"]["bodySize"], -1);
    EXPECT_EQ(entry["response"]["content"]["size"], 0);
    EXPECT_DOUBLE_EQ(entry["timings"]["wait"].get<double>(), 5000.0);
    EXPECT_EQ(entry["timings"]["receive"], 0);
    EXPECT_DOUBLE_EQ(entry["time"].get<double>(), 5000.0);
    EXPECT_EQ(entry["_tlsgate"]["error"], "connection closed before the response");
}

TEST(Har, QueryStringIsParsedFromThePath) {
    auto flow = get_flow();
    flow.exchange.path = "/search?q=hello+world&lang=en&empty=&flag&&x=%E2%9C%93&bad=%ZZ%4#frag";
    const Json entry = single_entry(flow);
    expect_valid_entry(entry);
    EXPECT_EQ(entry["request"]["url"], "https://example.test" + flow.exchange.path);
    EXPECT_EQ(entry["request"]["queryString"], (Json{{{"name", "q"}, {"value", "hello world"}},
                                                     {{"name", "lang"}, {"value", "en"}},
                                                     {{"name", "empty"}, {"value", ""}},
                                                     {{"name", "flag"}, {"value", ""}},
                                                     {{"name", "x"}, {"value", "\xe2\x9c\x93"}},
                                                     {{"name", "bad"}, {"value", "%ZZ%4"}}}));
    // Decoding that would give invalid UTF-8 keeps the raw text.
    flow.exchange.path = "/?b=%FF";
    EXPECT_EQ(single_entry(flow)["request"]["queryString"][0]["value"], "%FF");
}

TEST(Har, CookiesAreParsedUnlessRedacted) {
    auto flow = get_flow();
    flow.exchange.request_headers.push_back({"Cookie", "a=1; session = x y ;lone;;  b=="});
    flow.exchange.response_headers.push_back(
        {"Set-Cookie",
         "id=a3fWa; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/; "
         "Domain=example.test; Secure; HttpOnly"});
    flow.exchange.response_headers.push_back({"Set-Cookie", "no-equals-sign"});
    Json entry = single_entry(flow);
    expect_valid_entry(entry);
    EXPECT_EQ(entry["request"]["cookies"], (Json{{{"name", "a"}, {"value", "1"}},
                                                 {{"name", "session"}, {"value", "x y"}},
                                                 {{"name", ""}, {"value", "lone"}},
                                                 {{"name", "b"}, {"value", "="}}}));
    ASSERT_EQ(entry["response"]["cookies"].size(), 1u);
    EXPECT_EQ(entry["response"]["cookies"][0], (Json{{"name", "id"},
                                                     {"value", "a3fWa"},
                                                     {"path", "/"},
                                                     {"domain", "example.test"},
                                                     {"secure", true},
                                                     {"httpOnly", true}}));

    flow.exchange.request_headers.back().value = "<redacted>";
    flow.exchange.response_headers[2].value = "<redacted>";
    entry = single_entry(flow);
    expect_valid_entry(entry);
    EXPECT_TRUE(entry["request"]["cookies"].empty());
    EXPECT_TRUE(entry["response"]["cookies"].empty());
    // The redacted header itself stays listed.
    EXPECT_EQ(entry["request"]["headers"].back()["value"], "<redacted>");
}

TEST(Har, UrlsForUnusualTargets) {
    auto flow = get_flow();
    flow.exchange.scheme = "http";
    flow.exchange.path = "http://proxied.test/x?y=1";  // absolute form through a proxy
    EXPECT_EQ(single_entry(flow)["request"]["url"], "http://proxied.test/x?y=1");
    flow.exchange.path = "*";
    flow.exchange.method = "OPTIONS";
    EXPECT_EQ(single_entry(flow)["request"]["url"], "http://example.test/*");
    flow.exchange.path = "/";
    flow.exchange.authority.clear();  // HTTP/1.0 without Host
    EXPECT_EQ(single_entry(flow)["request"]["url"], "http://example.test/");
    flow.sni.clear();
    EXPECT_EQ(single_entry(flow)["request"]["url"], "http://203.0.113.5:443/");
}

TEST(Har, InvalidUtf8FromTheNetworkIsReplaced) {
    auto flow = get_flow();
    flow.exchange.path = "/caf\xe9";
    flow.exchange.request_headers.push_back({"X-Bytes", "\xc0\xaf\xed\xa0\x80ok"});
    flow.exchange.error = "malformed response head: \xff";
    const Json entry = single_entry(flow);
    expect_valid_entry(entry);
    EXPECT_EQ(entry["request"]["url"], "https://example.test/caf\xef\xbf\xbd");
    EXPECT_EQ(entry["request"]["headers"].back()["value"],
              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdok");
}

TEST(Har, WebSocketSummaryGoesUnderTlsgate) {
    auto flow = get_flow();
    flow.exchange.status = 101;
    flow.exchange.websocket = inspect::WebSocketSummary{};
    flow.exchange.websocket->client_messages = 2;
    flow.exchange.websocket->client_opcodes = {{1, 1}, {8, 1}};
    flow.exchange.websocket->close_code = 1000;
    const Json entry = single_entry(flow);
    expect_valid_entry(entry);
    const Json& websocket = entry["_tlsgate"]["websocket"];
    EXPECT_EQ(websocket["client_messages"], 2);
    EXPECT_EQ(websocket["client_opcodes"], (Json{{"1", 1}, {"8", 1}}));
    EXPECT_EQ(websocket["close_code"], 1000);
}

TEST(Har, StartedDateTimeBeforeTheEpochStillFormats) {
    auto flow = get_flow();
    flow.exchange.request_start = inspect::Clock::time_point{} - 1500ms;
    flow.exchange.response_start.reset();
    flow.exchange.end = flow.exchange.request_start;
    EXPECT_EQ(single_entry(flow)["startedDateTime"], "1969-12-31T23:59:58.500Z");
}

}  // namespace
}  // namespace tlsgate::record
