#pragma once
#include <asio/awaitable.hpp>

#include <memory>

#include "relay/connection.hpp"

namespace tlsgate::listen {

// An explicit-proxy client: "CONNECT host:port" opens a tunnel (upstream is connected before the
// 200 is sent, so an unreachable host gets a 502 with the reason); an absolute-form request is
// forwarded as plain HTTP; anything else gets a 400 and a close.
// `already_read`: client bytes read before (after a PROXY protocol header).
asio::awaitable<void> serve_explicit(std::shared_ptr<relay::Connection> connection,
                                     std::string already_read);

}  // namespace tlsgate::listen
