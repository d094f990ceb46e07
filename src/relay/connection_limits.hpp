#pragma once
// Concurrent-connection limits shared by every worker without a lock: one atomic for the total
// and a table of atomic counters indexed by a hash of the client address (two clients sharing a
// slot share a budget; with 65,536 slots that is rare, and it can only refuse early, never admit
// more than the limit).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/ip.hpp"

namespace tlsgate::relay {

class ConnectionLimits {
public:
    // 0 means unlimited.
    ConnectionLimits(std::size_t max_total, std::size_t max_per_client);

    enum class Verdict { admitted, total_reached, client_reached };
    // Reserves a slot; on `admitted` the caller must call release() with the same arguments.
    Verdict try_admit(const IpAddress* client);
    void release(const IpAddress* client);
    std::size_t open() const { return total_.load(std::memory_order_relaxed); }

private:
    static constexpr std::size_t kSlots = 1 << 16;
    std::atomic<std::uint32_t>& slot_for(const IpAddress& client);

    std::size_t max_total_;
    std::size_t max_per_client_;
    std::atomic<std::size_t> total_{0};
    std::unique_ptr<std::atomic<std::uint32_t>[]> per_client_;
};

}  // namespace tlsgate::relay
