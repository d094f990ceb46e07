#include "relay/aia_fetch.hpp"

#include <array>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <string>
#include <vector>

#include "relay/connection.hpp"

namespace tlsgate::relay {
namespace {

using asio::ip::tcp;

asio::awaitable<Result<std::vector<tcp::endpoint>>> resolve(WorkerContext& worker,
                                                            const tls::HttpUrl& url) {
    std::vector<tcp::endpoint> endpoints;
    std::error_code error;
    const auto& static_hosts = worker.shared.static_hosts;
    if (const auto literal = asio::ip::make_address(url.host, error); !error) {
        endpoints.emplace_back(literal, url.port);
    } else if (const auto fixed = static_hosts.find(url.host); fixed != static_hosts.end()) {
        endpoints.emplace_back(asio::ip::make_address(fixed->second.to_string()), url.port);
    } else {
        tcp::resolver resolver(worker.io);
        const std::string service = std::to_string(url.port);
        const auto results = co_await resolver.async_resolve(
            url.host, service, asio::redirect_error(asio::use_awaitable, error));
        if (error) {
            co_return make_error("cannot resolve " + url.host + ": " + error.message());
        }
        for (const auto& entry : results) {
            endpoints.push_back(entry.endpoint());
        }
    }
    co_return endpoints;
}

// The whole response, read until the server closes (the request asks it to).
asio::awaitable<Result<std::string>> fetch_response(WorkerContext& worker, const tls::HttpUrl& url,
                                                    std::size_t max_bytes) {
    auto endpoints = co_await resolve(worker, url);
    if (!endpoints) {
        co_return make_error(endpoints.error());
    }
    tcp::socket socket(worker.io);
    std::error_code error = asio::error::host_not_found;
    for (const auto& endpoint : *endpoints) {
        socket = tcp::socket(worker.io);
        co_await socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, error));
        if (!error) {
            break;
        }
    }
    if (error) {
        co_return make_error("cannot connect to " + authority_text(url.host, url.port) + ": " +
                             error.message());
    }
    // HTTP/1.0: the body then ends with the connection, never in chunks.
    const std::string host =
        url.port == 80 ? (url.host.find(':') == std::string::npos ? url.host : "[" + url.host + "]")
                       : authority_text(url.host, url.port);
    const std::string request = "GET " + url.path + " HTTP/1.0\r\nHost: " + host +
                                "\r\nUser-Agent: tlsgate\r\nAccept: */*\r\n"
                                "Connection: close\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(request),
                               asio::redirect_error(asio::use_awaitable, error));
    if (error) {
        co_return make_error("cannot send the request: " + error.message());
    }
    std::string response;
    std::array<char, 16 * 1024> chunk;
    for (;;) {
        const std::size_t n = co_await socket.async_read_some(
            asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, error));
        response.append(chunk.data(), n);
        if (response.size() > max_bytes) {
            co_return make_error("response larger than " + std::to_string(max_bytes) + " bytes");
        }
        if (error == asio::error::eof) {
            co_return response;
        }
        if (error) {
            co_return make_error("reading the response: " + error.message());
        }
    }
}

asio::awaitable<void> expire(asio::steady_timer& timer) {
    std::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

}  // namespace

asio::awaitable<Result<pki::X509Ptr>> fetch_issuer_certificate(WorkerContext& worker,
                                                               const tls::HttpUrl& url,
                                                               const AiaFetchLimits& limits) {
    using namespace asio::experimental::awaitable_operators;
    constexpr std::size_t kMaxHead = 16 * 1024;
    const std::size_t max_bytes = limits.max_body + kMaxHead;
    asio::steady_timer timer(worker.io);
    timer.expires_after(limits.time);
    // The loser is cancelled: a slow server's socket operations end at the deadline.
    auto outcome = co_await (fetch_response(worker, url, max_bytes) || expire(timer));
    if (outcome.index() == 1) {
        co_return make_error("timed out");
    }
    auto response = std::get<0>(std::move(outcome));
    if (!response) {
        co_return make_error(response.error());
    }
    auto body = tls::http_response_body(*response, limits.max_body);
    if (!body) {
        co_return make_error(body.error());
    }
    pki::X509Ptr certificate = tls::decode_issuer_certificate(*body);
    if (!certificate) {
        co_return make_error("the response is not a certificate");
    }
    co_return certificate;
}

}  // namespace tlsgate::relay
