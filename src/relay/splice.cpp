#include "relay/splice.hpp"

#include "relay/byte_stream.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

namespace tlsgate::relay {
namespace {

using asio::ip::tcp;

constexpr std::size_t kChunk = 64 * 1024;
constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

class Pipe {
public:
    Pipe() {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
            read_end_ = fds[0];
            write_end_ = fds[1];
        }
    }
    ~Pipe() {
        if (read_end_ >= 0) {
            ::close(read_end_);
            ::close(write_end_);
        }
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    bool ok() const { return read_end_ >= 0; }
    int read_end() const { return read_end_; }
    int write_end() const { return write_end_; }

private:
    int read_end_ = -1;
    int write_end_ = -1;
};

asio::awaitable<bool> wait(tcp::socket& socket, tcp::socket::wait_type what) {
    std::error_code error;
    co_await socket.async_wait(what, asio::redirect_error(asio::use_awaitable, error));
    co_return !error;
}

void fail(Connection& connection, const char* direction, const char* what, int error_number) {
    if (connection.record.error.empty() && connection.timed_out_phase() == nullptr) {
        connection.record.error =
            std::string(direction) + " " + what + ": " + std::strerror(error_number);
    }
    connection.abort();
}

// The sending side was reset: reset the receiving side too, so the abort stays visible (a FIN
// would make a truncated transfer look complete).
void pass_reset_on(Connection& connection, tcp::socket& to, const char* direction) {
    if (connection.record.error.empty() && connection.timed_out_phase() == nullptr) {
        connection.record.error = std::string(direction) + " read: connection reset";
    }
    reset_socket(to);
    connection.abort();
}

asio::awaitable<void> splice_one_way(Connection& connection, tcp::socket& from, tcp::socket& to,
                                     std::uint64_t& counter, const char* direction,
                                     bool first_bytes_start_idle) {
    Pipe pipe;
    if (!pipe.ok()) {
        fail(connection, direction, "pipe", errno);
        co_return;
    }
    for (;;) {
        if (!from.is_open() || !to.is_open()) {
            co_return;
        }
        const ssize_t in =
            ::splice(from.native_handle(), nullptr, pipe.write_end(), nullptr, kChunk, kFlags);
        if (in == 0) {
            std::error_code ignored;
            to.shutdown(tcp::socket::shutdown_send, ignored);
            co_return;
        }
        if (in < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                if (!co_await wait(from, tcp::socket::wait_read)) {
                    // Aborted (a timeout, the other direction's failure): end both sides, or
                    // the other direction would wait on a peer that has nothing more to say.
                    connection.abort();
                    co_return;
                }
                continue;
            }
            if (errno == ECONNRESET) {
                pass_reset_on(connection, to, direction);
            } else {
                fail(connection, direction, "read", errno);
            }
            co_return;
        }
        if (first_bytes_start_idle) {
            // The server answered the ClientHello: from now on only the idle limit applies.
            first_bytes_start_idle = false;
            connection.arm_timeout(connection.worker.timeouts.idle, "idle");
        }
        connection.touch();
        std::size_t left = static_cast<std::size_t>(in);
        while (left > 0) {
            const ssize_t out =
                ::splice(pipe.read_end(), nullptr, to.native_handle(), nullptr, left, kFlags);
            if (out > 0) {
                left -= static_cast<std::size_t>(out);
                continue;
            }
            if (out < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (!co_await wait(to, tcp::socket::wait_write)) {
                    co_return;
                }
                continue;
            }
            fail(connection, direction, "write", out < 0 ? errno : EPIPE);
            co_return;
        }
        counter += static_cast<std::uint64_t>(in);
    }
}

}  // namespace

asio::awaitable<void> splice_both_ways(Connection& connection, bool awaiting_server_answer) {
    using namespace asio::experimental::awaitable_operators;
    std::error_code ignored;
    connection.client.non_blocking(true, ignored);
    connection.upstream.non_blocking(true, ignored);
    auto& record = connection.record;
    if (awaiting_server_answer) {
        connection.arm_timeout(connection.worker.timeouts.handshake, "upstream_handshake");
    } else {
        connection.arm_timeout(connection.worker.timeouts.idle, "idle");
    }
    co_await (splice_one_way(connection, connection.client, connection.upstream,
                             record.bytes_client_to_server, "client->upstream", false) &&
              splice_one_way(connection, connection.upstream, connection.client,
                             record.bytes_server_to_client, "upstream->client",
                             awaiting_server_answer));
    connection.disarm();
}

}  // namespace tlsgate::relay
