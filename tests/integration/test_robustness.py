"""Garbage, malformed and oversized input, split ClientHellos, raw tunnels, plain HTTP forwarding
with keep-alive, and graceful shutdown."""

import hashlib
import os
import random
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness
from harness import curl, t

POLICY = """
default = "intercept"

[[rules]]
name = "pass-rule"
action = "passthrough"
hosts = ["pass.test"]

[[rules]]
name = "block-sni"
action = "block"
hosts = ["sni-blocked.test"]
"""


class RobustnessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.echo = harness.EchoServer()
        cls.gw = harness.Gateway(cls.w, policy=POLICY).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.echo.close()

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    def assert_still_serving(self):
        self.assertTrue(self.gw.alive(), "the gateway died\n" + self.gw.diagnostics())
        r = curl(self.gw, f"https://origin.test:{self.w.port('valid')}/1k.bin", "-o", "-")
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{self.gw.diagnostics()}")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))

    def send_raw(self, data, timeout=15):
        """Sends `data` to the proxy port (tolerating an early close) and returns the answer."""
        sock = socket.create_connection((harness.LOOPBACK, self.gw.port), timeout=t(timeout))
        answer = b""
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = harness.read_some(sock, timeout=timeout, want=1 << 30)
        return answer

    def assert_400_or_close(self, data, what, require_400=False):
        """The issue: garbage before or instead of a request gets a 400 and a close. The answer
        must come, and the connection must be closed, well before our read timeout."""
        start = time.monotonic()
        answer = self.send_raw(data)
        elapsed = time.monotonic() - start
        if answer:
            self.assertTrue(answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400")
                            or answer.startswith(b"HTTP/1.1 431"),
                            f"{what}: unexpected answer {answer[:80]!r}")
            self.assertIn(b"\r\n\r\n", answer)
        else:
            self.assertFalse(require_400, f"{what}: closed without a 400")
        self.assertLess(elapsed, t(10), f"{what}: the gateway took {elapsed:.1f}s to answer/close")
        self.assert_still_serving()
        return answer

    # ---------------------------------------------------------------- garbage on the proxy port

    def test_random_bytes(self):
        rng = random.Random(1234)
        for i in range(3):
            data = b"\x00\xff" + rng.randbytes(4096)
            self.assert_400_or_close(data, f"random bytes #{i}", require_400=True)

    def test_hello_line(self):
        self.assert_400_or_close(b"HELLO\r\n\r\n", "HELLO", require_400=True)

    def test_garbage_request_line(self):
        self.assert_400_or_close(b"GET\r\n\r\n", "GET without a target", require_400=True)
        self.assert_400_or_close(b"CONNECT\r\n\r\n", "CONNECT without a target", require_400=True)
        self.assert_400_or_close(b"CONNECT no-port HTTP/1.1\r\n\r\n", "CONNECT without a port",
                                 require_400=True)

    def test_bare_client_hello_without_connect(self):
        self.assert_400_or_close(harness.raw_client_hello("origin.test"), "bare ClientHello",
                                 require_400=True)

    def test_enormous_header(self):
        data = (f"GET http://plain.test:{self.w.plain_port}/1k.bin HTTP/1.1\r\n"
                f"Host: plain.test\r\nX-Big: ").encode() + b"a" * (70 * 1024) + b"\r\n\r\n"
        self.assert_400_or_close(data, "70 KiB header")
        data = (f"CONNECT origin.test:{self.w.port('valid')} HTTP/1.1\r\n").encode() + \
            b"".join(b"X-H%05d: %s\r\n" % (i, b"v" * 60) for i in range(1200)) + b"\r\n"
        self.assert_400_or_close(data, "CONNECT with 80 KiB of headers")

    def test_client_that_closes_midway(self):
        for data in (b"CONNECT origin.te", b"GET http://plain.test/ HTTP/1.1\r\nHost: pl"):
            with socket.create_connection((harness.LOOPBACK, self.gw.port), timeout=t(10)) as s:
                s.sendall(data)
        status, head, _, sock = harness.proxy_connect(self.gw, f"origin.test:{self.w.port('valid')}")
        self.assertEqual(status, 200, head)
        with sock:
            sock.sendall(harness.raw_client_hello("origin.test")[:100])
        self.assert_still_serving()

    # ---------------------------------------------------------------- malformed TLS in a tunnel

    def tunnel(self, authority=None):
        authority = authority or f"origin.test:{self.w.port('valid')}"
        status, head, _, sock = harness.proxy_connect(self.gw, authority)
        self.assertEqual(status, 200, f"{head}\n{self.gw.diagnostics()}")
        return sock

    def test_malformed_client_hello_in_tunnel_gets_alert(self):
        rng = random.Random(99)
        # a ClientHello whose session id length runs past the end of the message
        body = b"\x03\x03" + rng.randbytes(32) + b"\xff" + rng.randbytes(40)
        bad_length = b"\x16\x03\x01" + (len(body) + 4).to_bytes(2, "big") + b"\x01" + \
            len(body).to_bytes(3, "big") + body
        # a handshake record that is not a ClientHello (a ServerHello)
        hs = b"\x02" + (38).to_bytes(3, "big") + b"\x03\x03" + rng.randbytes(32) + b"\x00\x13\x01\x00"
        not_hello = b"\x16\x03\x03" + len(hs).to_bytes(2, "big") + hs
        # a real ClientHello whose extension block claims more bytes than the message holds
        real = harness.raw_client_hello("origin.test")
        at = harness.extensions_length_offset(real)
        corrupt = bytearray(real)
        corrupt[at:at + 2] = (int.from_bytes(real[at:at + 2], "big") + 64).to_bytes(2, "big")
        # the first half of a real ClientHello, then an application-data record
        half = harness.reframe(real, 200)
        first = harness.split_records(half)[0]
        interleaved = b"\x16" + first[1] + len(first[2]).to_bytes(2, "big") + first[2] + \
            b"\x17\x03\x03\x00\x05hello"
        for name, data in (("bad lengths", bad_length), ("not a ClientHello", not_hello),
                           ("extensions overrun", bytes(corrupt)),
                           ("record type changes inside the hello", interleaved)):
            with self.subTest(name):
                with self.tunnel() as sock:
                    sock.sendall(data)
                    answer = harness.read_to_eof(sock, timeout=15)
                self.assertTrue(harness.is_fatal_alert(answer),
                                f"{name}: expected a fatal alert, got {answer[:16]!r}\n"
                                f"{self.gw.diagnostics()}")
        self.assert_still_serving()

    # ---------------------------------------------------------------- 8 KiB ClientHello in pieces

    def padded_client(self, sock, sni, cafile):
        ctx = harness.client_context(cafile, alpn=harness.padded_alpn(8000, ("http/1.1",)))
        client = harness.MemoryTLSClient(sock, ctx, sni)
        hello = client.client_hello()
        self.assertGreaterEqual(len(hello), 8192, "the test ClientHello is not 8 KiB")
        self.assertEqual(len(harness.split_records(hello)), 1)
        return client, hello

    def run_padded_handshake(self, authority, sni, cafile, record_size=None):
        with self.tunnel(authority) as sock:
            client, hello = self.padded_client(sock, sni, cafile)
            if record_size:
                hello = harness.reframe(hello, record_size)
                self.assertGreater(len(harness.split_records(hello)), 1)
            harness.send_in_pieces(sock, hello, piece=300, delay=0.005)
            client.finish_handshake()
            cert = client.obj.getpeercert(binary_form=True)
            answer = client.request(f"GET /1k.bin HTTP/1.1\r\nHost: {sni}\r\n"
                                    f"Connection: close\r\n\r\n".encode())
            local = "%s:%d" % sock.getsockname()[:2]
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:80])
        self.assertEqual(body, self.w.file("1k.bin"))
        return cert, local

    def test_8k_client_hello_in_small_segments_intercept(self):
        from cryptography import x509
        cert, local = self.run_padded_handshake(f"origin.test:{self.w.port('valid')}",
                                                "origin.test", self.gw.ca_path)
        self.assertEqual(x509.load_der_x509_certificate(cert).issuer, self.gw.ca_cert().subject)
        line = self.gw.wait_log(lambda l: l.get("client") == local)[0]
        self.assertEqual(line.get("sni"), "origin.test", line)
        self.assertEqual(line.get("action"), "intercept", line)
        self.assertEqual(line.get("client_tls", {}).get("alpn"), "http/1.1", line)

    def test_8k_client_hello_over_several_records_intercept(self):
        self.run_padded_handshake(f"origin.test:{self.w.port('valid')}", "origin.test",
                                  self.gw.ca_path, record_size=1000)

    def test_8k_client_hello_in_small_segments_passthrough(self):
        cert, local = self.run_padded_handshake(f"pass.test:{self.w.port('policy')}", "pass.test",
                                                self.w.pki.root_path)
        self.assertEqual(cert, self.w.leaf("policy").der, "the origin's own certificate")
        line = self.gw.wait_log(lambda l: l.get("client") == local)[0]
        self.assertEqual(line.get("action"), "passthrough", line)
        self.assertEqual(line.get("sni"), "pass.test", line)

    def test_8k_client_hello_over_several_records_passthrough(self):
        cert, _ = self.run_padded_handshake(f"pass.test:{self.w.port('policy')}", "pass.test",
                                            self.w.pki.root_path, record_size=1500)
        self.assertEqual(cert, self.w.leaf("policy").der)

    def test_8k_client_hello_in_small_segments_block(self):
        for record_size in (None, 1000):
            with self.subTest(record_size=record_size):
                with self.tunnel(f"allowed.test:{self.w.port('policy')}") as sock:
                    _, hello = self.padded_client(sock, "sni-blocked.test", self.gw.ca_path)
                    if record_size:
                        hello = harness.reframe(hello, record_size)
                    harness.send_in_pieces(sock, hello, piece=300, delay=0.005)
                    answer = harness.read_to_eof(sock, timeout=15)
                self.assertTrue(harness.is_fatal_alert(answer), f"got {answer[:16]!r}")
        line = self.gw.wait_log(lambda l: l.get("sni") == "sni-blocked.test")[0]
        self.assertEqual(line.get("action"), "block", line)

    def test_client_hello_one_byte_at_a_time(self):
        with self.tunnel() as sock:
            ctx = harness.client_context(self.gw.ca_path, alpn=["http/1.1"])
            client = harness.MemoryTLSClient(sock, ctx, "origin.test")
            hello = client.client_hello()
            harness.send_in_pieces(sock, hello[:40], piece=1, delay=0.002)
            harness.send_in_pieces(sock, hello[40:], piece=97, delay=0.002)
            client.finish_handshake()
            answer = client.request(b"GET /1k.bin HTTP/1.1\r\nHost: origin.test\r\n"
                                    b"Connection: close\r\n\r\n")
        self.assertTrue(answer.endswith(self.w.file("1k.bin")))

    # ---------------------------------------------------------------- raw tunnels

    def test_non_tls_bytes_in_a_tunnel_are_relayed_raw(self):
        for authority in (f"127.0.0.1:{self.echo.port}", f"echo.test:{self.echo.port}"):
            with self.subTest(authority=authority):
                with self.tunnel(authority) as sock:
                    local = "%s:%d" % sock.getsockname()[:2]
                    sock.sendall(b"hello, this is not TLS\r\n")
                    self.assertEqual(harness.read_some(sock, want=24), b"hello, this is not TLS\r\n")
                    payload = harness.content("echo", 1024 * 1024)
                    sender = threading.Thread(target=sock.sendall, args=(payload,))
                    sender.start()
                    received = harness.read_some(sock, timeout=30, want=len(payload))
                    sender.join(t(30))
                    self.assertEqual(hashlib.sha256(received).digest(),
                                     hashlib.sha256(payload).digest())
                    # half-close: our FIN reaches the echo server, its FIN comes back
                    sock.shutdown(socket.SHUT_WR)
                    self.assertEqual(harness.read_to_eof(sock, timeout=15), b"")
                line = self.gw.wait_log(lambda l: l.get("client") == local)[0]
                self.assertGreaterEqual(line.get("bytes_up", 0), len(payload), line)
                self.assertGreaterEqual(line.get("bytes_down", 0), len(payload), line)

    # ---------------------------------------------------------------- plain HTTP forwarding

    def test_absolute_form_http_with_keep_alive(self):
        base = f"http://plain.test:{self.w.plain_port}"
        out1 = os.path.join(self.gw.dir, "ka1.bin")
        out2 = os.path.join(self.gw.dir, "ka2.txt")
        r = curl(self.gw, f"{base}/64k.bin", f"{base}/proto", "-o", out1, "-o", out2,
                 "-w", "%{http_code} %{local_port} %{num_connects}\n", cacert=False)
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{self.gw.diagnostics()}")
        with open(out1, "rb") as f:
            self.assertEqual(f.read(), self.w.file("64k.bin"))
        with open(out2, "rb") as f:
            self.assertEqual(f.read().strip(), b"HTTP/1.1")
        rows = [line.split() for line in r.stdout.decode().splitlines()]
        self.assertEqual([row[0] for row in rows], ["200", "200"])
        self.assertEqual(rows[0][1], rows[1][1], "curl reused the proxy connection")
        self.assertEqual(rows[1][2], "0", "no new connection for the second request")
        client = f"127.0.0.1:{rows[0][1]}"
        line = self.gw.wait_log(lambda l: l.get("client") == client)[0]
        self.assertEqual(line.get("kind"), "http", line)
        self.assertEqual(line.get("http_requests"), 2, line)
        self.assertGreaterEqual(line.get("bytes_down", 0), 64 * 1024, line)

    def test_absolute_form_upload_and_errors(self):
        base = f"http://plain.test:{self.w.plain_port}"
        payload = harness.content("plain-upload", 700 * 1024 + 3)
        path = os.path.join(self.gw.dir, "plain-upload.bin")
        with open(path, "wb") as f:
            f.write(payload)
        r = curl(self.gw, "-T", path, f"{base}/dav/plain-upload.bin", "-o", "/dev/null",
                 "-w", "%{http_code}", cacert=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(r.stdout.decode(), ("201", "204"))
        r = curl(self.gw, f"{base}/dav/plain-upload.bin", "-o", "-", cacert=False)
        self.assertEqual(hashlib.sha256(r.stdout).digest(), hashlib.sha256(payload).digest())
        # unreachable origin → 502
        r = curl(self.gw, f"http://127.0.0.1:{harness.closed_port()}/", "-o", "/dev/null",
                 "-w", "%{http_code}", cacert=False)
        self.assertEqual(r.stdout.decode(), "502", r.stderr)
        self.assert_still_serving()


class IdlePlainHttpTest(unittest.TestCase):
    """An idle plain-HTTP keep-alive connection holds no read buffer: the forwarder used to keep a
    16 KiB array in the frame of the coroutine that waits for the next request, and its buffers
    kept the capacity of the last body (43 KiB per idle connection, now about 11)."""

    HELD = 200

    @unittest.skipIf(harness.is_sanitizer_build(), "RSS of a sanitizer build says nothing")
    def test_idle_plain_http_keep_alive_connections_hold_no_read_buffer(self):
        w = harness.world()
        gw = harness.Gateway(w, workers=1).start()
        self.addCleanup(gw.cleanup)
        request = (f"GET http://plain.test:{w.plain_port}/64k.bin HTTP/1.1\r\n"
                   f"Host: plain.test\r\n\r\n").encode()
        body = w.file("64k.bin")

        def get_and_keep():
            sock = socket.create_connection((harness.LOOPBACK, gw.port), timeout=t(20))
            sock.sendall(request)
            status, _, rest = harness.read_http_head(sock)
            self.assertEqual(status, 200)
            while len(rest) < len(body):
                chunk = sock.recv(65536)
                self.assertTrue(chunk, "closed inside the body")
                rest += chunk
            self.assertEqual(rest, body)
            return sock

        for _ in range(20):  # warm up the allocator and the gateway's caches
            get_and_keep().close()
        time.sleep(0.5)
        before = harness.rss_kib(gw.proc.pid)
        held = [get_and_keep() for _ in range(self.HELD)]
        self.addCleanup(lambda: [sock.close() for sock in held])
        time.sleep(0.5)
        per_connection = (harness.rss_kib(gw.proc.pid) - before) / self.HELD
        self.assertLess(per_connection, 24, f"{per_connection:.1f} KiB per idle connection")
        # and they still work
        for sock in held[::50]:
            sock.sendall(request)
            status, _, _ = harness.read_http_head(sock)
            self.assertEqual(status, 200)




class ScriptedOrigin:
    """A plain-HTTP origin on loopback that answers each request head with `answer(n)`, the bytes
    for the n-th request (0-based) over all its connections. Reads what a request carries after
    its head by Content-Length only."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        self.listener = socket.create_server((harness.LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn):
        try:
            self._answer_requests(conn)
        except OSError:
            pass  # the gateway closed or reset the connection: nothing left to answer

    def _answer_requests(self, conn):
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(data) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                body, data = data[:length], data[length:]
                self.requests.append((head.decode("latin-1"), body))
                conn.sendall(self.answer(len(self.requests) - 1, body))

    def close(self):
        self.listener.close()


class PlainHttpForwardingTest(unittest.TestCase):
    """What the gateway does when it forwards plain HTTP itself (absolute-form requests): the same
    policy as for CONNECT, a Host field that matches where the request goes, no hang on
    Expect: 100-continue, and no response the origin was not asked for."""

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        policy = f"""
default = "intercept"

[[rules]]
name = "no-plain-port"
action = "block"
cidrs = ["127.0.0.0/8"]
ports = [{cls.w.plain_port}]
"""
        cls.gw = harness.Gateway(cls.w, policy=policy).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def origin(self, answer):
        origin = ScriptedOrigin(answer)
        self.addCleanup(origin.close)
        return origin

    def test_address_rules_apply_to_plain_http(self):
        for url in (f"http://plain.test:{self.w.plain_port}/1k.bin",
                    f"http://127.0.0.1:{self.w.plain_port}/1k.bin"):
            r = curl(self.gw, url, "-o", "/dev/null", "-w", "%{http_code}", cacert=False)
            self.assertEqual(r.stdout.decode(), "403", f"{url}: {r.stderr!r}")
        line = self.gw.wait_log(lambda l: l.get("rule") == "no-plain-port")[0]
        self.assertEqual(line.get("action"), "block", line)

    def test_the_origin_sees_the_url_host(self):
        origin = self.origin(lambda n, body: b"HTTP/1.1 204 No Content\r\n\r\n")
        r = curl(self.gw, f"http://127.0.0.1:{origin.port}/where", "-H", "Host: elsewhere.test",
                 "-o", "/dev/null", "-w", "%{http_code}", cacert=False)
        self.assertEqual(r.stdout.decode(), "204", r.stderr)
        head = origin.requests[0][0].lower()
        self.assertIn(f"\r\nhost: 127.0.0.1:{origin.port}", head)
        self.assertNotIn("elsewhere.test", head)

    def test_hop_by_hop_fields_stay_on_the_client_connection(self):
        origin = self.origin(lambda n, body: b"HTTP/1.1 204 No Content\r\n\r\n")
        r = curl(self.gw, f"http://127.0.0.1:{origin.port}/", "-H", "Connection: x-hop, close",
                 "-H", "X-Hop: 1", "-H", "Keep-Alive: timeout=5", "-H", "TE: trailers",
                 "-H", "X-End-To-End: 2", "-o", "/dev/null", "-w", "%{http_code}", cacert=False)
        self.assertEqual(r.stdout.decode(), "204", r.stderr)
        head = origin.requests[0][0].lower()
        for field in ("connection:", "x-hop:", "keep-alive:", "\r\nte:"):
            self.assertNotIn(field, head)
        self.assertIn("x-end-to-end: 2", head)

    def test_an_upgrade_still_switches(self):
        listener = socket.create_server((harness.LOOPBACK, 0))
        self.addCleanup(listener.close)
        seen = {}

        def origin():
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                seen["head"] = data.decode("latin-1").lower()
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                             b"Connection: upgrade\r\n\r\n")
                while chunk := conn.recv(4096):
                    conn.sendall(chunk)

        threading.Thread(target=origin, daemon=True).start()
        port = listener.getsockname()[1]
        sock = socket.create_connection((harness.LOOPBACK, self.gw.port), timeout=t(10))
        with sock:
            sock.sendall(f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n"
                         "Connection: Upgrade\r\nUpgrade: echo\r\n\r\n".encode())
            status, _, rest = harness.read_http_head(sock)
            self.assertEqual(status, 101)
            sock.sendall(b"ping")
            while len(rest) < 4:
                rest += sock.recv(4096)
        self.assertEqual(rest, b"ping")
        self.assertIn("\r\nupgrade: echo", seen["head"])
        self.assertIn("\r\nconnection: upgrade", seen["head"])

    def test_expect_100_continue_with_an_origin_that_never_sends_100(self):
        def echo(n, body):
            return b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

        origin = self.origin(echo)
        payload = harness.content("expect-upload", 100 * 1024)
        path = os.path.join(self.gw.dir, "expect-upload.bin")
        with open(path, "wb") as f:
            f.write(payload)
        # curl would stop waiting for the 100 after a second and send the body anyway; make it
        # wait, so only the gateway's own 100 lets the upload start.
        r = curl(self.gw, f"http://127.0.0.1:{origin.port}/upload", "-H", "Expect: 100-continue",
                 "--expect100-timeout", "60", "--data-binary", f"@{path}", "-o", "-",
                 "--max-time", "20", cacert=False, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, payload)
        self.assertNotIn("expect:", origin.requests[0][0].lower())

    def test_a_switch_nobody_asked_for_is_refused(self):
        origin = self.origin(lambda n, body: b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        r = curl(self.gw, f"http://127.0.0.1:{origin.port}/", "-o", "/dev/null",
                 "-w", "%{http_code}", cacert=False)
        self.assertEqual(r.stdout.decode(), "502", r.stderr)

    def test_a_chunked_body_with_bare_lf_is_not_forwarded(self):
        origin = self.origin(lambda n, body: b"HTTP/1.1 204 No Content\r\n\r\n")
        sock = socket.create_connection((harness.LOOPBACK, self.gw.port), timeout=t(10))
        local = "%s:%d" % sock.getsockname()[:2]
        with sock:
            sock.sendall(f"POST http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nHost: x\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n".encode())
            answer = harness.read_to_eof(sock, timeout=10)
        self.assertNotIn(b"204", answer)
        line = self.gw.wait_log(lambda l: l.get("client") == local)[0]
        self.assertIn("bare LF", line.get("error", ""), line)

    def test_connect_with_a_url_after_a_request_is_refused(self):
        # A first request's CONNECT goes to the tunnel code, which wants host:port; a later one
        # on a kept-alive connection reaches the forwarder, which must not send it on.
        origin = self.origin(lambda n, body: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        sock = socket.create_connection((harness.LOOPBACK, self.gw.port), timeout=t(10))
        with sock:
            sock.sendall(f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n"
                         .encode())
            status, _, _ = harness.read_http_head(sock)
            self.assertEqual(status, 200)
            sock.sendall(f"CONNECT http://127.0.0.1:{origin.port}/ HTTP/1.1\r\n"
                         f"Host: 127.0.0.1:{origin.port}\r\n\r\n".encode())
            status, _, _ = harness.read_http_head(sock)
        self.assertEqual(status, 400)
        self.assertEqual(len(origin.requests), 1)

    def test_content_length_beside_transfer_encoding_is_removed(self):
        origin = self.origin(lambda n, body: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                             b"Content-Length: 100\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        sock = socket.create_connection((harness.LOOPBACK, self.gw.port), timeout=t(10))
        with sock:
            sock.sendall(f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nHost: x\r\n"
                         "Connection: close\r\n\r\n".encode())
            answer = harness.read_to_eof(sock, timeout=10)
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"), answer)
        self.assertNotIn(b"content-length", head.lower())
        self.assertEqual(body, b"2\r\nok\r\n0\r\n\r\n")

    def test_bytes_after_a_response_never_answer_the_next_request(self):
        forged = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
        origin = self.origin(
            lambda n, body: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + forged)
        base = f"http://127.0.0.1:{origin.port}"
        r = curl(self.gw, f"{base}/a", f"{base}/b", cacert=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"okok")
        self.assertEqual(len(origin.requests), 2)


class TimeoutTest(unittest.TestCase):
    """Each phase has its own limit ([timeouts] in the config file, documented in the README);
    a stalled client is cut after its phase's limit and the gateway keeps serving."""

    CONFIG = """
[timeouts]
request_head = 5
client_hello = 1
handshake = 1
connect = 5
idle = 2
"""

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w)
        config = os.path.join(cls.gw.dir, "timeouts.toml")
        with open(config, "w") as f:
            f.write(cls.CONFIG)
        cls.gw.argv += ["--config", config]
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def time_until_closed(self, sock, limit):
        """Seconds until the gateway closes `sock` (reading and discarding), or None."""
        start = time.monotonic()
        sock.settimeout(0.5)
        while time.monotonic() - start < limit:
            try:
                if not sock.recv(65536):
                    return time.monotonic() - start
            except socket.timeout:
                continue
            except OSError:
                return time.monotonic() - start
        return None

    def check(self, sock, phase, expected, local):
        with sock:
            took = self.time_until_closed(sock, expected + 10)
        self.assertIsNotNone(took, f"{phase}: never closed")
        # timers do not get slower with sanitizers: a fixed slack, below request_head's 5 s
        self.assertLess(took, expected + 2,
                        f"{phase}: closed after {took:.1f}s, the limit is {expected}s")
        line = self.gw.wait_log(lambda l: l.get("client") == local)[0]
        self.assertIn("timeout", line.get("error", ""), line)
        self.assertIn(phase, line.get("error", ""), line)
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    def test_stall_before_the_client_hello(self):
        status, head, _, sock = harness.proxy_connect(self.gw, f"origin.test:{self.w.port('valid')}")
        self.assertEqual(status, 200, head)
        self.check(sock, "client_hello", 1, "%s:%d" % sock.getsockname()[:2])

    def test_stall_inside_the_client_hello(self):
        status, head, _, sock = harness.proxy_connect(self.gw, f"origin.test:{self.w.port('valid')}")
        self.assertEqual(status, 200, head)
        sock.sendall(harness.raw_client_hello("origin.test")[:60])
        self.check(sock, "client_hello", 1, "%s:%d" % sock.getsockname()[:2])

    def test_stall_during_the_handshake(self):
        status, head, _, sock = harness.proxy_connect(self.gw, f"origin.test:{self.w.port('valid')}")
        self.assertEqual(status, 200, head)
        sock.sendall(harness.raw_client_hello("origin.test"))  # and never finish the handshake
        self.check(sock, "handshake", 1, "%s:%d" % sock.getsockname()[:2])

    def test_stall_in_the_request_head(self):
        sock = socket.create_connection((harness.LOOPBACK, self.gw.port), timeout=t(10))
        sock.sendall(b"CONNECT origin.test:443 HTTP/1.1\r\nHost: origin.test")
        self.check(sock, "request_head", 5, "%s:%d" % sock.getsockname()[:2])

    def test_idle_intercepted_connection(self):
        ctx = harness.client_context(self.gw.ca_path, alpn=["http/1.1"])
        tls = harness.tls_through(self.gw, f"origin.test:{self.w.port('valid')}", "origin.test",
                                  ctx)
        local = "%s:%d" % tls.getsockname()[:2]
        tls.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: origin.test\r\n\r\n")  # keep-alive
        got = b""
        while not got.endswith(self.w.file("1k.bin")):
            got += tls.recv(65536)
        start = time.monotonic()
        tls.settimeout(t(15))
        try:
            while tls.recv(65536):
                pass
        except (ssl.SSLError, OSError):
            pass
        took = time.monotonic() - start
        tls.close()
        self.assertLess(took, 2 + 2, f"idle for {took:.1f}s, the limit is 2s")
        self.assertGreater(took, 1.5, "closed before the idle limit")
        line = self.gw.wait_log(lambda l: l.get("client") == local)[0]
        self.assertIn("idle", line.get("error", ""), line)


class ShutdownTest(unittest.TestCase):
    GRACE = 5.0

    def setUp(self):
        self.w = harness.world()
        self.gw = harness.Gateway(self.w, workers=1).start()
        self.addCleanup(self.gw.cleanup)
        self.procs = []
        self.addCleanup(lambda: [harness.stop_process(p, signal.SIGKILL) for p in self.procs])

    def start_slow_download(self, name):
        out = os.path.join(self.gw.dir, f"slow-{name}")
        argv = [harness.CURL, "-sS", "--http1.1", "--max-time", "120", "--proxy", self.gw.proxy,
                "--cacert", self.gw.ca_path, "-o", out,
                f"https://origin.test:{self.w.port('valid')}/slow/{name}"]
        proc = harness.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        deadline = time.monotonic() + t(20)
        while not (os.path.exists(out) and os.path.getsize(out) > 0):
            if proc.poll() is not None:
                self.fail(f"curl ended early: {proc.stderr.read()!r}")
            self.assertLess(time.monotonic(), deadline, "the slow download never started")
            time.sleep(0.05)
        return proc, out

    def new_connection_is_served(self):
        try:
            sock = socket.create_connection((harness.LOOPBACK, self.gw.port), timeout=2)
        except OSError:
            return False
        with sock:
            try:
                sock.sendall(f"CONNECT origin.test:{self.w.port('valid')} HTTP/1.1\r\n\r\n".encode())
                status, _, _ = harness.read_http_head(sock, timeout=2 / harness.SCALE)
            except OSError:
                return False
            return status == 200

    def test_sigterm_lets_an_inflight_download_finish(self):
        # 1 MiB at 512 KiB/s: about 2 s, well inside the grace period
        proc, out = self.start_slow_download("1m.bin")
        start = time.monotonic()
        self.gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertFalse(self.new_connection_is_served(), "still serving new connections")
        rc = self.gw.proc.wait(timeout=t(15))
        elapsed = time.monotonic() - start
        self.assertEqual(rc, 0, self.gw.diagnostics())
        self.assertLess(elapsed, self.GRACE + 1.5 * harness.SCALE, "exit within the grace period")
        curl_rc = proc.wait(timeout=t(30))
        self.assertEqual(curl_rc, 0, f"the in-flight download was cut: {proc.stderr.read()!r}")
        with open(out, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(),
                             hashlib.sha256(self.w.file("1m.bin")).digest())
        lines = self.gw.log_lines()
        self.assertTrue(any(l.get("bytes_down", 0) >= 1024 * 1024 for l in lines),
                        f"the finished download is in the log\n{self.gw.diagnostics()}")

    def test_sigterm_waits_the_grace_period_then_exits_0(self):
        # 5 MiB at 512 KiB/s: about 10 s, longer than the grace period
        proc, _ = self.start_slow_download("5m.bin")
        start = time.monotonic()
        self.gw.proc.send_signal(signal.SIGTERM)
        rc = self.gw.proc.wait(timeout=t(20))
        elapsed = time.monotonic() - start
        self.assertEqual(rc, 0, self.gw.diagnostics())
        self.assertGreaterEqual(elapsed, self.GRACE - 0.5, "the open download got its grace period")
        self.assertLess(elapsed, self.GRACE + 1.5 * harness.SCALE, "but no more")
        self.assertNotEqual(proc.wait(timeout=t(30)), 0, "the download could not have finished")
        lines = self.gw.log_lines()
        self.assertTrue(any(l.get("destination") == f"origin.test:{self.w.port('valid')}"
                            for l in lines),
                        f"the cut connection is logged at exit\n{self.gw.diagnostics()}")

    def test_a_second_signal_during_the_grace_period_stops_at_once_and_cleanly(self):
        # The main thread is not waiting for signals during the grace period: every other
        # thread (workers, log and flow writers) must block them too, or the second signal
        # takes its default action there and kills the process without flushing its records.
        proc, _ = self.start_slow_download("5m.bin")
        self.gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # into the grace period: the listener is closed, the download goes on
        self.assertFalse(self.new_connection_is_served(), "still serving new connections")
        start = time.monotonic()
        self.gw.proc.send_signal(signal.SIGINT)
        rc = self.gw.proc.wait(timeout=t(15))
        self.assertEqual(rc, 0, self.gw.diagnostics())
        self.assertLess(time.monotonic() - start, 2 * harness.SCALE, "stopped without the grace")
        self.assertNotEqual(proc.wait(timeout=t(30)), 0, "the download was cut")
        lines = self.gw.log_lines()
        self.assertTrue(any(l.get("destination") == f"origin.test:{self.w.port('valid')}"
                            for l in lines),
                        f"the cut connection is logged at exit\n{self.gw.diagnostics()}")

    def test_sigint_when_idle_exits_0_quickly(self):
        start = time.monotonic()
        self.gw.proc.send_signal(signal.SIGINT)
        rc = self.gw.proc.wait(timeout=t(15))
        self.assertEqual(rc, 0, self.gw.diagnostics())
        self.assertLess(time.monotonic() - start, 2 * harness.SCALE)


if __name__ == "__main__":
    unittest.main()
