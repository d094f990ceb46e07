#pragma once
// Owning handles for OpenSSL objects, so every early return frees what it allocated.
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace tlsgate::pki {

template <auto Free>
struct OpenSslDeleter {
    template <typename T>
    void operator()(T* pointer) const {
        Free(pointer);
    }
};

using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OpenSslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpenSslDeleter<SSL_free>>;

// The first error on OpenSSL's thread-local queue as text (and clears the queue).
std::string last_openssl_error();

}  // namespace tlsgate::pki
