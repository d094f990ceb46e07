#include "listen/portal_server.hpp"

#include <array>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "inspect/http1.hpp"
#include "relay/portal_answer.hpp"

namespace tlsgate::listen {

asio::awaitable<void> serve_portal(std::shared_ptr<relay::Connection> connection,
                                   std::string already_read) {
    auto& worker = connection->worker;
    auto& record = connection->record;
    record.kind = "portal";
    std::string buffer = std::move(already_read);
    std::array<char, 8192> chunk;
    for (;;) {
        connection->arm_timeout(worker.timeouts.request_head, "request_head");
        auto request = http1::parse_request_head(buffer, 16 * 1024);
        while (request.status == http1::ParseStatus::need_more) {
            std::error_code error;
            const std::size_t n = co_await connection->client.async_read_some(
                asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, error));
            if (error) {
                co_return;  // closed between requests (or timed out): nothing to answer
            }
            buffer.append(chunk.data(), n);
            request = http1::parse_request_head(buffer, 16 * 1024);
        }
        relay::HttpAnswer answer;
        bool keep_alive = false;
        bool head_only = false;
        if (request.status == http1::ParseStatus::error) {
            ++worker.counters.bad_request;
            answer.status = 400;
            answer.reason = "Bad Request";
            answer.content_type = "text/plain; charset=utf-8";
            answer.body = "bad request: " + request.error + "\n";
        } else {
            const auto& head = request.head;
            ++worker.counters.portal_requests;
            const auto user_agent = http1::find_header(head.headers, "user-agent");
            answer = relay::answer_portal_request(*worker.shared.portal, head.method, head.target,
                                                  user_agent.value_or(""));
            head_only = head.method == "HEAD";
            const auto framing = http1::request_body_framing(head);
            keep_alive = http1::wants_keep_alive(head.version_minor, head.headers) && framing.ok &&
                         framing.framing.kind == http1::BodyFraming::Kind::none;
            record.http_status = answer.status;
            ++record.http_requests;
        }
        const std::string response = relay::http_response_text(answer, head_only, keep_alive);
        std::error_code error;
        co_await asio::async_write(connection->client, asio::buffer(response),
                                   asio::redirect_error(asio::use_awaitable, error));
        if (error || !keep_alive) {
            std::error_code ignored;
            connection->client.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
            co_return;
        }
        record.bytes_server_to_client += response.size();
        buffer.erase(0, request.head_size);
    }
}

}  // namespace tlsgate::listen
