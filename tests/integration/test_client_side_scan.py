"""sslscan against the gateway's client-facing TLS (issue #7): the floor a client meets on an
intercepted connection. sslscan cannot speak through a proxy, so a small shim turns each of its
connections into a CONNECT to origin.test through the gateway and then relays bytes; every scan
handshake is answered by the gateway with a minted certificate."""

import re
import shutil
import socket
import threading
import unittest
import xml.etree.ElementTree as ET

import harness

SSLSCAN = shutil.which("sslscan")

# Suites that must never be accepted: no forward secrecy, no authentication, broken ciphers.
FORBIDDEN = re.compile(r"NULL|EXP|RC4|DES|3DES|ADH|AECDH|anon|MD5|PSK|SRP|CAMELLIA|SEED|IDEA")


class ConnectShim:
    """Listens on loopback; each accepted connection becomes a CONNECT through the gateway."""

    def __init__(self, gw, authority):
        self.gw, self.authority = gw, authority
        self.listener = socket.create_server((harness.LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(client,), daemon=True).start()

    def _one(self, client):
        try:
            status, _, rest, upstream = harness.proxy_connect(self.gw, self.authority)
        except OSError:
            client.close()
            return
        if status != 200:
            client.close()
            upstream.close()
            return
        if rest:
            client.sendall(rest)

        def pipe(a, b):
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)
        client.close()
        upstream.close()

    def close(self):
        self.listener.close()


@unittest.skipUnless(SSLSCAN, "sslscan is not installed")
class ClientSideScan(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w).start()
        cls.shim = ConnectShim(cls.gw, f"origin.test:{cls.w.port('valid')}")
        r = harness.run([SSLSCAN, "--xml=-", "--no-colour", "--sni-name=origin.test",
                         f"{harness.LOOPBACK}:{cls.shim.port}"], timeout=harness.t(240))
        cls.output = r.stdout.decode(errors="replace")
        cls.report = ET.fromstring(cls.output[cls.output.index("<?xml"):])

    @classmethod
    def tearDownClass(cls):
        cls.shim.close()
        cls.gw.cleanup()

    def test_the_scan_reached_the_gateway(self):
        self.assertIsNone(self.report.find("error"), self.output[-2000:])
        certificate = self.report.find(".//certificate/subject")
        self.assertIsNotNone(certificate, self.output[-2000:])
        issuer = self.report.find(".//certificate/issuer")
        self.assertIn("tlsgate", issuer.text, "the scanned certificate is a minted one")

    def test_only_tls_1_2_and_1_3(self):
        enabled = {(p.get("type"), p.get("version")): p.get("enabled")
                   for p in self.report.iter("protocol")}
        for legacy in (("ssl", "2"), ("ssl", "3"), ("tls", "1.0"), ("tls", "1.1")):
            self.assertNotEqual(enabled.get(legacy), "1", f"{legacy} enabled: {enabled}")
        self.assertEqual(enabled.get(("tls", "1.2")), "1", enabled)
        self.assertEqual(enabled.get(("tls", "1.3")), "1", enabled)

    def test_only_forward_secret_aead_suites(self):
        accepted = [c for c in self.report.iter("cipher")
                    if c.get("status") in ("accepted", "preferred")]
        self.assertTrue(accepted, self.output[-2000:])
        for cipher in accepted:
            name, version = cipher.get("cipher"), cipher.get("sslversion")
            self.assertIn(version, ("TLSv1.2", "TLSv1.3"), name)
            self.assertIsNone(FORBIDDEN.search(name), f"{name} accepted")
            if version == "TLSv1.2":
                self.assertRegex(name, r"^(ECDHE|DHE)-", f"{name}: no forward secrecy")
                self.assertRegex(name, r"GCM|CHACHA20", f"{name}: not an AEAD")
            if cipher.get("bits") is not None:
                self.assertGreaterEqual(int(cipher.get("bits")), 128, name)

    def test_no_compression_renegotiation_or_heartbleed(self):
        compression = self.report.find(".//compression")
        if compression is not None:
            self.assertEqual(compression.get("supported"), "0")
        renegotiation = self.report.find(".//renegotiation")
        if renegotiation is not None:
            self.assertNotEqual((renegotiation.get("supported"), renegotiation.get("secure")),
                                ("1", "0"), "insecure renegotiation")
        for heartbleed in self.report.iter("heartbleed"):
            self.assertEqual(heartbleed.get("vulnerable"), "0")


if __name__ == "__main__":
    unittest.main()
