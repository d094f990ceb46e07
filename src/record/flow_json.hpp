#pragma once
// One JSON line per HTTP exchange, named after Zeek's http.log where Zeek has a field (ts, uid,
// id.orig_h, trans_depth, method, host, uri, status_code, ...), so tools written for Zeek logs
// read it. Fields Zeek has no name for use tlsgate's own: sni, stream_id, client_tls_version,
// upstream_tls_version, alpn, scheme, request_sha256, response_sha256, request_headers and
// response_headers ([[name, value], ...]), duration and response_wait (seconds), error,
// websocket.
//
// As in Zeek's JSON writer, a field without a value is left out (no status_code when no
// response arrived, no referrer without a Referer header); ts is epoch seconds with microsecond
// fraction, uid is "C" followed by the connection id. Captured body bytes are not written.
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "record/flow_record.hpp"

namespace tlsgate::record {

// The line ends in "\n", like to_json_line for connections. Never throws for input from the
// network: invalid UTF-8 is replaced by U+FFFD.
std::string flow_to_json_line(const FlowRecord& flow);

// Reads a parsed line back. Lossy where the line is: captured bodies are empty, only the last
// 1xx status survives (informational has at most one entry), the bodies' content type and
// encoding are taken from the headers, and times keep microseconds. An error names the first
// missing or mistyped field. Never throws.
Result<FlowRecord> flow_from_json(const nlohmann::json& line);

// {"client_messages": n, ..., "client_opcodes": {"1": n}, "close_code": c, "error": "..."}:
// shared with the HAR exporter.
nlohmann::json websocket_to_json(const inspect::WebSocketSummary& websocket);

}  // namespace tlsgate::record
