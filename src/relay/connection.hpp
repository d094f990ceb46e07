#pragma once
// One client connection: its sockets, its record, and the single watchdog that enforces
// whichever timeout the current phase has (ClientHello, connect, handshake, idle).
#include <openssl/ssl.h>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/ip.hpp"
#include "record/connection_record.hpp"
#include "relay/inspection.hpp"
#include "relay/worker_context.hpp"

namespace tlsgate::relay {

class PlaintextObserver;  // relay/pump.hpp

class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(WorkerContext& worker, asio::ip::tcp::socket client, std::string listener);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Starts (or restarts) the watchdog: if the deadline passes, both sockets are aborted and the
    // record says which phase timed out.
    void arm_timeout(std::chrono::steady_clock::duration limit, const char* phase);
    // Pushes the deadline out by the current phase's limit (relay activity).
    void touch() { deadline_ = std::chrono::steady_clock::now() + limit_; }
    void disarm();
    void abort();
    const char* timed_out_phase() const { return timed_out_phase_; }

    WorkerContext& worker;
    asio::ip::tcp::socket client;
    asio::ip::tcp::socket upstream;
    // The address the listener is bound to (for TPROXY not the accepted socket's own address,
    // which is the client's destination): upstream connections to it would loop.
    asio::ip::tcp::endpoint listener_endpoint;
    // The client's address for source rules (the PROXY header's, when a balancer sent one).
    std::optional<IpAddress> client_ip;
    // Connect upstream from the client's own address (TPROXY listeners with spoof_source): the
    // server sees the client, as if no gateway were there.
    bool spoof_source = false;
    // The admission this connection holds in the shared limits (released when it ends).
    bool admitted = false;
    std::optional<IpAddress> admitted_client;
    record::ConnectionRecord record;
    // Watches the plaintext when recording is on (intercepted tunnels, forwarded plain HTTP).
    std::unique_ptr<ConnectionInspector> inspector;
    // Shown the decrypted bytes once intercepted (a STARTTLS session's dialogue); not owned.
    PlaintextObserver* plaintext_observer = nullptr;
    // The upstream leg's TLS while an intercepted relay runs (not owned): an FTP control session
    // lends its session to the data connections it announces.
    SSL* intercepted_upstream = nullptr;
    // A session the upstream handshake must resume instead of the worker's cached one: FTP
    // servers that require TLS session reuse accept a data connection only if it resumes the
    // control connection's session.
    std::shared_ptr<SSL_SESSION> upstream_session_to_resume;

private:
    void wait_for_deadline();

    asio::steady_timer timer_;
    std::chrono::steady_clock::time_point deadline_{};
    std::chrono::steady_clock::duration limit_{};
    const char* phase_ = "";
    const char* timed_out_phase_ = nullptr;
    bool timer_running_ = false;
    bool relaying_ = false;  // the idle phase began once: the total cap no longer applies
    std::chrono::steady_clock::time_point started_;
};

// connect, upstream_handshake, response_head: the phases where upstream is the slow side.
bool is_upstream_phase(const char* phase);

// Where a tunnel goes: the name the client asked for (CONNECT authority; empty in transparent
// mode) and the address already connected to.
struct TunnelTarget {
    std::string host;  // normalized host name or IP literal, may be empty
    std::uint16_t port = 0;
    std::optional<IpAddress> address;
    // A name learned in-band (a STARTTLS greeting, the FTP control session of a data connection)
    // for the policy when there is neither SNI nor host. Never verified upstream: it is the
    // server's own claim, not a name the client asked for.
    std::string name_hint;
};

// The tunnel's story once upstream TCP is connected: classify the first client bytes, decide,
// then pass through, intercept or block. `already_read` are client bytes read past the request.
asio::awaitable<void> run_tunnel(std::shared_ptr<Connection> connection,
                                 std::vector<std::uint8_t> already_read, TunnelTarget target);

// Resolves `host` (unless it is an IP literal) and connects connection->upstream to the first
// address that answers. Error text on failure ("connection refused", "no such host", ...).
asio::awaitable<Result<IpAddress>> connect_upstream(Connection& connection, const std::string& host,
                                                    std::uint16_t port);

std::string endpoint_text(const asio::ip::tcp::endpoint& endpoint);

// "host:port", with brackets around an IPv6 literal.
std::string authority_text(const std::string& host, std::uint16_t port);

// Asks the policy about a proxy request's destination before the tunnel exists (the address is
// known only once resolved). A block is counted and recorded (action, rule, reason); true then.
bool blocked_by_policy(Connection& connection, const std::string& host,
                       std::optional<IpAddress> address, std::uint16_t port);

}  // namespace tlsgate::relay
