#pragma once
// Upstream TLS sessions, resumed per destination so a returning client costs one ECDHE on the
// upstream leg instead of a full handshake with chain verification. One cache per worker (its own
// SSL_CTX), touched only by that worker's thread.
#include <openssl/ssl.h>

#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>

namespace tlsgate::tls {

class UpstreamSessionCache {
public:
    explicit UpstreamSessionCache(std::size_t capacity) : capacity_(capacity) {}
    ~UpstreamSessionCache();
    UpstreamSessionCache(const UpstreamSessionCache&) = delete;
    UpstreamSessionCache& operator=(const UpstreamSessionCache&) = delete;

    // Makes `context` hand every new session of an SSL prepared by remember_as() to this cache.
    void attach(SSL_CTX* context);
    // The session key of this connection: the name verified, the SNI and the address, so a
    // session is only ever offered to the server it was verified for. `key` must outlive `ssl`.
    static void remember_as(SSL* ssl, const std::string* key);
    // Offers a cached session for `key` on `ssl`; true when one was set. The connection gets a
    // copy: OpenSSL marks the session a connection holds as not resumable in several benign cases
    // (freed without our close_notify, an SSL 3.0 rule TLS 1.1 dropped; seen during ordinary
    // relays too), which would spoil the cached one for every connection after it. The caller
    // forgets the key itself when the upstream leg fails with a TLS error.
    bool offer(SSL* ssl, const std::string& key);
    void forget(const std::string& key);
    std::size_t size() const { return index_.size(); }

private:
    static int on_new_session(SSL* ssl, SSL_SESSION* session);
    void store(const std::string& key, SSL_SESSION* session);

    using Entry = std::pair<std::string, SSL_SESSION*>;
    std::size_t capacity_;
    std::list<Entry> order_;  // most recent first
    std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace tlsgate::tls
