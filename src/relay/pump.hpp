#pragma once
#include <asio/awaitable.hpp>

#include "relay/byte_stream.hpp"
#include "relay/connection.hpp"

namespace tlsgate::relay {

// Relays both directions until both have ended, with backpressure (a direction reads again only
// after its last bytes were written), half-close (one side's end is passed on while the other
// direction keeps flowing) and the idle timeout. Byte counts and errors go to the record.
asio::awaitable<void> relay_both_ways(Connection& connection, ByteStream& client_side,
                                      ByteStream& upstream_side);

}  // namespace tlsgate::relay
