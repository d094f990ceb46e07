// The parts of the PKCS#11 key path that need no token; signing through SoftHSM2 is covered by
// tests/integration/test_pkcs11.py.
#include <gtest/gtest.h>

#include "pki/token_key.hpp"

namespace tlsgate::pki {
namespace {

TEST(TokenKey, RecognisesPkcs11Uris) {
    EXPECT_TRUE(is_pkcs11_uri("pkcs11:token=ca;object=key;type=private"));
    EXPECT_FALSE(is_pkcs11_uri("pkcs11:"));
    EXPECT_FALSE(is_pkcs11_uri("/etc/tlsgate/ca.key"));
    EXPECT_FALSE(is_pkcs11_uri("PKCS11:token=ca"));
}

TEST(TokenKey, RedactsThePinValueOnly) {
    EXPECT_EQ(redacted_pkcs11_uri("pkcs11:token=ca;object=k?pin-value=1234"),
              "pkcs11:token=ca;object=k?pin-value=***");
    EXPECT_EQ(redacted_pkcs11_uri("pkcs11:token=ca;pin-value=1234;object=k"),
              "pkcs11:token=ca;pin-value=***;object=k");
    EXPECT_EQ(redacted_pkcs11_uri("pkcs11:object=k?pin-value=1&module-path=/x.so"),
              "pkcs11:object=k?pin-value=***&module-path=/x.so");
    EXPECT_EQ(redacted_pkcs11_uri("pkcs11:token=ca;object=k?pin-source=file:/run/pin"),
              "pkcs11:token=ca;object=k?pin-source=file:/run/pin");
}

TEST(TokenKey, RefusesToGuessAPin) {
    auto loaded = load_token_key({.uri = "pkcs11:token=ca;object=k;type=private"});
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().find("needs a PIN"), std::string::npos) << loaded.error();
}

TEST(TokenKey, RefusesWhatIsNotAUri) {
    auto loaded = load_token_key({.uri = "/etc/ca.key", .pin_file = "/nonexistent"});
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().find("not a PKCS#11 URI"), std::string::npos) << loaded.error();
}

}  // namespace
}  // namespace tlsgate::pki
