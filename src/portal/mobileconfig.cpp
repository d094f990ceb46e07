#include "portal/mobileconfig.hpp"

#include <cstddef>
#include <cstdint>

namespace tlsgate::portal {

namespace {

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Length of the well-formed UTF-8 sequence at the start of `text`, or 0 when it is malformed
// (overlong forms, surrogates and code points past U+10FFFF included).
std::size_t utf8_sequence_length(std::string_view text) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(0);
    std::size_t length = 0;
    unsigned char second_min = 0x80;
    unsigned char second_max = 0xBF;
    if (lead < 0x80) {
        return 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) {
            second_min = 0xA0;  // overlong below U+0800
        } else if (lead == 0xED) {
            second_max = 0x9F;  // UTF-16 surrogates
        }
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) {
            second_min = 0x90;  // overlong below U+10000
        } else if (lead == 0xF4) {
            second_max = 0x8F;  // past U+10FFFF
        }
    } else {
        return 0;
    }
    if (text.size() < length || byte(1) < second_min || byte(1) > second_max) {
        return 0;
    }
    for (std::size_t i = 2; i < length; ++i) {
        if (byte(i) < 0x80 || byte(i) > 0xBF) {
            return 0;
        }
    }
    return length;
}

// Text for an XML 1.0 element: markup characters escaped, characters XML cannot carry at all
// (C0 controls other than tab, LF and CR) dropped, malformed UTF-8 replaced, since one bad byte
// would make the device reject the whole profile.
void append_xml_text(std::string& out, std::string_view text) {
    while (!text.empty()) {
        const char c = text.front();
        const std::size_t length = utf8_sequence_length(text);
        if (length == 0) {
            out += kReplacementCharacter;
            text.remove_prefix(1);
            continue;
        }
        if (length == 1) {
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
                default:
                    if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n' ||
                        c == '\r') {
                        out += c;
                    }
            }
        } else {
            out += text.substr(0, length);
        }
        text.remove_prefix(length);
    }
}

void append_key_string(std::string& out, std::string_view indent, std::string_view key,
                       std::string_view value) {
    out += indent;
    out += "<key>";
    out += key;
    out += "</key>\n";
    out += indent;
    out += "<string>";
    append_xml_text(out, value);
    out += "</string>\n";
}

void append_key_integer(std::string& out, std::string_view indent, std::string_view key,
                        int value) {
    out += indent;
    out += "<key>";
    out += key;
    out += "</key>\n";
    out += indent;
    out += "<integer>";
    out += std::to_string(value);
    out += "</integer>\n";
}

// The <data> element with the base64 in lines of 52 characters, as Apple's own tools write it;
// an unbroken line of several kilobytes is legal but unreadable.
void append_key_data(std::string& out, std::string_view indent, std::string_view key,
                     std::span<const unsigned char> bytes) {
    constexpr std::size_t kLineLength = 52;
    out += indent;
    out += "<key>";
    out += key;
    out += "</key>\n";
    out += indent;
    out += "<data>\n";
    const std::string encoded = base64_encode(bytes);
    for (std::size_t at = 0; at < encoded.size(); at += kLineLength) {
        out += indent;
        out += std::string_view(encoded).substr(at, kLineLength);
        out += '\n';
    }
    out += indent;
    out += "</data>\n";
}

}  // namespace

std::string base64_encode(std::span<const unsigned char> bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t group =
            (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
        out += kBase64Alphabet[(group >> 18) & 0x3F];
        out += kBase64Alphabet[(group >> 12) & 0x3F];
        out += kBase64Alphabet[(group >> 6) & 0x3F];
        out += kBase64Alphabet[group & 0x3F];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest > 0) {
        std::uint32_t group = std::uint32_t{bytes[i]} << 16;
        if (rest == 2) {
            group |= std::uint32_t{bytes[i + 1]} << 8;
        }
        out += kBase64Alphabet[(group >> 18) & 0x3F];
        out += kBase64Alphabet[(group >> 12) & 0x3F];
        out += rest == 2 ? kBase64Alphabet[(group >> 6) & 0x3F] : '=';
        out += '=';
    }
    return out;
}

std::string uuid_from_bytes(std::span<const unsigned char, 16> bytes) {
    constexpr std::string_view kHexDigits = "0123456789ABCDEF";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        unsigned char byte = bytes[i];
        if (i == 6) {
            byte = static_cast<unsigned char>((byte & 0x0F) | 0x40);  // version 4
        } else if (i == 8) {
            byte = static_cast<unsigned char>((byte & 0x3F) | 0x80);  // RFC 4122 variant
        }
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out += '-';
        }
        out += kHexDigits[byte >> 4];
        out += kHexDigits[byte & 0x0F];
    }
    return out;
}

std::string apple_mobileconfig(std::span<const unsigned char> ca_der, std::string_view display_name,
                               std::string_view organization, std::string_view payload_uuid,
                               std::string_view profile_uuid) {
    // Identifiers are reverse-DNS strings a device uses to recognise a profile it already has;
    // the UUIDs make them unique per CA.
    const std::string profile_identifier = "tlsgate.ca-profile." + std::string(profile_uuid);
    const std::string payload_identifier = "tlsgate.ca-root." + std::string(payload_uuid);
    std::string description = "Installs the tlsgate root certificate";
    if (!organization.empty()) {
        description += " of ";
        description += organization;
    }
    description +=
        ". Once it is trusted (on iPhone and iPad: Settings > General > About > Certificate Trust "
        "Settings), the operator of the tlsgate gateway can read and change the contents of the "
        "HTTPS connections from this device that the gateway intercepts: pages, form fields and "
        "passwords sent to those sites. Remove this profile to end that trust.";

    std::string out;
    out.reserve(ca_der.size() * 4 / 3 + 2048);
    out +=
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\">\n"
        "<dict>\n"
        "\t<key>PayloadContent</key>\n"
        "\t<array>\n"
        "\t\t<dict>\n";
    constexpr std::string_view kInner = "\t\t\t";
    append_key_string(out, kInner, "PayloadCertificateFileName", "tlsgate-ca.cer");
    append_key_data(out, kInner, "PayloadContent", ca_der);
    append_key_string(out, kInner, "PayloadDescription", description);
    append_key_string(out, kInner, "PayloadDisplayName", display_name);
    append_key_string(out, kInner, "PayloadIdentifier", payload_identifier);
    append_key_string(out, kInner, "PayloadType", "com.apple.security.root");
    append_key_string(out, kInner, "PayloadUUID", payload_uuid);
    append_key_integer(out, kInner, "PayloadVersion", 1);
    out +=
        "\t\t</dict>\n"
        "\t</array>\n";
    constexpr std::string_view kOuter = "\t";
    append_key_string(out, kOuter, "PayloadDescription", description);
    append_key_string(out, kOuter, "PayloadDisplayName", display_name);
    append_key_string(out, kOuter, "PayloadIdentifier", profile_identifier);
    append_key_string(out, kOuter, "PayloadOrganization", organization);
    out += "\t<key>PayloadRemovalDisallowed</key>\n\t<false/>\n";
    append_key_string(out, kOuter, "PayloadType", "Configuration");
    append_key_string(out, kOuter, "PayloadUUID", profile_uuid);
    append_key_integer(out, kOuter, "PayloadVersion", 1);
    out +=
        "</dict>\n"
        "</plist>\n";
    return out;
}

}  // namespace tlsgate::portal
