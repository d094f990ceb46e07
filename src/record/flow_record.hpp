#pragma once
// One recorded HTTP exchange with the facts of the connection it travelled on: what the flow
// sinks (SQLite, JSON lines) store and what `tlsgate flows` reads back and exports (table, JSON,
// HAR).
#include <cstdint>
#include <string>

#include "inspect/exchange.hpp"

namespace tlsgate::record {

struct FlowRecord {
    std::uint64_t connection_id = 0;  // ConnectionRecord::id of the carrying connection
    std::string client_address;       // "192.0.2.10:53422"
    std::string server_address;       // the upstream address connected to, "203.0.113.5:443"
    std::string sni;
    std::string client_tls_version;    // "TLSv1.3"; empty for plain HTTP
    std::string upstream_tls_version;  // "TLSv1.3"; empty for plain HTTP
    std::string alpn;                  // "h2", "http/1.1" or empty
    inspect::HttpExchange exchange;
};

}  // namespace tlsgate::record
