"""Missing intermediates fetched from the leaf's AIA caIssuers URL, as browsers do (issue #7).

Origins here serve their leaf alone. The gateway trusts only the test root; the intermediate is
served over plain HTTP by a small server on loopback (its name resolved with --resolve, like an
upstream's). A fetched intermediate is cached per worker (one worker here, so the count is
exact); a URL that fails, serves no certificate, or is not http:// leaves the chain refused as
an untrusted root.
"""

import http.server
import shutil
import tempfile
import threading
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID

import harness
from test_upstream_checklist import Origin, SniServer, authority, build, name, p256, pem


class IssuerServer:
    """Plain HTTP on loopback: /intermediate.der (DER), /garbage.der (not a certificate); 404
    otherwise. Counts requests per path."""

    def __init__(self, der):
        self.requests = {}
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with lock:
                    outer.requests[self.path] = outer.requests.get(self.path, 0) + 1
                body = {"/intermediate.der": der, "/garbage.der": b"<html>hello</html>"}.get(
                    self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/pkix-cert")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((harness.LOOPBACK, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path):
        return self.requests.get(path, 0)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def aia(*urls):
    return (x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                x509.UniformResourceIdentifier(u)) for u in urls]), False)


class MissingIntermediates(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tlsgate-aia-")
        root = authority("AIA Root")
        fetched = authority("AIA Fetched Issuing", root)
        # The bad cases' issuer is never fetched, so the good case's cache entry cannot help them.
        other = authority("AIA Other Issuing", root)
        cls.issuer_server = IssuerServer(fetched.cert.public_bytes(serialization.Encoding.DER))
        base = f"http://aia.test:{cls.issuer_server.port}"

        def leaf(host, issuer, extra=()):
            key = p256()
            return Origin(host, [build(name(host), key, issuer, sans=[host], extra=extra)], key)

        origins = [
            # an LDAP URL first, as some CAs list: skipped for the http:// one
            leaf("aia-good.test", fetched,
                 [aia("ldap://aia.test/cn=issuing", f"{base}/intermediate.der")]),
            leaf("aia-404.test", other, [aia(f"{base}/missing.der")]),
            leaf("aia-garbage.test", other, [aia(f"{base}/garbage.der")]),
            leaf("aia-https.test", other,
                 [aia(f"https://aia.test:{cls.issuer_server.port}/intermediate.der")]),
            leaf("no-aia.test", other),
        ]
        cls.server = SniServer(cls.dir, origins)
        trust = f"{cls.dir}/trust.pem"
        with open(trust, "wb") as f:
            f.write(pem(root.cert))
        resolve = ["--resolve", f"aia.test={harness.LOOPBACK}"]
        for origin in origins:
            resolve += ["--resolve", f"{origin.host}={harness.LOOPBACK}"]
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w, workers=1, upstream_cas=[trust], extra_args=resolve)
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.server.close()
        cls.issuer_server.close()
        if not harness.KEEP:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def authority(self, host):
        return f"{host}:{self.server.port}"

    def get(self, host):
        return harness.curl(self.gw, f"https://{self.authority(host)}/", "-o", "-", timeout=30)

    def logged(self, host, count=1):
        return self.gw.wait_log(lambda l: l.get("destination") == self.authority(host),
                                count=count)

    def assert_refused(self, host, count=1):
        r = self.get(host)
        # 35: a fatal alert; 60: the mirrored stand-in curl does not trust. Never 0.
        self.assertIn(r.returncode, (35, 60), f"{host}: {r.stderr!r}\n{self.gw.diagnostics()}")
        line = self.logged(host, count)[-1]
        self.assertEqual(line.get("upstream_verify_error"), "untrusted_root", line)
        self.assertNotIn("upstream_aia_fetched", line)
        return line

    def test_fetched_once_then_cached(self):
        for attempt in range(2):
            r = self.get("aia-good.test")
            self.assertEqual(r.returncode, 0, f"attempt {attempt}: {r.stderr!r}\n"
                                              f"{self.gw.diagnostics()}")
            self.assertEqual(r.stdout, b"ok")
        lines = self.logged("aia-good.test", count=2)
        self.assertEqual(lines[0].get("upstream_aia_fetched"),
                         f"http://aia.test:{self.issuer_server.port}/intermediate.der", lines[0])
        self.assertEqual(lines[0].get("action"), "intercept", lines[0])
        self.assertNotIn("upstream_verify_error", lines[0])
        self.assertNotIn("upstream_aia_fetched", lines[1])  # the cache answered
        self.assertEqual(self.issuer_server.count("/intermediate.der"), 1)

    def test_a_url_that_fails_leaves_the_chain_refused(self):
        line = self.assert_refused("aia-404.test")
        self.assertIn("HTTP status 404", line.get("upstream_aia_error", ""), line)
        line = self.assert_refused("aia-garbage.test")
        self.assertIn("not a certificate", line.get("upstream_aia_error", ""), line)
        # A failure is cached too: the next connection does not fetch again.
        line = self.assert_refused("aia-404.test", count=2)
        self.assertIn("cached", line.get("upstream_aia_error", ""), line)
        self.assertEqual(self.issuer_server.count("/missing.der"), 1)
        self.assertEqual(self.issuer_server.count("/garbage.der"), 1)

    def test_only_http_urls_are_fetched(self):
        line = self.assert_refused("aia-https.test")
        self.assertNotIn("upstream_aia_error", line)

    def test_no_aia_is_refused_as_before(self):
        line = self.assert_refused("no-aia.test")
        self.assertNotIn("upstream_aia_error", line)


if __name__ == "__main__":
    unittest.main()
