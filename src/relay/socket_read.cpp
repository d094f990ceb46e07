#include "relay/socket_read.hpp"

#include <array>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

namespace tlsgate::relay {

asio::awaitable<std::error_code> append_available(asio::ip::tcp::socket& socket,
                                                  std::string& buffer) {
    constexpr std::size_t kReadStep = 16 * 1024;
    thread_local std::array<char, kReadStep> scratch;
    for (;;) {
        std::error_code error;
        co_await socket.async_wait(asio::ip::tcp::socket::wait_read,
                                   asio::redirect_error(asio::use_awaitable, error));
        if (!error && !socket.non_blocking()) {
            socket.non_blocking(true, error);  // an ioctl: once per socket, not per read
        }
        std::size_t n = 0;
        if (!error) {
            n = socket.read_some(asio::buffer(scratch), error);
        }
        if (error == asio::error::would_block || error == asio::error::try_again) {
            continue;  // readiness without bytes (spurious): wait again
        }
        if (error) {
            co_return error;
        }
        buffer.append(scratch.data(), n);
        co_return std::error_code{};
    }
}

}  // namespace tlsgate::relay
