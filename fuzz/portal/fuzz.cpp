// Fuzz target for the certificate portal. The portal renders operator configuration and a
// User-Agent, both untrusted as far as markup goes, so beyond "no crash, no UB" it checks that no
// input breaks out of its place: the HTML and the plist stay balanced, every link stays relative,
// the plist stays valid UTF-8 XML text, and every metrics line stays one line.
//
// Input layout: the first byte is a separator; the rest, split at it, gives the User-Agent, the
// PortalInfo fields, a metric name, help text and label value, in that order (missing fields are
// empty).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "markup_check.hpp"
#include "portal/metrics_text.hpp"
#include "portal/mobileconfig.hpp"
#include "portal/pages.hpp"
#include "portal/platform.hpp"

namespace {

namespace portal = tlsgate::portal;

void require(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "portal fuzz: %s\n", what);
        std::abort();
    }
}

std::vector<std::string_view> split(std::string_view text, char separator, std::size_t fields) {
    std::vector<std::string_view> out;
    while (out.size() + 1 < fields) {
        const std::size_t at = text.find(separator);
        if (at == std::string_view::npos) {
            break;
        }
        out.push_back(text.substr(0, at));
        text.remove_prefix(at + 1);
    }
    out.push_back(text);
    out.resize(fields);
    return out;
}

bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
        const unsigned char lead = byte(i);
        std::size_t length = 0;
        unsigned char low = 0x80;
        unsigned char high = 0xBF;
        if (lead < 0x80) {
            ++i;
            continue;
        } else if (lead >= 0xC2 && lead <= 0xDF) {
            length = 2;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            length = 3;
            low = lead == 0xE0 ? 0xA0 : 0x80;
            high = lead == 0xED ? 0x9F : 0xBF;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            length = 4;
            low = lead == 0xF0 ? 0x90 : 0x80;
            high = lead == 0xF4 ? 0x8F : 0xBF;
        } else {
            return false;
        }
        if (i + length > text.size() || byte(i + 1) < low || byte(i + 1) > high) {
            return false;
        }
        for (std::size_t k = 2; k < length; ++k) {
            if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) {
                return false;
            }
        }
        i += length;
    }
    return true;
}

void check_page(const portal::PortalInfo& info, std::string_view user_agent) {
    const std::string page = portal::render_portal_page(info, user_agent);
    require(tlsgate::testing::unbalanced_tags(page).empty(), "portal page tags unbalanced");
    require(page.find("<script") == std::string::npos, "script element on the page");
    for (const std::string_view attribute : {" href=\"", " src=\""}) {
        for (std::size_t at = page.find(attribute); at != std::string::npos;
             at = page.find(attribute, at + 1)) {
            const char first = page[at + attribute.size()];
            require(first == '/' || first == '#', "non-relative link");
            require(page[at + attribute.size() + 1] != '/', "protocol-relative link");
        }
    }
    const std::string marker = "<code id=\"ca-fingerprint-sha256\">" +
                               portal::html_escape(info.ca_sha256_fingerprint) + "</code>";
    require(page.find(marker) != std::string::npos, "fingerprint element missing or altered");
    std::size_t sections = 0;
    for (std::size_t at = page.find("<section id=\""); at != std::string::npos;
         at = page.find("<section id=\"", at + 1)) {
        ++sections;
    }
    // The page's fixed sections (what it allows, operator, certificate, download, install) plus
    // one per platform, Firefox and Chrome on Linux.
    require(sections == 5 + portal::kAllPlatforms.size() + 2, "a section is missing or doubled");
    const portal::Platform platform = portal::detect_platform(user_agent);
    if (platform != portal::Platform::unknown) {
        const std::string first =
            "<section id=\"platform-" + std::string(portal::platform_id(platform)) + "\"";
        const std::size_t install = page.find("<section id=\"install\"");
        require(page.find("<section id=\"", install + 1) == page.find(first),
                "detected platform is not first");
    }
}

void check_escape(std::string_view text) {
    const std::string escaped = portal::html_escape(text);
    require(escaped.find_first_of(std::string_view("<>\"'\0", 5)) == std::string::npos,
            "markup character survived html_escape");
    require(escaped.size() >= text.size(), "html_escape lost bytes");
    require(portal::common_name_from_subject(text).size() <= text.size(), "CN longer than subject");
}

std::string decode_base64(std::string_view text) {
    constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned buffer = 0;
    int bits = 0;
    for (const char c : text) {
        const std::size_t index = kAlphabet.find(c);
        if (index == std::string_view::npos) {
            continue;  // whitespace and padding
        }
        buffer = (buffer << 6) | static_cast<unsigned>(index);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buffer >> bits) & 0xFF);
        }
    }
    return out;
}

void check_mobileconfig(std::string_view der, std::string_view name, std::string_view org) {
    const std::span<const unsigned char> der_bytes(
        reinterpret_cast<const unsigned char*>(der.data()), der.size());
    const std::string plist = portal::apple_mobileconfig(
        der_bytes, name, org, "11111111-2222-4333-8444-555555555555", "PROFILE-UUID");
    require(tlsgate::testing::unbalanced_tags(plist).empty(), "plist tags unbalanced");
    require(valid_utf8(plist), "plist is not valid UTF-8");
    for (const char c : plist) {
        const auto byte = static_cast<unsigned char>(c);
        require(byte >= 0x20 || c == '\t' || c == '\n' || c == '\r', "control byte in the plist");
    }
    const std::string_view open = "<key>PayloadContent</key>\n\t\t\t<data>\n";
    const std::size_t start = plist.find(open);
    require(start != std::string::npos, "no data element");
    const std::size_t end = plist.find("</data>", start);
    require(decode_base64(std::string_view(plist).substr(start + open.size(),
                                                         end - start - open.size())) == der,
            "certificate data does not round-trip");
}

void check_metrics(std::string_view name, std::string_view help, std::string_view label_value,
                   std::span<const std::uint8_t> raw) {
    portal::MetricsText metrics;
    metrics.counter(name, help, {{"k", label_value}}, static_cast<double>(raw.size()));
    metrics.gauge(name, help, {{"k", label_value}}, 1);  // conflicts with the counter: dropped
    std::array<double, 4> bounds{};
    std::array<std::uint64_t, 4> counts{};
    for (std::size_t i = 0; i < bounds.size() && i < raw.size(); ++i) {
        bounds[i] = static_cast<double>(raw[i]) / 8;
        counts[i] = raw[i];
    }
    metrics.histogram("h", help, {{"k", label_value}, {name, label_value}}, bounds, counts, 0.5, 9);
    const std::string text = metrics.take();
    // counter: HELP, TYPE, one sample; histogram: HELP, TYPE, 4 + 1 buckets (no bound here is
    // +Inf), sum, count; unless the counter's name is "h", which makes the histogram a conflict.
    const bool clash = portal::MetricsText::sanitize_metric_name(name) == "h";
    const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
    require(lines == (clash ? 3u : 3u + 2 + 5 + 2), "a metrics value broke out of its line");
    require(text.starts_with("# HELP "), "exposition does not start with HELP");
    require(metrics.take().empty(), "take did not reset");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const char separator = static_cast<char>(data[0]);
    const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    const auto fields = split(rest, separator, 13);

    portal::PortalInfo info;
    info.operator_name = fields[1];
    info.operator_contact = fields[2];
    info.operator_notice = fields[3];
    info.ca_subject = fields[4];
    info.ca_sha256_fingerprint = fields[5];
    info.ca_sha1_fingerprint = fields[6];
    info.ca_not_before = fields[7];
    info.ca_not_after = fields[8];
    info.gateway_version = fields[9];

    check_page(info, fields[0]);
    for (const std::string_view field : fields) {
        check_escape(field);
    }
    check_mobileconfig(fields[4], fields[1], fields[2]);
    check_metrics(fields[10], fields[11], fields[12], {data, size});

    if (size >= 16) {
        const std::string uuid =
            portal::uuid_from_bytes(std::span<const std::uint8_t, 16>(data, 16));
        require(uuid.size() == 36 && uuid[8] == '-' && uuid[14] == '4', "malformed UUID");
    }
    const std::string error = portal::render_error_page(fields[0], fields[1]);
    require(tlsgate::testing::unbalanced_tags(error).empty(), "error page tags unbalanced");
    return 0;
}
