// Fuzz target for the record stage's exporters: the flow JSON line reader and writer, the HAR
// exporter and the pcap synthesizer. Beyond "no crash, no UB, no exception" it checks what their
// callers rely on:
//  - a JSON line that flow_from_json accepts is written and read back to a fixed point;
//  - any FlowRecord, whatever bytes it holds, is written as a line flow_from_json accepts and
//    as a HAR entry that dumps (strictly, without the replacing error handler);
//  - a synthesized capture frames every packet, stays under the IP size limits and carries the
//    stream's bytes in order with consecutive sequence numbers, however the stream is cut.
//
// The whole input is tried as a JSON line and as an "ip:port" address; split at '\n' it fills
// the fields of a FlowRecord; and it is the client's byte stream of a synthesized TCP flow.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "record/flow_json.hpp"
#include "record/har.hpp"
#include "record/pcap.hpp"

namespace {

namespace record = tlsgate::record;
namespace inspect = tlsgate::inspect;
using Json = nlohmann::json;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "record_flow fuzz: %s\n", what);
        std::abort();
    }
}

std::uint32_t read_le32(std::string_view bytes, std::size_t at) {
    return static_cast<std::uint8_t>(bytes[at]) | static_cast<std::uint8_t>(bytes[at + 1]) << 8 |
           static_cast<std::uint8_t>(bytes[at + 2]) << 16 |
           static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[at + 3])) << 24;
}

std::uint32_t read_be32(std::string_view bytes, std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<std::uint8_t>(bytes[at])) << 24 |
           static_cast<std::uint8_t>(bytes[at + 1]) << 16 |
           static_cast<std::uint8_t>(bytes[at + 2]) << 8 | static_cast<std::uint8_t>(bytes[at + 3]);
}

void check_json_line(std::string_view input) {
    const Json parsed = Json::parse(input.begin(), input.end(), nullptr, false);
    if (parsed.is_discarded()) {
        return;
    }
    const auto first = record::flow_from_json(parsed);
    if (!first) {
        require(!first.error().empty(), "error without a message");
        return;
    }
    const std::string line = record::flow_to_json_line(*first);
    const auto second = record::flow_from_json(Json::parse(line, nullptr, false));
    require(second.ok(), "a line written from an accepted line is rejected");
    require(record::flow_to_json_line(*second) == line, "reading and writing is not stable");
    (void)record::flows_to_har({*first}, "fuzz").dump();
}

void check_endpoint(std::string_view input) {
    const auto endpoint = record::parse_endpoint(input);
    if (!endpoint) {
        return;
    }
    const std::string formatted = record::format_endpoint(*endpoint);
    const auto again = record::parse_endpoint(formatted);
    require(again && *again == *endpoint, "a formatted endpoint does not parse back the same");
}

record::FlowRecord flow_from_fields(std::string_view input) {
    std::vector<std::string> fields;
    while (fields.size() < 18) {
        const auto newline = input.find('\n');
        fields.emplace_back(input.substr(0, newline));
        input = newline == std::string_view::npos ? std::string_view{} : input.substr(newline + 1);
    }
    record::FlowRecord flow;
    flow.client_address = fields[0];
    flow.server_address = fields[1];
    flow.sni = fields[2];
    auto& exchange = flow.exchange;
    exchange.method = fields[3];
    exchange.scheme = fields[4];
    exchange.authority = fields[5];
    exchange.path = fields[6];
    exchange.protocol = fields[7];
    exchange.request_headers = {{fields[8], fields[9]}, {"cookie", fields[10]}};
    exchange.response_headers = {{"set-cookie", fields[11]}, {"location", fields[12]}};
    exchange.request_body.captured = fields[13];
    exchange.request_body.content_type = fields[14];
    exchange.response_body.captured = fields[15];
    exchange.reason = fields[16];
    exchange.error = fields[17];
    exchange.status = fields[16].empty() ? 0 : static_cast<std::uint8_t>(fields[16][0]) * 3;
    exchange.websocket = inspect::WebSocketSummary{};
    exchange.websocket->error = fields[17];
    return flow;
}

void check_flow_record(std::string_view input) {
    const record::FlowRecord flow = flow_from_fields(input);
    (void)record::flows_to_har({flow}, "fuzz").dump();  // strict: throws on invalid UTF-8
    const std::string line = record::flow_to_json_line(flow);
    require(!line.empty() && line.back() == '\n' && line.find('\n') == line.size() - 1,
            "not one line");
    const Json parsed = Json::parse(line, nullptr, false);
    require(!parsed.is_discarded(), "the line is not JSON");
    const auto read = record::flow_from_json(parsed);
    require(read.ok(), "flow_from_json rejects a written line");
}

void check_pcap(std::string_view stream) {
    const bool v6 = !stream.empty() && (stream[0] & 1) != 0;
    record::SynthesizedTcpFlow flow(
        *record::parse_endpoint(v6 ? "[2001:db8::10]:50000" : "192.0.2.10:50000"),
        *record::parse_endpoint(v6 ? "[2001:db8::1]:443" : "203.0.113.5:443"));
    const auto when = inspect::Clock::time_point{};
    std::string capture;
    flow.open(when, capture);
    // Pieces of up to 64 KiB, sized by the stream's own bytes, so segmentation is exercised.
    std::size_t position = 0;
    while (position < stream.size()) {
        const std::size_t piece = std::min<std::size_t>(
            stream.size() - position, 1 + static_cast<std::uint8_t>(stream[position]) * 257);
        flow.data(inspect::Side::client, stream.substr(position, piece), when, capture);
        position += piece;
    }
    flow.close(inspect::Side::client, when, capture);
    flow.close(inspect::Side::server, when, capture);

    std::string payload;
    std::uint32_t next_client_sequence = 0;
    bool saw_syn = false;
    std::size_t at = 0;
    while (at < capture.size()) {
        require(capture.size() - at >= 16, "truncated record header");
        const std::uint32_t length = read_le32(capture, at + 8);
        require(read_le32(capture, at + 12) == length, "snapped packet");
        require(length <= 65535 + 40 && length <= record::kPcapSnapLength, "packet too large");
        at += 16;
        require(capture.size() - at >= length, "truncated packet");
        const std::string_view ip = std::string_view(capture).substr(at, length);
        at += length;
        const bool is_v6 = (static_cast<std::uint8_t>(ip[0]) >> 4) == 6;
        require(is_v6 == v6, "wrong address family");
        const std::string_view tcp = ip.substr(is_v6 ? 40 : 20);
        const bool from_client = static_cast<std::uint8_t>(tcp[0]) == 50000 >> 8 &&
                                 static_cast<std::uint8_t>(tcp[1]) == (50000 & 0xff);
        const std::uint8_t flags = static_cast<std::uint8_t>(tcp[13]);
        const std::string_view segment = tcp.substr(20);
        if (!from_client) {
            continue;
        }
        const std::uint32_t sequence = read_be32(tcp, 4);
        if (flags & 0x02) {
            require(!saw_syn, "two SYNs");
            saw_syn = true;
            next_client_sequence = sequence + 1;
            continue;
        }
        require(sequence == next_client_sequence, "client sequence numbers are not consecutive");
        require(segment.size() <= record::kSegmentPayloadBytes, "segment too large");
        payload.append(segment);
        next_client_sequence += static_cast<std::uint32_t>(segment.size()) + (flags & 0x01);
    }
    require(payload == stream, "the capture does not carry the stream");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_json_line(input);
    check_endpoint(input);
    check_flow_record(input);
    check_pcap(input);
    return 0;
}
