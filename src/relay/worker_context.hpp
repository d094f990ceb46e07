#pragma once
// What a connection can reach: the installation-wide read-only state and its own worker's
// state. A worker's state is touched only by its own thread, so it needs no locks.
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "inspect/exchange.hpp"
#include "pki/ca.hpp"
#include "pki/mint.hpp"
#include "pki/openssl_handles.hpp"
#include "policy/auto_passthrough.hpp"
#include "policy/policy.hpp"
#include "record/chunk_writer.hpp"
#include "record/connection_log.hpp"
#include "relay/buffer_pool.hpp"
#include "relay/connection_limits.hpp"
#include "relay/counters.hpp"
#include "relay/record_outbox.hpp"
#include "tls/aia.hpp"
#include "tls/session_cache.hpp"
#include "tls/upstream_checks.hpp"

namespace tlsgate::record {
class FlowWriter;
}

namespace tlsgate::relay {

struct PortalAssets;

using Seconds = std::chrono::seconds;

struct Timeouts {
    Seconds request_head{30};   // explicit proxy: the request line and headers
    Seconds client_hello{10};   // from the tunnel's start to a complete ClientHello
    Seconds connect{10};        // resolving and connecting upstream
    Seconds handshake{10};      // each TLS handshake
    Seconds idle{300};          // both directions quiet
    Seconds response_head{60};  // plain HTTP: the upstream's response head after the request
    Seconds total{120};         // everything before the relay starts, whatever each phase took
};

// What is recorded beyond the connection log; each writer is null when off.
struct Recording {
    record::FlowWriter* flows = nullptr;        // HTTP flow records (SQLite, JSON lines)
    record::ChunkWriter* pcap = nullptr;        // synthesized plaintext packets
    inspect::DissectorOptions dissector;        // scheme "https"
    inspect::DissectorOptions plain_dissector;  // the same for plain HTTP: scheme "http"
    bool inspects() const { return flows != nullptr || pcap != nullptr; }
    // Shared by every connection's dissectors, which keep a reference, not a copy.
    const inspect::DissectorOptions& dissector_for(std::string_view scheme) const {
        return scheme == "http" ? plain_dissector : dissector;
    }
};

// Read-only after start; shared by every worker.
struct SharedState {
    pki::CertificateAuthority ca;
    tls::ChainChecks upstream_checks;  // own CA, known interception roots, stapled revocation
    // Signs the stand-ins for refused upstream certificates (on_upstream_error = "mirror").
    pki::CertificateAuthority untrusted_ca;
    record::ConnectionLog* connection_log = nullptr;
    // Static name -> address overrides consulted before DNS (labs and tests, like curl --resolve).
    std::unordered_map<std::string, IpAddress> static_hosts;
    bool spoof_source = false;  // applies to tproxy listeners
    ConnectionLimits* limits = nullptr;
    Recording recording;
    const PortalAssets* portal = nullptr;  // the install page, downloads, metrics, health
    // The leaf key for RSA upstreams, shared by every worker (signing with it is read-only).
    pki::EvpPkeyPtr rsa_leaf_key;
    // Hosts learned from clients that refuse the minted certificate; null when off.
    policy::AutoPassthrough* auto_passthrough = nullptr;
};

struct WorkerContext {
    WorkerContext(int worker_index, const SharedState& shared_state, std::size_t leaf_cache_size)
        : index(worker_index), shared(shared_state), leaf_cache(leaf_cache_size) {
        outbox.use_timer(&outbox_timer);
    }
    // The timer goes before the event loop; records of connections the loop still closes wait
    // in the outbox, which hands them over when it goes, after the loop.
    ~WorkerContext() { outbox.use_timer(nullptr); }
    WorkerContext(const WorkerContext&) = delete;
    WorkerContext& operator=(const WorkerContext&) = delete;

    int index;
    const SharedState& shared;
    // What a reload (SIGHUP) changes: set on this worker's own thread, read without locks. A
    // connection keeps the policy it was decided with.
    std::shared_ptr<const policy::Policy> policy;
    Timeouts timeouts;
    pki::SslCtxPtr upstream_context;
    pki::SslCtxPtr client_context;
    pki::EvpPkeyPtr leaf_key;  // ECDSA P-256, for every upstream but RSA ones
    pki::LeafCache leaf_cache;
    tls::UpstreamSessionCache upstream_sessions{4096};
    // Intermediates fetched for servers that omit them (AIA caIssuers), and recent failures.
    tls::IntermediateCache intermediates;
    BufferPool buffers;
    Counters counters;
    RecordOutbox outbox{shared.connection_log, shared.recording.flows, counters};
    std::uint64_t next_connection = 0;
    bool accepting = true;
    // Destroyed before the state above: the connections it still holds record themselves into
    // that state (the outbox) while they go.
    asio::io_context io{1};
    asio::steady_timer outbox_timer{io};  // uses `io`, so goes before it
};

}  // namespace tlsgate::relay
