#pragma once
// SSLKEYLOGFILE for both legs: OpenSSL hands every secret line of every handshake on a context to
// the sink, so a capture of either side decrypts in Wireshark. Off unless configured: whoever can
// read that file can read the traffic.
#include <openssl/ssl.h>

#include <string_view>

namespace tlsgate::tls {

class KeyLogSink {
public:
    virtual ~KeyLogSink() = default;
    // One NSS key log line without its newline; called on the worker thread of the handshake.
    virtual void write_line(std::string_view line) = 0;
};

// The sink must outlive the context.
void enable_key_log(SSL_CTX* context, KeyLogSink* sink);

}  // namespace tlsgate::tls
