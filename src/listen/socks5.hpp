#pragma once
// SOCKS5 server handshake (RFC 1928, CONNECT only; RFC 1929 username/password), sans-io. The
// shell feeds it the bytes it reads from the client and sends back whatever reply a step carries;
// once the request is ready it connects upstream and sends reply_for(...) with the outcome.
// Depends on src/common only, so it is unit-tested and fuzzed without the I/O shell.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "common/ip.hpp"

namespace tlsgate::listen {

struct Socks5User {
    std::string username;
    std::string password;
};

// Which authentication methods the listener accepts. Shared, immutable: one snapshot serves every
// connection of a listener, and a reload swaps in a new one.
struct Socks5AuthConfig {
    bool allow_no_auth = true;
    std::vector<Socks5User> users;  // username/password (method 0x02) is offered when non-empty
};

// The authentication method the handshake settled on (RFC 1928 METHOD values).
enum class Socks5Method : std::uint8_t {
    no_auth = 0x00,
    username_password = 0x02,
    no_acceptable = 0xff,
};

// The REP field of a reply (RFC 1928 section 6).
enum class Socks5Reply : std::uint8_t {
    succeeded = 0x00,
    general_failure = 0x01,
    not_allowed_by_ruleset = 0x02,  // blocked by policy
    network_unreachable = 0x03,
    host_unreachable = 0x04,  // also: the name did not resolve
    connection_refused = 0x05,
    ttl_expired = 0x06,  // also: the upstream connect timed out
    command_not_supported = 0x07,
    address_type_not_supported = 0x08,
};

const char* to_string(Socks5Reply reply);

// The reply for a failed upstream connect, from its error code (ECONNREFUSED -> connection
// refused, ENETUNREACH -> network unreachable, ...); anything unlisted is a general failure.
// Resolver failures are not errno values: the shell answers those with host_unreachable.
Socks5Reply socks5_reply_for_connect_error(std::errc error);

// The destination the client asked for. A domain name is normalised (lower case, no trailing
// dot); a domain that is really an IP literal ("192.0.2.1", "2001:db8::1") arrives as an address,
// so the shell resolves only real names.
struct Socks5Destination {
    std::variant<std::string, IpAddress> host;
    std::uint16_t port = 0;

    bool is_domain() const { return std::holds_alternative<std::string>(host); }
    // The host as text: the name, or the address ("2001:db8::1", without brackets).
    std::string host_text() const;

    friend bool operator==(const Socks5Destination&, const Socks5Destination&) = default;
};

struct Socks5Request {
    Socks5Destination destination;
    Socks5Method method = Socks5Method::no_auth;
    std::string username;  // who authenticated; empty with no_auth

    friend bool operator==(const Socks5Request&, const Socks5Request&) = default;
};

// Why a handshake failed, for counters and the connection log.
enum class Socks5Failure {
    none,
    bad_version,                 // greeting VER is not 5 (a SOCKS4 or non-SOCKS client)
    no_acceptable_method,        // none of the offered methods is allowed (reply 05 FF)
    bad_auth_version,            // username/password sub-negotiation VER is not 1
    bad_credentials,             // unknown user or wrong password (reply 01 01)
    bad_request_version,         // request VER is not 5
    command_not_supported,       // BIND, UDP ASSOCIATE or an unknown command
    address_type_not_supported,  // ATYP is not 1, 3 or 4
    bad_domain_name,             // empty, too long or not a DNS name
};

const char* to_string(Socks5Failure failure);

enum class Socks5Status {
    need_more,      // send the step's reply (if any), then read more and feed it
    request_ready,  // request() holds the destination: connect upstream, then send reply_for()
    failed,         // send the step's reply (if any), then close
};

// Where the handshake is, for logs and tests; the step's status is what drives the shell.
enum class Socks5Phase {
    awaiting_greeting,
    awaiting_credentials,
    awaiting_request,
    request_ready,
    failed,
};

struct Socks5Step {
    Socks5Status status = Socks5Status::need_more;
    // Bytes to write to the client now, in order (a client that pipelines its greeting and
    // credentials gets both replies in one step).
    std::vector<std::uint8_t> reply;
    // Bytes of this feed's input the handshake consumed. On request_ready the input past this
    // point is the client's first payload (e.g. a pipelined ClientHello): the caller keeps it.
    std::size_t consumed = 0;
};

class Socks5ServerHandshake {
public:
    explicit Socks5ServerHandshake(std::shared_ptr<const Socks5AuthConfig> config);

    // Feed the next bytes read from the client, split however TCP delivered them. Consumes bytes
    // only up to the end of the message that completes the request or fails the handshake; once
    // request_ready or failed, further calls consume nothing and return that status with no reply.
    Socks5Step feed(std::span<const std::uint8_t> bytes);

    Socks5Phase phase() const { return phase_; }
    // Meaningful once request_ready.
    const Socks5Request& request() const { return request_; }
    Socks5Failure failure() const { return failure_; }
    // What went wrong, in words with the offending values; empty unless failed.
    const std::string& error() const { return error_; }
    // Total bytes consumed across all feeds.
    std::size_t bytes_consumed() const { return consumed_total_; }

    // The final reply to the CONNECT request: succeeded with the address and port the gateway's
    // upstream socket is bound to, or a failure code (its bound address is 0.0.0.0:0).
    static std::vector<std::uint8_t> reply_for(Socks5Reply reply, const IpAddress& bound_address,
                                               std::uint16_t bound_port);
    static std::vector<std::uint8_t> reply_for(Socks5Reply reply);

private:
    // Outcome of looking at the buffered bytes of the current message.
    struct Verdict {
        enum Kind { need, complete, failed } kind;
        std::size_t bytes_needed = 0;  // kind == need: total message bytes before the next check
    };

    Verdict examine_greeting(std::vector<std::uint8_t>& reply);
    Verdict examine_credentials(std::vector<std::uint8_t>& reply);
    Verdict examine_request(std::vector<std::uint8_t>& reply);
    Verdict fail(Socks5Failure failure, std::string message);

    std::shared_ptr<const Socks5AuthConfig> config_;
    Socks5Phase phase_ = Socks5Phase::awaiting_greeting;
    // The current message, gathered across feeds; at most 513 bytes (a full RFC 1929 request).
    std::vector<std::uint8_t> message_;
    Socks5Request request_;
    Socks5Failure failure_ = Socks5Failure::none;
    std::string error_;
    std::size_t consumed_total_ = 0;
};

}  // namespace tlsgate::listen
