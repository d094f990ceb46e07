#include "listen/explicit_proxy.hpp"

#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "common/hostname.hpp"
#include "inspect/http1.hpp"
#include "relay/dialogue_tunnel.hpp"
#include "relay/http_forward.hpp"
#include "relay/socket_read.hpp"

namespace tlsgate::listen {

using asio::ip::tcp;

namespace {

// Reads until the request head has a verdict; need_more means the client went away (or timed
// out). A client slow to send its head holds no read buffer meanwhile (see append_available).
asio::awaitable<http1::HeadResult<http1::RequestHead>> read_request_head(
    relay::Connection& connection, std::string& buffer) {
    for (;;) {
        auto request = http1::parse_request_head(buffer);
        if (request.status != http1::ParseStatus::need_more) {
            co_return request;
        }
        const std::error_code error = co_await relay::append_available(connection.client, buffer);
        if (error) {
            if (!buffer.empty() && connection.timed_out_phase() == nullptr) {
                connection.record.error = "client closed inside the request head";
            }
            co_return request;
        }
    }
}

}  // namespace

asio::awaitable<void> serve_explicit(std::shared_ptr<relay::Connection> connection,
                                     std::string already_read) {
    auto& worker = connection->worker;
    auto& record = connection->record;
    record.kind = "proxy";
    connection->arm_timeout(worker.timeouts.request_head, "request_head");

    std::string buffer = std::move(already_read);
    const auto request = co_await read_request_head(*connection, buffer);
    if (request.status == http1::ParseStatus::need_more) {
        co_return;
    }
    if (request.status == http1::ParseStatus::error) {
        ++worker.counters.bad_request;
        record.error = "bad request: " + request.error;
        co_await relay::send_proxy_error(*connection, 400, "Bad Request", request.error);
        co_return;
    }

    const auto& head = request.head;
    if (head.method != "CONNECT") {
        co_await relay::forward_plain_http(connection, std::move(buffer));
        co_return;
    }
    const auto authority = http1::parse_authority(head.target);
    std::string host;
    if (authority) {
        if (IpAddress::parse(authority->host)) {
            host = authority->host;
        } else if (auto normalized = normalize_hostname(authority->host)) {
            host = std::move(*normalized);
        }
    }
    if (host.empty()) {
        ++worker.counters.bad_request;
        record.error = "bad CONNECT target: " + head.target;
        co_await relay::send_proxy_error(*connection, 400, "Bad Request",
                                         "CONNECT needs host:port");
        co_return;
    }
    const std::uint16_t port = authority->port;
    record.destination = relay::authority_text(host, port);

    // GCC 12 destroys temporaries inside a co_await expression twice: arguments are named.
    std::string block_reason;
    if (relay::blocked_by_policy(*connection, host, IpAddress::parse(host), port)) {
        block_reason = "blocked by tlsgate policy (" + record.rule + ")";
        co_await relay::send_proxy_error(*connection, 403, "Forbidden", block_reason);
        co_return;
    }
    auto connected = co_await relay::connect_upstream(*connection, host, port);
    if (!connected) {
        ++worker.counters.upstream_connect_failed;
        record.reason = connected.error();
        co_await relay::send_upstream_failure(*connection, connected.error());
        co_return;
    }
    // Address rules (CIDRs) can only match once the name is resolved.
    if (relay::blocked_by_policy(*connection, host, *connected, port)) {
        block_reason = "blocked by tlsgate policy (" + record.rule + ")";
        co_await relay::send_proxy_error(*connection, 403, "Forbidden", block_reason);
        co_return;
    }
    static constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";
    std::error_code error;
    co_await asio::async_write(connection->client, asio::buffer(kEstablished),
                               asio::redirect_error(asio::use_awaitable, error));
    if (error) {
        co_return;
    }
    record.http_status = 200;
    // A client may send its ClientHello right behind the CONNECT without waiting for the 200.
    std::vector<std::uint8_t> tunnel_bytes(buffer.begin() + static_cast<long>(request.head_size),
                                           buffer.end());
    relay::TunnelTarget target{host, port, *connected};
    co_await relay::run_in_path_tunnel(connection, std::move(tunnel_bytes), std::move(target));
}

}  // namespace tlsgate::listen
