#include "relay/ftp_data_registry.hpp"

#include <gtest/gtest.h>

namespace tlsgate::relay {
namespace {

using Clock = FtpDataRegistry::Clock;

IpAddress ip(const char* text) {
    return *IpAddress::parse(text);
}

FtpDataExpectation control(std::uint64_t id) {
    return {"mail.test", "mail.test", id};
}

TEST(FtpDataRegistry, AnExpectedConnectionGetsTheControlSessionsNamesOnce) {
    FtpDataRegistry registry;
    const auto now = Clock::now();
    registry.expect(ip("203.0.113.10"), 60001, ip("192.0.2.2"), control(7), now);
    EXPECT_FALSE(registry.take(ip("203.0.113.10"), 60002, ip("192.0.2.2"), now));
    EXPECT_FALSE(registry.take(ip("203.0.113.11"), 60001, ip("192.0.2.2"), now));
    const auto taken = registry.take(ip("203.0.113.10"), 60001, ip("192.0.2.2"), now);
    ASSERT_TRUE(taken);
    EXPECT_EQ(taken->host, "mail.test");
    EXPECT_EQ(taken->verify_name, "mail.test");
    EXPECT_EQ(taken->control_id, 7u);
    EXPECT_FALSE(registry.take(ip("203.0.113.10"), 60001, ip("192.0.2.2"), now));
    EXPECT_EQ(registry.size(), 0u);
}

TEST(FtpDataRegistry, AnotherClientDoesNotTakeIt) {
    FtpDataRegistry registry;
    const auto now = Clock::now();
    registry.expect(ip("203.0.113.10"), 60001, ip("192.0.2.2"), control(1), now);
    EXPECT_FALSE(registry.take(ip("203.0.113.10"), 60001, ip("192.0.2.3"), now));
    EXPECT_TRUE(registry.take(ip("203.0.113.10"), 60001, ip("192.0.2.2"), now));
}

TEST(FtpDataRegistry, ExpectationsExpire) {
    FtpDataRegistry registry;
    const auto now = Clock::now();
    registry.expect(ip("2001:db8::10"), 60001, std::nullopt, control(1), now);
    EXPECT_FALSE(registry.take(ip("2001:db8::10"), 60001, ip("2001:db8::2"),
                               now + FtpDataRegistry::kLifetime));
    registry.expect(ip("2001:db8::10"), 60002, std::nullopt, control(2), now);
    registry.expect(ip("2001:db8::10"), 60003, std::nullopt, control(3),
                    now + FtpDataRegistry::kLifetime);
    EXPECT_EQ(registry.size(), 1u);  // the first one went when the later one came
}

TEST(FtpDataRegistry, TheOldestGoesWhenFull) {
    FtpDataRegistry registry;
    const auto now = Clock::now();
    for (std::size_t i = 0; i <= FtpDataRegistry::kMaxEntries; ++i) {
        registry.expect(ip("203.0.113.10"), static_cast<std::uint16_t>(1000 + i), std::nullopt,
                        control(i), now);
    }
    EXPECT_EQ(registry.size(), FtpDataRegistry::kMaxEntries);
    EXPECT_FALSE(registry.take(ip("203.0.113.10"), 1000, std::nullopt, now));
    EXPECT_TRUE(registry.take(ip("203.0.113.10"), 1001, std::nullopt, now));
}

}  // namespace
}  // namespace tlsgate::relay
