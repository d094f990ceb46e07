#pragma once
// The installation's own certificate authority: created fresh per installation, stored as
// DIR/ca.pem and DIR/ca.key (PEM, key mode 0600), shown, exported for devices and imported.
// Beside it, the untrusted CA (DIR/untrusted-ca.pem, .key): it signs the stand-ins for upstream
// certificates that failed verification, and is never offered, exported or installed anywhere.
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "pki/openssl_handles.hpp"
#include "pki/token_key.hpp"

namespace tlsgate::pki {

enum class KeyType { ec_p256, rsa_3072 };

struct CertificateAuthority {
    // Set when `key` lives in a PKCS#11 token: the open session it signs through. Declared
    // before `key` so that the key handle is released first.
    std::shared_ptr<void> key_session;
    X509Ptr cert;  // signs the leaves
    EvpPkeyPtr key;
    // Issuing-CA mode (`tlsgate ca issue-intermediate`): the certificates above `cert`, ending at
    // the offline root that devices install (DIR/chain.pem). Empty when `cert` is the root.
    std::vector<X509Ptr> chain;

    // What devices install and what the portal offers: the root.
    X509* root() const { return chain.empty() ? cert.get() : chain.back().get(); }
};

inline constexpr const char* kCaCertFile = "ca.pem";
inline constexpr const char* kCaKeyFile = "ca.key";
inline constexpr const char* kCaChainFile = "chain.pem";
inline constexpr const char* kUntrustedCaCertFile = "untrusted-ca.pem";
inline constexpr const char* kUntrustedCaKeyFile = "untrusted-ca.key";
// Whoever finds it in a certificate viewer learns what it is for.
inline constexpr const char* kUntrustedCaSubject =
    "CN=tlsgate untrusted upstream - do not install,O=tlsgate interception";

// Which pair of files in the CA directory: the real CA's by default.
struct CaFileNames {
    const char* cert = kCaCertFile;
    const char* key = kCaKeyFile;
};
inline constexpr CaFileNames kUntrustedCaFiles{kUntrustedCaCertFile, kUntrustedCaKeyFile};

// subject: "CN=...,O=..." (comma-separated RDNs, most specific first as in RFC 4514, so the
// certificate stores them in reverse and summarize() prints the same string back; "\," escapes a
// comma, "\\" a backslash). Attribute types: CN O OU C ST L DC emailAddress serialNumber street
// (short or long names, any case). Root: basicConstraints critical CA:TRUE pathlen:0; keyUsage
// critical keyCertSign+cRLSign; SKI and AKI; random 128-bit serial; valid from one hour ago for
// `validity_days` (1..36500). `path_length` 1 makes an offline root that may sign an issuing CA.
Result<CertificateAuthority> create_ca(const std::string& subject, KeyType key_type,
                                       int validity_days = 3650, int path_length = 0);
// The same root for a key that already exists in a PKCS#11 token: the token signs the certificate.
Result<CertificateAuthority> create_ca_in_token(const std::string& subject, TokenKey key,
                                                int validity_days = 3650, int path_length = 0);
// A short-lived issuing CA signed by the offline `root` (which must allow a CA below it): a fresh
// P-256 key, CA:TRUE pathlen:0, valid for `validity_days` (1..3650) but never past the root. Its
// chain holds the root, so a stolen online key is worthless once the issuing CA expires.
Result<CertificateAuthority> issue_intermediate(const CertificateAuthority& root,
                                                const std::string& subject, int validity_days);
// Writes ca.pem (0644) and ca.key (0600, unencrypted PKCS#8, created exclusively), or the pair
// `files` names (a key in a token is not written: only the certificate, and `force` removes a
// stale ca.key); for the real CA also chain.pem when it has a chain (and removes a stale one
// when `force` replaces an issuing CA with a root). Refuses when either exists ("... exists; use
// --force"), unless `force`: then both are written to temporary files and renamed over the old
// ones. Creates `dir` (0700) if missing.
Result<void> save_ca(const CertificateAuthority& ca, const std::filesystem::path& dir, bool force,
                     CaFileNames files = {});
Result<CertificateAuthority> load_ca(const std::filesystem::path& dir, CaFileNames files = {});
// The CA certificate (and chain) from `dir` with its key from a PKCS#11 token; ca.key is not read.
Result<CertificateAuthority> load_ca_with_token_key(const std::filesystem::path& dir,
                                                    const TokenKeySpec& token);
// The certificates only (ca.pem and chain.pem), for showing and exporting: no key is read.
Result<CertificateAuthority> load_ca_certificates(const std::filesystem::path& dir);
// Reads a CA certificate and key from any files (PEM or DER; encrypted keys are refused rather than
// prompting), checks the key matches and the certificate is a CA (basicConstraints CA:TRUE,
// keyCertSign when keyUsage is present). Errors name the file.
Result<CertificateAuthority> read_ca_files(const std::filesystem::path& cert_file,
                                           const std::filesystem::path& key_file);
// A warning to show (not an error) when group or other have any access to the key file; nullopt
// when the mode is 0600 or tighter, or the file cannot be examined (reading it reports that).
std::optional<std::string> key_file_permission_warning(const std::filesystem::path& key_file);

struct CertificateSummary {
    std::string subject;  // one line, RFC 2253 order
    std::string issuer;
    std::string not_before;  // "2026-11-22T15:33:36Z"
    std::string not_after;
    std::string sha256_fingerprint;  // upper-case hex with colons, like openssl x509 -fingerprint
    std::string spki_sha256;         // lower-case hex, no colons (as FACTS.md and browsers list)
};
CertificateSummary summarize(X509* cert);
// A name on one line, RFC 2253 order with UTF-8 kept readable (what summarize() uses).
std::string one_line_name(const X509_NAME* name);

enum class ExportFormat { pem, der, p12 };
// The certificate only, never the key. p12 is a certificate-only PKCS#12 with an empty password
// (what Android and Windows import).
Result<std::string> export_certificate(X509* cert, ExportFormat format);

std::string sha256_fingerprint_hex(X509* cert);  // lower-case hex, no colons
std::string spki_sha256_hex(X509* cert);
std::string format_time_utc(std::time_t when);  // "2026-11-22T15:33:36Z"
Result<std::time_t> asn1_time_to_time_t(const ASN1_TIME* time);

}  // namespace tlsgate::pki
