#pragma once
// The portal's answers (install page, certificate downloads, /metrics, /healthz), shared by the
// portal listener and by the proxy, which answers http://tlsgate.local/ itself: that name never
// reaches the network.
#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"
#include "pki/ca.hpp"
#include "portal/pages.hpp"

namespace tlsgate::relay {

inline constexpr std::string_view kPortalHostName = "tlsgate.local";

struct PortalOperator {
    std::string name;
    std::string contact;
    std::string notice;
};

// Built once at start from the CA; read by every worker.
struct PortalAssets {
    portal::PortalInfo info;
    std::string pem, der, p12, mobileconfig;
    std::function<std::string()> render_metrics;  // Prometheus text of the whole gateway
    std::atomic<bool> ready{false};               // listeners up and CA loaded: /healthz is 200

    static Result<std::unique_ptr<PortalAssets>> build(const pki::CertificateAuthority& ca,
                                                       const PortalOperator& operator_info);
};

struct HttpAnswer {
    int status = 200;
    std::string reason = "OK";
    std::string content_type;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

HttpAnswer answer_portal_request(const PortalAssets& assets, std::string_view method,
                                 std::string_view target, std::string_view user_agent);

// 502 with the page explaining why tlsgate refused the upstream (see
// portal::render_upstream_error_page), for a client that went ahead over a mirrored session.
HttpAnswer upstream_error_answer(const portal::UpstreamErrorNotice& notice);

// The whole response: status line, headers (length, type, no caching, the portal's CSP), body
// (left out for HEAD).
std::string http_response_text(const HttpAnswer& answer, bool head_only, bool keep_alive);

}  // namespace tlsgate::relay
