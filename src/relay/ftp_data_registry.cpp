#include "relay/ftp_data_registry.hpp"

#include <algorithm>

namespace tlsgate::relay {

FtpDataRegistry& FtpDataRegistry::process() {
    static FtpDataRegistry registry;
    return registry;
}

void FtpDataRegistry::expect(const IpAddress& server, std::uint16_t port,
                             std::optional<IpAddress> client, FtpDataExpectation expectation,
                             Clock::time_point now) {
    std::lock_guard lock(mutex_);
    drop_expired(now);
    if (entries_.size() >= kMaxEntries) {
        const auto oldest = std::min_element(
            entries_.begin(), entries_.end(),
            [](const auto& a, const auto& b) { return a.second.sequence < b.second.sequence; });
        entries_.erase(oldest);
    }
    entries_.insert_or_assign(
        Key{server.is_v6, server.bytes, port},
        Entry{std::move(client), std::move(expectation), now + kLifetime, next_sequence_++});
    count_.store(entries_.size(), std::memory_order_release);
}

std::optional<FtpDataExpectation> FtpDataRegistry::take(const IpAddress& server, std::uint16_t port,
                                                        const std::optional<IpAddress>& client,
                                                        Clock::time_point now) {
    if (count_.load(std::memory_order_acquire) == 0) {
        return std::nullopt;
    }
    std::lock_guard lock(mutex_);
    const auto found = entries_.find(Key{server.is_v6, server.bytes, port});
    if (found == entries_.end()) {
        return std::nullopt;
    }
    const Entry& entry = found->second;
    if (entry.expires <= now) {
        entries_.erase(found);
        count_.store(entries_.size(), std::memory_order_release);
        return std::nullopt;
    }
    // Another client's connection to the same port is not the transfer the session announced.
    if (entry.client && client && *entry.client != *client) {
        return std::nullopt;
    }
    auto expectation = std::move(found->second.expectation);
    entries_.erase(found);
    count_.store(entries_.size(), std::memory_order_release);
    return expectation;
}

std::size_t FtpDataRegistry::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

void FtpDataRegistry::drop_expired(Clock::time_point now) {
    std::erase_if(entries_, [now](const auto& item) { return item.second.expires <= now; });
}

}  // namespace tlsgate::relay
