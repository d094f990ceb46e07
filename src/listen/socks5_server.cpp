#include "listen/socks5_server.hpp"

#include <array>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "common/hostname.hpp"
#include "relay/dialogue_tunnel.hpp"

namespace tlsgate::listen {
namespace {

using asio::ip::tcp;

asio::awaitable<bool> send(relay::Connection& connection, const std::vector<std::uint8_t>& bytes) {
    if (bytes.empty()) {
        co_return true;
    }
    std::error_code error;
    co_await asio::async_write(connection.client, asio::buffer(bytes),
                               asio::redirect_error(asio::use_awaitable, error));
    co_return !error;
}

// SOCKS has a reply code for each way a connect fails; connect_upstream says which in words.
Socks5Reply reply_for_connect_failure(const std::string& error) {
    if (error.find("refused") != std::string::npos) {
        return Socks5Reply::connection_refused;
    }
    if (error.find("resolve") != std::string::npos) {
        return Socks5Reply::host_unreachable;
    }
    if (error.find("timed out") != std::string::npos) {
        return Socks5Reply::ttl_expired;
    }
    if (error.find("unreachable") != std::string::npos) {
        return Socks5Reply::network_unreachable;
    }
    return Socks5Reply::general_failure;
}

}  // namespace

asio::awaitable<void> serve_socks5(std::shared_ptr<relay::Connection> connection,
                                   std::shared_ptr<const Socks5AuthConfig> auth,
                                   std::vector<std::uint8_t> already_read) {
    auto& worker = connection->worker;
    auto& record = connection->record;
    record.kind = "socks5";
    connection->arm_timeout(worker.timeouts.request_head, "socks5_request");

    Socks5ServerHandshake handshake(std::move(auth));
    std::vector<std::uint8_t> pending = std::move(already_read);
    std::array<std::uint8_t, 1024> chunk;
    for (;;) {
        if (!pending.empty()) {
            const Socks5Step step = handshake.feed(pending);
            pending.erase(pending.begin(), pending.begin() + static_cast<long>(step.consumed));
            if (!co_await send(*connection, step.reply)) {
                co_return;
            }
            if (step.status == Socks5Status::failed) {
                ++worker.counters.bad_request;
                record.error = "SOCKS5: " + handshake.error();
                co_return;
            }
            if (step.status == Socks5Status::request_ready) {
                break;
            }
        }
        std::error_code error;
        const std::size_t n = co_await connection->client.async_read_some(
            asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, error));
        if (error) {
            if (handshake.bytes_consumed() != 0 && connection->timed_out_phase() == nullptr) {
                record.error = "client closed during the SOCKS5 handshake";
            }
            co_return;
        }
        pending.insert(pending.end(), chunk.begin(), chunk.begin() + static_cast<long>(n));
    }

    const auto& destination = handshake.request().destination;
    std::string host;
    if (destination.is_domain()) {
        auto normalized = normalize_hostname(std::get<std::string>(destination.host));
        if (!normalized) {
            record.error = "SOCKS5: invalid host name";
            co_await send(*connection,
                          Socks5ServerHandshake::reply_for(Socks5Reply::general_failure));
            co_return;
        }
        host = std::move(*normalized);
    } else {
        host = std::get<IpAddress>(destination.host).to_string();
    }
    const std::uint16_t port = destination.port;
    record.destination = relay::authority_text(host, port);
    if (!handshake.request().username.empty()) {
        record.reason = "SOCKS5 user " + handshake.request().username;
    }

    const auto refusal = Socks5ServerHandshake::reply_for(Socks5Reply::not_allowed_by_ruleset);
    if (relay::blocked_by_policy(*connection, host, IpAddress::parse(host), port)) {
        co_await send(*connection, refusal);
        co_return;
    }
    auto connected = co_await relay::connect_upstream(*connection, host, port);
    if (!connected) {
        ++worker.counters.upstream_connect_failed;
        record.error = connected.error();
        const auto failure =
            Socks5ServerHandshake::reply_for(reply_for_connect_failure(connected.error()));
        co_await send(*connection, failure);
        co_return;
    }
    if (relay::blocked_by_policy(*connection, host, *connected, port)) {
        co_await send(*connection, refusal);
        co_return;
    }
    std::error_code error;
    const auto bound = connection->upstream.local_endpoint(error);
    const auto bound_address = IpAddress::parse(bound.address().to_string());
    const auto success = Socks5ServerHandshake::reply_for(
        Socks5Reply::succeeded, bound_address.value_or(IpAddress{}), bound.port());
    if (!co_await send(*connection, success)) {
        co_return;
    }
    relay::TunnelTarget target{host, port, *connected};
    co_await relay::run_in_path_tunnel(connection, std::move(pending), std::move(target));
}

}  // namespace tlsgate::listen
