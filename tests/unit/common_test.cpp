#include <gtest/gtest.h>

#include "common/hostname.hpp"
#include "common/ip.hpp"

namespace tlsgate {
namespace {

TEST(NormalizeHostname, LowerCasesAndDropsOneTrailingDot) {
    EXPECT_EQ(normalize_hostname("WWW.Example.COM."), "www.example.com");
    EXPECT_EQ(normalize_hostname("a_b.example"), "a_b.example");
    EXPECT_EQ(normalize_hostname("xn--bcher-kva.example"), "xn--bcher-kva.example");
}

TEST(NormalizeHostname, RejectsWhatCannotBeAHostName) {
    for (const char* bad :
         {"", ".", "a..", "a..b", ".a", "-a.example", "a-.example", "a b", "a/b", "a\xc3\xa9"}) {
        EXPECT_FALSE(normalize_hostname(bad)) << bad;
    }
    EXPECT_FALSE(normalize_hostname(std::string(64, 'a') + ".example"));
    EXPECT_TRUE(normalize_hostname(std::string(63, 'a') + ".example"));
    std::string long_name;
    while (long_name.size() < 254) {
        long_name += "abcdefghi.";
    }
    EXPECT_FALSE(normalize_hostname(long_name + "x"));
}

TEST(Cidr, ContainsAddressesInsideThePrefixOnly) {
    const auto v4 = Cidr::parse("192.0.2.0/24");
    ASSERT_TRUE(v4);
    EXPECT_TRUE(v4->contains(*IpAddress::parse("192.0.2.200")));
    EXPECT_FALSE(v4->contains(*IpAddress::parse("192.0.3.1")));
    EXPECT_TRUE(v4->contains(*IpAddress::parse("::ffff:192.0.2.7")));
    const auto odd = Cidr::parse("198.51.100.128/25");
    ASSERT_TRUE(odd);
    EXPECT_TRUE(odd->contains(*IpAddress::parse("198.51.100.129")));
    EXPECT_FALSE(odd->contains(*IpAddress::parse("198.51.100.127")));
    const auto v6 = Cidr::parse("2001:db8::/32");
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->contains(*IpAddress::parse("2001:db8:1::1")));
    EXPECT_FALSE(v6->contains(*IpAddress::parse("192.0.2.1")));
}

TEST(Cidr, MappedNetworksAreTheirIpv4NetworksAndBadPrefixesFail) {
    const auto mapped = Cidr::parse("::ffff:192.0.2.0/120");
    ASSERT_TRUE(mapped);
    EXPECT_FALSE(mapped->network.is_v6);
    EXPECT_EQ(mapped->prefix_length, 24);
    EXPECT_TRUE(mapped->contains(*IpAddress::parse("192.0.2.9")));
    for (const char* bad : {"192.0.2.0/-0", "192.0.2.0/33", "192.0.2.0/", "192.0.2.0/+1",
                            "2001:db8::/129", "example.com/8"}) {
        EXPECT_FALSE(Cidr::parse(bad)) << bad;
    }
}

}  // namespace
}  // namespace tlsgate
