#include "relay/dialogue_tunnel.hpp"

#include <sys/socket.h>

#include <array>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "classify/mail_session.hpp"
#include "classify/starttls.hpp"
#include "common/hostname.hpp"
#include "relay/ftp_data_registry.hpp"
#include "relay/pump.hpp"

namespace tlsgate::relay {
namespace {

using asio::ip::tcp;
using classify::DialogueState;
using classify::Side;

constexpr std::uint8_t kTlsHandshakeRecord = 0x16;

asio::awaitable<std::error_code> wait_readable(tcp::socket& socket) {
    std::error_code error;
    co_await socket.async_wait(tcp::socket::wait_read,
                               asio::redirect_error(asio::use_awaitable, error));
    co_return error;
}

// One mail or FTP session: the observer that follows its dialogue, before and (when intercepted)
// inside TLS, and what the relay learned on the way.
class MailSession final : public PlaintextObserver {
public:
    MailSession(Connection& connection, classify::DialogueProtocol protocol, TunnelTarget target)
        : connection_(connection), observer_(protocol), target_(std::move(target)) {}

    Connection& connection() { return connection_; }
    classify::MailSessionObserver& observer() { return observer_; }
    const TunnelTarget& target() const { return target_; }

    // The plaintext phase. Returns what this feed means for the relay.
    DialogueState feed_plaintext(Side side, std::span<const std::uint8_t> bytes,
                                 std::size_t& consumed) {
        const auto result = observer_.feed(side, as_chars(bytes));
        consumed = result.consumed;
        if (side == Side::server) {
            register_data_endpoints();
        }
        return result.state;
    }

    // Inside the intercepted TLS (called by the pump).
    void observe(bool from_client, std::span<const std::uint8_t> bytes) override {
        if (!inside_tls_) {
            inside_tls_ = observer_.continue_inside_tls();
            if (!inside_tls_) {
                return;
            }
        }
        observer_.feed(from_client ? Side::client : Side::server, as_chars(bytes));
        if (!from_client) {
            register_data_endpoints();
        }
    }

    // The record's part: what the dialogue showed.
    record::MailRecord summary() const {
        const auto seen = observer_.summary();
        record::MailRecord mail;
        mail.protocol = classify::to_string(seen.protocol);
        mail.upgrade = classify::to_string(seen.upgrade);
        mail.upgrade_offered = seen.upgrade_advertised;
        mail.observed_inside_tls = seen.observed_inside_tls;
        mail.state = classify::to_string(seen.state);
        mail.dialogue_error = seen.error;
        mail.greeting_host = seen.greeting_host;
        for (const auto& command : seen.commands) {
            mail.commands.emplace_back(command.verb, command.count);
        }
        mail.other_commands = seen.other_commands;
        mail.mail_from = seen.smtp.mail_from;
        mail.rcpt_to = seen.smtp.rcpt_to;
        mail.sender_domains = seen.smtp.sender_domains;
        mail.messages = seen.smtp.messages;
        mail.message_bytes = seen.smtp.message_bytes;
        mail.message_sizes = seen.smtp.message_sizes;
        mail.ftp_data_endpoints = seen.ftp_data_endpoints;
        return mail;
    }

    // The greeting's host name, if it is a valid one: a policy hint for a ClientHello without SNI.
    std::string greeting_name() const {
        auto normalized = normalize_hostname(observer_.dialogue().greeting_host());
        return normalized ? std::move(*normalized) : std::string();
    }

private:
    static std::span<const char> as_chars(std::span<const std::uint8_t> bytes) {
        return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    }

    // Called after feeding the server's bytes and before relaying them: the client connects as
    // soon as it reads the reply. Only the control connection's server address is registered: a
    // 227 naming another host must not lend this session's name to connections there, and
    // clients use the control address anyway (curl ignores the 227 address by default).
    void register_data_endpoints() {
        auto endpoints = observer_.take_ftp_data_endpoints();
        if (endpoints.empty() || !target_.address) {
            return;
        }
        const auto& sni = connection_.record.sni;
        FtpDataExpectation expectation{sni.empty() ? greeting_name() : sni, sni,
                                       connection_.record.id, resumable_upstream_session()};
        auto& registry = FtpDataRegistry::process();
        for (const auto& endpoint : endpoints) {
            registry.expect(*target_.address, endpoint.port, connection_.client_ip, expectation);
        }
    }

    // The newest session of the control connection's upstream leg (with TLS 1.3, the ticket
    // that followed the handshake), if it can be resumed.
    std::shared_ptr<SSL_SESSION> resumable_upstream_session() const {
        if (connection_.intercepted_upstream == nullptr) {
            return nullptr;
        }
        std::shared_ptr<SSL_SESSION> session(SSL_get1_session(connection_.intercepted_upstream),
                                             SSL_SESSION_free);
        if (!session || SSL_SESSION_is_resumable(session.get()) != 1) {
            return nullptr;
        }
        return session;
    }

    Connection& connection_;
    classify::MailSessionObserver observer_;
    TunnelTarget target_;
    bool inside_tls_ = false;
};

// Why the dialogue relay stopped following the dialogue or never upgraded.
struct RelayState {
    bool observing = true;
    bool upgraded = false;                         // the server accepted; the ClientHello is next
    std::vector<std::uint8_t> client_hello_start;  // read before the hand-over was noticed
    std::string untouched_reason;
};

void fail(Connection& connection, const char* direction, const std::string& what) {
    if (connection.record.error.empty() && connection.timed_out_phase() == nullptr) {
        connection.record.error = std::string(direction) + " " + what;
    }
    connection.abort();
}

// Relays one direction of the plaintext dialogue, feeding each read to the dialogue before
// writing it on. The server's direction stops after the answer that accepts the upgrade (the
// server says nothing more until the ClientHello); the client's stops before reading the
// ClientHello, which stays in the socket for the tunnel.
asio::awaitable<void> relay_dialogue(MailSession& session, RelayState& state, Side side) {
    auto& connection = session.connection();
    const bool from_client = side == Side::client;
    tcp::socket& from = from_client ? connection.client : connection.upstream;
    tcp::socket& to = from_client ? connection.upstream : connection.client;
    auto& counter = from_client ? connection.record.bytes_client_to_server
                                : connection.record.bytes_server_to_client;
    const char* name = from_client ? "client->upstream" : "upstream->client";
    for (;;) {
        co_await wait_readable(from);
        if (from_client && state.upgraded) {
            co_return;
        }
        auto buffer = connection.worker.buffers.borrow();
        std::error_code error;
        const std::size_t n = co_await from.async_read_some(
            asio::buffer(*buffer), asio::redirect_error(asio::use_awaitable, error));
        if (error == asio::error::eof) {
            std::error_code ignored;
            to.shutdown(tcp::socket::shutdown_send, ignored);
            co_return;
        }
        if (error) {
            fail(connection, name, "read: " + error.message());
            co_return;
        }
        connection.touch();
        const std::span<const std::uint8_t> bytes((*buffer).data(), n);
        bool hand_over = false;
        if (state.observing) {
            std::size_t consumed = 0;
            switch (session.feed_plaintext(side, bytes, consumed)) {
                case DialogueState::upgraded:
                    if (from_client) {
                        // The client answered the upgrade before this direction noticed it (the
                        // server's direction is still finishing its write): its ClientHello.
                        state.client_hello_start.assign(bytes.begin(), bytes.end());
                        state.upgraded = true;
                        co_return;
                    }
                    if (consumed == n) {
                        hand_over = true;
                    } else {
                        // A real server waits for the ClientHello: bytes after its answer would
                        // reach the client as TLS. Not intercepted; the client sees them as sent.
                        state.observing = false;
                        state.untouched_reason =
                            "the server sent bytes after accepting the upgrade: relayed untouched";
                    }
                    break;
                case DialogueState::tls_first:
                    // Only after the server greeted (a client that opens with TLS before is
                    // handed to the tunnel at once): a TLS client talking to a plaintext server,
                    // which fails as it would directly.
                case DialogueState::not_this_protocol:
                case DialogueState::error:
                    state.observing = false;
                    break;
                default:
                    break;
            }
        }
        co_await asio::async_write(to, asio::buffer(bytes.data(), bytes.size()),
                                   asio::redirect_error(asio::use_awaitable, error));
        if (error) {
            fail(connection, name, "write: " + error.message());
            co_return;
        }
        counter += n;
        if (hand_over) {
            state.upgraded = true;
            // The client's turn: it has the handshake's time limit to start, not the idle one.
            connection.arm_timeout(connection.worker.timeouts.client_hello, "client_hello");
            co_return;
        }
    }
}

// Which side speaks first, and whether the client opens with a TLS record (implicit TLS on a
// dialogue port). The byte is peeked, not read: the tunnel reads it again.
asio::awaitable<bool> client_opens_with_tls(Connection& connection) {
    using namespace asio::experimental::awaitable_operators;
    const auto first =
        co_await (wait_readable(connection.client) || wait_readable(connection.upstream));
    if (first.index() != 0 || std::get<0>(first)) {
        co_return false;
    }
    std::array<std::uint8_t, 1> byte{};
    const ssize_t n = ::recv(connection.client.native_handle(), byte.data(), byte.size(),
                             MSG_PEEK | MSG_DONTWAIT);
    co_return n == 1 && byte[0] == kTlsHandshakeRecord;
}

const char* untouched_reason(const classify::MailSessionSummary& summary) {
    switch (summary.state) {
        case DialogueState::not_this_protocol:
            return "not the port's dialogue: relayed untouched";
        case DialogueState::error:
            return "dialogue not followed: relayed untouched";
        case DialogueState::tls_first:
            return "TLS after the server's greeting: relayed untouched";
        default:
            break;
    }
    return summary.upgrade == classify::UpgradeOutcome::refused
               ? "the server refused the upgrade: relayed untouched"
               : "no upgrade to TLS: relayed untouched";
}

asio::awaitable<void> run_dialogue_tunnel(std::shared_ptr<Connection> connection,
                                          std::vector<std::uint8_t> already_read,
                                          TunnelTarget target,
                                          classify::DialogueProtocol protocol) {
    auto& worker = connection->worker;
    auto& record = connection->record;
    record.kind = "tunnel";
    // Client bytes that came with a PROXY-protocol header: the client spoke before the server
    // greeted, which only implicit TLS does. The tunnel classifies them.
    if (!already_read.empty()) {
        co_await run_tunnel(connection, std::move(already_read), std::move(target));
        co_return;
    }
    // A plaintext session is judged as any non-TLS connection is: by address and port.
    const auto decision =
        worker.policy->decide({target.host, target.address, target.port, connection->client_ip});
    if (decision.action == policy::Action::block) {
        ++worker.counters.blocked;
        record.rule = decision.rule_name;
        record.action = "block";
        record.reason = "blocked by policy before the dialogue";
        co_return;
    }
    connection->arm_timeout(worker.timeouts.client_hello, "client_hello");
    if (co_await client_opens_with_tls(*connection)) {
        std::vector<std::uint8_t> none;  // the tunnel reads the ClientHello itself
        co_await run_tunnel(connection, std::move(none), std::move(target));
        co_return;
    }
    if (connection->timed_out_phase() != nullptr) {
        co_return;
    }

    MailSession session(*connection, protocol, target);
    RelayState state;
    {
        using namespace asio::experimental::awaitable_operators;
        connection->arm_timeout(worker.timeouts.idle, "idle");
        co_await (relay_dialogue(session, state, Side::client) &&
                  relay_dialogue(session, state, Side::server));
    }
    if (state.upgraded && connection->timed_out_phase() == nullptr &&
        connection->record.error.empty()) {
        // The TLS that follows takes the tunnel's path: its ClientHello's SNI decides, or the
        // greeting's host as a hint for the policy; the decrypted dialogue is followed on.
        target.name_hint = session.greeting_name();
        connection->plaintext_observer = &session;
        co_await run_tunnel(connection, std::move(state.client_hello_start), std::move(target));
        connection->plaintext_observer = nullptr;
    } else if (!state.upgraded) {
        const auto summary = session.observer().summary();
        ++worker.counters.relayed_raw;
        record.action = "passthrough";
        record.rule = decision.rule_name;
        record.reason =
            state.untouched_reason.empty() ? untouched_reason(summary) : state.untouched_reason;
    }
    record.mail = session.summary();
}

}  // namespace

asio::awaitable<void> run_in_path_tunnel(std::shared_ptr<Connection> connection,
                                         std::vector<std::uint8_t> already_read,
                                         TunnelTarget target) {
    if (const auto protocol = classify::starttls_protocol_for_port(target.port)) {
        co_await run_dialogue_tunnel(std::move(connection), std::move(already_read),
                                     std::move(target), *protocol);
        co_return;
    }
    if (target.address) {
        if (auto expected = FtpDataRegistry::process().take(*target.address, target.port,
                                                            connection->client_ip)) {
            // The control session's names: its SNI is verified here too, as there.
            target.host = std::move(expected->verify_name);
            target.name_hint = std::move(expected->host);
            record::MailRecord mail;
            mail.protocol = "ftp-data";
            mail.ftp_control_id = expected->control_id;
            connection->upstream_session_to_resume = std::move(expected->upstream_session);
            connection->record.mail = std::move(mail);
        }
    }
    co_await run_tunnel(std::move(connection), std::move(already_read), std::move(target));
}

}  // namespace tlsgate::relay
