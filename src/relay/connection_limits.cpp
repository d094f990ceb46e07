#include "relay/connection_limits.hpp"

namespace tlsgate::relay {

ConnectionLimits::ConnectionLimits(std::size_t max_total, std::size_t max_per_client)
    : max_total_(max_total), max_per_client_(max_per_client) {
    if (max_per_client_ != 0) {
        per_client_ = std::make_unique<std::atomic<std::uint32_t>[]>(kSlots);
    }
}

std::atomic<std::uint32_t>& ConnectionLimits::slot_for(const IpAddress& client) {
    std::uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a over the address bytes
    for (std::size_t i = 0; i < client.size(); ++i) {
        hash = (hash ^ client.bytes[i]) * 0x100000001b3ull;
    }
    return per_client_[hash & (kSlots - 1)];
}

ConnectionLimits::Verdict ConnectionLimits::try_admit(const IpAddress* client) {
    const std::size_t total = total_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (max_total_ != 0 && total > max_total_) {
        total_.fetch_sub(1, std::memory_order_relaxed);
        return Verdict::total_reached;
    }
    if (per_client_ && client != nullptr) {
        auto& slot = slot_for(*client);
        if (slot.fetch_add(1, std::memory_order_relaxed) + 1 > max_per_client_) {
            slot.fetch_sub(1, std::memory_order_relaxed);
            total_.fetch_sub(1, std::memory_order_relaxed);
            return Verdict::client_reached;
        }
    }
    return Verdict::admitted;
}

void ConnectionLimits::release(const IpAddress* client) {
    if (per_client_ && client != nullptr) {
        slot_for(*client).fetch_sub(1, std::memory_order_relaxed);
    }
    total_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace tlsgate::relay
