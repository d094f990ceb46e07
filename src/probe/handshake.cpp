#include "probe/handshake.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string_view>
#include <thread>
#include <utility>

#include "tls/contexts.hpp"

namespace tlsgate::probe {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Threads are the unit of concurrency here; more than this many buys nothing on two cores and
// only costs stacks.
constexpr int kMaxThreads = 256;
constexpr std::size_t kMaxProxyAnswer = 16 * 1024;

double milliseconds_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string errno_text(int error) {
    char buffer[256];
    // The GNU strerror_r returns the text (maybe not in `buffer`); thread-safe, unlike strerror.
    return strerror_r(error, buffer, sizeof buffer);
}

class Socket {
public:
    Socket() = default;
    explicit Socket(int fd) : fd_(fd) {}
    Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Socket& operator=(Socket&& other) noexcept {
        std::swap(fd_, other.fd_);
        return *this;
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    ~Socket() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    int fd() const { return fd_; }
    bool valid() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
    std::string text;  // "192.0.2.1:443", "[2001:db8::1]:443"
};

SocketAddress make_socket_address(const IpAddress& address, std::uint16_t port) {
    SocketAddress result;
    const IpAddress ip = address.unmapped();
    if (ip.is_v6) {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        std::memcpy(&v6->sin6_addr, ip.bytes.data(), 16);
        result.length = sizeof(sockaddr_in6);
    } else {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&result.storage);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        std::memcpy(&v4->sin_addr, ip.bytes.data(), 4);
        result.length = sizeof(sockaddr_in);
    }
    result.text = Endpoint{ip, port}.text();
    return result;
}

Result<std::vector<SocketAddress>> resolve(const std::string& host, std::uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    const int status = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
    if (status != 0) {
        return make_error(status == EAI_SYSTEM ? errno_text(errno) : gai_strerror(status));
    }
    std::vector<SocketAddress> addresses;
    for (const addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
        IpAddress ip;
        if (entry->ai_family == AF_INET) {
            ip.is_v6 = false;
            std::memcpy(ip.bytes.data(),
                        &reinterpret_cast<const sockaddr_in*>(entry->ai_addr)->sin_addr, 4);
        } else if (entry->ai_family == AF_INET6) {
            ip.is_v6 = true;
            std::memcpy(ip.bytes.data(),
                        &reinterpret_cast<const sockaddr_in6*>(entry->ai_addr)->sin6_addr, 16);
        } else {
            continue;
        }
        addresses.push_back(make_socket_address(ip, port));
    }
    ::freeaddrinfo(list);
    if (addresses.empty()) {
        return make_error("no IPv4 or IPv6 address");
    }
    return addresses;
}

enum class Wait { ready, timeout };

// Readiness includes POLLERR and POLLHUP: the next socket or TLS call then reports what happened.
Wait wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            return Wait::timeout;
        }
        pollfd entry{fd, events, 0};
        const int ready = ::poll(&entry, 1, static_cast<int>(left.count()));
        if (ready > 0 || (ready < 0 && errno != EINTR)) {
            return Wait::ready;
        }
    }
}

Socket connect_to(const SocketAddress& address, Clock::time_point deadline, std::string& error) {
    Socket socket(
        ::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket.valid()) {
        error = errno_text(errno);
        return {};
    }
    const int one = 1;
    ::setsockopt(socket.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(socket.fd(), reinterpret_cast<const sockaddr*>(&address.storage),
                  address.length) == 0) {
        return socket;
    }
    if (errno != EINPROGRESS) {
        error = errno_text(errno);
        return {};
    }
    if (wait_for(socket.fd(), POLLOUT, deadline) == Wait::timeout) {
        error = "timed out";
        return {};
    }
    int socket_error = 0;
    socklen_t length = sizeof socket_error;
    ::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &socket_error, &length);
    if (socket_error != 0) {
        error = errno_text(socket_error);
        return {};
    }
    return socket;
}

Result<void> send_all(int fd, std::string_view bytes, Clock::time_point deadline) {
    while (!bytes.empty()) {
        const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(sent));
        } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_for(fd, POLLOUT, deadline) == Wait::timeout) {
                return make_error("timed out sending CONNECT");
            }
        } else {
            return make_error(errno_text(errno));
        }
    }
    return {};
}

// CONNECT through an HTTP proxy. On success the socket is a tunnel to `authority`.
void open_tunnel(int fd, const std::string& authority, Clock::time_point deadline,
                 Observation& seen) {
    const std::string request = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority +
                                "\r\nUser-Agent: tlsgate-probe\r\n\r\n";
    if (auto sent = send_all(fd, request, deadline); !sent) {
        seen.outcome = Outcome::proxy_failed;
        seen.detail = sent.error();
        return;
    }
    std::string answer;
    std::size_t head_end = std::string::npos;
    char buffer[4096];
    while (head_end == std::string::npos) {
        if (answer.size() > kMaxProxyAnswer) {
            seen.outcome = Outcome::proxy_failed;
            seen.detail = "answer to CONNECT too long";
            return;
        }
        if (wait_for(fd, POLLIN, deadline) == Wait::timeout) {
            seen.outcome = Outcome::proxy_failed;
            seen.detail = "no answer to CONNECT in time";
            return;
        }
        const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
        if (got > 0) {
            answer.append(buffer, static_cast<std::size_t>(got));
            head_end = answer.find("\r\n\r\n");
        } else if (got == 0) {
            seen.outcome = Outcome::proxy_failed;
            seen.detail = "closed the connection before answering CONNECT";
            return;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            seen.outcome = Outcome::proxy_failed;
            seen.detail = errno_text(errno);
            return;
        }
    }
    const std::string status_line = answer.substr(0, answer.find("\r\n"));
    int status = 0;
    if (status_line.rfind("HTTP/1.", 0) == 0 && status_line.size() >= 12 && status_line[8] == ' ') {
        for (int i = 9; i < 12 && std::isdigit(static_cast<unsigned char>(status_line[i])); ++i) {
            status = status * 10 + (status_line[i] - '0');
        }
    }
    if (status < 100 || status > 999) {
        seen.outcome = Outcome::proxy_failed;
        seen.detail = "not an HTTP answer to CONNECT";
        return;
    }
    seen.proxy_status = status;
    if (status < 200 || status > 299) {
        seen.outcome = Outcome::proxy_refused;
        seen.detail = status_line;
        return;
    }
    if (head_end + 4 != answer.size()) {
        // A tunnel must stay silent until we speak; bytes here mean it is not a plain tunnel.
        seen.outcome = Outcome::proxy_failed;
        seen.detail = "bytes after the CONNECT answer, before the ClientHello";
        return;
    }
    seen.outcome = Outcome::handshake_done;  // so far so good: the caller goes on
}

// What the server sent first and which alert it sent, recorded while OpenSSL reads: the first
// bytes tell "not TLS at all" apart from a TLS failure, and OpenSSL names the alert it received
// only to the info callback.
struct HandshakeTrace {
    int alert = -1;
    std::string first_bytes;  // up to 64 bytes of the peer's answer to our ClientHello
    bool end_of_stream = false;
};

int trace_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

void record_alert(const SSL* ssl, int where, int value) {
    if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT) {
        return;
    }
    auto* trace = static_cast<HandshakeTrace*>(SSL_get_ex_data(ssl, trace_index()));
    if (trace != nullptr && trace->alert < 0) {
        trace->alert = value & 0xff;
    }
}

long record_first_bytes(BIO* bio, int operation, const char* data, std::size_t, int, long,
                        int result, std::size_t* processed) {
    if (operation != (BIO_CB_READ | BIO_CB_RETURN)) {
        return result;
    }
    auto* trace = reinterpret_cast<HandshakeTrace*>(BIO_get_callback_arg(bio));
    if (result > 0 && processed != nullptr && trace->first_bytes.size() < 64) {
        trace->first_bytes.append(
            data, std::min<std::size_t>(*processed, 64 - trace->first_bytes.size()));
    } else if (result == 0 && !BIO_should_retry(bio)) {  // the peer closed
        trace->end_of_stream = true;
    }
    return result;
}

bool looks_like_tls(const std::string& bytes) {
    // A record header: content type 20..23 (change_cipher_spec, alert, handshake, data), then
    // protocol version 3.x.
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
    if (bytes.empty() || data[0] < 20 || data[0] > 23) {
        return false;
    }
    return bytes.size() < 2 || data[1] == 3;
}

std::string printable(const std::string& bytes) {
    std::string text = "\"";
    for (const char byte : bytes) {
        const auto c = static_cast<unsigned char>(byte);
        if (c == '\r') {
            continue;
        }
        if (c == '\n') {
            break;
        }
        text.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.');
    }
    return text + "\"";
}

void tls_handshake(int fd, const Target& target, const ProbeSettings& settings, SSL_CTX* context,
                   Clock::time_point deadline, Observation& seen) {
    pki::SslPtr ssl(SSL_new(context));
    HandshakeTrace trace;
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
        seen.outcome = Outcome::tls_error;
        seen.detail = pki::last_openssl_error();
        return;
    }
    SSL_set_ex_data(ssl.get(), trace_index(), &trace);
    BIO* socket_bio = SSL_get_rbio(ssl.get());
    BIO_set_callback_arg(socket_bio, reinterpret_cast<char*>(&trace));
    BIO_set_callback_ex(socket_bio, record_first_bytes);
    if (!target.is_ip && SSL_set_tlsext_host_name(ssl.get(), target.host.c_str()) != 1) {
        seen.outcome = Outcome::tls_error;
        seen.detail = "cannot set SNI: " + pki::last_openssl_error();
        return;
    }
    if (!settings.alpn.empty()) {
        std::vector<unsigned char> wire;
        for (const auto& protocol : settings.alpn) {
            wire.push_back(static_cast<unsigned char>(protocol.size()));
            wire.insert(wire.end(), protocol.begin(), protocol.end());
        }
        SSL_set_alpn_protos(ssl.get(), wire.data(), static_cast<unsigned int>(wire.size()));
    }
    SSL_set_connect_state(ssl.get());

    const auto started = Clock::now();
    for (;;) {
        ERR_clear_error();
        errno = 0;
        const int done = SSL_do_handshake(ssl.get());
        if (done == 1) {
            break;
        }
        const int saved_errno = errno;
        const int error = SSL_get_error(ssl.get(), done);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            const short events = error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            if (wait_for(fd, events, deadline) == Wait::timeout) {
                seen.server_answered = !trace.first_bytes.empty();
                seen.outcome = Outcome::timeout;
                seen.detail = seen.server_answered ? "the handshake did not complete in time"
                                                   : "no answer to the ClientHello in time";
                return;
            }
            continue;
        }
        const unsigned long queued = ERR_peek_error();
        seen.server_answered = !trace.first_bytes.empty();
        if (seen.server_answered && !looks_like_tls(trace.first_bytes)) {
            // OpenSSL stopped at a 5-byte record header; the rest of the line says more.
            std::string bytes = trace.first_bytes;
            char more[64];
            if (wait_for(fd, POLLIN, std::min(deadline, Clock::now() + 100ms)) == Wait::ready) {
                const ssize_t got = ::recv(fd, more, sizeof more - bytes.size(), MSG_DONTWAIT);
                if (got > 0) {
                    bytes.append(more, static_cast<std::size_t>(got));
                }
            }
            seen.outcome = Outcome::not_tls;
            seen.detail = printable(bytes);
        } else if (trace.alert > 0) {
            seen.server_answered = true;
            seen.outcome = Outcome::alert;
            seen.alert = trace.alert;
            seen.detail = SSL_alert_desc_string_long(trace.alert);
        } else if (saved_errno == ECONNRESET || saved_errno == EPIPE) {
            seen.outcome = Outcome::reset;
            seen.detail = errno_text(saved_errno);
        } else if (trace.alert == 0 || trace.end_of_stream || error == SSL_ERROR_ZERO_RETURN ||
                   (error == SSL_ERROR_SYSCALL && saved_errno == 0 && queued == 0) ||
                   ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            seen.outcome = Outcome::closed;
            seen.detail = "the peer closed the connection during the handshake";
        } else {
            seen.outcome = Outcome::tls_error;
            seen.detail = queued != 0 ? pki::last_openssl_error() : errno_text(saved_errno);
        }
        ERR_clear_error();
        return;
    }
    seen.timings.handshake_ms = milliseconds_since(started);
    seen.outcome = Outcome::handshake_done;
    seen.server_answered = true;
    // Client side: the chain includes the leaf, in the order the server sent it.
    if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl.get())) {
        for (int i = 0; i < sk_X509_num(chain); ++i) {
            unsigned char* der = nullptr;
            const int length = i2d_X509(sk_X509_value(chain, i), &der);
            if (length > 0) {
                seen.chain_der.emplace_back(reinterpret_cast<const char*>(der),
                                            static_cast<std::size_t>(length));
            }
            OPENSSL_free(der);
        }
    }
    seen.tls_version = tls::version_name(ssl.get());
    seen.cipher = SSL_get_cipher_name(ssl.get());
    seen.alpn = tls::selected_alpn(ssl.get());
    // Say goodbye properly and read what is already there (TLS 1.3 session tickets), so closing
    // sends a FIN rather than a reset that a gateway would log as an abort.
    SSL_shutdown(ssl.get());
    ::shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
    ERR_clear_error();
}

Observation run_probe(const Target& target, const ProbeSettings& settings, SSL_CTX* context,
                      const std::vector<SocketAddress>& proxy_addresses) {
    Observation seen;
    std::vector<SocketAddress> addresses;
    if (settings.proxy) {
        addresses = proxy_addresses;
    } else if (settings.connect) {
        addresses.push_back(make_socket_address(settings.connect->address, settings.connect->port));
    } else if (target.is_ip) {
        addresses.push_back(make_socket_address(*IpAddress::parse(target.host), target.port));
    } else {
        const auto started = Clock::now();
        auto resolved = resolve(target.host, target.port);
        seen.timings.resolve_ms = milliseconds_since(started);
        if (!resolved) {
            seen.outcome = Outcome::resolve_failed;
            seen.detail = resolved.error();
            return seen;
        }
        addresses = std::move(*resolved);
    }

    const auto deadline = Clock::now() + settings.timeout;
    const auto connect_started = Clock::now();
    Socket socket;
    std::string error;
    // Every address in turn (as browsers fall back), within the one deadline.
    for (const auto& address : addresses) {
        seen.peer_address = address.text;
        socket = connect_to(address, deadline, error);
        if (socket.valid() || Clock::now() >= deadline) {
            break;
        }
    }
    if (!socket.valid()) {
        seen.outcome = Outcome::connect_failed;
        seen.detail = error;
        return seen;
    }
    seen.timings.connect_ms = milliseconds_since(connect_started);

    if (settings.proxy) {
        const auto proxy_started = Clock::now();
        // With --connect, the tunnel goes to that address and only the SNI names the target:
        // how SNI-triggered interception in the path is told apart from the server itself.
        const std::string authority = settings.connect ? settings.connect->text() : target.text();
        open_tunnel(socket.fd(), authority, deadline, seen);
        if (seen.proxy_status != 0) {
            seen.timings.proxy_ms = milliseconds_since(proxy_started);
        }
        if (seen.outcome != Outcome::handshake_done) {
            return seen;
        }
    }
    tls_handshake(socket.fd(), target, settings, context, deadline, seen);
    return seen;
}

}  // namespace

Result<pki::SslCtxPtr> make_probe_context() {
    pki::SslCtxPtr context(SSL_CTX_new(TLS_client_method()));
    if (!context) {
        return make_error("SSL_CTX_new: " + pki::last_openssl_error());
    }
    // Observe, do not judge: old versions and weak parameters are accepted on the wire so that
    // an interceptor using them is still seen; its chain is judged strictly by classify.
    if (SSL_CTX_set_min_proto_version(context.get(), TLS1_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(context.get(), "DEFAULT:@SECLEVEL=0") != 1) {
        return make_error("probe TLS context: " + pki::last_openssl_error());
    }
    SSL_CTX_set_security_level(context.get(), 0);
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr);
    // A resumed session shows no certificate, so every handshake is a full one.
    SSL_CTX_set_session_cache_mode(context.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(context.get(),
                        SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_info_callback(context.get(), record_alert);
    return context;
}

Result<std::vector<Observation>> observe_all(const std::vector<Target>& targets,
                                             const ProbeSettings& settings, SSL_CTX* context) {
    // OpenSSL writes to the socket with write(2); a peer that resets must not kill the process.
    std::signal(SIGPIPE, SIG_IGN);
    std::vector<SocketAddress> proxy_addresses;
    if (settings.proxy) {
        if (settings.proxy->host_is_ip) {
            proxy_addresses.push_back(
                make_socket_address(*IpAddress::parse(settings.proxy->host), settings.proxy->port));
        } else {
            auto resolved = resolve(settings.proxy->host, settings.proxy->port);
            if (!resolved) {
                return make_error("cannot resolve the proxy " + settings.proxy->host + ": " +
                                  resolved.error());
            }
            proxy_addresses = std::move(*resolved);
        }
    }
    std::vector<Observation> observations(targets.size());
    if (targets.empty()) {
        return observations;
    }
    std::atomic<std::size_t> next{0};
    const auto work = [&] {
        for (std::size_t i = next++; i < targets.size(); i = next++) {
            const auto started = Clock::now();
            observations[i] = run_probe(targets[i], settings, context, proxy_addresses);
            observations[i].timings.total_ms = milliseconds_since(started);
        }
    };
    const int threads_wanted =
        std::clamp<int>(settings.concurrency, 1,
                        static_cast<int>(std::min<std::size_t>(targets.size(), kMaxThreads)));
    std::vector<std::thread> threads;
    for (int i = 1; i < threads_wanted; ++i) {
        threads.emplace_back(work);
    }
    work();  // this thread works too
    for (auto& thread : threads) {
        thread.join();
    }
    return observations;
}

}  // namespace tlsgate::probe
