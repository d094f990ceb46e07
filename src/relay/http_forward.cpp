#include "relay/http_forward.hpp"

#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "common/hostname.hpp"
#include "common/text.hpp"
#include "inspect/http1.hpp"
#include "relay/byte_stream.hpp"
#include "relay/portal_answer.hpp"
#include "relay/pump.hpp"
#include "relay/socket_read.hpp"

namespace tlsgate::relay {
namespace {

using asio::ip::tcp;

// Appends what the socket has to `buffer` (holding no buffer while waiting: an idle keep-alive
// client waits here); false at end of stream or on error. `reset` (when given) says whether the
// peer aborted rather than ended.
asio::awaitable<bool> read_more(Connection& connection, tcp::socket& socket, std::string& buffer,
                                bool* reset = nullptr) {
    const std::error_code error = co_await append_available(socket, buffer);
    if (error) {
        if (reset != nullptr) {
            *reset = error != asio::error::eof;
        }
        co_return false;
    }
    connection.touch();
    co_return true;
}

asio::awaitable<bool> write_text(tcp::socket& socket, std::string_view text) {
    std::error_code error;
    co_await asio::async_write(socket, asio::buffer(text.data(), text.size()),
                               asio::redirect_error(asio::use_awaitable, error));
    co_return !error;
}

// Writes bytes on and shows them to the inspector (after the write: watching never delays).
asio::awaitable<bool> write_observed(Connection& connection, inspect::Side sender,
                                     std::string_view text) {
    auto& to = sender == inspect::Side::client ? connection.upstream : connection.client;
    if (!co_await write_text(to, text)) {
        co_return false;
    }
    if (connection.inspector) {
        connection.inspector->observe(sender, text);
    }
    co_return true;
}

// Reads until `parse` gives a verdict on the bytes at the start of `buffer`.
template <typename Parse>
asio::awaitable<decltype(std::declval<Parse>()(std::string_view{}))> read_head(
    Connection& connection, tcp::socket& socket, std::string& buffer, Parse parse) {
    for (;;) {
        auto result = parse(std::string_view(buffer));
        if (result.status != http1::ParseStatus::need_more) {
            co_return result;
        }
        if (!co_await read_more(connection, socket, buffer)) {
            result.error = buffer.empty() ? "" : "connection closed inside a message head";
            co_return result;
        }
    }
}

// Moves one body from `from` to `to`: bytes already in `buffer` first, then from the socket,
// until the framing says the body ended. What follows the body stays in `buffer`.
asio::awaitable<bool> forward_body(Connection& connection, inspect::Side sender,
                                   std::string& buffer, const http1::BodyFraming& framing,
                                   std::uint64_t& counter) {
    auto& from = sender == inspect::Side::client ? connection.client : connection.upstream;
    http1::BodyReader reader(framing, http1::BodyReader::LineEnds::crlf_only);
    if (reader.done()) {
        co_return true;
    }
    for (;;) {
        if (!buffer.empty()) {
            const auto step = reader.feed(buffer);
            if (step.error) {
                connection.record.error = "malformed body: " + std::string(step.error_text);
                co_return false;
            }
            if (!co_await write_observed(connection, sender,
                                         std::string_view(buffer).substr(0, step.consumed))) {
                connection.record.error = "write failed while relaying a body";
                co_return false;
            }
            counter += step.consumed;
            buffer.erase(0, step.consumed);
            if (step.done) {
                co_return true;
            }
        }
        bool reset = false;
        if (!co_await read_more(connection, from, buffer, &reset)) {
            if (reset && sender == inspect::Side::server) {
                // A body that ends at close must not look complete when upstream aborted.
                connection.record.error = "upstream reset inside a body";
                reset_socket(connection.client);
                co_return false;
            }
            if (reader.finish_on_close()) {
                if (connection.inspector) {
                    connection.inspector->end(sender);
                }
                co_return true;
            }
            connection.record.error = "connection closed inside a body";
            co_return false;
        }
    }
}

// Fields the origin must not see from us: what was meant for the proxy, the client's Host (the
// URL's authority replaces it, RFC 9112 section 3.2.2, so the origin serves the host the policy
// decided on), and Expect (the gateway answers 100-continue itself).
bool dropped_when_forwarding(std::string_view name) {
    return equals_ignoring_case(name, "proxy-connection") ||
           equals_ignoring_case(name, "proxy-authorization") ||
           equals_ignoring_case(name, "host") || equals_ignoring_case(name, "expect");
}

// Fields for the client's connection to us only (RFC 9110 7.6.1): Connection itself, what it
// names, Keep-Alive and TE.
bool hop_by_hop(const http1::RequestHead& head, std::string_view name) {
    return equals_ignoring_case(name, "connection") || equals_ignoring_case(name, "keep-alive") ||
           equals_ignoring_case(name, "te") ||
           http1::header_has_token(head.headers, "connection", name);
}

// The request as the origin gets it: origin form, the URL's host, no hop-by-hop fields but our
// own Connection field where one is needed (an upgrade keeps its Upgrade field; an HTTP/1.0
// client that asked for keep-alive keeps asking).
std::string origin_form_head(const http1::RequestHead& head, const std::string& origin_form,
                             std::string_view host_field, bool upgrade, bool keep_alive) {
    std::string text =
        head.method + " " + origin_form + " HTTP/1." + std::to_string(head.version_minor) + "\r\n";
    text += "Host: ";
    text += host_field;
    text += "\r\n";
    for (const auto& header : head.headers) {
        const bool kept_for_upgrade = upgrade && equals_ignoring_case(header.name, "upgrade");
        if (dropped_when_forwarding(header.name) ||
            (hop_by_hop(head, header.name) && !kept_for_upgrade)) {
            continue;
        }
        text += header.name + ": " + header.value + "\r\n";
    }
    if (upgrade) {
        text += "Connection: upgrade\r\n";
    } else if (head.version_minor == 0 && keep_alive) {
        text += "Connection: keep-alive\r\n";
    }
    text += "\r\n";
    return text;
}

// RFC 9112 6.3: a response with both Transfer-Encoding and Content-Length is framed by the
// former, and a proxy removes the latter, so the client cannot frame the body differently.
std::string head_without_content_length(const http1::ResponseHead& head) {
    std::string text = "HTTP/1." + std::to_string(head.version_minor) + " " +
                       std::to_string(head.status) + " " + head.reason + "\r\n";
    for (const auto& header : head.headers) {
        if (!equals_ignoring_case(header.name, "content-length")) {
            text += header.name + ": " + header.value + "\r\n";
        }
    }
    text += "\r\n";
    return text;
}

// Whether the client asked to switch protocols ("Connection: upgrade" with an Upgrade field): a
// 101 that answers anything else would turn the connection into a tunnel nobody asked for.
bool requests_upgrade(const http1::RequestHead& head) {
    return head.version_minor >= 1 &&
           http1::header_has_token(head.headers, "connection", "upgrade") &&
           http1::find_header(head.headers, "upgrade").has_value();
}

}  // namespace

asio::awaitable<void> send_proxy_error(Connection& connection, int status, std::string_view reason,
                                       std::string_view detail) {
    std::string body =
        std::to_string(status) + " " + std::string(reason) + ": " + std::string(detail) + "\n";
    std::string response = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                           "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                           std::to_string(body.size()) +
                           "\r\nConnection: close\r\nServer: tlsgate\r\n\r\n" + body;
    connection.record.http_status = status;
    co_await write_text(connection.client, response);
    std::error_code ignored;
    connection.client.shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> send_upstream_failure(Connection& connection, const std::string& reason) {
    if (connection.timed_out_phase() != nullptr) {
        const std::string detail =
            "upstream did not answer in time (" + std::string(connection.timed_out_phase()) + ")";
        co_await send_proxy_error(connection, 504, "Gateway Timeout", detail);
    } else {
        co_await send_proxy_error(connection, 502, "Bad Gateway", reason);
    }
}

asio::awaitable<void> forward_plain_http(std::shared_ptr<Connection> connection,
                                         std::string buffer) {
    auto& worker = connection->worker;
    auto& record = connection->record;
    record.kind = "http";
    std::string connected_authority;
    std::string upstream_buffer;
    connection->arm_timeout(worker.timeouts.idle, "idle");

    for (;;) {
        // Between requests, what the last body grew the buffers to is not held while idle.
        if (buffer.empty()) {
            std::string().swap(buffer);
        }
        if (upstream_buffer.empty()) {
            std::string().swap(upstream_buffer);
        }
        auto request = co_await read_head(
            *connection, connection->client, buffer,
            [](std::string_view text) { return http1::parse_request_head(text); });
        if (request.status == http1::ParseStatus::need_more) {
            co_return;  // the client closed between requests: the normal end of keep-alive
        }
        if (request.status == http1::ParseStatus::error) {
            ++worker.counters.bad_request;
            co_await send_proxy_error(*connection, 400, "Bad Request", request.error);
            co_return;
        }
        const auto& head = request.head;
        const auto url = http1::parse_absolute_url(head.target);
        if (!url || url->scheme != "http") {
            ++worker.counters.bad_request;
            co_await send_proxy_error(*connection, 400, "Bad Request",
                                      "a proxy request needs an absolute http:// URL (use "
                                      "CONNECT for https)");
            co_return;
        }
        if (head.method == "CONNECT") {
            // A tunnel names its target in authority form ("CONNECT host:port"); sent on as an
            // ordinary request, a 2xx would leave both sides disagreeing on what follows.
            ++worker.counters.bad_request;
            co_await send_proxy_error(*connection, 400, "Bad Request",
                                      "CONNECT needs a host:port target, not a URL");
            co_return;
        }
        std::string host = url->authority.host;
        if (!IpAddress::parse(host)) {
            auto normalized = normalize_hostname(host);
            if (!normalized) {
                co_await send_proxy_error(*connection, 400, "Bad Request", "invalid host name");
                co_return;
            }
            host = std::move(*normalized);
        }
        const std::uint16_t port = url->authority.port;
        if (host == kPortalHostName && worker.shared.portal != nullptr) {
            // The portal answers here: tlsgate.local never reaches the network.
            ++worker.counters.portal_requests;
            const auto user_agent = http1::find_header(head.headers, "user-agent");
            const auto answer = answer_portal_request(*worker.shared.portal, head.method,
                                                      url->origin_form, user_agent.value_or(""));
            const auto body = http1::request_body_framing(head);
            const bool keep_alive = http1::wants_keep_alive(head.version_minor, head.headers) &&
                                    body.ok && body.framing.kind == http1::BodyFraming::Kind::none;
            const std::string response =
                http_response_text(answer, head.method == "HEAD", keep_alive);
            record.destination = std::string(kPortalHostName);
            record.http_status = answer.status;
            if (!co_await write_text(connection->client, response) || !keep_alive) {
                std::error_code ignored;
                connection->client.shutdown(tcp::socket::shutdown_send, ignored);
                co_return;
            }
            buffer.erase(0, request.head_size);
            continue;
        }
        const std::string authority = host + ":" + std::to_string(port);
        record.destination = authority;
        const auto decision =
            worker.policy->decide({host, IpAddress::parse(host), port, connection->client_ip});
        record.rule = decision.rule_name;
        record.action = policy::to_string(decision.action);
        if (decision.action == policy::Action::block) {
            ++worker.counters.blocked;
            record.reason = "blocked by policy";
            // GCC 12 destroys temporaries inside a co_await expression twice: name them.
            const std::string block_reason =
                "blocked by tlsgate policy (" + std::string(decision.rule_name) + ")";
            co_await send_proxy_error(*connection, 403, "Forbidden", block_reason);
            co_return;
        }
        const auto framing = http1::request_body_framing(head);
        if (!framing.ok) {
            ++worker.counters.bad_request;
            co_await send_proxy_error(*connection, 400, "Bad Request", framing.error);
            co_return;
        }
        if (authority != connected_authority || !connection->upstream.is_open()) {
            std::error_code ignored;
            connection->upstream.close(ignored);
            upstream_buffer.clear();
            auto connected = co_await connect_upstream(*connection, host, port);
            connection->arm_timeout(worker.timeouts.idle, "idle");
            if (!connected) {
                ++worker.counters.upstream_connect_failed;
                record.reason = connected.error();
                co_await send_upstream_failure(*connection, connected.error());
                co_return;
            }
            // Address rules (CIDRs) can only match once the name is resolved, as for CONNECT.
            if (blocked_by_policy(*connection, host, *connected, port)) {
                connection->upstream.close(ignored);
                const std::string block_reason = "blocked by tlsgate policy (" + record.rule + ")";
                co_await send_proxy_error(*connection, 403, "Forbidden", block_reason);
                co_return;
            }
            connected_authority = authority;
            if (!connection->inspector && worker.shared.recording.inspects()) {
                connection->inspector =
                    std::make_unique<ConnectionInspector>(*connection, "http/1.1", "http");
            }
        }
        ++worker.counters.http_forwarded;
        ++record.http_requests;
        buffer.erase(0, request.head_size);
        const bool client_keep_alive = http1::wants_keep_alive(head.version_minor, head.headers);
        const std::string method = head.method;
        // The gateway answers "Expect: 100-continue" itself and sends the body along at once:
        // an origin that never sends 100 (HTTP/1.0 servers, many others) would otherwise wait
        // for the body while we wait for the 100. HTTP/1.0 clients get no 1xx (RFC 9110 15.2).
        const bool answer_continue =
            head.version_minor >= 1 &&
            http1::header_has_token(head.headers, "expect", "100-continue") &&
            framing.framing.kind != http1::BodyFraming::Kind::none;
        const bool upgrade_requested = requests_upgrade(head);
        std::string host_field = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        if (port != 80) {
            host_field += ":" + std::to_string(port);
        }
        const std::string upstream_head = origin_form_head(head, url->origin_form, host_field,
                                                           upgrade_requested, client_keep_alive);
        if (!co_await write_observed(*connection, inspect::Side::client, upstream_head)) {
            record.error = "upstream write failed";
            co_return;
        }
        if (answer_continue) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            if (!co_await write_text(connection->client, kContinue)) {
                co_return;
            }
        }
        if (!co_await forward_body(*connection, inspect::Side::client, buffer, framing.framing,
                                   record.bytes_client_to_server)) {
            co_return;
        }

        for (;;) {
            connection->arm_timeout(worker.timeouts.response_head, "response_head");
            auto response = co_await read_head(
                *connection, connection->upstream, upstream_buffer,
                [](std::string_view text) { return http1::parse_response_head(text); });
            connection->arm_timeout(worker.timeouts.idle, "idle");
            if (response.status != http1::ParseStatus::complete) {
                if (record.http_requests == 1 || !response.error.empty() ||
                    connection->timed_out_phase() != nullptr) {
                    record.error = "upstream answered no valid response: " + response.error;
                    co_await send_upstream_failure(*connection,
                                                   "upstream sent no valid HTTP response");
                }
                co_return;
            }
            const auto& response_head = response.head;
            const std::string_view head_bytes =
                std::string_view(upstream_buffer).substr(0, response.head_size);
            const bool interim = response_head.status >= 100 && response_head.status < 200;
            if (response_head.status == 101 && !upgrade_requested) {
                // A switch nobody asked for would make the rest of the connection a blind
                // tunnel (pipelined requests included), past policy and records.
                record.error = "upstream switched protocols without an Upgrade request";
                co_await send_upstream_failure(*connection, record.error);
                co_return;
            }
            http1::FramingResult response_framing;
            if (!interim) {
                // Checked before anything of the response reaches the client: a bad one gets a
                // 502, not a head followed by a cut.
                response_framing = http1::response_body_framing(response_head, method);
                if (!response_framing.ok) {
                    record.error = "upstream response framing: " + response_framing.error;
                    co_await send_upstream_failure(*connection, record.error);
                    co_return;
                }
            }
            if (interim && response_head.status != 101 && head.version_minor == 0) {
                upstream_buffer.erase(0, response.head_size);  // not for an HTTP/1.0 client
                continue;
            }
            std::string rebuilt_head;
            std::string_view forwarded_head = head_bytes;
            if (!interim && http1::find_header(response_head.headers, "transfer-encoding") &&
                http1::find_header(response_head.headers, "content-length")) {
                rebuilt_head = head_without_content_length(response_head);
                forwarded_head = rebuilt_head;
            }
            if (!co_await write_observed(*connection, inspect::Side::server, forwarded_head)) {
                co_return;
            }
            record.bytes_server_to_client += forwarded_head.size();
            upstream_buffer.erase(0, response.head_size);
            if (response_head.status == 101) {
                // Upgraded (e.g. WebSocket over plain HTTP): from here on, bytes both ways.
                TcpStream client(connection->client);
                TcpStream upstream(connection->upstream);
                if (!buffer.empty() &&
                    !co_await write_observed(*connection, inspect::Side::client, buffer)) {
                    co_return;
                }
                if (!upstream_buffer.empty() &&
                    !co_await write_observed(*connection, inspect::Side::server, upstream_buffer)) {
                    co_return;
                }
                co_await relay_both_ways(*connection, client, upstream);
                co_return;
            }
            if (interim) {
                continue;
            }
            if (!co_await forward_body(*connection, inspect::Side::server, upstream_buffer,
                                       response_framing.framing, record.bytes_server_to_client)) {
                co_return;
            }
            const bool reusable =
                client_keep_alive &&
                http1::wants_keep_alive(response_head.version_minor, response_head.headers) &&
                response_framing.framing.kind != http1::BodyFraming::Kind::until_close;
            if (!reusable) {
                std::error_code ignored;
                connection->client.shutdown(tcp::socket::shutdown_send, ignored);
                co_return;
            }
            if (!upstream_buffer.empty()) {
                // Bytes after the response, before the next request: nothing asked for them, and
                // read as the next response they would answer a request they were not for.
                std::error_code ignored;
                connection->upstream.close(ignored);
                upstream_buffer.clear();
            }
            break;
        }
    }
}

}  // namespace tlsgate::relay
