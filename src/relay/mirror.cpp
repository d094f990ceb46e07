#include "relay/mirror.hpp"

#include <array>
#include <ctime>
#include <span>
#include <string_view>

#include "inspect/http1.hpp"
#include "pki/mint.hpp"
#include "relay/byte_stream.hpp"
#include "relay/portal_answer.hpp"
#include "tls/contexts.hpp"

namespace tlsgate::relay {
namespace {

// The page is all the client can get, so HTTP/1.1 is the only protocol worth agreeing on.
const std::string kPageProtocol = "http/1.1";
constexpr std::size_t kMaxRequestHeadBytes = 16 * 1024;

pki::X509Ptr mint_stand_in(Connection& connection, X509* upstream_cert) {
    auto& worker = connection.worker;
    auto properties = pki::untrusted_mirror_properties(upstream_cert, pki::random_serial());
    if (!properties) {
        connection.record.error = "cannot mirror the refused certificate: " + properties.error();
        return nullptr;
    }
    auto leaf = pki::mint_leaf(*properties, worker.leaf_key.get(), worker.shared.untrusted_ca);
    if (!leaf) {
        connection.record.error = "minting the untrusted stand-in failed: " + leaf.error();
        return nullptr;
    }
    return std::move(*leaf);
}

// The request head, or nothing when the client closed, timed out or spoke something else.
asio::awaitable<std::optional<http1::RequestHead>> read_request_head(TlsStream& client) {
    std::string buffer;
    std::array<std::uint8_t, 4096> chunk;
    for (;;) {
        auto request = http1::parse_request_head(buffer, kMaxRequestHeadBytes);
        if (request.status == http1::ParseStatus::complete) {
            co_return std::move(request.head);
        }
        if (request.status == http1::ParseStatus::error) {
            co_return std::nullopt;
        }
        const std::span<std::uint8_t> into(chunk);
        const ReadResult read = co_await client.read_some(into);
        if (read.error || read.end_of_stream) {
            co_return std::nullopt;
        }
        if (read.bytes == 0) {
            if (co_await client.wait_readable()) {
                co_return std::nullopt;
            }
            continue;
        }
        buffer.append(reinterpret_cast<const char*>(chunk.data()), read.bytes);
    }
}

}  // namespace

asio::awaitable<bool> serve_mirrored_session(Connection& connection,
                                             std::vector<std::uint8_t> client_bytes,
                                             const RefusedUpstream& refused) {
    auto& worker = connection.worker;
    auto& record = connection.record;
    pki::X509Ptr leaf = mint_stand_in(connection, refused.certificate);
    if (!leaf) {
        co_return false;
    }
    pki::SslPtr client_ssl(SSL_new(worker.client_context.get()));
    if (!client_ssl || SSL_use_certificate(client_ssl.get(), leaf.get()) != 1 ||
        SSL_use_PrivateKey(client_ssl.get(), worker.leaf_key.get()) != 1 ||
        (refused.tls_version >= TLS1_2_VERSION &&
         SSL_set_max_proto_version(client_ssl.get(), refused.tls_version) != 1)) {
        record.error = "client TLS setup for the untrusted stand-in: " + pki::last_openssl_error();
        co_return false;
    }
    tls::set_mirrored_alpn(client_ssl.get(), &kPageProtocol);
    TlsStream client(connection.client, std::move(client_ssl), TlsStream::Role::server,
                     std::move(client_bytes));
    connection.arm_timeout(worker.timeouts.handshake, "client_handshake");
    if (co_await client.handshake()) {
        // The expected end: the client refused a certificate nothing trusts. Not counted as a
        // client rejection, which is about clients that refuse the real CA.
        co_return true;
    }
    tls::set_mirrored_alpn(client.ssl(), nullptr);
    record.client_tls = {tls::version_name(client.ssl()), tls::selected_alpn(client.ssl()),
                         SSL_get_cipher_name(client.ssl())};

    connection.arm_timeout(worker.timeouts.request_head, "request_head");
    const auto request = co_await read_request_head(client);
    if (request) {
        const PortalAssets* portal = worker.shared.portal;
        const portal::UpstreamErrorNotice notice{
            refused.host, refused.reason_code, refused.detail,
            portal != nullptr ? std::string_view(portal->info.operator_name) : std::string_view(),
            portal != nullptr ? std::string_view(portal->info.operator_contact)
                              : std::string_view()};
        const std::string response =
            http_response_text(upstream_error_answer(notice), request->method == "HEAD", false);
        const auto bytes =
            std::span(reinterpret_cast<const std::uint8_t*>(response.data()), response.size());
        if (!co_await client.write_all(bytes)) {
            ++worker.counters.mirror_pages_served;
            record.http_status = 502;
        }
    }
    co_await client.shutdown_write(true);
    co_return true;
}

}  // namespace tlsgate::relay
