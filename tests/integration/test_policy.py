"""Policy end to end: passthrough, block by CONNECT and by SNI, host patterns, CIDRs, ports,
first match wins, and a default of block."""

import ssl
import unittest

import harness
from harness import curl

POLICY = """
default = "intercept"

[[rules]]
name = "pass-rule"
action = "passthrough"
hosts = ["pass.test"]

[[rules]]
name = "first-match"
action = "passthrough"
hosts = ["ok.dot.test"]

[[rules]]
name = "block-connect"
action = "block"
hosts = ["blocked.test"]

[[rules]]
name = "block-sni"
action = "block"
hosts = ["sni-blocked.test"]

[[rules]]
name = "star-rule"
action = "block"
hosts = ["*.star.test"]

[[rules]]
name = "dot-rule"
action = "block"
hosts = [".dot.test"]

[[rules]]
name = "cidr-rule"
action = "block"
cidrs = ["127.0.0.2/32"]

[[rules]]
name = "port-rule"
action = "block"
ports = [{blocked_port}]
"""


class PolicyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.port = cls.w.port("policy")
        cls.blocked_port = harness.free_port()
        # something listening on 127.0.0.2, so a name resolving there gets past the connect
        cls.echo2 = harness.EchoServer("127.0.0.2")
        cls.gw = harness.Gateway(
            cls.w, policy=POLICY.format(blocked_port=cls.blocked_port),
            extra_args=["--resolve", "cidr.test=127.0.0.2"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.echo2.close()

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    def url(self, host, path="/1k.bin"):
        return f"https://{host}:{self.port}{path}"

    # ---------------------------------------------------------------- helpers

    def assert_connect_blocked(self, authority, rule):
        status, head, body, _ = harness.proxy_connect(self.gw, authority)
        self.assertEqual(status, 403, f"CONNECT {authority}: {head!r}\n{self.gw.diagnostics()}")
        text = body.decode("utf-8", "replace")
        self.assertTrue(text.strip(), "a 403 carries a reason")
        self.assertEqual(len(text.strip().splitlines()), 1, f"one-line reason: {text!r}")
        return text

    def assert_intercepted(self, host):
        r = curl(self.gw, self.url(host), "-o", "-")
        self.assertEqual(r.returncode, 0, f"{host}: {r.stderr!r}\n{self.gw.diagnostics()}")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))
        ctx = harness.client_context(self.gw.ca_path)
        with harness.tls_through(self.gw, f"{host}:{self.port}", host, ctx) as tls:
            self.assertEqual(harness.peer_cert(tls).issuer, self.gw.ca_cert().subject)

    def assert_passthrough(self, authority, sni):
        """The client sees the origin's own certificate, verified against the public root."""
        ctx = harness.client_context(self.w.pki.root_path)
        with harness.tls_through(self.gw, authority, sni, ctx) as tls:
            self.assertEqual(tls.getpeercert(binary_form=True), self.w.leaf("policy").der)
            status, _, body = harness.https_get(tls, sni, "/1k.bin")
        self.assertEqual(status, 200)
        self.assertEqual(body, self.w.file("1k.bin"))

    def assert_tls_blocked(self, authority, sni):
        """CONNECT is accepted, the ClientHello gets a fatal alert and never a certificate."""
        # even a client that accepts any certificate gets none
        ctx = harness.client_context(verify=False)
        with self.assertRaises(ssl.SSLError) as caught:
            harness.tls_through(self.gw, authority, sni, ctx).close()
        self.assertIn("alert", str(caught.exception).lower(), str(caught.exception))
        # on the wire: a plaintext fatal alert, no ServerHello/Certificate records
        status, head, _, sock = harness.proxy_connect(self.gw, authority)
        self.assertEqual(status, 200, head)
        with sock:
            sock.sendall(harness.raw_client_hello(sni))
            answer = harness.read_to_eof(sock, timeout=15)
        self.assertTrue(harness.is_fatal_alert(answer), f"expected a fatal alert, got {answer[:16]!r}")
        self.assertEqual(answer[6], 49, "access_denied (README: a block decided from the SNI)")
        self.assertNotIn(0x16, [r[0] for r in harness.split_records(answer)],
                         "no handshake records (no certificate) before the alert")

    # ---------------------------------------------------------------- passthrough

    def test_passthrough_shows_the_origin_certificate(self):
        self.assert_passthrough(f"pass.test:{self.port}", "pass.test")
        r = curl(self.gw, self.url("pass.test"), "-o", "-", cacert=self.w.pki.root_path)
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{self.gw.diagnostics()}")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))
        r = curl(self.gw, self.url("pass.test"), "-o", "/dev/null", "-w", "%{certs}",
                 cacert=self.w.pki.root_path)
        self.assertIn(harness.PKI.ISSUING_CN, r.stdout.decode("latin-1"),
                      "curl sees the origin's real issuer")
        # the gateway CA alone does not verify it: it really is the origin's certificate
        r = curl(self.gw, self.url("pass.test"), "-o", "/dev/null")
        self.assertEqual(r.returncode, 60, r.stderr)

    def test_passthrough_h2(self):
        r = curl(self.gw, "--http2", self.url("pass.test", "/proto"), "-w", "\n%{http_version}",
                 cacert=self.w.pki.root_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, version = r.stdout.decode().rpartition("\n")
        self.assertEqual((body.strip(), version), ("HTTP/2.0 h2", "2"))

    def test_passthrough_decided_by_sni_when_connect_names_an_address(self):
        self.assert_passthrough(f"127.0.0.1:{self.port}", "pass.test")

    def test_passthrough_decided_by_connect_authority_without_sni(self):
        ctx = harness.client_context(verify=False)
        status, head, _, sock = harness.proxy_connect(self.gw, f"pass.test:{self.port}")
        self.assertEqual(status, 200, head)
        with ctx.wrap_socket(sock, server_hostname=None) as tls:
            self.assertEqual(tls.getpeercert(binary_form=True), self.w.leaf("policy").der)

    def test_passthrough_logged(self):
        ctx = harness.client_context(self.w.pki.root_path)
        tls = harness.tls_through(self.gw, f"pass.test:{self.port}", "pass.test", ctx)
        client = "%s:%d" % tls.getsockname()[:2]
        harness.https_get(tls, "pass.test", "/1k.bin")
        tls.close()
        (line,) = self.gw.wait_log(lambda l: l.get("client") == client)
        self.assertEqual(line.get("action"), "passthrough", line)
        self.assertEqual(line.get("rule"), "pass-rule", line)
        self.assertEqual(line.get("sni"), "pass.test", line)
        self.assertGreater(line.get("bytes_down", 0), 1024, line)
        self.assertGreater(line.get("bytes_up", 0), 0, line)

    # ---------------------------------------------------------------- block

    def test_block_by_connect_host_gets_403_with_reason(self):
        text = self.assert_connect_blocked(f"blocked.test:{self.port}", "block-connect")
        self.assertTrue(text.strip())
        r = curl(self.gw, self.url("blocked.test"), "-o", "/dev/null")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("403", r.stderr.decode(), r.stderr)
        line = self.gw.wait_log(lambda l: l.get("destination") == f"blocked.test:{self.port}")[0]
        self.assertEqual(line.get("action"), "block", line)
        self.assertEqual(line.get("rule"), "block-connect", line)
        self.assertEqual(line.get("http_status"), 403, line)

    def test_block_by_sni_sends_a_tls_alert(self):
        self.assert_tls_blocked(f"allowed.test:{self.port}", "sni-blocked.test")
        self.assert_tls_blocked(f"127.0.0.1:{self.port}", "sni-blocked.test")
        line = self.gw.wait_log(lambda l: l.get("sni") == "sni-blocked.test")[0]
        self.assertEqual(line.get("action"), "block", line)
        self.assertEqual(line.get("rule"), "block-sni", line)
        self.assertNotIn("client_tls", line)

    def test_block_by_sni_with_curl_connect_to(self):
        # curl sends CONNECT allowed.test:port but SNI sni-blocked.test
        r = curl(self.gw, "--connect-to", f"sni-blocked.test:{self.port}:allowed.test:{self.port}",
                 self.url("sni-blocked.test"), "-o", "/dev/null")
        self.assertEqual(r.returncode, 35, f"a TLS alert, not a certificate error: {r.stderr!r}")

    def test_allowed_name_is_intercepted(self):
        self.assert_intercepted("allowed.test")

    # ---------------------------------------------------------------- host patterns

    def test_star_pattern_matches_subdomains_only(self):
        self.assert_connect_blocked(f"a.star.test:{self.port}", "star-rule")
        self.assert_connect_blocked(f"deep.a.star.test:{self.port}", "star-rule")
        self.assert_connect_blocked(f"A.STAR.TEST:{self.port}", "star-rule")
        self.assert_tls_blocked(f"allowed.test:{self.port}", "a.star.test")
        self.assert_intercepted("star.test")    # the apex is not a subdomain
        self.assert_intercepted("xstar.test")   # a suffix that is not a label boundary

    def test_dot_pattern_matches_apex_and_subdomains(self):
        self.assert_connect_blocked(f"dot.test:{self.port}", "dot-rule")
        self.assert_connect_blocked(f"a.dot.test:{self.port}", "dot-rule")
        self.assert_connect_blocked(f"deep.a.dot.test:{self.port}", "dot-rule")
        self.assert_tls_blocked(f"allowed.test:{self.port}", "dot.test")
        self.assert_tls_blocked(f"allowed.test:{self.port}", "a.dot.test")
        self.assert_intercepted("xdot.test")

    def test_first_match_wins(self):
        # ok.dot.test: "first-match" (passthrough) comes before ".dot.test" (block)
        self.assert_passthrough(f"ok.dot.test:{self.port}", "ok.dot.test")

    # ---------------------------------------------------------------- CIDRs and ports

    def test_cidr_rule_on_an_address_literal(self):
        self.assert_connect_blocked(f"127.0.0.2:{self.echo2.port}", "cidr-rule")

    def test_cidr_rule_on_a_resolved_name(self):
        self.assert_connect_blocked(f"cidr.test:{self.echo2.port}", "cidr-rule")
        line = self.gw.wait_log(lambda l: l.get("destination") == f"cidr.test:{self.echo2.port}")[0]
        self.assertEqual(line.get("rule"), "cidr-rule", line)

    def test_port_rule(self):
        self.assert_connect_blocked(f"allowed.test:{self.blocked_port}", "port-rule")


class DefaultBlockTest(unittest.TestCase):
    POLICY = """
default = "block"

[[rules]]
name = "allow-origin"
action = "intercept"
hosts = ["origin.test"]
"""

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w, policy=cls.POLICY, workers=1).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def test_allowed_host_is_intercepted(self):
        r = curl(self.gw, f"https://origin.test:{self.w.port('valid')}/1k.bin", "-o", "-")
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{self.gw.diagnostics()}")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))

    def test_everything_else_is_blocked(self):
        for authority in (f"www.origin.test:{self.w.port('valid')}",
                          f"127.0.0.1:{self.w.port('valid')}", f"pass.test:{self.w.port('policy')}"):
            with self.subTest(authority=authority):
                status, head, body, _ = harness.proxy_connect(self.gw, authority)
                self.assertEqual(status, 403, f"{head!r} {body!r}")
        r = curl(self.gw, f"https://www.origin.test:{self.w.port('valid')}/1k.bin", "-o",
                 "/dev/null")
        self.assertNotEqual(r.returncode, 0)
        line = self.gw.wait_log(
            lambda l: l.get("destination") == f"www.origin.test:{self.w.port('valid')}")[0]
        self.assertEqual(line.get("action"), "block", line)

    def test_sni_of_a_blocked_name_inside_an_allowed_connect(self):
        ctx = harness.client_context(verify=False)
        with self.assertRaises(ssl.SSLError) as caught:
            harness.tls_through(self.gw, f"origin.test:{self.w.port('valid')}", "www.origin.test",
                                ctx).close()
        self.assertIn("alert", str(caught.exception).lower())


if __name__ == "__main__":
    unittest.main()
