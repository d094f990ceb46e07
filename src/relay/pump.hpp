#pragma once
#include <asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <memory>
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

// The same relay, on its own: each direction runs as a coroutine of its own and nothing waits
// for them, so no frame of the caller stays suspended while the connection lives (an idle
// connection's memory). `owner` keeps the connection and both streams alive until both
// directions have ended; `ended` runs then.
void start_relay(Connection& connection, ByteStream& client_side, ByteStream& upstream_side,
                 std::shared_ptr<void> owner, std::function<void()> ended);

}  // namespace tlsgate::relay
