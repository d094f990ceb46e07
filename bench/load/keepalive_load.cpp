// A light keep-alive HTTPS load generator for bench/recording_bench.py: through an explicit
// proxy (CONNECT), one TLS connection per thread, GET after GET for a fixed time. curl as the
// client spent more CPU than the gateway it measured, which buried the gateway's own cost in
// noise; this client does little more than the syscalls and the TLS records.
//
//   keepalive_load PROXY_HOST PROXY_PORT TARGET_HOST TARGET_PORT PATH CA_FILE CONNECTIONS SECONDS
//
// Prints "requests N seconds S" on success; any failed request or handshake is an error (exit 1).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Target {
    std::string proxy_host;
    int proxy_port = 0;
    std::string host;
    int port = 0;
    std::string path;
};

[[noreturn]] void die(const std::string& why) {
    std::fprintf(stderr, "keepalive_load: %s\n", why.c_str());
    ERR_print_errors_fp(stderr);
    std::exit(1);
}

int connect_through_proxy(const Target& target) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(target.proxy_port));
    if (inet_pton(AF_INET, target.proxy_host.c_str(), &address.sin_addr) != 1) {
        die("proxy host must be an IPv4 address");
    }
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        die("cannot connect to the proxy");
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const std::string authority = target.host + ":" + std::to_string(target.port);
    const std::string request =
        "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
    if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
        die("cannot send CONNECT");
    }
    // Read the proxy's answer byte by byte: nothing of the TLS stream may be consumed here.
    std::string answer;
    char c = 0;
    while (answer.size() < 4096 && read(fd, &c, 1) == 1) {
        answer += c;
        if (answer.ends_with("\r\n\r\n")) {
            break;
        }
    }
    if (!answer.starts_with("HTTP/1.1 200")) {
        die("proxy refused CONNECT: " + answer.substr(0, answer.find('\r')));
    }
    return fd;
}

// Reads one response (head with Content-Length, then the body); false on any failure.
bool read_response(SSL* ssl, std::string& buffer) {
    std::size_t head_end = std::string::npos;
    std::size_t body_length = 0;
    char chunk[16384];
    while (true) {
        if (head_end == std::string::npos) {
            head_end = buffer.find("\r\n\r\n");
            if (head_end != std::string::npos) {
                if (!buffer.starts_with("HTTP/1.1 200")) {
                    return false;
                }
                const std::size_t field = buffer.find("\r\nContent-Length: ");
                if (field == std::string::npos || field > head_end) {
                    return false;
                }
                body_length = std::strtoull(buffer.c_str() + field + 18, nullptr, 10);
                head_end += 4;
            }
        }
        if (head_end != std::string::npos && buffer.size() >= head_end + body_length) {
            buffer.erase(0, head_end + body_length);
            return true;
        }
        const int got = SSL_read(ssl, chunk, sizeof chunk);
        if (got <= 0) {
            return false;
        }
        buffer.append(chunk, static_cast<std::size_t>(got));
    }
}

void run_connection(SSL_CTX* context, const Target& target,
                    std::chrono::steady_clock::time_point until, std::atomic<long>& requests) {
    const int fd = connect_through_proxy(target);
    SSL* ssl = SSL_new(context);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, target.host.c_str());
    SSL_set1_host(ssl, target.host.c_str());
    if (SSL_connect(ssl) != 1) {
        die("TLS handshake through the proxy failed");
    }
    const std::string request = "GET " + target.path + " HTTP/1.1\r\nHost: " + target.host +
                                "\r\nUser-Agent: keepalive_load\r\nAccept: */*\r\n\r\n";
    std::string buffer;
    long done = 0;
    while (std::chrono::steady_clock::now() < until) {
        if (SSL_write(ssl, request.data(), static_cast<int>(request.size())) <= 0 ||
            !read_response(ssl, buffer)) {
            die("request " + std::to_string(done + 1) + " failed");
        }
        ++done;
    }
    requests += done;
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 9) {
        std::fprintf(stderr,
                     "usage: keepalive_load PROXY_HOST PROXY_PORT TARGET_HOST TARGET_PORT PATH "
                     "CA_FILE CONNECTIONS SECONDS\n");
        return 2;
    }
    const Target target{argv[1], std::atoi(argv[2]), argv[3], std::atoi(argv[4]), argv[5]};
    const int connections = std::atoi(argv[7]);
    const double seconds = std::atof(argv[8]);

    SSL_CTX* context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(context, argv[6], nullptr) != 1) {
        die(std::string("cannot load ") + argv[6]);
    }
    const auto started = std::chrono::steady_clock::now();
    const auto until = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(seconds));
    std::atomic<long> requests{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < connections; ++i) {
        threads.emplace_back(run_connection, context, std::cref(target), until, std::ref(requests));
    }
    for (std::thread& thread : threads) {
        thread.join();
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("requests %ld seconds %.3f\n", requests.load(), elapsed);
    SSL_CTX_free(context);
    return 0;
}
