#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "markup_check.hpp"
#include "portal/pages.hpp"
#include "portal/platform.hpp"

namespace tlsgate::portal {
namespace {

constexpr const char* kFingerprint =
    "3A:7F:10:C2:9B:44:E0:5D:81:6A:2F:B3:C7:D8:09:1E:55:AF:62:3C:04:9D:BE:71:E8:26:4F:93:0A:D5:"
    "C1:7B";
constexpr const char* kSha1 = "0F:1E:2D:3C:4B:5A:69:78:87:96:A5:B4:C3:D2:E1:F0:01:23:45:67";

constexpr const char* kWindowsFirefox =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";
constexpr const char* kLinuxChrome =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Safari/537.36";

// One User-Agent per platform (the last one, curl, is unknown).
const std::vector<std::pair<Platform, std::string>> kUserAgents = {
    {Platform::windows,
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51"},
    {Platform::macos,
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4.1 Safari/605.1.15"},
    {Platform::ios,
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"},
    {Platform::android,
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Mobile Safari/537.36"},
    {Platform::linux_debian,
     "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"},
    {Platform::linux_fedora,
     "Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"},
    {Platform::linux_other, kLinuxChrome},
    {Platform::chromeos,
     "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36"},
    {Platform::unknown, "curl/8.5.0"},
};

PortalInfo example_info() {
    PortalInfo info;
    info.operator_name = "Example Ltd IT";
    info.operator_contact = "it@example.com, room 4.12";
    info.operator_notice = "Banking and health sites are never intercepted.\nAsk us anything.";
    info.ca_subject = "CN=Example tlsgate CA,O=Example Ltd";
    info.ca_sha256_fingerprint = kFingerprint;
    info.ca_sha1_fingerprint = kSha1;
    info.ca_not_before = "2025-01-01T00:00:00Z";
    info.ca_not_after = "2035-01-01T00:00:00Z";
    info.gateway_version = "0.1.0";
    return info;
}

std::size_t count(std::string_view text, std::string_view needle) {
    std::size_t n = 0;
    for (std::size_t at = text.find(needle); at != std::string_view::npos;
         at = text.find(needle, at + needle.size())) {
        ++n;
    }
    return n;
}

// The install sections in page order, as "platform-..." / "browser-..." ids.
std::vector<std::string> section_ids(std::string_view page) {
    std::vector<std::string> ids;
    for (std::size_t at = page.find("<section id=\""); at != std::string_view::npos;
         at = page.find("<section id=\"", at + 1)) {
        const std::size_t start = at + 13;
        const std::string id(page.substr(start, page.find('"', start) - start));
        if (id.starts_with("platform-") || id.starts_with("browser-")) {
            ids.push_back(id);
        }
    }
    return ids;
}

// Whether the section with this id has its <details> open.
bool section_open(std::string_view page, std::string_view id) {
    const std::size_t at = page.find("<section id=\"" + std::string(id) + "\"");
    if (at == std::string_view::npos) {
        return false;
    }
    const std::size_t details = page.find("<details", at);
    return page.substr(details, 14) == "<details open>";
}

// Every value of a src= or href= attribute.
std::vector<std::string> link_targets(std::string_view page) {
    std::vector<std::string> targets;
    for (const std::string_view attribute : {" href=\"", " src=\"", " href='", " src='"}) {
        for (std::size_t at = page.find(attribute); at != std::string_view::npos;
             at = page.find(attribute, at + 1)) {
            const std::size_t start = at + attribute.size();
            targets.emplace_back(page.substr(start, page.find(attribute.back(), start) - start));
        }
    }
    return targets;
}

TEST(HtmlEscape, EscapesMarkupAndQuotesOnly) {
    EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    EXPECT_EQ(html_escape("Caf\xc3\xa9 \xe2\x9c\x93"), "Caf\xc3\xa9 \xe2\x9c\x93");
    EXPECT_EQ(html_escape(std::string_view("a\0b", 3)),
              "a\xEF\xBF\xBD"
              "b");
    EXPECT_EQ(html_escape(""), "");
}

TEST(CommonNameFromSubject, ReadsTheUsualSubjectForms) {
    EXPECT_EQ(common_name_from_subject("CN=tlsgate CA,O=Home"), "tlsgate CA");
    EXPECT_EQ(common_name_from_subject("O=Home,CN=tlsgate CA"), "tlsgate CA");
    EXPECT_EQ(common_name_from_subject("C = DE, O = Home, CN = tlsgate CA"), "tlsgate CA");
    EXPECT_EQ(common_name_from_subject("/C=DE/O=Home/CN=tlsgate CA"), "tlsgate CA");
    EXPECT_EQ(common_name_from_subject("commonName=Root,O=x"), "Root");
    EXPECT_EQ(common_name_from_subject("CN=Smith\\, Jones\\+Co,O=x"), "Smith, Jones+Co");
    EXPECT_EQ(common_name_from_subject("CN=Caf\\C3\\A9"), "Caf\xc3\xa9");
    EXPECT_EQ(common_name_from_subject("OU=CN,O=x"), "");
    EXPECT_EQ(common_name_from_subject("O=Home"), "");
    EXPECT_EQ(common_name_from_subject(""), "");
    EXPECT_EQ(common_name_from_subject("CN=trailing\\"), "trailing\\");
}

TEST(PortalPage, IsACompleteDocumentWithLandmarks) {
    const std::string page = render_portal_page(example_info(), kUserAgents[0].second);
    EXPECT_TRUE(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    EXPECT_NE(page.find("<meta charset=\"utf-8\">"), std::string::npos);
    EXPECT_NE(page.find("<meta name=\"viewport\""), std::string::npos);
    EXPECT_NE(page.find("<title>"), std::string::npos);
    for (const char* landmark : {"<header>", "</header>", "<main>", "</main>", "<footer>"}) {
        EXPECT_EQ(count(page, landmark), 1u) << landmark;
    }
    EXPECT_EQ(count(page, "<h1>"), 1u);
    EXPECT_EQ(count(page, "<style>"), 1u);
    EXPECT_EQ(testing::unbalanced_tags(page), "");
    EXPECT_LT(page.size(), 40u * 1024);  // small enough for a captive portal on a bad link
}

TEST(PortalPage, ShowsTheFingerprintInItsOwnElement) {
    const std::string page = render_portal_page(example_info(), "");
    const std::string_view marker = "id=\"ca-fingerprint-sha256\">";
    const std::size_t at = page.find(marker);
    ASSERT_NE(at, std::string::npos);
    const std::size_t start = at + marker.size();
    EXPECT_EQ(page.substr(start, page.find('<', start) - start), kFingerprint);
    EXPECT_EQ(count(page, "id=\"ca-fingerprint-sha256\""), 1u);
    EXPECT_NE(page.find(kSha1), std::string::npos);
    EXPECT_NE(page.find("2035-01-01T00:00:00Z"), std::string::npos);
}

TEST(PortalPage, SaysWhatTrustAllowsAndWhoOperatesIt) {
    const std::string page = render_portal_page(example_info(), "");
    EXPECT_NE(page.find("can read and change the contents"), std::string::npos);
    EXPECT_NE(page.find("passwords"), std::string::npos);
    EXPECT_NE(page.find("passed through untouched"), std::string::npos);
    EXPECT_NE(page.find("Example Ltd IT"), std::string::npos);
    EXPECT_NE(page.find("it@example.com, room 4.12"), std::string::npos);
    EXPECT_NE(page.find("Banking and health sites"), std::string::npos);
}

TEST(PortalPage, EscapesEveryOperatorString) {
    PortalInfo info = example_info();
    info.operator_name = "<script>alert(1)</script>";
    info.operator_contact = "\"><img src=x onerror=alert(1)>";
    info.operator_notice = "</blockquote><a href=\"https://evil.example/\">click</a>";
    info.ca_subject = "CN=<b>bold</b>,O=x";
    info.ca_sha256_fingerprint = "<i>";
    info.ca_sha1_fingerprint = "'\"";
    info.ca_not_before = "<u>";
    info.ca_not_after = "&amp;";
    info.gateway_version = "<svg onload=alert(1)>";
    for (const auto& [platform, user_agent] : kUserAgents) {
        const std::string page = render_portal_page(info, user_agent);
        EXPECT_EQ(page.find("<script"), std::string::npos);
        EXPECT_EQ(page.find("<img"), std::string::npos);
        EXPECT_EQ(page.find("<svg"), std::string::npos);
        EXPECT_EQ(page.find("<b>"), std::string::npos);
        EXPECT_EQ(page.find("<i>"), std::string::npos);
        EXPECT_EQ(page.find("<u>"), std::string::npos);
        EXPECT_EQ(page.find("evil.example/\""), std::string::npos);
        EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
        EXPECT_NE(page.find("&amp;amp;"), std::string::npos);
        EXPECT_EQ(testing::unbalanced_tags(page), "") << platform_id(platform);
    }
}

TEST(PortalPage, HasNoScriptsAndNoExternalResources) {
    for (const auto& [platform, user_agent] : kUserAgents) {
        const std::string page = render_portal_page(example_info(), user_agent);
        EXPECT_EQ(page.find("<script"), std::string::npos);
        EXPECT_EQ(page.find("javascript:"), std::string::npos);
        for (const char* handler : {" onload=", " onerror=", " onclick=", " onfocus="}) {
            EXPECT_EQ(page.find(handler), std::string::npos) << handler;
        }
        EXPECT_EQ(page.find("@import"), std::string::npos);
        EXPECT_EQ(page.find("url("), std::string::npos);
        EXPECT_EQ(page.find("<link"), std::string::npos);
        EXPECT_EQ(page.find("<iframe"), std::string::npos);
        const auto targets = link_targets(page);
        EXPECT_GE(targets.size(), 5u);
        for (const std::string& target : targets) {
            ASSERT_FALSE(target.empty());
            EXPECT_TRUE((target.front() == '/' && !target.starts_with("//")) ||
                        target.front() == '#')
                << target;
            EXPECT_EQ(target.find("http:"), std::string::npos) << target;
            EXPECT_EQ(target.find("https:"), std::string::npos) << target;
        }
    }
}

TEST(PortalPage, LinksEveryDownloadRelatively) {
    const std::string page = render_portal_page(example_info(), "");
    const auto downloads = certificate_downloads();
    ASSERT_EQ(downloads.size(), 5u);
    for (const char* path : {"/cert/tlsgate-ca.pem", "/cert/tlsgate-ca.crt", "/cert/tlsgate-ca.cer",
                             "/cert/tlsgate-ca.p12", "/cert/tlsgate-ca.mobileconfig"}) {
        EXPECT_NE(page.find("href=\"" + std::string(path) + "\""), std::string::npos) << path;
        EXPECT_TRUE(std::any_of(downloads.begin(), downloads.end(),
                                [&](const CertificateDownload& d) { return d.path == path; }))
            << path;
    }
    for (const CertificateDownload& download : downloads) {
        EXPECT_FALSE(download.content_type.empty());
    }
}

TEST(PortalPage, PutsTheDetectedPlatformFirstAndOpen) {
    for (const auto& [platform, user_agent] : kUserAgents) {
        const std::string page = render_portal_page(example_info(), user_agent);
        const auto ids = section_ids(page);
        ASSERT_FALSE(ids.empty());
        const std::string expected = "platform-" + std::string(platform_id(platform));
        if (platform == Platform::unknown) {
            EXPECT_EQ(count(page, "<details open>"), 0u) << user_agent;
            EXPECT_EQ(page.find("Your device"), std::string::npos);
            continue;
        }
        EXPECT_EQ(ids.front(), expected) << user_agent;
        EXPECT_TRUE(section_open(page, expected)) << user_agent;
        EXPECT_EQ(count(page, "Your device"), 1u);
        const bool firefox = is_firefox(user_agent);
        const bool chromium_linux = ids.size() > 1 && ids[1] == "browser-chromium-linux";
        EXPECT_EQ(count(page, "<details open>"), 1u + (firefox ? 1 : 0) + (chromium_linux ? 1 : 0))
            << user_agent;
        if (firefox) {
            EXPECT_EQ(ids[1], "browser-firefox") << user_agent;
            EXPECT_TRUE(section_open(page, "browser-firefox"));
        } else {
            EXPECT_FALSE(section_open(page, "browser-firefox"));
        }
    }
}

TEST(PortalPage, PutsFirefoxSecondAndChromiumOnLinuxSecond) {
    const auto firefox = section_ids(render_portal_page(example_info(), kWindowsFirefox));
    ASSERT_GE(firefox.size(), 2u);
    EXPECT_EQ(firefox[0], "platform-windows");
    EXPECT_EQ(firefox[1], "browser-firefox");

    const auto chrome = section_ids(render_portal_page(example_info(), kLinuxChrome));
    ASSERT_GE(chrome.size(), 2u);
    EXPECT_EQ(chrome[0], "platform-linux-other");
    EXPECT_EQ(chrome[1], "browser-chromium-linux");

    // Firefox with no recognisable system: Firefox first, no platform marked as the device.
    const std::string page = render_portal_page(example_info(), "Mozilla/5.0 (Plan 9) Firefox/1");
    EXPECT_EQ(section_ids(page).front(), "browser-firefox");
    EXPECT_EQ(page.find("Your device"), std::string::npos);
}

TEST(PortalPage, HasEverySectionExactlyOnce) {
    std::vector<std::string> expected;
    for (const Platform platform : kAllPlatforms) {
        expected.push_back("platform-" + std::string(platform_id(platform)));
    }
    expected.push_back("browser-firefox");
    expected.push_back("browser-chromium-linux");
    for (const auto& [platform, user_agent] : kUserAgents) {
        auto ids = section_ids(render_portal_page(example_info(), user_agent));
        EXPECT_EQ(ids.size(), expected.size()) << user_agent;
        std::sort(ids.begin(), ids.end());
        auto sorted = expected;
        std::sort(sorted.begin(), sorted.end());
        EXPECT_EQ(ids, sorted) << user_agent;
    }
}

TEST(PortalPage, GivesTheRealInstallAndRemovalCommands) {
    const std::string page = render_portal_page(example_info(), "");
    for (const char* command : {
             "certutil -addstore -f Root tlsgate-ca.cer",
             "certutil -delstore Root &quot;Example tlsgate CA&quot;",
             "certmgr.msc",
             "sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain "
             "tlsgate-ca.pem",
             "sudo security delete-certificate -c &quot;Example tlsgate CA&quot; "
             "/Library/Keychains/System.keychain",
             "Certificate Trust Settings",
             "VPN &amp; Device Management",
             "Encryption &amp; credentials",
             "User credentials",
             "API level 24",
             "sudo cp tlsgate-ca.pem /usr/local/share/ca-certificates/tlsgate-ca.crt &amp;&amp; "
             "sudo update-ca-certificates",
             "sudo update-ca-certificates --fresh",
             "sudo cp tlsgate-ca.pem /etc/pki/ca-trust/source/anchors/ &amp;&amp; sudo "
             "update-ca-trust",
             "security.enterprise_roots.enabled",
             "certutil -d sql:$HOME/.pki/nssdb -A -t &quot;C,,&quot; -n tlsgate-ca -i "
             "tlsgate-ca.pem",
             "certutil -d sql:$HOME/.pki/nssdb -D -n tlsgate-ca",
             "libnss3-tools",
         }) {
        EXPECT_NE(page.find(command), std::string::npos) << command;
    }
}

TEST(PortalPage, RemovesByHashWhenTheCommonNameCannotBeQuoted) {
    PortalInfo info = example_info();
    info.ca_subject = "CN=evil\\\"$(touch x),O=x";
    std::string page = render_portal_page(info, "");
    EXPECT_NE(page.find("certutil -delstore Root 0F1E2D3C4B5A69788796A5B4C3D2E1F001234567"),
              std::string::npos);
    EXPECT_NE(page.find("security delete-certificate -Z 0F1E2D3C4B5A69788796A5B4C3D2E1F001234567"),
              std::string::npos);
    EXPECT_EQ(page.find("$(touch x)&quot; /Library"), std::string::npos);

    info.ca_sha1_fingerprint.clear();
    page = render_portal_page(info, "");
    EXPECT_NE(page.find("certutil -delstore Root &quot;tlsgate&quot;"), std::string::npos);

    info.ca_subject = "O=No common name";
    info.ca_sha1_fingerprint = kSha1;
    page = render_portal_page(info, "");
    EXPECT_NE(page.find("-Z 0F1E2D3C4B5A69788796A5B4C3D2E1F001234567"), std::string::npos);
}

TEST(PortalPage, CopesWithAnEmptyConfiguration) {
    const std::string page = render_portal_page(PortalInfo{}, "");
    EXPECT_NE(page.find("id=\"ca-fingerprint-sha256\"></code>"), std::string::npos);
    EXPECT_NE(page.find("not stated"), std::string::npos);
    EXPECT_EQ(testing::unbalanced_tags(page), "");
}

TEST(ErrorPages, AreSmallValidAndEscaped) {
    const std::string not_found = render_not_found_page();
    EXPECT_TRUE(not_found.starts_with("<!DOCTYPE html>"));
    EXPECT_NE(not_found.find("<h1>Not found</h1>"), std::string::npos);
    EXPECT_NE(not_found.find("href=\"/\""), std::string::npos);
    EXPECT_EQ(not_found.find("<script"), std::string::npos);
    EXPECT_EQ(testing::unbalanced_tags(not_found), "");
    const std::string error = render_error_page("Bad <request>", "a & b");
    EXPECT_NE(error.find("<h1>Bad &lt;request&gt;</h1>"), std::string::npos);
    EXPECT_NE(error.find("a &amp; b"), std::string::npos);
    EXPECT_EQ(testing::unbalanced_tags(error), "");
}

TEST(UpstreamErrorPage, NamesTheHostAndTheReasonInPlainWords) {
    const std::string page =
        render_upstream_error_page({"expired.example", "expired", "certificate has expired",
                                    "Example Ltd IT", "it@example.com"});
    EXPECT_TRUE(page.starts_with("<!DOCTYPE html>"));
    EXPECT_NE(page.find("<strong>expired.example</strong>"), std::string::npos);
    EXPECT_NE(page.find("The site&#39;s certificate has expired."), std::string::npos);
    EXPECT_NE(page.find("<code>expired</code>"), std::string::npos);
    EXPECT_NE(page.find("certificate has expired"), std::string::npos);
    EXPECT_NE(page.find("Example Ltd IT (it@example.com)"), std::string::npos);
    EXPECT_NE(page.find("Nothing you send here reaches the site"), std::string::npos);
    EXPECT_EQ(testing::unbalanced_tags(page), "");
}

TEST(UpstreamErrorPage, HasNoLinksScriptsOrExternalResources) {
    const std::string page =
        render_upstream_error_page({"a.example", "wrong_host", "Hostname mismatch", "", ""});
    EXPECT_TRUE(link_targets(page).empty());
    for (const char* forbidden : {"<script", "javascript:", "<link", "<img", "<iframe", "url(",
                                  "@import", "http:", "https:", " onload=", " onerror="}) {
        EXPECT_EQ(page.find(forbidden), std::string::npos) << forbidden;
    }
    EXPECT_NE(page.find("tell the people who run this network."), std::string::npos);
}

TEST(UpstreamErrorPage, EscapesEverythingFromTheNetworkAndTheOperator) {
    const std::string page = render_upstream_error_page(
        {"<b>evil</b>.example", "other\"><script>", "detail & <more>", "Ops <team>", "a'b"});
    EXPECT_EQ(page.find("<b>evil"), std::string::npos);
    EXPECT_EQ(page.find("<script>"), std::string::npos);
    EXPECT_NE(page.find("&lt;b&gt;evil&lt;/b&gt;.example"), std::string::npos);
    EXPECT_NE(page.find("detail &amp; &lt;more&gt;"), std::string::npos);
    EXPECT_NE(page.find("Ops &lt;team&gt; (a&#39;b)"), std::string::npos);
    EXPECT_NE(page.find("could not be verified"), std::string::npos) << "unknown code";
    EXPECT_EQ(testing::unbalanced_tags(page), "");
}

TEST(UpstreamErrorPage, EveryReasonCodeHasItsOwnWords) {
    const std::vector<std::string_view> codes = {"expired",        "not_yet_valid", "self_signed",
                                                 "untrusted_root", "wrong_host",    "weak_key",
                                                 "weak_signature", "invalid_chain", "own_ca"};
    std::vector<std::string_view> seen;
    for (const std::string_view code : codes) {
        const std::string_view words = describe_upstream_error(code);
        EXPECT_EQ(std::find(seen.begin(), seen.end(), words), seen.end()) << code;
        EXPECT_NE(words, describe_upstream_error("other")) << code;
        seen.push_back(words);
    }
    EXPECT_EQ(describe_upstream_error("wrong_host"),
              "The site's certificate was issued for a different name than the one you asked "
              "for.");
}

}  // namespace
}  // namespace tlsgate::portal
