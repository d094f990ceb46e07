#pragma once
// Relay buffers are lent only while bytes are moving: an idle connection holds none, which is
// what keeps thousands of idle intercepted connections cheap. One pool per worker (no locks).
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace tlsgate::relay {

class BufferPool {
public:
    static constexpr std::size_t kBufferSize = 16 * 1024;
    using Buffer = std::array<std::uint8_t, kBufferSize>;

    class Lease {
    public:
        Lease(BufferPool& pool, std::unique_ptr<Buffer> buffer)
            : pool_(pool), buffer_(std::move(buffer)) {}
        ~Lease() { pool_.give_back(std::move(buffer_)); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Buffer& operator*() { return *buffer_; }

    private:
        BufferPool& pool_;
        std::unique_ptr<Buffer> buffer_;
    };

    Lease borrow() {
        if (free_.empty()) {
            return Lease(*this, std::make_unique<Buffer>());
        }
        auto buffer = std::move(free_.back());
        free_.pop_back();
        return Lease(*this, std::move(buffer));
    }

private:
    static constexpr std::size_t kMaxKept = 256;  // beyond this, a burst's buffers are freed

    void give_back(std::unique_ptr<Buffer> buffer) {
        if (buffer && free_.size() < kMaxKept) {
            free_.push_back(std::move(buffer));
        }
    }

    std::vector<std::unique_ptr<Buffer>> free_;
};

}  // namespace tlsgate::relay
