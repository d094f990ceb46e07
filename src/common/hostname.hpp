#pragma once
// Host names that come from the network (SNI, CONNECT authority, Host header) are validated and
// normalised once, before they reach a policy decision or a certificate (HAProxy's ssl_gencert
// lesson: never put unchecked bytes into a certificate).
#include <optional>
#include <string>
#include <string_view>

namespace tlsgate {

// Lower-cased, trailing dot removed. nullopt unless the name is a syntactically valid DNS name:
// 1..253 characters, labels of 1..63 letters, digits, '-' or '_' (seen in the wild), not starting
// or ending with '-'. IP literals are not host names (see IpAddress::parse).
std::optional<std::string> normalize_hostname(std::string_view name);

}  // namespace tlsgate
