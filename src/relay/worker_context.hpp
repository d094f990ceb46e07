#pragma once
// What a connection can reach: the installation-wide read-only state and its own worker's
// state. A worker's state is touched only by its own thread, so it needs no locks.
#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "pki/ca.hpp"
#include "pki/mint.hpp"
#include "pki/openssl_handles.hpp"
#include "policy/policy.hpp"
#include "record/connection_log.hpp"
#include "relay/buffer_pool.hpp"
#include "relay/connection_limits.hpp"
#include "tls/session_cache.hpp"

namespace tlsgate::relay {

using Seconds = std::chrono::seconds;

struct Timeouts {
    Seconds request_head{30};  // explicit proxy: the request line and headers
    Seconds client_hello{10};  // from the tunnel's start to a complete ClientHello
    Seconds connect{10};       // resolving and connecting upstream
    Seconds handshake{10};     // each TLS handshake
    Seconds idle{300};         // both directions quiet
};

// Read-only after start; shared by every worker.
struct SharedState {
    Timeouts timeouts;
    std::shared_ptr<const policy::Policy> policy;
    pki::CertificateAuthority ca;
    std::string ca_spki_sha256;  // never trusted upstream
    record::ConnectionLog* connection_log = nullptr;
    // Static name -> address overrides consulted before DNS (labs and tests, like curl --resolve).
    std::unordered_map<std::string, IpAddress> static_hosts;
    bool spoof_source = false;  // applies to tproxy listeners
    ConnectionLimits* limits = nullptr;
};

// Every branch a connection can take is counted (exported as metrics by a later stage).
struct Counters {
    std::uint64_t accepted = 0;
    std::uint64_t accept_failed = 0;
    std::uint64_t refused_total_limit = 0;
    std::uint64_t refused_client_limit = 0;
    std::uint64_t intercepted = 0;
    std::uint64_t passed_through = 0;
    std::uint64_t blocked = 0;
    std::uint64_t relayed_raw = 0;
    std::uint64_t http_forwarded = 0;
    std::uint64_t bad_request = 0;
    std::uint64_t bad_client_hello = 0;
    std::uint64_t bad_proxy_header = 0;
    std::uint64_t client_hello_too_large = 0;
    std::uint64_t upstream_connect_failed = 0;
    std::uint64_t upstream_tls_failed = 0;
    std::uint64_t upstream_verify_failed = 0;
    std::uint64_t client_handshake_failed = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t leaves_minted = 0;
    std::uint64_t leaf_cache_hits = 0;
    std::uint64_t upstream_resumed = 0;
};

struct WorkerContext {
    WorkerContext(int worker_index, const SharedState& shared_state, std::size_t leaf_cache_size)
        : index(worker_index), shared(shared_state), leaf_cache(leaf_cache_size) {}

    int index;
    const SharedState& shared;
    pki::SslCtxPtr upstream_context;
    pki::SslCtxPtr client_context;
    pki::EvpPkeyPtr leaf_key;
    pki::LeafCache leaf_cache;
    tls::UpstreamSessionCache upstream_sessions{4096};
    BufferPool buffers;
    Counters counters;
    std::uint64_t next_connection = 0;
    std::size_t open_connections = 0;
    bool accepting = true;
    // Last, so it is destroyed first: the connections it still holds record themselves into the
    // state above while they go.
    asio::io_context io{1};
};

}  // namespace tlsgate::relay
