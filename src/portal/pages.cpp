#include "portal/pages.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include "common/text.hpp"
#include "portal/platform.hpp"

namespace tlsgate::portal {

namespace {

constexpr std::array kDownloads = {
    CertificateDownload{"/cert/tlsgate-ca.pem", DownloadFormat::pem, "application/x-pem-file",
                        "PEM: for Linux, macOS, Firefox and most tools"},
    CertificateDownload{"/cert/tlsgate-ca.crt", DownloadFormat::der, "application/x-x509-ca-cert",
                        "DER: for Android and ChromeOS"},
    CertificateDownload{"/cert/tlsgate-ca.cer", DownloadFormat::der, "application/x-x509-ca-cert",
                        "DER: for Windows"},
    CertificateDownload{"/cert/tlsgate-ca.p12", DownloadFormat::p12, "application/x-pkcs12",
                        "PKCS #12 with the certificate only (no key): for systems that import "
                        "nothing else"},
    CertificateDownload{"/cert/tlsgate-ca.mobileconfig", DownloadFormat::mobileconfig,
                        "application/x-apple-aspen-config",
                        "Configuration profile: for iPhone and iPad"},
};

// Readable on phones and desktops, light and dark, without web fonts: the system's own font,
// contrast of at least 7:1 for body text, and commands that wrap instead of overflowing.
constexpr std::string_view kStyle =
    ":root{color-scheme:light dark}"
    "body{margin:0;font:1.0625rem/1.55 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
    "color:#1b1b1b;background:#fff}"
    "header,main,footer{max-width:46rem;margin:0 auto;padding:0 1rem}"
    "h1{font-size:1.75rem;line-height:1.25;margin:1.5rem 0 .75rem}"
    "h2{font-size:1.35rem;margin:2rem 0 .75rem;padding-bottom:.2rem;border-bottom:1px solid #999}"
    "h3{display:inline;font-size:1.1rem}h4{font-size:1rem;margin:1rem 0 .25rem}"
    "a{color:#0b57a4}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em}"
    "pre{background:#f2f2f2;border:1px solid #bbb;padding:.6rem;white-space:pre-wrap;"
    "overflow-wrap:anywhere}"
    ".warning{border-left:.4rem solid #b35900;background:#fff4e5;padding:.25rem 1rem}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}"
    "dd{margin:0;overflow-wrap:anywhere}"
    "details{border:1px solid #999;border-radius:.3rem;margin:.75rem 0;padding:0 .9rem .2rem}"
    "summary{cursor:pointer;padding:.6rem 0}"
    ".yours{background:#1b5e20;color:#fff;border-radius:.25rem;padding:.05rem .45rem;"
    "margin-left:.6rem;font-size:.9rem}"
    "blockquote{margin:0;padding:.25rem 1rem;border-left:.4rem solid #999;white-space:pre-line}"
    "footer{margin-top:2.5rem;padding-bottom:2rem;color:#444;font-size:.95rem}"
    "@media (max-width:30rem){dl{grid-template-columns:1fr;gap:0}dd{margin-bottom:.5rem}}"
    "@media (prefers-color-scheme:dark){body{color:#e8e8e8;background:#121212}a{color:#8ab4f8}"
    "pre{background:#1e1e1e;border-color:#555}.warning{background:#2b1d0e}footer{color:#bbb}}";

void append_escaped(std::string& out, std::string_view text) {
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            case '\0':
                out += "\xEF\xBF\xBD";
                break;
            default:
                out += c;
        }
    }
}

void append_document_start(std::string& out, std::string_view title) {
    out +=
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n<title>";
    append_escaped(out, title);
    out += "</title>\n<style>";
    out += kStyle;
    out += "</style>\n</head>\n<body>\n";
}

// ---- Names used in the removal commands ------------------------------------------------------

std::string trim_spaces(std::string_view text) {
    while (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
    }
    while (!text.empty() && text.back() == ' ') {
        text.remove_suffix(1);
    }
    return std::string(text);
}

// RFC 4514 value escapes: "\," (any special character) and "\C3\A9" (hex pairs).
std::string unescape_attribute_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] != '\\' || i + 1 == value.size()) {
            out += value[i];
            continue;
        }
        if (i + 2 < value.size() && hex_value(value[i + 1]) >= 0 && hex_value(value[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(value[i + 1]) * 16 + hex_value(value[i + 2]));
            i += 2;
        } else {
            out += value[++i];
        }
    }
    return out;
}

// An argument that means the same between double quotes in cmd.exe, bash and zsh: printable
// ASCII without the characters any of them expand or end a quote at, and not an option.
bool safe_in_double_quotes(std::string_view text) {
    constexpr std::string_view kUnsafe = "\"$`\\!%^&|<>;'*?";
    if (text.empty() || text.front() == '-') {
        return false;
    }
    return std::all_of(text.begin(), text.end(), [&](char c) {
        return c >= 0x20 && c < 0x7F && kUnsafe.find(c) == std::string_view::npos;
    });
}

// "AB:CD:..." to "ABCD...", or empty unless it is 40 hex digits.
std::string sha1_thumbprint(std::string_view fingerprint) {
    std::string out;
    for (const char c : fingerprint) {
        if (c == ':') {
            continue;
        }
        if (hex_value(c) < 0) {
            return {};
        }
        out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out.size() == 40 ? out : std::string{};
}

// How the commands name the certificate to delete: by common name when it can be quoted safely,
// else by SHA-1 hash (both certutil and security accept one), else the default CA name.
struct RemovalNames {
    std::string display;         // what the person looks for in a list
    std::string certutil_id;     // certutil -delstore Root <this>
    std::string security_match;  // security delete-certificate <this>
};

RemovalNames removal_names(const PortalInfo& info) {
    const std::string common_name = common_name_from_subject(info.ca_subject);
    RemovalNames names;
    names.display = common_name.empty() ? "tlsgate" : common_name;
    if (safe_in_double_quotes(common_name)) {
        names.certutil_id = "\"" + common_name + "\"";
        names.security_match = "-c \"" + common_name + "\"";
    } else if (const std::string thumbprint = sha1_thumbprint(info.ca_sha1_fingerprint);
               !thumbprint.empty()) {
        names.certutil_id = thumbprint;
        names.security_match = "-Z " + thumbprint;
    } else {
        names.certutil_id = "\"tlsgate\"";
        names.security_match = "-c \"tlsgate\"";
    }
    return names;
}

// ---- Platform sections -------------------------------------------------------------------------

class SectionWriter {
public:
    SectionWriter(std::string& out, const RemovalNames& names) : out_(out), names_(names) {}

    // A command to copy, in its own block.
    void command(std::string_view line) {
        out_ += "<pre><code>";
        append_escaped(out_, line);
        out_ += "</code></pre>\n";
    }
    void html(std::string_view markup) { out_ += markup; }
    // The certificate as the person sees it listed, emphasised.
    void certificate_name() {
        out_ += "<strong>";
        append_escaped(out_, names_.display);
        out_ += "</strong>";
    }
    const RemovalNames& names() const { return names_; }

private:
    std::string& out_;
    const RemovalNames& names_;
};

void write_windows(SectionWriter& w) {
    w.html(
        "<h4>Install</h4>\n<p>Download <a href=\"/cert/tlsgate-ca.cer\">tlsgate-ca.cer</a>. "
        "Windows shows its SHA-1 fingerprint as &ldquo;Thumbprint&rdquo; (double-click the file, "
        "Details): compare it with the one above. Then, in a Command Prompt started with "
        "&ldquo;Run as administrator&rdquo;, in the folder you saved the file to:</p>\n");
    w.command("certutil -addstore -f Root tlsgate-ca.cer");
    w.html(
        "<p>Or without a command, for your user only: press Win+R, run <code>certmgr.msc</code>, "
        "right-click <em>Trusted Root Certification Authorities &gt; Certificates</em>, choose "
        "<em>All Tasks &gt; Import&hellip;</em>, select the file, keep the store <em>Trusted Root "
        "Certification Authorities</em>, finish and answer <em>Yes</em> to the security "
        "warning.</p>\n<p>Edge and Chrome use this store. For Firefox see its own section.</p>\n"
        "<h4>Remove</h4>\n<p>In a Command Prompt run as administrator:</p>\n");
    w.command("certutil -delstore Root " + w.names().certutil_id);
    w.html(
        "<p>Or open <code>certmgr.msc</code> (your user) or <code>certlm.msc</code> (the whole "
        "computer, where <code>certutil</code> puts it), go to <em>Trusted Root Certification "
        "Authorities &gt; Certificates</em>, select ");
    w.certificate_name();
    w.html(" and press Delete.</p>\n");
}

void write_macos(SectionWriter& w) {
    w.html(
        "<p>On an iPad? Safari on iPadOS presents itself as a Mac: follow the <a "
        "href=\"#platform-ios\">iPhone and iPad</a> steps instead.</p>\n"
        "<h4>Install</h4>\n<p>Download <a href=\"/cert/tlsgate-ca.pem\">tlsgate-ca.pem</a>, then "
        "in Terminal, in the folder you saved it to (e.g. <code>cd ~/Downloads</code>):</p>\n");
    w.command(
        "sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain "
        "tlsgate-ca.pem");
    w.html(
        "<p>Or without a command: open the file, add it to the <em>System</em> keychain in "
        "Keychain Access, double-click ");
    w.certificate_name();
    w.html(
        ", expand <em>Trust</em>, set <em>When using this certificate</em> to <em>Always "
        "Trust</em> and close the window with your password.</p>\n<p>Safari, Chrome and Edge use "
        "the system keychain. For Firefox see its own section.</p>\n<h4>Remove</h4>\n");
    w.command("sudo security delete-certificate " + w.names().security_match +
              " /Library/Keychains/System.keychain");
    w.html("<p>Or in Keychain Access: <em>System &gt; Certificates</em>, select ");
    w.certificate_name();
    w.html(" and delete it.</p>\n");
}

void write_ios(SectionWriter& w) {
    w.html(
        "<h4>Install</h4>\n<ol>\n<li>Open this page in Safari and tap <a "
        "href=\"/cert/tlsgate-ca.mobileconfig\">tlsgate-ca.mobileconfig</a>; allow the "
        "download of the configuration profile.</li>\n<li>Open Settings and tap <em>Profile "
        "Downloaded</em> (or <em>General &gt; VPN &amp; Device Management</em>), select the "
        "tlsgate profile and tap <em>Install</em>. It shows as &ldquo;Not Verified&rdquo; "
        "because it is not signed: compare the fingerprint under <em>More Details</em> with the "
        "one above.</li>\n<li>Go to <em>Settings &gt; General &gt; About &gt; Certificate Trust "
        "Settings</em> and turn on full trust for ");
    w.certificate_name();
    w.html(
        ". Until you do, the certificate is installed but not trusted for websites.</li>\n</ol>\n"
        "<h4>Remove</h4>\n<p><em>Settings &gt; General &gt; VPN &amp; Device Management</em>, "
        "select the tlsgate profile, <em>Remove Profile</em>. This removes the certificate and "
        "its trust.</p>\n");
}

void write_android(SectionWriter& w) {
    w.html(
        "<h4>Install</h4>\n<ol>\n<li>Download <a "
        "href=\"/cert/tlsgate-ca.crt\">tlsgate-ca.crt</a>.</li>\n<li>Open <em>Settings &gt; "
        "Security &gt; Encryption &amp; credentials &gt; Install a certificate &gt; CA "
        "certificate</em> (names vary by maker and version; searching Settings for &ldquo;CA "
        "certificate&rdquo; finds it), confirm <em>Install anyway</em> and pick the "
        "file.</li>\n</ol>\n<p>Chrome trusts certificates you install. Apps made for Android 7 "
        "(API level 24) or later ignore them unless the app opts in, so most apps will not "
        "accept it: their connections fail if the gateway intercepts them.</p>\n"
        "<h4>Remove</h4>\n<p><em>Settings &gt; Security &gt; Encryption &amp; credentials &gt; "
        "User credentials</em> (on some versions <em>Trusted credentials &gt; User</em>), select ");
    w.certificate_name();
    w.html(" and tap <em>Remove</em>.</p>\n");
}

void write_linux_browsers_note(SectionWriter& w) {
    w.html(
        "<p>This covers curl, wget, Python, package managers and most programs. Browsers may "
        "keep their own store: see <a href=\"#browser-firefox\">Firefox</a> and <a "
        "href=\"#browser-chromium-linux\">Chrome and Chromium on Linux</a>.</p>\n");
}

void write_linux_debian(SectionWriter& w) {
    w.html(
        "<h4>Install</h4>\n<p>Download <a href=\"/cert/tlsgate-ca.pem\">tlsgate-ca.pem</a>, then "
        "in its folder (the file name must end in <code>.crt</code> there):</p>\n");
    w.command(
        "sudo cp tlsgate-ca.pem /usr/local/share/ca-certificates/tlsgate-ca.crt && sudo "
        "update-ca-certificates");
    write_linux_browsers_note(w);
    w.html("<h4>Remove</h4>\n");
    w.command(
        "sudo rm /usr/local/share/ca-certificates/tlsgate-ca.crt && sudo update-ca-certificates "
        "--fresh");
}

void write_linux_fedora(SectionWriter& w) {
    w.html(
        "<h4>Install</h4>\n<p>Download <a href=\"/cert/tlsgate-ca.pem\">tlsgate-ca.pem</a>, then "
        "in its folder:</p>\n");
    w.command("sudo cp tlsgate-ca.pem /etc/pki/ca-trust/source/anchors/ && sudo update-ca-trust");
    write_linux_browsers_note(w);
    w.html("<h4>Remove</h4>\n");
    w.command("sudo rm /etc/pki/ca-trust/source/anchors/tlsgate-ca.pem && sudo update-ca-trust");
}

void write_linux_other(SectionWriter& w) {
    w.html(
        "<h4>Install</h4>\n<p>Download <a href=\"/cert/tlsgate-ca.pem\">tlsgate-ca.pem</a>. Where "
        "p11-kit manages the system store (Arch, openSUSE and others), in its folder:</p>\n");
    w.command("sudo trust anchor --store tlsgate-ca.pem");
    w.html(
        "<p>Otherwise follow the <a href=\"#platform-linux-debian\">Debian</a> or <a "
        "href=\"#platform-linux-fedora\">Fedora</a> steps, whichever your distribution "
        "resembles.</p>\n");
    write_linux_browsers_note(w);
    w.html("<h4>Remove</h4>\n");
    w.command("sudo trust anchor --remove tlsgate-ca.pem");
}

void write_chromeos(SectionWriter& w) {
    w.html(
        "<h4>Install</h4>\n<ol>\n<li>Download <a "
        "href=\"/cert/tlsgate-ca.crt\">tlsgate-ca.crt</a>.</li>\n<li>Open <em>Settings &gt; "
        "Privacy and security &gt; Security &gt; Manage certificates &gt; Authorities</em> and "
        "choose <em>Import</em>.</li>\n<li>Pick the file, tick <em>Trust this certificate for "
        "identifying websites</em> and confirm.</li>\n</ol>\n<p>Linux apps and Android apps on "
        "ChromeOS have stores of their own: use the <a "
        "href=\"#platform-linux-debian\">Debian</a> and <a href=\"#platform-android\">Android</a> "
        "steps inside them.</p>\n<h4>Remove</h4>\n<p>In the same <em>Authorities</em> list, find ");
    w.certificate_name();
    w.html(" (listed under its organisation), open its menu and choose <em>Delete</em>.</p>\n");
}

void write_other(SectionWriter& w) {
    w.html(
        "<h4>Install</h4>\n<p>Most programs can be told to trust <a "
        "href=\"/cert/tlsgate-ca.pem\">tlsgate-ca.pem</a> "
        "directly. curl, for one request:</p>\n");
    w.command("curl --cacert tlsgate-ca.pem URL");
    w.html("<p>Node.js, in addition to its own list:</p>\n");
    w.command("export NODE_EXTRA_CA_CERTS=\"$PWD/tlsgate-ca.pem\"");
    w.html("<p>Java, in the runtime's <code>cacerts</code> (default password changeit):</p>\n");
    w.command("keytool -importcert -cacerts -alias tlsgate-ca -file tlsgate-ca.pem");
    w.html("<h4>Remove</h4>\n<p>Drop the option or the variable; for Java:</p>\n");
    w.command("keytool -delete -cacerts -alias tlsgate-ca");
}

void write_firefox(SectionWriter& w) {
    w.html(
        "<p>Firefox keeps its own list of authorities on every system except iOS.</p>\n"
        "<h4>Install</h4>\n<ol>\n<li>Download <a "
        "href=\"/cert/tlsgate-ca.pem\">tlsgate-ca.pem</a>.</li>\n<li>Open <em>Settings &gt; "
        "Privacy &amp; Security &gt; Certificates &gt; View Certificates&hellip; &gt; "
        "Authorities</em> and choose <em>Import&hellip;</em>.</li>\n<li>Pick the file, tick "
        "<em>Trust this CA to identify websites</em> and confirm.</li>\n</ol>\n<p>On Windows and "
        "macOS Firefox can instead trust what the system trusts: set "
        "<code>security.enterprise_roots.enabled</code> to <code>true</code> in "
        "<code>about:config</code> (recent versions do so by default). On Android: <em>Settings "
        "&gt; About Firefox</em>, tap the logo five times, then turn on <em>Settings &gt; Secret "
        "Settings &gt; Use third party CA certificates</em>.</p>\n<h4>Remove</h4>\n<p>In the same "
        "<em>Authorities</em> list select ");
    w.certificate_name();
    w.html(
        " (under its organisation) and choose <em>Delete or Distrust&hellip;</em>, or undo the "
        "setting above.</p>\n");
}

void write_chromium_linux(SectionWriter& w) {
    w.html(
        "<p>Chrome, Chromium and the browsers built on them read their own certificate database "
        "on Linux.</p>\n<h4>Install</h4>\n<p>Install its tool (<code>sudo apt install "
        "libnss3-tools</code>, or <code>sudo dnf install nss-tools</code>), then in the folder "
        "of <a href=\"/cert/tlsgate-ca.pem\">tlsgate-ca.pem</a>:</p>\n");
    w.command("certutil -d sql:$HOME/.pki/nssdb -A -t \"C,,\" -n tlsgate-ca -i tlsgate-ca.pem");
    w.html(
        "<p>Or in the browser: <em>Settings &gt; Privacy and security &gt; Security &gt; Manage "
        "certificates &gt; Authorities &gt; Import</em>. Restart the browser "
        "afterwards.</p>\n<h4>Remove</h4>\n");
    w.command("certutil -d sql:$HOME/.pki/nssdb -D -n tlsgate-ca");
}

struct Section {
    std::string_view id_kind;  // "platform" or "browser"
    std::string_view id_name;  // the element id is "<kind>-<name>"
    std::string_view title;    // the heading
    void (*write)(SectionWriter&);
};

Section platform_section(Platform platform) {
    // Indexed by the enum's value, which is also the order of kAllPlatforms.
    static constexpr std::array kWriters = {
        &write_windows,     &write_macos,        &write_ios,
        &write_android,     &write_linux_debian, &write_linux_fedora,
        &write_linux_other, &write_chromeos,     &write_other,
    };
    static_assert(kWriters.size() == kAllPlatforms.size());
    static_assert([] {
        for (std::size_t i = 0; i < kAllPlatforms.size(); ++i) {
            if (static_cast<std::size_t>(kAllPlatforms[i]) != i) {
                return false;
            }
        }
        return true;
    }());
    return Section{"platform", platform_id(platform), platform_name(platform),
                   kWriters[static_cast<std::size_t>(platform)]};
}

constexpr Section kFirefoxSection{"browser", "firefox", "Firefox", &write_firefox};
constexpr Section kChromiumLinuxSection{"browser", "chromium-linux", "Chrome and Chromium on Linux",
                                        &write_chromium_linux};

void write_section(std::string& out, const RemovalNames& names, const Section& section,
                   std::string_view badge) {
    std::string id(section.id_kind);
    id += '-';
    id += section.id_name;
    out += "<section id=\"";
    out += id;
    out += "\" aria-labelledby=\"";
    out += id;
    out += "-title\">\n<details";
    out += badge.empty() ? ">\n" : " open>\n";
    out += "<summary><h3 id=\"";
    out += id;
    out += "-title\">";
    out += section.title;
    out += "</h3>";
    if (!badge.empty()) {
        out += "<span class=\"yours\">";
        out += badge;
        out += "</span>";
    }
    out += "</summary>\n";
    SectionWriter writer(out, names);
    section.write(writer);
    out += "</details>\n</section>\n";
}

bool is_linux(Platform platform) {
    return platform == Platform::linux_debian || platform == Platform::linux_fedora ||
           platform == Platform::linux_other;
}

void write_install_sections(std::string& out, const PortalInfo& info, std::string_view user_agent) {
    const RemovalNames names = removal_names(info);
    const Platform detected = detect_platform(user_agent);
    const bool firefox = is_firefox(user_agent);
    const bool chromium_on_linux = is_linux(detected) && is_chromium(user_agent);

    out += "<section id=\"install\" aria-labelledby=\"install-title\">\n";
    out += "<h2 id=\"install-title\">Install and remove</h2>\n";
    if (detected != Platform::unknown) {
        out += "<p>Your browser says it runs on <strong>";
        out += platform_name(detected);
        out +=
            "</strong>: those steps come first. If that is wrong, pick your system "
            "below.</p>\n";
        write_section(out, names, platform_section(detected), "Your device");
    } else {
        out += "<p>Pick your system below.</p>\n";
    }
    if (firefox) {
        write_section(out, names, kFirefoxSection, "Your browser");
    }
    if (chromium_on_linux) {
        write_section(out, names, kChromiumLinuxSection, "Your browser");
    }
    for (const Platform platform : kAllPlatforms) {
        if (platform != detected || platform == Platform::unknown) {
            write_section(out, names, platform_section(platform), {});
        }
    }
    if (!firefox) {
        write_section(out, names, kFirefoxSection, {});
    }
    if (!chromium_on_linux) {
        write_section(out, names, kChromiumLinuxSection, {});
    }
    out += "</section>\n";
}

// ---- The rest of the page ----------------------------------------------------------------------

void write_what_it_allows(std::string& out) {
    out +=
        "<section id=\"what-it-allows\" aria-labelledby=\"what-it-allows-title\">\n"
        "<h2 id=\"what-it-allows-title\">What installing this certificate allows</h2>\n"
        "<div class=\"warning\"><p><strong>While your device trusts this certificate, the "
        "operator of this gateway can read and change the contents of the HTTPS connections "
        "from your device that the gateway intercepts</strong>: the pages you see, what you type "
        "into forms, passwords and cookies you send to those sites, and files you upload or "
        "download.</p></div>\n<ul>\n"
        "<li>The operator's policy decides which sites are intercepted. Some sites are passed "
        "through untouched: of those the gateway sees only the site's name and address, the "
        "time and the amount of data, and the connection stays encrypted between you and the "
        "site.</li>\n"
        "<li>It matters only for connections through this gateway. It gives no access to the "
        "files on your device. It stays trusted until you remove it, so remove it when you stop "
        "using this network.</li>\n"
        "<li>Without it, sites the gateway intercepts show a certificate error instead, and many "
        "apps refuse the certificate either way.</li>\n"
        "</ul>\n</section>\n";
}

void write_definition(std::string& out, std::string_view term, std::string_view value,
                      std::string_view empty_text) {
    out += "<dt>";
    out += term;
    out += "</dt><dd>";
    if (value.empty()) {
        out += "<em>";
        out += empty_text;
        out += "</em>";
    } else {
        append_escaped(out, value);
    }
    out += "</dd>\n";
}

void write_operator(std::string& out, const PortalInfo& info) {
    out +=
        "<section id=\"operator\" aria-labelledby=\"operator-title\">\n"
        "<h2 id=\"operator-title\">Who operates this gateway</h2>\n<dl>\n";
    write_definition(out, "Operator", info.operator_name, "not stated");
    write_definition(out, "Contact", info.operator_contact, "not stated");
    out += "</dl>\n";
    if (!info.operator_notice.empty()) {
        out += "<h3>Notice from the operator</h3>\n<blockquote>";
        append_escaped(out, info.operator_notice);
        out += "</blockquote>\n";
    }
    out += "</section>\n";
}

void write_certificate(std::string& out, const PortalInfo& info) {
    out +=
        "<section id=\"certificate\" aria-labelledby=\"certificate-title\">\n"
        "<h2 id=\"certificate-title\">The certificate</h2>\n"
        "<p>This page reaches you through the gateway itself, so it cannot prove that it is "
        "genuine. Compare the SHA-256 fingerprint with one the operator gave you another way "
        "(on paper, in person, on a channel you trust). If they differ, do not install it.</p>\n"
        "<dl>\n";
    write_definition(out, "Subject", info.ca_subject, "unknown");
    out += "<dt>SHA-256 fingerprint</dt><dd><code id=\"ca-fingerprint-sha256\">";
    append_escaped(out, info.ca_sha256_fingerprint);
    out += "</code></dd>\n";
    if (!info.ca_sha1_fingerprint.empty()) {
        out += "<dt>SHA-1 fingerprint</dt><dd><code id=\"ca-fingerprint-sha1\">";
        append_escaped(out, info.ca_sha1_fingerprint);
        out += "</code></dd>\n";
    }
    write_definition(out, "Valid from", info.ca_not_before, "unknown");
    write_definition(out, "Valid until", info.ca_not_after, "unknown");
    out += "</dl>\n</section>\n";
}

void write_downloads(std::string& out) {
    out +=
        "<section id=\"download\" aria-labelledby=\"download-title\">\n"
        "<h2 id=\"download-title\">Download</h2>\n<ul>\n";
    for (const CertificateDownload& download : kDownloads) {
        const std::string_view file = download.path.substr(download.path.rfind('/') + 1);
        out += "<li><a href=\"";
        out += download.path;
        out += "\">";
        out += file;
        out += "</a>: ";
        append_escaped(out, download.description);
        out += "</li>\n";
    }
    out += "</ul>\n</section>\n";
}

}  // namespace

std::span<const CertificateDownload> certificate_downloads() {
    return kDownloads;
}

std::string html_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    append_escaped(out, text);
    return out;
}

std::string common_name_from_subject(std::string_view subject) {
    // Slash form separates attributes with '/', the others with ',' (or '+' inside an RDN);
    // a separator preceded by a backslash is part of the value.
    const bool slash_form = !subject.empty() && subject.front() == '/';
    std::size_t start = slash_form ? 1 : 0;
    while (start <= subject.size()) {
        std::size_t end = start;
        while (end < subject.size()) {
            const char c = subject[end];
            if (c == '\\') {
                end += 2;
                continue;
            }
            if (slash_form ? c == '/' : (c == ',' || c == '+')) {
                break;
            }
            ++end;
        }
        end = std::min(end, subject.size());
        const std::string_view attribute = subject.substr(start, end - start);
        const std::size_t equals = attribute.find('=');
        if (equals != std::string_view::npos) {
            const std::string type = trim_spaces(attribute.substr(0, equals));
            if (equals_ignoring_case(type, "CN") || equals_ignoring_case(type, "commonName")) {
                return unescape_attribute_value(trim_spaces(attribute.substr(equals + 1)));
            }
        }
        start = end + 1;
    }
    return {};
}

std::string render_portal_page(const PortalInfo& info, std::string_view user_agent) {
    std::string out;
    out.reserve(24 * 1024);
    append_document_start(out, "tlsgate: the root certificate of this network");
    out +=
        "<header>\n<h1>The tlsgate root certificate</h1>\n<p>HTTPS connections on this "
        "network pass through a tlsgate gateway";
    if (!info.operator_name.empty()) {
        out += " operated by <strong>";
        append_escaped(out, info.operator_name);
        out += "</strong>";
    }
    out +=
        ". This page says what trusting its certificate lets the operator see, and how to "
        "install it and remove it again.</p>\n</header>\n<main>\n";
    write_what_it_allows(out);
    write_operator(out, info);
    write_certificate(out, info);
    write_downloads(out);
    write_install_sections(out, info, user_agent);
    out += "</main>\n<footer>\n<p>tlsgate";
    if (!info.gateway_version.empty()) {
        out += ' ';
        append_escaped(out, info.gateway_version);
    }
    out +=
        ". This page uses no scripts and no cookies, and loads nothing from anywhere "
        "else.</p>\n</footer>\n</body>\n</html>\n";
    return out;
}

std::string render_error_page(std::string_view title, std::string_view message) {
    std::string out;
    append_document_start(out, title);
    out += "<header>\n<h1>";
    append_escaped(out, title);
    out += "</h1>\n</header>\n<main>\n<p>";
    append_escaped(out, message);
    out +=
        "</p>\n<p><a href=\"/\">The tlsgate certificate page</a></p>\n</main>\n</body>\n"
        "</html>\n";
    return out;
}

std::string render_not_found_page() {
    return render_error_page("Not found",
                             "There is no page at this address on the tlsgate portal.");
}

std::string_view describe_upstream_error(std::string_view reason_code) {
    struct Explanation {
        std::string_view code;
        std::string_view words;
    };
    static constexpr std::array kExplanations = {
        Explanation{"expired", "The site's certificate has expired."},
        Explanation{"not_yet_valid",
                    "The site's certificate is not valid yet: its start date is in the future."},
        Explanation{"self_signed",
                    "The site's certificate is self-signed: no certificate authority vouches for "
                    "it."},
        Explanation{"untrusted_root",
                    "The site's certificate was not issued by a trusted certificate authority."},
        Explanation{"wrong_host",
                    "The site's certificate was issued for a different name than the one you "
                    "asked for."},
        Explanation{"weak_key", "The site's certificate uses a key too short to be safe."},
        Explanation{"weak_signature",
                    "The site's certificate is signed with an outdated, breakable algorithm (such "
                    "as SHA-1)."},
        Explanation{"bad_signature",
                    "A signature in the site's certificate chain does not verify: the certificate "
                    "was altered or forged."},
        Explanation{"not_a_ca",
                    "A certificate in the site's chain vouches for the next one without being a "
                    "certificate authority."},
        Explanation{"name_constraints",
                    "The site's certificate names a host its issuing authority is not allowed to "
                    "vouch for."},
        Explanation{"unknown_critical_extension",
                    "The site's certificate carries a critical extension no browser understands."},
        Explanation{"invalid_chain",
                    "The site's certificate chain is invalid: a certificate in it is not allowed "
                    "to vouch for the next."},
        Explanation{"known_interception_root",
                    "The site's certificate chain contains a key known to be used for "
                    "intercepting traffic."},
        Explanation{"revoked",
                    "The site's certificate has been revoked by its issuer (the site itself "
                    "sent the proof)."},
        Explanation{"own_ca",
                    "The site's certificate chain ends at this gateway's own certificate "
                    "authority, which is never trusted for a site."},
    };
    for (const Explanation& explanation : kExplanations) {
        if (explanation.code == reason_code) {
            return explanation.words;
        }
    }
    return "The site's certificate could not be verified.";
}

std::string render_upstream_error_page(const UpstreamErrorNotice& notice) {
    constexpr std::string_view kTitle = "Connection refused: the site's certificate is not valid";
    std::string out;
    append_document_start(out, kTitle);
    out += "<header>\n<h1>";
    append_escaped(out, kTitle);
    out +=
        "</h1>\n</header>\n<main>\n<p class=\"warning\">tlsgate, the gateway that inspects "
        "this network's encrypted traffic, did not connect you to <strong>";
    append_escaped(out, notice.host);
    out += "</strong>. ";
    append_escaped(out, describe_upstream_error(notice.reason_code));
    out +=
        "</p>\n<p>Your browser warned you because the gateway showed it a stand-in certificate "
        "that nothing trusts, instead of a certificate from its inspection authority: the same "
        "kind of warning you would see connecting to the site directly. Nothing you send here "
        "reaches the site, and nothing from the site is shown.</p>\n<dl>\n<dt>Site</dt><dd>";
    append_escaped(out, notice.host);
    out += "</dd>\n<dt>Reason</dt><dd><code>";
    append_escaped(out, notice.reason_code);
    out += "</code></dd>\n";
    if (!notice.detail.empty()) {
        out += "<dt>Detail</dt><dd>";
        append_escaped(out, notice.detail);
        out += "</dd>\n";
    }
    constexpr std::string_view kWhoRunsIt = "the people who run this network";
    out += "</dl>\n<p>If this site should work, tell ";
    append_escaped(out, notice.operator_name.empty() ? kWhoRunsIt : notice.operator_name);
    if (!notice.operator_contact.empty()) {
        out += " (";
        append_escaped(out, notice.operator_contact);
        out += ")";
    }
    out += ".</p>\n</main>\n</body>\n</html>\n";
    return out;
}

}  // namespace tlsgate::portal
