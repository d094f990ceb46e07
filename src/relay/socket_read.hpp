#pragma once
// Reading what a plain socket has without holding a buffer while waiting for it: for the places
// where a connection may sit idle for long (a keep-alive client between requests, a client that
// is slow to send its request head).
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <string>
#include <system_error>

namespace tlsgate::relay {

// Waits until `socket` has something, then appends what it has (up to 16 KiB) to `buffer`.
// Returns the error that ended the read (asio::error::eof at the end of the stream), or none.
// The wait holds no read buffer: the bytes are read synchronously into the thread's buffer,
// which nothing else can use before they are appended (nothing suspends in between).
asio::awaitable<std::error_code> append_available(asio::ip::tcp::socket& socket,
                                                  std::string& buffer);

}  // namespace tlsgate::relay
