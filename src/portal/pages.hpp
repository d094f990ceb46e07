#pragma once
// The certificate portal (mitm.it is the model): the page a person opens to learn what trusting
// the tlsgate root lets the operator see, to check its fingerprint, download it, and install and
// later remove it on their system. Pure rendering: the shell serves the strings and the
// certificate files; nothing here does I/O.
//
// The pages carry no JavaScript and load nothing from anywhere (kPortalContentSecurityPolicy
// enforces that); everything the operator configures is HTML-escaped. The main page depends on
// the User-Agent, so the response needs "Vary: User-Agent".
#include <span>
#include <string>
#include <string_view>

namespace tlsgate::portal {

struct PortalInfo {
    std::string operator_name;          // who runs the gateway, e.g. "Example Ltd IT department"
    std::string operator_contact;       // free text: an address, a phone number, a room
    std::string operator_notice;        // free text shown as written (line breaks kept)
    std::string ca_subject;             // one line, RFC 2253 ("CN=tlsgate CA,O=Example")
    std::string ca_sha256_fingerprint;  // "AB:CD:..."
    std::string ca_sha1_fingerprint;    // "AB:CD:..." (Windows shows only this one)
    std::string ca_not_before, ca_not_after;
    std::string gateway_version;
};

inline constexpr std::string_view kHtmlContentType = "text/html; charset=utf-8";
// For every portal page: inline styles only, no scripts, images, frames or forms.
inline constexpr std::string_view kPortalContentSecurityPolicy =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

// The files the page links to, so the shell serves exactly these paths.
enum class DownloadFormat {
    pem,           // the certificate in PEM
    der,           // the certificate in DER
    p12,           // a certificate-only PKCS #12, empty password (never the key)
    mobileconfig,  // apple_mobileconfig()
};
struct CertificateDownload {
    std::string_view path;  // relative URL, e.g. "/cert/tlsgate-ca.pem"
    DownloadFormat format;
    std::string_view content_type;
    std::string_view description;  // plain text, as on the page
};
std::span<const CertificateDownload> certificate_downloads();

// Text for HTML element content and quoted attribute values: & < > " ' become references and NUL
// (which HTML cannot carry) becomes U+FFFD. Everything else, UTF-8 included, is kept.
std::string html_escape(std::string_view text);

// The first CN attribute of a subject line, unescaped: RFC 2253/4514 ("CN=a\, b,O=c"),
// OpenSSL's spaced form ("CN = a, O = c") or its slash form ("/O=c/CN=a"). Empty when there is
// none.
std::string common_name_from_subject(std::string_view subject);

// The whole portal page for a visitor with this User-Agent: what trusting the root allows, who
// operates the gateway, the certificate's fingerprints, the downloads, and one section per
// platform (plus Firefox and Chrome-on-Linux sections) with install and removal steps. The
// visitor's platform comes first and open; every other section is there, folded.
std::string render_portal_page(const PortalInfo& info, std::string_view user_agent);

// A small page in the portal's style for an HTTP error: the title is the heading, the message a
// paragraph (both escaped), and a link back to the portal.
std::string render_error_page(std::string_view title, std::string_view message);
std::string render_not_found_page();

// Why tlsgate refused an upstream certificate, in plain words for the person at the browser, by
// the reason codes of tls::classify_verify_result ("expired", "wrong_host", ...).
std::string_view describe_upstream_error(std::string_view reason_code);

struct UpstreamErrorNotice {
    std::string_view host;         // the name the client asked for (or the address)
    std::string_view reason_code;  // tls::classify_verify_result code, or "own_ca"
    std::string_view detail;       // OpenSSL's own words, shown as technical detail
    std::string_view operator_name;
    std::string_view operator_contact;
};
// The page an HTTP client gets when it went ahead over a mirrored session (a certificate from the
// untrusted CA stood in for an upstream one that failed verification): the host, the fault in
// plain words, that nothing reached the site, whom to ask. Served with status 502; no links, no
// scripts, nothing loaded from anywhere, every string escaped.
std::string render_upstream_error_page(const UpstreamErrorNotice& notice);

}  // namespace tlsgate::portal
