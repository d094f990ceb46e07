#pragma once
// The probe's I/O: for each target, a TCP connection (to the name's own address, to --connect, or
// through an HTTP CONNECT --proxy), then a TLS handshake with that SNI and verification off, so
// whatever chain comes back is collected and judged later (classify.hpp). Plain non-blocking
// sockets and poll(), one deadline per target, a small pool of threads for concurrency: a probe
// is a short linear story, and no Asio is needed for it.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"
#include "probe/observation.hpp"
#include "probe/target.hpp"

namespace tlsgate::probe {

struct ProbeSettings {
    std::optional<Endpoint> connect;  // every name goes to this address
    std::optional<ProxyUrl> proxy;    // CONNECT name:port (or the --connect address) through it
    // Covers connect, CONNECT and the handshake of one target; DNS is bounded by the resolver.
    std::chrono::milliseconds timeout{10000};
    int concurrency = 32;                             // handshakes in flight
    std::vector<std::string> alpn{"h2", "http/1.1"};  // what a browser offers
};

// A client context that accepts anything (TLS 1.0 to 1.3, any certificate, security level 0) so
// it can observe old or weak interceptors, never resumes a session (every handshake must show its
// certificate), and records received alerts.
Result<pki::SslCtxPtr> make_probe_context();

// One observation per target, in the same order. Fails only on setup errors (the proxy's name
// does not resolve); everything that happens to one target is in its observation.
Result<std::vector<Observation>> observe_all(const std::vector<Target>& targets,
                                             const ProbeSettings& settings, SSL_CTX* context);

}  // namespace tlsgate::probe
