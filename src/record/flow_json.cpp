#include "record/flow_json.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <string_view>

#include "common/text.hpp"
#include "record/pcap.hpp"

namespace tlsgate::record {
namespace {

using Json = nlohmann::json;
// Zeek's field order (ts, uid, id.*) makes lines readable; a sorted object would start with
// "alpn".
using OrderedJson = nlohmann::ordered_json;
using std::chrono::microseconds;

std::int64_t epoch_micros(inspect::Clock::time_point when) {
    return std::chrono::floor<microseconds>(when.time_since_epoch()).count();
}

double seconds(std::int64_t micros) {
    return static_cast<double>(micros) / 1e6;
}

const std::string* find_header(const std::vector<inspect::HeaderField>& headers,
                               std::string_view name) {
    for (const auto& header : headers) {
        if (equals_ignoring_case(header.name, name)) {
            return &header.value;
        }
    }
    return nullptr;
}

// "text/html; charset=UTF-8" -> "text/html", as Zeek's mime type sets hold bare types.
std::string bare_mime_type(std::string_view content_type) {
    content_type = content_type.substr(0, content_type.find(';'));
    while (!content_type.empty() && (content_type.back() == ' ' || content_type.back() == '\t')) {
        content_type.remove_suffix(1);
    }
    while (!content_type.empty() && (content_type.front() == ' ' || content_type.front() == '\t')) {
        content_type.remove_prefix(1);
    }
    std::string type(content_type);
    std::transform(type.begin(), type.end(), type.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; });
    return type;
}

template <typename Object>
void put_if(Object& object, const char* key, const std::string& value) {
    if (!value.empty()) {
        object[key] = value;
    }
}

void put_endpoint(OrderedJson& line, const std::string& address, const char* host_key,
                  const char* port_key) {
    if (const auto endpoint = parse_endpoint(address)) {
        line[host_key] = endpoint->address.to_string();
        line[port_key] = endpoint->port;
    } else {
        // Not "ip:port" (an older record, a test): keep what there is rather than nothing.
        line[host_key] = address;
    }
}

OrderedJson header_pairs(const std::vector<inspect::HeaderField>& headers) {
    OrderedJson pairs = OrderedJson::array();
    for (const auto& header : headers) {
        pairs.push_back(OrderedJson::array({header.name, header.value}));
    }
    return pairs;
}

Json opcode_counts(const std::map<int, std::uint64_t>& opcodes) {
    Json counts = Json::object();
    for (const auto& [opcode, count] : opcodes) {
        counts[std::to_string(opcode)] = count;
    }
    return counts;
}

// Reads typed fields out of a parsed line and keeps the first problem. Every accessor checks
// the type first, so nothing here throws.
class FieldReader {
public:
    explicit FieldReader(const Json& object) : object_(object) {}

    const std::string& error() const { return error_; }
    bool failed() const { return !error_.empty(); }

    const Json* find(const char* key, bool required) {
        const auto it = object_.find(key);
        if (it == object_.end() || it->is_null()) {
            if (required) {
                fail(key, "missing");
            }
            return nullptr;
        }
        return &*it;
    }

    void string(const char* key, std::string& out, bool required = false) {
        if (const Json* value = find(key, required)) {
            if (!value->is_string()) {
                fail(key, "not a string");
                return;
            }
            out = value->get_ref<const std::string&>();
        }
    }

    std::optional<std::uint64_t> unsigned_number(const char* key, std::uint64_t max,
                                                 bool required = false) {
        const Json* value = find(key, required);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_number_unsigned() && !(value->is_number_integer() && *value >= 0)) {
            fail(key, "not a non-negative integer");
            return std::nullopt;
        }
        const auto number = value->get<std::uint64_t>();
        if (number > max) {
            fail(key, "out of range");
            return std::nullopt;
        }
        return number;
    }

    // Seconds as written by seconds(), back in whole microseconds. Whole seconds and fraction
    // are converted apart: multiplying the whole double by 1e6 can land a microsecond off.
    // Bounded to 2^32 s (the year 2106), below which a double still resolves a microsecond.
    std::optional<std::int64_t> micros(const char* key, bool required = false,
                                       bool allow_negative = false) {
        const Json* value = find(key, required);
        if (value == nullptr) {
            return std::nullopt;
        }
        if (!value->is_number()) {
            fail(key, "not a number");
            return std::nullopt;
        }
        const double number = value->get<double>();
        if (!std::isfinite(number) || std::fabs(number) >= 4294967296.0 ||
            (!allow_negative && number < 0)) {
            fail(key, "out of range");
            return std::nullopt;
        }
        const double whole = std::floor(number);
        return static_cast<std::int64_t>(whole) * 1000000 + std::llround((number - whole) * 1e6);
    }

    void headers(const char* key, std::vector<inspect::HeaderField>& out) {
        const Json* value = find(key, false);
        if (value == nullptr) {
            return;
        }
        if (!value->is_array()) {
            fail(key, "not an array");
            return;
        }
        for (const auto& pair : *value) {
            if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() ||
                !pair[1].is_string()) {
                fail(key, "not an array of [name, value] strings");
                return;
            }
            out.push_back({pair[0].get<std::string>(), pair[1].get<std::string>()});
        }
    }

    void fail(const char* key, const char* why) {
        if (error_.empty()) {
            error_ = std::string("flow line: ") + key + " " + why;
        }
    }

private:
    const Json& object_;
    std::string error_;
};

std::optional<std::map<int, std::uint64_t>> read_opcodes(const Json& counts) {
    if (!counts.is_object()) {
        return std::nullopt;
    }
    std::map<int, std::uint64_t> opcodes;
    for (const auto& [key, count] : counts.items()) {
        int opcode = -1;
        const auto [end, error] = std::from_chars(key.data(), key.data() + key.size(), opcode);
        if (error != std::errc{} || end != key.data() + key.size() || opcode < 0 || opcode > 15 ||
            !count.is_number_unsigned()) {
            return std::nullopt;
        }
        opcodes[opcode] = count.get<std::uint64_t>();
    }
    return opcodes;
}

std::optional<inspect::WebSocketSummary> read_websocket(const Json& object) {
    if (!object.is_object()) {
        return std::nullopt;
    }
    FieldReader fields(object);
    inspect::WebSocketSummary websocket;
    constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
    websocket.client_messages = fields.unsigned_number("client_messages", kMax).value_or(0);
    websocket.server_messages = fields.unsigned_number("server_messages", kMax).value_or(0);
    websocket.client_payload_bytes =
        fields.unsigned_number("client_payload_bytes", kMax).value_or(0);
    websocket.server_payload_bytes =
        fields.unsigned_number("server_payload_bytes", kMax).value_or(0);
    if (const auto close_code = fields.unsigned_number("close_code", 65535)) {
        websocket.close_code = static_cast<int>(*close_code);
    }
    fields.string("error", websocket.error);
    for (auto [key, opcodes] : {std::pair{"client_opcodes", &websocket.client_opcodes},
                                std::pair{"server_opcodes", &websocket.server_opcodes}}) {
        if (const Json* counts = fields.find(key, false)) {
            auto parsed = read_opcodes(*counts);
            if (!parsed) {
                return std::nullopt;
            }
            *opcodes = std::move(*parsed);
        }
    }
    if (fields.failed()) {
        return std::nullopt;
    }
    return websocket;
}

std::string read_address(FieldReader& fields, const char* host_key, const char* port_key) {
    std::string host;
    fields.string(host_key, host, true);
    const auto port = fields.unsigned_number(port_key, 65535);
    if (!port) {
        return host;
    }
    if (const auto address = IpAddress::parse(host)) {
        return format_endpoint({*address, static_cast<std::uint16_t>(*port)});
    }
    return host + ":" + std::to_string(*port);
}

}  // namespace

Json websocket_to_json(const inspect::WebSocketSummary& websocket) {
    Json object = {
        {"client_messages", websocket.client_messages},
        {"server_messages", websocket.server_messages},
        {"client_payload_bytes", websocket.client_payload_bytes},
        {"server_payload_bytes", websocket.server_payload_bytes},
        {"client_opcodes", opcode_counts(websocket.client_opcodes)},
        {"server_opcodes", opcode_counts(websocket.server_opcodes)},
    };
    if (websocket.close_code) {
        object["close_code"] = *websocket.close_code;
    }
    put_if(object, "error", websocket.error);
    return object;
}

std::string flow_to_json_line(const FlowRecord& flow) {
    const inspect::HttpExchange& exchange = flow.exchange;
    const std::int64_t start = epoch_micros(exchange.request_start);
    OrderedJson line;
    line["ts"] = seconds(start);
    line["uid"] = "C" + std::to_string(flow.connection_id);
    put_endpoint(line, flow.client_address, "id.orig_h", "id.orig_p");
    put_endpoint(line, flow.server_address, "id.resp_h", "id.resp_p");
    line["trans_depth"] = exchange.sequence + 1;
    put_if(line, "method", exchange.method);
    put_if(line, "host", exchange.authority);
    put_if(line, "uri", exchange.path);
    if (const auto* referrer = find_header(exchange.request_headers, "referer")) {
        line["referrer"] = *referrer;
    }
    std::string_view version = exchange.protocol;
    if (version.starts_with("HTTP/")) {
        version.remove_prefix(5);  // Zeek writes "1.1"
    }
    if (!version.empty()) {
        line["version"] = std::string(version);
    }
    if (const auto* user_agent = find_header(exchange.request_headers, "user-agent")) {
        line["user_agent"] = *user_agent;
    }
    if (const auto* origin = find_header(exchange.request_headers, "origin")) {
        line["origin"] = *origin;
    }
    line["request_body_len"] = exchange.request_body.size;
    line["response_body_len"] = exchange.response_body.size;
    if (exchange.status != 0) {
        line["status_code"] = exchange.status;
    }
    put_if(line, "status_msg", exchange.reason);
    if (!exchange.informational.empty()) {
        line["info_code"] = exchange.informational.back();
    }
    line["tags"] = OrderedJson::array();
    if (const auto type = bare_mime_type(exchange.request_body.content_type); !type.empty()) {
        line["orig_mime_types"] = OrderedJson::array({type});
    }
    if (const auto type = bare_mime_type(exchange.response_body.content_type); !type.empty()) {
        line["resp_mime_types"] = OrderedJson::array({type});
    }
    put_if(line, "scheme", exchange.scheme);
    put_if(line, "sni", flow.sni);
    if (exchange.stream_id != 0) {
        line["stream_id"] = exchange.stream_id;
    }
    put_if(line, "client_tls_version", flow.client_tls_version);
    put_if(line, "upstream_tls_version", flow.upstream_tls_version);
    put_if(line, "alpn", flow.alpn);
    put_if(line, "request_sha256", exchange.request_body.sha256);
    put_if(line, "response_sha256", exchange.response_body.sha256);
    line["request_headers"] = header_pairs(exchange.request_headers);
    line["response_headers"] = header_pairs(exchange.response_headers);
    line["duration"] = seconds(std::max<std::int64_t>(0, epoch_micros(exchange.end) - start));
    if (exchange.response_start) {
        line["response_wait"] =
            seconds(std::max<std::int64_t>(0, epoch_micros(*exchange.response_start) - start));
    }
    put_if(line, "error", exchange.error);
    if (exchange.websocket) {
        line["websocket"] = websocket_to_json(*exchange.websocket);
    }
    // Paths and header values come from the network: replace invalid UTF-8 instead of throwing.
    return line.dump(-1, ' ', false, OrderedJson::error_handler_t::replace) + "\n";
}

Result<FlowRecord> flow_from_json(const Json& line) {
    if (!line.is_object()) {
        return make_error("flow line: not a JSON object");
    }
    FieldReader fields(line);
    FlowRecord flow;
    inspect::HttpExchange& exchange = flow.exchange;

    std::string uid;
    fields.string("uid", uid, true);
    if (!fields.failed()) {
        const char* digits_end = uid.data() + uid.size();
        const bool parsed = uid.size() > 1 && uid.front() == 'C' && [&] {
            const auto [end, error] =
                std::from_chars(uid.data() + 1, digits_end, flow.connection_id);
            return error == std::errc{} && end == digits_end;
        }();
        if (!parsed) {
            fields.fail("uid", "not C<connection id>");
        }
    }
    const auto start = fields.micros("ts", true, true);
    flow.client_address = read_address(fields, "id.orig_h", "id.orig_p");
    flow.server_address = read_address(fields, "id.resp_h", "id.resp_p");
    const auto depth =
        fields.unsigned_number("trans_depth", std::numeric_limits<std::uint64_t>::max(), true);
    if (depth && *depth == 0) {
        fields.fail("trans_depth", "is 0 (it counts from 1)");
    }
    if (fields.failed()) {
        return make_error(fields.error());
    }
    exchange.sequence = *depth - 1;
    exchange.request_start = inspect::Clock::time_point(microseconds(*start));
    exchange.end = exchange.request_start + microseconds(fields.micros("duration").value_or(0));
    if (const auto wait = fields.micros("response_wait")) {
        exchange.response_start = exchange.request_start + microseconds(*wait);
    }

    fields.string("method", exchange.method);
    fields.string("host", exchange.authority);
    fields.string("uri", exchange.path);
    fields.string("scheme", exchange.scheme);
    std::string version;
    fields.string("version", version);
    if (!version.empty()) {
        exchange.protocol = "HTTP/" + version;
    }
    constexpr auto kMaxSize = std::numeric_limits<std::uint64_t>::max();
    exchange.request_body.size = fields.unsigned_number("request_body_len", kMaxSize).value_or(0);
    exchange.response_body.size = fields.unsigned_number("response_body_len", kMaxSize).value_or(0);
    exchange.status = static_cast<int>(fields.unsigned_number("status_code", 999).value_or(0));
    fields.string("status_msg", exchange.reason);
    if (const auto info_code = fields.unsigned_number("info_code", 199)) {
        exchange.informational.push_back(static_cast<int>(*info_code));
    }
    fields.string("sni", flow.sni);
    exchange.stream_id = static_cast<std::uint32_t>(
        fields.unsigned_number("stream_id", std::numeric_limits<std::uint32_t>::max()).value_or(0));
    fields.string("client_tls_version", flow.client_tls_version);
    fields.string("upstream_tls_version", flow.upstream_tls_version);
    fields.string("alpn", flow.alpn);
    fields.string("request_sha256", exchange.request_body.sha256);
    fields.string("response_sha256", exchange.response_body.sha256);
    fields.headers("request_headers", exchange.request_headers);
    fields.headers("response_headers", exchange.response_headers);
    fields.string("error", exchange.error);
    if (const Json* websocket = fields.find("websocket", false)) {
        exchange.websocket = read_websocket(*websocket);
        if (!exchange.websocket) {
            fields.fail("websocket", "is not a websocket summary");
        }
    }
    if (fields.failed()) {
        return make_error(fields.error());
    }
    // The line keeps the headers, not the summaries' copies of them.
    for (auto [headers, body] : {std::pair{&exchange.request_headers, &exchange.request_body},
                                 std::pair{&exchange.response_headers, &exchange.response_body}}) {
        if (const auto* type = find_header(*headers, "content-type")) {
            body->content_type = *type;
        }
        if (const auto* encoding = find_header(*headers, "content-encoding")) {
            body->content_encoding = *encoding;
        }
    }
    return flow;
}

}  // namespace tlsgate::record
