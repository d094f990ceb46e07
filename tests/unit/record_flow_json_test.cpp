#include "record/flow_json.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace tlsgate::record {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

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
    exchange.end = kStart + 35ms + 1us;
    exchange.method = "POST";
    exchange.scheme = "https";
    exchange.authority = "example.test";
    exchange.path = "/upload?x=1";
    exchange.status = 200;
    exchange.reason = "OK";
    exchange.informational = {100};
    exchange.request_headers = {{"Host", "example.test"},
                                {"User-Agent", "curl/7.88.1"},
                                {"Referer", "https://example.test/"},
                                {"Origin", "https://example.test"},
                                {"Content-Type", "application/json; charset=utf-8"}};
    exchange.response_headers = {{"Content-Type", "Text/HTML; charset=UTF-8"},
                                 {"Content-Encoding", "gzip"}};
    exchange.request_body.size = 17;
    exchange.request_body.sha256 = "aa";
    exchange.request_body.content_type = "application/json; charset=utf-8";
    exchange.response_body.size = 1256;
    exchange.response_body.sha256 = "bb";
    exchange.response_body.content_type = "Text/HTML; charset=UTF-8";
    exchange.response_body.content_encoding = "gzip";
    return flow;
}

Json parse_line(const std::string& line) {
    EXPECT_TRUE(line.ends_with("\n"));
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "more than one line";
    Json parsed = Json::parse(line, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << line;
    return parsed;
}

TEST(FlowJson, UsesZeekHttpLogNames) {
    const std::string text = flow_to_json_line(get_flow());
    EXPECT_TRUE(text.starts_with("{\"ts\":1709546400.123456,\"uid\":\"C42\",")) << text;
    const Json line = parse_line(text);
    EXPECT_DOUBLE_EQ(line["ts"].get<double>(), 1709546400.123456);
    EXPECT_EQ(line["uid"], "C42");
    EXPECT_EQ(line["id.orig_h"], "192.0.2.10");
    EXPECT_EQ(line["id.orig_p"], 53422);
    EXPECT_EQ(line["id.resp_h"], "203.0.113.5");
    EXPECT_EQ(line["id.resp_p"], 443);
    EXPECT_EQ(line["trans_depth"], 3);
    EXPECT_EQ(line["method"], "POST");
    EXPECT_EQ(line["host"], "example.test");
    EXPECT_EQ(line["uri"], "/upload?x=1");
    EXPECT_EQ(line["referrer"], "https://example.test/");
    EXPECT_EQ(line["version"], "1.1");
    EXPECT_EQ(line["user_agent"], "curl/7.88.1");
    EXPECT_EQ(line["origin"], "https://example.test");
    EXPECT_EQ(line["request_body_len"], 17);
    EXPECT_EQ(line["response_body_len"], 1256);
    EXPECT_EQ(line["status_code"], 200);
    EXPECT_EQ(line["status_msg"], "OK");
    EXPECT_EQ(line["info_code"], 100);
    EXPECT_EQ(line["tags"], Json::array());
    EXPECT_EQ(line["orig_mime_types"], Json::array({"application/json"}));
    EXPECT_EQ(line["resp_mime_types"], Json::array({"text/html"}));
    // tlsgate's own fields.
    EXPECT_EQ(line["scheme"], "https");
    EXPECT_EQ(line["sni"], "example.test");
    EXPECT_EQ(line["client_tls_version"], "TLSv1.3");
    EXPECT_EQ(line["upstream_tls_version"], "TLSv1.2");
    EXPECT_EQ(line["alpn"], "http/1.1");
    EXPECT_EQ(line["request_sha256"], "aa");
    EXPECT_EQ(line["response_sha256"], "bb");
    EXPECT_EQ(line["request_headers"][1], Json::array({"User-Agent", "curl/7.88.1"}));
    EXPECT_EQ(line["response_headers"].size(), 2u);
    EXPECT_DOUBLE_EQ(line["duration"].get<double>(), 0.035001);
    EXPECT_DOUBLE_EQ(line["response_wait"].get<double>(), 0.020);
    EXPECT_FALSE(line.contains("stream_id"));
    EXPECT_FALSE(line.contains("error"));
    EXPECT_FALSE(line.contains("websocket"));
}

TEST(FlowJson, LeavesOutWhatIsMissing) {
    FlowRecord flow = get_flow();
    auto& exchange = flow.exchange;
    exchange.status = 0;
    exchange.reason.clear();
    exchange.informational.clear();
    exchange.response_start.reset();
    exchange.response_headers.clear();
    exchange.response_body = {};
    exchange.request_headers = {{"Host", "example.test"}};
    exchange.request_body = {};
    exchange.error = "connection closed before the response";
    flow.client_tls_version.clear();
    flow.sni.clear();
    const Json line = parse_line(flow_to_json_line(flow));
    for (const char* absent : {"status_code", "status_msg", "info_code", "referrer", "user_agent",
                               "origin", "orig_mime_types", "resp_mime_types", "response_wait",
                               "sni", "client_tls_version", "request_sha256", "response_sha256"}) {
        EXPECT_FALSE(line.contains(absent)) << absent;
    }
    EXPECT_EQ(line["request_body_len"], 0);
    EXPECT_EQ(line["response_body_len"], 0);
    EXPECT_EQ(line["response_headers"], Json::array());
    EXPECT_EQ(line["error"], "connection closed before the response");
}

TEST(FlowJson, Http2AndWebSocket) {
    FlowRecord flow = get_flow();
    flow.server_address = "[2001:db8::1]:443";
    flow.client_address = "[2001:db8::10]:50000";
    flow.alpn = "h2";
    auto& exchange = flow.exchange;
    exchange.protocol = "HTTP/2";
    exchange.stream_id = 5;
    exchange.websocket = inspect::WebSocketSummary{};
    exchange.websocket->client_messages = 3;
    exchange.websocket->server_messages = 1;
    exchange.websocket->client_payload_bytes = 300;
    exchange.websocket->server_payload_bytes = 10;
    exchange.websocket->client_opcodes = {{1, 2}, {8, 1}};
    exchange.websocket->server_opcodes = {{2, 1}};
    exchange.websocket->close_code = 1001;
    exchange.websocket->error = "reserved opcode";
    const Json line = parse_line(flow_to_json_line(flow));
    EXPECT_EQ(line["id.orig_h"], "2001:db8::10");
    EXPECT_EQ(line["id.resp_h"], "2001:db8::1");
    EXPECT_EQ(line["id.resp_p"], 443);
    EXPECT_EQ(line["version"], "2");
    EXPECT_EQ(line["stream_id"], 5);
    EXPECT_EQ(line["websocket"], (Json{{"client_messages", 3},
                                       {"server_messages", 1},
                                       {"client_payload_bytes", 300},
                                       {"server_payload_bytes", 10},
                                       {"client_opcodes", {{"1", 2}, {"8", 1}}},
                                       {"server_opcodes", {{"2", 1}}},
                                       {"close_code", 1001},
                                       {"error", "reserved opcode"}}));
}

TEST(FlowJson, AddressesThatAreNotIpPortAreKeptAsTheyAre) {
    FlowRecord flow = get_flow();
    flow.server_address = "upstream.test";
    const Json line = parse_line(flow_to_json_line(flow));
    EXPECT_EQ(line["id.resp_h"], "upstream.test");
    EXPECT_FALSE(line.contains("id.resp_p"));
}

TEST(FlowJson, InvalidUtf8IsReplacedNotThrown) {
    FlowRecord flow = get_flow();
    flow.exchange.path = "/caf\xe9";
    flow.exchange.request_headers.push_back({"X-\xff", "\xc0"});
    std::string text;
    ASSERT_NO_THROW(text = flow_to_json_line(flow));
    const Json line = parse_line(text);
    EXPECT_EQ(line["uri"], "/caf\xef\xbf\xbd");
}

TEST(FlowJson, ReadsItsOwnLinesBack) {
    for (FlowRecord flow : {get_flow(), [] {
                                FlowRecord h2 = get_flow();
                                h2.client_address = "[2001:db8::10]:50000";
                                h2.exchange.protocol = "HTTP/2";
                                h2.exchange.stream_id = 7;
                                h2.exchange.response_start.reset();
                                h2.exchange.websocket = inspect::WebSocketSummary{};
                                h2.exchange.websocket->server_opcodes = {{9, 4}};
                                h2.exchange.error = "stream reset: CANCEL";
                                return h2;
                            }()}) {
        const std::string text = flow_to_json_line(flow);
        const auto read = flow_from_json(parse_line(text));
        ASSERT_TRUE(read) << read.error();
        EXPECT_EQ(flow_to_json_line(*read), text);
        EXPECT_EQ(read->connection_id, flow.connection_id);
        EXPECT_EQ(read->client_address, flow.client_address);
        EXPECT_EQ(read->server_address, flow.server_address);
        const auto& original = flow.exchange;
        const auto& exchange = read->exchange;
        EXPECT_EQ(exchange.request_start, original.request_start);
        EXPECT_EQ(exchange.response_start, original.response_start);
        EXPECT_EQ(exchange.end, original.end);
        EXPECT_EQ(exchange.protocol, original.protocol);
        EXPECT_EQ(exchange.sequence, original.sequence);
        EXPECT_EQ(exchange.stream_id, original.stream_id);
        EXPECT_EQ(exchange.informational, original.informational);
        EXPECT_EQ(exchange.response_body.content_type, original.response_body.content_type);
        EXPECT_EQ(exchange.response_body.content_encoding, original.response_body.content_encoding);
        EXPECT_EQ(exchange.request_headers.size(), original.request_headers.size());
        EXPECT_EQ(exchange.websocket.has_value(), original.websocket.has_value());
        EXPECT_EQ(exchange.error, original.error);
    }
}

TEST(FlowJson, TimestampsKeepTheirMicroseconds) {
    for (const std::int64_t micros : {0ll, 1ll, 999999ll, 1709546400123456ll, 1709546400999999ll,
                                      2147483647000001ll, 4294967295999999ll}) {
        FlowRecord flow = get_flow();
        flow.exchange.request_start = inspect::Clock::time_point(std::chrono::microseconds(micros));
        flow.exchange.response_start = flow.exchange.request_start + 999999us;
        flow.exchange.end = flow.exchange.request_start + 123456789us;
        const auto read = flow_from_json(parse_line(flow_to_json_line(flow)));
        ASSERT_TRUE(read) << read.error();
        EXPECT_EQ(read->exchange.request_start, flow.exchange.request_start) << micros;
        EXPECT_EQ(read->exchange.response_start, flow.exchange.response_start) << micros;
        EXPECT_EQ(read->exchange.end, flow.exchange.end) << micros;
    }
}

TEST(FlowJson, ReadingRejectsMalformedLines) {
    const Json good = parse_line(flow_to_json_line(get_flow()));
    ASSERT_TRUE(flow_from_json(good));
    EXPECT_FALSE(flow_from_json(Json::array()));
    EXPECT_FALSE(flow_from_json(Json("text")));
    const auto with = [&good](const char* key, Json value) {
        Json changed = good;
        if (value.is_discarded()) {
            changed.erase(key);
        } else {
            changed[key] = std::move(value);
        }
        return flow_from_json(changed);
    };
    const Json removed(Json::value_t::discarded);
    for (const char* required : {"ts", "uid", "id.orig_h", "id.resp_h", "trans_depth"}) {
        const auto result = with(required, removed);
        ASSERT_FALSE(result) << required;
        EXPECT_NE(result.error().find(required), std::string::npos) << result.error();
    }
    EXPECT_FALSE(with("uid", "42"));
    EXPECT_FALSE(with("uid", "C"));
    EXPECT_FALSE(with("uid", "C4x"));
    EXPECT_FALSE(with("uid", ""));
    EXPECT_FALSE(with("ts", "1709546400"));
    EXPECT_FALSE(with("ts", 1e300));
    EXPECT_FALSE(with("ts", 4294967296.0));  // 2106: a double no longer resolves microseconds
    EXPECT_FALSE(with("trans_depth", 0));
    EXPECT_FALSE(with("trans_depth", -1));
    EXPECT_FALSE(with("id.orig_p", 65536));
    EXPECT_FALSE(with("id.orig_p", "443"));
    EXPECT_FALSE(with("duration", -1.0));
    EXPECT_FALSE(with("status_code", 1000));
    EXPECT_FALSE(with("method", 1));
    EXPECT_FALSE(with("request_headers", Json::array({Json::array({"a"})})));
    EXPECT_FALSE(with("request_headers", Json::object()));
    EXPECT_FALSE(with("websocket", Json{{"client_opcodes", {{"x", 1}}}}));
    EXPECT_FALSE(with("websocket", Json{{"client_messages", -3}}));
    // Unknown fields and nulls are ignored, as a reader of Zeek logs does.
    EXPECT_TRUE(with("something_new", 1));
    EXPECT_TRUE(with("status_code", nullptr));
}

}  // namespace
}  // namespace tlsgate::record
