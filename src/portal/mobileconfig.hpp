#pragma once
// The Apple configuration profile (.mobileconfig) that installs the tlsgate root on iPhone, iPad
// and macOS: an XML property list with one com.apple.security.root payload. Unsigned, so the
// device shows it as "Not Verified"; the person compares the fingerprint on the portal page.
#include <span>
#include <string>
#include <string_view>

namespace tlsgate::portal {

// RFC 4648 base64 with padding, on one line.
std::string base64_encode(std::span<const unsigned char> bytes);

// "XXXXXXXX-XXXX-4XXX-YXXX-XXXXXXXXXXXX" in upper case (as Apple writes them) from 16 given bytes,
// with the version and variant bits forced to those of a version 4 UUID. Callers pass bytes of
// the CA's hash so the profile keeps its UUIDs across downloads: a device then sees the same
// profile again rather than a second one.
std::string uuid_from_bytes(std::span<const unsigned char, 16> bytes);

// A complete profile. `ca_der` is the root certificate in DER; `display_name` and `organization`
// are shown by the device (operator text: escaped, control characters dropped, malformed UTF-8
// replaced); `payload_uuid` names the certificate payload, `profile_uuid` the profile, and the
// payload identifiers are derived from them.
std::string apple_mobileconfig(std::span<const unsigned char> ca_der, std::string_view display_name,
                               std::string_view organization, std::string_view payload_uuid,
                               std::string_view profile_uuid);

}  // namespace tlsgate::portal
