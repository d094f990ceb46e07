// The probe's I/O against small loopback servers that each misbehave in one way: a real TLS
// server (chain, version, the SNI it saw), one answering HTTP, one closing, one resetting, one
// silent, one sending an access_denied alert, and an HTTP proxy that refuses or tunnels.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pki/ca.hpp"
#include "pki/mint.hpp"
#include "probe/handshake.hpp"

namespace tlsgate::probe {
namespace {

using namespace std::chrono_literals;

enum class Behaviour { tls, http, close, reset, silent, alert, proxy_refuses, proxy_tunnels };

// A TLS server certificate for any name, from a throwaway CA.
struct ServerIdentity {
    pki::CertificateAuthority ca;
    pki::X509Ptr leaf;
    pki::EvpPkeyPtr key;
};

ServerIdentity make_identity() {
    ServerIdentity identity;
    auto ca = pki::create_ca("CN=Probe Test CA", pki::KeyType::ec_p256);
    EXPECT_TRUE(ca.ok());
    identity.ca = std::move(*ca);
    pki::CertProperties properties;
    properties.common_name = "server.test";
    properties.dns_names = {"server.test"};
    properties.not_before = std::time(nullptr) - 3600;
    properties.not_after = std::time(nullptr) + 30 * 24 * 3600;
    properties.serial = pki::random_serial();
    auto key = pki::generate_leaf_key();
    EXPECT_TRUE(key.ok());
    identity.key = std::move(*key);
    auto leaf = pki::mint_leaf(properties, identity.key.get(), identity.ca);
    EXPECT_TRUE(leaf.ok());
    identity.leaf = std::move(*leaf);
    return identity;
}

std::string der_of(X509* cert) {
    unsigned char* der = nullptr;
    const int length = i2d_X509(cert, &der);
    std::string bytes(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
    OPENSSL_free(der);
    return bytes;
}

class TestServer {
public:
    explicit TestServer(Behaviour behaviour, const ServerIdentity* identity = nullptr)
        : behaviour_(behaviour) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
        EXPECT_EQ(::listen(listener_, 256), 0);
        socklen_t length = sizeof address;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
        if (identity != nullptr) {
            context_.reset(SSL_CTX_new(TLS_server_method()));
            SSL_CTX_use_certificate(context_.get(), identity->leaf.get());
            SSL_CTX_use_PrivateKey(context_.get(), identity->key.get());
            SSL_CTX_set_tlsext_servername_callback(context_.get(), &TestServer::on_sni);
            SSL_CTX_set_tlsext_servername_arg(context_.get(), this);
        }
        thread_ = std::thread([this] { serve(); });
    }

    ~TestServer() {
        stopping_ = true;
        ::shutdown(listener_, SHUT_RDWR);
        thread_.join();
        ::close(listener_);
        for (const int fd : held_) {
            ::close(fd);
        }
    }

    std::uint16_t port() const { return port_; }
    std::set<std::string> names_seen() {
        std::lock_guard lock(mutex_);
        return names_;
    }
    std::vector<std::string> requests() {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    static int on_sni(SSL* ssl, int*, void* self) {
        if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
            auto* server = static_cast<TestServer*>(self);
            std::lock_guard lock(server->mutex_);
            server->names_.insert(name);
        }
        return SSL_TLSEXT_ERR_OK;
    }

    void serve() {
        while (!stopping_) {
            const int fd = ::accept(listener_, nullptr, nullptr);
            if (fd < 0) {
                return;
            }
            handle(fd);
        }
    }

    void read_some(int fd) {
        char buffer[16384];
        ::recv(fd, buffer, sizeof buffer, 0);
    }

    std::string read_head(int fd) {
        std::string head;
        char c = 0;
        while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) {
            head.push_back(c);
        }
        return head;
    }

    void send_text(int fd, const std::string& text) {
        ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    }

    void tls_accept(int fd) {
        pki::SslPtr ssl(SSL_new(context_.get()));
        SSL_set_fd(ssl.get(), fd);
        if (SSL_accept(ssl.get()) == 1) {
            SSL_shutdown(ssl.get());
        }
    }

    void handle(int fd) {
        switch (behaviour_) {
            case Behaviour::tls:
                tls_accept(fd);
                break;
            case Behaviour::http:
                read_some(fd);
                send_text(fd, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
                break;
            case Behaviour::close:
                read_some(fd);
                break;
            case Behaviour::reset: {
                read_some(fd);
                const linger abort_on_close{1, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
                break;
            }
            case Behaviour::silent:
                read_some(fd);
                held_.push_back(fd);  // closed when the server goes away
                return;
            case Behaviour::alert: {
                read_some(fd);
                const unsigned char alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49};
                ::send(fd, alert, sizeof alert, MSG_NOSIGNAL);
                break;
            }
            case Behaviour::proxy_refuses:
            case Behaviour::proxy_tunnels: {
                const std::string head = read_head(fd);
                {
                    std::lock_guard lock(mutex_);
                    requests_.push_back(head.substr(0, head.find("\r\n")));
                }
                if (behaviour_ == Behaviour::proxy_refuses) {
                    send_text(fd, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
                } else {
                    send_text(fd, "HTTP/1.1 200 Connection established\r\n\r\n");
                    tls_accept(fd);
                }
                break;
            }
        }
        ::close(fd);
    }

    Behaviour behaviour_;
    int listener_ = -1;
    std::uint16_t port_ = 0;
    pki::SslCtxPtr context_;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    std::vector<int> held_;
    std::mutex mutex_;
    std::set<std::string> names_;
    std::vector<std::string> requests_;
};

class HandshakeTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto context = make_probe_context();
        ASSERT_TRUE(context.ok()) << context.error();
        context_ = std::move(*context);
    }

    std::vector<Observation> observe(const std::vector<std::string>& names,
                                     const ProbeSettings& settings) {
        std::vector<Target> targets;
        for (const auto& name : names) {
            auto target = parse_target(name);
            EXPECT_TRUE(target.ok()) << name;
            targets.push_back(*target);
        }
        auto observations = observe_all(targets, settings, context_.get());
        EXPECT_TRUE(observations.ok()) << observations.error();
        return std::move(*observations);
    }

    Observation observe_one(std::uint16_t port, std::chrono::milliseconds timeout = 5s) {
        ProbeSettings settings;
        settings.connect = Endpoint{IpAddress::v4(0x7f000001), port};
        settings.timeout = timeout;
        return observe({"name.test"}, settings).front();
    }

    pki::SslCtxPtr context_;
};

TEST_F(HandshakeTest, CollectsTheChainForEveryNameAtOneAddress) {
    const ServerIdentity identity = make_identity();
    TestServer server(Behaviour::tls, &identity);
    std::vector<std::string> names;
    for (int i = 0; i < 40; ++i) {
        names.push_back("n" + std::to_string(i) + ".test");
    }
    ProbeSettings settings;
    settings.connect = Endpoint{IpAddress::v4(0x7f000001), server.port()};
    settings.concurrency = 8;
    const auto observations = observe(names, settings);
    ASSERT_EQ(observations.size(), names.size());
    for (const auto& seen : observations) {
        EXPECT_EQ(seen.outcome, Outcome::handshake_done) << seen.detail;
        ASSERT_EQ(seen.chain_der.size(), 1u);
        EXPECT_EQ(seen.chain_der.front(), der_of(identity.leaf.get()));
        EXPECT_EQ(seen.tls_version, "TLSv1.3");
        EXPECT_FALSE(seen.cipher.empty());
        EXPECT_EQ(seen.peer_address, "127.0.0.1:" + std::to_string(server.port()));
        EXPECT_TRUE(seen.timings.connect_ms.has_value());
        EXPECT_TRUE(seen.timings.handshake_ms.has_value());
        EXPECT_FALSE(seen.timings.resolve_ms.has_value());
    }
    // Each handshake carried its own name as SNI.
    EXPECT_EQ(server.names_seen(), std::set<std::string>(names.begin(), names.end()));
}

TEST_F(HandshakeTest, HttpAnswerIsNotTls) {
    TestServer server(Behaviour::http);
    const auto seen = observe_one(server.port());
    EXPECT_EQ(seen.outcome, Outcome::not_tls);
    EXPECT_NE(seen.detail.find("HTTP/1.1 400 Bad Request"), std::string::npos) << seen.detail;
}

TEST_F(HandshakeTest, CloseAfterTheClientHello) {
    TestServer server(Behaviour::close);
    const auto seen = observe_one(server.port());
    EXPECT_EQ(seen.outcome, Outcome::closed) << seen.detail;
    EXPECT_FALSE(seen.server_answered);
}

TEST_F(HandshakeTest, ResetAfterTheClientHello) {
    TestServer server(Behaviour::reset);
    const auto seen = observe_one(server.port());
    EXPECT_EQ(seen.outcome, Outcome::reset) << seen.detail;
}

TEST_F(HandshakeTest, SilenceTimesOut) {
    TestServer server(Behaviour::silent);
    const auto started = std::chrono::steady_clock::now();
    const auto seen = observe_one(server.port(), 300ms);
    EXPECT_EQ(seen.outcome, Outcome::timeout) << seen.detail;
    EXPECT_FALSE(seen.server_answered);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_F(HandshakeTest, AlertInsteadOfAServerHello) {
    TestServer server(Behaviour::alert);
    const auto seen = observe_one(server.port());
    EXPECT_EQ(seen.outcome, Outcome::alert) << seen.detail;
    EXPECT_EQ(seen.alert, 49);
}

TEST_F(HandshakeTest, RefusedConnect) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);  // bound then released: nothing listens there
    const auto seen = observe_one(ntohs(address.sin_port));
    EXPECT_EQ(seen.outcome, Outcome::connect_failed);
    EXPECT_NE(seen.detail.find("refused"), std::string::npos) << seen.detail;
}

TEST_F(HandshakeTest, ProxyRefusalAndTunnel) {
    TestServer refusing(Behaviour::proxy_refuses);
    ProbeSettings settings;
    settings.proxy = *parse_proxy_url("http://127.0.0.1:" + std::to_string(refusing.port()));
    const auto refused = observe({"blocked.test:8443"}, settings).front();
    EXPECT_EQ(refused.outcome, Outcome::proxy_refused);
    EXPECT_EQ(refused.proxy_status, 403);
    EXPECT_EQ(refused.detail, "HTTP/1.1 403 Forbidden");
    EXPECT_EQ(refusing.requests(), std::vector<std::string>{"CONNECT blocked.test:8443 HTTP/1.1"});

    const ServerIdentity identity = make_identity();
    TestServer tunnel(Behaviour::proxy_tunnels, &identity);
    settings.proxy = *parse_proxy_url("127.0.0.1:" + std::to_string(tunnel.port()));
    settings.connect = *parse_endpoint("192.0.2.10:9443");
    const auto tunneled = observe({"wanted.test"}, settings).front();
    EXPECT_EQ(tunneled.outcome, Outcome::handshake_done) << tunneled.detail;
    EXPECT_TRUE(tunneled.timings.proxy_ms.has_value());
    // With --connect, the tunnel goes to that address and only the SNI names the target.
    EXPECT_EQ(tunnel.requests(), std::vector<std::string>{"CONNECT 192.0.2.10:9443 HTTP/1.1"});
    EXPECT_EQ(tunnel.names_seen(), std::set<std::string>{"wanted.test"});
}

}  // namespace
}  // namespace tlsgate::probe
