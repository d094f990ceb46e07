#include "relay/portal_answer.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "portal/mobileconfig.hpp"
#include "portal/platform.hpp"

namespace tlsgate::relay {
namespace {

std::string colon_hex(const unsigned char* bytes, unsigned int length) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string text;
    for (unsigned int i = 0; i < length; ++i) {
        if (i != 0)
            text += ':';
        text += kHex[bytes[i] >> 4];
        text += kHex[bytes[i] & 0xf];
    }
    return text;
}

HttpAnswer text_answer(int status, std::string reason, std::string body) {
    HttpAnswer answer;
    answer.status = status;
    answer.reason = std::move(reason);
    answer.content_type = "text/plain; charset=utf-8";
    answer.body = std::move(body);
    return answer;
}

}  // namespace

Result<std::unique_ptr<PortalAssets>> PortalAssets::build(const pki::CertificateAuthority& ca,
                                                          const PortalOperator& operator_info) {
    auto assets = std::make_unique<PortalAssets>();
    X509* cert = ca.root();  // in issuing-CA mode devices install the offline root
    for (auto [format, into] : {std::pair{pki::ExportFormat::pem, &assets->pem},
                                std::pair{pki::ExportFormat::der, &assets->der},
                                std::pair{pki::ExportFormat::p12, &assets->p12}}) {
        auto bytes = pki::export_certificate(cert, format);
        if (!bytes) {
            return make_error("portal: " + bytes.error());
        }
        *into = std::move(*bytes);
    }
    const auto summary = pki::summarize(cert);
    auto& info = assets->info;
    info.operator_name = operator_info.name;
    info.operator_contact = operator_info.contact;
    info.operator_notice = operator_info.notice;
    info.ca_subject = summary.subject;
    info.ca_sha256_fingerprint = summary.sha256_fingerprint;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (X509_digest(cert, EVP_sha1(), digest, &length) == 1) {
        info.ca_sha1_fingerprint = colon_hex(digest, length);
    }
    info.ca_not_before = summary.not_before;
    info.ca_not_after = summary.not_after;
    info.gateway_version = TLSGATE_VERSION_STRING;
    // Stable identifiers derived from the certificate: reinstalling the profile replaces it.
    if (X509_digest(cert, EVP_sha256(), digest, &length) != 1 || length < 32) {
        return make_error("portal: cannot hash the CA certificate");
    }
    const auto der =
        std::span(reinterpret_cast<const unsigned char*>(assets->der.data()), assets->der.size());
    const std::string payload_uuid =
        portal::uuid_from_bytes(std::span<const unsigned char, 16>(digest, 16));
    const std::string profile_uuid =
        portal::uuid_from_bytes(std::span<const unsigned char, 16>(digest + 16, 16));
    const std::string organization =
        operator_info.name.empty() ? std::string("tlsgate") : operator_info.name;
    assets->mobileconfig =
        portal::apple_mobileconfig(der, portal::common_name_from_subject(summary.subject),
                                   organization, payload_uuid, profile_uuid);
    return assets;
}

HttpAnswer answer_portal_request(const PortalAssets& assets, std::string_view method,
                                 std::string_view target, std::string_view user_agent) {
    if (method != "GET" && method != "HEAD") {
        auto answer = text_answer(405, "Method Not Allowed", "the portal answers GET and HEAD\n");
        answer.headers.emplace_back("Allow", "GET, HEAD");
        return answer;
    }
    std::string_view path = target;
    if (const auto query = path.find('?'); query != std::string_view::npos) {
        path = path.substr(0, query);
    }
    // Absolute-form through the proxy: http://tlsgate.local/...
    if (path.starts_with("http://")) {
        const auto slash = path.find('/', 7);
        path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
    }
    if (path == "/" || path == "/index.html") {
        HttpAnswer answer;
        answer.content_type = std::string(portal::kHtmlContentType);
        answer.body = portal::render_portal_page(assets.info, user_agent);
        answer.headers.emplace_back("Vary", "User-Agent");
        return answer;
    }
    if (path == "/healthz") {
        return assets.ready.load() ? text_answer(200, "OK", "ok\n")
                                   : text_answer(503, "Service Unavailable", "starting\n");
    }
    if (path == "/metrics") {
        HttpAnswer answer;
        answer.content_type = "text/plain; version=0.0.4; charset=utf-8";
        answer.body = assets.render_metrics ? assets.render_metrics() : std::string();
        return answer;
    }
    for (const auto& download : portal::certificate_downloads()) {
        if (path != download.path)
            continue;
        HttpAnswer answer;
        answer.content_type = std::string(download.content_type);
        switch (download.format) {
            case portal::DownloadFormat::pem:
                answer.body = assets.pem;
                break;
            case portal::DownloadFormat::der:
                answer.body = assets.der;
                break;
            case portal::DownloadFormat::p12:
                answer.body = assets.p12;
                break;
            case portal::DownloadFormat::mobileconfig:
                answer.body = assets.mobileconfig;
                break;
        }
        const auto name = download.path.substr(download.path.rfind('/') + 1);
        answer.headers.emplace_back("Content-Disposition",
                                    "attachment; filename=\"" + std::string(name) + "\"");
        return answer;
    }
    HttpAnswer answer;
    answer.status = 404;
    answer.reason = "Not Found";
    answer.content_type = std::string(portal::kHtmlContentType);
    answer.body = portal::render_not_found_page();
    return answer;
}

HttpAnswer upstream_error_answer(const portal::UpstreamErrorNotice& notice) {
    HttpAnswer answer;
    answer.status = 502;
    answer.reason = "Bad Gateway";
    answer.content_type = std::string(portal::kHtmlContentType);
    answer.body = portal::render_upstream_error_page(notice);
    return answer;
}

std::string http_response_text(const HttpAnswer& answer, bool head_only, bool keep_alive) {
    std::string text = "HTTP/1.1 " + std::to_string(answer.status) + " " + answer.reason + "\r\n";
    text += "Server: tlsgate\r\n";
    text += "Content-Type: " + answer.content_type + "\r\n";
    text += "Content-Length: " + std::to_string(answer.body.size()) + "\r\n";
    text += "Cache-Control: no-store\r\n";
    text += "X-Content-Type-Options: nosniff\r\n";
    text +=
        "Content-Security-Policy: " + std::string(portal::kPortalContentSecurityPolicy) + "\r\n";
    for (const auto& [name, value] : answer.headers) {
        text += name + ": " + value + "\r\n";
    }
    text += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    if (!head_only) {
        text += answer.body;
    }
    return text;
}

}  // namespace tlsgate::relay
