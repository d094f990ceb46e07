"""Listeners with the +proxy suffix: a PROXY v1/v2 header is required and names the client."""

import socket
import struct
import unittest

import harness


class ProxyProtocolListener(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.port = harness.free_port()
        cls.gw = harness.Gateway(cls.w, workers=1, extra_args=[
            "--listen", f"explicit+proxy@127.0.0.1:{cls.port}"])
        cls.gw.start()
        harness.wait_for_port(cls.port, proc=cls.gw.proc, what="+proxy listener")
        cls.echo = harness.EchoServer()

    @classmethod
    def tearDownClass(cls):
        cls.echo.close()
        cls.gw.cleanup()

    def tunnel_after(self, header):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=harness.t(20))
        s.sendall(header + f"CONNECT 127.0.0.1:{self.echo.port} HTTP/1.1\r\n\r\n".encode())
        return s

    def test_v1_header_names_the_real_client(self):
        with self.tunnel_after(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n") as s:
            status, head, _ = harness.read_http_head(s)
            self.assertEqual(status, 200, head)
            s.sendall(b"ping\n")
            self.assertEqual(harness.read_some(s, want=5), b"ping\n")
        line = self.gw.wait_log(lambda l: l.get("client", "").startswith("203.0.113.7:"))[0]
        self.assertTrue(line["proxied_by"].startswith("127.0.0.1:"), line)

    def test_v2_header_names_the_real_client(self):
        addresses = socket.inet_aton("198.51.100.23") + socket.inet_aton("127.0.0.1")
        addresses += struct.pack(">HH", 51000, 443)
        header = (b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x11" + struct.pack(">H", len(addresses)) +
                  addresses)
        with self.tunnel_after(header) as s:
            status, head, _ = harness.read_http_head(s)
            self.assertEqual(status, 200, head)
        self.gw.wait_log(lambda l: l.get("client", "").startswith("198.51.100.23:51000"))

    def test_connection_without_a_header_is_refused(self):
        with self.tunnel_after(b"") as s:
            self.assertEqual(harness.read_some(s, want=1), b"")
        line = self.gw.wait_log(lambda l: "PROXY protocol header required" in l.get("error", ""))
        self.assertTrue(line)
        # ... and the listener keeps serving.
        self.test_v1_header_names_the_real_client()


if __name__ == "__main__":
    unittest.main()
