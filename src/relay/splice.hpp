#pragma once
#include <asio/awaitable.hpp>

#include "relay/connection.hpp"

namespace tlsgate::relay {

// Relays client <-> upstream TCP untouched (passthrough, raw tunnels) through a pipe per
// direction with splice(2): the bytes move between the two sockets inside the kernel and never
// reach user space. Same contract as relay_both_ways: backpressure, half-close, idle timeout.
// A reset on one side is passed on as a reset. `awaiting_server_answer` (a passed-through
// ClientHello): the server must start answering within the handshake timeout.
asio::awaitable<void> splice_both_ways(Connection& connection, bool awaiting_server_answer = false);

}  // namespace tlsgate::relay
