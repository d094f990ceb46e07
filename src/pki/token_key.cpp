#include "pki/token_key.hpp"

#include <openssl/err.h>
#include <openssl/ui.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "pki/ca.hpp"

// OpenSSL 3 marks the ENGINE API deprecated in favour of providers, but Debian 12 ships no
// PKCS#11 provider: libp11's engine (libengine-pkcs11-openssl) is the maintained way to reach a
// token there. The deprecated calls stay in this one file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <openssl/engine.h>

namespace tlsgate::pki {
namespace {

constexpr const char* kEngineId = "pkcs11";

// A functional engine reference: finished and freed together.
struct EngineSession {
    ENGINE* engine = nullptr;
    ~EngineSession() {
        if (engine != nullptr) {
            ENGINE_finish(engine);
            ENGINE_free(engine);
        }
    }
};

std::string engine_failure(const std::string& what) {
    return what + ": " + last_openssl_error();
}

bool uri_carries_pin(std::string_view uri) {
    return uri.find("pin-value=") != std::string_view::npos ||
           uri.find("pin-source=") != std::string_view::npos;
}

Result<std::string> read_pin_file(const std::string& path) {
    if (auto problem = key_file_permission_warning(path)) {
        return make_error("refusing the PKCS#11 PIN file: " + *problem);
    }
    std::ifstream file(path);
    if (!file) {
        return make_error("cannot read the PKCS#11 PIN file " + path);
    }
    std::string pin;
    std::getline(file, pin);
    while (!pin.empty() && (pin.back() == '\r' || pin.back() == ' ')) {
        pin.pop_back();
    }
    if (pin.empty()) {
        return make_error("the PKCS#11 PIN file " + path + " is empty");
    }
    return pin;
}

}  // namespace

bool is_pkcs11_uri(std::string_view text) {
    return text.size() > 7 && text.substr(0, 7) == "pkcs11:";
}

std::string redacted_pkcs11_uri(std::string_view uri) {
    constexpr std::string_view kPin = "pin-value=";
    const auto at = uri.find(kPin);
    if (at == std::string_view::npos) {
        return std::string(uri);
    }
    const auto value_end = uri.find_first_of(";&", at + kPin.size());
    std::string shown(uri.substr(0, at + kPin.size()));
    shown += "***";
    if (value_end != std::string_view::npos) {
        shown += uri.substr(value_end);
    }
    return shown;
}

Result<TokenKey> load_token_key(const TokenKeySpec& spec) {
    const std::string shown_uri = redacted_pkcs11_uri(spec.uri);
    if (!is_pkcs11_uri(spec.uri)) {
        return make_error("'" + shown_uri + "' is not a PKCS#11 URI (pkcs11:token=...;object=...)");
    }
    std::string pin;
    if (!spec.pin_file.empty()) {
        auto read = read_pin_file(spec.pin_file);
        if (!read) {
            return make_error(read.error());
        }
        pin = std::move(*read);
    } else if (!uri_carries_pin(spec.uri)) {
        return make_error(
            "the PKCS#11 key needs a PIN: give pkcs11_pin_file, or pin-source= in "
            "the URI");
    }

    auto session = std::make_shared<EngineSession>();
    // Loads libp11's engine from OpenSSL's engine directory on first use.
    session->engine = ENGINE_by_id(kEngineId);
    if (session->engine == nullptr) {
        return make_error(
            engine_failure("cannot load OpenSSL's pkcs11 engine (Debian package "
                           "libengine-pkcs11-openssl)"));
    }
    ENGINE_ctrl_cmd_string(session->engine, "QUIET", nullptr, 1);
    if (!spec.module.empty() &&
        ENGINE_ctrl_cmd_string(session->engine, "MODULE_PATH", spec.module.c_str(), 0) != 1) {
        const std::string error = engine_failure("cannot use the PKCS#11 module " + spec.module);
        ENGINE_free(std::exchange(session->engine, nullptr));
        return make_error(error);
    }
    if (ENGINE_init(session->engine) != 1) {
        const std::string error =
            engine_failure("cannot open the PKCS#11 module " +
                           (spec.module.empty() ? std::string("(p11-kit proxy)") : spec.module));
        ENGINE_free(std::exchange(session->engine, nullptr));
        return make_error(error);
    }
    if (!pin.empty() && ENGINE_ctrl_cmd_string(session->engine, "PIN", pin.c_str(), 0) != 1) {
        OPENSSL_cleanse(pin.data(), pin.size());
        return make_error(engine_failure("the pkcs11 engine refused the PIN"));
    }
    OPENSSL_cleanse(pin.data(), pin.size());
    // UI_null: a missing or wrong PIN fails here instead of prompting on a daemon's terminal.
    // (The engine API takes a mutable method it never changes.)
    auto* no_prompt = const_cast<UI_METHOD*>(UI_null());
    EvpPkeyPtr key(ENGINE_load_private_key(session->engine, spec.uri.c_str(), no_prompt, nullptr));
    if (!key) {
        return make_error(engine_failure("cannot find the private key " + shown_uri +
                                         " in the token (wrong URI or PIN?)"));
    }
    ERR_clear_error();  // libp11 leaves notes from the slots it searched
    return TokenKey{std::move(session), std::move(key)};
}

}  // namespace tlsgate::pki

#pragma GCC diagnostic pop
