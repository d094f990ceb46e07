#include "relay/connection_limits.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace tlsgate::relay {
namespace {

using Verdict = ConnectionLimits::Verdict;

TEST(ConnectionLimits, TotalLimitRefusesOverflowAndRecovers) {
    ConnectionLimits limits(2, 0);
    const auto client = *IpAddress::parse("192.0.2.1");
    EXPECT_EQ(limits.try_admit(&client), Verdict::admitted);
    EXPECT_EQ(limits.try_admit(nullptr), Verdict::admitted);
    EXPECT_EQ(limits.try_admit(&client), Verdict::total_reached);
    EXPECT_EQ(limits.open(), 2u);
    limits.release(&client);
    EXPECT_EQ(limits.try_admit(&client), Verdict::admitted);
}

TEST(ConnectionLimits, PerClientLimitIsPerAddress) {
    ConnectionLimits limits(0, 2);
    const auto a = *IpAddress::parse("192.0.2.1");
    const auto b = *IpAddress::parse("2001:db8::1");
    EXPECT_EQ(limits.try_admit(&a), Verdict::admitted);
    EXPECT_EQ(limits.try_admit(&a), Verdict::admitted);
    EXPECT_EQ(limits.try_admit(&a), Verdict::client_reached);
    EXPECT_EQ(limits.try_admit(&b), Verdict::admitted);
    EXPECT_EQ(limits.try_admit(nullptr), Verdict::admitted);  // unknown client: total only
    EXPECT_EQ(limits.open(), 4u);
    limits.release(&a);
    EXPECT_EQ(limits.try_admit(&a), Verdict::admitted);
}

TEST(ConnectionLimits, ConcurrentAdmissionsNeverExceedTheLimit) {
    ConnectionLimits limits(100, 0);
    std::atomic<int> admitted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                if (limits.try_admit(nullptr) == Verdict::admitted) {
                    ++admitted;
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(admitted.load(), 100);
    EXPECT_EQ(limits.open(), 100u);
}

}  // namespace
}  // namespace tlsgate::relay
