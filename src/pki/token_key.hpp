#pragma once
// A CA key that stays in a PKCS#11 token (an HSM, a smart card, SoftHSM2): OpenSSL gets a key
// handle whose signatures are computed by the token, so the key itself never enters tlsgate's
// memory or disk.
#include <memory>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"

namespace tlsgate::pki {

// Where the token is and how to log in. `uri` is an RFC 7512 PKCS#11 URI naming the private key
// ("pkcs11:token=...;object=...;type=private"); it may carry the PIN itself (pin-value=,
// pin-source=file:). Otherwise `pin_file` holds it (one line; mode 0600 or tighter).
struct TokenKeySpec {
    std::string uri;
    std::string
        module;  // the token's PKCS#11 library; empty: p11-kit's proxy (every registered one)
    std::string pin_file;
};

struct TokenKey {
    // Keeps the PKCS#11 session open for as long as `key` signs through it; declared first so it
    // is released last.
    std::shared_ptr<void> session;
    EvpPkeyPtr key;
};

bool is_pkcs11_uri(std::string_view text);
// The URI as it may be logged: a pin-value attribute is replaced by "***".
std::string redacted_pkcs11_uri(std::string_view uri);

// Opens the token (through libp11's OpenSSL engine), logs in and finds the private key. Never
// prompts: without a PIN in the URI or a PIN file this is an error, because a wrong or empty PIN
// counts towards a real HSM's lockout.
Result<TokenKey> load_token_key(const TokenKeySpec& spec);

}  // namespace tlsgate::pki
