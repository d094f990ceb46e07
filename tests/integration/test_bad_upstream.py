"""Bad upstreams: the client never completes a handshake with a certificate it trusts, gets a TLS
alert instead of any certificate, and the log says why; unreachable or unresolvable → 502."""

import ssl
import unittest

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


class BadUpstreamTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    def check_rejected(self, key, code):
        host = harness.TLS_ORIGINS[key][1]
        port = self.w.port(key)
        authority = f"{host}:{port}"

        # curl trusting the gateway CA: a TLS handshake error (35), not a certificate-verify
        # error (60) and certainly not success
        r = curl(self.gw, f"https://{authority}/1k.bin", "-o", "/dev/null")
        self.assertEqual(r.returncode, 35,
                         f"{key}: curl should get a TLS alert: rc={r.returncode} {r.stderr!r}\n"
                         f"{self.gw.diagnostics()}")
        # a client that would accept any certificate still gets none: a fatal alert
        ctx = harness.client_context(verify=False)
        with self.assertRaises(ssl.SSLError) as caught:
            harness.tls_through(self.gw, authority, host, ctx).close()
        self.assertIn("alert", str(caught.exception).lower(), str(caught.exception))
        # same on the wire
        status, head, _, sock = harness.proxy_connect(self.gw, authority)
        self.assertEqual(status, 200, head)
        with sock:
            sock.sendall(harness.raw_client_hello(host))
            answer = harness.read_to_eof(sock, timeout=20)
        self.assertTrue(harness.is_fatal_alert(answer), f"{key}: got {answer[:16]!r}")
        self.assertEqual(answer[6], 40, f"{key}: handshake_failure alert")
        self.assertNotIn(0x16, [rec[0] for rec in harness.split_records(answer)],
                         "no ServerHello/Certificate before the alert")

        lines = self.gw.wait_log(lambda l: l.get("destination") == authority, count=3)
        for line in lines:
            self.assertEqual(line.get("upstream_verify_error"), code, f"{key}: {line}")
            self.assertTrue(line.get("reason") or line.get("error"), f"{key}: why? {line}")
            self.assertNotIn("client_tls", line, f"{key}: no client handshake: {line}")

    # test_<case> methods are added below, one per bad certificate

    def test_good_origin_still_works(self):
        r = curl(self.gw, f"https://origin.test:{self.w.port('valid')}/1k.bin", "-o", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.w.file("1k.bin"))

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
        r = curl(self.gw, f"https://{authority}/1k.bin", "-o", "/dev/null")
        self.assertEqual(r.returncode, 35, f"rc={r.returncode} {r.stderr!r}\n{self.gw.diagnostics()}")
        line = self.gw.wait_log(lambda l: l.get("destination") == authority)[0]
        self.assertEqual(line.get("upstream_verify_error"), "own_ca", line)

    def test_other_origins_still_intercepted_with_the_imported_ca(self):
        r = curl(self.gw, f"https://origin.test:{self.w.port('valid')}/1k.bin", "-o", "-",
                 cacert=self.w.pki.owned_ca_path)
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{self.gw.diagnostics()}")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))


def _make(key, code):
    def test(self):
        self.check_rejected(key, code)
    test.__name__ = f"test_{key}_origin_gets_alert_and_{code}"
    test.__doc__ = None
    return test


for _key, _code in CASES.items():
    _t = _make(_key, _code)
    setattr(BadUpstreamTest, _t.__name__, _t)


if __name__ == "__main__":
    unittest.main()
