#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "markup_check.hpp"
#include "portal/mobileconfig.hpp"

namespace tlsgate::portal {
namespace {

std::span<const unsigned char> bytes_of(std::string_view text) {
    return {reinterpret_cast<const unsigned char*>(text.data()), text.size()};
}

// A strict decoder for the round trip (the library needs only the encoder): whitespace is
// skipped, anything else outside the alphabet or misplaced padding fails.
std::optional<std::vector<unsigned char>> base64_decode(std::string_view text) {
    constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string compact;
    for (const char c : text) {
        if (c != '\n' && c != '\t' && c != ' ' && c != '\r') {
            compact += c;
        }
    }
    if (compact.size() % 4 != 0) {
        return std::nullopt;
    }
    std::vector<unsigned char> out;
    for (std::size_t i = 0; i < compact.size(); i += 4) {
        unsigned value = 0;
        int padding = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            const char c = compact[i + j];
            if (c == '=' && i + 4 == compact.size() && j >= 2) {
                ++padding;
                value <<= 6;
                continue;
            }
            const std::size_t index = kAlphabet.find(c);
            if (index == std::string_view::npos || padding > 0) {
                return std::nullopt;
            }
            value = (value << 6) | static_cast<unsigned>(index);
        }
        out.push_back(static_cast<unsigned char>(value >> 16));
        if (padding < 2) {
            out.push_back(static_cast<unsigned char>(value >> 8));
        }
        if (padding < 1) {
            out.push_back(static_cast<unsigned char>(value));
        }
    }
    return out;
}

// The text of the first <tag> after `key`'s <key> element.
std::string value_after_key(std::string_view plist, std::string_view key, std::string_view tag,
                            std::size_t from = 0) {
    const std::size_t key_at = plist.find("<key>" + std::string(key) + "</key>", from);
    if (key_at == std::string_view::npos) {
        return "(no key)";
    }
    const std::string open = "<" + std::string(tag) + ">";
    const std::size_t start = plist.find(open, key_at) + open.size();
    return std::string(
        plist.substr(start, plist.find("</" + std::string(tag) + ">", start) - start));
}

TEST(Base64, MatchesTheRfc4648Vectors) {
    EXPECT_EQ(base64_encode(bytes_of("")), "");
    EXPECT_EQ(base64_encode(bytes_of("f")), "Zg==");
    EXPECT_EQ(base64_encode(bytes_of("fo")), "Zm8=");
    EXPECT_EQ(base64_encode(bytes_of("foo")), "Zm9v");
    EXPECT_EQ(base64_encode(bytes_of("foob")), "Zm9vYg==");
    EXPECT_EQ(base64_encode(bytes_of("fooba")), "Zm9vYmE=");
    EXPECT_EQ(base64_encode(bytes_of("foobar")), "Zm9vYmFy");
    const std::array<unsigned char, 3> high = {0xFB, 0xFF, 0xBF};
    EXPECT_EQ(base64_encode(high), "+/+/");
}

TEST(Base64, RoundTripsEveryByteValueAndLength) {
    std::vector<unsigned char> bytes;
    for (int i = 0; i < 256; ++i) {
        bytes.push_back(static_cast<unsigned char>(255 - i));
        const auto decoded = base64_decode(base64_encode(bytes));
        ASSERT_TRUE(decoded) << i;
        EXPECT_EQ(*decoded, bytes) << i;
    }
}

TEST(UuidFromBytes, FormatsAVersion4Uuid) {
    std::array<unsigned char, 16> bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<unsigned char>(i);
    }
    EXPECT_EQ(uuid_from_bytes(bytes), "00010203-0405-4607-8809-0A0B0C0D0E0F");
    bytes.fill(0xFF);
    EXPECT_EQ(uuid_from_bytes(bytes), "FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF");
    bytes.fill(0x00);
    EXPECT_EQ(uuid_from_bytes(bytes), "00000000-0000-4000-8000-000000000000");
}

class MobileconfigTest : public ::testing::Test {
protected:
    MobileconfigTest() {
        for (int i = 0; i < 700; ++i) {  // about the size of a small certificate
            der_.push_back(static_cast<unsigned char>(i * 7 + 3));
        }
    }
    std::vector<unsigned char> der_;
    const std::string payload_uuid_ = "11111111-2222-4333-8444-555555555555";
    const std::string profile_uuid_ = "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE";
};

TEST_F(MobileconfigTest, IsAWellFormedRootCertificateProfile) {
    const std::string plist =
        apple_mobileconfig(der_, "tlsgate CA", "Example Ltd", payload_uuid_, profile_uuid_);
    EXPECT_TRUE(plist.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist"));
    EXPECT_NE(plist.find("<plist version=\"1.0\">"), std::string::npos);
    EXPECT_TRUE(plist.ends_with("</dict>\n</plist>\n"));
    EXPECT_EQ(testing::unbalanced_tags(plist), "");

    // The certificate payload, inside the outer PayloadContent array.
    const std::size_t inner = plist.find("<array>");
    ASSERT_NE(inner, std::string::npos);
    EXPECT_EQ(value_after_key(plist, "PayloadType", "string", inner), "com.apple.security.root");
    EXPECT_EQ(value_after_key(plist, "PayloadUUID", "string", inner), payload_uuid_);
    EXPECT_EQ(value_after_key(plist, "PayloadVersion", "integer", inner), "1");
    EXPECT_EQ(value_after_key(plist, "PayloadDisplayName", "string", inner), "tlsgate CA");
    EXPECT_NE(value_after_key(plist, "PayloadIdentifier", "string", inner).find(payload_uuid_),
              std::string::npos);
    EXPECT_NE(value_after_key(plist, "PayloadDescription", "string", inner).find("read and change"),
              std::string::npos);
    const auto decoded = base64_decode(value_after_key(plist, "PayloadContent", "data", inner));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, der_);

    // The profile around it.
    const std::size_t outer = plist.find("</array>");
    ASSERT_NE(outer, std::string::npos);
    EXPECT_EQ(value_after_key(plist, "PayloadType", "string", outer), "Configuration");
    EXPECT_EQ(value_after_key(plist, "PayloadUUID", "string", outer), profile_uuid_);
    EXPECT_EQ(value_after_key(plist, "PayloadVersion", "integer", outer), "1");
    EXPECT_EQ(value_after_key(plist, "PayloadOrganization", "string", outer), "Example Ltd");
    EXPECT_NE(value_after_key(plist, "PayloadIdentifier", "string", outer).find(profile_uuid_),
              std::string::npos);
    EXPECT_NE(plist.find("<key>PayloadRemovalDisallowed</key>\n\t<false/>"), std::string::npos);
}

TEST_F(MobileconfigTest, WrapsTheCertificateData) {
    const std::string plist = apple_mobileconfig(der_, "x", "y", payload_uuid_, profile_uuid_);
    const std::string data = value_after_key(plist, "PayloadContent", "data");
    std::size_t longest = 0;
    std::size_t line = 0;
    for (const char c : data) {
        line = c == '\n' ? 0 : line + 1;
        longest = std::max(longest, line);
    }
    EXPECT_LE(longest, 3u + 52u);  // indentation and 52 base64 characters
}

TEST_F(MobileconfigTest, EscapesOperatorTextIntoValidXml) {
    const std::string plist = apple_mobileconfig(
        der_, "<Evil & \"Co\">\x01\x1f", std::string_view("Caf\xc3\xa9 \xff\xc0\x80 A\0B", 14),
        payload_uuid_, profile_uuid_);
    EXPECT_EQ(value_after_key(plist, "PayloadDisplayName", "string"),
              "&lt;Evil &amp; &quot;Co&quot;&gt;");
    EXPECT_EQ(value_after_key(plist, "PayloadOrganization", "string"),
              "Caf\xc3\xa9 \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD AB");
    EXPECT_EQ(plist.find('\x01'), std::string::npos);
    EXPECT_EQ(plist.find('\0'), std::string::npos);
    EXPECT_EQ(testing::unbalanced_tags(plist), "");
}

TEST_F(MobileconfigTest, DescribesTheProfileWithoutAnOrganization) {
    const std::string plist = apple_mobileconfig(der_, "x", "", payload_uuid_, profile_uuid_);
    EXPECT_TRUE(value_after_key(plist, "PayloadDescription", "string")
                    .starts_with("Installs the tlsgate root certificate. "));
}

}  // namespace
}  // namespace tlsgate::portal
