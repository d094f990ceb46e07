#pragma once
// The `mirror` answer to an upstream certificate that failed verification: the client handshake
// completes with a leaf from the untrusted CA that keeps upstream's names and dates, so the
// client's own checks fail as they would against the server directly (and HSTS sites hard-fail).
// A client that goes ahead anyway is told why over HTTP/1.x, and never reaches the upstream.
#include <openssl/ssl.h>

#include <asio/awaitable.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "relay/connection.hpp"

namespace tlsgate::relay {

struct RefusedUpstream {
    X509* certificate = nullptr;  // what upstream presented (not owned)
    int tls_version = 0;          // what upstream negotiated: the client never gets more
    std::string host;             // the name the client asked for, shown on the page
    std::string reason_code;      // tls::classify_verify_result code, or "own_ca"
    std::string detail;
};

// Mints the stand-in (never cached: a leaf for a bad upstream must never be found where a good
// one is looked for, nor the reverse), completes the client handshake with it, then answers an
// HTTP/1.x request with the 502 explanation page; anything else is closed after the handshake.
// Returns false, having sent the client nothing, when no stand-in could be minted.
asio::awaitable<bool> serve_mirrored_session(Connection& connection,
                                             std::vector<std::uint8_t> client_bytes,
                                             const RefusedUpstream& refused);

}  // namespace tlsgate::relay
