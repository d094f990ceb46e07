#include <gtest/gtest.h>

#include <set>
#include <string>

#include "portal/platform.hpp"

namespace tlsgate::portal {
namespace {

struct UserAgentCase {
    const char* description;
    const char* user_agent;
    Platform platform;
    bool firefox;
};

// Real User-Agent strings as current browsers send them.
const UserAgentCase kCases[] = {
    {"Windows Chrome",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36",
     Platform::windows, false},
    {"Windows Edge",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
     Platform::windows, false},
    {"Windows Firefox",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
     Platform::windows, true},
    {"macOS Safari",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4.1 Safari/605.1.15",
     Platform::macos, false},
    {"macOS Firefox",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
     Platform::macos, true},
    {"iPhone Safari",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
     Platform::ios, false},
    {"iPhone Firefox (WebKit, system store)",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
     Platform::ios, false},
    {"iPad in mobile mode",
     "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/16.6 Mobile/15E148 Safari/604.1",
     Platform::ios, false},
    {"iPad with the desktop-class Safari UA (indistinguishable from a Mac)",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4 Safari/605.1.15",
     Platform::macos, false},
    {"Android Chrome",
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Mobile Safari/537.36",
     Platform::android, false},
    {"Android Firefox", "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
     Platform::android, true},
    {"Ubuntu Firefox",
     "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
     Platform::linux_debian, true},
    {"Fedora Firefox",
     "Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
     Platform::linux_fedora, true},
    {"Linux Chrome (no distribution named)",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36",
     Platform::linux_other, false},
    {"ChromeOS",
     "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36",
     Platform::chromeos, false},
    {"curl", "curl/8.5.0", Platform::unknown, false},
    {"Wget", "Wget/1.21.3", Platform::unknown, false},
    {"empty", "", Platform::unknown, false},
};

TEST(DetectPlatform, RecognisesRealUserAgents) {
    for (const auto& c : kCases) {
        EXPECT_EQ(detect_platform(c.user_agent), c.platform) << c.description;
        EXPECT_EQ(is_firefox(c.user_agent), c.firefox) << c.description;
    }
}

TEST(DetectPlatform, IgnoresCaseAndSurvivesArbitraryBytes) {
    EXPECT_EQ(detect_platform("mozilla/5.0 (x11; ubuntu; linux x86_64)"), Platform::linux_debian);
    EXPECT_EQ(detect_platform(std::string("\0\xff\x80Windows", 10)), Platform::windows);
    EXPECT_EQ(detect_platform(std::string(100000, 'A')), Platform::unknown);
}

TEST(IsChromium, CoversChromeEdgeAndChromium) {
    EXPECT_TRUE(is_chromium(kCases[0].user_agent));
    EXPECT_TRUE(is_chromium(kCases[1].user_agent));
    EXPECT_TRUE(is_chromium("Mozilla/5.0 (X11; Linux x86_64) Chromium/120.0 Safari/537.36"));
    EXPECT_FALSE(is_chromium(kCases[2].user_agent));  // Firefox
    EXPECT_FALSE(is_chromium(kCases[3].user_agent));  // Safari
}

TEST(PlatformId, IsUniqueAndUsableAsAnHtmlId) {
    std::set<std::string_view> ids;
    std::set<std::string_view> names;
    for (const Platform platform : kAllPlatforms) {
        const std::string_view id = platform_id(platform);
        ASSERT_FALSE(id.empty());
        for (const char c : id) {
            EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '-') << id;
        }
        EXPECT_TRUE(ids.insert(id).second) << id;
        EXPECT_TRUE(names.insert(platform_name(platform)).second) << platform_name(platform);
    }
    EXPECT_EQ(platform_id(Platform::linux_debian), "linux-debian");
    EXPECT_EQ(platform_id(Platform::unknown), "other");
}

}  // namespace
}  // namespace tlsgate::portal
