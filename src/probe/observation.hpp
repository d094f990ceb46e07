#pragma once
// What one probe saw on the wire, as plain values. The I/O side (handshake.cpp) fills it in and
// the pure side (classify.cpp) judges it, so every verdict is unit-tested without a socket.
#include <optional>
#include <string>
#include <vector>

namespace tlsgate::probe {

enum class Outcome {
    handshake_done,  // a TLS handshake completed; the presented chain was collected
    resolve_failed,  // DNS gave no address for the name
    connect_failed,  // TCP connect refused, unreachable or timed out
    proxy_refused,   // the proxy answered CONNECT with a non-2xx status
    proxy_failed,    // the proxy did not answer CONNECT like an HTTP proxy, or not in time
    reset,           // TCP reset after our ClientHello
    closed,          // the peer closed after our ClientHello without completing a handshake
    timeout,         // no answer, or no complete handshake, within the timeout
    alert,           // a TLS alert instead of a completed handshake
    not_tls,         // the peer answered with bytes that are not TLS records
    tls_error,       // the local TLS stack gave up for another reason
};

struct Timings {
    std::optional<double> resolve_ms;    // DNS (absent with --connect, --proxy or an IP target)
    std::optional<double> connect_ms;    // TCP connect
    std::optional<double> proxy_ms;      // CONNECT request to 2xx answer
    std::optional<double> handshake_ms;  // ClientHello to the end of the handshake
    double total_ms = 0;
};

struct Observation {
    Outcome outcome = Outcome::tls_error;
    std::string detail;            // the cause in words (errno text, OpenSSL error, first bytes)
    bool server_answered = false;  // the peer sent something after our ClientHello
    int alert = -1;                // the TLS alert description received, if any
    int proxy_status = 0;          // the proxy's answer to CONNECT, if one came
    std::string peer_address;      // the TCP peer: the server, the --connect address or the proxy
    std::vector<std::string> chain_der;  // as presented, leaf first (DER)
    std::string tls_version;             // "TLSv1.3"
    std::string cipher;                  // OpenSSL's name: "TLS_AES_256_GCM_SHA384"
    std::string alpn;                    // empty: none selected
    Timings timings;
};

}  // namespace tlsgate::probe
