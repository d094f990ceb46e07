// TlsStream against a real OpenSSL peer on a loopback TCP connection. The peer drives its TLS
// through memory BIOs, so the test decides how its records are cut into send() calls.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <unistd.h>

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "pki/ca.hpp"
#include "relay/byte_stream.hpp"

namespace tlsgate::relay {
namespace {

using asio::ip::tcp;

// The client end: a blocking socket and an SSL over memory BIOs.
class Peer {
public:
    Peer(int fd, SSL_CTX* ctx) : fd_(fd), ssl_(SSL_new(ctx)) {
        in_ = BIO_new(BIO_s_mem());
        out_ = BIO_new(BIO_s_mem());
        SSL_set_bio(ssl_.get(), in_, out_);
        SSL_set_connect_state(ssl_.get());
    }
    ~Peer() { ::close(fd_); }

    bool handshake() {
        for (;;) {
            const int rc = SSL_do_handshake(ssl_.get());
            if (rc == 1) {
                send(take_output());
                return true;
            }
            if (SSL_get_error(ssl_.get(), rc) != SSL_ERROR_WANT_READ) {
                return false;
            }
            send(take_output());
            char bytes[16384];
            const ssize_t n = ::recv(fd_, bytes, sizeof bytes, 0);
            if (n <= 0) {
                return false;
            }
            BIO_write(in_, bytes, static_cast<int>(n));
        }
    }
    // The TLS records that carry `data`, not sent yet.
    std::string seal(const std::string& data) {
        SSL_write(ssl_.get(), data.data(), static_cast<int>(data.size()));
        return take_output();
    }
    void send(const std::string& bytes) {
        std::size_t sent = 0;
        while (sent < bytes.size()) {
            const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            ASSERT_GT(n, 0);
            sent += static_cast<std::size_t>(n);
        }
    }

private:
    std::string take_output() {
        std::string bytes;
        char chunk[16384];
        int n = 0;
        while ((n = BIO_read(out_, chunk, sizeof chunk)) > 0) {
            bytes.append(chunk, static_cast<std::size_t>(n));
        }
        return bytes;
    }

    int fd_;
    pki::SslPtr ssl_;
    BIO* in_ = nullptr;
    BIO* out_ = nullptr;
};

int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// A peer that stops inside a record: the read returns without data (so the relay's buffer goes
// back while it waits), and waiting for more waits for the socket, although OpenSSL holds bytes
// (part of the record). Before, the read kept the caller's buffer until the record completed
// (for as long as a slow or hostile peer liked), and a wait would have returned at once.
TEST(TlsStream, APeerThatStopsInsideARecordIsWaitedForWithoutABuffer) {
    auto ca = pki::create_ca("CN=tls stream test", pki::KeyType::ec_p256);
    ASSERT_TRUE(ca) << ca.error();
    pki::SslCtxPtr server_ctx(SSL_CTX_new(TLS_server_method()));
    ASSERT_EQ(SSL_CTX_use_certificate(server_ctx.get(), ca->cert.get()), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey(server_ctx.get(), ca->key.get()), 1);
    SSL_CTX_set_mode(server_ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    pki::SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));

    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    const std::uint16_t port = acceptor.local_endpoint().port();
    const std::string message(3000, 'm');
    std::atomic<bool> rest_sent{false};
    std::thread peer_thread([&] {
        Peer peer(connect_to(port), client_ctx.get());
        if (!peer.handshake()) {
            ADD_FAILURE() << "peer handshake failed";
            return;
        }
        const std::string record = peer.seal(message);
        peer.send(record.substr(0, 100));  // the header and the start of the body
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        rest_sent = true;
        peer.send(record.substr(100));
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // until the test has read
    });
    tcp::socket socket = acceptor.accept();

    TlsStream stream(socket, pki::SslPtr(SSL_new(server_ctx.get())), TlsStream::Role::server);
    std::string received;
    bool first_read_was_empty = false;
    bool wait_ended_after_the_rest = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            if (const auto error = co_await stream.handshake()) {
                ADD_FAILURE() << "handshake: " << stream.error_text();
                co_return;
            }
            std::array<std::uint8_t, 16384> buffer{};
            // The first bytes of the record may take a moment to arrive: wait until a read
            // has consumed them and returned for want of the rest.
            for (;;) {
                co_await stream.wait_readable();
                const ReadResult read = co_await stream.read_some(buffer);
                if (read.error || read.end_of_stream) {
                    ADD_FAILURE() << "read ended early: " << stream.error_text();
                    co_return;
                }
                if (read.bytes > 0) {
                    received.append(reinterpret_cast<const char*>(buffer.data()), read.bytes);
                    co_return;  // the record came whole: the test below fails
                }
                if (SSL_has_pending(stream.ssl()) == 1) {
                    break;  // OpenSSL holds part of the record
                }
            }
            first_read_was_empty = true;
            co_await stream.wait_readable();
            wait_ended_after_the_rest = rest_sent.load();
            while (received.size() < message.size()) {
                const ReadResult read = co_await stream.read_some(buffer);
                if (read.error || read.end_of_stream) {
                    ADD_FAILURE() << "read ended early: " << stream.error_text();
                    co_return;
                }
                received.append(reinterpret_cast<const char*>(buffer.data()), read.bytes);
                if (read.bytes == 0) {
                    co_await stream.wait_readable();
                }
            }
        },
        asio::detached);
    io.run();
    peer_thread.join();
    EXPECT_TRUE(first_read_was_empty);
    EXPECT_TRUE(wait_ended_after_the_rest);
    EXPECT_EQ(received, message);
}

}  // namespace
}  // namespace tlsgate::relay
