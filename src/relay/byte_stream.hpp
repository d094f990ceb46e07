#pragma once
// The two kinds of byte streams a connection relays between: plain TCP and TLS over TCP. Both
// work on a non-blocking socket the caller owns; TLS drives OpenSSL directly on the descriptor
// (no second copy through memory BIOs) and waits for readiness with asio.
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"

namespace tlsgate::relay {

struct ReadResult {
    std::size_t bytes = 0;
    bool end_of_stream = false;  // the peer finished sending
    bool clean_end = false;      // ... with a TLS close_notify (always true for TCP)
    std::error_code error;       // a failure, not an end (see ByteStream::error_text)
};

class ByteStream {
public:
    virtual ~ByteStream() = default;
    // Completes when read_some would find something (bytes, an end or an error), without taking
    // a buffer while waiting.
    virtual asio::awaitable<std::error_code> wait_readable() = 0;
    // May complete with no bytes, no end and no error when what arrived carried no data (a TLS
    // session ticket): wait_readable, then read again.
    virtual asio::awaitable<ReadResult> read_some(std::span<std::uint8_t> into) = 0;
    // After a read that returned bytes: whether the next read may find more without waiting
    // (the read filled what it asked for, or TLS holds more). A relay then reads again at once
    // and skips wait_readable, which costs a reactor round trip (epoll_ctl, epoll_wait) per
    // read even when the bytes are already there: one per TLS record of a bulk transfer.
    bool may_have_more() const { return may_have_more_; }
    virtual asio::awaitable<std::error_code> write_all(std::span<const std::uint8_t> bytes) = 0;
    // Tells the peer we will send no more: a TLS close_notify when `clean`, then a TCP FIN. An
    // unclean end upstream stays unclean towards the client, so truncation remains visible.
    virtual asio::awaitable<void> shutdown_write(bool clean) = 0;
    virtual std::string error_text() const = 0;

protected:
    bool may_have_more_ = false;
};

class TcpStream final : public ByteStream {
public:
    explicit TcpStream(asio::ip::tcp::socket& socket) : socket_(socket) {}
    asio::awaitable<std::error_code> wait_readable() override;
    asio::awaitable<ReadResult> read_some(std::span<std::uint8_t> into) override;
    asio::awaitable<std::error_code> write_all(std::span<const std::uint8_t> bytes) override;
    asio::awaitable<void> shutdown_write(bool clean) override;
    std::string error_text() const override { return error_text_; }

private:
    asio::ip::tcp::socket& socket_;
    std::string error_text_;
};

class TlsStream final : public ByteStream {
public:
    enum class Role { client, server };
    // `already_received` holds bytes read from the socket before OpenSSL took over (the
    // ClientHello the gateway parsed); OpenSSL reads them first.
    TlsStream(asio::ip::tcp::socket& socket, pki::SslPtr ssl, Role role,
              std::vector<std::uint8_t> already_received = {});
    ~TlsStream() override;

    asio::awaitable<std::error_code> handshake();
    asio::awaitable<std::error_code> wait_readable() override;
    asio::awaitable<ReadResult> read_some(std::span<std::uint8_t> into) override;
    asio::awaitable<std::error_code> write_all(std::span<const std::uint8_t> bytes) override;
    asio::awaitable<void> shutdown_write(bool clean) override;
    std::string error_text() const override { return error_text_; }
    SSL* ssl() const { return ssl_.get(); }
    // After a failure: OpenSSL's reason code (SSL_R_..., e.g. the alert the peer sent), 0 if none.
    int failure_reason() const { return failure_reason_; }
    // After a failure: the peer closed (or reset) the connection instead of answering.
    bool closed_by_peer() const { return closed_by_peer_; }

    struct SocketBio;

private:
    // Waits until the socket is ready for what OpenSSL asked; false when the wait failed.
    asio::awaitable<bool> wait_for(int ssl_error);
    std::error_code fail(int ssl_error);

    asio::ip::tcp::socket& socket_;
    pki::SslPtr ssl_;
    std::string error_text_;
    int failure_reason_ = 0;
    bool closed_by_peer_ = false;
    // The last read ended because OpenSSL needs bytes from the socket: what it holds (part of a
    // record) cannot make the next read succeed, so wait_readable must wait for the socket.
    bool needs_socket_ = false;
};

// Stop a connection from anywhere (a timeout, the other direction's error): pending operations
// complete at once, while the descriptor stays owned by its socket (so OpenSSL can never be left
// holding a number the kernel has handed to another connection).
void abort_socket(asio::ip::tcp::socket& socket);

// Close with an RST (SO_LINGER 0): the peer sees an abort, not an orderly end. Only for plain
// TCP sockets (no OpenSSL object refers to the descriptor).
void reset_socket(asio::ip::tcp::socket& socket);

}  // namespace tlsgate::relay
