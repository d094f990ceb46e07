#pragma once
#include <asio/awaitable.hpp>

#include <memory>
#include <vector>

#include "listen/socks5.hpp"
#include "relay/connection.hpp"

namespace tlsgate::listen {

// A SOCKS5 client: method negotiation (and RFC 1929 credentials when configured), then CONNECT.
// The policy is asked before and after resolving; upstream is connected before the success reply,
// so the client learns "refused" or "unreachable" in SOCKS terms. Then the tunnel's usual story.
asio::awaitable<void> serve_socks5(std::shared_ptr<relay::Connection> connection,
                                   std::shared_ptr<const Socks5AuthConfig> auth,
                                   std::vector<std::uint8_t> already_read);

}  // namespace tlsgate::listen
