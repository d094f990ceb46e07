#include "app/cli.hpp"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "app/flows_command.hpp"
#include "app/options.hpp"
#include "app/passthrough_command.hpp"
#include "app/run_command.hpp"
#ifdef TLSGATE_WITH_PROBE
#include "app/probe_command.hpp"
#endif
#include "pki/ca.hpp"

namespace tlsgate::app {
namespace {

int fail(const std::string& message) {
    std::fprintf(stderr, "tlsgate: %s\n", message.c_str());
    return 1;
}

// `token_key.uri` set: the key already exists in a PKCS#11 token, which signs the root.
Result<pki::CertificateAuthority> new_ca(const std::string& subject, const std::string& key,
                                         const pki::TokenKeySpec& token_key, int path_length) {
    if (!token_key.uri.empty()) {
        auto in_token = pki::load_token_key(token_key);
        if (!in_token) {
            return make_error(in_token.error());
        }
        return pki::create_ca_in_token(subject, std::move(*in_token), 3650, path_length);
    }
    const auto key_type = key == "rsa-3072" ? pki::KeyType::rsa_3072 : pki::KeyType::ec_p256;
    return pki::create_ca(subject, key_type, 3650, path_length);
}

int ca_init(const std::filesystem::path& dir, const std::string& subject, const std::string& key,
            const pki::TokenKeySpec& token_key, bool force, bool offline_root) {
    auto ca = new_ca(subject, key, token_key, offline_root ? 1 : 0);
    if (!ca) {
        return fail(ca.error());
    }
    if (auto saved = pki::save_ca(*ca, dir, force); !saved) {
        return fail(saved.error());
    }
    const auto summary = pki::summarize(ca->cert.get());
    std::printf("created CA in %s\n  subject: %s\n  SHA-256: %s\n", dir.c_str(),
                summary.subject.c_str(), summary.sha256_fingerprint.c_str());
    if (!token_key.uri.empty()) {
        std::printf(
            "  the key stays in the token; run the gateway with --ca-key '%s' (or ca_key "
            "in the config)\n",
            pki::redacted_pkcs11_uri(token_key.uri).c_str());
    }
    if (offline_root) {
        std::printf(
            "  an offline root: keep this directory off the gateway and issue short-lived CAs\n"
            "  with: tlsgate ca issue-intermediate --root-dir %s --dir GATEWAY_CA_DIR\n",
            dir.c_str());
    }
    return 0;
}

int ca_issue_intermediate(const std::filesystem::path& root_dir, const std::filesystem::path& dir,
                          const std::string& subject, int days, bool force) {
    auto root = pki::load_ca(root_dir);
    if (!root) {
        return fail(root.error());
    }
    auto issuing = pki::issue_intermediate(*root, subject, days);
    if (!issuing) {
        return fail(issuing.error());
    }
    if (auto saved = pki::save_ca(*issuing, dir, force); !saved) {
        return fail(saved.error());
    }
    const auto summary = pki::summarize(issuing->cert.get());
    std::printf(
        "issued a CA in %s (ca.pem, ca.key, chain.pem)\n  subject: %s\n  issuer: %s\n"
        "  not after: %s\n  devices install the root: %s\n",
        dir.c_str(), summary.subject.c_str(), summary.issuer.c_str(), summary.not_after.c_str(),
        (root_dir / pki::kCaCertFile).c_str());
    return 0;
}

int ca_show(const std::filesystem::path& dir) {
    auto ca = pki::load_ca_certificates(dir);
    if (!ca) {
        return fail(ca.error());
    }
    const auto summary = pki::summarize(ca->cert.get());
    std::printf(
        "certificate: %s\nsubject:     %s\nnot before:  %s\nnot after:   %s\nSHA-256:     %s\n"
        "SPKI SHA-256: %s\n",
        (dir / pki::kCaCertFile).c_str(), summary.subject.c_str(), summary.not_before.c_str(),
        summary.not_after.c_str(), summary.sha256_fingerprint.c_str(), summary.spki_sha256.c_str());
    if (!ca->chain.empty()) {
        const auto root = pki::summarize(ca->root());
        std::printf("issued by:   %s (devices install this root; SHA-256 %s)\n",
                    root.subject.c_str(), root.sha256_fingerprint.c_str());
    }
    if (std::filesystem::exists(dir / pki::kUntrustedCaCertFile)) {
        if (auto untrusted = pki::load_ca(dir, pki::kUntrustedCaFiles)) {
            std::printf(
                "untrusted CA: %s (SHA-256 %s): signs stand-ins for refused upstream "
                "certificates; never install it\n",
                pki::summarize(untrusted->cert.get()).subject.c_str(),
                pki::summarize(untrusted->cert.get()).sha256_fingerprint.c_str());
        }
    }
    if (!std::filesystem::exists(dir / pki::kCaKeyFile)) {
        std::printf("key:         not in this directory (a PKCS#11 token, or an offline root)\n");
    } else if (auto warning = pki::key_file_permission_warning(dir / pki::kCaKeyFile)) {
        std::printf("warning:     %s\n", warning->c_str());
    }
    return 0;
}

int ca_export(const std::filesystem::path& dir, const std::string& format, const std::string& out) {
    auto ca = pki::load_ca_certificates(dir);
    if (!ca) {
        return fail(ca.error());
    }
    const auto kind = format == "der"   ? pki::ExportFormat::der
                      : format == "p12" ? pki::ExportFormat::p12
                                        : pki::ExportFormat::pem;
    auto bytes = pki::export_certificate(ca->root(), kind);
    if (!bytes) {
        return fail(bytes.error());
    }
    if (out.empty() || out == "-") {
        std::fwrite(bytes->data(), 1, bytes->size(), stdout);
        return 0;
    }
    std::ofstream file(out, std::ios::binary | std::ios::trunc);
    file.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    if (!file) {
        return fail("cannot write " + out);
    }
    return 0;
}

int ca_import(const std::filesystem::path& dir, const std::string& cert, const std::string& key,
              bool force) {
    auto ca = pki::read_ca_files(cert, key);
    if (!ca) {
        return fail(ca.error());
    }
    if (auto saved = pki::save_ca(*ca, dir, force); !saved) {
        return fail(saved.error());
    }
    std::printf("imported CA into %s\n  SHA-256: %s\n", dir.c_str(),
                pki::summarize(ca->cert.get()).sha256_fingerprint.c_str());
    return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
    CLI::App app{"tlsgate: a TLS interception gateway that never hides itself"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("tlsgate ") + TLSGATE_VERSION_STRING);

    app.add_subcommand("version", "Print the version")->callback([] {
        std::printf("tlsgate %s\n", TLSGATE_VERSION_STRING);
    });

    // --- ca ---
    auto* ca = app.add_subcommand("ca", "Create, show, export or import the installation's CA");
    ca->require_subcommand(1);
    std::string ca_dir = default_data_dir().string();
    int status = 0;

    auto* init = ca->add_subcommand("init", "Create a fresh CA for this installation");
    std::string subject = "CN=tlsgate CA,O=tlsgate interception";
    std::string key_type = "ec-p256";
    bool force = false;
    init->add_option("--dir", ca_dir, "CA directory (ca.pem, ca.key)")->capture_default_str();
    init->add_option("--subject", subject, "Subject, e.g. \"CN=Example CA,O=Example\"")
        ->capture_default_str();
    pki::TokenKeySpec token_key;
    init->add_option("--key", key_type,
                     "ec-p256 or rsa-3072 (a new key in ca.key), or the pkcs11: URI of a key in a "
                     "token (only ca.pem is written)")
        ->check([](const std::string& value) {
            return value == "ec-p256" || value == "rsa-3072" || pki::is_pkcs11_uri(value)
                       ? std::string()
                       : std::string("--key: ec-p256, rsa-3072 or a pkcs11: URI");
        })
        ->capture_default_str();
    init->add_option("--pkcs11-module", token_key.module,
                     "PKCS#11 library of the token (default: p11-kit's proxy)");
    init->add_option("--pkcs11-pin-file", token_key.pin_file,
                     "File holding the token's PIN (mode 0600)");
    init->add_flag("--force", force, "Overwrite an existing CA");
    bool offline_root = false;
    init->add_flag("--offline-root", offline_root,
                   "A root allowed to sign one issuing CA level (pathlen:1), kept off the gateway");
    init->callback([&] {
        if (pki::is_pkcs11_uri(key_type)) {
            token_key.uri = key_type;
        }
        status = ca_init(ca_dir, subject, key_type, token_key, force, offline_root);
    });

    auto* issue = ca->add_subcommand(
        "issue-intermediate", "Sign a short-lived issuing CA for the gateway with an offline root");
    std::string root_dir;
    int days = 30;
    std::string issuing_subject = "CN=tlsgate issuing CA,O=tlsgate interception";
    issue->add_option("--root-dir", root_dir, "The offline root's directory (ca.pem, ca.key)")
        ->required();
    issue->add_option("--dir", ca_dir, "The gateway's CA directory")->capture_default_str();
    issue->add_option("--days", days, "Validity in days (1..3650)")->capture_default_str();
    issue->add_option("--subject", issuing_subject, "Subject of the issuing CA")
        ->capture_default_str();
    issue->add_flag("--force", force, "Replace the CA in --dir (renewal)");
    issue->callback(
        [&] { status = ca_issue_intermediate(root_dir, ca_dir, issuing_subject, days, force); });

    auto* show = ca->add_subcommand("show", "Show subject, validity and fingerprints");
    show->add_option("--dir", ca_dir, "CA directory")->capture_default_str();
    show->callback([&] { status = ca_show(ca_dir); });

    auto* export_command = ca->add_subcommand("export", "Write the CA certificate (never the key)");
    std::string format = "pem";
    std::string out;
    export_command->add_option("--dir", ca_dir, "CA directory")->capture_default_str();
    export_command->add_option("--format", format, "pem, der or p12")
        ->check(CLI::IsMember({"pem", "der", "p12"}))
        ->required();
    export_command->add_option("--out", out, "Output file (default: standard output)");
    export_command->callback([&] { status = ca_export(ca_dir, format, out); });

    auto* import = ca->add_subcommand("import", "Use an existing CA certificate and key");
    std::string import_cert;
    std::string import_key;
    import->add_option("--cert", import_cert, "CA certificate (PEM)")
        ->required()
        ->check(CLI::ExistingFile);
    import->add_option("--key", import_key, "CA private key (PEM)")
        ->required()
        ->check(CLI::ExistingFile);
    import->add_option("--dir", ca_dir, "CA directory")->capture_default_str();
    import->add_flag("--force", force, "Overwrite an existing CA");
    import->callback([&] { status = ca_import(ca_dir, import_cert, import_key, force);
});

add_run_command(app, status);
add_check_config_command(app, status);
add_flows_command(app, status);
add_passthrough_command(app, status);
#ifdef TLSGATE_WITH_PROBE
add_probe_command(app, status);
#endif
try {
    app.parse(argc, argv);
} catch (const CLI::ParseError& error) {
    return app.exit(error);
}
return status;
}  // namespace tlsgate::app

}  // namespace tlsgate::app
