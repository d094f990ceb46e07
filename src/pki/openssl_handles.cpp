#include "pki/openssl_handles.hpp"

#include <openssl/err.h>

#include <array>

namespace tlsgate::pki {

std::string last_openssl_error() {
    const char* data = nullptr;
    int flags = 0;
    const unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags);
    if (code == 0) {
        ERR_clear_error();
        return "unknown OpenSSL error (no error queued)";
    }
    std::array<char, 256> text{};
    ERR_error_string_n(code, text.data(), text.size());
    std::string message = text.data();
    // The attached data often names the culprit (a file, an algorithm, a field).
    if (data != nullptr && *data != '\0' && (flags & ERR_TXT_STRING) != 0) {
        message += " (";
        message += data;
        message += ')';
    }
    // Later errors on the queue are consequences of the first; leave none behind to confuse the
    // next caller on this thread.
    ERR_clear_error();
    return message;
}

}  // namespace tlsgate::pki
