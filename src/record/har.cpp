#include "record/har.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>

#include "common/text.hpp"
#include "record/flow_json.hpp"
#include "record/pcap.hpp"

namespace tlsgate::record {
namespace {

using Json = nlohmann::json;
using std::chrono::microseconds;

constexpr std::string_view kRedacted = "<redacted>";

// HAR's startedDateTime: ISO 8601 with milliseconds, UTC.
std::string iso8601_millis(inspect::Clock::time_point when) {
    const auto millis =
        std::chrono::floor<std::chrono::milliseconds>(when.time_since_epoch()).count();
    const std::time_t time = static_cast<std::time_t>(millis / 1000 - (millis % 1000 < 0));
    const int fraction = static_cast<int>((millis % 1000 + 1000) % 1000);
    std::tm utc{};
    gmtime_r(&time, &utc);
    char buffer[64];
    const std::size_t length = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
    const char suffix[] = {'.', static_cast<char>('0' + fraction / 100),
                           static_cast<char>('0' + fraction / 10 % 10),
                           static_cast<char>('0' + fraction % 10), 'Z'};
    return std::string(buffer, length) + std::string(suffix, sizeof suffix);
}

double milliseconds_between(inspect::Clock::time_point from, inspect::Clock::time_point to) {
    const auto micros = std::chrono::duration_cast<microseconds>(to - from).count();
    return micros > 0 ? static_cast<double>(micros) / 1000.0 : 0.0;
}

// Length of the well-formed UTF-8 sequence at the start of `text` (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_sequence_length(std::string_view text) {
    const auto byte = [&text](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
    const auto continuation = [&](std::size_t i) {
        return i < text.size() && (byte(i) & 0xc0) == 0x80;
    };
    const std::uint8_t lead = byte(0);
    if (lead < 0x80) {
        return 1;
    }
    if (lead >= 0xc2 && lead <= 0xdf) {
        return continuation(1) ? 2 : 0;
    }
    if (lead >= 0xe0 && lead <= 0xef) {
        if (!continuation(1) || !continuation(2)) {
            return 0;
        }
        if ((lead == 0xe0 && byte(1) < 0xa0) || (lead == 0xed && byte(1) >= 0xa0)) {
            return 0;  // overlong, or a surrogate
        }
        return 3;
    }
    if (lead >= 0xf0 && lead <= 0xf4) {
        if (!continuation(1) || !continuation(2) || !continuation(3)) {
            return 0;
        }
        if ((lead == 0xf0 && byte(1) < 0x90) || (lead == 0xf4 && byte(1) >= 0x90)) {
            return 0;  // overlong, or above U+10FFFF
        }
        return 4;
    }
    return 0;
}

bool is_valid_utf8(std::string_view text) {
    while (!text.empty()) {
        const std::size_t length = utf8_sequence_length(text);
        if (length == 0) {
            return false;
        }
        text.remove_prefix(length);
    }
    return true;
}

// Network strings in a json value must be valid UTF-8, or dump() throws in the caller's hands.
std::string valid_utf8(std::string_view text) {
    if (is_valid_utf8(text)) {
        return std::string(text);
    }
    std::string clean;
    clean.reserve(text.size() + 8);
    while (!text.empty()) {
        const std::size_t length = utf8_sequence_length(text);
        if (length == 0) {
            clean += "\xef\xbf\xbd";  // U+FFFD
            text.remove_prefix(1);
        } else {
            clean.append(text.substr(0, length));
            text.remove_prefix(length);
        }
    }
    return clean;
}

std::string base64(std::string_view bytes) {
    std::string encoded(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int length =
        EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                        reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
    encoded.resize(static_cast<std::size_t>(std::max(length, 0)));
    return encoded;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() &&
           equals_ignoring_case(text.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

std::optional<std::string_view> find_header(const std::vector<inspect::HeaderField>& headers,
                                            std::string_view name) {
    for (const auto& header : headers) {
        if (equals_ignoring_case(header.name, name)) {
            return header.value;
        }
    }
    return std::nullopt;
}

// application/x-www-form-urlencoded decoding ('+' is a space); a '%' not followed by two hex
// digits stays as it is. When the result is not UTF-8 the raw text is kept: HAR values are text.
std::string form_decode(std::string_view text) {
    std::string decoded;
    decoded.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '+') {
            decoded.push_back(' ');
        } else if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
                   hex_value(text[i + 2]) >= 0) {
            decoded.push_back(
                static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
            i += 2;
        } else {
            decoded.push_back(text[i]);
        }
    }
    return is_valid_utf8(decoded) ? decoded : valid_utf8(text);
}

// "a=1&b=&c" -> [{a,1},{b,""},{c,""}]; empty pieces ("a=1&&b=2") are skipped.
Json form_parameters(std::string_view text) {
    Json parameters = Json::array();
    while (!text.empty()) {
        const auto ampersand = text.find('&');
        const std::string_view pair = text.substr(0, ampersand);
        text =
            ampersand == std::string_view::npos ? std::string_view{} : text.substr(ampersand + 1);
        if (pair.empty()) {
            continue;
        }
        const auto equals = pair.find('=');
        parameters.push_back(
            {{"name", form_decode(pair.substr(0, equals))},
             {"value",
              equals == std::string_view::npos ? "" : form_decode(pair.substr(equals + 1))}});
    }
    return parameters;
}

Json query_string(std::string_view path) {
    const auto question = path.find('?');
    if (question == std::string_view::npos) {
        return Json::array();
    }
    std::string_view query = path.substr(question + 1);
    return form_parameters(query.substr(0, query.find('#')));
}

// Cookie: "a=1; b=2". A pair without '=' is a value with an empty name, as browsers read it
// (RFC 6265bis section 5.6.3).
void add_request_cookies(std::string_view header, Json& cookies) {
    while (!header.empty()) {
        const auto semicolon = header.find(';');
        const std::string_view pair = trim(header.substr(0, semicolon));
        header =
            semicolon == std::string_view::npos ? std::string_view{} : header.substr(semicolon + 1);
        if (pair.empty()) {
            continue;
        }
        const auto equals = pair.find('=');
        const std::string_view name =
            equals == std::string_view::npos ? std::string_view{} : trim(pair.substr(0, equals));
        const std::string_view value =
            equals == std::string_view::npos ? pair : trim(pair.substr(equals + 1));
        cookies.push_back({{"name", valid_utf8(name)}, {"value", valid_utf8(value)}});
    }
}

// Set-Cookie: "id=a3fWa; Path=/; Domain=example.test; Secure; HttpOnly". Expires is left out:
// HAR wants ISO 8601 and the header has an HTTP date.
std::optional<Json> response_cookie(std::string_view header) {
    const auto semicolon = header.find(';');
    const std::string_view pair = trim(header.substr(0, semicolon));
    const auto equals = pair.find('=');
    if (pair.empty() || equals == std::string_view::npos) {
        return std::nullopt;
    }
    Json cookie = {{"name", valid_utf8(trim(pair.substr(0, equals)))},
                   {"value", valid_utf8(trim(pair.substr(equals + 1)))}};
    std::string_view attributes =
        semicolon == std::string_view::npos ? std::string_view{} : header.substr(semicolon + 1);
    while (!attributes.empty()) {
        const auto next = attributes.find(';');
        const std::string_view attribute = trim(attributes.substr(0, next));
        attributes =
            next == std::string_view::npos ? std::string_view{} : attributes.substr(next + 1);
        const auto attribute_equals = attribute.find('=');
        const std::string_view name = trim(attribute.substr(0, attribute_equals));
        const std::string_view value = attribute_equals == std::string_view::npos
                                           ? std::string_view{}
                                           : trim(attribute.substr(attribute_equals + 1));
        if (equals_ignoring_case(name, "path")) {
            cookie["path"] = valid_utf8(value);
        } else if (equals_ignoring_case(name, "domain")) {
            cookie["domain"] = valid_utf8(value);
        } else if (equals_ignoring_case(name, "secure")) {
            cookie["secure"] = true;
        } else if (equals_ignoring_case(name, "httponly")) {
            cookie["httpOnly"] = true;
        }
    }
    return cookie;
}

Json request_cookies(const std::vector<inspect::HeaderField>& headers) {
    Json cookies = Json::array();
    // HTTP/2 may split the Cookie header into one field per cookie (RFC 9113 section 8.2.3).
    for (const auto& header : headers) {
        if (equals_ignoring_case(header.name, "cookie") && header.value != kRedacted) {
            add_request_cookies(header.value, cookies);
        }
    }
    return cookies;
}

Json response_cookies(const std::vector<inspect::HeaderField>& headers) {
    Json cookies = Json::array();
    for (const auto& header : headers) {
        if (equals_ignoring_case(header.name, "set-cookie") && header.value != kRedacted) {
            if (auto cookie = response_cookie(header.value)) {
                cookies.push_back(std::move(*cookie));
            }
        }
    }
    return cookies;
}

Json header_list(const std::vector<inspect::HeaderField>& headers) {
    Json list = Json::array();
    for (const auto& header : headers) {
        list.push_back({{"name", valid_utf8(header.name)}, {"value", valid_utf8(header.value)}});
    }
    return list;
}

// What Chrome DevTools writes: "http/2.0" for HTTP/2, the version as sent otherwise.
std::string har_http_version(const std::string& protocol) {
    if (protocol == "HTTP/2") {
        return "http/2.0";
    }
    return valid_utf8(protocol);
}

std::string request_url(const FlowRecord& flow) {
    const inspect::HttpExchange& exchange = flow.exchange;
    // A plain-HTTP request through a proxy names its URL whole (absolute form).
    if (starts_with_ignoring_case(exchange.path, "http://") ||
        starts_with_ignoring_case(exchange.path, "https://")) {
        return valid_utf8(exchange.path);
    }
    std::string authority = exchange.authority;
    if (authority.empty()) {
        // HTTP/1.0 without Host: the name the client asked TLS for, else the address.
        authority = !flow.sni.empty() ? flow.sni : flow.server_address;
    }
    const std::string scheme = exchange.scheme.empty() ? "https" : exchange.scheme;
    std::string path = exchange.path;
    if (path.empty() || path.front() != '/') {
        path.insert(path.begin(), '/');  // "*" (OPTIONS) or nothing at all
    }
    return valid_utf8(scheme + "://" + authority + path);
}

// HAR text fields carry text: bytes that are not UTF-8 go in base64 with encoding "base64".
void put_body_text(Json& object, const inspect::BodySummary& body, const char* encoding_key) {
    if (is_valid_utf8(body.captured)) {
        object["text"] = body.captured;
    } else {
        object["text"] = base64(body.captured);
        object[encoding_key] = "base64";
    }
    if (body.capture_truncated) {
        object["_truncated"] = true;
    }
}

Json request_object(const FlowRecord& flow) {
    const inspect::HttpExchange& exchange = flow.exchange;
    Json request = {
        {"method", valid_utf8(exchange.method)},
        {"url", request_url(flow)},
        {"httpVersion", har_http_version(exchange.protocol)},
        {"cookies", request_cookies(exchange.request_headers)},
        {"headers", header_list(exchange.request_headers)},
        {"queryString", query_string(exchange.path)},
        {"headersSize", -1},
        {"bodySize", exchange.request_body.size},
    };
    const inspect::BodySummary& body = exchange.request_body;
    if (!body.captured.empty()) {
        Json post_data = {{"mimeType", valid_utf8(body.content_type)}};
        // postData has no encoding field in HAR 1.2: "_encoding" marks the base64 ones.
        put_body_text(post_data, body, "_encoding");
        if (starts_with_ignoring_case(body.content_type, "application/x-www-form-urlencoded") &&
            is_valid_utf8(body.captured)) {
            post_data["params"] = form_parameters(body.captured);
        }
        request["postData"] = std::move(post_data);
    }
    return request;
}

Json response_object(const FlowRecord& flow) {
    const inspect::HttpExchange& exchange = flow.exchange;
    const inspect::BodySummary& body = exchange.response_body;
    const bool answered = exchange.status != 0;
    Json content = {{"size", answered ? body.size : 0},
                    {"mimeType", valid_utf8(body.content_type)}};
    if (answered && !body.captured.empty()) {
        put_body_text(content, body, "encoding");
    }
    if (!body.content_encoding.empty()) {
        content["_contentEncoding"] = valid_utf8(body.content_encoding);
    }
    const auto location = find_header(exchange.response_headers, "location");
    Json response = {
        {"status", exchange.status},
        {"statusText", valid_utf8(exchange.reason)},
        {"httpVersion", answered ? har_http_version(exchange.protocol) : ""},
        {"cookies", response_cookies(exchange.response_headers)},
        {"headers", header_list(exchange.response_headers)},
        {"content", std::move(content)},
        {"redirectURL", location ? valid_utf8(*location) : ""},
        {"headersSize", -1},
    };
    // Without a response there is no body size to tell.
    if (answered) {
        response["bodySize"] = body.size;
    } else {
        response["bodySize"] = -1;
    }
    return response;
}

Json tlsgate_fields(const FlowRecord& flow) {
    const inspect::HttpExchange& exchange = flow.exchange;
    Json fields = {{"sequence", exchange.sequence}};
    const auto put_if = [&fields](const char* key, const std::string& value) {
        if (!value.empty()) {
            fields[key] = valid_utf8(value);
        }
    };
    put_if("client_address", flow.client_address);
    put_if("server_address", flow.server_address);
    put_if("sni", flow.sni);
    put_if("client_tls_version", flow.client_tls_version);
    put_if("upstream_tls_version", flow.upstream_tls_version);
    put_if("alpn", flow.alpn);
    if (exchange.stream_id != 0) {
        fields["stream_id"] = exchange.stream_id;
    }
    put_if("request_sha256", exchange.request_body.sha256);
    put_if("response_sha256", exchange.response_body.sha256);
    if (!exchange.informational.empty()) {
        fields["informational"] = exchange.informational;
    }
    put_if("error", exchange.error);
    if (exchange.websocket) {
        Json websocket = websocket_to_json(*exchange.websocket);
        if (websocket.contains("error")) {
            websocket["error"] = valid_utf8(exchange.websocket->error);
        }
        fields["websocket"] = std::move(websocket);
    }
    return fields;
}

}  // namespace

Json flow_to_har_entry(const FlowRecord& flow) {
    const inspect::HttpExchange& exchange = flow.exchange;
    // HAR's "time" is the sum of the timings that apply; send is not measured on its own, wait
    // runs to the first response byte and receive from there to the end.
    const auto response_start = exchange.response_start.value_or(exchange.end);
    const double wait = milliseconds_between(exchange.request_start, response_start);
    const double receive =
        exchange.response_start ? milliseconds_between(response_start, exchange.end) : 0.0;
    Json entry = {
        {"startedDateTime", iso8601_millis(exchange.request_start)},
        {"time", wait + receive},
        {"request", request_object(flow)},
        {"response", response_object(flow)},
        {"cache", Json::object()},
        {"timings",
         {{"blocked", -1},
          {"dns", -1},
          {"connect", -1},
          {"ssl", -1},
          {"send", 0},
          {"wait", wait},
          {"receive", receive}}},
        {"connection", std::to_string(flow.connection_id)},
        {"_tlsgate", tlsgate_fields(flow)},
    };
    if (const auto server = parse_endpoint(flow.server_address)) {
        entry["serverIPAddress"] = server->address.to_string();
    }
    return entry;
}

Json flows_to_har(const std::vector<FlowRecord>& flows, std::string_view creator_version) {
    Json entries = Json::array();
    for (const auto& flow : flows) {
        entries.push_back(flow_to_har_entry(flow));
    }
    return {{"log",
             {{"version", "1.2"},
              {"creator", {{"name", "tlsgate"}, {"version", valid_utf8(creator_version)}}},
              {"pages", Json::array()},
              {"entries", std::move(entries)}}}};
}

}  // namespace tlsgate::record
