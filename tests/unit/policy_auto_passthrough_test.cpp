#include "policy/auto_passthrough.hpp"

#include <gtest/gtest.h>

namespace tlsgate::policy {
namespace {

using Clock = AutoPassthrough::Clock;
using std::chrono::seconds;

AutoPassthroughSettings settings(std::uint32_t failures = 3) {
    AutoPassthroughSettings s;
    s.failures = failures;
    s.window = seconds(60);
    s.duration = seconds(300);
    s.max_hosts = 3;
    return s;
}

const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(24 * 365 * 50);

TEST(AutoPassthrough, ExemptsAHostAfterEnoughRefusalsWithinTheWindow) {
    AutoPassthrough learned(settings());
    EXPECT_FALSE(learned.record_rejection("pinned.example", t0));
    EXPECT_FALSE(learned.record_rejection("pinned.example", t0 + seconds(10)));
    EXPECT_FALSE(learned.exempt("pinned.example", t0 + seconds(11)));
    EXPECT_TRUE(learned.record_rejection("pinned.example", t0 + seconds(20)));
    EXPECT_TRUE(learned.exempt("pinned.example", t0 + seconds(21)));
    EXPECT_FALSE(learned.exempt("other.example", t0 + seconds(21)));
}

TEST(AutoPassthrough, TheExemptionEndsAfterItsDuration) {
    AutoPassthrough learned(settings(1));
    EXPECT_TRUE(learned.record_rejection("pinned.example", t0));
    EXPECT_TRUE(learned.exempt("pinned.example", t0 + seconds(299)));
    EXPECT_FALSE(learned.exempt("pinned.example", t0 + seconds(300)));
    EXPECT_TRUE(learned.entries(t0 + seconds(300)).empty());
}

TEST(AutoPassthrough, RefusalsOutsideTheWindowStartOver) {
    AutoPassthrough learned(settings(2));
    EXPECT_FALSE(learned.record_rejection("slow.example", t0));
    EXPECT_FALSE(learned.record_rejection("slow.example", t0 + seconds(61)));
    EXPECT_TRUE(learned.record_rejection("slow.example", t0 + seconds(62)));
}

TEST(AutoPassthrough, ListsExemptHostsFirstAndClearsOneOrAll) {
    AutoPassthrough learned(settings(2));
    learned.record_rejection("b.example", t0);
    learned.record_rejection("a.example", t0);
    learned.record_rejection("c.example", t0);
    learned.record_rejection("c.example", t0);
    const auto entries = learned.entries(t0 + seconds(1));
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[0].host, "c.example");
    EXPECT_NE(entries[0].passthrough_until, Clock::time_point{});
    EXPECT_EQ(entries[1].host, "a.example");
    EXPECT_EQ(entries[1].rejections, 1u);
    EXPECT_EQ(learned.clear("c.example"), 1u);
    EXPECT_FALSE(learned.exempt("c.example", t0 + seconds(2)));
    EXPECT_EQ(learned.clear(), 2u);
    EXPECT_TRUE(learned.entries(t0 + seconds(2)).empty());
}

TEST(AutoPassthrough, StaysBoundedByDroppingTheOldest) {
    AutoPassthrough learned(settings(5));
    learned.record_rejection("1.example", t0);
    learned.record_rejection("2.example", t0 + seconds(1));
    learned.record_rejection("3.example", t0 + seconds(2));
    learned.record_rejection("4.example", t0 + seconds(3));
    const auto entries = learned.entries(t0 + seconds(4));
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_EQ(entries[0].host, "2.example");
}

TEST(AutoPassthrough, AnEmptyHostIsNeverLearned) {
    AutoPassthrough learned(settings(1));
    EXPECT_FALSE(learned.record_rejection("", t0));
    EXPECT_FALSE(learned.exempt("", t0));
}

}  // namespace
}  // namespace tlsgate::policy
