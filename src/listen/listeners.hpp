#pragma once
// Accept loops. Each worker binds its own SO_REUSEPORT socket per listen address, so the kernel
// spreads connections across workers and a connection lives on one thread.
#include <asio/ip/tcp.hpp>

#include <memory>
#include <vector>

#include "common/result.hpp"
#include "listen/listen_spec.hpp"
#include "listen/socks5.hpp"
#include "relay/worker_context.hpp"

namespace tlsgate::listen {

class WorkerListeners {
public:
    static Result<std::unique_ptr<WorkerListeners>> bind(
        relay::WorkerContext& worker, const std::vector<ListenSpec>& specs,
        std::shared_ptr<const Socks5AuthConfig> socks5_auth);
    // Starts the accept loops on the worker's io_context.
    void start();
    // Stops accepting (graceful shutdown); open connections carry on.
    void close();

private:
    struct Bound {
        ListenSpec spec;
        asio::ip::tcp::acceptor acceptor;
    };
    explicit WorkerListeners(relay::WorkerContext& worker) : worker_(worker) {}
    relay::WorkerContext& worker_;
    std::shared_ptr<const Socks5AuthConfig> socks5_auth_;
    std::vector<std::unique_ptr<Bound>> bound_;
};

}  // namespace tlsgate::listen
