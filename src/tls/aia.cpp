#include "tls/aia.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <charconv>
#include <memory>

namespace tlsgate::tls {
namespace {

using AuthorityInfoAccessPtr =
    std::unique_ptr<AUTHORITY_INFO_ACCESS, pki::OpenSslDeleter<AUTHORITY_INFO_ACCESS_free>>;
using BioPtr = std::unique_ptr<BIO, pki::OpenSslDeleter<BIO_free>>;
using Pkcs7Ptr = std::unique_ptr<PKCS7, pki::OpenSslDeleter<PKCS7_free>>;

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && lower(a) == lower(b);
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
        text.remove_suffix(1);
    }
    return text;
}

std::optional<std::size_t> parse_size(std::string_view text) {
    std::size_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

std::vector<std::string> ca_issuers_urls(const X509* cert) {
    std::vector<std::string> urls;
    AuthorityInfoAccessPtr access(static_cast<AUTHORITY_INFO_ACCESS*>(
        X509_get_ext_d2i(cert, NID_info_access, nullptr, nullptr)));
    if (!access) {
        ERR_clear_error();
        return urls;
    }
    for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(access.get()); ++i) {
        const ACCESS_DESCRIPTION* description = sk_ACCESS_DESCRIPTION_value(access.get(), i);
        if (OBJ_obj2nid(description->method) != NID_ad_ca_issuers ||
            description->location->type != GEN_URI) {
            continue;
        }
        const ASN1_IA5STRING* uri = description->location->d.uniformResourceIdentifier;
        urls.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                          static_cast<std::size_t>(ASN1_STRING_length(uri)));
    }
    return urls;
}

std::optional<HttpUrl> parse_http_url(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (url.size() <= scheme.size() || !iequals(url.substr(0, scheme.size()), scheme)) {
        return std::nullopt;
    }
    url.remove_prefix(scheme.size());
    if (const auto fragment = url.find('#'); fragment != std::string_view::npos) {
        url = url.substr(0, fragment);
    }
    const auto path_start = url.find_first_of("/?");
    std::string_view authority = url.substr(0, path_start);
    HttpUrl parsed;
    parsed.path = path_start == std::string_view::npos ? "/" : std::string(url.substr(path_start));
    if (parsed.path.front() == '?') {
        parsed.path.insert(parsed.path.begin(), '/');
    }
    if (authority.empty() || authority.find('@') != std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view port_text;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        parsed.host = std::string(authority.substr(1, close - 1));
        const auto rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return std::nullopt;
            }
            port_text = rest.substr(1);
        }
    } else {
        const auto colon = authority.rfind(':');
        parsed.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = authority.substr(colon + 1);
        }
    }
    if (parsed.host.empty() || parsed.path.find_first_of(" \r\n\t") != std::string::npos ||
        parsed.host.find_first_of(" \r\n\t/") != std::string::npos) {
        return std::nullopt;
    }
    parsed.host = lower(parsed.host);
    if (!port_text.empty()) {
        const auto port = parse_size(port_text);
        if (!port || *port == 0 || *port > 65535) {
            return std::nullopt;
        }
        parsed.port = static_cast<std::uint16_t>(*port);
    }
    return parsed;
}

Result<std::string> http_response_body(std::string_view response, std::size_t max_body) {
    const auto head_end = response.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
        return make_error("incomplete HTTP response head");
    }
    std::string_view head = response.substr(0, head_end);
    const std::string_view body = response.substr(head_end + 4);
    const auto line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    // "HTTP/1.1 200 OK"
    if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
        return make_error("not an HTTP/1.x response");
    }
    if (status_line.substr(9, 3) != "200") {
        return make_error("HTTP status " + std::string(status_line.substr(9, 3)));
    }
    std::optional<std::size_t> content_length;
    head = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
    while (!head.empty()) {
        const auto end = head.find("\r\n");
        const std::string_view line = head.substr(0, end);
        head = end == std::string_view::npos ? std::string_view() : head.substr(end + 2);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            return make_error("malformed HTTP header line");
        }
        const std::string_view name = line.substr(0, colon);
        const std::string_view value = trim(line.substr(colon + 1));
        if (iequals(name, "content-length")) {
            const auto length = parse_size(value);
            if (!length || (content_length && *content_length != *length)) {
                return make_error("bad Content-Length");
            }
            content_length = length;
        } else if (iequals(name, "transfer-encoding") && !iequals(value, "identity")) {
            return make_error("unsupported Transfer-Encoding " + std::string(value));
        }
    }
    if (content_length && *content_length > max_body) {
        return make_error("body larger than " + std::to_string(max_body) + " bytes");
    }
    if (body.size() > max_body) {
        return make_error("body larger than " + std::to_string(max_body) + " bytes");
    }
    if (content_length && body.size() < *content_length) {
        return make_error("truncated body");
    }
    return std::string(content_length ? body.substr(0, *content_length) : body);
}

pki::X509Ptr decode_issuer_certificate(std::string_view body) {
    const auto* data = reinterpret_cast<const unsigned char*>(body.data());
    const long length = static_cast<long>(body.size());
    {
        const unsigned char* cursor = data;
        if (pki::X509Ptr cert(d2i_X509(nullptr, &cursor, length));
            cert && cursor == data + length) {
            return cert;
        }
    }
    {
        const unsigned char* cursor = data;
        Pkcs7Ptr bundle(d2i_PKCS7(nullptr, &cursor, length));
        if (bundle && PKCS7_type_is_signed(bundle.get()) && bundle->d.sign != nullptr &&
            sk_X509_num(bundle->d.sign->cert) > 0) {
            X509* first = sk_X509_value(bundle->d.sign->cert, 0);
            X509_up_ref(first);
            return pki::X509Ptr(first);
        }
    }
    BioPtr bio(BIO_new_mem_buf(body.data(), static_cast<int>(body.size())));
    pki::X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    ERR_clear_error();
    return cert;
}

IntermediateCache::State IntermediateCache::state(std::string_view url,
                                                  Clock::time_point now) const {
    for (const auto& entry : entries_) {
        if (entry.url == url && entry.expires > now) {
            return entry.certificate ? State::fetched : State::failed;
        }
    }
    return State::missing;
}

void IntermediateCache::store(std::string_view url, pki::X509Ptr certificate,
                              Clock::time_point now) {
    std::erase_if(entries_,
                  [&](const Entry& entry) { return entry.url == url || entry.expires <= now; });
    if (limits_.entries == 0) {
        return;
    }
    while (entries_.size() >= limits_.entries) {
        entries_.erase(entries_.begin());
    }
    const auto ttl = certificate ? limits_.ttl : limits_.failure_ttl;
    entries_.push_back({std::string(url), std::move(certificate), now + ttl});
}

std::size_t IntermediateCache::add_issuers(STACK_OF(X509) * chain, Clock::time_point now) const {
    std::size_t added = 0;
    // Each pass may add the issuer of what the previous one added; the cache bounds the passes.
    for (bool grew = true; grew;) {
        grew = false;
        for (const auto& entry : entries_) {
            X509* candidate = entry.certificate.get();
            if (candidate == nullptr || entry.expires <= now) {
                continue;
            }
            bool present = false;
            bool issues_one = false;
            for (int i = 0; i < sk_X509_num(chain) && !present; ++i) {
                X509* member = sk_X509_value(chain, i);
                present = X509_cmp(member, candidate) == 0;
                issues_one = issues_one || X509_NAME_cmp(X509_get_issuer_name(member),
                                                         X509_get_subject_name(candidate)) == 0;
            }
            if (!present && issues_one && sk_X509_push(chain, candidate) > 0) {
                ++added;
                grew = true;
            }
        }
    }
    return added;
}

}  // namespace tlsgate::tls
