// The probe's pure side: targets, the known-roots list, the verdict on a collected chain (with
// certificates built here: a "public" root in the trust store, interceptor CAs outside it, a
// tlsgate-named CA, expired, wrong-host and self-signed leaves), the comparison with a control,
// and the JSON and table output.
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pki/ca.hpp"
#include "pki/known_roots.hpp"
#include "pki/mint.hpp"
#include "probe/classify.hpp"
#include "probe/report.hpp"
#include "probe/target.hpp"

namespace tlsgate::probe {
namespace {

constexpr long kDay = 24 * 3600;

std::string der_of(X509* cert) {
    unsigned char* der = nullptr;
    const int length = i2d_X509(cert, &der);
    std::string bytes(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
    OPENSSL_free(der);
    return bytes;
}

pki::CertificateAuthority make_ca(const std::string& subject) {
    auto ca = pki::create_ca(subject, pki::KeyType::ec_p256);
    EXPECT_TRUE(ca.ok()) << (ca.ok() ? "" : ca.error());
    return std::move(*ca);
}

struct Leaf {
    pki::X509Ptr cert;
    pki::EvpPkeyPtr key;
};

Leaf make_leaf(const pki::CertificateAuthority& ca, std::vector<std::string> names,
               long not_before_offset = -kDay, long not_after_offset = 90 * kDay) {
    const std::time_t now = std::time(nullptr);
    pki::CertProperties properties;
    properties.common_name = names.front();
    properties.dns_names = std::move(names);
    properties.not_before = now + not_before_offset;
    properties.not_after = now + not_after_offset;
    properties.serial = pki::random_serial();
    auto key = pki::generate_leaf_key();
    EXPECT_TRUE(key.ok());
    auto cert = pki::mint_leaf(properties, key->get(), ca);
    EXPECT_TRUE(cert.ok()) << (cert.ok() ? "" : cert.error());
    return {std::move(*cert), std::move(*key)};
}

// A leaf that is its own issuer: the minted one, re-signed by its own key without the CA's AKI.
pki::X509Ptr self_signed(const pki::CertificateAuthority& ca, const std::string& name) {
    Leaf leaf = make_leaf(ca, {name});
    X509* cert = leaf.cert.get();
    const int aki = X509_get_ext_by_NID(cert, NID_authority_key_identifier, -1);
    if (aki >= 0) {
        X509_EXTENSION_free(X509_delete_ext(cert, aki));
    }
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    EXPECT_GT(X509_sign(cert, leaf.key.get(), EVP_sha256()), 0);
    return std::move(leaf.cert);
}

Target target(const std::string& text) {
    auto parsed = parse_target(text);
    EXPECT_TRUE(parsed.ok()) << text;
    return *parsed;
}

Observation completed(std::vector<std::string> chain,
                      std::string cipher = "TLS_AES_128_GCM_SHA256") {
    Observation seen;
    seen.outcome = Outcome::handshake_done;
    seen.server_answered = true;
    seen.chain_der = std::move(chain);
    seen.tls_version = "TLSv1.3";
    seen.cipher = std::move(cipher);
    seen.peer_address = "192.0.2.1:443";
    return seen;
}

Observation failed(Outcome outcome) {
    Observation seen;
    seen.outcome = outcome;
    seen.peer_address = "192.0.2.1:443";
    return seen;
}

class ClassifyTest : public ::testing::Test {
protected:
    void SetUp() override {
        trust_.store.reset(X509_STORE_new());
        ASSERT_EQ(X509_STORE_add_cert(trust_.store.get(), public_root_.cert.get()), 1);
        trust_.known = KnownRoots::with_builtins();
    }

    ProbeResult judge(const std::string& name, Observation seen,
                      const ControlBaseline* control = nullptr) {
        return classify(target(name), std::move(seen), trust_, control);
    }

    pki::CertificateAuthority public_root_ = make_ca("CN=Test Public Root,O=Public");
    pki::CertificateAuthority interceptor_ = make_ca("CN=Security Certificate,O=Middlebox");
    TrustContext trust_;
};

// ---- targets -----------------------------------------------------------------------------

TEST(ProbeTargetTest, ParsesNamesAddressesAndPorts) {
    auto named = parse_target("  Example.COM:8443 ");
    ASSERT_TRUE(named.ok());
    EXPECT_EQ(named->host, "example.com");
    EXPECT_EQ(named->port, 8443);
    EXPECT_FALSE(named->is_ip);
    EXPECT_EQ(named->text(), "example.com:8443");

    auto bare = parse_target("example.org");
    ASSERT_TRUE(bare.ok());
    EXPECT_EQ(bare->port, 443);

    auto v4 = parse_target("192.0.2.7");
    ASSERT_TRUE(v4.ok());
    EXPECT_TRUE(v4->is_ip);
    EXPECT_EQ(v4->text(), "192.0.2.7:443");

    auto v6 = parse_target("[2001:db8::1]:8443");
    ASSERT_TRUE(v6.ok());
    EXPECT_TRUE(v6->is_ip);
    EXPECT_EQ(v6->host, "2001:db8::1");
    EXPECT_EQ(v6->text(), "[2001:db8::1]:8443");

    auto bare_v6 = parse_target("2001:db8::2");
    ASSERT_TRUE(bare_v6.ok());
    EXPECT_EQ(bare_v6->port, 443);

    auto url = parse_target("https://www.Example.net:444/some/path?q=1");
    ASSERT_TRUE(url.ok());
    EXPECT_EQ(url->text(), "www.example.net:444");
}

TEST(ProbeTargetTest, RejectsBadNamesAndPorts) {
    for (const char* bad : {"", "exa mple.com", "host:0", "host:65536", "host:", "host:12x", "[::1",
                            "[::1]x", "-bad-.com"}) {
        EXPECT_FALSE(parse_target(bad).ok()) << bad;
    }
}

TEST(ProbeTargetTest, ListSkipsCommentsAndNamesTheBadLine) {
    auto list = parse_target_list("# targets\n\na.example\r\nb.example:8443  # second\n");
    ASSERT_TRUE(list.ok()) << list.error();
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ((*list)[0].text(), "a.example:443");
    EXPECT_EQ((*list)[1].text(), "b.example:8443");

    auto bad = parse_target_list("ok.example\nnot valid\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().find("line 2"), std::string::npos) << bad.error();
}

TEST(ProbeTargetTest, ConnectNeedsAnAddressAndProxyAnHttpUrl) {
    auto endpoint = parse_endpoint("127.0.0.1:9443");
    ASSERT_TRUE(endpoint.ok());
    EXPECT_EQ(endpoint->text(), "127.0.0.1:9443");
    EXPECT_EQ(parse_endpoint("[::1]")->text(), "[::1]:443");
    EXPECT_FALSE(parse_endpoint("origin.example:443").ok());

    auto proxy = parse_proxy_url("http://127.0.0.1:8080/");
    ASSERT_TRUE(proxy.ok());
    EXPECT_EQ(proxy->text(), "http://127.0.0.1:8080");
    EXPECT_EQ(parse_proxy_url("proxy.example:3128")->text(), "http://proxy.example:3128");
    EXPECT_EQ(parse_proxy_url("http://proxy.example")->port, 80);
    EXPECT_FALSE(parse_proxy_url("https://proxy.example:443").ok());
    EXPECT_FALSE(parse_proxy_url("socks5://127.0.0.1:1080").ok());
    EXPECT_FALSE(parse_proxy_url("http://user:pw@proxy.example:3128").ok());
    EXPECT_FALSE(parse_proxy_url("http://proxy.example:3128/path").ok());
}

// ---- known roots ---------------------------------------------------------------------------

TEST(ProbeKnownRootsTest, BuiltInsIncludeTheKazakhInterceptionRoots) {
    const KnownRoots roots = KnownRoots::with_builtins();
    const KnownRoot* qaznet =
        roots.find("b5ba8dd7f89564c2889d3d6453c84998c77824919b64ea0835aa62986591be50");
    ASSERT_NE(qaznet, nullptr);
    EXPECT_NE(qaznet->name.find("Qaznet"), std::string::npos);
    const KnownRoot* isca =
        roots.find("8e12d0cb3b7df3ea2257579489fd8658c95603ea6cf4b73163a41eb7b7e93fee");
    ASSERT_NE(isca, nullptr);
    EXPECT_NE(isca->name.find("ISCA"), std::string::npos);
    for (const auto& root : roots.entries()) {
        EXPECT_EQ(pki::normalize_spki_hex(root.spki_sha256), root.spki_sha256) << root.name;
        EXPECT_EQ(root.source, "built-in");
        EXPECT_FALSE(root.name.empty());
    }
}

TEST(ProbeKnownRootsTest, ParsesFileLines) {
    auto roots = pki::parse_known_roots(
        "# corporate boxes\n"
        "AB:CD:" +
            std::string(60, 'E') +
            "   Example Corp TLS inspection  \n"
            "\n" +
            std::string(64, '1') + "\n",
        "extra.txt");
    ASSERT_TRUE(roots.ok()) << roots.error();
    ASSERT_EQ(roots->size(), 2u);
    EXPECT_EQ((*roots)[0].spki_sha256, "abcd" + std::string(60, 'e'));
    EXPECT_EQ((*roots)[0].name, "Example Corp TLS inspection");
    EXPECT_EQ((*roots)[0].source, "extra.txt");
    EXPECT_FALSE((*roots)[1].name.empty());

    auto bad = pki::parse_known_roots(std::string(64, 'a') + " fine\nxyz nope\n", "bad.txt");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().find("bad.txt:2"), std::string::npos) << bad.error();
    EXPECT_FALSE(pki::parse_known_roots(std::string(63, 'a'), "short.txt").ok());
}

TEST(ProbeKnownRootsTest, LaterEntryRenamesTheSameKey) {
    KnownRoots roots = KnownRoots::with_builtins();
    const auto size = roots.entries().size();
    roots.add({"b5ba8dd7f89564c2889d3d6453c84998c77824919b64ea0835aa62986591be50", "renamed",
               "mine.txt"});
    EXPECT_EQ(roots.entries().size(), size);
    EXPECT_EQ(roots.find("b5ba8dd7f89564c2889d3d6453c84998c77824919b64ea0835aa62986591be50")->name,
              "renamed");
}

// ---- verdicts on completed handshakes -------------------------------------------------------

TEST_F(ClassifyTest, PublicChainForTheRightNameIsClean) {
    Leaf leaf = make_leaf(public_root_, {"www.example.test", "example.test"});
    const auto result = judge("example.test", completed({der_of(leaf.cert.get())}));
    EXPECT_EQ(result.status, Status::clean) << result.reason;
    ASSERT_TRUE(result.chain.root);
    EXPECT_TRUE(result.chain.root->in_trust_store);
    EXPECT_EQ(result.chain.root->source, "trust store");
    EXPECT_EQ(result.chain.root->spki_sha256, pki::spki_sha256_hex(public_root_.cert.get()));
    EXPECT_EQ(result.chain.root->subject, "CN=Test Public Root,O=Public");
    ASSERT_TRUE(result.chain.leaf);
    EXPECT_EQ(result.chain.leaf->issuer, "CN=Test Public Root,O=Public");
    EXPECT_EQ(result.chain.leaf->sha256, pki::sha256_fingerprint_hex(leaf.cert.get()));
    EXPECT_EQ(result.chain.leaf->dns_names,
              (std::vector<std::string>{"www.example.test", "example.test"}));
    EXPECT_FALSE(result.chain.known_root);
    EXPECT_TRUE(result.chain.verify_errors.empty());
}

TEST_F(ClassifyTest, PresentedRootIsReportedAsPresented) {
    Leaf leaf = make_leaf(public_root_, {"example.test"});
    const auto result = judge(
        "example.test", completed({der_of(leaf.cert.get()), der_of(public_root_.cert.get())}));
    EXPECT_EQ(result.status, Status::clean) << result.reason;
    EXPECT_EQ(result.chain.root->source, "presented");
    EXPECT_EQ(result.chain.chain.size(), 2u);
}

TEST_F(ClassifyTest, UnknownRootForAPublicNameIsIntercepted) {
    Leaf leaf = make_leaf(interceptor_, {"example.test"});
    const auto result = judge("example.test", completed({der_of(leaf.cert.get())}));
    EXPECT_EQ(result.status, Status::intercepted) << result.reason;
    EXPECT_TRUE(result.chain.root_untrusted);
    EXPECT_EQ(result.chain.verify_errors.front(), "untrusted_root");
    ASSERT_TRUE(result.chain.root);
    // The interceptor did not send its root: its name is known, its key is not.
    EXPECT_EQ(result.chain.root->source, "not presented");
    EXPECT_EQ(result.chain.root->subject, "CN=Security Certificate,O=Middlebox");
    EXPECT_TRUE(result.chain.root->spki_sha256.empty());
    EXPECT_FALSE(result.chain.root->in_trust_store);
    EXPECT_FALSE(result.chain.known_root);
    EXPECT_NE(result.reason.find("Security Certificate"), std::string::npos) << result.reason;
}

TEST_F(ClassifyTest, PresentedUnknownRootIsNamedWithItsKey) {
    Leaf leaf = make_leaf(interceptor_, {"example.test"});
    const auto result = judge(
        "example.test", completed({der_of(leaf.cert.get()), der_of(interceptor_.cert.get())}));
    EXPECT_EQ(result.status, Status::intercepted) << result.reason;
    EXPECT_EQ(result.chain.root->source, "presented");
    EXPECT_EQ(result.chain.root->spki_sha256, pki::spki_sha256_hex(interceptor_.cert.get()));
}

TEST_F(ClassifyTest, KnownInterceptionRootIsInterceptedEvenWhenTrusted) {
    // The user installed the interceptor's root (as Kazakh users were told to): the chain
    // verifies, and the key still gives it away.
    ASSERT_EQ(X509_STORE_add_cert(trust_.store.get(), interceptor_.cert.get()), 1);
    const auto spki = pki::spki_sha256_hex(interceptor_.cert.get());
    auto listed = pki::parse_known_roots(spki + " Example national interception root", "list.txt");
    ASSERT_TRUE(listed.ok());
    trust_.known.add((*listed)[0]);
    Leaf leaf = make_leaf(interceptor_, {"example.test"});
    const auto result = judge("example.test", completed({der_of(leaf.cert.get())}));
    EXPECT_EQ(result.status, Status::intercepted) << result.reason;
    EXPECT_TRUE(result.chain.verified);
    ASSERT_TRUE(result.chain.known_root);
    EXPECT_EQ(result.chain.known_root->name, "Example national interception root");
    EXPECT_EQ(result.chain.known_root->spki_sha256, spki);
    EXPECT_EQ(result.chain.known_root->source, "list.txt");
    EXPECT_TRUE(result.chain.root->in_trust_store);
}

TEST_F(ClassifyTest, LocalTlsgateCaCompletesTheChainAndIsNamed) {
    auto local = make_ca("CN=Operator Gateway CA,O=Example");
    trust_.known.add_certificate(local.cert.get(), "tlsgate CA on this machine", "/data/ca.pem");
    Leaf leaf = make_leaf(local, {"example.test"});
    const auto result = judge("example.test", completed({der_of(leaf.cert.get())}));
    EXPECT_EQ(result.status, Status::intercepted) << result.reason;
    ASSERT_TRUE(result.chain.root);
    EXPECT_EQ(result.chain.root->source, "known");
    EXPECT_EQ(result.chain.root->spki_sha256, pki::spki_sha256_hex(local.cert.get()));
    ASSERT_TRUE(result.chain.known_root);
    EXPECT_EQ(result.chain.known_root->name, "tlsgate CA on this machine");
    EXPECT_EQ(result.chain.known_root->source, "/data/ca.pem");
}

TEST_F(ClassifyTest, AnyTlsgateIsRecognisedByItsCaName) {
    auto gateway = make_ca("CN=tlsgate CA,O=tlsgate interception");
    Leaf leaf = make_leaf(gateway, {"example.test"});
    const auto result = judge("example.test", completed({der_of(leaf.cert.get())}));
    EXPECT_EQ(result.status, Status::intercepted) << result.reason;
    ASSERT_TRUE(result.chain.known_root);
    EXPECT_EQ(result.chain.known_root->source, "issuer name");
    EXPECT_TRUE(result.chain.known_root->spki_sha256.empty());
    EXPECT_NE(result.chain.known_root->name.find("tlsgate"), std::string::npos);

    // Even installed in the trust store, a tlsgate CA in the path is interception.
    ASSERT_EQ(X509_STORE_add_cert(trust_.store.get(), gateway.cert.get()), 1);
    Leaf trusted = make_leaf(gateway, {"example.test"});
    const auto again = judge("example.test", completed({der_of(trusted.cert.get())}));
    EXPECT_EQ(again.status, Status::intercepted) << again.reason;
    EXPECT_TRUE(again.chain.verified);
}

TEST_F(ClassifyTest, ExpiredPublicCertificateIsInvalidNotIntercepted) {
    Leaf leaf = make_leaf(public_root_, {"example.test"}, -60 * kDay, 30 * kDay);
    trust_.verify_time = std::time(nullptr) + 40 * kDay;  // a month after it expired
    const auto result = judge("example.test", completed({der_of(leaf.cert.get())}));
    EXPECT_EQ(result.status, Status::invalid) << result.reason;
    EXPECT_EQ(result.chain.verify_errors, std::vector<std::string>{"expired"});
    EXPECT_EQ(result.reason.rfind("expired", 0), 0u) << result.reason;
    EXPECT_TRUE(result.chain.root->in_trust_store);
}

TEST_F(ClassifyTest, WrongHostOnAPublicChainIsInvalid) {
    Leaf leaf = make_leaf(public_root_, {"other.test"});
    const auto result = judge("example.test", completed({der_of(leaf.cert.get())}));
    EXPECT_EQ(result.status, Status::invalid) << result.reason;
    EXPECT_EQ(result.chain.verify_errors, std::vector<std::string>{"wrong_host"});
}

TEST_F(ClassifyTest, NameIsCheckedAgainstSanOnlyAndIpTargetsAgainstIpSans) {
    // The CN says example.test but the SAN does not: no CN fallback.
    Leaf leaf = make_leaf(public_root_, {"example.test"});
    const auto by_ip = judge("192.0.2.1", completed({der_of(leaf.cert.get())}));
    EXPECT_EQ(by_ip.status, Status::invalid) << by_ip.reason;
    EXPECT_EQ(by_ip.chain.verify_errors, std::vector<std::string>{"wrong_host"});
}

TEST_F(ClassifyTest, SelfSignedLeafIsInvalid) {
    auto cert = self_signed(public_root_, "example.test");
    const auto result = judge("example.test", completed({der_of(cert.get())}));
    EXPECT_EQ(result.status, Status::invalid) << result.reason;
    EXPECT_TRUE(result.chain.self_signed_leaf);
    EXPECT_EQ(result.chain.verify_errors.front(), "self_signed");
    EXPECT_EQ(result.chain.root->source, "presented");
    EXPECT_EQ(result.chain.root->spki_sha256, result.chain.leaf->spki_sha256);
}

TEST_F(ClassifyTest, GarbageCertificateIsInvalid) {
    const auto result = judge("example.test", completed({"not a certificate"}));
    EXPECT_EQ(result.status, Status::invalid) << result.reason;
    EXPECT_FALSE(result.chain.leaf);
}

// ---- the control ----------------------------------------------------------------------------

TEST_F(ClassifyTest, CleanControlMakesAnUnknownRootInterceptionAndIsCompared) {
    Leaf control_leaf = make_leaf(public_root_, {"control.test", "example.test"});
    const auto control = judge("control.test", completed({der_of(control_leaf.cert.get())}));
    ASSERT_EQ(control.status, Status::clean) << control.reason;
    const ControlBaseline baseline = make_baseline(control, /*same_destination=*/true);

    Leaf forged = make_leaf(interceptor_, {"example.test"});
    const auto test =
        judge("example.test", completed({der_of(forged.cert.get())}, "TLS_AES_256_GCM_SHA384"),
              &baseline);
    EXPECT_EQ(test.status, Status::intercepted) << test.reason;
    ASSERT_TRUE(test.comparison);
    EXPECT_TRUE(test.comparison->differs);
    EXPECT_TRUE(test.comparison->triggered);
    EXPECT_EQ(test.comparison->fields, (std::vector<std::string>{"certificate", "cipher"}));

    // A name the box leaves alone gets exactly the control's certificate.
    const auto untouched =
        judge("example.test", completed({der_of(control_leaf.cert.get())}), &baseline);
    EXPECT_EQ(untouched.status, Status::clean) << untouched.reason;
    ASSERT_TRUE(untouched.comparison);
    EXPECT_FALSE(untouched.comparison->differs);
    EXPECT_FALSE(untouched.comparison->triggered);
}

TEST_F(ClassifyTest, PrivateServerLikeItsControlIsInvalidButADifferentCertificateIsNot) {
    // A server whose own certificate is self-signed (common for the servers Hyperquack uses):
    // the control sees it, so the same certificate for a test name is the server, not a box.
    auto server_cert = self_signed(interceptor_, "device.local");
    const auto control = judge("control.test", completed({der_of(server_cert.get())}));
    ASSERT_EQ(control.status, Status::invalid) << control.reason;
    const ControlBaseline same_address = make_baseline(control, true);

    const auto same = judge("example.test", completed({der_of(server_cert.get())}), &same_address);
    EXPECT_EQ(same.status, Status::invalid) << same.reason;
    EXPECT_FALSE(same.comparison->differs);

    auto box = make_ca("CN=Security Certificate 2,O=Box");
    Leaf forged = make_leaf(box, {"example.test"});
    const auto swapped =
        judge("example.test", completed({der_of(forged.cert.get())}), &same_address);
    EXPECT_EQ(swapped.status, Status::intercepted) << swapped.reason;
    EXPECT_TRUE(swapped.comparison->triggered);

    // Without the same destination (DNS mode), a different certificate proves nothing.
    const ControlBaseline elsewhere = make_baseline(control, false);
    const auto other = judge("example.test", completed({der_of(forged.cert.get())}), &elsewhere);
    EXPECT_EQ(other.status, Status::invalid) << other.reason;
    EXPECT_FALSE(other.comparison->triggered);
}

TEST_F(ClassifyTest, ControlWithAPublicChainForAnotherNameStillMeansPublic) {
    // The control's certificate is publicly trusted but names something else (wrong_host): the
    // server uses public certificates, so an unknown root for a test name is interception.
    Leaf default_cert = make_leaf(public_root_, {"default.example"});
    const auto control = judge("control.test", completed({der_of(default_cert.cert.get())}));
    ASSERT_EQ(control.status, Status::invalid) << control.reason;
    const ControlBaseline baseline = make_baseline(control, false);
    EXPECT_FALSE(baseline.chain_untrusted);
    Leaf forged = make_leaf(interceptor_, {"example.test"});
    const auto test = judge("example.test", completed({der_of(forged.cert.get())}), &baseline);
    EXPECT_EQ(test.status, Status::intercepted) << test.reason;
}

// ---- verdicts without a completed handshake ---------------------------------------------------

TEST_F(ClassifyTest, FailuresAfterTheClientHelloAreBlocked) {
    Observation alert = failed(Outcome::alert);
    alert.alert = 49;
    alert.server_answered = true;
    const auto alerted = judge("example.test", alert);
    EXPECT_EQ(alerted.status, Status::blocked);
    EXPECT_NE(alerted.reason.find("access_denied"), std::string::npos) << alerted.reason;

    EXPECT_EQ(judge("example.test", failed(Outcome::reset)).status, Status::blocked);
    EXPECT_EQ(judge("example.test", failed(Outcome::closed)).status, Status::blocked);
    const auto silent = judge("example.test", failed(Outcome::timeout));
    EXPECT_EQ(silent.status, Status::blocked);
    EXPECT_NE(silent.reason.find("no answer"), std::string::npos) << silent.reason;

    Observation refused = failed(Outcome::proxy_refused);
    refused.proxy_status = 403;
    refused.detail = "HTTP/1.1 403 Forbidden";
    EXPECT_EQ(judge("example.test", refused).status, Status::blocked);
    refused.proxy_status = 502;
    refused.detail = "HTTP/1.1 502 Bad Gateway";
    EXPECT_EQ(judge("example.test", refused).status, Status::error);
}

TEST_F(ClassifyTest, NonTlsAnswersAndSetupFailures) {
    Observation http = failed(Outcome::not_tls);
    http.detail = "\"HTTP/1.1 400 Bad Request\"";
    const auto plain = judge("example.test", http);
    EXPECT_EQ(plain.status, Status::no_tls);
    EXPECT_NE(plain.reason.find("400 Bad Request"), std::string::npos) << plain.reason;
    EXPECT_EQ(judge("example.test", failed(Outcome::resolve_failed)).status, Status::error);
    EXPECT_EQ(judge("example.test", failed(Outcome::connect_failed)).status, Status::error);
    EXPECT_EQ(judge("example.test", failed(Outcome::proxy_failed)).status, Status::error);
    EXPECT_EQ(judge("example.test", failed(Outcome::tls_error)).status, Status::error);
}

TEST(ProbeNamesTest, StatusAndAlertNames) {
    EXPECT_EQ(status_name(Status::no_tls), "no-tls");
    EXPECT_EQ(status_name(Status::intercepted), "intercepted");
    EXPECT_EQ(alert_name(49), "access_denied");
    EXPECT_EQ(alert_name(112), "unrecognized_name");
    EXPECT_EQ(alert_name(200), "alert_200");
}

// ---- output -----------------------------------------------------------------------------------

TEST_F(ClassifyTest, JsonIsStableAndExitStatusFollowsInterception) {
    Leaf good = make_leaf(public_root_, {"good.test"});
    Leaf forged = make_leaf(interceptor_, {"bad.test"});
    Report report;
    report.run.connect = "127.0.0.1:9443";
    report.run.trust_files = {"public.pem"};
    report.results.push_back(judge("good.test", completed({der_of(good.cert.get())})));
    EXPECT_EQ(exit_status(report), 0);
    report.results.push_back(judge("bad.test", completed({der_of(forged.cert.get())})));
    Observation alert = failed(Outcome::alert);
    alert.alert = 49;
    report.results.push_back(judge("blocked.test", alert));
    EXPECT_EQ(exit_status(report), 1);

    const auto json = nlohmann::json::parse(render_json(report));
    EXPECT_EQ(json["tlsgate_probe"], 1);
    EXPECT_EQ(json["intercepted"], true);
    EXPECT_EQ(json["run"]["connect"], "127.0.0.1:9443");
    EXPECT_TRUE(json["run"]["proxy"].is_null());
    EXPECT_TRUE(json["control"].is_null());
    EXPECT_EQ(json["summary"]["total"], 3);
    EXPECT_EQ(json["summary"]["clean"], 1);
    EXPECT_EQ(json["summary"]["intercepted"], 1);
    EXPECT_EQ(json["summary"]["blocked"], 1);
    EXPECT_EQ(json["summary"]["no-tls"], 0);
    EXPECT_EQ(json["summary"]["intercepted_names"], nlohmann::json::array({"bad.test:443"}));
    const auto& results = json["results"];
    ASSERT_EQ(results.size(), 3u);
    const auto& clean = results[0];
    EXPECT_EQ(clean["target"], "good.test:443");
    EXPECT_EQ(clean["sni"], "good.test");
    EXPECT_EQ(clean["status"], "clean");
    EXPECT_EQ(clean["tls"]["version"], "TLSv1.3");
    EXPECT_TRUE(clean["tls"]["alpn"].is_null());
    EXPECT_EQ(clean["root"]["spki_sha256"], pki::spki_sha256_hex(public_root_.cert.get()));
    EXPECT_EQ(clean["root"]["in_trust_store"], true);
    EXPECT_EQ(clean["leaf"]["sha256"], pki::sha256_fingerprint_hex(good.cert.get()));
    EXPECT_EQ(clean["chain"].size(), 1u);
    EXPECT_TRUE(clean["known_root"].is_null());
    EXPECT_TRUE(clean["control_comparison"].is_null());
    const auto& intercepted = results[1];
    EXPECT_EQ(intercepted["status"], "intercepted");
    EXPECT_EQ(intercepted["issuer"], "CN=Security Certificate,O=Middlebox");
    EXPECT_TRUE(intercepted["root"]["spki_sha256"].is_null());
    EXPECT_EQ(intercepted["verify_errors"][0], "untrusted_root");
    const auto& blocked = results[2];
    EXPECT_EQ(blocked["status"], "blocked");
    EXPECT_EQ(blocked["alert"], "access_denied");
    EXPECT_TRUE(blocked["tls"].is_null());
    EXPECT_TRUE(blocked["leaf"].is_null());
    // Every result has every key, so consumers never test for presence.
    for (const auto& result : results) {
        for (const char* key :
             {"target", "host", "port", "sni", "status", "reason", "address", "tls", "alert",
              "proxy_status", "issuer", "root", "known_root", "verify_errors", "verify_detail",
              "leaf", "chain", "control_comparison", "timings_ms"}) {
            EXPECT_TRUE(result.contains(key)) << key;
        }
    }

    const std::string table = render_table(report);
    EXPECT_NE(table.find("intercepted  bad.test:443"), std::string::npos) << table;
    EXPECT_NE(table.find("issuer: CN=Security Certificate,O=Middlebox"), std::string::npos)
        << table;
    EXPECT_NE(table.find("3 names: 1 clean, 1 intercepted, 1 blocked."), std::string::npos)
        << table;
    EXPECT_NE(table.find("TLS interception detected."), std::string::npos) << table;
}

}  // namespace
}  // namespace tlsgate::probe
