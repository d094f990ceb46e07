#include "relay/byte_stream.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <cstring>

namespace tlsgate::relay {

using asio::ip::tcp;

namespace {

// OpenSSL has finished every record it read and waits for the next one's header.
bool waiting_for_record_header(const SSL* ssl) {
    return std::strcmp(SSL_rstate_string(ssl), "RH") == 0;
}

}  // namespace

void abort_socket(tcp::socket& socket) {
    if (!socket.is_open()) {
        return;
    }
    std::error_code ignored;
    socket.cancel(ignored);
    ::shutdown(socket.native_handle(), SHUT_RDWR);
}

void reset_socket(tcp::socket& socket) {
    if (!socket.is_open()) {
        return;
    }
    const linger hard{1, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    std::error_code ignored;
    socket.close(ignored);
}

// The wait is written out here and in TlsStream::wait_readable rather than shared as a coroutine:
// each idle direction of every connection would keep one more frame suspended.
asio::awaitable<std::error_code> TcpStream::wait_readable() {
    std::error_code error;
    co_await socket_.async_wait(tcp::socket::wait_read,
                                asio::redirect_error(asio::use_awaitable, error));
    co_return error;
}

asio::awaitable<ReadResult> TcpStream::read_some(std::span<std::uint8_t> into) {
    std::error_code error;
    const std::size_t bytes = co_await socket_.async_read_some(
        asio::buffer(into.data(), into.size()), asio::redirect_error(asio::use_awaitable, error));
    if (error == asio::error::eof) {
        co_return ReadResult{0, true, true, {}};
    }
    if (error) {
        error_text_ = error.message();
        co_return ReadResult{0, false, false, error};
    }
    may_have_more_ = bytes == into.size();
    co_return ReadResult{bytes, false, false, {}};
}

asio::awaitable<std::error_code> TcpStream::write_all(std::span<const std::uint8_t> bytes) {
    std::error_code error;
    co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                               asio::redirect_error(asio::use_awaitable, error));
    if (error) {
        error_text_ = error.message();
    }
    co_return error;
}

asio::awaitable<void> TcpStream::shutdown_write(bool) {
    std::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    co_return;
}

// A BIO over the socket's descriptor that first serves bytes the gateway already read. It looks
// the descriptor up through the asio socket on every call, so a closed socket reads as an error.
struct TlsStream::SocketBio {
    tcp::socket* socket = nullptr;
    std::vector<std::uint8_t> replay;
    std::size_t replayed = 0;
    // What the last failed socket call meant: OpenSSL asks BIO_eof() to tell a peer that closed
    // (an unexpected EOF) from a real error, and errno is long gone by the time we report.
    bool end_of_file = false;
    int error_number = 0;
    // The last read got less than it asked for: the socket had nothing more at that moment.
    bool drained = false;

    static BIO_METHOD* method() {
        static BIO_METHOD* const instance = [] {
            BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tlsgate");
            BIO_meth_set_read_ex(m, read);
            BIO_meth_set_write_ex(m, write);
            BIO_meth_set_ctrl(m, control);
            BIO_meth_set_create(m, [](BIO* bio) {
                BIO_set_init(bio, 1);
                return 1;
            });
            BIO_meth_set_destroy(m, [](BIO* bio) {
                delete static_cast<SocketBio*>(BIO_get_data(bio));
                BIO_set_data(bio, nullptr);
                return 1;
            });
            return m;
        }();
        return instance;
    }

    static int read(BIO* bio, char* out, std::size_t length, std::size_t* read_bytes) {
        auto* self = static_cast<SocketBio*>(BIO_get_data(bio));
        BIO_clear_retry_flags(bio);
        if (self->replayed < self->replay.size()) {
            const std::size_t n = std::min(length, self->replay.size() - self->replayed);
            std::memcpy(out, self->replay.data() + self->replayed, n);
            self->replayed += n;
            if (self->replayed == self->replay.size()) {
                std::vector<std::uint8_t>().swap(self->replay);
                self->replayed = 0;
            }
            *read_bytes = n;
            self->drained = false;
            return 1;
        }
        if (!self->socket->is_open()) {
            return 0;
        }
        const ssize_t n = ::recv(self->socket->native_handle(), out, length, 0);
        if (n > 0) {
            *read_bytes = static_cast<std::size_t>(n);
            self->drained = static_cast<std::size_t>(n) < length;
            return 1;
        }
        self->drained = true;
        if (n == 0) {
            self->end_of_file = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            BIO_set_retry_read(bio);
        } else {
            self->error_number = errno;
        }
        *read_bytes = 0;
        return 0;
    }

    static int write(BIO* bio, const char* data, std::size_t length, std::size_t* written) {
        auto* self = static_cast<SocketBio*>(BIO_get_data(bio));
        BIO_clear_retry_flags(bio);
        if (!self->socket->is_open()) {
            return 0;
        }
        const ssize_t n = ::send(self->socket->native_handle(), data, length, MSG_NOSIGNAL);
        if (n >= 0) {
            *written = static_cast<std::size_t>(n);
            return 1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            BIO_set_retry_write(bio);
        } else {
            self->error_number = errno;
        }
        *written = 0;
        return 0;
    }

    static long control(BIO* bio, int command, long, void*) {
        switch (command) {
            case BIO_CTRL_FLUSH:
                return 1;
            case BIO_CTRL_EOF:
                return static_cast<SocketBio*>(BIO_get_data(bio))->end_of_file ? 1 : 0;
            default:
                return 0;
        }
    }
};

TlsStream::TlsStream(tcp::socket& socket, pki::SslPtr ssl, Role role,
                     std::vector<std::uint8_t> already_received)
    : socket_(socket), ssl_(std::move(ssl)) {
    BIO* bio = BIO_new(SocketBio::method());
    auto* state = new SocketBio{&socket, std::move(already_received), 0};
    BIO_set_data(bio, state);
    SSL_set_bio(ssl_.get(), bio, bio);
    // OpenSSL then asks the socket for as much as its buffer holds instead of a record header
    // and then its body: one recv per record or fewer, and a short recv tells that the socket
    // is drained (see may_have_more).
    SSL_set_read_ahead(ssl_.get(), 1);
    if (role == Role::client) {
        SSL_set_connect_state(ssl_.get());
    } else {
        SSL_set_accept_state(ssl_.get());
    }
    // OpenSSL reads the descriptor itself; it must never block the worker's thread.
    std::error_code ignored;
    socket_.non_blocking(true, ignored);
}

TlsStream::~TlsStream() = default;

asio::awaitable<bool> TlsStream::wait_for(int ssl_error) {
    std::error_code error;
    const auto direction =
        ssl_error == SSL_ERROR_WANT_WRITE ? tcp::socket::wait_write : tcp::socket::wait_read;
    co_await socket_.async_wait(direction, asio::redirect_error(asio::use_awaitable, error));
    if (error) {
        error_text_ = error == asio::error::operation_aborted ? "aborted" : error.message();
        co_return false;
    }
    co_return true;
}

std::error_code TlsStream::fail(int ssl_error) {
    const unsigned long queued = ERR_peek_error();
    if (queued != 0) {
        if (ERR_GET_LIB(queued) == ERR_LIB_SSL) {
            failure_reason_ = ERR_GET_REASON(queued);
            closed_by_peer_ = failure_reason_ == SSL_R_UNEXPECTED_EOF_WHILE_READING;
        }
        error_text_ = pki::last_openssl_error();
        return std::make_error_code(std::errc::protocol_error);
    }
    if (ssl_error == SSL_ERROR_SYSCALL) {
        const auto* bio = static_cast<SocketBio*>(BIO_get_data(SSL_get_rbio(ssl_.get())));
        const int saved = bio != nullptr ? bio->error_number : 0;
        error_text_ = saved != 0 ? std::strerror(saved) : "connection closed during TLS";
        closed_by_peer_ = saved == 0 || saved == ECONNRESET || saved == EPIPE;
        return std::error_code(saved != 0 ? saved : ECONNRESET, std::system_category());
    }
    error_text_ = "TLS error " + std::to_string(ssl_error);
    return std::make_error_code(std::errc::protocol_error);
}

asio::awaitable<std::error_code> TlsStream::handshake() {
    for (;;) {
        ERR_clear_error();
        const int rc = SSL_do_handshake(ssl_.get());
        if (rc == 1) {
            co_return std::error_code{};
        }
        const int ssl_error = SSL_get_error(ssl_.get(), rc);
        if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
            if (!co_await wait_for(ssl_error)) {
                co_return std::make_error_code(std::errc::operation_canceled);
            }
            continue;
        }
        co_return fail(ssl_error);
    }
}

asio::awaitable<std::error_code> TlsStream::wait_readable() {
    // OpenSSL may already hold a whole record that the socket no longer has; unless the last read
    // found it holds only part of one, which only the socket can complete.
    if (!needs_socket_ && SSL_has_pending(ssl_.get()) == 1) {
        co_return std::error_code{};
    }
    std::error_code error;
    co_await socket_.async_wait(tcp::socket::wait_read,
                                asio::redirect_error(asio::use_awaitable, error));
    co_return error;
}

asio::awaitable<ReadResult> TlsStream::read_some(std::span<std::uint8_t> into) {
    needs_socket_ = false;
    for (;;) {
        ERR_clear_error();
        std::size_t bytes = 0;
        const int rc = SSL_read_ex(ssl_.get(), into.data(), into.size(), &bytes);
        if (rc == 1) {
            const auto* bio = static_cast<SocketBio*>(BIO_get_data(SSL_get_rbio(ssl_.get())));
            may_have_more_ = SSL_has_pending(ssl_.get()) == 1 || bio == nullptr || !bio->drained;
            co_return ReadResult{bytes, false, false, {}};
        }
        may_have_more_ = false;
        const int ssl_error = SSL_get_error(ssl_.get(), rc);
        if (ssl_error == SSL_ERROR_WANT_READ) {
            // What arrived carried no data (a session ticket), or only part of a record (the
            // rest is on its way, or a slow peer is trickling it): the caller waits for the
            // socket without our buffer, and wait_readable knows OpenSSL's bytes are not enough.
            needs_socket_ = true;
            if (SSL_has_pending(ssl_.get()) == 0 && waiting_for_record_header(ssl_.get())) {
                // Between records, OpenSSL's buffer holds nothing: give it back while idle
                // (RELEASE_BUFFERS frees it only after data). Never inside a record: OpenSSL
                // before 3.0.14 would free a buffer it still uses (CVE-2024-4741).
                SSL_free_buffers(ssl_.get());
            }
            co_return ReadResult{};
        }
        if (ssl_error == SSL_ERROR_WANT_WRITE) {
            if (!co_await wait_for(ssl_error)) {
                co_return ReadResult{0, false, false,
                                     std::make_error_code(std::errc::operation_canceled)};
            }
            continue;
        }
        if (ssl_error == SSL_ERROR_ZERO_RETURN) {
            co_return ReadResult{0, true, true, {}};
        }
        // The peer closed TCP without a close_notify: an end, but not a clean one (many servers
        // do this after receiving ours). The unclean end is passed on as such.
        const unsigned long queued = ERR_peek_error();
        const auto* bio = static_cast<SocketBio*>(BIO_get_data(SSL_get_rbio(ssl_.get())));
        const bool unexpected_eof =
            (ERR_GET_LIB(queued) == ERR_LIB_SSL &&
             ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
            (ssl_error == SSL_ERROR_SYSCALL && queued == 0 && bio != nullptr &&
             bio->error_number == 0);
        if (unexpected_eof) {
            ERR_clear_error();
            co_return ReadResult{0, true, false, {}};
        }
        co_return ReadResult{0, false, false, fail(ssl_error)};
    }
}

asio::awaitable<std::error_code> TlsStream::write_all(std::span<const std::uint8_t> bytes) {
    while (!bytes.empty()) {
        ERR_clear_error();
        std::size_t written = 0;
        const int rc = SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &written);
        if (rc == 1) {
            bytes = bytes.subspan(written);
            continue;
        }
        const int ssl_error = SSL_get_error(ssl_.get(), rc);
        if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
            if (!co_await wait_for(ssl_error)) {
                co_return std::make_error_code(std::errc::operation_canceled);
            }
            continue;
        }
        co_return fail(ssl_error);
    }
    co_return std::error_code{};
}

asio::awaitable<void> TlsStream::shutdown_write(bool clean) {
    if (clean) {
        for (int attempts = 0; attempts < 8; ++attempts) {
            ERR_clear_error();
            const int rc = SSL_shutdown(ssl_.get());
            if (rc >= 0) {
                break;  // 0: our close_notify is sent; the peer's may still come
            }
            const int ssl_error = SSL_get_error(ssl_.get(), rc);
            if (ssl_error != SSL_ERROR_WANT_WRITE || !co_await wait_for(ssl_error)) {
                break;
            }
        }
        ERR_clear_error();
    }
    std::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace tlsgate::relay
