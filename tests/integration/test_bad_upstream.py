"""Bad upstreams: the client never completes a handshake with a certificate it trusts, and the log
says why; unreachable or unresolvable → 502.

By default (on_upstream_error = "mirror") the client's handshake completes with a stand-in from
tlsgate's untrusted CA that keeps the upstream's names and dates, so the client's own verification
fails the way it would directly; a client that goes ahead anyway (curl -k) gets a 502 page naming
the reason and never reaches the upstream. With "block" the client gets a fatal alert instead of
any certificate."""

import os
import re
import ssl
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import harness
from harness import curl

# origin key -> expected upstream_verify_error
CASES = {
    "expired": "expired",
    "notyet": "not_yet_valid",
    "selfsigned": "self_signed",
    "untrusted": "untrusted_root",
    "wronghost": "wrong_host",
    "weakkey": "weak_key",
    "sha1": "weak_signature",
}

# The one origin the block-mode gateway's policy mirrors by rule.
MIRRORED_BY_RULE = "notyet"

BLOCK_POLICY = f"""
on_upstream_error = "block"

[[rules]]
name = "mirror-by-rule"
action = "intercept"
hosts = ["{harness.TLS_ORIGINS[MIRRORED_BY_RULE][1]}"]
on_upstream_error = "mirror"
"""

PUBLIC_DER = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)
VERIFY_CODE = re.compile(rb"Verify return code: (\d+)")


def origin(w, key):
    host = harness.TLS_ORIGINS[key][1]
    return host, f"{host}:{w.port(key)}"


def nginx_saw(w, path):
    try:
        with open(os.path.join(w.nginx.dir, "access.log"), "rb") as f:
            return path.encode() in f.read()
    except FileNotFoundError:
        return False


def s_client(argv_tail):
    """openssl s_client, closing at once: (leaf certificate or None, verify return code)."""
    r = harness.run([harness.OPENSSL, "s_client", "-showcerts", *argv_tail], input=b"",
                    timeout=30)
    certs = PEM_CERT.findall(r.stdout)
    code = VERIFY_CODE.search(r.stdout)
    leaf = x509.load_pem_x509_certificate(certs[0]) if certs else None
    return leaf, int(code.group(1)) if code else None, r


def assert_alert_only(test, gw, key):
    """The old behaviour: a TLS alert, never a certificate."""
    host, authority = origin(gw.world, key)
    # curl trusting the gateway CA: a TLS handshake error (35), not a certificate-verify error
    # (60) and certainly not success
    r = curl(gw, f"https://{authority}/1k.bin", "-o", "/dev/null")
    test.assertEqual(r.returncode, 35,
                     f"{key}: curl should get a TLS alert: rc={r.returncode} {r.stderr!r}\n"
                     f"{gw.diagnostics()}")
    # a client that would accept any certificate still gets none: a fatal alert
    ctx = harness.client_context(verify=False)
    with test.assertRaises(ssl.SSLError) as caught:
        harness.tls_through(gw, authority, host, ctx).close()
    test.assertIn("alert", str(caught.exception).lower(), str(caught.exception))
    # same on the wire
    status, head, _, sock = harness.proxy_connect(gw, authority)
    test.assertEqual(status, 200, head)
    with sock:
        sock.sendall(harness.raw_client_hello(host))
        answer = harness.read_to_eof(sock, timeout=20)
    test.assertTrue(harness.is_fatal_alert(answer), f"{key}: got {answer[:16]!r}")
    test.assertEqual(answer[6], 40, f"{key}: handshake_failure alert")
    test.assertNotIn(0x16, [rec[0] for rec in harness.split_records(answer)],
                     "no ServerHello/Certificate before the alert")
    return gw.wait_log(lambda l: l.get("destination") == authority, count=3)


class MirroredBadUpstreamTest(unittest.TestCase):
    """The default: on_upstream_error = "mirror"."""

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w).start()
        cls.untrusted_ca_path = os.path.join(cls.gw.data_dir, "untrusted-ca.pem")
        with open(cls.untrusted_ca_path, "rb") as f:
            cls.untrusted_ca = x509.load_pem_x509_certificate(f.read())

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    def test_ca_show_names_the_untrusted_ca_and_warns_against_installing_it(self):
        r = harness.run([harness.BIN, "ca", "show", "--dir", self.gw.data_dir])
        self.assertEqual(r.returncode, 0, r.stderr)
        line = [l for l in r.stdout.decode().splitlines() if l.startswith("untrusted CA:")]
        self.assertEqual(len(line), 1, r.stdout)
        self.assertIn("do not install", line[0])
        self.assertIn("never install it", line[0])

    def logged(self, authority, count, action):
        """Runs action(), which makes `count` connections to `authority`, and returns their log
        lines once all are written. Every test waits for its own lines, so none is left to land
        among the next test's."""
        for_this_origin = lambda l: l.get("destination") == authority  # noqa: E731
        earlier = len([l for l in self.gw.log_lines() if for_this_origin(l)])
        action()
        return self.gw.wait_log(for_this_origin, count=earlier + count)[earlier:]

    def check_mirrored(self, key, code):
        host, authority = origin(self.w, key)
        path = f"/never-relayed-{key}"
        url = f"https://{authority}{path}"

        runs = {}

        def clients():
            # trusting the gateway CA: the certificate-verification error class, as directly
            runs["refused"] = curl(self.gw, url, "-o", "/dev/null")
            # going ahead anyway: the explanation page, never the upstream
            runs["went_ahead"] = curl(self.gw, url, "-k", "--suppress-connect-headers", "-D", "-",
                                      "-o", "-")

        lines = self.logged(authority, 2, clients)
        r = runs["refused"]
        self.assertEqual(r.returncode, 60,
                         f"{key}: curl should refuse the stand-in: rc={r.returncode} "
                         f"{r.stderr!r}\n{self.gw.diagnostics()}")
        r = runs["went_ahead"]
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, body = r.stdout.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 502 "), f"{key}: {head!r}")
        self.assertIn(b"content-type: text/html", head.lower(), head)
        text = body.decode()
        self.assertIn(f"<strong>{host}</strong>", text)
        self.assertIn(f"<code>{code}</code>", text)
        self.assertNotIn("<script", text)
        self.assertNotIn("http", text.replace("HTTP", ""), "no links or resources")
        self.assertFalse(nginx_saw(self.w, path), f"{key}: the request reached the upstream")

        (refused,) = [line for line in lines if "client_tls" not in line]
        (went_ahead,) = [line for line in lines if "client_tls" in line]
        for line in lines:
            self.assertEqual(line.get("upstream_verify_error"), code, f"{key}: {line}")
            self.assertEqual(line.get("upstream_error_action"), "mirror", line)
            self.assertEqual(line.get("action"), "intercept", line)
            self.assertIn("upstream certificate rejected", line.get("reason", ""), line)
            self.assertEqual((line.get("bytes_up"), line.get("bytes_down")), (0, 0),
                             f"{key}: nothing relayed: {line}")
            self.assertNotIn("client_rejection", line, "refusing a stand-in is expected")
            self.assertEqual(line.get("upstream_cert", {}).get("sha256"), self.w.leaf(key).sha256,
                             line)
        self.assertNotIn("client_tls", refused, refused)
        self.assertEqual(refused.get("http_status"), 200, "only the CONNECT was answered")
        self.assertEqual(went_ahead.get("http_status"), 502, went_ahead)
        self.assertEqual(went_ahead["client_tls"]["alpn"], "http/1.1", went_ahead)

    # test_<case> methods are added below, one per bad certificate

    def check_stand_in(self, key, verify_hostname=None):
        """The certificate the client sees is issued by the untrusted CA and keeps the upstream's
        names and dates: a client trusting that CA fails exactly as it fails directly."""
        host, authority = origin(self.w, key)
        upstream = self.w.leaf(key).cert
        hostname = ["-verify_hostname", verify_hostname] if verify_hostname else []
        direct, direct_code, r = s_client(
            ["-connect", f"127.0.0.1:{self.w.port(key)}", "-servername", host,
             "-CAfile", self.w.pki.root_path, *hostname])
        self.assertEqual(direct, upstream, r.stdout[-2000:])
        through_gateway = {}

        def clients():
            through_gateway["untrusted"] = s_client(
                ["-proxy", f"127.0.0.1:{self.gw.port}", "-connect", authority, "-servername",
                 host, "-CAfile", self.untrusted_ca_path, *hostname])
            through_gateway["real"] = s_client(
                ["-proxy", f"127.0.0.1:{self.gw.port}", "-connect", authority, "-servername",
                 host, "-CAfile", self.gw.ca_path])

        self.logged(authority, 2, clients)
        leaf, code, r = through_gateway["untrusted"]
        self.assertIsNotNone(leaf, f"{r.stdout[-2000:]!r}\n{self.gw.diagnostics()}")
        self.assertEqual(leaf.issuer, self.untrusted_ca.subject)
        harness.check_signature(leaf, self.untrusted_ca.public_key())
        self.assertIn("do not install", harness.cn_of(self.untrusted_ca.subject))
        self.assertNotEqual(leaf.issuer, self.gw.ca_cert().subject)
        self.assertEqual(leaf.not_valid_before, upstream.not_valid_before)
        self.assertEqual(leaf.not_valid_after, upstream.not_valid_after)
        self.assertEqual(harness.san_names(leaf), harness.san_names(upstream))
        self.assertEqual(harness.cn_of(leaf.subject), harness.cn_of(upstream.subject))
        self.assertNotEqual(leaf.public_key().public_bytes(*PUBLIC_DER),
                            upstream.public_key().public_bytes(*PUBLIC_DER))
        self.assertNotEqual(direct_code, 0)
        self.assertEqual(code, direct_code, "the same verification error as directly")
        # a client trusting the real gateway CA gets no further
        _, real_ca_code, _ = through_gateway["real"]
        self.assertNotIn(real_ca_code, (None, 0))
        return code

    def test_expired_stand_in_keeps_the_expired_dates(self):
        self.assertEqual(self.check_stand_in("expired"), 10)  # X509_V_ERR_CERT_HAS_EXPIRED

    def test_wrong_host_stand_in_keeps_the_wrong_names(self):
        code = self.check_stand_in("wronghost", verify_hostname="wronghost.test")
        self.assertEqual(code, 62)  # X509_V_ERR_HOSTNAME_MISMATCH
        self.assertEqual(harness.san_names(self.w.leaf("wronghost").cert), ["other.test"])

    def test_page_explains_the_reason_in_plain_words(self):
        for key, words in (("expired", "has expired"),
                           ("wronghost", "issued for a different name")):
            with self.subTest(key):
                _, authority = origin(self.w, key)
                runs = []
                self.logged(authority, 1, lambda: runs.append(
                    curl(self.gw, f"https://{authority}/", "-k", "-o", "-")))
                self.assertIn(words, runs[0].stdout.decode(), runs[0].stdout)

    def test_a_client_that_speaks_no_http_is_closed_after_the_handshake(self):
        host, authority = origin(self.w, "expired")
        received = []

        def client():
            tls = harness.tls_through(self.gw, authority, host,
                                      harness.client_context(verify=False))
            with tls:
                tls.sendall(b"\x00\x01 not http at all\r\n\r\n")
                tls.settimeout(harness.t(20))
                try:
                    while chunk := tls.recv(4096):
                        received.append(chunk)
                except (ssl.SSLError, ConnectionResetError):
                    pass

        (line,) = self.logged(authority, 1, client)
        self.assertEqual(b"".join(received), b"", "nothing but the close")
        self.assertIn("client_tls", line, line)
        self.assertNotEqual(line.get("http_status"), 502, line)
        self.assertEqual((line.get("bytes_up"), line.get("bytes_down")), (0, 0), line)

    def test_good_origin_still_works(self):
        r = curl(self.gw, f"https://origin.test:{self.w.port('valid')}/1k.bin", "-o", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.w.file("1k.bin"))
        # the stand-ins never reach the leaf cache: the good origin's leaf is the real CA's
        tls = harness.tls_through(self.gw, f"origin.test:{self.w.port('valid')}", "origin.test",
                                  harness.client_context(self.gw.ca_path))
        with tls:
            self.assertEqual(harness.peer_cert(tls).issuer, self.gw.ca_cert().subject)

    def test_the_untrusted_ca_is_kept_like_the_real_one_and_never_offered(self):
        key_path = os.path.join(self.gw.data_dir, "untrusted-ca.key")
        self.assertEqual(os.stat(key_path).st_mode & 0o777, 0o600)
        self.assertNotEqual(self.untrusted_ca.public_key().public_bytes(*PUBLIC_DER),
                            self.gw.ca_cert().public_key().public_bytes(*PUBLIC_DER))
        r = harness.run([harness.BIN, "ca", "export", "--format", "pem", "--dir", self.gw.data_dir])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(x509.load_pem_x509_certificate(r.stdout), self.gw.ca_cert())

    # ---------------------------------------------------------------- connect failures

    def assert_502(self, authority):
        status, head, body, _ = harness.proxy_connect(self.gw, authority, timeout=40)
        self.assertEqual(status, 502, f"CONNECT {authority}: {head!r} {body!r}\n"
                                      f"{self.gw.diagnostics()}")
        self.assertTrue(body.strip(), "a 502 carries the reason")
        return body.decode("utf-8", "replace")

    def test_unreachable_upstream_gets_502(self):
        port = harness.closed_port()
        text = self.assert_502(f"127.0.0.1:{port}")
        self.assertIn(str(port), text)
        self.assert_502(f"origin.test:{port}")
        r = curl(self.gw, f"https://origin.test:{port}/", "-o", "/dev/null")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("502", r.stderr.decode(), r.stderr)
        line = self.gw.wait_log(lambda l: l.get("destination") == f"127.0.0.1:{port}")[0]
        self.assertEqual(line.get("http_status"), 502, line)
        self.assertTrue(line.get("reason") or line.get("error"), line)

    def test_unresolvable_name_gets_502(self):
        self.assert_502("no-such-host.invalid:443")
        line = self.gw.wait_log(lambda l: l.get("destination") == "no-such-host.invalid:443")[0]
        self.assertEqual(line.get("http_status"), 502, line)


class BlockedBadUpstreamTest(unittest.TestCase):
    """on_upstream_error = "block": a fatal alert, never a certificate; a rule can still mirror."""

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w, policy=BLOCK_POLICY, workers=1).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    def check_blocked(self, key, code):
        for line in assert_alert_only(self, self.gw, key):
            self.assertEqual(line.get("upstream_verify_error"), code, f"{key}: {line}")
            self.assertEqual(line.get("upstream_error_action"), "block", line)
            self.assertTrue(line.get("reason") or line.get("error"), f"{key}: why? {line}")
            self.assertNotIn("client_tls", line, f"{key}: no client handshake: {line}")

    def test_a_rule_can_mirror_where_the_default_blocks(self):
        _, authority = origin(self.w, MIRRORED_BY_RULE)
        r = curl(self.gw, f"https://{authority}/", "-o", "/dev/null")
        self.assertEqual(r.returncode, 60, f"rc={r.returncode} {r.stderr!r}")
        line = self.gw.wait_log(lambda l: l.get("destination") == authority)[0]
        self.assertEqual(line.get("rule"), "mirror-by-rule", line)
        self.assertEqual(line.get("upstream_error_action"), "mirror", line)
        self.assertEqual(line.get("upstream_verify_error"), CASES[MIRRORED_BY_RULE], line)

    def test_check_config_names_the_setting(self):
        path = os.path.join(self.gw.dir, "check.toml")
        with open(path, "w") as f:
            f.write(f'listen = ["explicit@127.0.0.1:{harness.free_port()}"]\n'
                    f'policy = "{self.gw.policy_path}"\n')
        r = harness.run([harness.BIN, "check-config", "--config", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'on_upstream_error = "block"', r.stdout)
        self.assertIn(b'rule "mirror-by-rule": mirror', r.stdout)


class UpstreamHandshakeFailureTest(unittest.TestCase):
    """Upstream handshakes that fail for reasons other than the certificate."""

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w, workers=1).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def assert_alert(self, authority, sni):
        r = curl(self.gw, f"https://{authority}/", "-o", "/dev/null")
        self.assertEqual(r.returncode, 35, f"rc={r.returncode} {r.stderr!r}\n{self.gw.diagnostics()}")
        ctx = harness.client_context(verify=False)
        with self.assertRaises(ssl.SSLError) as caught:
            harness.tls_through(self.gw, authority, sni, ctx).close()
        self.assertIn("alert", str(caught.exception).lower(), str(caught.exception))
        lines = self.gw.wait_log(lambda l: l.get("destination") == authority, count=2)
        for line in lines:
            self.assertTrue(line.get("reason") or line.get("error"), line)
            self.assertNotIn("client_tls", line, line)

    def test_upstream_that_does_not_speak_tls(self):
        self.assert_alert(f"plain.test:{self.w.plain_port}", "plain.test")

    def test_upstream_with_only_tls_1_1(self):
        port = self.w.port("tls11")
        # precondition: the origin really serves TLS 1.1 to a client that allows it
        r = harness.run([harness.OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}",
                         "-servername", "tls11.test", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                        input=b"Q\n", timeout=30)
        self.assertIn(b"TLSv1.1", r.stdout, "the TLS 1.1 origin is not serving TLS 1.1")
        self.assert_alert(f"tls11.test:{port}", "tls11.test")


class OwnCaUpstreamTest(unittest.TestCase):
    """An upstream chain that ends at the gateway's own CA is refused, even when trusted."""

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        pki = cls.w.pki
        cls.gw = harness.Gateway(cls.w, workers=1,
                                 upstream_cas=[pki.root_path, pki.owned_ca_path])
        cls.gw.ca_dir = cls.gw.dir + "/owned-ca"
        r = harness.run([harness.BIN, "ca", "import", "--cert", pki.owned_ca_path, "--key",
                         pki.owned_ca_key_path, "--dir", cls.gw.ca_dir])
        if r.returncode != 0:
            cls.gw.cleanup()
            raise RuntimeError(f"ca import failed: {r.stderr!r}")
        cls.gw.argv += ["--ca-dir", cls.gw.ca_dir]
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def test_own_ca_upstream_is_refused(self):
        authority = f"owned.test:{self.w.port('owned')}"
        # the stand-in comes from the untrusted CA: a client trusting the gateway CA refuses it
        r = curl(self.gw, f"https://{authority}/1k.bin", "-o", "/dev/null",
                 cacert=self.w.pki.owned_ca_path)
        self.assertEqual(r.returncode, 60, f"rc={r.returncode} {r.stderr!r}\n{self.gw.diagnostics()}")
        r = curl(self.gw, f"https://{authority}/1k.bin", "-k", "-o", "-")
        self.assertIn(b"<code>own_ca</code>", r.stdout)
        lines = self.gw.wait_log(lambda l: l.get("destination") == authority, count=2)
        for line in lines:
            self.assertEqual(line.get("upstream_verify_error"), "own_ca", line)
            self.assertEqual(line.get("upstream_error_action"), "mirror", line)
            self.assertEqual((line.get("bytes_up"), line.get("bytes_down")), (0, 0), line)

    def test_other_origins_still_intercepted_with_the_imported_ca(self):
        r = curl(self.gw, f"https://origin.test:{self.w.port('valid')}/1k.bin", "-o", "-",
                 cacert=self.w.pki.owned_ca_path)
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{self.gw.diagnostics()}")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))


def _add_case_tests():
    for key, code in CASES.items():
        def mirrored(self, key=key, code=code):
            self.check_mirrored(key, code)
        mirrored.__name__ = f"test_{key}_origin_is_mirrored_with_{code}"
        setattr(MirroredBadUpstreamTest, mirrored.__name__, mirrored)
        if key == MIRRORED_BY_RULE:
            continue

        def blocked(self, key=key, code=code):
            self.check_blocked(key, code)
        blocked.__name__ = f"test_{key}_origin_gets_alert_and_{code}"
        setattr(BlockedBadUpstreamTest, blocked.__name__, blocked)


_add_case_tests()


if __name__ == "__main__":
    unittest.main()
