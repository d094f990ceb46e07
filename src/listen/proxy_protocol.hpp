#pragma once
// PROXY protocol v1 and v2 header parser (HAProxy's proxy-protocol.txt), sans-io. A load balancer
// in front of the gateway (HAProxy send-proxy / send-proxy-v2, nginx, AWS NLB) prepends this
// header to tell us the real client and the address it connected to.
//
// The parser is stateless: the shell appends what it reads to one buffer and calls
// parse_proxy_header() on the whole buffer until the status is not need_more. That costs nothing
// worth saving: a v1 header is at most 107 bytes and a v2 header is judged from its first 16.
// Depends on src/common only, so it is unit-tested and fuzzed without the I/O shell.
//
// What we accept (a TCP gateway; anything else means a misconfigured sender):
//   v1  "PROXY TCP4 ..." / "PROXY TCP6 ..." with addresses of that family; "PROXY UNKNOWN ..."
//       is LOCAL (the rest of its line is ignored, as the spec says).
//   v2  PROXY over TCP/IPv4 or TCP/IPv6; LOCAL (health checks) with any family; PROXY with family
//       AF_UNSPEC is LOCAL too (the spec lets the receiver use the real endpoints). UDP and UNIX
//       socket families are invalid: there is no IP client to report and nothing of ours speaks
//       UDP. TLVs are skipped, but their framing must fit the header exactly.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "common/ip.hpp"

namespace tlsgate::listen {

// The longest header either version allows: v1 says 107 bytes, v2 is 16 bytes plus a 16-bit
// length. A caller that buffers until the status is not need_more never holds more than this.
inline constexpr std::size_t kMaxProxyV1HeaderBytes = 107;
inline constexpr std::size_t kMaxProxyHeaderBytes = 16 + 65535;

struct ProxyEndpoint {
    IpAddress address;
    std::uint16_t port = 0;

    friend bool operator==(const ProxyEndpoint&, const ProxyEndpoint&) = default;
};

struct ProxyAddresses {
    ProxyEndpoint source;       // the real client
    ProxyEndpoint destination;  // the address the client connected to (the original destination)

    friend bool operator==(const ProxyAddresses&, const ProxyAddresses&) = default;
};

struct ProxyHeader {
    int version = 0;  // 1 or 2
    // nullopt for LOCAL (v2 LOCAL or AF_UNSPEC, v1 UNKNOWN): use the connection's own endpoints.
    std::optional<ProxyAddresses> addresses;
    // Bytes of the stream the header occupies; what follows is the client's payload.
    std::size_t length = 0;

    bool is_local() const { return !addresses.has_value(); }
    friend bool operator==(const ProxyHeader&, const ProxyHeader&) = default;
};

enum class ProxyHeaderStatus {
    need_more,  // a valid prefix of a header: read more and call again with the whole buffer
    complete,   // header is filled in
    invalid,    // not a PROXY header, or a malformed one (error says why): refuse the connection
};

const char* to_string(ProxyHeaderStatus status);

struct ProxyHeaderResult {
    ProxyHeaderStatus status = ProxyHeaderStatus::need_more;
    ProxyHeader header;  // meaningful when complete
    std::string error;   // non-empty when invalid
};

// Parses the header at the start of `bytes` (everything read from the connection so far). Bytes
// that cannot begin a header are rejected as soon as they arrive: a wrong first byte is invalid
// with one byte in hand, without waiting for a full signature. A header longer than
// max_header_bytes is invalid (a v2 one as soon as its 16-byte fixed part, which carries the
// length, is in); lower the cap to bound the caller's buffer further.
ProxyHeaderResult parse_proxy_header(std::span<const std::uint8_t> bytes,
                                     std::size_t max_header_bytes = kMaxProxyHeaderBytes);

}  // namespace tlsgate::listen
