#pragma once
// Streams a body's payload into its BodySummary: size and SHA-256 always, the first bytes only
// when capture is on. Holds one hash context, never the body; an empty body never touches it.
#include <memory>
#include <span>

#include "inspect/exchange.hpp"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace tlsgate::inspect {

class BodyRecorder {
public:
    BodyRecorder();
    ~BodyRecorder();
    BodyRecorder(BodyRecorder&&) noexcept;
    BodyRecorder& operator=(BodyRecorder&&) noexcept;

    // Starts a new body; `capture_limit` 0 captures nothing.
    void start(std::size_t capture_limit);
    void add(std::span<const char> payload);
    // Writes size, sha256 and the captured bytes into `summary` (type and encoding are left to
    // the caller, who knows the headers). The recorder can then start again.
    void finish_into(BodySummary& summary);

private:
    // Gives a hash context back to the thread's pool instead of freeing it.
    struct ReturnToPool {
        void operator()(evp_md_ctx_st* context) const;
    };

    std::unique_ptr<evp_md_ctx_st, ReturnToPool> hash_;  // only while a body is being hashed
    std::uint64_t size_ = 0;
    std::size_t capture_limit_ = 0;
    std::string captured_;
    bool truncated_ = false;
    bool started_ = false;
    bool hashing_ = false;  // the hash context is initialized: the body has a first byte
};

}  // namespace tlsgate::inspect
