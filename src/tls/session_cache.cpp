#include "tls/session_cache.hpp"

#include <ctime>

namespace tlsgate::tls {
namespace {

int context_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

int key_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

bool still_valid(SSL_SESSION* session) {
    const long age = static_cast<long>(std::time(nullptr)) - SSL_SESSION_get_time(session);
    return SSL_SESSION_is_resumable(session) == 1 && age >= 0 &&
           age < SSL_SESSION_get_timeout(session);
}

}  // namespace

UpstreamSessionCache::~UpstreamSessionCache() {
    for (auto& [key, session] : order_) {
        SSL_SESSION_free(session);
    }
}

void UpstreamSessionCache::attach(SSL_CTX* context) {
    SSL_CTX_set_ex_data(context, context_index(), this);
    // Client-side caching with our own store: OpenSSL's internal one is shared and locked.
    SSL_CTX_set_session_cache_mode(context,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(context, on_new_session);
}

void UpstreamSessionCache::remember_as(SSL* ssl, const std::string* key) {
    SSL_set_ex_data(ssl, key_index(), const_cast<std::string*>(key));
}

int UpstreamSessionCache::on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* cache = static_cast<UpstreamSessionCache*>(
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
    const auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, key_index()));
    if (cache == nullptr || key == nullptr || !still_valid(session)) {
        return 0;  // OpenSSL keeps ownership
    }
    // A copy, for the reason offer() gives: `session` stays the connection's own.
    SSL_SESSION* copy = SSL_SESSION_dup(session);
    if (copy != nullptr) {
        cache->store(*key, copy);
    }
    return 0;  // OpenSSL keeps ownership of `session`
}

void UpstreamSessionCache::store(const std::string& key, SSL_SESSION* session) {
    if (auto found = index_.find(key); found != index_.end()) {
        SSL_SESSION_free(found->second->second);
        order_.erase(found->second);
        index_.erase(found);
    }
    order_.emplace_front(key, session);
    index_[key] = order_.begin();
    while (index_.size() > capacity_) {
        SSL_SESSION_free(order_.back().second);
        index_.erase(order_.back().first);
        order_.pop_back();
    }
}

bool UpstreamSessionCache::offer(SSL* ssl, const std::string& key) {
    const auto found = index_.find(key);
    if (found == index_.end()) {
        return false;
    }
    SSL_SESSION* session = found->second->second;
    if (!still_valid(session)) {
        forget(key);
        return false;
    }
    order_.splice(order_.begin(), order_, found->second);
    SSL_SESSION* copy = SSL_SESSION_dup(session);
    if (copy == nullptr) {
        return false;
    }
    const bool set = SSL_set_session(ssl, copy) == 1;
    SSL_SESSION_free(copy);  // `ssl` holds its own reference
    return set;
}

void UpstreamSessionCache::forget(const std::string& key) {
    if (auto found = index_.find(key); found != index_.end()) {
        SSL_SESSION_free(found->second->second);
        order_.erase(found->second);
        index_.erase(found);
    }
}

}  // namespace tlsgate::tls
