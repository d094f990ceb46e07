#include "tls/key_log.hpp"

namespace tlsgate::tls {
namespace {

int sink_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

void log_line(const SSL* ssl, const char* line) {
    auto* sink = static_cast<KeyLogSink*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sink_index()));
    if (sink != nullptr && line != nullptr) {
        sink->write_line(line);
    }
}

}  // namespace

void enable_key_log(SSL_CTX* context, KeyLogSink* sink) {
    SSL_CTX_set_ex_data(context, sink_index(), sink);
    SSL_CTX_set_keylog_callback(context, sink != nullptr ? log_line : nullptr);
}

}  // namespace tlsgate::tls
