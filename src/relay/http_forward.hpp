#pragma once
#include <asio/awaitable.hpp>

#include <memory>
#include <string>

#include "relay/connection.hpp"

namespace tlsgate::relay {

// Answers a request the proxy itself produces (400, 403, 502...), always closing afterwards.
// 504 when the connect timed out, else 502, with the reason.
asio::awaitable<void> send_upstream_failure(Connection& connection, const std::string& reason);

asio::awaitable<void> send_proxy_error(Connection& connection, int status, std::string_view reason,
                                       std::string_view detail);

// Plain-HTTP proxying of absolute-form requests ("GET http://host/path HTTP/1.1"): each request
// is sent upstream in origin form, the response is relayed back byte for byte, and the client
// connection is kept alive across requests (and hosts) when both sides allow it. `buffer` holds
// the bytes read so far, starting with a complete request head.
asio::awaitable<void> forward_plain_http(std::shared_ptr<Connection> connection,
                                         std::string buffer);

}  // namespace tlsgate::relay
