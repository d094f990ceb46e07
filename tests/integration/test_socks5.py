"""SOCKS5 listener (RFC 1928 CONNECT, RFC 1929 username/password) with real curl."""

import os
import socket
import struct
import subprocess
import unittest

import harness

POLICY = """
default = "intercept"

[[rules]]
name = "forbidden"
action = "block"
hosts = ["blocked.test"]
"""


def curl_socks(proxy, url, *args, cacert=None):
    argv = [harness.CURL, "-sS", "--max-time", str(int(harness.t(20))), "--socks5-hostname",
            proxy, *args]
    if cacert:
        argv += ["--cacert", cacert]
    return subprocess.run(argv + [url], capture_output=True, timeout=harness.t(60))


class Socks5WithCredentials(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.socks_port = harness.free_port()
        cls.config = os.path.join(harness.tempfile.mkdtemp(prefix="tlsgate-socks-"), "tlsgate.toml")
        with open(cls.config, "w") as f:
            f.write('[socks5]\nusers = { alice = "wonderland" }\n')
        cls.gw = harness.Gateway(cls.w, policy=POLICY, workers=1, extra_args=[
            "--listen", f"socks5@127.0.0.1:{cls.socks_port}", "--config", cls.config])
        cls.gw.start()
        harness.wait_for_port(cls.socks_port, proc=cls.gw.proc, what="socks5 listener")
        cls.url = f"https://origin.test:{cls.w.port('valid')}/1k.bin"

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def proxy(self, credentials=""):
        return f"{credentials}127.0.0.1:{self.socks_port}"

    def test_right_credentials_are_intercepted(self):
        r = curl_socks(self.proxy("alice:wonderland@"), self.url, "-o", "-", cacert=self.gw.ca_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.w.file("1k.bin"))
        line = self.gw.wait_log(lambda l: l.get("listener", "").startswith("socks5") and
                                l.get("action") == "intercept")[0]
        self.assertEqual(line["sni"], "origin.test", line)

    def test_wrong_password_is_refused(self):
        r = curl_socks(self.proxy("alice:nope@"), self.url, "-o", "/dev/null",
                       cacert=self.gw.ca_path)
        self.assertEqual(r.returncode, 97, r.stderr)

    def test_no_credentials_is_refused_when_users_are_configured(self):
        r = curl_socks(self.proxy(), self.url, "-o", "/dev/null", cacert=self.gw.ca_path)
        self.assertEqual(r.returncode, 97, r.stderr)

    def test_blocked_host_gets_not_allowed_by_ruleset(self):
        # By hand, to see the reply code itself: greeting, credentials, CONNECT blocked.test:443.
        with socket.create_connection(("127.0.0.1", self.socks_port), timeout=harness.t(20)) as s:
            s.sendall(b"\x05\x01\x02")
            self.assertEqual(harness.read_some(s, want=2)[:2], b"\x05\x02")
            s.sendall(b"\x01\x05alice\x0awonderland")
            self.assertEqual(harness.read_some(s, want=2)[:2], b"\x01\x00")
            name = b"blocked.test"
            s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", 443))
            reply = harness.read_some(s, want=2)
            self.assertEqual(reply[:2], b"\x05\x02", reply)

    def test_unreachable_port_gets_connection_refused(self):
        port = harness.closed_port()
        with socket.create_connection(("127.0.0.1", self.socks_port), timeout=harness.t(20)) as s:
            s.sendall(b"\x05\x01\x02")
            harness.read_some(s, want=2)
            s.sendall(b"\x01\x05alice\x0awonderland")
            harness.read_some(s, want=2)
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port))
            reply = harness.read_some(s, want=2)
            self.assertEqual(reply[:2], b"\x05\x05", reply)

    def test_raw_tcp_through_socks(self):
        echo = harness.EchoServer()
        try:
            with socket.create_connection(("127.0.0.1", self.socks_port),
                                          timeout=harness.t(20)) as s:
                s.sendall(b"\x05\x01\x02")
                harness.read_some(s, want=2)
                s.sendall(b"\x01\x05alice\x0awonderland")
                harness.read_some(s, want=2)
                s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") +
                          struct.pack(">H", echo.port))
                reply = harness.read_some(s, want=10)
                self.assertEqual(reply[:2], b"\x05\x00", reply)
                s.sendall(b"hello through socks\n")
                self.assertEqual(harness.read_some(s, want=20), b"hello through socks\n")
        finally:
            echo.close()


if __name__ == "__main__":
    unittest.main()
