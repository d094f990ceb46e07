#pragma once
// What OpenSSL's chain verification does not decide: checks on a verified upstream chain that a
// browser makes too, or that only an interceptor needs (never trusting its own CA upstream).
#include <openssl/ssl.h>

#include <optional>
#include <string>

#include "pki/known_roots.hpp"
#include "tls/contexts.hpp"

namespace tlsgate::tls {

struct ChainChecks {
    // tlsgate's own CA: a chain that ends there would launder its own forgeries.
    std::string own_ca_spki_sha256;
    // Keys known to be used for interception (the built-in list plus the operator's files).
    pki::KnownRoots interception_roots;
};

// The first reason to refuse a chain that OpenSSL verified: own_ca, known_interception_root, or
// revoked (a stapled OCSP response, signed by the issuer or its delegate, that says the leaf is
// revoked). `ssl` has completed a full handshake (a resumed one carries no chain and was checked
// when it was made). A missing, unparsable or unverifiable staple is not a reason: a server may
// omit it, so an attacker gains nothing from a bad one, and browsers treat it the same way.
std::optional<VerifyFailure> check_verified_chain(SSL* ssl, const ChainChecks& checks);

// The stapled OCSP response's verdict on the leaf, on its own (for the test of the above).
enum class StapledStatus { none, unusable, good, revoked, unknown };
StapledStatus stapled_status(SSL* ssl);

}  // namespace tlsgate::tls
