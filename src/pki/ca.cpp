#include "pki/ca.hpp"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/text.hpp"
#include "pki/x509_build.hpp"

namespace tlsgate::pki {
namespace {

namespace fs = std::filesystem;

using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, OpenSslDeleter<X509_NAME_free>>;
using Pkcs12Ptr = std::unique_ptr<PKCS12, OpenSslDeleter<PKCS12_free>>;
using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSslDeleter<BASIC_CONSTRAINTS_free>>;

struct X509StackDeleter {
    void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

Error openssl_failure(const std::string& what) {
    return make_error(what + ": " + last_openssl_error());
}

std::string system_error_text(int error_number) {
    return std::generic_category().message(error_number);
}

// ---- Subject parsing -------------------------------------------------------------------------

struct SubjectAttribute {
    int nid;
    std::string value;
};

// The attribute types a CA subject plausibly needs; anything else is more likely a typo than an
// intent, so it is refused instead of silently accepted as some unrelated OID.
constexpr std::array kSubjectAttributeNids = {
    NID_commonName,      NID_organizationName,    NID_organizationalUnitName,
    NID_countryName,     NID_stateOrProvinceName, NID_localityName,
    NID_domainComponent, NID_pkcs9_emailAddress,  NID_serialNumber,
    NID_streetAddress,
};

int attribute_nid(std::string_view type) {
    for (int nid : kSubjectAttributeNids) {
        if (equals_ignoring_case(type, OBJ_nid2sn(nid)) ||
            equals_ignoring_case(type, OBJ_nid2ln(nid))) {
            return nid;
        }
    }
    return NID_undef;
}

bool is_space(char c) {
    return c == ' ' || c == '\t';
}

Result<SubjectAttribute> parse_attribute(std::string_view type, std::string value,
                                         std::string_view subject) {
    while (!type.empty() && is_space(type.front())) {
        type.remove_prefix(1);
    }
    while (!type.empty() && is_space(type.back())) {
        type.remove_suffix(1);
    }
    if (type.empty()) {
        return make_error("subject \"" + std::string(subject) +
                          "\": an attribute has no type (expected TYPE=value)");
    }
    const int nid = attribute_nid(type);
    if (nid == NID_undef) {
        return make_error("subject \"" + std::string(subject) + "\": unknown attribute type \"" +
                          std::string(type) +
                          "\" (use CN, O, OU, C, ST, L, DC, emailAddress, serialNumber, street)");
    }
    if (value.empty()) {
        return make_error("subject \"" + std::string(subject) + "\": " + std::string(type) +
                          " has an empty value");
    }
    return SubjectAttribute{nid, std::move(value)};
}

// "CN=Example\, Inc.,O=Home" -> [{CN, "Example, Inc."}, {O, "Home"}], in the order written.
Result<std::vector<SubjectAttribute>> parse_subject_attributes(std::string_view subject) {
    std::vector<SubjectAttribute> attributes;
    std::string type;
    std::string value;
    bool in_value = false;
    // Unescaped spaces around a value are layout, escaped ones are content.
    std::size_t value_kept_length = 0;
    auto finish_attribute = [&]() -> Result<void> {
        if (!in_value) {
            return make_error("subject \"" + std::string(subject) + "\": \"" + type +
                              "\" is missing '=' (expected TYPE=value)");
        }
        value.resize(value_kept_length);
        auto attribute = parse_attribute(type, std::move(value), subject);
        if (!attribute) {
            return make_error(attribute.error());
        }
        attributes.push_back(std::move(*attribute));
        type.clear();
        value.clear();
        value_kept_length = 0;
        in_value = false;
        return {};
    };
    for (std::size_t i = 0; i < subject.size(); ++i) {
        const char c = subject[i];
        if (c == '\\') {
            if (i + 1 == subject.size()) {
                return make_error("subject \"" + std::string(subject) + "\" ends with a lone '\\'");
            }
            const char escaped = subject[++i];
            if (in_value) {
                value.push_back(escaped);
                value_kept_length = value.size();
            } else {
                type.push_back(escaped);
            }
        } else if (c == ',') {
            if (auto finished = finish_attribute(); !finished) {
                return make_error(finished.error());
            }
        } else if (c == '=' && !in_value) {
            in_value = true;
        } else if (in_value) {
            if (value.empty() && is_space(c)) {
                continue;
            }
            value.push_back(c);
            if (!is_space(c)) {
                value_kept_length = value.size();
            }
        } else {
            type.push_back(c);
        }
    }
    if (!type.empty() || in_value) {
        if (auto finished = finish_attribute(); !finished) {
            return make_error(finished.error());
        }
    } else if (!attributes.empty()) {
        return make_error("subject \"" + std::string(subject) + "\" ends with ','");
    }
    if (attributes.empty()) {
        return make_error("the CA subject is empty (expected e.g. \"CN=tlsgate CA,O=Home\")");
    }
    return attributes;
}

Result<X509NamePtr> parse_subject(std::string_view subject) {
    auto attributes = parse_subject_attributes(subject);
    if (!attributes) {
        return make_error(attributes.error());
    }
    X509NamePtr name(X509_NAME_new());
    if (!name) {
        return openssl_failure("cannot allocate a name");
    }
    // RFC 4514 writes the most specific RDN first; the certificate stores the least specific first.
    for (auto it = attributes->rbegin(); it != attributes->rend(); ++it) {
        const auto* bytes = reinterpret_cast<const unsigned char*>(it->value.data());
        if (X509_NAME_add_entry_by_NID(name.get(), it->nid, MBSTRING_UTF8, bytes,
                                       static_cast<int>(it->value.size()), -1, 0) != 1) {
            return openssl_failure(std::string("subject attribute ") + OBJ_nid2sn(it->nid) + "=" +
                                   it->value + " is not acceptable");
        }
    }
    return name;
}

// ---- Keys and serials ------------------------------------------------------------------------

Result<EvpPkeyPtr> generate_ca_key(KeyType key_type) {
    EvpPkeyPtr key(key_type == KeyType::ec_p256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(3072));
    if (!key) {
        return openssl_failure("cannot generate the CA key");
    }
    return key;
}

Result<std::array<std::uint8_t, 16>> random_serial_bytes() {
    std::array<std::uint8_t, 16> serial{};
    if (RAND_bytes(serial.data(), static_cast<int>(serial.size())) != 1) {
        return openssl_failure("cannot draw a random serial number");
    }
    return serial;
}

// ---- Files -----------------------------------------------------------------------------------

Result<std::string> read_whole_file(const fs::path& path, const char* what) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return make_error("cannot open " + std::string(what) + " " + path.string() + ": " +
                          system_error_text(errno));
    }
    std::string content;
    std::array<char, 8192> buffer;
    for (;;) {
        const ssize_t count = ::read(fd, buffer.data(), buffer.size());
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count < 0) {
            const int error_number = errno;
            ::close(fd);
            OPENSSL_cleanse(content.data(), content.size());
            return make_error("cannot read " + std::string(what) + " " + path.string() + ": " +
                              system_error_text(error_number));
        }
        if (count == 0) {
            break;
        }
        content.append(buffer.data(), static_cast<std::size_t>(count));
    }
    ::close(fd);
    OPENSSL_cleanse(buffer.data(), buffer.size());
    return content;
}

Result<void> write_all(int fd, std::string_view bytes, const fs::path& path) {
    while (!bytes.empty()) {
        const ssize_t count = ::write(fd, bytes.data(), bytes.size());
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count < 0) {
            return make_error("cannot write " + path.string() + ": " + system_error_text(errno));
        }
        bytes.remove_prefix(static_cast<std::size_t>(count));
    }
    return {};
}

// Fills an open file, sets its exact mode (the umask may have narrowed it) and makes it durable.
Result<void> fill_file(int fd, std::string_view bytes, mode_t mode, const fs::path& path) {
    if (::fchmod(fd, mode) != 0) {
        return make_error("cannot set the mode of " + path.string() + ": " +
                          system_error_text(errno));
    }
    if (auto written = write_all(fd, bytes, path); !written) {
        return written;
    }
    if (::fsync(fd) != 0) {
        return make_error("cannot sync " + path.string() + ": " + system_error_text(errno));
    }
    return {};
}

Error already_exists(const fs::path& path) {
    return make_error(path.string() + " exists; use --force to overwrite it");
}

// Creates `path` only if it does not exist yet (O_EXCL), so an existing CA is never clobbered.
Result<void> write_new_file(const fs::path& path, std::string_view bytes, mode_t mode) {
    const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        if (errno == EEXIST) {
            return already_exists(path);
        }
        return make_error("cannot create " + path.string() + ": " + system_error_text(errno));
    }
    auto filled = fill_file(fd, bytes, mode, path);
    ::close(fd);
    if (!filled) {
        ::unlink(path.c_str());
    }
    return filled;
}

// A file written next to its final name, to be renamed over it: readers never see half a file
// and a key never exists, even briefly, with a wider mode than 0600.
class TemporaryFile {
public:
    TemporaryFile() = default;
    TemporaryFile(const TemporaryFile&) = delete;
    TemporaryFile& operator=(const TemporaryFile&) = delete;
    ~TemporaryFile() {
        if (!path_.empty()) {
            ::unlink(path_.c_str());
        }
    }

    Result<void> create(const fs::path& final_path, std::string_view bytes, mode_t mode) {
        std::string pattern =
            (final_path.parent_path() / ("." + final_path.filename().string() + ".tmp.XXXXXX"))
                .string();
        const int fd = ::mkstemp(pattern.data());  // mode 0600 from the start
        if (fd < 0) {
            return make_error("cannot create a temporary file next to " + final_path.string() +
                              ": " + system_error_text(errno));
        }
        path_ = pattern;
        auto filled = fill_file(fd, bytes, mode, final_path);
        ::close(fd);
        return filled;
    }

    Result<void> rename_to(const fs::path& final_path) {
        if (::rename(path_.c_str(), final_path.c_str()) != 0) {
            return make_error("cannot replace " + final_path.string() + ": " +
                              system_error_text(errno));
        }
        path_.clear();
        return {};
    }

private:
    fs::path path_;
};

void sync_directory(const fs::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);  // best effort: the files themselves are already synced
        ::close(fd);
    }
}

Result<void> ensure_directory(const fs::path& dir) {
    std::error_code error;
    if (fs::is_directory(dir, error)) {
        return {};
    }
    if (fs::exists(dir, error)) {
        return make_error(dir.string() + " exists and is not a directory");
    }
    if (dir.has_parent_path()) {
        fs::create_directories(dir.parent_path(), error);
        if (error) {
            return make_error("cannot create " + dir.parent_path().string() + ": " +
                              error.message());
        }
    }
    // 0700: the directory holds the CA key.
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return make_error("cannot create " + dir.string() + ": " + system_error_text(errno));
    }
    return {};
}

bool path_exists(const fs::path& path) {
    struct stat status;
    return ::lstat(path.c_str(), &status) == 0;
}

// The key as unencrypted PKCS#8 PEM, in a BIO that wipes its memory when freed.
Result<BioPtr> private_key_pem(EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_secmem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        return openssl_failure("cannot encode the CA key");
    }
    return bio;
}

std::string_view bio_contents(BIO* bio) {
    char* data = nullptr;
    const long length = BIO_get_mem_data(bio, &data);
    return length > 0 ? std::string_view(data, static_cast<std::size_t>(length))
                      : std::string_view();
}

Result<std::string> certificate_pem(X509* cert) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
        return openssl_failure("cannot encode the certificate as PEM");
    }
    return std::string(bio_contents(bio.get()));
}

// Never prompt on a terminal for a pass phrase: the service runs unattended.
int refuse_pass_phrase(char*, int, int, void*) {
    return -1;
}

bool looks_like_pem(std::string_view content) {
    return content.find("-----BEGIN ") != std::string_view::npos;
}

Result<X509Ptr> parse_certificate(const std::string& content, const fs::path& path) {
    X509Ptr cert;
    if (looks_like_pem(content)) {
        BioPtr bio(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
        if (bio) {
            cert.reset(PEM_read_bio_X509(bio.get(), nullptr, refuse_pass_phrase, nullptr));
        }
    } else {
        const auto* cursor = reinterpret_cast<const unsigned char*>(content.data());
        cert.reset(d2i_X509(nullptr, &cursor, static_cast<long>(content.size())));
    }
    if (!cert) {
        return openssl_failure("no certificate could be read from " + path.string());
    }
    return cert;
}

Result<EvpPkeyPtr> parse_private_key(const std::string& content, const fs::path& path) {
    EvpPkeyPtr key;
    if (looks_like_pem(content)) {
        if (content.find("ENCRYPTED") != std::string::npos) {
            return make_error(path.string() +
                              " holds an encrypted private key, which is not supported; decrypt "
                              "it first (openssl pkey -in " +
                              path.string() + " -out plain.key)");
        }
        BioPtr bio(BIO_new_mem_buf(content.data(), static_cast<int>(content.size())));
        if (bio) {
            key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_pass_phrase, nullptr));
        }
    } else {
        const auto* cursor = reinterpret_cast<const unsigned char*>(content.data());
        key.reset(d2i_AutoPrivateKey(nullptr, &cursor, static_cast<long>(content.size())));
    }
    if (!key) {
        return openssl_failure("no private key could be read from " + path.string());
    }
    return key;
}

Result<void> check_is_ca(X509* cert, const fs::path& path) {
    int critical = -1;
    BasicConstraintsPtr constraints(static_cast<BASIC_CONSTRAINTS*>(
        X509_get_ext_d2i(cert, NID_basic_constraints, &critical, nullptr)));
    if (!constraints || constraints->ca == 0) {
        ERR_clear_error();
        return make_error("the certificate in " + path.string() +
                          " is not a CA certificate (basicConstraints CA:TRUE is missing)");
    }
    const std::uint32_t flags = X509_get_extension_flags(cert);
    if ((flags & EXFLAG_INVALID) != 0) {
        return make_error("the certificate in " + path.string() + " has malformed extensions");
    }
    if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) {
        return make_error("the certificate in " + path.string() +
                          " may not sign certificates (keyUsage lacks keyCertSign)");
    }
    return {};
}

// OpenSSL 3.0 decodes a certificate's extensions lazily, on first use, into a cache it can
// rebuild (freeing the old values) when two threads get there at once. The CA certificate is
// shared by every worker, so fill the cache while it is still ours alone.
void warm_extension_cache(X509* cert) {
    X509_check_purpose(cert, -1, 0);
    ERR_clear_error();
}

std::string hex(const unsigned char* bytes, std::size_t length, bool upper_with_colons) {
    static constexpr char kLower[] = "0123456789abcdef";
    static constexpr char kUpper[] = "0123456789ABCDEF";
    const char* digits = upper_with_colons ? kUpper : kLower;
    std::string text;
    text.reserve(length * 3);
    for (std::size_t i = 0; i < length; ++i) {
        if (upper_with_colons && i > 0) {
            text.push_back(':');
        }
        text.push_back(digits[bytes[i] >> 4]);
        text.push_back(digits[bytes[i] & 0x0f]);
    }
    return text;
}

std::string name_on_one_line(const X509_NAME* name) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    // RFC 2253, but UTF-8 kept as is rather than escaped byte by byte, so names read naturally.
    if (!bio ||
        X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        ERR_clear_error();
        return {};
    }
    return std::string(bio_contents(bio.get()));
}

std::string time_text(const ASN1_TIME* time) {
    auto seconds = asn1_time_to_time_t(time);
    return seconds ? format_time_utc(*seconds) : std::string("(invalid time)");
}

}  // namespace

std::string one_line_name(const X509_NAME* name) {
    return name_on_one_line(name);
}

namespace {

// The CA profile every tlsgate CA certificate has (root or issuing): v3, random serial, the
// validity given, basicConstraints critical CA:TRUE with `path_length`, keyUsage critical
// keyCertSign+cRLSign, SKI and AKI; then `signer` signs it with SHA-256.
Result<void> fill_and_sign_ca(X509* cert, const std::array<std::uint8_t, 16>& serial,
                              std::time_t not_before, std::time_t not_after, int path_length,
                              const ASN1_OCTET_STRING* subject_key_id,
                              const ASN1_OCTET_STRING* authority_key_id, EVP_PKEY* signer) {
    using namespace detail;
    Result<void> step = set_version_and_serial(cert, serial);
    if (step) {
        step = set_validity(cert, not_before, not_after);
    }
    if (step) {
        step = add_basic_constraints(cert, true, path_length);
    }
    if (step) {
        step = add_key_usage(cert, {5 /* keyCertSign */, 6 /* cRLSign */});
    }
    if (step) {
        step = add_subject_key_id(cert, subject_key_id);
    }
    if (step) {
        step = add_authority_key_id(cert, authority_key_id);
    }
    if (step) {
        step = sign_sha256(cert, signer);
    }
    return step;
}

// A self-signed root for `key`, which may live in a token (then the token signs).
Result<CertificateAuthority> self_signed_ca(const std::string& subject, EvpPkeyPtr key,
                                            std::shared_ptr<void> key_session, int validity_days,
                                            int path_length) {
    if (validity_days < 1 || validity_days > 36500) {
        return make_error("CA validity must be 1..36500 days, not " +
                          std::to_string(validity_days));
    }
    auto name = parse_subject(subject);
    if (!name) {
        return make_error(name.error());
    }
    auto serial = random_serial_bytes();
    if (!serial) {
        return make_error(serial.error());
    }
    X509Ptr cert(X509_new());
    if (!cert) {
        return openssl_failure("cannot allocate a certificate");
    }
    const std::time_t now = std::time(nullptr);
    // One hour of slack so clients with a slightly slow clock accept the CA at once.
    const std::time_t not_before = now - 3600;
    const std::time_t not_after = now + static_cast<std::time_t>(validity_days) * 24 * 3600;
    if (X509_set_subject_name(cert.get(), name->get()) != 1 ||
        X509_set_issuer_name(cert.get(), name->get()) != 1 ||
        X509_set_pubkey(cert.get(), key.get()) != 1) {
        return openssl_failure("cannot fill in the CA certificate");
    }
    using namespace detail;
    auto key_id = key_identifier(cert.get());
    if (!key_id) {
        return make_error(key_id.error());
    }
    const Result<void> step =
        fill_and_sign_ca(cert.get(), *serial, not_before, not_after, path_length, key_id->get(),
                         key_id->get(), key.get());
    if (!step) {
        return make_error(step.error());
    }
    warm_extension_cache(cert.get());
    return CertificateAuthority{
        .key_session = std::move(key_session), .cert = std::move(cert), .key = std::move(key)};
}

}  // namespace

Result<CertificateAuthority> create_ca(const std::string& subject, KeyType key_type,
                                       int validity_days, int path_length) {
    auto key = generate_ca_key(key_type);
    if (!key) {
        return make_error(key.error());
    }
    return self_signed_ca(subject, std::move(*key), nullptr, validity_days, path_length);
}

Result<CertificateAuthority> create_ca_in_token(const std::string& subject, TokenKey key,
                                                int validity_days, int path_length) {
    return self_signed_ca(subject, std::move(key.key), std::move(key.session), validity_days,
                          path_length);
}

Result<CertificateAuthority> issue_intermediate(const CertificateAuthority& root,
                                                const std::string& subject, int validity_days) {
    if (validity_days < 1 || validity_days > 3650) {
        return make_error("issuing CA validity must be 1..3650 days, not " +
                          std::to_string(validity_days));
    }
    if (!root.chain.empty()) {
        return make_error("the signing CA is itself an issuing CA: sign with the offline root");
    }
    if (X509_get_pathlen(root.cert.get()) == 0) {
        return make_error(
            "the root allows no CA below it (pathlen:0); create the offline root with "
            "`tlsgate ca init --offline-root`");
    }
    auto name = parse_subject(subject);
    if (!name) {
        return make_error(name.error());
    }
    auto key = generate_ca_key(KeyType::ec_p256);
    if (!key) {
        return make_error(key.error());
    }
    auto serial = random_serial_bytes();
    if (!serial) {
        return make_error(serial.error());
    }
    auto root_not_after = asn1_time_to_time_t(X509_get0_notAfter(root.cert.get()));
    if (!root_not_after) {
        return make_error(root_not_after.error());
    }
    const std::time_t now = std::time(nullptr);
    const std::time_t not_before = now - 3600;
    // Never valid past the root: a chain is only as long-lived as its shortest link.
    const std::time_t not_after =
        std::min(*root_not_after, now + static_cast<std::time_t>(validity_days) * 24 * 3600);
    if (not_after <= now) {
        return make_error("the root has expired");
    }
    X509Ptr cert(X509_new());
    if (!cert || X509_set_subject_name(cert.get(), name->get()) != 1 ||
        X509_set_issuer_name(cert.get(), X509_get_subject_name(root.cert.get())) != 1 ||
        X509_set_pubkey(cert.get(), key->get()) != 1) {
        return openssl_failure("cannot fill in the issuing CA certificate");
    }
    using namespace detail;
    auto key_id = key_identifier(cert.get());
    auto root_key_id = key_identifier(root.cert.get());
    if (!key_id || !root_key_id) {
        return make_error(!key_id ? key_id.error() : root_key_id.error());
    }
    const Result<void> step = fill_and_sign_ca(cert.get(), *serial, not_before, not_after, 0,
                                               key_id->get(), root_key_id->get(), root.key.get());
    if (!step) {
        return make_error(step.error());
    }
    warm_extension_cache(cert.get());
    X509_up_ref(root.cert.get());
    std::vector<X509Ptr> chain;
    chain.emplace_back(root.cert.get());
    return CertificateAuthority{
        .cert = std::move(cert), .key = std::move(*key), .chain = std::move(chain)};
}

Result<void> save_ca(const CertificateAuthority& ca, const std::filesystem::path& dir, bool force,
                     CaFileNames files) {
    if (!ca.cert || !ca.key) {
        return make_error("save_ca: the CA has no certificate or no key");
    }
    const fs::path cert_path = dir / files.cert;
    const fs::path key_path = dir / files.key;
    // A key in a token stays there: only the certificate is written.
    const bool key_in_token = ca.key_session != nullptr;
    BioPtr key_pem;
    if (!key_in_token) {
        auto pem = private_key_pem(ca.key.get());
        if (!pem) {
            return make_error(pem.error());
        }
        key_pem = std::move(*pem);
    }
    auto cert_pem = certificate_pem(ca.cert.get());
    if (!cert_pem) {
        return make_error(cert_pem.error());
    }
    if (auto created = ensure_directory(dir); !created) {
        return created;
    }
    const bool real_ca = std::string_view(files.cert) == kCaCertFile;
    const fs::path chain_path = dir / kCaChainFile;
    std::string chain_pem;
    for (const auto& above : ca.chain) {
        auto pem = certificate_pem(above.get());
        if (!pem) {
            return make_error(pem.error());
        }
        chain_pem += *pem;
    }
    if (!real_ca && !ca.chain.empty()) {
        return make_error("save_ca: only the real CA can have a chain");
    }
    if (!force) {
        for (const fs::path& path : {cert_path, key_path, chain_path}) {
            if (path == chain_path && (!real_ca || ca.chain.empty())) {
                continue;
            }
            if (path_exists(path)) {
                return already_exists(path);
            }
        }
        if (!key_in_token) {
            if (auto written = write_new_file(key_path, bio_contents(key_pem.get()), 0600);
                !written) {
                return written;
            }
        }
        if (auto written = write_new_file(cert_path, *cert_pem, 0644); !written) {
            // Leave no orphan key behind for a CA that was never saved.
            if (!key_in_token) {
                ::unlink(key_path.c_str());
            }
            return written;
        }
    } else {
        // Both files are complete on disk before either replaces its predecessor, so a failure
        // cannot leave a new key next to an old certificate.
        TemporaryFile key_file;
        TemporaryFile cert_file;
        if (!key_in_token) {
            if (auto written = key_file.create(key_path, bio_contents(key_pem.get()), 0600);
                !written) {
                return written;
            }
        }
        if (auto written = cert_file.create(cert_path, *cert_pem, 0644); !written) {
            return written;
        }
        if (key_in_token) {
            ::unlink(key_path.c_str());  // an old file key would no longer match the certificate
        } else if (auto renamed = key_file.rename_to(key_path); !renamed) {
            return renamed;
        }
        if (auto renamed = cert_file.rename_to(cert_path); !renamed) {
            return renamed;
        }
    }
    if (real_ca && ca.chain.empty() && force) {
        ::unlink(chain_path.c_str());  // a root replacing an issuing CA
    } else if (real_ca && !ca.chain.empty()) {
        TemporaryFile chain_file;
        if (auto written = chain_file.create(chain_path, chain_pem, 0644); !written) {
            return written;
        }
        if (auto renamed = chain_file.rename_to(chain_path); !renamed) {
            return renamed;
        }
    }
    sync_directory(dir);
    return {};
}

namespace {

// Adds DIR/chain.pem, when there is one, above the real CA's certificate.
Result<CertificateAuthority> with_chain(Result<CertificateAuthority> ca, const fs::path& dir) {
    const fs::path chain_path = dir / kCaChainFile;
    if (!ca || !path_exists(chain_path)) {
        return ca;
    }
    auto content = read_whole_file(chain_path, "CA chain");
    if (!content) {
        return make_error(content.error());
    }
    BioPtr bio(BIO_new_mem_buf(content->data(), static_cast<int>(content->size())));
    while (X509* above = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        ca->chain.emplace_back(above);
    }
    ERR_clear_error();  // the end of the PEM stream
    X509* below = ca->cert.get();
    for (const auto& above : ca->chain) {
        if (X509_check_issued(above.get(), below) != X509_V_OK) {
            return make_error(chain_path.string() + " does not chain " +
                              one_line_name(X509_get_subject_name(below)) + " to its issuer");
        }
        below = above.get();
    }
    if (ca->chain.empty()) {
        return make_error(chain_path.string() + " holds no certificate");
    }
    return ca;
}

Result<CertificateAuthority> read_ca_certificate(const fs::path& cert_file) {
    auto content = read_whole_file(cert_file, "CA certificate");
    if (!content) {
        return make_error(content.error());
    }
    auto cert = parse_certificate(*content, cert_file);
    if (!cert) {
        return make_error(cert.error());
    }
    warm_extension_cache(cert->get());
    if (auto is_ca = check_is_ca(cert->get(), cert_file); !is_ca) {
        return make_error(is_ca.error());
    }
    return CertificateAuthority{.cert = std::move(*cert)};
}

}  // namespace

Result<CertificateAuthority> load_ca(const std::filesystem::path& dir, CaFileNames files) {
    auto ca = read_ca_files(dir / files.cert, dir / files.key);
    if (std::string_view(files.cert) != kCaCertFile) {
        return ca;
    }
    return with_chain(std::move(ca), dir);
}

Result<CertificateAuthority> load_ca_with_token_key(const std::filesystem::path& dir,
                                                    const TokenKeySpec& token) {
    const fs::path cert_file = dir / kCaCertFile;
    auto ca = read_ca_certificate(cert_file);
    if (!ca) {
        return ca;
    }
    auto key = load_token_key(token);
    if (!key) {
        return make_error(key.error());
    }
    if (X509_check_private_key(ca->cert.get(), key->key.get()) != 1) {
        ERR_clear_error();
        return make_error("the token key " + redacted_pkcs11_uri(token.uri) +
                          " does not match the certificate in " + cert_file.string());
    }
    ca->key_session = std::move(key->session);
    ca->key = std::move(key->key);
    return with_chain(std::move(ca), dir);
}

Result<CertificateAuthority> load_ca_certificates(const std::filesystem::path& dir) {
    return with_chain(read_ca_certificate(dir / kCaCertFile), dir);
}

Result<CertificateAuthority> read_ca_files(const std::filesystem::path& cert_file,
                                           const std::filesystem::path& key_file) {
    auto ca = read_ca_certificate(cert_file);
    if (!ca) {
        return ca;
    }
    auto key_content = read_whole_file(key_file, "CA key");
    if (!key_content) {
        return make_error(key_content.error());
    }
    auto key = parse_private_key(*key_content, key_file);
    OPENSSL_cleanse(key_content->data(), key_content->size());
    if (!key) {
        return make_error(key.error());
    }
    if (X509_check_private_key(ca->cert.get(), key->get()) != 1) {
        ERR_clear_error();
        return make_error("the key in " + key_file.string() +
                          " does not match the certificate in " + cert_file.string());
    }
    ca->key = std::move(*key);
    return ca;
}

std::optional<std::string> key_file_permission_warning(const std::filesystem::path& key_file) {
    struct stat status;
    if (::stat(key_file.c_str(), &status) != 0) {
        return std::nullopt;
    }
    const mode_t permissions = status.st_mode & 07777;
    if ((permissions & 077) == 0) {
        return std::nullopt;
    }
    char mode_text[8];
    std::snprintf(mode_text, sizeof mode_text, "%04o", static_cast<unsigned>(permissions));
    return key_file.string() + " has mode " + mode_text +
           ": other users may read the CA key; run chmod 600 " + key_file.string();
}

CertificateSummary summarize(X509* cert) {
    CertificateSummary summary;
    summary.subject = name_on_one_line(X509_get_subject_name(cert));
    summary.issuer = name_on_one_line(X509_get_issuer_name(cert));
    summary.not_before = time_text(X509_get0_notBefore(cert));
    summary.not_after = time_text(X509_get0_notAfter(cert));
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (X509_digest(cert, EVP_sha256(), digest, &length) == 1) {
        summary.sha256_fingerprint = hex(digest, length, true);
    } else {
        ERR_clear_error();
    }
    summary.spki_sha256 = spki_sha256_hex(cert);
    return summary;
}

Result<std::string> export_certificate(X509* cert, ExportFormat format) {
    if (cert == nullptr) {
        return make_error("export_certificate: no certificate");
    }
    switch (format) {
        case ExportFormat::pem:
            return certificate_pem(cert);
        case ExportFormat::der: {
            unsigned char* der = nullptr;
            const int length = i2d_X509(cert, &der);
            if (length <= 0) {
                return openssl_failure("cannot encode the certificate as DER");
            }
            std::string bytes(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
            OPENSSL_free(der);
            return bytes;
        }
        case ExportFormat::p12: {
            X509StackPtr certificates(sk_X509_new_null());
            if (!certificates || sk_X509_push(certificates.get(), cert) <= 0) {
                return openssl_failure("cannot build the PKCS#12 certificate list");
            }
            // No key, the certificate as a trusted "CA" entry, empty password. The certificate
            // bag is left unencrypted (nid_cert -1): a certificate is public, and older Android
            // and Windows importers reject AES/PBKDF2-encrypted bags.
            Pkcs12Ptr p12(
                PKCS12_create("", nullptr, nullptr, nullptr, certificates.get(), 0, -1, 0, 0, 0));
            if (!p12) {
                return openssl_failure("cannot build the PKCS#12 file");
            }
            unsigned char* der = nullptr;
            const int length = i2d_PKCS12(p12.get(), &der);
            if (length <= 0) {
                return openssl_failure("cannot encode the PKCS#12 file");
            }
            std::string bytes(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
            OPENSSL_free(der);
            return bytes;
        }
    }
    return make_error("export_certificate: unknown format");
}

std::string sha256_fingerprint_hex(X509* cert) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (X509_digest(cert, EVP_sha256(), digest, &length) != 1) {
        ERR_clear_error();
        return {};
    }
    return hex(digest, length, false);
}

std::string spki_sha256_hex(X509* cert) {
    // The whole DER SubjectPublicKeyInfo (algorithm + key), as HPKP pins and browsers compute it.
    unsigned char* der = nullptr;
    const int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (length <= 0) {
        ERR_clear_error();
        return {};
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    const bool hashed = EVP_Digest(der, static_cast<std::size_t>(length), digest, &digest_length,
                                   EVP_sha256(), nullptr) == 1;
    OPENSSL_free(der);
    if (!hashed) {
        ERR_clear_error();
        return {};
    }
    return hex(digest, digest_length, false);
}

std::string format_time_utc(std::time_t when) {
    std::tm parts{};
    if (gmtime_r(&when, &parts) == nullptr) {
        return {};
    }
    char text[32];
    const std::size_t length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return std::string(text, length);
}

Result<std::time_t> asn1_time_to_time_t(const ASN1_TIME* time) {
    if (time == nullptr) {
        return make_error("no time given");
    }
    std::tm parts{};
    // ASN1_TIME_to_tm also validates the encoding (UTCTime or GeneralizedTime, 'Z' form).
    if (ASN1_TIME_to_tm(time, &parts) != 1) {
        return openssl_failure("malformed certificate time");
    }
    return timegm(&parts);
}

}  // namespace tlsgate::pki
