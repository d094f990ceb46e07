#pragma once
// Roots known to be used for TLS interception, by the SHA-256 of their SubjectPublicKeyInfo (the
// key, not the certificate: browsers distrust by key, so a re-issued certificate with the same
// key still matches). Built in: the entries below, each confirmed against the certificate
// Chromium keeps in net/data/ssl/blocklist/. Extendable from files and with the local tlsgate CA,
// so an operator's own gateway is recognised by name. The probe names them in what it observes;
// the gateway refuses an upstream chain that contains one.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"

namespace tlsgate::pki {

struct KnownRoot {
    std::string spki_sha256;  // 64 lower-case hex digits
    std::string name;
    std::string source;  // "built-in", a file name, or the local CA's certificate file
};

std::vector<KnownRoot> builtin_known_roots();

// "64 hex digits (colons allowed, any case)" -> lower-case hex without colons; nullopt otherwise.
std::optional<std::string> normalize_spki_hex(std::string_view text);

// Lines "HEX  NAME" (NAME optional, the rest of the line); blank lines and lines starting with
// '#' are skipped. `source` names the file in the entries and in errors ("FILE:LINE: ...").
Result<std::vector<KnownRoot>> parse_known_roots(std::string_view text, std::string_view source);

// The first certificate of a PEM or DER file.
Result<pki::X509Ptr> read_certificate_file(const std::filesystem::path& file);

class KnownRoots {
public:
    KnownRoots() = default;
    static KnownRoots with_builtins();

    // A later entry with the same SPKI replaces the earlier one (a file may rename a built-in).
    void add(KnownRoot root);
    Result<void> add_file(const std::filesystem::path& file);
    // Recognises `certificate` (the local tlsgate CA) by key and keeps it, so a chain whose
    // top certificate it signed can be completed and its root named even though servers never
    // send it.
    void add_certificate(X509* certificate, std::string name, std::string source);

    const KnownRoot* find(std::string_view spki_sha256) const;
    const std::vector<KnownRoot>& entries() const { return entries_; }
    const std::vector<pki::X509Ptr>& certificates() const { return certificates_; }

private:
    std::vector<KnownRoot> entries_;
    std::vector<pki::X509Ptr> certificates_;
};

}  // namespace tlsgate::pki
