"""The portal (install page, downloads) in a real browser, /metrics and /healthz, SIGHUP reload
under load, refusing a readable CA key, and dropping privileges."""

import concurrent.futures
import os
import plistlib
import re
import shutil
import signal
import subprocess
import threading
import time
import unittest
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

import harness
from harness import curl

CHROMIUM = shutil.which("chromium")
OUTPUT = os.environ.get("TLSGATE_TEST_OUTPUT", os.path.join(harness.REPO, "build", "test-output"))
ANDROID_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Mobile Safari/537.36")

POLICY = """
default = "intercept"
[[rules]]
name = "no-ads"
action = "block"
hosts = ["blocked.test"]
"""


def fetch(url, ua=ANDROID_UA, proxy=None, timeout=20):
    handlers = [urllib.request.ProxyHandler({"http": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": ua})
    try:
        with opener.open(request, timeout=harness.t(timeout)) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metric(text, name, **labels):
    """The value of one sample in Prometheus text, or 0 when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    m = re.search(r"^" + pattern + r"$", text, re.M)
    return float(m.group(1)) if m else 0.0


def public_key_der(cert):
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


class PortalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.dir = harness.tempfile.mkdtemp(prefix="tlsgate-portal-")
        cls.portal_port = harness.free_port()
        config = os.path.join(cls.dir, "config.toml")
        with open(config, "w") as f:
            f.write('[portal]\noperator = "Example <b>Lab</b> IT"\n'
                    'contact = "security@example.test"\n'
                    'notice = "Traffic is inspected for malware."\n')
        cls.gw = harness.Gateway(cls.w, policy=POLICY, extra_args=[
            "--config", config, "--listen", f"portal@{harness.LOOPBACK}:{cls.portal_port}"])
        cls.gw.start()
        harness.wait_for_port(cls.portal_port, proc=cls.gw.proc, what="portal")
        cls.base = f"http://{harness.LOOPBACK}:{cls.portal_port}"
        cls.ca = cls.gw.ca_cert()
        cls.fingerprint = ":".join(f"{b:02X}" for b in cls.ca.fingerprint(hashes.SHA256()))
        os.makedirs(OUTPUT, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    # -------------------------------------------------------------------------- the page

    def test_page_names_operator_fingerprint_and_opens_the_visitors_platform(self):
        status, headers, body = fetch(self.base + "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertIn("default-src 'none'", headers["Content-Security-Policy"])
        html = body.decode()
        self.assertIn(f'id="ca-fingerprint-sha256">{self.fingerprint}<', html)
        self.assertIn("Example &lt;b&gt;Lab&lt;/b&gt; IT", html)  # operator text, escaped
        self.assertNotIn("<script", html.lower())
        sections = re.findall(r'<section id="(platform-[a-z-]+|browser-[a-z-]+)"', html)
        self.assertEqual(sections[0], "platform-android", sections)
        for name in ("windows", "macos", "ios", "android", "linux-debian", "linux-fedora"):
            self.assertIn(f"platform-{name}", sections)
        self.assertIn("browser-firefox", sections)
        self.assertIn("browser-chromium-linux", sections)
        # no external resources: every src/href is relative
        for ref in re.findall(r'(?:src|href)="([^"]*)"', html):
            self.assertTrue(ref.startswith("/") or ref.startswith("#"), ref)

    def test_downloads_parse_to_the_same_key(self):
        want = public_key_der(self.ca)
        certs = {}
        for name in ("tlsgate-ca.pem", "tlsgate-ca.crt", "tlsgate-ca.cer", "tlsgate-ca.p12",
                     "tlsgate-ca.mobileconfig"):
            status, headers, body = fetch(f"{self.base}/cert/{name}")
            self.assertEqual(status, 200, name)
            self.assertIn("attachment", headers.get("Content-Disposition", ""))
            path = os.path.join(self.dir, name)
            with open(path, "wb") as f:
                f.write(body)
            certs[name] = (path, body)
        # openssl reads each format
        for name, form in (("tlsgate-ca.pem", "PEM"), ("tlsgate-ca.crt", "DER"),
                           ("tlsgate-ca.cer", "DER")):
            r = harness.run(["openssl", "x509", "-inform", form, "-in", certs[name][0], "-noout",
                             "-fingerprint", "-sha256"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(self.fingerprint.encode(), r.stdout)
        r = harness.run(["openssl", "pkcs12", "-in", certs["tlsgate-ca.p12"][0], "-nokeys",
                         "-passin", "pass:"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(public_key_der(x509.load_pem_x509_certificate(r.stdout)), want)
        self.assertNotIn(b"PRIVATE KEY", r.stdout)
        profile = plistlib.loads(certs["tlsgate-ca.mobileconfig"][1])
        self.assertEqual(profile["PayloadType"], "Configuration")
        payload = profile["PayloadContent"][0]
        self.assertEqual(payload["PayloadType"], "com.apple.security.root")
        self.assertEqual(public_key_der(x509.load_der_x509_certificate(payload["PayloadContent"])),
                         want)
        self.assertEqual(public_key_der(x509.load_der_x509_certificate(certs["tlsgate-ca.crt"][1])),
                         want)

    def test_the_proxy_answers_tlsgate_local_itself(self):
        status, _, body = fetch("http://tlsgate.local/", proxy=self.gw.proxy)
        self.assertEqual(status, 200)
        self.assertIn(self.fingerprint.encode(), body)
        status, _, body = fetch("http://tlsgate.local/cert/tlsgate-ca.pem", proxy=self.gw.proxy)
        self.assertEqual(status, 200)
        self.assertEqual(x509.load_pem_x509_certificate(body).fingerprint(hashes.SHA256()),
                         self.ca.fingerprint(hashes.SHA256()))
        status, _, _ = fetch("http://tlsgate.local/nothing-here", proxy=self.gw.proxy)
        self.assertEqual(status, 404)

    def test_healthz(self):
        status, _, body = fetch(self.base + "/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))

    @unittest.skipIf(CHROMIUM is None, "chromium is not installed")
    def test_headless_chromium_renders_the_portal_directly_and_through_the_proxy(self):
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-dev-shm-usage",
                 f"--user-data-dir={os.path.join(self.dir, 'chromium')}"]
        for label, extra, url in (
                ("direct", [], self.base + "/"),
                ("proxy", [f"--proxy-server={self.gw.proxy}"], "http://tlsgate.local/")):
            r = harness.run(flags + extra + ["--dump-dom", url], timeout=120)
            dom = r.stdout.decode("utf-8", "replace")
            self.assertIn(f'id="ca-fingerprint-sha256">{self.fingerprint}<', dom,
                          f"{label}: {r.stderr[-2000:]!r}")
            # Chromium on Linux: the Linux section and the Chromium NSS section come first, open
            first = re.findall(r'<section id="(platform-[a-z-]+|browser-[a-z-]+)"', dom)[:2]
            self.assertTrue(first[0].startswith("platform-linux"), first)
            self.assertEqual(first[1], "browser-chromium-linux")
            shot = os.path.join(OUTPUT, f"portal-{label}.png")
            r = harness.run(flags + extra + ["--window-size=1200,2400", f"--screenshot={shot}",
                                             url], timeout=120)
            self.assertTrue(os.path.exists(shot) and os.path.getsize(shot) > 10000,
                            r.stderr[-2000:])

    # ------------------------------------------------------------------------------ metrics

    def test_metrics_follow_known_traffic(self):
        before = fetch(self.base + "/metrics")[2].decode()
        url = f"https://origin.test:{self.w.port('valid')}/1k.bin"
        for _ in range(3):
            r = curl(self.gw, url, "-o", "/dev/null")
            self.assertEqual(r.returncode, 0, r.stderr)
        r = curl(self.gw, f"https://blocked.test:{self.w.port('valid')}/", "-o", "/dev/null")
        self.assertNotEqual(r.returncode, 0)
        r = curl(self.gw, f"https://expired.test:{self.w.port('expired')}/", "-o", "/dev/null")
        self.assertNotEqual(r.returncode, 0)
        # a client without the CA rejects our certificate: counted as unknown_ca
        r = curl(self.gw, url, "-o", "/dev/null", cacert=self.w.pki.root_path)
        self.assertEqual(r.returncode, 60)
        time.sleep(0.5)
        after = fetch(self.base + "/metrics")[2].decode()

        def delta(name, **labels):
            return metric(after, name, **labels) - metric(before, name, **labels)

        self.assertEqual(delta("tlsgate_decisions_total", action="intercept"), 5)
        self.assertEqual(delta("tlsgate_decisions_total", action="block"), 1)
        self.assertEqual(delta("tlsgate_upstream_verify_failures_total", reason="expired"), 1)
        self.assertEqual(delta("tlsgate_handshake_failures_total", side="upstream",
                               reason="expired"), 1)
        self.assertEqual(delta("tlsgate_handshake_failures_total", side="client",
                               reason="unknown_ca"), 1)
        # the expired origin got the default: a mirrored stand-in, which curl refused
        self.assertEqual(delta("tlsgate_upstream_error_actions_total", action="mirror"), 1)
        self.assertEqual(delta("tlsgate_upstream_error_actions_total", action="block"), 0)
        self.assertEqual(delta("tlsgate_mirror_pages_total"), 0)
        self.assertGreaterEqual(delta("tlsgate_connections_total", mode="explicit",
                                      action="intercept"), 3)
        self.assertGreaterEqual(delta("tlsgate_certificate_cache_hits_total")
                                + delta("tlsgate_certificate_cache_misses_total"), 4)
        self.assertGreater(delta("tlsgate_bytes_relayed_total", direction="server_to_client"),
                           3 * 1024)
        self.assertGreaterEqual(delta("tlsgate_records_total", sink="flows", result="written"), 3)
        self.assertIn("# TYPE tlsgate_mint_duration_seconds histogram", after)
        self.assertIn('tlsgate_mint_duration_seconds_bucket{le="+Inf"}', after)
        self.assertGreaterEqual(metric(after, "tlsgate_connections_active"), 0)


class OperationsTest(unittest.TestCase):
    def test_reload_under_load_loses_no_connection_and_switches_policy(self):
        w = harness.world()
        gw = harness.Gateway(w, policy=POLICY)
        gw.start()
        try:
            url = f"https://origin.test:{w.port('valid')}/64k.bin"
            other = f"https://www.origin.test:{w.port('valid')}/1k.bin"
            self.assertEqual(curl(gw, other, "-o", "/dev/null").returncode, 0)
            stop = threading.Event()
            results = []

            def load():
                while not stop.is_set():
                    r = curl(gw, url, url, "-o", "/dev/null", "-o", "/dev/null",
                             "-w", "%{http_code}\n")
                    results.append((r.returncode, r.stdout))

            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(load) for _ in range(4)]
                time.sleep(1.0)
                with open(gw.policy_path, "w") as f:
                    f.write(POLICY + '\n[[rules]]\nname = "reloaded"\naction = "block"\n'
                                     'hosts = ["www.origin.test"]\n')
                gw.proc.send_signal(signal.SIGHUP)
                time.sleep(1.5)
                # an invalid file is rejected; the reloaded policy stays
                with open(gw.policy_path, "w") as f:
                    f.write("default = \"sideways\"\n")
                gw.proc.send_signal(signal.SIGHUP)
                time.sleep(1.0)
                stop.set()
                for fut in futures:
                    fut.result()
            self.assertGreater(len(results), 8)
            failed = [r for r in results if r[0] != 0 or r[1].split() != [b"200", b"200"]]
            self.assertEqual(failed, [], f"{len(failed)} of {len(results)} requests failed")
            r = curl(gw, other, "-o", "/dev/null")
            self.assertNotEqual(r.returncode, 0, "www.origin.test should be blocked after the reload")
            stderr = open(gw.stderr_path, "rb").read().decode()
            self.assertIn("reloaded", stderr)
            self.assertIn("reload rejected", stderr)
            self.assertTrue(gw.alive(), gw.diagnostics())
        finally:
            gw.cleanup()

    def test_a_readable_ca_key_prevents_start(self):
        w = harness.world()
        d = harness.tempfile.mkdtemp(prefix="tlsgate-key-")
        try:
            r = harness.run([harness.BIN, "ca", "init", "--dir", d])
            self.assertEqual(r.returncode, 0, r.stderr)
            os.chmod(os.path.join(d, "ca.key"), 0o644)
            r = harness.run([harness.BIN, "run", "--ca-dir", d, "--data-dir", d, "--listen",
                             f"explicit@{harness.LOOPBACK}:{harness.free_port()}"], timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"refusing to start", r.stderr)
            self.assertIn(b"chmod 600", r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        del w

    @unittest.skipIf(os.geteuid() != 0, "needs root to drop privileges")
    def test_drops_privileges_after_binding(self):
        w = harness.world()
        d = harness.tempfile.mkdtemp(prefix="tlsgate-user-")
        os.chmod(d, 0o755)
        config = os.path.join(d, "config.toml")
        with open(config, "w") as f:
            f.write('user = "nobody"\n')
        gw = harness.Gateway(w, extra_args=["--config", config],
                             data_dir=os.path.join(d, "data"))
        gw.start()
        try:
            # the listeners are bound (port open) just before the drop: wait for it
            deadline = time.monotonic() + harness.t(10)
            while True:
                with open(f"/proc/{gw.proc.pid}/status") as f:
                    status = f.read()
                uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
                if uid.group(1) != "0" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(uid.group(1), str(65534), status)
            self.assertEqual(uid.group(2), str(65534))
            self.assertRegex(status, r"CapEff:\s+0+\n")
            r = curl(gw, f"https://origin.test:{w.port('valid')}/1k.bin", "-o", "/dev/null")
            self.assertEqual(r.returncode, 0, r.stderr + gw.diagnostics().encode())
            gw.wait_log(lambda line: line.get("action") == "intercept")
        finally:
            gw.cleanup()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
