#pragma once
// Learned exemptions for clients that refuse interception (pinned apps, clients without the CA):
// after `failures` rejections of the minted certificate for one host within `window`, that host
// is passed through for `duration`, as PAN-OS's decryption exclusion cache and mitmproxy's
// tls_passthrough example do. Off unless configured. Process-wide and locked: consulted once per
// intercept decision, and answered without the lock while nothing has been learned.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace tlsgate::policy {

struct AutoPassthroughSettings {
    std::uint32_t failures = 3;                            // rejections that teach an exemption
    std::chrono::seconds window{600};                      // within this time
    std::chrono::seconds duration{std::chrono::hours(1)};  // how long the exemption lasts
    std::size_t max_hosts = 10000;                         // beyond: the oldest entries are dropped
};

class AutoPassthrough {
public:
    using Clock = std::chrono::system_clock;  // entries are shown with wall-clock times

    struct Entry {
        std::string host;
        std::uint32_t rejections = 0;
        Clock::time_point first_rejection;
        Clock::time_point passthrough_until;  // epoch: still learning
    };

    explicit AutoPassthrough(AutoPassthroughSettings settings) : settings_(settings) {}

    // A client turned the minted certificate for `host` down. True when this made the host
    // an exemption.
    bool record_rejection(const std::string& host, Clock::time_point now = Clock::now());
    // Whether `host` is passed through now.
    bool exempt(const std::string& host, Clock::time_point now = Clock::now()) const;
    // Every live entry (exempt or still counting), exempt ones first, then by host.
    std::vector<Entry> entries(Clock::time_point now = Clock::now()) const;
    // Forgets one host (or all when empty); returns how many entries went.
    std::size_t clear(const std::string& host = {});

    const AutoPassthroughSettings& settings() const { return settings_; }

private:
    bool live(const Entry& entry, Clock::time_point now) const;

    AutoPassthroughSettings settings_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;
    std::atomic<std::size_t> exempt_hint_{0};  // > 0 once any host was exempted (until cleared)
};

}  // namespace tlsgate::policy
