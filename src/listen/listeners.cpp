#include "listen/listeners.hpp"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

#include "listen/explicit_proxy.hpp"
#include "listen/portal_server.hpp"
#include "listen/proxy_protocol.hpp"
#include "listen/socks5_server.hpp"
#include "relay/connection.hpp"
#include "relay/dialogue_tunnel.hpp"

namespace tlsgate::listen {

using asio::ip::tcp;

namespace {

// The destination a REDIRECTed connection was headed for, from netfilter's conntrack entry.
std::optional<tcp::endpoint> original_destination(tcp::socket& socket) {
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    const int fd = socket.native_handle();
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &storage, &length) != 0 &&
        getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &storage, &length) != 0) {
        return std::nullopt;
    }
    tcp::endpoint endpoint;
    std::memcpy(endpoint.data(), &storage, std::min<std::size_t>(length, endpoint.capacity()));
    endpoint.resize(length);
    return endpoint;
}

tcp::endpoint to_endpoint(const ProxyEndpoint& endpoint) {
    std::error_code ignored;
    return {asio::ip::make_address(endpoint.address.to_string(), ignored), endpoint.port};
}

// In the path: the client connected to the real server's address and never saw a proxy.
// `announced` is the original destination a PROXY protocol header named, if any.
asio::awaitable<void> serve_in_path(std::shared_ptr<relay::Connection> connection, Mode mode,
                                    tcp::endpoint listener, std::optional<tcp::endpoint> announced,
                                    std::vector<std::uint8_t> already_read) {
    auto& record = connection->record;
    std::error_code error;
    const auto local = connection->client.local_endpoint(error);
    // TPROXY delivers the connection to a socket bound to the destination itself; REDIRECT
    // rewrites the destination and conntrack remembers the original; a load balancer in front
    // says it in the PROXY header.
    const auto destination = announced              ? announced
                             : mode == Mode::tproxy ? std::optional<tcp::endpoint>(local)
                                                    : original_destination(connection->client);
    // REDIRECT of a connection to the router's own address on port 80: the client asked for the
    // gateway itself (the operator's DNS points tlsgate.local here), so the portal answers.
    if (!error && destination && !announced && mode == Mode::transparent &&
        destination->address() == local.address() && destination->port() == 80 &&
        connection->worker.shared.portal != nullptr) {
        std::string text(already_read.begin(), already_read.end());
        co_await serve_portal(std::move(connection), std::move(text));
        co_return;
    }
    if (error || !destination || *destination == listener ||
        (!announced && mode == Mode::transparent && *destination == local)) {
        record.error = "no original destination (a direct connection to the in-path listener?)";
        co_return;
    }
    record.destination = relay::endpoint_text(*destination);
    const auto address_text = destination->address().to_string();
    auto connected =
        co_await relay::connect_upstream(*connection, address_text, destination->port());
    if (!connected) {
        ++connection->worker.counters.upstream_connect_failed;
        record.error = connected.error();
        co_return;
    }
    // Named arguments: GCC 12 mishandles temporaries inside co_await expressions.
    relay::TunnelTarget target{"", destination->port(), *connected};
    co_await relay::run_in_path_tunnel(connection, std::move(already_read), std::move(target));
}

// A listener with "+proxy" trusts the PROXY header (from HAProxy or a load balancer in front) for
// who the client is and where it was going; a connection without a valid one is refused.
asio::awaitable<std::optional<ProxyHeader>> read_proxy_header(relay::Connection& connection,
                                                              std::vector<std::uint8_t>& buffer) {
    connection.arm_timeout(connection.worker.timeouts.request_head, "proxy_header");
    std::array<std::uint8_t, 512> chunk;
    for (;;) {
        auto parsed = parse_proxy_header(buffer);
        if (parsed.status == ProxyHeaderStatus::complete) {
            buffer.erase(buffer.begin(), buffer.begin() + static_cast<long>(parsed.header.length));
            co_return parsed.header;
        }
        if (parsed.status == ProxyHeaderStatus::invalid) {
            ++connection.worker.counters.bad_proxy_header;
            connection.record.error = "PROXY protocol header required: " + parsed.error;
            co_return std::nullopt;
        }
        std::error_code error;
        const std::size_t n = co_await connection.client.async_read_some(
            asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, error));
        if (error) {
            ++connection.worker.counters.bad_proxy_header;
            connection.record.error = "closed before a complete PROXY protocol header";
            co_return std::nullopt;
        }
        buffer.insert(buffer.end(), chunk.begin(), chunk.begin() + static_cast<long>(n));
    }
}

asio::awaitable<void> serve_connection(std::shared_ptr<relay::Connection> connection,
                                       ListenSpec spec, tcp::endpoint listener,
                                       std::shared_ptr<const Socks5AuthConfig> socks5_auth) {
    std::vector<std::uint8_t> already_read;
    std::optional<tcp::endpoint> announced_destination;
    if (spec.proxy_protocol) {
        const auto header = co_await read_proxy_header(*connection, already_read);
        if (!header) {
            co_return;
        }
        if (header->addresses) {
            // The balancer's own address stays in the record: it is who actually connected.
            connection->record.proxied_by = connection->record.client_address;
            connection->record.client_address =
                relay::endpoint_text(to_endpoint(header->addresses->source));
            connection->client_ip = header->addresses->source.address.unmapped();
            announced_destination = to_endpoint(header->addresses->destination);
        }
    }
    switch (spec.mode) {
        case Mode::explicit_proxy: {
            std::string text(already_read.begin(), already_read.end());
            co_await serve_explicit(std::move(connection), std::move(text));
            break;
        }
        case Mode::socks5:
            co_await serve_socks5(std::move(connection), std::move(socks5_auth),
                                  std::move(already_read));
            break;
        case Mode::portal: {
            std::string text(already_read.begin(), already_read.end());
            co_await serve_portal(std::move(connection), std::move(text));
            break;
        }
        case Mode::transparent:
        case Mode::tproxy:
            co_await serve_in_path(std::move(connection), spec.mode, listener,
                                   std::move(announced_destination), std::move(already_read));
            break;
    }
}

asio::awaitable<void> accept_loop(relay::WorkerContext& worker, tcp::acceptor& acceptor,
                                  ListenSpec spec,
                                  std::shared_ptr<const Socks5AuthConfig> socks5_auth) {
    const std::string name = spec.to_string();
    std::error_code ignored;
    const tcp::endpoint listener = acceptor.local_endpoint(ignored);
    asio::steady_timer backoff(worker.io);
    auto last_report = std::chrono::steady_clock::time_point{};
    for (;;) {
        std::error_code error;
        tcp::socket socket =
            co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, error));
        if (error) {
            if (error == asio::error::operation_aborted || !acceptor.is_open()) {
                co_return;
            }
            // Out of descriptors (EMFILE/ENFILE) or memory: pause instead of spinning;
            // connections in flight may free some. Said once per 10 s, not once per attempt.
            ++worker.counters.accept_failed;
            if (const auto now = std::chrono::steady_clock::now();
                now - last_report > std::chrono::seconds(10)) {
                last_report = now;
                spdlog::warn("{}: accept failed ({}); pausing new connections briefly", name,
                             error.message());
            }
            backoff.expires_after(std::chrono::milliseconds(100));
            co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, error));
            continue;
        }
        // A connection accepted just before the listener closed (shutdown, restart) is served:
        // its client has already been told the connection exists. The next accept ends the loop.
        // Limits are checked before any work: a refused connection costs one accept and a close.
        // Behind a balancer (+proxy) the peer is the balancer, so only the total applies.
        std::optional<IpAddress> peer;
        if (const auto remote = socket.remote_endpoint(error); !error) {
            peer = IpAddress::parse(remote.address().to_string());
            if (peer) {
                peer = peer->unmapped();
            }
        }
        const IpAddress* limited_client = spec.proxy_protocol || !peer ? nullptr : &*peer;
        if (auto* limits = worker.shared.limits; limits != nullptr) {
            const auto verdict = limits->try_admit(limited_client);
            if (verdict != relay::ConnectionLimits::Verdict::admitted) {
                const bool total = verdict == relay::ConnectionLimits::Verdict::total_reached;
                ++(total ? worker.counters.refused_total_limit
                         : worker.counters.refused_client_limit);
                if (const auto now = std::chrono::steady_clock::now();
                    now - last_report > std::chrono::seconds(10)) {
                    last_report = now;
                    spdlog::warn("{}: refusing connections: {} limit reached", name,
                                 total ? "max_connections" : "max_connections_per_client");
                }
                socket.close(error);
                continue;
            }
        }
        socket.set_option(tcp::no_delay(true), error);
        auto connection = std::make_shared<relay::Connection>(worker, std::move(socket), name);
        connection->admitted = worker.shared.limits != nullptr;
        if (limited_client != nullptr) {
            connection->admitted_client = *limited_client;
        }
        connection->listener_endpoint = listener;
        connection->spoof_source = spec.mode == Mode::tproxy && worker.shared.spoof_source;
        asio::co_spawn(worker.io,
                       serve_connection(std::move(connection), spec, listener, socks5_auth),
                       asio::detached);
    }
}

}  // namespace

Result<std::unique_ptr<WorkerListeners>> WorkerListeners::bind(
    relay::WorkerContext& worker, const std::vector<ListenSpec>& specs,
    std::shared_ptr<const Socks5AuthConfig> socks5_auth) {
    std::unique_ptr<WorkerListeners> listeners(new WorkerListeners(worker));
    listeners->socks5_auth_ = std::move(socks5_auth);
    for (const auto& spec : specs) {
        std::error_code error;
        const auto address = asio::ip::make_address(spec.address, error);
        const tcp::endpoint endpoint(address, spec.port);
        auto bound = std::make_unique<Bound>(Bound{spec, tcp::acceptor(worker.io)});
        auto& acceptor = bound->acceptor;
        acceptor.open(endpoint.protocol(), error);
        if (!error) {
            acceptor.set_option(tcp::acceptor::reuse_address(true), error);
        }
        if (!error) {
            const int one = 1;
            if (setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) !=
                0) {
                error = std::error_code(errno, std::system_category());
            }
        }
        if (!error && spec.mode == Mode::tproxy) {
            // Lets the socket accept connections addressed to any destination TPROXY hands it.
            const int one = 1;
            const bool v6 = endpoint.protocol() == tcp::v6();
            if (setsockopt(acceptor.native_handle(), v6 ? SOL_IPV6 : SOL_IP,
                           v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one, sizeof one) != 0) {
                error = std::error_code(errno, std::system_category());
            }
        }
        if (!error) {
            acceptor.bind(endpoint, error);
        }
        if (!error) {
            acceptor.listen(asio::socket_base::max_listen_connections, error);
        }
        if (error) {
            return make_error("cannot listen on " + spec.to_string() + ": " + error.message());
        }
        listeners->bound_.push_back(std::move(bound));
    }
    return listeners;
}

void WorkerListeners::start() {
    for (auto& bound : bound_) {
        asio::co_spawn(worker_.io, accept_loop(worker_, bound->acceptor, bound->spec, socks5_auth_),
                       asio::detached);
    }
}

void WorkerListeners::close() {
    for (auto& bound : bound_) {
        std::error_code ignored;
        bound->acceptor.close(ignored);
    }
}

}  // namespace tlsgate::listen
