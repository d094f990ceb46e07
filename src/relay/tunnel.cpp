// The tunnel's story: classify the client's first bytes, decide, then pass through, intercept or
// block. See docs/life-of-a-connection.md.
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <array>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <optional>
#include <variant>

#include <spdlog/spdlog.h>
#include "classify/client_hello.hpp"
#include "common/hostname.hpp"
#include "pki/ca.hpp"
#include "pki/mint.hpp"
#include "relay/aia_fetch.hpp"
#include "relay/byte_stream.hpp"
#include "relay/connection.hpp"
#include "relay/mirror.hpp"
#include "relay/pump.hpp"
#include "relay/splice.hpp"
#include "tls/aia.hpp"
#include "tls/contexts.hpp"
#include "tls/upstream_checks.hpp"

namespace tlsgate::relay {
namespace {

// TLS alert descriptions (RFC 8446 section 6).
enum class Alert : std::uint8_t {
    handshake_failure = 40,
    illegal_parameter = 47,
    access_denied = 49,
    decode_error = 50,
};

// A fatal alert in a plaintext record, sent before any TLS object exists (the client is still
// waiting for a ServerHello): the client reports a handshake error and never sees a certificate.
asio::awaitable<void> send_fatal_alert(Connection& connection, Alert alert) {
    const std::array<std::uint8_t, 7> record{
        0x15, 0x03, 0x03, 0x00, 0x02, 0x02, static_cast<std::uint8_t>(alert)};
    std::error_code ignored;
    co_await asio::async_write(connection.client, asio::buffer(record),
                               asio::redirect_error(asio::use_awaitable, ignored));
    connection.client.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

asio::awaitable<std::error_code> wait_readable(asio::ip::tcp::socket& socket) {
    std::error_code error;
    co_await socket.async_wait(asio::ip::tcp::socket::wait_read,
                               asio::redirect_error(asio::use_awaitable, error));
    co_return error;
}

// Reads from the client until the parser has a verdict. `buffer` keeps every byte for replay.
// Before the client's first byte the upstream is watched too: a server that speaks first (SMTP,
// IMAP, SSH...) means the tunnel is not TLS from the client, and waiting for the client would hang.
asio::awaitable<classify::HelloStatus> read_client_hello(Connection& connection,
                                                         std::vector<std::uint8_t>& buffer,
                                                         classify::ClientHelloParser& parser,
                                                         bool& server_spoke_first) {
    if (!buffer.empty()) {
        parser.feed(buffer);
    } else if (connection.upstream.is_open()) {
        using namespace asio::experimental::awaitable_operators;
        const auto first =
            co_await (wait_readable(connection.client) || wait_readable(connection.upstream));
        if (first.index() == 1 && !std::get<1>(first)) {
            server_spoke_first = true;
            co_return classify::HelloStatus::not_tls;
        }
    }
    // Straight into the replay buffer, 4 KiB at a time: most ClientHellos fit the first read,
    // and a client that trickles its hello holds a few KiB (the vector's growth), not 16.
    constexpr std::size_t kReadStep = 4096;
    while (parser.status() == classify::HelloStatus::need_more) {
        const std::size_t before = buffer.size();
        buffer.resize(before + kReadStep);
        std::error_code error;
        const std::size_t n = co_await connection.client.async_read_some(
            asio::buffer(buffer.data() + before, kReadStep),
            asio::redirect_error(asio::use_awaitable, error));
        buffer.resize(before + n);
        if (error) {
            if (connection.timed_out_phase() == nullptr) {
                connection.record.error = buffer.empty()
                                              ? "client closed before sending anything"
                                              : "client closed during the ClientHello (" +
                                                    std::to_string(buffer.size()) + " bytes)";
            }
            co_return classify::HelloStatus::need_more;
        }
        parser.feed({buffer.data() + before, n});
    }
    co_return parser.status();
}

asio::awaitable<void> relay_raw(Connection& connection, std::vector<std::uint8_t> already_read,
                                bool awaiting_server_answer) {
    if (!already_read.empty()) {
        TcpStream upstream(connection.upstream);
        if (auto error = co_await upstream.write_all(already_read)) {
            connection.record.error = "upstream write: " + upstream.error_text();
            co_return;
        }
        connection.record.bytes_client_to_server += already_read.size();
        std::vector<std::uint8_t>().swap(already_read);
    }
    co_await splice_both_ways(connection, awaiting_server_answer);
}

// Whether a failed client handshake was the client turning our certificate down: an alert that
// says so, or a close once our certificate flight was out (how pinned apps often quit).
std::optional<ClientRejection> client_rejection(const TlsStream& client) {
    switch (client.failure_reason()) {
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
            return ClientRejection::unknown_ca;
        case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
            return ClientRejection::bad_certificate;
        case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
            return ClientRejection::certificate_unknown;
        default:
            break;
    }
    const bool flight_sent = BIO_number_written(SSL_get_wbio(client.ssl())) > 0;
    if (!flight_sent) {
        return std::nullopt;
    }
    if (client.closed_by_peer()) {
        return ClientRejection::closed_after_certificate;
    }
    return client.failure_reason() != 0 ? std::optional(ClientRejection::other) : std::nullopt;
}

// A cached leaf is reused only for the same verified upstream certificate and the same SNI, so a
// later bad upstream is never masked: verification happens on every connection before this.
EVP_PKEY* leaf_key_for(const WorkerContext& worker, X509* upstream_cert) {
    return pki::leaf_key_kind_for(upstream_cert) == pki::LeafKeyKind::rsa_2048
               ? worker.shared.rsa_leaf_key.get()
               : worker.leaf_key.get();
}

pki::X509Ptr leaf_for(Connection& connection, X509* upstream_cert, const std::string& fingerprint,
                      const std::string& client_name) {
    auto& worker = connection.worker;
    const std::string key = fingerprint + '\n' + client_name;
    if (auto cached = worker.leaf_cache.find(key)) {
        ++worker.counters.leaf_cache_hits;
        return cached;
    }
    ++worker.counters.leaf_cache_misses;
    const auto started = std::chrono::steady_clock::now();
    auto properties = pki::mirror_properties(upstream_cert, client_name, std::time(nullptr),
                                             pki::random_serial());
    if (!properties) {
        connection.record.error = "cannot mirror the upstream certificate: " + properties.error();
        return nullptr;
    }
    // A leaf never outlives its issuer (a short-lived issuing CA in intermediate mode).
    if (const auto ca_not_after =
            pki::asn1_time_to_time_t(X509_get0_notAfter(worker.shared.ca.cert.get()));
        ca_not_after && *ca_not_after < properties->not_after) {
        properties->not_after = *ca_not_after;
    }
    auto leaf = pki::mint_leaf(*properties, leaf_key_for(worker, upstream_cert), worker.shared.ca);
    if (!leaf) {
        connection.record.error = "minting failed: " + leaf.error();
        return nullptr;
    }
    ++worker.counters.leaves_minted;
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
    worker.counters.mint_latency.observe(static_cast<std::uint64_t>(micros),
                                         kMintLatencyBoundsMicros);
    worker.leaf_cache.insert(key, leaf->get());
    const std::uint64_t cached = worker.leaf_cache.size();
    worker.counters.leaf_cache_size.add(cached - worker.counters.leaf_cache_size.get());
    return std::move(*leaf);
}

// The certificate upstream presented, also after its verification failed (OpenSSL then keeps
// the chain it received but sets no peer certificate).
X509* presented_certificate(SSL* ssl) {
    if (X509* cert = SSL_get0_peer_certificate(ssl)) {
        return cert;
    }
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
    return chain != nullptr && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : nullptr;
}

// The presented certificate whose issuer the server did not send: follow the issuer links from
// the leaf (servers do not always send the chain in order).
X509* top_of_presented_chain(SSL* ssl) {
    STACK_OF(X509)* presented = SSL_get_peer_cert_chain(ssl);
    const int count = presented == nullptr ? 0 : sk_X509_num(presented);
    X509* top = count > 0 ? sk_X509_value(presented, 0) : nullptr;
    for (int step = 1; step < count && top != nullptr; ++step) {
        X509* issuer = nullptr;
        for (int i = 0; i < count && issuer == nullptr; ++i) {
            X509* candidate = sk_X509_value(presented, i);
            if (candidate != top && X509_check_issued(candidate, top) == X509_V_OK) {
                issuer = candidate;
            }
        }
        if (issuer == nullptr) {
            break;
        }
        top = issuer;
    }
    return top;
}

// A chain that failed only for want of an intermediate: fetch it from the caIssuers URL of the
// certificate it would have issued, as browsers do, into the worker's cache, where the next
// verification finds it. True when a certificate was fetched; failures are cached too, so a
// broken URL costs one fetch per minute, not one per connection.
asio::awaitable<bool> fetch_missing_intermediate(Connection& connection, SSL* ssl,
                                                 long verify_result) {
    if (verify_result != X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY &&
        verify_result != X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE) {
        co_return false;
    }
    X509* top = top_of_presented_chain(ssl);
    if (top == nullptr) {
        co_return false;
    }
    std::optional<tls::HttpUrl> url;
    std::string url_text;
    for (const auto& candidate : tls::ca_issuers_urls(top)) {
        if ((url = tls::parse_http_url(candidate))) {
            url_text = candidate;
            break;
        }
    }
    if (!url) {
        co_return false;
    }
    auto& worker = connection.worker;
    const auto state = worker.intermediates.state(url_text, tls::IntermediateCache::Clock::now());
    if (state != tls::IntermediateCache::State::missing) {
        // Fetched already and still no chain, or failed recently: nothing new to try.
        if (state == tls::IntermediateCache::State::failed) {
            connection.record.upstream_aia_error = url_text + ": failed recently (cached)";
        }
        co_return false;
    }
    const AiaFetchLimits limits;
    // The fetch has its own, shorter limit; the watchdog still caps the whole connection.
    connection.arm_timeout(worker.timeouts.handshake, "upstream_handshake");
    auto fetched = co_await fetch_issuer_certificate(worker, *url, limits);
    if (!fetched) {
        ++worker.counters.aia_fetch_failed;
        connection.record.upstream_aia_error = url_text + ": " + fetched.error();
        worker.intermediates.store(url_text, nullptr, tls::IntermediateCache::Clock::now());
        co_return false;
    }
    ++worker.counters.aia_fetched;
    connection.record.upstream_aia_fetched = url_text;
    worker.intermediates.store(url_text, std::move(*fetched), tls::IntermediateCache::Clock::now());
    co_return true;
}

// A new TCP connection to the server the last one reached, for the handshake once more.
asio::awaitable<bool> reconnect_upstream(Connection& connection) {
    std::error_code error;
    const auto endpoint = connection.upstream.remote_endpoint(error);
    abort_socket(connection.upstream);
    if (error) {
        co_return false;
    }
    const std::string address = endpoint.address().to_string();
    auto connected = co_await connect_upstream(connection, address, endpoint.port());
    if (!connected) {
        ++connection.worker.counters.upstream_connect_failed;
        connection.record.error =
            "reconnecting after fetching an intermediate: " + connected.error();
        co_return false;
    }
    co_return true;
}

// Upstream's certificate was refused: upstream gets nothing more, the client gets what the rule
// says (a mirrored session from the untrusted CA, or a fatal alert). The record already names
// the reason; this adds what upstream presented and what the client got.
asio::awaitable<void> refuse_upstream(Connection& connection,
                                      std::vector<std::uint8_t> client_bytes,
                                      RefusedUpstream refused,
                                      policy::UpstreamErrorAction on_upstream_error) {
    auto& worker = connection.worker;
    auto& record = connection.record;
    abort_socket(connection.upstream);
    if (refused.certificate != nullptr && record.upstream_sha256.empty()) {
        record.upstream_subject = pki::one_line_name(X509_get_subject_name(refused.certificate));
        record.upstream_issuer = pki::one_line_name(X509_get_issuer_name(refused.certificate));
        record.upstream_sha256 = pki::sha256_fingerprint_hex(refused.certificate);
    }
    if (refused.host.empty()) {
        refused.host = record.destination;  // an in-path client without SNI: the address
    }
    if (on_upstream_error == policy::UpstreamErrorAction::mirror &&
        refused.certificate != nullptr) {
        record.upstream_error_action = "mirror";
        if (co_await serve_mirrored_session(connection, std::move(client_bytes), refused)) {
            ++worker.counters.upstream_errors_mirrored;
            co_return;
        }
    }
    ++worker.counters.upstream_errors_blocked;
    record.upstream_error_action = "block";
    co_await send_fatal_alert(connection, Alert::handshake_failure);
}

// What an intercepted connection relays with, on the heap: the relay outlives the coroutines
// that set the connection up (see intercept). Members are destroyed bottom up: the streams
// first, the connection whose sockets they use last.
struct InterceptedLegs {
    std::shared_ptr<Connection> connection;
    std::string session_key;  // the upstream SSL's new-session callback points at it
    std::optional<TlsStream> upstream;
    std::optional<TlsStream> client;

    void relay_ended() const {
        connection->intercepted_upstream = nullptr;
        if (upstream->failure_reason() != 0) {
            // A TLS error, not just an unclean end.
            connection->worker.upstream_sessions.forget(session_key);
        }
    }
};

// A resumed session's certificate must carry the name this connection verifies (none to check
// when the connection has no name: the leaf then mirrors the certificate's own names).
std::optional<tls::VerifyFailure> resumed_name_failure(X509* upstream_cert,
                                                       const std::string& verify_name) {
    if (verify_name.empty() || tls::certificate_carries_name(upstream_cert, verify_name)) {
        return std::nullopt;
    }
    const bool is_ip = IpAddress::parse(verify_name).has_value();
    auto failure = tls::classify_verify_result(is_ip ? X509_V_ERR_IP_ADDRESS_MISMATCH
                                                     : X509_V_ERR_HOSTNAME_MISMATCH);
    failure.detail = "resumed session's certificate does not carry " + verify_name;
    return failure;
}

// Upstream first, then the client: the client is shown a certificate only after the real server's
// chain and name were verified, and only with what upstream negotiated (version cap, ALPN).
asio::awaitable<void> intercept(std::shared_ptr<Connection> owner,
                                std::vector<std::uint8_t> client_bytes,
                                const std::vector<std::string>& alpn_offer, const std::string& sni,
                                const std::string& verify_name, const std::string& host,
                                policy::UpstreamErrorAction on_upstream_error) {
    Connection& connection = *owner;
    auto& worker = connection.worker;
    auto& record = connection.record;
    const auto& timeouts = worker.timeouts;

    auto legs = std::make_shared<InterceptedLegs>();
    legs->connection = owner;
    // Kept with the stream that points at it, so it outlives the SSL object.
    legs->session_key = verify_name + '\n' + sni + '\n' + record.destination_address;
    const std::string& session_key = legs->session_key;
    // A connection whose upstream leg carried a dialogue before TLS (STARTTLS) cannot be made
    // again; its fetched intermediate serves the next one.
    const bool can_reconnect = connection.plaintext_observer == nullptr;
    std::optional<TlsStream>& upstream_stream = legs->upstream;
    for (bool retried = false;; retried = true) {
        pki::SslPtr upstream_ssl(SSL_new(worker.upstream_context.get()));
        if (!upstream_ssl) {
            record.error = "SSL_new: " + pki::last_openssl_error();
            co_return;
        }
        if (auto configured =
                tls::configure_upstream_ssl(upstream_ssl.get(), sni, verify_name, alpn_offer);
            !configured) {
            record.error = configured.error();
            co_await send_fatal_alert(connection, Alert::handshake_failure);
            co_return;
        }
        tls::use_intermediate_cache(upstream_ssl.get(), &worker.intermediates);
        tls::UpstreamSessionCache::remember_as(upstream_ssl.get(), &session_key);
        if (SSL_SESSION* control = connection.upstream_session_to_resume.get();
            control != nullptr &&
            (verify_name.empty() ||
             tls::certificate_carries_name(SSL_SESSION_get0_peer(control), verify_name))) {
            // An FTP data connection resumes its control connection's session (verified in full
            // there, with the same server): only for a name that session's certificate carries,
            // as OpenSSL checks none when it resumes. A copy, as the control connection's
            // worker may still use the original.
            std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> copy(SSL_SESSION_dup(control),
                                                                           SSL_SESSION_free);
            if (copy) {
                SSL_set_session(upstream_ssl.get(), copy.get());
            }
        } else {
            worker.upstream_sessions.offer(upstream_ssl.get(), session_key);
        }
        upstream_stream.emplace(connection.upstream, std::move(upstream_ssl),
                                TlsStream::Role::client);
        TlsStream& upstream = *upstream_stream;
        connection.arm_timeout(timeouts.handshake, "upstream_handshake");
        if (!co_await upstream.handshake()) {
            break;
        }
        worker.upstream_sessions.forget(session_key);
        const long verify_result = SSL_get_verify_result(upstream.ssl());
        if (verify_result != X509_V_OK) {
            bool fetched = false;
            if (!retried && connection.timed_out_phase() == nullptr) {
                fetched =
                    co_await fetch_missing_intermediate(connection, upstream.ssl(), verify_result);
            }
            if (fetched && can_reconnect && connection.timed_out_phase() == nullptr) {
                upstream_stream.reset();
                if (!co_await reconnect_upstream(connection)) {
                    co_await send_fatal_alert(connection, Alert::handshake_failure);
                    co_return;
                }
                continue;  // once only, with the same timeouts
            }
            const auto failure = tls::classify_verify_result(verify_result);
            ++worker.counters.upstream_verify_failed;
            ++worker.counters.upstream_verify_by_reason[verify_reason_index(failure.code)];
            record.upstream_verify_error = failure.code;
            record.reason = "upstream certificate rejected: " + failure.detail;
            RefusedUpstream refused{presented_certificate(upstream.ssl()),
                                    SSL_version(upstream.ssl()), host, failure.code,
                                    failure.detail};
            co_await refuse_upstream(connection, std::move(client_bytes), std::move(refused),
                                     on_upstream_error);
            co_return;
        }
        ++worker.counters.upstream_tls_failed;
        if (connection.timed_out_phase() == nullptr) {
            record.reason = "upstream TLS handshake failed: " + upstream.error_text();
        }
        // Also when upstream timed out: the client learns the handshake failed, not just a close.
        if (connection.timed_out_phase() == nullptr ||
            is_upstream_phase(connection.timed_out_phase())) {
            co_await send_fatal_alert(connection, Alert::handshake_failure);
        }
        co_return;
    }
    TlsStream& upstream = *upstream_stream;
    record.upstream_tls = {tls::version_name(upstream.ssl()), tls::selected_alpn(upstream.ssl()),
                           SSL_get_cipher_name(upstream.ssl()),
                           SSL_session_reused(upstream.ssl()) == 1};

    // A resumed session was verified in full (chain, name, own-CA check) when it was made; it
    // carries the certificate but not the chain. Its name is checked again here: OpenSSL resumes
    // whatever session it is given, for any SNI, and the leaf below is minted for this name.
    const bool resumed = SSL_session_reused(upstream.ssl()) == 1;
    X509* upstream_cert = SSL_get0_peer_certificate(upstream.ssl());
    STACK_OF(X509)* chain = SSL_get0_verified_chain(upstream.ssl());
    if (upstream_cert == nullptr || (!resumed && (chain == nullptr || sk_X509_num(chain) == 0))) {
        worker.upstream_sessions.forget(session_key);
        record.error = "upstream presented no verified chain";
        co_await send_fatal_alert(connection, Alert::handshake_failure);
        co_return;
    }
    if (resumed) {
        ++worker.counters.upstream_resumed;
    }
    const std::string fingerprint = pki::sha256_fingerprint_hex(upstream_cert);
    // Only what the record shows: summarize() would hash and format again on every connection.
    record.upstream_subject = pki::one_line_name(X509_get_subject_name(upstream_cert));
    record.upstream_issuer = pki::one_line_name(X509_get_issuer_name(upstream_cert));
    record.upstream_sha256 = fingerprint;
    if (const auto failure =
            resumed ? resumed_name_failure(upstream_cert, verify_name)
                    : tls::check_verified_chain(upstream.ssl(), worker.shared.upstream_checks)) {
        worker.upstream_sessions.forget(session_key);
        ++worker.counters.upstream_verify_failed;
        ++worker.counters.upstream_verify_by_reason[verify_reason_index(failure->code)];
        record.upstream_verify_error = failure->code;
        record.reason = "upstream certificate rejected: " + failure->detail;
        RefusedUpstream refused{upstream_cert, SSL_version(upstream.ssl()), host, failure->code,
                                failure->detail};
        co_await refuse_upstream(connection, std::move(client_bytes), std::move(refused),
                                 on_upstream_error);
        co_return;
    }

    const std::string& client_name = sni.empty() ? verify_name : sni;
    pki::X509Ptr leaf = leaf_for(connection, upstream_cert, fingerprint, client_name);
    if (!leaf) {
        co_await send_fatal_alert(connection, Alert::handshake_failure);
        co_return;
    }
    pki::SslPtr client_ssl(SSL_new(worker.client_context.get()));
    if (!client_ssl || SSL_use_certificate(client_ssl.get(), leaf.get()) != 1 ||
        SSL_use_PrivateKey(client_ssl.get(), leaf_key_for(worker, upstream_cert)) != 1 ||
        SSL_set_max_proto_version(client_ssl.get(), SSL_version(upstream.ssl())) != 1) {
        record.error = "client TLS setup: " + pki::last_openssl_error();
        co_await send_fatal_alert(connection, Alert::handshake_failure);
        co_return;
    }
    const std::string mirrored_alpn = record.upstream_tls.alpn;
    tls::set_mirrored_alpn(client_ssl.get(), &mirrored_alpn);
    TlsStream& client = legs->client.emplace(connection.client, std::move(client_ssl),
                                             TlsStream::Role::server, std::move(client_bytes));
    connection.arm_timeout(timeouts.handshake, "client_handshake");
    if (co_await client.handshake()) {
        ++worker.counters.client_handshake_failed;
        if (const auto rejection = client_rejection(client)) {
            ++worker.counters.client_rejections[static_cast<std::size_t>(*rejection)];
            record.client_rejection = std::string(to_string(*rejection));
            if (*rejection != ClientRejection::other && worker.shared.auto_passthrough != nullptr &&
                worker.shared.auto_passthrough->record_rejection(client_name)) {
                spdlog::info(
                    "auto passthrough: {} is passed through for {} s after {} refusals "
                    "of the minted certificate",
                    client_name, worker.shared.auto_passthrough->settings().duration.count(),
                    worker.shared.auto_passthrough->settings().failures);
            }
        }
        if (connection.timed_out_phase() == nullptr) {
            record.reason = "client handshake failed (does the client trust the tlsgate CA?): " +
                            client.error_text();
        }
        co_return;
    }
    tls::set_mirrored_alpn(client.ssl(), nullptr);
    record.client_tls = {tls::version_name(client.ssl()), tls::selected_alpn(client.ssl()),
                         SSL_get_cipher_name(client.ssl()), SSL_session_reused(client.ssl()) == 1};
    ++worker.counters.intercepted;
    if (worker.shared.recording.inspects()) {
        connection.inspector =
            std::make_unique<ConnectionInspector>(connection, record.client_tls.alpn, "https");
    }
    connection.intercepted_upstream = upstream.ssl();
    if (connection.plaintext_observer != nullptr) {
        // A STARTTLS dialogue's session watches the relay from its caller's frame: relay here.
        co_await relay_both_ways(connection, client, upstream);
        legs->relay_ended();
        co_return;
    }
    // The relay goes on without this chain of coroutines (accept, classify, decide, handshakes),
    // whose suspended frames would otherwise stay allocated for as long as the connection lives.
    InterceptedLegs& parts = *legs;
    start_relay(connection, client, upstream, std::move(legs), [&parts] { parts.relay_ended(); });
}

}  // namespace

asio::awaitable<void> run_tunnel(std::shared_ptr<Connection> connection,
                                 std::vector<std::uint8_t> already_read, TunnelTarget target) {
    auto& worker = connection->worker;
    auto& record = connection->record;
    record.kind = "tunnel";
    connection->arm_timeout(worker.timeouts.client_hello, "client_hello");

    // The parser lives on the heap only until the decision: a relayed connection keeps none of it.
    auto parser_storage = std::make_unique<classify::ClientHelloParser>();
    auto& parser = *parser_storage;
    bool server_spoke_first = false;
    const auto status =
        co_await read_client_hello(*connection, already_read, parser, server_spoke_first);
    policy::Query query{target.host, target.address, target.port, connection->client_ip};

    switch (status) {
        case classify::HelloStatus::need_more:
            co_return;  // the client went away or timed out; the record says which
        case classify::HelloStatus::not_tls: {
            const auto decision = worker.policy->decide(query);
            record.rule = decision.rule_name;
            if (decision.action == policy::Action::block) {
                ++worker.counters.blocked;
                record.action = "block";
                record.reason = "not TLS, blocked by policy";
                co_return;
            }
            ++worker.counters.relayed_raw;
            record.action = "passthrough";
            record.reason =
                server_spoke_first ? "the server spoke first: relayed raw" : "not TLS: relayed raw";
            co_await relay_raw(*connection, std::move(already_read), false);
            co_return;
        }
        case classify::HelloStatus::invalid:
            ++worker.counters.bad_client_hello;
            record.error = "malformed ClientHello: " + parser.error();
            co_await send_fatal_alert(*connection, Alert::decode_error);
            co_return;
        case classify::HelloStatus::too_large:
            ++worker.counters.client_hello_too_large;
            record.error = "ClientHello larger than " +
                           std::to_string(classify::ClientHelloParser::kDefaultMaxBytes) + " bytes";
            co_await send_fatal_alert(*connection, Alert::decode_error);
            co_return;
        case classify::HelloStatus::complete:
            break;
    }

    const auto& hello = parser.hello();
    const std::vector<std::string> alpn_offer = tls::relayable_alpn(hello.alpn);
    std::string sni;
    if (hello.has_sni) {
        auto normalized = normalize_hostname(hello.sni);
        if (!normalized) {
            ++worker.counters.bad_client_hello;
            record.error = "SNI is not a valid host name";
            co_await send_fatal_alert(*connection, Alert::illegal_parameter);
            co_return;
        }
        sni = std::move(*normalized);
        record.sni = sni;
    }
    // The SNI names the host when there is one; a CONNECT authority, a name learned in-band or
    // the address otherwise.
    const std::string& host = !sni.empty()           ? sni
                              : !target.host.empty() ? target.host
                                                     : target.name_hint;
    query.host = host;
    auto decision = worker.policy->decide(query);
    const bool learned_exemption = decision.action == policy::Action::intercept &&
                                   worker.shared.auto_passthrough != nullptr &&
                                   worker.shared.auto_passthrough->exempt(host);
    if (learned_exemption) {
        decision.action = policy::Action::passthrough;
        decision.rule_name = "auto_passthrough";
    }
    record.rule = decision.rule_name;
    record.action = policy::to_string(decision.action);
    switch (decision.action) {
        case policy::Action::block:
            ++worker.counters.blocked;
            record.reason = "blocked by policy";
            co_await send_fatal_alert(*connection, Alert::access_denied);
            co_return;
        case policy::Action::passthrough:
            ++worker.counters.passed_through;
            record.reason = learned_exemption
                                ? "passthrough learned: clients refused the minted certificate "
                                  "for this host (tlsgate passthrough list)"
                                : "passthrough by policy";
            parser_storage.reset();
            co_await relay_raw(*connection, std::move(already_read), true);
            co_return;
        case policy::Action::intercept: {
            ++worker.counters.intercept_decisions;
            record.reason = "intercept by policy";
            // With no name the client asked for (an in-path client that sent no SNI; a name
            // learned in-band is only the server's claim) only the chain can be verified upstream;
            // the leaf mirrors upstream's names and the client checks them against the name it had
            // in mind, exactly as it would against the real server.
            const std::string verify_name = sni.empty() ? target.host : sni;
            if (verify_name.empty()) {
                record.reason = "intercept by policy (no SNI: chain verified, names mirrored)";
            }
            parser_storage.reset();
            co_await intercept(connection, std::move(already_read), alpn_offer, sni, verify_name,
                               host, decision.on_upstream_error);
            co_return;
        }
    }
}

}  // namespace tlsgate::relay
