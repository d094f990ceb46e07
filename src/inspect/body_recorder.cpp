#include "inspect/body_recorder.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <string_view>
#include <vector>

namespace tlsgate::inspect {

namespace {
// Fetched once: OpenSSL 3 would otherwise look the algorithm up on every body.
const EVP_MD* sha256() {
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
    return md;
}

// Hash contexts of bodies that ended, kept per thread for the next body: creating one (and its
// provider state) per body cost more than hashing a small body, and re-initialising a context
// that already ran SHA-256 reuses its state. A connection between bodies holds none.
class HashContextPool {
public:
    ~HashContextPool() {
        for (EVP_MD_CTX* context : free_) {
            EVP_MD_CTX_free(context);
        }
    }
    EVP_MD_CTX* acquire() {
        if (free_.empty()) {
            return EVP_MD_CTX_new();
        }
        EVP_MD_CTX* context = free_.back();
        free_.pop_back();
        return context;
    }
    void release(EVP_MD_CTX* context) {
        if (free_.size() < kKept) {
            free_.push_back(context);
        } else {
            EVP_MD_CTX_free(context);
        }
    }

private:
    static constexpr std::size_t kKept = 64;  // bodies hashed at once on one worker, typically
    std::vector<EVP_MD_CTX*> free_;
};

HashContextPool& hash_contexts() {
    thread_local HashContextPool pool;
    return pool;
}

// Most bodies are empty (every GET's request): their digest is known without hashing.
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
}  // namespace

void BodyRecorder::ReturnToPool::operator()(evp_md_ctx_st* context) const {
    hash_contexts().release(context);
}

BodyRecorder::BodyRecorder() = default;
BodyRecorder::~BodyRecorder() = default;
BodyRecorder::BodyRecorder(BodyRecorder&&) noexcept = default;
BodyRecorder& BodyRecorder::operator=(BodyRecorder&&) noexcept = default;

void BodyRecorder::start(std::size_t capture_limit) {
    hashing_ = false;
    size_ = 0;
    capture_limit_ = capture_limit;
    captured_.clear();
    truncated_ = false;
    started_ = true;
}

void BodyRecorder::add(std::span<const char> payload) {
    if (!started_)
        start(0);
    if (payload.empty())
        return;
    if (!hashing_) {
        if (!hash_) {
            hash_.reset(hash_contexts().acquire());
        }
        EVP_DigestInit_ex(hash_.get(), sha256(), nullptr);
        hashing_ = true;
    }
    EVP_DigestUpdate(hash_.get(), payload.data(), payload.size());
    size_ += payload.size();
    if (captured_.size() < capture_limit_) {
        const std::size_t room = capture_limit_ - captured_.size();
        const std::size_t take = payload.size() < room ? payload.size() : room;
        captured_.append(payload.data(), take);
        if (take < payload.size())
            truncated_ = true;
    } else if (capture_limit_ > 0) {
        truncated_ = true;
    }
}

void BodyRecorder::finish_into(BodySummary& summary) {
    if (!started_)
        start(0);
    if (hashing_) {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        EVP_DigestFinal_ex(hash_.get(), digest, &length);
        static constexpr char kHex[] = "0123456789abcdef";
        summary.sha256.resize(length * 2);
        for (unsigned int i = 0; i < length; ++i) {
            summary.sha256[2 * i] = kHex[digest[i] >> 4];
            summary.sha256[2 * i + 1] = kHex[digest[i] & 0xf];
        }
        hashing_ = false;
        // Back to the pool: an idle keep-alive connection holds no hash state.
        hash_.reset();
    } else {
        summary.sha256 = kEmptySha256;
    }
    summary.size = size_;
    summary.captured = std::move(captured_);
    summary.capture_truncated = truncated_;
    captured_.clear();
    started_ = false;
}

}  // namespace tlsgate::inspect
