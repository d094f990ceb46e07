#pragma once
#include <asio/awaitable.hpp>

#include <cstdint>
#include <span>

#include "relay/byte_stream.hpp"
#include "relay/connection.hpp"

namespace tlsgate::relay {

// Sees an intercepted connection's decrypted bytes, each read before it is written on: a reply
// is seen before the client can react to it (an FTP passive reply before the data connection).
class PlaintextObserver {
public:
    virtual ~PlaintextObserver() = default;
    virtual void observe(bool from_client, std::span<const std::uint8_t> bytes) = 0;
};

// Relays both directions until both have ended, with backpressure (a direction reads again only
// after its last bytes were written), half-close (one side's end is passed on while the other
// direction keeps flowing) and the idle timeout. Byte counts and errors go to the record.
asio::awaitable<void> relay_both_ways(Connection& connection, ByteStream& client_side,
                                      ByteStream& upstream_side);

}  // namespace tlsgate::relay
