#pragma once
#include <asio/awaitable.hpp>
#include <memory>
#include <string>

#include "relay/connection.hpp"

namespace tlsgate::listen {

// A portal listener's connection: HTTP/1.1 requests (keep-alive) answered from PortalAssets.
// Request bodies are not read: a request that announces one gets its answer and the connection
// closes.
asio::awaitable<void> serve_portal(std::shared_ptr<relay::Connection> connection,
                                   std::string already_read);

}  // namespace tlsgate::listen
