"""Interception through the explicit proxy: bodies, the minted certificate, ALPN, bulk, load, log."""

import concurrent.futures
import datetime
import hashlib
import os
import ssl
import sys
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

import harness
from harness import curl


class InterceptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    def url(self, path, host="origin.test", key="valid"):
        return f"https://{host}:{self.w.port(key)}{path}"

    def curl_ok(self, *args, **kw):
        r = curl(self.gw, *args, **kw)
        self.assertEqual(r.returncode, 0, f"curl {args}: {r.stderr!r}\n{self.gw.diagnostics()}")
        return r

    def minted_leaf(self, host="origin.test", key="valid", sni=None, alpn=None):
        ctx = harness.client_context(self.gw.ca_path, alpn=alpn)
        with harness.tls_through(self.gw, f"{host}:{self.w.port(key)}", sni or host, ctx) as tls:
            status, _, body = harness.https_get(tls, sni or host, "/1k.bin")
            self.assertEqual(status, 200)
            self.assertEqual(body, self.w.file("1k.bin"))
            return harness.peer_cert(tls), tls.version()

    # ---------------------------------------------------------------- bodies and issuer

    def test_intercepted_body_equals_origin_file(self):
        r = self.curl_ok(self.url("/1k.bin"), "-o", "-")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))
        r = self.curl_ok(self.url("/64k.bin", host="www.origin.test"), "-o", "-")
        self.assertEqual(r.stdout, self.w.file("64k.bin"))

    def test_client_trusting_only_the_public_root_rejects_the_minted_cert(self):
        # the client does not see the origin's certificate: only the gateway CA makes it work
        r = curl(self.gw, self.url("/1k.bin"), "-o", "/dev/null", cacert=self.w.pki.root_path)
        self.assertEqual(r.returncode, 60, f"expected a certificate-verify failure: {r.stderr!r}")

    def test_issuer_is_the_gateway_ca(self):
        leaf, _ = self.minted_leaf()
        ca = self.gw.ca_cert()
        self.assertEqual(leaf.issuer, ca.subject)
        harness.check_signature(leaf, ca.public_key())
        # curl sees the same issuer
        r = self.curl_ok(self.url("/1k.bin"), "-o", "/dev/null", "-w", "%{certs}")
        certs = r.stdout.decode("latin-1")
        ca_cn = harness.cn_of(ca.subject)
        self.assertIn(ca_cn, certs, f"curl -w %{{certs}} did not show issuer {ca_cn}:\n{certs}")

    def test_minted_leaf_properties(self):
        origin = self.w.leaf("valid")
        before = datetime.datetime.utcnow().replace(microsecond=0)
        leaf, _ = self.minted_leaf(host="www.origin.test")
        ca = self.gw.ca_cert()
        # names mirror the verified upstream certificate
        self.assertEqual(harness.san_names(leaf), origin.dns_names())
        self.assertEqual(harness.cn_of(leaf.subject), harness.cn_of(origin.cert.subject))
        # an end-entity certificate for TLS servers
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
        self.assertFalse(bc.ca)
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, list(eku))
        self.assertIsInstance(leaf.signature_hash_algorithm, hashes.SHA256)
        # validity: within upstream's and at most 397 days
        self.assertLessEqual(leaf.not_valid_after, origin.cert.not_valid_after)
        # at most 397 days from issuance; the whole window (notBefore may be back-dated for clock
        # skew) within the 398 days browsers enforce
        self.assertLessEqual(leaf.not_valid_after, before + datetime.timedelta(days=397, minutes=5))
        self.assertLessEqual(leaf.not_valid_after - leaf.not_valid_before,
                             datetime.timedelta(days=398))
        self.assertLessEqual(leaf.not_valid_before, before + datetime.timedelta(minutes=5))
        # ECDSA P-256 leaf key, not the CA key, not the origin key
        self.assertIsInstance(leaf.public_key(), ec.EllipticCurvePublicKey)
        self.assertEqual(leaf.public_key().curve.name, "secp256r1")
        self.assertNotEqual(harness.spki_der(leaf.public_key()), harness.spki_der(ca.public_key()))
        self.assertNotEqual(harness.spki_der(leaf.public_key()),
                            harness.spki_der(origin.cert.public_key()))

    def test_leaf_for_short_lived_rsa_origin(self):
        origin = self.w.leaf("rsa")  # RSA-2048, valid for 30 days
        leaf, _ = self.minted_leaf(host="rsa.origin.test", key="rsa")
        self.assertEqual(harness.san_names(leaf), ["rsa.origin.test"])
        self.assertLessEqual(leaf.not_valid_after, origin.cert.not_valid_after,
                             "notAfter no later than upstream's")
        key = leaf.public_key()
        self.assertIsInstance(key, rsa.RSAPublicKey, "an RSA origin gets an RSA leaf")
        self.assertEqual(key.key_size, 2048)
        self.assertEqual(key.public_numbers().e, 65537)
        self.assertNotEqual(harness.spki_der(key), harness.spki_der(origin.cert.public_key()))

    def test_different_names_get_different_serials(self):
        a, _ = self.minted_leaf(host="origin.test")
        b, _ = self.minted_leaf(host="www.origin.test")
        c, _ = self.minted_leaf(host="rsa.origin.test", key="rsa")
        self.assertEqual(len({a.serial_number, b.serial_number, c.serial_number}), 3)
        for cert in (a, b, c):
            self.assertGreater(cert.serial_number, 0)

    def test_client_without_sni_uses_the_connect_authority(self):
        ctx = harness.client_context(self.gw.ca_path, check_hostname=False)
        status, head, body, sock = harness.proxy_connect(self.gw,
                                                         f"origin.test:{self.w.port('valid')}")
        self.assertEqual(status, 200, head)
        with ctx.wrap_socket(sock, server_hostname=None) as tls:  # no SNI sent
            leaf = harness.peer_cert(tls)
            status, _, body = harness.https_get(tls, "origin.test", "/1k.bin")
        self.assertEqual(status, 200)
        self.assertEqual(body, self.w.file("1k.bin"))
        self.assertIn("origin.test", harness.san_names(leaf))
        self.assertEqual(leaf.issuer, self.gw.ca_cert().subject)

    # ---------------------------------------------------------------- ALPN

    def test_h2_end_to_end_with_curl(self):
        r = self.curl_ok("--http2", self.url("/proto"), "-w", "\n%{http_version}")
        body, _, version = r.stdout.decode().rpartition("\n")
        self.assertEqual(version, "2", "curl negotiated h2 with the gateway")
        self.assertEqual(body.strip(), "HTTP/2.0 h2", "the origin saw HTTP/2 too")

    def test_http11_client_stays_http11(self):
        r = self.curl_ok("--http1.1", self.url("/proto"), "-w", "\n%{http_version}")
        body, _, version = r.stdout.decode().rpartition("\n")
        self.assertEqual(version, "1.1")
        self.assertEqual(body.strip(), "HTTP/1.1", "the origin saw HTTP/1.1")

    def test_alpn_mirrored_with_python_client(self):
        for offer, expected in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1"),
                                (None, None)):
            with self.subTest(offer=offer):
                ctx = harness.client_context(self.gw.ca_path, alpn=offer)
                with harness.tls_through(self.gw, f"origin.test:{self.w.port('valid')}",
                                         "origin.test", ctx) as tls:
                    self.assertEqual(tls.selected_alpn_protocol(), expected)
                    if expected != "h2":
                        status, _, body = harness.https_get(tls, "origin.test", "/proto")
                        self.assertEqual(status, 200)
                        self.assertEqual(body.strip(), b"HTTP/1.1")

    # ---------------------------------------------------------------- bulk and load

    def test_5mb_download_intact(self):
        for proto in ("--http1.1", "--http2"):
            with self.subTest(proto=proto):
                r = self.curl_ok(proto, self.url("/5m.bin"), "-o", "-", timeout=120)
                self.assertEqual(len(r.stdout), 5 * 1024 * 1024)
                self.assertEqual(hashlib.sha256(r.stdout).hexdigest(),
                                 hashlib.sha256(self.w.file("5m.bin")).hexdigest())

    def test_upload_put_then_get_back(self):
        payload = harness.content("upload", 3 * 1024 * 1024 + 17)
        path = os.path.join(self.gw.dir, "upload.bin")
        with open(path, "wb") as f:
            f.write(payload)
        for proto in ("--http1.1", "--http2"):
            with self.subTest(proto=proto):
                name = f"/dav/up-{proto.strip('-')}.bin"
                r = self.curl_ok(proto, "-T", path, self.url(name), "-o", "/dev/null",
                                 "-w", "%{http_code}", timeout=120)
                self.assertIn(r.stdout.decode(), ("201", "204"))
                r = self.curl_ok(proto, self.url(name), "-o", "-", timeout=120)
                self.assertEqual(hashlib.sha256(r.stdout).digest(),
                                 hashlib.sha256(payload).digest())

    def test_many_sequential_requests(self):
        # separate connections, one after the other
        for i in range(15):
            r = self.curl_ok(self.url(f"/1k.bin?seq={i}"), "-o", "-")
            self.assertEqual(r.stdout, self.w.file("1k.bin"), f"request {i}")
        # many requests on one kept-alive intercepted connection
        urls = [self.url(f"/1k.bin?ka={i}") for i in range(40)]
        r = self.curl_ok("--http1.1", *urls, "-w", "%{http_code}\n", "-o", "/dev/null",
                         *sum([["-o", "/dev/null"] for _ in urls[1:]], []))
        self.assertEqual(r.stdout.decode().split(), ["200"] * 40)

    def test_50_parallel_requests(self):
        def one(i):
            return curl(self.gw, "--http1.1", self.url(f"/64k.bin?par={i}"), "-o", "-",
                        timeout=90)

        expected = self.w.file("64k.bin")
        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(one, range(50)))
        failures = [(i, r.returncode, r.stderr) for i, r in enumerate(results)
                    if r.returncode != 0 or r.stdout != expected]
        self.assertEqual(failures, [], self.gw.diagnostics())
        self.assertTrue(self.gw.alive())

    def test_parallel_python_clients_h2_and_http11(self):
        expected = self.w.file("1k.bin")
        port = self.w.port("valid")

        def one(i):
            ctx = harness.client_context(self.gw.ca_path, alpn=["http/1.1"])
            host = "origin.test" if i % 2 else "www.origin.test"
            with harness.tls_through(self.gw, f"{host}:{port}", host, ctx, timeout=60) as tls:
                return harness.https_get(tls, host, f"/1k.bin?py={i}", timeout=60)

        with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
            results = list(pool.map(one, range(50)))
        self.assertEqual([r[0] for r in results], [200] * 50)
        self.assertTrue(all(r[2] == expected for r in results))

    # ---------------------------------------------------------------- connection log

    def test_connection_log_records_the_interception(self):
        origin = self.w.leaf("valid")
        port = self.w.port("valid")
        ctx = harness.client_context(self.gw.ca_path, alpn=["http/1.1"])
        tls = harness.tls_through(self.gw, f"origin.test:{port}", "origin.test", ctx)
        client = "%s:%d" % tls.getsockname()[:2]
        status, _, body = harness.https_get(tls, "origin.test", "/64k.bin")
        self.assertEqual(status, 200)
        try:
            tls.unwrap()  # close_notify, a clean end
        except (ssl.SSLError, OSError):
            pass
        tls.close()
        (line,) = self.gw.wait_log(lambda l: l.get("client") == client)
        msg = f"log line: {line}"
        self.assertEqual(line.get("action"), "intercept", msg)
        self.assertEqual(line.get("kind"), "tunnel", msg)
        self.assertEqual(line.get("sni"), "origin.test", msg)
        self.assertEqual(line.get("destination"), f"origin.test:{port}", msg)
        self.assertEqual(line.get("destination_address"), f"127.0.0.1:{port}", msg)
        self.assertEqual(line.get("listener"), f"explicit@127.0.0.1:{self.gw.port}", msg)
        for key in ("ts", "id", "duration_ms", "reason"):
            self.assertIn(key, line, msg)
        self.assertIsInstance(line["duration_ms"], (int, float))
        cert = line.get("upstream_cert", {})
        self.assertIn(harness.PKI.ISSUING_CN, cert.get("issuer", ""), msg)
        self.assertIn("origin.test", cert.get("subject", ""), msg)
        self.assertEqual(harness.norm_hex(cert.get("sha256", "")), origin.sha256, msg)
        for leg in ("client_tls", "upstream_tls"):
            self.assertIn(line.get(leg, {}).get("version"), ("TLSv1.3", "TLSv1.2"), msg)
            self.assertEqual(line.get(leg, {}).get("alpn"), "http/1.1", msg)
            self.assertTrue(line.get(leg, {}).get("cipher"), msg)
        self.assertGreaterEqual(line.get("bytes_down", 0), 64 * 1024, msg)
        self.assertGreater(line.get("bytes_up", 0), 0, msg)
        self.assertLess(line.get("bytes_up", 0), 4096, msg)
        self.assertNotIn("upstream_verify_error", line, msg)
        self.assertNotIn("error", line, "a cleanly closed connection logs no error: " + msg)

    def test_upstream_sessions_resume_after_unclean_client_ends(self):
        # Clients that close without close_notify (many do) must not spoil the upstream session
        # the next connection resumes: OpenSSL marks the session of a connection freed without
        # our close_notify as not resumable. One worker, so every connection shares one cache.
        gw = harness.Gateway(self.w, workers=1).start()
        try:
            port = self.w.port("valid")
            clients = []
            for i in range(6):
                ctx = harness.client_context(gw.ca_path, alpn=["http/1.1"])
                tls = harness.tls_through(gw, f"origin.test:{port}", "origin.test", ctx)
                clients.append("%s:%d" % tls.getsockname()[:2])
                status, _, _ = harness.https_get(tls, "origin.test", f"/1k.bin?unclean={i}")
                self.assertEqual(status, 200)
                tls.close()  # no close_notify
                gw.wait_log(lambda l, c=clients[-1]: l.get("client") == c)
            lines = {l.get("client"): l for l in gw.log_lines()}
            resumed = [lines[c].get("upstream_tls", {}).get("resumed", False) for c in clients]
            self.assertEqual(resumed, [False] + [True] * 5, gw.diagnostics())
        finally:
            gw.cleanup()

    def test_clean_curl_requests_log_no_error(self):
        # curl ends with close_notify; the gateway passes it on. Nothing failed: no "error".
        for proto in ("--http1.1", "--http2"):
            with self.subTest(proto=proto):
                r = self.curl_ok(proto, self.url("/1k.bin"), "-o", "/dev/null",
                                 "-w", "%{local_port}")
                client = f"127.0.0.1:{r.stdout.decode()}"
                (line,) = self.gw.wait_log(lambda l: l.get("client") == client)
                self.assertEqual(line.get("action"), "intercept", line)
                self.assertNotIn("error", line, f"a clean {proto} request logged an error: {line}")


class OneWorkerFairness(unittest.TestCase):
    """A relay reads again at once while bytes keep coming (no reactor round trip per TLS
    record); it must still let the worker's other connections run."""

    def test_a_fast_download_does_not_starve_other_connections_on_its_worker(self):
        w = harness.world()
        gw = harness.Gateway(w, workers=1, extra_args=["--no-flows"]).start()
        self.addCleanup(gw.cleanup)
        port = w.port("valid")
        argv = [harness.CURL, "-sS", "--http1.1", "--proxy", gw.proxy, "--cacert", gw.ca_path,
                "-o", "/dev/null", "-w", "%{size_download}",
                f"https://origin.test:{port}/200m.bin"]
        download = harness.subprocess.Popen(argv, stdout=harness.subprocess.PIPE,
                                            stderr=harness.subprocess.PIPE)
        self.addCleanup(download.kill)
        # small requests, one after another, for as long as the download runs
        during = []
        while download.poll() is None:
            r = curl(gw, f"https://origin.test:{port}/1k.bin", "-o", "/dev/null", "-w",
                     "%{time_total}", timeout=60)
            self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{gw.diagnostics()}")
            if download.poll() is None:
                during.append(float(r.stdout))
        out, err = download.communicate()
        self.assertEqual(download.returncode, 0, err)
        self.assertEqual(int(out), harness.BIG_FILE_SIZE)
        print(f"[intercept] fairness: {len(during)} small requests completed during a "
                     f"{harness.BIG_FILE_SIZE >> 20} MiB download on the same worker, slowest "
                     f"{max(during, default=0) * 1e3:.0f} ms, median {sorted(during)[len(during) // 2] * 1e3 if during else 0:.0f} ms", file=sys.stderr, flush=True)
        # A relay that never suspended would hold them all until the download ended. How many
        # fit depends on how the machine shares its cores between curl, nginx and the gateway.
        self.assertGreaterEqual(len(during), 1, "small requests waited for the download")


if __name__ == "__main__":
    unittest.main()
