#include "policy/auto_passthrough.hpp"

#include <algorithm>

namespace tlsgate::policy {

bool AutoPassthrough::live(const Entry& entry, Clock::time_point now) const {
    if (entry.passthrough_until != Clock::time_point{}) {
        return now < entry.passthrough_until;
    }
    return now - entry.first_rejection < settings_.window;
}

bool AutoPassthrough::record_rejection(const std::string& host, Clock::time_point now) {
    if (host.empty()) {
        return false;
    }
    std::lock_guard lock(mutex_);
    auto found = entries_.find(host);
    if (found != entries_.end() && !live(found->second, now)) {
        entries_.erase(found);
        found = entries_.end();
    }
    if (found == entries_.end()) {
        if (entries_.size() >= settings_.max_hosts) {
            auto oldest = std::min_element(
                entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
                    return a.second.first_rejection < b.second.first_rejection;
                });
            entries_.erase(oldest);
        }
        found = entries_.emplace(host, Entry{host, 0, now, {}}).first;
    }
    Entry& entry = found->second;
    if (entry.passthrough_until != Clock::time_point{}) {
        return false;  // already exempt: a passed-through client cannot reject us
    }
    ++entry.rejections;
    if (entry.rejections < settings_.failures) {
        return false;
    }
    entry.passthrough_until = now + settings_.duration;
    exempt_hint_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

bool AutoPassthrough::exempt(const std::string& host, Clock::time_point now) const {
    if (exempt_hint_.load(std::memory_order_relaxed) == 0 || host.empty()) {
        return false;
    }
    std::lock_guard lock(mutex_);
    const auto found = entries_.find(host);
    return found != entries_.end() && found->second.passthrough_until != Clock::time_point{} &&
           now < found->second.passthrough_until;
}

std::vector<AutoPassthrough::Entry> AutoPassthrough::entries(Clock::time_point now) const {
    std::vector<Entry> out;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [host, entry] : entries_) {
            if (live(entry, now)) {
                out.push_back(entry);
            }
        }
    }
    std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
        const bool a_exempt = a.passthrough_until != Clock::time_point{};
        const bool b_exempt = b.passthrough_until != Clock::time_point{};
        return a_exempt != b_exempt ? a_exempt : a.host < b.host;
    });
    return out;
}

std::size_t AutoPassthrough::clear(const std::string& host) {
    std::lock_guard lock(mutex_);
    std::size_t removed = 0;
    if (host.empty()) {
        removed = entries_.size();
        entries_.clear();
    } else {
        removed = entries_.erase(host);
    }
    bool any_exempt = false;
    for (const auto& [name, entry] : entries_) {
        any_exempt = any_exempt || entry.passthrough_until != Clock::time_point{};
    }
    if (!any_exempt) {
        exempt_hint_.store(0, std::memory_order_relaxed);
    }
    return removed;
}

}  // namespace tlsgate::policy
