#pragma once
// Exports recorded flows as a HAR 1.2 log (http://www.softwareishard.com/blog/har-12-spec/), the
// format browser developer tools, proxies and HAR viewers exchange.
//
// What a HAR reader should know about tlsgate's entries:
//  - Bodies are as they were on the wire (still gzip/br encoded); content.size is that size and
//    content._contentEncoding names the coding. Text is present only when the body was captured
//    (capture_bodies), base64 with encoding "base64" when it is not valid UTF-8, and
//    content._truncated / postData._truncated say when only its first bytes were captured.
//  - Header sizes are not kept (headersSize -1); send is 0 because a request's bytes are not
//    timed separately from its head (wait runs from the request's start to the response's).
//  - An exchange without a response has status 0, empty response headers and bodySize -1.
//  - Redacted headers keep their "<redacted>" value; cookies are parsed only from headers that
//    were not redacted.
//  - Strings that were not valid UTF-8 on the wire (paths, header values) have the invalid bytes
//    replaced by U+FFFD, so the result dumps without errors.
//  - _tlsgate holds what HAR has no field for: SNI, TLS versions, ALPN, body SHA-256, HTTP/2
//    stream, position on the connection, error, WebSocket summary.
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "record/flow_record.hpp"

namespace tlsgate::record {

// {"log": {"version": "1.2", "creator": {...}, "entries": [...]}}, entries in the given order.
nlohmann::json flows_to_har(const std::vector<FlowRecord>& flows, std::string_view creator_version);

// One log.entries[] element (exposed for streaming exporters and tests).
nlohmann::json flow_to_har_entry(const FlowRecord& flow);

}  // namespace tlsgate::record
