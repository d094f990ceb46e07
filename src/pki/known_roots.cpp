#include "pki/known_roots.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>

#include "common/text.hpp"
#include "pki/ca.hpp"

namespace tlsgate::pki {
namespace {

using BioPtr = std::unique_ptr<BIO, pki::OpenSslDeleter<BIO_free>>;

Result<std::string> read_file(const std::filesystem::path& file) {
    std::ifstream stream(file, std::ios::binary);
    if (!stream) {
        return make_error("cannot read " + file.string());
    }
    std::string text((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
    if (stream.bad()) {
        return make_error("cannot read " + file.string());
    }
    return text;
}

}  // namespace

std::vector<KnownRoot> builtin_known_roots() {
    // Each SPKI hash was recomputed from the certificate in Chromium's net/data/ssl/blocklist/
    // (file named by the certificate's SHA-256) and matches Chromium's
    // cert_verify_proc_blocklist.inc; the first two are also in FACTS.md section 1.
    return {
        {"b5ba8dd7f89564c2889d3d6453c84998c77824919b64ea0835aa62986591be50",
         "Qaznet Trust Network (Kazakhstan national interception, 2019)", "built-in"},
        {"8e12d0cb3b7df3ea2257579489fd8658c95603ea6cf4b73163a41eb7b7e93fee",
         "Information Security Certification Authority CA (ISCA, Kazakhstan national "
         "interception, 2020)",
         "built-in"},
        {"b13fa2e6131a888a01f3d62056fb0efbe999eb6b6e14927613e02ba8b8fb046e",
         "Information Security Certification Authority (ISCA, Kazakhstan national interception, "
         "2020)",
         "built-in"},
        {"4bb8f35ba1e126f8dde1b0c420625ed86dce61a7bddadbdea9aba578ff13145e",
         "Superfish, Inc. (adware root preinstalled on Lenovo laptops, 2015)", "built-in"},
        {"cdee9f3305572a677e1a6c82dc1e02a35b11cae6a684338c9f37fe1ac8daec23",
         "eDellRoot (preinstalled on Dell computers, private key public, 2015)", "built-in"},
        {"130ad4e0633521290531b6651f5759b0bc7bc656709ff8f365c2143b0389b6f6",
         "DSDTestProvider (installed by Dell System Detect, private key public, 2015)", "built-in"},
    };
}

std::optional<std::string> normalize_spki_hex(std::string_view text) {
    std::string hex;
    for (const char c : text) {
        if (c == ':') {
            continue;
        }
        if (!std::isxdigit(static_cast<unsigned char>(c))) {
            return std::nullopt;
        }
        hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    if (hex.size() != 64) {
        return std::nullopt;
    }
    return hex;
}

Result<std::vector<KnownRoot>> parse_known_roots(std::string_view text, std::string_view source) {
    std::vector<KnownRoot> roots;
    std::size_t line_number = 0;
    while (!text.empty()) {
        const auto end = text.find('\n');
        auto line = trim_ascii_space(text.substr(0, end));
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        ++line_number;
        if (line.empty() || line.front() == '#') {
            continue;
        }
        const auto space = line.find_first_of(" \t");
        const auto hex_text = line.substr(0, space);
        auto hex = normalize_spki_hex(hex_text);
        if (!hex) {
            return make_error(std::string(source) + ":" + std::to_string(line_number) +
                              ": expected 64 hex digits (an SPKI SHA-256), got \"" +
                              std::string(hex_text) + "\"");
        }
        std::string name(space == std::string_view::npos ? ""
                                                         : trim_ascii_space(line.substr(space)));
        if (name.empty()) {
            name = "known interception root " + hex->substr(0, 16) + "...";
        }
        roots.push_back({std::move(*hex), std::move(name), std::string(source)});
    }
    return roots;
}

Result<pki::X509Ptr> read_certificate_file(const std::filesystem::path& file) {
    auto bytes = read_file(file);
    if (!bytes) {
        return make_error(bytes.error());
    }
    BioPtr bio(BIO_new_mem_buf(bytes->data(), static_cast<int>(bytes->size())));
    pki::X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!cert) {
        const auto* data = reinterpret_cast<const unsigned char*>(bytes->data());
        cert.reset(d2i_X509(nullptr, &data, static_cast<long>(bytes->size())));
    }
    ERR_clear_error();
    if (!cert) {
        return make_error(file.string() + ": no certificate (PEM or DER) found");
    }
    return cert;
}

KnownRoots KnownRoots::with_builtins() {
    KnownRoots roots;
    for (auto& root : builtin_known_roots()) {
        roots.add(std::move(root));
    }
    return roots;
}

void KnownRoots::add(KnownRoot root) {
    auto same = std::find_if(entries_.begin(), entries_.end(), [&](const KnownRoot& entry) {
        return entry.spki_sha256 == root.spki_sha256;
    });
    if (same != entries_.end()) {
        *same = std::move(root);
    } else {
        entries_.push_back(std::move(root));
    }
}

Result<void> KnownRoots::add_file(const std::filesystem::path& file) {
    auto text = read_file(file);
    if (!text) {
        return make_error(text.error());
    }
    auto roots = parse_known_roots(*text, file.string());
    if (!roots) {
        return make_error(roots.error());
    }
    for (auto& root : *roots) {
        add(std::move(root));
    }
    return {};
}

void KnownRoots::add_certificate(X509* certificate, std::string name, std::string source) {
    X509_up_ref(certificate);
    certificates_.emplace_back(certificate);
    add({pki::spki_sha256_hex(certificate), std::move(name), std::move(source)});
}

const KnownRoot* KnownRoots::find(std::string_view spki_sha256) const {
    for (const auto& entry : entries_) {
        if (entry.spki_sha256 == spki_sha256) {
            return &entry;
        }
    }
    return nullptr;
}

}  // namespace tlsgate::pki
