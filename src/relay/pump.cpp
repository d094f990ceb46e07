#include "relay/pump.hpp"

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>

namespace tlsgate::relay {
namespace {

struct Direction {
    const char* name;
    inspect::Side sender;
    ByteStream& from;
    ByteStream& to;
    std::uint64_t& bytes;
};

// The first failure is the cause; the other direction then only sees the abort it caused.
void fail(Connection& connection, const Direction& direction, const std::string& what) {
    if (connection.record.error.empty() && connection.timed_out_phase() == nullptr) {
        connection.record.error = std::string(direction.name) + " " + what;
    }
    connection.abort();
}

asio::awaitable<void> pump(Connection& connection, Direction& direction) {
    for (;;) {
        // A failed wait (an abort, a socket error) is reported by the read that follows.
        if (direction.from.may_have_more()) {
            // Reads that need no wait never suspend: let the worker's other connections run.
            co_await asio::post(connection.client.get_executor(), asio::use_awaitable);
        } else {
            co_await direction.from.wait_readable();
        }
        auto buffer = connection.worker.buffers.borrow();
        const ReadResult read = co_await direction.from.read_some(*buffer);
        if (read.error) {
            fail(connection, direction, "read: " + direction.from.error_text());
            co_return;
        }
        if (read.end_of_stream) {
            if (connection.inspector) {
                connection.inspector->end(direction.sender);
            }
            if (!read.clean_end) {
                // A TLS peer that stops without close_notify has left (many clients close that
                // way after their last response) or was cut off: end both sides now, so the
                // other peer sees the same abrupt end and no half-closed pair waits for idle.
                // Not an error in itself; a truncated exchange is in its flow record.
                connection.abort();
                co_return;
            }
            co_await direction.to.shutdown_write(true);
            co_return;
        }
        if (read.bytes == 0) {
            continue;  // nothing to relay yet; the buffer goes back while we wait
        }
        connection.touch();
        if (connection.plaintext_observer != nullptr) {
            // Before the write: a dialogue must see the server's answer before the client does.
            connection.plaintext_observer->observe(direction.sender == inspect::Side::client,
                                                   {(*buffer).data(), read.bytes});
        }
        if (const auto error = co_await direction.to.write_all({(*buffer).data(), read.bytes})) {
            fail(connection, direction, "write: " + direction.to.error_text());
            co_return;
        }
        direction.bytes += read.bytes;
        // After the write: watching the bytes never delays them.
        if (connection.inspector) {
            connection.inspector->observe(
                direction.sender, {reinterpret_cast<const char*>((*buffer).data()), read.bytes});
        }
    }
}

// A relay nobody waits for; shared by the coroutines of its two directions.
struct DetachedRelay {
    Connection& connection;
    Direction up;
    Direction down;
    std::shared_ptr<void> owner;
    std::function<void()> ended;
    int running = 2;
};

void direction_ended(DetachedRelay& relay, const Direction& direction,
                     const std::exception_ptr& thrown) {
    if (thrown) {  // out of memory: end the connection rather than leave it half relayed
        try {
            std::rethrow_exception(thrown);
        } catch (const std::exception& error) {
            fail(relay.connection, direction, error.what());
        } catch (...) {
            fail(relay.connection, direction, "unknown exception");
        }
    }
    if (--relay.running > 0) {
        return;
    }
    relay.connection.disarm();
    if (relay.connection.inspector) {
        relay.connection.inspector->finish();
    }
    if (relay.ended) {
        relay.ended();
    }
}

}  // namespace

void start_relay(Connection& connection, ByteStream& client_side, ByteStream& upstream_side,
                 std::shared_ptr<void> owner, std::function<void()> ended) {
    auto& record = connection.record;
    connection.arm_timeout(connection.worker.timeouts.idle, "idle");
    auto relay = std::make_shared<DetachedRelay>(
        DetachedRelay{connection,
                      {"client->upstream", inspect::Side::client, client_side, upstream_side,
                       record.bytes_client_to_server},
                      {"upstream->client", inspect::Side::server, upstream_side, client_side,
                       record.bytes_server_to_client},
                      std::move(owner),
                      std::move(ended)});
    const auto executor = connection.client.get_executor();
    asio::co_spawn(executor, pump(connection, relay->up), [relay](std::exception_ptr thrown) {
        direction_ended(*relay, relay->up, thrown);
    });
    asio::co_spawn(executor, pump(connection, relay->down), [relay](std::exception_ptr thrown) {
        direction_ended(*relay, relay->down, thrown);
    });
}

// The detached relay, waited for: `ended` wakes this coroutine.
asio::awaitable<void> relay_both_ways(Connection& connection, ByteStream& client_side,
                                      ByteStream& upstream_side) {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer relay_ended(executor, asio::steady_timer::time_point::max());
    bool ended = false;
    start_relay(connection, client_side, upstream_side, nullptr, [&ended, &relay_ended] {
        ended = true;
        relay_ended.cancel();
    });
    while (!ended) {
        std::error_code ignored;  // the cancel that says the relay ended
        co_await relay_ended.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
}

}  // namespace tlsgate::relay
