#pragma once
// Fetching a missing intermediate from its caIssuers URL (tls/aia.hpp has the parsing and the
// cache): one plain HTTP GET on the worker's loop, bounded in time and size.
#include <asio/awaitable.hpp>

#include <chrono>
#include <cstddef>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"
#include "relay/worker_context.hpp"
#include "tls/aia.hpp"

namespace tlsgate::relay {

struct AiaFetchLimits {
    std::chrono::steady_clock::duration time = std::chrono::seconds(5);  // resolve to last byte
    std::size_t max_body = 64 * 1024;  // an intermediate is 1-2 KiB; a bundle a few more
};

// The certificate at `url`. The host is resolved as upstream names are (the static hosts
// first, then DNS). Error text on any failure: resolution, connection, timeout, status, size,
// or a body that is no certificate.
asio::awaitable<Result<pki::X509Ptr>> fetch_issuer_certificate(WorkerContext& worker,
                                                               const tls::HttpUrl& url,
                                                               const AiaFetchLimits& limits);

}  // namespace tlsgate::relay
