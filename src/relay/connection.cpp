#include "relay/connection.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <netinet/in.h>

#include <cstring>

#include "relay/byte_stream.hpp"

namespace tlsgate::relay {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string endpoint_text(const tcp::endpoint& endpoint) {
    const auto address = endpoint.address();
    const std::string host =
        address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return host + ":" + std::to_string(endpoint.port());
}

std::string authority_text(const std::string& host, std::uint16_t port) {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool blocked_by_policy(Connection& connection, const std::string& host,
                       std::optional<IpAddress> address, std::uint16_t port) {
    const auto decision =
        connection.worker.policy->decide({host, address, port, connection.client_ip});
    if (decision.action != policy::Action::block) {
        return false;
    }
    ++connection.worker.counters.blocked;
    connection.record.action = "block";
    connection.record.rule = decision.rule_name;
    connection.record.reason = "blocked by policy";
    return true;
}

Connection::Connection(WorkerContext& worker_context, tcp::socket client_socket,
                       std::string listener)
    : worker(worker_context),
      client(std::move(client_socket)),
      upstream(worker_context.io),
      timer_(worker_context.io),
      started_(Clock::now()) {
    ++worker.counters.open_connections;
    ++worker.counters.accepted;
    record.id = (static_cast<std::uint64_t>(worker.index) << 48) | ++worker.next_connection;
    record.start = std::chrono::system_clock::now();
    record.listener = std::move(listener);
    record.action = "none";
    std::error_code error;
    const auto peer = client.remote_endpoint(error);
    if (!error) {
        record.client_address = endpoint_text(peer);
        client_ip = IpAddress::parse(peer.address().to_string());
        if (client_ip) {
            client_ip = client_ip->unmapped();
        }
    }
}

namespace {

ListenerKind listener_kind(std::string_view listener) {
    if (listener.starts_with("transparent"))
        return ListenerKind::transparent;
    if (listener.starts_with("tproxy"))
        return ListenerKind::tproxy;
    if (listener.starts_with("socks5"))
        return ListenerKind::socks5;
    if (listener.starts_with("portal"))
        return ListenerKind::portal;
    return ListenerKind::explicit_proxy;
}

Outcome outcome_of(const record::ConnectionRecord& record) {
    if (record.action == "intercept")
        return Outcome::intercept;
    if (record.action == "block")
        return Outcome::block;
    if (record.action == "passthrough") {
        return record.kind == "raw" ? Outcome::relay : Outcome::passthrough;
    }
    if (record.kind == "http")
        return Outcome::http;
    if (record.kind == "portal")
        return Outcome::portal;
    return Outcome::error;
}

void count_ended(Counters& counters, const record::ConnectionRecord& record) {
    const auto kind = static_cast<std::size_t>(listener_kind(record.listener));
    const auto outcome = static_cast<std::size_t>(outcome_of(record));
    ++counters.connections[kind][outcome];
    counters.bytes_client_to_server.add(record.bytes_client_to_server);
    counters.bytes_server_to_client.add(record.bytes_server_to_client);
}

}  // namespace

Connection::~Connection() {
    // Exchanges still open are recorded while the connection's facts are intact.
    inspector.reset();
    record.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
    if (timed_out_phase_ != nullptr && record.error.empty()) {
        record.error = std::string("timeout: ") + timed_out_phase_;
    }
    count_ended(worker.counters, record);
    worker.outbox.add(std::move(record));
    if (admitted && worker.shared.limits != nullptr) {
        worker.shared.limits->release(admitted_client ? &*admitted_client : nullptr);
    }
    --worker.counters.open_connections;
}

bool is_upstream_phase(const char* phase) {
    const std::string_view name = phase == nullptr ? "" : phase;
    return name == "connect" || name == "upstream_handshake" || name == "response_head";
}

void Connection::arm_timeout(Clock::duration limit, const char* phase) {
    limit_ = limit;
    phase_ = phase;
    deadline_ = Clock::now() + limit;
    // Until the relay starts, every phase also counts against the total: a connection that keeps
    // each phase just under its own limit still ends.
    if (std::string_view(phase) == "idle") {
        relaying_ = true;
    } else if (!relaying_) {
        deadline_ = std::min(deadline_, started_ + worker.timeouts.total);
    }
    if (!timer_running_) {
        wait_for_deadline();
    } else if (deadline_ < timer_.expiry()) {
        // A shorter limit than the one being waited for: the handler re-waits for the new one.
        timer_.cancel();
    }
}

void Connection::disarm() {
    deadline_ = Clock::time_point::max();
}

void Connection::abort() {
    abort_socket(client);
    abort_socket(upstream);
}

void Connection::wait_for_deadline() {
    timer_running_ = true;
    timer_.expires_at(deadline_);
    timer_.async_wait([weak = weak_from_this()](std::error_code error) {
        const auto self = weak.lock();
        if (!self) {
            return;
        }
        self->timer_running_ = false;
        if (self->deadline_ == Clock::time_point::max()) {
            return;
        }
        if (error != asio::error::operation_aborted && Clock::now() >= self->deadline_) {
            self->timed_out_phase_ = self->phase_;
            ++self->worker.counters.timeouts;
            // Upstream was too slow: end only that side, so the client still gets an answer (a
            // 504, a TLS alert) instead of a bare close.
            if (is_upstream_phase(self->phase_)) {
                abort_socket(self->upstream);
            } else {
                self->abort();
            }
            return;
        }
        self->wait_for_deadline();
    });
}

namespace {

// IP_TRANSPARENT lets the socket bind to an address that is not the gateway's; the router's
// "-m socket --transparent" rule brings the server's answers back to it.
Result<void> bind_to_client_address(Connection& connection, const tcp::endpoint& destination) {
    std::error_code error;
    const auto client = asio::ip::make_address(connection.client_ip->to_string(), error);
    if (error || client.is_v6() != destination.address().is_v6()) {
        return make_error("the client and the server are of different address families");
    }
    connection.upstream.open(destination.protocol(), error);
    if (error) {
        return make_error(error.message());
    }
    const int one = 1;
    const bool v6 = client.is_v6();
    if (setsockopt(connection.upstream.native_handle(), v6 ? SOL_IPV6 : SOL_IP,
                   v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one, sizeof one) != 0) {
        return make_error(std::string("IP_TRANSPARENT: ") + std::strerror(errno));
    }
    connection.upstream.bind(tcp::endpoint(client, 0), error);
    if (error) {
        return make_error(error.message());
    }
    return {};
}

}  // namespace

asio::awaitable<Result<IpAddress>> connect_upstream(Connection& connection, const std::string& host,
                                                    std::uint16_t port) {
    connection.arm_timeout(connection.worker.timeouts.connect, "connect");
    std::vector<tcp::endpoint> endpoints;
    std::error_code error;
    const auto& static_hosts = connection.worker.shared.static_hosts;
    if (auto literal = asio::ip::make_address(host, error); !error) {
        endpoints.emplace_back(literal, port);
    } else if (auto fixed = static_hosts.find(host); fixed != static_hosts.end()) {
        endpoints.emplace_back(asio::ip::make_address(fixed->second.to_string()), port);
    } else {
        tcp::resolver resolver(connection.worker.io);
        const std::string service = std::to_string(port);
        auto results = co_await resolver.async_resolve(
            host, service, asio::redirect_error(asio::use_awaitable, error));
        if (connection.timed_out_phase() != nullptr) {
            co_return make_error("timed out resolving " + host);
        }
        if (error) {
            co_return make_error("cannot resolve " + host + ": " + error.message());
        }
        for (const auto& entry : results) {
            endpoints.push_back(entry.endpoint());
        }
    }
    // Never connect back to the listener the client came in on: that loop would feed itself.
    const auto& listener = connection.listener_endpoint;
    std::string last_error = "no address";
    for (const auto& endpoint : endpoints) {
        const bool same_port_any_address = listener.address().is_unspecified() &&
                                           endpoint.port() == listener.port() &&
                                           endpoint.address().is_loopback();
        if (endpoint == listener || same_port_any_address) {
            co_return make_error("refusing to connect to tlsgate's own listener " +
                                 endpoint_text(endpoint));
        }
        std::error_code connect_error;
        connection.upstream = tcp::socket(connection.worker.io);
        if (connection.spoof_source && connection.client_ip) {
            if (auto bound = bind_to_client_address(connection, endpoint); !bound) {
                co_return make_error("cannot connect from the client's address: " + bound.error());
            }
        }
        co_await connection.upstream.async_connect(
            endpoint, asio::redirect_error(asio::use_awaitable, connect_error));
        if (!connect_error) {
            connection.upstream.set_option(tcp::no_delay(true), connect_error);
            const auto address = endpoint.address();
            auto parsed = IpAddress::parse(address.to_string());
            connection.record.destination_address = endpoint_text(endpoint);
            co_return *parsed;
        }
        if (connection.timed_out_phase() != nullptr) {
            co_return make_error("timed out connecting to " + endpoint_text(endpoint));
        }
        last_error = endpoint_text(endpoint) + ": " + connect_error.message();
    }
    co_return make_error("cannot connect to " + host + ":" + std::to_string(port) + " (" +
                         last_error + ")");
}

}  // namespace tlsgate::relay
