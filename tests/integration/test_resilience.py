"""Resilience (issue #10): slow clients, garbage, stalled and failing upstreams, surges, a soak and
a restart under load, against the real binary.

Every test is bounded in time and connection count. Numbers (latencies, RSS, descriptor counts)
are printed to stderr as `[resilience] ...` lines.

Environment (besides harness.py's):
  TLSGATE_SOAK_SECONDS  length of the soak (default 60 s for CI; 300 is the issue's 5 minutes;
                        `make soak` runs 1800)
  TLSGATE_SANITIZER=1   treat the binary as a sanitizer build (also detected from `__asan_init`):
                        the surge, the soak and the slowloris latency ratio are skipped there.
  TLSGATE_RESTART_NO_MIGRATE=1  run the restart test on the host's own net.ipv4.tcp_migrate_req
                        (0 by default: shows the connections a restart loses without it). As root
                        the test otherwise runs itself in a private network namespace with it set.
"""

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import random
import resource
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also as tests.integration.*
import harness  # noqa: E402
from harness import LOOPBACK, t  # noqa: E402


# --------------------------------------------------------------------------------------------
# environment


ASAN = harness.is_sanitizer_build()
SOAK_SECONDS = int(os.environ.get("TLSGATE_SOAK_SECONDS", "60"))
# Set when this file runs itself inside a private network namespace (the restart test).
IN_PRIVATE_NETNS = os.environ.get("TLSGATE_RESILIENCE_NETNS") == "1"
MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"
# A timer fires on time even under a sanitizer; what it takes to notice it may not.
TIMER_SLACK = 1.5
PROPAGATION = t(1.0)  # the "within 1 s" for resets and aborts


def _raise_nofile(wanted=16384):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


_raise_nofile()
logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # writes to closed transports are expected


def note(text):
    print(f"[resilience] {text}", file=sys.stderr, flush=True)


rss_kib = harness.rss_kib


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(predicate, timeout, step=0.05):
    """Seconds until predicate() held, or None."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(step)


def percentile(values, p):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


start_gateway = harness.start_gateway


def alive_or_diag(testcase, gw):
    testcase.assertTrue(gw.alive(), "the gateway died\n" + gw.diagnostics())
    with open(gw.stderr_path, errors="replace") as f:
        testcase.assertNotIn("unexpected exception", f.read(), gw.diagnostics())


def curl_ok(gw, w, path="/1k.bin"):
    r = harness.curl(gw, f"https://origin.test:{w.port('valid')}{path}", "-o", "-", timeout=20)
    return r.returncode == 0 and r.stdout == w.file(path.lstrip("/"))


# --------------------------------------------------------------------------------------------
# clients


def tunnel(gw, authority, timeout=10):
    status, head, body, sock = harness.proxy_connect(gw, authority, timeout)
    if status != 200:
        raise AssertionError(f"CONNECT {authority}: {head!r} {body[:200]!r}\n{gw.diagnostics()}")
    return sock


def tls_over(sock, host, cafile, timeout=10):
    """TLS client on `sock` that reports an EOF without close_notify as an error (truncation)."""
    ctx = harness.client_context(cafile, alpn=["http/1.1"])
    # Python 3.11's default context ignores an EOF without close_notify: the tests must see it.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    tls = ctx.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False,
                          suppress_ragged_eofs=False)
    tls.settimeout(t(timeout))
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls


def read_until_end(sock, timeout):
    """Reads to the end of the stream. Returns (data, how, end_time) with how one of
    'close_notify' (TLS clean end), 'fin' (plain socket clean end), 'truncated' (TLS EOF without
    close_notify), 'reset', 'tls-error: ...', 'timeout'."""
    sock.settimeout(0.25)
    data = bytearray()
    deadline = time.monotonic() + timeout
    tls = isinstance(sock, ssl.SSLSocket)
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            if time.monotonic() > deadline:
                return bytes(data), "timeout", time.monotonic()
            continue
        except ssl.SSLEOFError:
            return bytes(data), "truncated", time.monotonic()
        except ssl.SSLZeroReturnError:
            return bytes(data), "close_notify", time.monotonic()
        except ssl.SSLError as e:
            if e.reason == "UNEXPECTED_EOF_WHILE_READING":
                return bytes(data), "truncated", time.monotonic()
            return bytes(data), f"tls-error: {e.reason or e}", time.monotonic()
        except (ConnectionResetError, BrokenPipeError):
            return bytes(data), "reset", time.monotonic()
        if not chunk:
            return bytes(data), "close_notify" if tls else "fin", time.monotonic()
        data += chunk


def http_parts(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else None
    length = None
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    return status, length, body


def rst_close(sock):
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def intercepted_get(gw, w, path="/1k.bin", timeout=10):
    """One request on a new intercepted connection; raises on any failure."""
    with tunnel(gw, f"origin.test:{w.port('valid')}", timeout) as sock:
        with tls_over(sock, "origin.test", gw.ca_path, timeout) as tls:
            status, headers, body = harness.https_get(tls, "origin.test", path, timeout)
    if status != 200 or body != w.file(path.lstrip("/")):
        raise AssertionError(f"{path}: status {status}, {len(body)} bytes")


# --------------------------------------------------------------------------------------------
# scripted origins


def read_head(conn, limit=1 << 16):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class ScriptedOrigin:
    """A loopback origin whose behaviour per connection is handler(conn, origin). TLS with the
    test PKI's `leaf` (origin.test for "valid", pass.test for "policy") unless tls=False."""

    def __init__(self, w, handler, *, tls=True, leaf="valid"):
        self.handler = handler
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            lf = w.leaf(leaf)
            self.ctx.load_cert_chain(lf.cert_path, lf.key_path)
            self.ctx.set_alpn_protocols(["http/1.1"])
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.events = {}
        self.received = 0
        self.conns = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def event(self, name, value=None):
        with self.lock:
            self.events.setdefault(name, (time.monotonic(), value))

    def wait_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if name in self.events:
                    return self.events[name]
            time.sleep(0.01)
        return None

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            conn.settimeout(30)
            if self.ctx is not None:
                conn = self.ctx.wrap_socket(conn, server_side=True)
                self.conns.append(conn)
            self.handler(conn, self)
        except (OSError, ssl.SSLError):
            pass

    def hold(self, seconds=30):
        self.stop.wait(seconds)

    def close(self):
        self.stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.close()


def silent(conn, origin):
    """Accepts and reads, never answers (a stalled upstream)."""
    origin.event("connected")
    with contextlib.suppress(OSError):
        while not origin.stop.is_set() and conn.recv(65536):
            pass
    origin.hold()


class StuckListener:
    """A port whose accept queue is full: the kernel drops further SYNs, so connecting hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((LOOPBACK, self.port))
            self.fillers.append(s)
        time.sleep(0.2)

    def close(self):
        for s in self.fillers + [self.sock]:
            s.close()


BODY = harness.content("resilience-body", 1 << 20)


def partial_body_then(action, *, length=len(BODY), head=None):
    """Handler: answers the request head with `length` bytes announced, sends 256 KiB of them,
    then `action`: 'reset' (RST), 'fin' (TCP close, no close_notify) or 'stall' (keeps quiet)."""

    def handler(conn, origin):
        read_head(conn)
        conn.sendall(head or b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
        conn.sendall(BODY[:256 * 1024])
        time.sleep(0.3)
        origin.event(action)
        if action == "reset":
            rst_close(conn)
        elif action == "fin":
            conn.close()  # Python never sends close_notify on close()
        else:
            origin.hold()

    return handler


# --------------------------------------------------------------------------------------------
# slow clients


class Slowloris:
    """`count` tunnels that trickle a ClientHello one byte per `interval`. Opened once: the
    gateway's timeout closes them all, and none is reopened, so the latency measured while they
    are open is not disturbed by a reconnect storm of the test's own making. Runs an asyncio loop
    in its own thread."""

    def __init__(self, gw, authority, hello, count=400, interval=1.0):
        self.gw, self.authority, self.hello = gw, authority, hello
        self.count, self.interval = count, interval
        self.attacking = True   # keep trickling
        self.quit = False
        self.open = 0
        self.started = 0
        self.lifetimes = []     # seconds from the 200 to the gateway's close
        self.completed = 0      # hellos sent in full (the timeout should prevent it)
        self.failures = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),),
                                       daemon=True)
        self.thread.start()

    async def _one(self):
        writer = None
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, self.gw.port)
            writer.write(f"CONNECT {self.authority} HTTP/1.1\r\nHost: {self.authority}\r\n\r\n"
                         .encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if not head.startswith(b"HTTP/1.1 200"):
                self.failures.append(head[:60])
                return
            self.open += 1
            start = time.monotonic()
            ended = asyncio.ensure_future(reader.read(1))
            sent = 0
            pause = random.uniform(0, self.interval)  # stagger the writes
            try:
                while not self.quit:
                    done, _ = await asyncio.wait({ended}, timeout=pause)
                    pause = self.interval
                    if done:
                        self.lifetimes.append(time.monotonic() - start)
                        return
                    if self.attacking and sent < len(self.hello):
                        writer.write(self.hello[sent:sent + 1])
                        sent += 1
                        if sent == len(self.hello):
                            self.completed += 1
            finally:
                ended.cancel()
                self.open -= 1
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            self.failures.append(repr(e))
        finally:
            if writer is not None:
                writer.close()

    async def _main(self):
        tasks = set()
        while not self.quit:
            # ramp up to `count`, at most 100 new ones per 50 ms
            for _ in range(min(100, self.count - self.started)):
                task = asyncio.ensure_future(self._one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                self.started += 1
            await asyncio.sleep(0.05)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wait_open(self, n, timeout):
        return wait_until(lambda: self.open >= n, timeout)

    def stop_attack(self):
        self.attacking = False

    def close(self):
        self.quit = True
        self.thread.join(30)
        if not self.thread.is_alive():
            self.loop.close()


def curl_latencies(gw, w, n, budget=None):
    """Seconds per request (curl's own time_total: new connection, CONNECT, TLS, 1 KiB); stops
    early once `budget` seconds have passed."""
    url = f"https://origin.test:{w.port('valid')}/1k.bin"
    out = []
    deadline = time.monotonic() + budget if budget else None
    for _ in range(n):
        if deadline and time.monotonic() > deadline:
            break
        r = harness.run([harness.CURL, "-sS", "--max-time", "10", "--proxy", gw.proxy, "--cacert",
                         gw.ca_path, "-o", "/dev/null", "-w", "%{http_code} %{time_total}", url],
                        timeout=20)
        code, _, total = r.stdout.decode().partition(" ")
        if code != "200":
            raise AssertionError(f"latency probe failed: {r.stdout!r} {r.stderr!r}")
        out.append(float(total))
    return out


class SlowClients(unittest.TestCase):
    # long enough that every trickling tunnel is still open while the latency is measured (twice,
    # if the first measurement looks slow); the measurement budget below must fit inside it
    CLIENT_HELLO = 20
    MEASURE_BUDGET = 7
    ATTACKERS = 400
    SAMPLES = 200
    if ASAN:  # no latency ratio there (see below): only the timeouts and the clean-up are checked
        CLIENT_HELLO, ATTACKERS, SAMPLES = 8, 200, 20

    def setUp(self):
        self.w = harness.world()
        self.gw = start_gateway(self.w, f"[timeouts]\nclient_hello = {self.CLIENT_HELLO}\n")
        self.addCleanup(self.gw.cleanup)

    def test_slowloris_400_trickling_client_hellos(self):
        gw, w = self.gw, self.w
        curl_latencies(gw, w, 20)  # warm-up: leaf cached, upstream sessions, allocator
        idle_fds = fd_count(gw.proc.pid)
        unloaded = curl_latencies(gw, w, self.SAMPLES)

        hello = harness.raw_client_hello("origin.test")
        attack = Slowloris(gw, f"origin.test:{w.port('valid')}", hello, count=self.ATTACKERS)
        self.addCleanup(attack.close)
        ramp = attack.wait_open(self.ATTACKERS, t(30))
        self.assertIsNotNone(ramp, f"only {attack.open} trickling tunnels opened: "
                                   f"{attack.failures[:5]}\n{gw.diagnostics()}")
        loaded_fds = fd_count(gw.proc.pid)
        p99_u = percentile(unloaded, 99)
        loaded = curl_latencies(gw, w, self.SAMPLES, budget=self.MEASURE_BUDGET)
        open_during = attack.open
        # A shared CI machine can stall for tens of milliseconds at any moment, and p99 of 200
        # samples is the second-slowest: one stall decides it. A slowdown the attack causes
        # persists, so a second measurement under the same attack tells the two apart.
        measurements = 1
        if percentile(loaded, 99) > 2 * p99_u:
            retry = curl_latencies(gw, w, self.SAMPLES, budget=self.MEASURE_BUDGET)
            note(f"slowloris: first loaded p99 {percentile(loaded, 99) * 1e3:.1f} ms, measured "
                 f"again: {percentile(retry, 99) * 1e3:.1f} ms")
            loaded, measurements = retry, 2
            open_during = min(open_during, attack.open)
        attack.stop_attack()
        # every tunnel now waits for the gateway's ClientHello timeout
        closed = wait_until(lambda: len(attack.lifetimes) >= self.ATTACKERS,
                            self.CLIENT_HELLO + t(30))
        stopped = time.monotonic()
        recovered = wait_until(lambda: fd_count(gw.proc.pid) <= idle_fds, t(30), step=0.2)
        after_fds = fd_count(gw.proc.pid)
        attack.close()

        p99_l = percentile(loaded, 99)
        longest = max(attack.lifetimes) if attack.lifetimes else None
        note(f"slowloris: {attack.started} trickling tunnels opened, {len(attack.lifetimes)} "
             f"closed by the gateway, lifetime max {longest and round(longest, 2)} s "
             f"(client_hello = {self.CLIENT_HELLO} s), hellos completed {attack.completed}")
        note(f"slowloris: latency unloaded p50 {statistics.median(unloaded) * 1e3:.1f} ms "
             f"p99 {p99_u * 1e3:.1f} ms; loaded ({len(loaded)} samples, {open_during} tunnels "
             f"open) p50 {statistics.median(loaded) * 1e3:.1f} ms p99 {p99_l * 1e3:.1f} ms "
             f"(ratio {p99_l / p99_u:.2f}, measurement {measurements})")
        note(f"slowloris: gateway fds idle {idle_fds}, under attack {loaded_fds}, "
             f"{after_fds} at {time.monotonic() - stopped:.1f} s after the last one closed "
             f"(back to idle after {recovered and round(recovered, 1)} s)")

        alive_or_diag(self, gw)
        self.assertEqual(attack.completed, 0)
        self.assertIsNotNone(closed, f"the gateway closed {len(attack.lifetimes)} of "
                                     f"{self.ATTACKERS} trickling tunnels")
        self.assertLess(longest, self.CLIENT_HELLO + TIMER_SLACK,
                        "a trickling ClientHello outlived the client_hello timeout")
        self.assertGreater(min(attack.lifetimes), self.CLIENT_HELLO - TIMER_SLACK,
                           "a trickling tunnel was closed before the client_hello timeout")
        self.assertIsNotNone(recovered, f"fds {after_fds}, idle {idle_fds}, 30 s after the attack")
        # The connection log is written by its own thread after the sockets close: wait for it.
        gw.wait_log(lambda l: l.get("error") == "timeout: client_hello", count=self.ATTACKERS)
        if ASAN:
            self.skipTest("latency ratio not checked under a sanitizer build")
        self.assertGreaterEqual(open_during, self.ATTACKERS * 0.95,
                                "the latency was not measured while the attack was on")
        self.assertGreaterEqual(len(loaded), self.SAMPLES // 2, "too few samples in the budget")
        self.assertLessEqual(p99_l, 2 * p99_u,
                             f"p99 {p99_l * 1e3:.1f} ms under attack vs {p99_u * 1e3:.1f} ms")


# --------------------------------------------------------------------------------------------
# garbage


def sslv2_hello(rng):
    # SSLv2-compatible CLIENT-HELLO (two-byte header with the top bit set), as old scanners send
    ciphers = b"".join(rng.choice([b"\x01\x00\x80", b"\x07\x00\xc0", b"\x00\x00\x2f"])
                       for _ in range(5))
    body = b"\x01\x03\x01" + len(ciphers).to_bytes(2, "big") + b"\x00\x00" + b"\x00\x10" + \
        ciphers + rng.randbytes(16)
    return bytes([0x80 | (len(body) >> 8), len(body) & 0xff]) + body


class GarbageFlood(unittest.TestCase):
    SECONDS = 8 if ASAN else 20  # the release pass runs the long flood
    THREADS = 8

    def setUp(self):
        self.w = harness.world()
        self.socks_port = harness.free_port()
        self.pp_port = harness.free_port()
        self.tp_port = harness.free_port()
        self.gw = start_gateway(self.w, "[timeouts]\nclient_hello = 3\nrequest_head = 3\n",
                                extra_args=["--listen", f"socks5@{LOOPBACK}:{self.socks_port}",
                                            "--listen", f"explicit+proxy@{LOOPBACK}:{self.pp_port}",
                                            "--listen", f"transparent@{LOOPBACK}:{self.tp_port}"])
        self.addCleanup(self.gw.cleanup)
        for port in (self.socks_port, self.pp_port, self.tp_port):
            harness.wait_for_port(port, proc=self.gw.proc)
        self.hello = harness.raw_client_hello("origin.test")

    def one(self, rng, stats):
        """One garbage connection of a random kind."""
        w = self.w
        listeners = [self.gw.port, self.socks_port, self.pp_port, self.tp_port]
        kind = rng.choice(["random", "empty", "half-close", "truncated-hello", "sslv2",
                           "http-on-tls", "tunnel-random", "tunnel-truncated", "tunnel-sslv2",
                           "tunnel-corrupt-hello", "bad-connect", "reset"])
        tunnel_kind = kind.startswith("tunnel") or kind == "http-on-tls"
        port = self.gw.port if tunnel_kind else rng.choice(listeners)
        payload = {
            "random": lambda: rng.randbytes(rng.randrange(1, 8192)),
            "empty": lambda: b"",
            "half-close": lambda: rng.randbytes(rng.randrange(0, 64)),
            "truncated-hello": lambda: self.hello[:rng.randrange(1, len(self.hello))],
            "sslv2": lambda: sslv2_hello(rng),
            "http-on-tls": lambda: b"GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n",
            "tunnel-random": lambda: rng.randbytes(rng.randrange(1, 8192)),
            "tunnel-truncated": lambda: self.hello[:rng.randrange(1, len(self.hello))],
            "tunnel-sslv2": lambda: sslv2_hello(rng),
            "tunnel-corrupt-hello": lambda: bytes(
                b ^ (rng.randrange(1, 256) if rng.random() < 0.02 else 0) for b in self.hello),
            "bad-connect": lambda: rng.choice([b"CONNECT \r\n\r\n", b"CONNECT a:b:c HTTP/1.1\r\n\r\n",
                                               b"CONNECT x HTTP/9\r\n" * 50 + b"\r\n",
                                               b"\r\n" * 4000, b"GET http://[::1 HTTP/1.1\r\n\r\n"]),
            "reset": lambda: rng.randbytes(rng.randrange(0, 2048)),
        }[kind]()
        sock = socket.create_connection((LOOPBACK, port), timeout=5)
        try:
            sock.settimeout(2)
            if tunnel_kind:
                sock.sendall(f"CONNECT origin.test:{w.port('valid')} HTTP/1.1\r\n\r\n".encode())
                status, _, _ = harness.read_http_head(sock, timeout=2)
                if status != 200:
                    stats["connect_not_200"] = stats.get("connect_not_200", 0) + 1
            with contextlib.suppress(OSError):
                if payload:
                    sock.sendall(payload)
                if kind == "half-close":
                    sock.shutdown(socket.SHUT_WR)
            if kind == "reset":
                rst_close(sock)
                return kind
            if kind != "empty":  # take what is answered within 100 ms, then go
                sock.settimeout(0.1)
                with contextlib.suppress(OSError):
                    deadline = time.monotonic() + 0.1
                    while time.monotonic() < deadline and sock.recv(65536):
                        pass
        finally:
            sock.close()
        return kind

    def flood(self, seconds, seed):
        stats = {}
        lock = threading.Lock()
        end = time.monotonic() + seconds

        def worker(i):
            rng = random.Random(seed * 100 + i)
            local = {}
            while time.monotonic() < end:
                try:
                    kind = self.one(rng, local)
                    local[kind] = local.get(kind, 0) + 1
                except OSError as e:
                    local["client_error:" + type(e).__name__] = \
                        local.get("client_error:" + type(e).__name__, 0) + 1
            with lock:
                for k, v in local.items():
                    stats[k] = stats.get(k, 0) + v

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return stats

    def test_garbage_flood(self):
        gw, w = self.gw, self.w
        pid = gw.proc.pid
        for _ in range(10):
            self.assertTrue(curl_ok(gw, w), gw.diagnostics())
        self.flood(2, seed=1)  # warm-up: per-thread allocator arenas, OpenSSL tables
        time.sleep(1)
        idle_fds = fd_count(pid)
        rss_before = rss_kib(pid)
        stats = self.flood(self.SECONDS, seed=2)
        alive_or_diag(self, gw)
        recovered = wait_until(lambda: fd_count(pid) <= idle_fds, t(15), step=0.2)
        rss_after = rss_kib(pid)
        total = sum(v for k, v in stats.items() if not k.startswith(("client_error", "connect_")))
        note(f"garbage: {total} connections in {self.SECONDS} s over 4 listeners: "
             + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
        note(f"garbage: RSS {rss_before} KiB -> {rss_after} KiB "
             f"(+{(rss_after - rss_before) / 1024:.1f} MiB); fds idle {idle_fds}, "
             f"after {fd_count(pid)} (recovered in {recovered and round(recovered, 1)} s)")
        for _ in range(5):
            self.assertTrue(curl_ok(gw, w), "normal service after the flood\n" + gw.diagnostics())
        self.assertTrue(curl_ok(gw, w, "/1m.bin"))
        self.assertIsNotNone(recovered, f"fds {fd_count(pid)} vs idle {idle_fds}")
        if not ASAN:  # ASan's quarantine holds freed memory on purpose
            self.assertLess(rss_after - rss_before, 16 * 1024, "RSS grew by 16 MiB or more")


# --------------------------------------------------------------------------------------------
# stalled upstreams


class UpstreamStall(unittest.TestCase):
    CONNECT, HANDSHAKE, IDLE = 2, 2, 5
    POLICY = 'default = "intercept"\n[[rules]]\nname = "pass"\naction = "passthrough"\n' \
             'hosts = ["pass.test"]\n'

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = start_gateway(cls.w, f"[timeouts]\nconnect = {cls.CONNECT}\nhandshake = "
                                      f"{cls.HANDSHAKE}\nidle = {cls.IDLE}\nclient_hello = 5\n"
                                      f"request_head = 5\nresponse_head = {cls.IDLE}\n",
                            policy=cls.POLICY)

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def origin(self, handler, **kwargs):
        o = ScriptedOrigin(self.w, handler, **kwargs)
        self.addCleanup(o.close)
        return o

    def test_intercept_upstream_never_answers_the_client_hello(self):
        o = self.origin(silent, tls=False)
        with tunnel(self.gw, f"origin.test:{o.port}") as sock:
            start = time.monotonic()
            sock.sendall(harness.raw_client_hello("origin.test"))
            data, how, end = read_until_end(sock, self.HANDSHAKE + 10)
        took = end - start
        note(f"stall/intercept, upstream silent after ClientHello: {how} after {took:.2f} s, "
             f"answer {data[:7].hex()}")
        self.assertLess(took, self.HANDSHAKE + TIMER_SLACK, f"no answer within the handshake "
                                                            f"timeout ({how})")
        self.assertTrue(harness.is_fatal_alert(data),
                        f"the client got {how} with {data[:16]!r}, not a TLS alert")

    def test_passthrough_upstream_never_answers_the_client_hello(self):
        o = self.origin(silent, tls=False)
        with tunnel(self.gw, f"pass.test:{o.port}") as sock:
            start = time.monotonic()
            sock.sendall(harness.raw_client_hello("pass.test"))
            data, how, end = read_until_end(sock, self.HANDSHAKE + TIMER_SLACK + 0.5)
        note(f"stall/passthrough, upstream silent after ClientHello: {how} after "
             f"{end - start:.2f} s (handshake = {self.HANDSHAKE} s, idle = {self.IDLE} s)")
        self.assertNotEqual(how, "timeout", f"still open {end - start:.1f} s after the ClientHello;"
                                            f" handshake timeout is {self.HANDSHAKE} s")

    def test_connect_that_never_completes_gets_504(self):
        stuck = StuckListener()
        self.addCleanup(stuck.close)
        for what, request in (
                ("CONNECT", f"CONNECT origin.test:{stuck.port} HTTP/1.1\r\n\r\n"),
                ("GET", f"GET http://plain.test:{stuck.port}/ HTTP/1.1\r\nHost: plain.test\r\n\r\n")):
            with self.subTest(what):
                with socket.create_connection((LOOPBACK, self.gw.port), timeout=5) as sock:
                    start = time.monotonic()
                    sock.sendall(request.encode())
                    data, how, end = read_until_end(sock, self.CONNECT + 10)
                status = http_parts(data)[0]
                note(f"stall/connect ({what}): status {status} after {end - start:.2f} s")
                self.assertLess(end - start, self.CONNECT + TIMER_SLACK)
                self.assertEqual(status, 504, data[:200])

    def test_plain_http_upstream_never_answers_gets_504(self):
        o = self.origin(silent, tls=False)
        with socket.create_connection((LOOPBACK, self.gw.port), timeout=5) as sock:
            start = time.monotonic()
            sock.sendall(f"GET http://plain.test:{o.port}/ HTTP/1.1\r\nHost: plain.test\r\n\r\n"
                         .encode())
            data, how, end = read_until_end(sock, self.IDLE + 10)
        status = http_parts(data)[0]
        note(f"stall/plain HTTP, no response: {how}, status {status} after {end - start:.2f} s")
        self.assertLess(end - start, self.IDLE + TIMER_SLACK)
        self.assertEqual(status, 504, f"{how}: {data[:200]!r}")

    def test_intercept_upstream_stalls_mid_body(self):
        o = self.origin(partial_body_then("stall"))
        with tunnel(self.gw, f"origin.test:{o.port}") as sock, \
                tls_over(sock, "origin.test", self.gw.ca_path) as tls:
            tls.sendall(b"GET /big HTTP/1.1\r\nHost: origin.test\r\n\r\n")
            data, how, end = read_until_end(tls, self.IDLE + 10)
        stalled = o.wait_event("stall", 1)[0]
        status, length, body = http_parts(data)
        note(f"stall/intercept mid-body: {how} after {end - stalled:.2f} s, {len(body)} of "
             f"{length} bytes")
        self.assertEqual(status, 200)
        self.assertLess(len(body), length)
        self.assertLess(end - stalled, self.IDLE + TIMER_SLACK)
        self.assertIn(how, ("truncated", "reset"), "the client must see an error")

    def test_plain_http_upstream_stalls_mid_body(self):
        o = self.origin(partial_body_then("stall"), tls=False)
        with socket.create_connection((LOOPBACK, self.gw.port), timeout=5) as sock:
            sock.sendall(f"GET http://plain.test:{o.port}/big HTTP/1.1\r\nHost: plain.test\r\n\r\n"
                         .encode())
            data, how, end = read_until_end(sock, self.IDLE + 10)
        stalled = o.wait_event("stall", 1)[0]
        status, length, body = http_parts(data)
        note(f"stall/plain HTTP mid-body: {how} after {end - stalled:.2f} s, {len(body)} of "
             f"{length} bytes")
        self.assertEqual(status, 200)
        self.assertLess(len(body), length, "short body: the client can tell (Content-Length)")
        self.assertLess(end - stalled, self.IDLE + TIMER_SLACK)
        self.assertNotEqual(how, "timeout")


class SetupTotalCap(unittest.TestCase):
    """A connection that keeps making progress through its phases but never completes is cut by
    a total cap ([timeouts] total; the key name is this test's proposal)."""

    TOTAL = 4

    def test_total_cap_on_a_connection_that_never_completes(self):
        w = harness.world()
        config = (f"[timeouts]\nrequest_head = 3\nclient_hello = 3\nhandshake = 3\n"
                  f"total = {self.TOTAL}\n")
        gw = harness.Gateway(w)
        self.addCleanup(gw.cleanup)
        path = os.path.join(gw.dir, "total.toml")
        with open(path, "w") as f:
            f.write(config)
        gw.argv += ["--config", path]
        try:
            gw.start()
        except RuntimeError:
            self.fail("the gateway refused [timeouts] total:\n" + harness.tail(gw.stderr_path, 5))
        sock = socket.create_connection((LOOPBACK, gw.port), timeout=5)
        self.addCleanup(sock.close)
        start = time.monotonic()
        request = f"CONNECT origin.test:{w.port('valid')} HTTP/1.1\r\n\r\n".encode()
        hello = harness.raw_client_hello("origin.test")
        try:  # each phase just inside its own limit: 2.5 s of request head, 2.5 s of hello, ...
            harness.send_in_pieces(sock, request[:-1], piece=4, delay=2.5 / (len(request) / 4))
            sock.sendall(request[-1:])
            harness.read_http_head(sock, timeout=5)
            harness.send_in_pieces(sock, hello[:-1], piece=16, delay=2.5 / (len(hello) / 16))
            sock.sendall(hello[-1:])  # ... and then never finish the handshake
        except OSError:
            pass
        _, how, end = read_until_end(sock, 15)
        note(f"total cap: closed ({how}) {end - start:.1f} s after the connection started")
        self.assertLess(end - start, self.TOTAL + TIMER_SLACK)


# --------------------------------------------------------------------------------------------
# mid-stream faults


class MidStreamFaults(unittest.TestCase):
    POLICY = UpstreamStall.POLICY

    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.gw = start_gateway(cls.w, policy=cls.POLICY)  # default timeouts: nothing masks a hang
        time.sleep(0.2)
        cls.class_idle_fds = fd_count(cls.gw.proc.pid)

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()

    def setUp(self):
        alive_or_diag(self, self.gw)
        # what an earlier test left behind has gone (its origin is closed by now)
        wait_until(lambda: fd_count(self.gw.proc.pid) <= self.class_idle_fds, 10)
        self.idle_fds = fd_count(self.gw.proc.pid)

    def origin(self, handler, **kwargs):
        o = ScriptedOrigin(self.w, handler, **kwargs)
        self.addCleanup(o.close)
        return o

    def fds_back(self, timeout):
        return wait_until(lambda: fd_count(self.gw.proc.pid) <= self.idle_fds, timeout, step=0.02)

    def check_truncated(self, how, data, end, fault_time, what, allowed, http=True):
        status, length, body = http_parts(data) if http else (None, None, data)
        note(f"{what}: client saw {how} {end - fault_time:.3f} s after the upstream fault, "
             f"{len(body)} of {length} bytes")
        self.assertIn(how, allowed, f"{what}: the client must see an abrupt end")
        self.assertLess(end - fault_time, PROPAGATION)
        if length is not None:
            self.assertLess(len(body), length)

    def test_intercept_upstream_reset_mid_body(self):
        o = self.origin(partial_body_then("reset"))
        with tunnel(self.gw, f"origin.test:{o.port}") as sock, \
                tls_over(sock, "origin.test", self.gw.ca_path) as tls:
            tls.sendall(b"GET /big HTTP/1.1\r\nHost: origin.test\r\n\r\n")
            data, how, end = read_until_end(tls, 10)
        self.check_truncated(how, data, end, o.wait_event("reset", 1)[0],
                             "intercept, upstream RST mid-body", ("truncated", "reset"))
        self.assertIsNotNone(self.fds_back(PROPAGATION), "gateway fds not released")

    def test_intercept_upstream_close_without_close_notify_mid_body(self):
        o = self.origin(partial_body_then("fin"))
        with tunnel(self.gw, f"origin.test:{o.port}") as sock, \
                tls_over(sock, "origin.test", self.gw.ca_path) as tls:
            tls.sendall(b"GET /big HTTP/1.1\r\nHost: origin.test\r\n\r\n")
            data, how, end = read_until_end(tls, 10)
        self.check_truncated(how, data, end, o.wait_event("fin", 1)[0],
                             "intercept, upstream FIN (no close_notify) mid-body",
                             ("truncated", "reset"))

    def test_passthrough_upstream_reset_mid_body(self):
        o = self.origin(partial_body_then("reset"), leaf="policy")
        with tunnel(self.gw, f"pass.test:{o.port}") as sock, \
                tls_over(sock, "pass.test", self.w.pki.root_path) as tls:
            tls.sendall(b"GET /big HTTP/1.1\r\nHost: pass.test\r\n\r\n")
            data, how, end = read_until_end(tls, 10)
        self.check_truncated(how, data, end, o.wait_event("reset", 1)[0],
                             "passthrough, upstream RST mid-body", ("truncated", "reset"))

    def test_raw_tunnel_upstream_reset_reaches_the_client_as_a_reset(self):
        def speak_then_reset(conn, origin):
            conn.sendall(BODY[:64 * 1024])
            time.sleep(0.3)
            origin.event("reset")
            rst_close(conn)

        o = self.origin(speak_then_reset, tls=False)
        # By hand: the origin speaks first, so its bytes may come in the same read as the 200.
        with socket.create_connection((LOOPBACK, self.gw.port), timeout=10) as sock:
            sock.sendall(f"CONNECT 127.0.0.1:{o.port} HTTP/1.1\r\n\r\n".encode())
            status, head, early = harness.read_http_head(sock, timeout=10)
            self.assertEqual(status, 200, head)
            data, how, end = read_until_end(sock, 10)
            data = early + data
        self.check_truncated(how, data, end, o.wait_event("reset", 1)[0],
                             "raw tunnel, upstream RST", ("reset",), http=False)

    def test_plain_http_upstream_reset_mid_body_read_until_close(self):
        o = self.origin(partial_body_then("reset", head=b"HTTP/1.0 200 OK\r\n\r\n"), tls=False)
        with socket.create_connection((LOOPBACK, self.gw.port), timeout=5) as sock:
            sock.sendall(f"GET http://plain.test:{o.port}/big HTTP/1.1\r\nHost: plain.test\r\n\r\n"
                         .encode())
            data, how, end = read_until_end(sock, 10)
        self.check_truncated(how, data, end, o.wait_event("reset", 1)[0],
                             "plain HTTP (body until close), upstream RST", ("reset",))

    def upload_then_abort(self, abort):
        def sink(conn, origin):
            read_head(conn)
            how = "fin"
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    with origin.lock:
                        origin.received += len(chunk)
            except ssl.SSLEOFError:
                how = "truncated"
            except (ConnectionResetError, ssl.SSLError) as e:
                how = f"error {e}"
            origin.event("upstream_end", how)
            origin.hold()  # a server that does not close on its own

        o = self.origin(sink)
        sock = tunnel(self.gw, f"origin.test:{o.port}")
        tls = tls_over(sock, "origin.test", self.gw.ca_path)
        # Read the TLS 1.3 session tickets: unread bytes would turn our close into a RST.
        tls.settimeout(0.3)
        with contextlib.suppress(socket.timeout):
            tls.recv(1)
        tls.settimeout(10)
        tls.sendall(b"PUT /upload HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 8388608\r\n\r\n")
        tls.sendall(BODY[:512 * 1024])
        self.assertIsNotNone(wait_until(lambda: o.received >= 256 * 1024, 10))
        aborted = time.monotonic()
        if abort == "reset":
            rst_close(tls)
        else:
            tls.close()  # FIN without close_notify
        sock.close()
        ended = o.wait_event("upstream_end", 5)
        released = self.fds_back(5)
        note(f"client {abort} mid-upload: upstream saw "
             f"{ended and ended[1]} after {ended and round(ended[0] - aborted, 3)} s; gateway fds "
             f"back to idle after {released and round(released, 3)} s")
        self.assertIsNotNone(ended, "the upstream never saw the client's abort")
        self.assertLess(ended[0] - aborted, PROPAGATION)
        self.assertIsNotNone(released, f"a half-closed pair lingers: fds "
                                       f"{fd_count(self.gw.proc.pid)} vs idle {self.idle_fds}")
        self.assertLess(released, PROPAGATION)

    def test_client_reset_mid_upload_closes_upstream(self):
        self.upload_then_abort("reset")

    def test_client_close_mid_upload_closes_upstream(self):
        self.upload_then_abort("close")


# --------------------------------------------------------------------------------------------
# surge


async def open_intercepted(gw, port, ctx, sem=None):
    async with sem or contextlib.nullcontext():
        reader, writer = await asyncio.open_connection(LOOPBACK, gw.port)
        try:
            authority = f"origin.test:{port}"
            writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            if not head.startswith(b"HTTP/1.1 200"):
                raise AssertionError(head[:80])
            await asyncio.wait_for(writer.start_tls(ctx, server_hostname="origin.test"), 30)
            await async_get(reader, writer, keep_alive=True)
        except BaseException:
            writer.close()
            raise
        return reader, writer


async def async_get(reader, writer, keep_alive):
    writer.write(b"GET /1k.bin HTTP/1.1\r\nHost: origin.test\r\n" +
                 (b"" if keep_alive else b"Connection: close\r\n") + b"\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    status, length, _ = http_parts(head)
    body = await asyncio.wait_for(reader.readexactly(length), 30)
    if status != 200 or len(body) != 1024:
        raise AssertionError(f"status {status}")
    return body


@unittest.skipIf(ASAN, "surge skipped under a sanitizer build")
class Surge(unittest.TestCase):
    HELD = 3000
    NEW = 200

    def setUp(self):
        self.w = harness.world()
        self.gw = start_gateway(self.w)
        self.addCleanup(self.gw.cleanup)

    def test_3000_held_then_200_new(self):
        gw, w = self.gw, self.w
        pid = gw.proc.pid
        for _ in range(10):
            self.assertTrue(curl_ok(gw, w))
        idle_fds, rss_idle = fd_count(pid), rss_kib(pid)
        ctx = harness.client_context(gw.ca_path, alpn=["http/1.1"])
        result = {}

        async def scenario():
            sem = asyncio.Semaphore(64)
            start = time.monotonic()
            opened = await asyncio.gather(*(open_intercepted(gw, w.port("valid"), ctx, sem)
                                            for _ in range(self.HELD)), return_exceptions=True)
            result["open_seconds"] = time.monotonic() - start
            held = [c for c in opened if not isinstance(c, BaseException)]
            result["open_errors"] = [repr(c) for c in opened if isinstance(c, BaseException)][:5]
            result["held"] = len(held)
            await asyncio.sleep(1)
            result["rss_held"], result["fds_held"] = rss_kib(pid), fd_count(pid)

            async def new_request():
                async with sem2:  # 20 at a time; each timed from its own connect
                    t0 = time.monotonic()
                    reader, writer = await open_intercepted(gw, w.port("valid"), ctx)
                    writer.close()
                    return time.monotonic() - t0

            sem2 = asyncio.Semaphore(20)
            news = await asyncio.gather(*(new_request() for _ in range(self.NEW)),
                                        return_exceptions=True)
            result["new_ok"] = [x for x in news if not isinstance(x, BaseException)]
            result["new_errors"] = [repr(x) for x in news if isinstance(x, BaseException)][:5]
            # the held ones still work
            sample = held[::10]
            again = await asyncio.gather(*(async_get(r, wr, True) for r, wr in sample),
                                         return_exceptions=True)
            result["held_reuse_errors"] = sum(isinstance(x, BaseException) for x in again)
            for _, writer in held:
                writer.close()
            await asyncio.sleep(0.2)

        asyncio.run(scenario())
        recovered = wait_until(lambda: fd_count(pid) <= idle_fds, t(30), step=0.2)
        per_conn = (result["rss_held"] - rss_idle) / max(1, result["held"])
        lat = sorted(result["new_ok"])
        note(f"surge: {result['held']} intercepted connections opened in "
             f"{result['open_seconds']:.1f} s; gateway RSS {rss_idle} -> {result['rss_held']} KiB = "
             f"{per_conn:.1f} KiB per connection; fds {idle_fds} -> {result['fds_held']}")
        if lat:
            note(f"surge: {len(lat)}/{self.NEW} new requests ok while held, p50 "
                 f"{statistics.median(lat) * 1e3:.1f} ms p99 {percentile(lat, 99) * 1e3:.1f} ms; "
                 f"fds back to idle after {recovered and round(recovered, 1)} s")
        alive_or_diag(self, gw)
        self.assertEqual(result["held"], self.HELD, result["open_errors"])
        self.assertEqual(len(result["new_ok"]), self.NEW, result["new_errors"])
        self.assertEqual(result["held_reuse_errors"], 0)
        self.assertIsNotNone(recovered)


# --------------------------------------------------------------------------------------------
# soak


def rss_slope(samples):
    """Least-squares slope (KiB/s) of [(seconds, KiB)] and its standard error."""
    xs = [s[0] for s in samples]
    ys = [s[1] for s in samples]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    resid = [y - (my + slope * (x - mx)) for x, y in zip(xs, ys)]
    se = (sum(r * r for r in resid) / max(1, n - 2) / sxx) ** 0.5
    return slope, se


@unittest.skipIf(ASAN, "soak skipped under a sanitizer build")
class Soak(unittest.TestCase):
    """Mixed load for TLSGATE_SOAK_SECONDS (60 s by default in CI) with RSS sampled every 10 s."""

    WARMUP = 10

    def setUp(self):
        self.w = harness.world()
        self.gw = start_gateway(self.w, policy=UpstreamStall.POLICY)
        self.addCleanup(self.gw.cleanup)

    def test_soak_mixed_load(self):
        gw, w = self.gw, self.w
        pid = gw.proc.pid
        stop = threading.Event()
        errors, counts = [], {}
        lock = threading.Lock()

        def count(kind, n=1):
            with lock:
                counts[kind] = counts.get(kind, 0) + n

        def guard(kind, fn):
            def loop():
                while not stop.is_set():
                    try:
                        fn()
                        count(kind)
                    except Exception as e:  # noqa: BLE001 - every failure is an error here
                        with lock:
                            errors.append(f"{kind}: {e!r}")
                        time.sleep(0.2)
            return threading.Thread(target=loop, daemon=True)

        def keep_alive():
            with tunnel(gw, f"origin.test:{w.port('valid')}") as sock, \
                    tls_over(sock, "origin.test", gw.ca_path) as tls:
                with tls.makefile("rb") as f:
                    for _ in range(200):
                        if stop.is_set():
                            break
                        tls.sendall(b"GET /64k.bin HTTP/1.1\r\nHost: origin.test\r\n\r\n")
                        status, length, _ = http_parts(f.readline() + _read_headers(f))
                        body = f.read(length)
                        if status != 200 or body != w.file("64k.bin"):
                            raise AssertionError(f"keep-alive: {status} {len(body)}")
                        count("keep_alive_requests")

        def new_connection():
            intercepted_get(gw, w, "/1k.bin")

        def passthrough():
            with tunnel(gw, f"pass.test:{w.port('policy')}") as sock, \
                    tls_over(sock, "pass.test", w.pki.root_path) as tls:
                status, _, body = harness.https_get(tls, "pass.test", "/64k.bin")
            if status != 200 or body != w.file("64k.bin"):
                raise AssertionError(f"passthrough: {status}")

        def plain_http():
            r = harness.curl(gw, f"http://plain.test:{w.plain_port}/64k.bin", "-o", "-",
                             cacert=False, timeout=20)
            if r.returncode != 0 or r.stdout != w.file("64k.bin"):
                raise AssertionError(f"plain: {r.returncode} {r.stderr!r}")

        digest = hashlib.sha256(w.file("5m.bin")).hexdigest()

        def large():
            r = harness.curl(gw, f"https://origin.test:{w.port('valid')}/5m.bin", "-o", "-",
                             timeout=60)
            if r.returncode != 0 or hashlib.sha256(r.stdout).hexdigest() != digest:
                raise AssertionError(f"5m: {r.returncode} {r.stderr!r}")

        threads = [guard("keep_alive_connections", keep_alive) for _ in range(2)] + \
                  [guard("new_connections", new_connection) for _ in range(2)] + \
                  [guard("passthrough", passthrough), guard("plain_http", plain_http),
                   guard("large_downloads", large)]
        for th in threads:
            th.start()
        samples = []
        try:
            time.sleep(self.WARMUP)
            start = time.monotonic()
            while True:
                elapsed = time.monotonic() - start
                samples.append((elapsed, rss_kib(pid)))
                if elapsed >= SOAK_SECONDS or not gw.alive():
                    break
                time.sleep(max(0.0, min(10.0, SOAK_SECONDS - elapsed)))
        finally:
            stop.set()
            for th in threads:
                th.join(t(90))
        slope, se = rss_slope(samples)
        growth = slope * SOAK_SECONDS
        note(f"soak: {SOAK_SECONDS} s after {self.WARMUP} s warm-up; "
             + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f"; errors {len(errors)}")
        note("soak: RSS KiB every 10 s: " + " ".join(str(s[1]) for s in samples))
        note(f"soak: RSS slope {slope * 60:.1f} KiB/min (standard error {se * 60:.1f} KiB/min), "
             f"{growth / 1024:.2f} MiB over the run")
        alive_or_diag(self, gw)
        self.assertEqual(errors, [], errors[:10])
        # "within noise": the fitted growth over the run is under 2 MiB, or under three standard
        # errors of the fit (RSS moves in allocator-sized steps; a leak is a steady climb).
        self.assertTrue(growth < 2048 or slope < 3 * se,
                        f"RSS climbs {slope * 60:.1f} KiB/min (+/- {se * 60:.1f})")


def _read_headers(f):
    out = b""
    while True:
        line = f.readline()
        out += line
        if line in (b"\r\n", b""):
            return out


# --------------------------------------------------------------------------------------------
# restart


def _sysctl(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


class RestartUnderLoad(unittest.TestCase):
    """The documented restart: with net.ipv4.tcp_migrate_req = 1, start the new process on the
    same --listen (SO_REUSEPORT) with the same CA, wait for its banner, then SIGTERM the old one,
    which stops accepting and drains. Without the sysctl, connections waiting in the old
    process's accept queue when it closes its listener are reset (the kernel does not move them
    to the new listener): TLSGATE_RESTART_NO_MIGRATE=1 runs the test that way to show it.

    As root, the test runs itself in a private network namespace (loopback only: its own nginx,
    gateways and clients) where it can set the sysctl without touching the host."""

    CLIENTS = 6
    RESTARTS = 3

    def setUp(self):
        self.w = None  # built only where the restarts run (maybe in the private namespace)
        self.ca_dir = harness.tempfile.mkdtemp(prefix="tlsgate-restart-ca-")
        self.gateways = []

    def tearDown(self):
        for gw in self.gateways:
            gw.cleanup()
        harness.shutil.rmtree(self.ca_dir, ignore_errors=True)

    def new_gateway(self, port=None):
        gw = harness.Gateway(self.w, ca_dir=self.ca_dir)
        if port is not None:
            gw.argv[gw.argv.index(f"explicit@{LOOPBACK}:{gw.port}")] = f"explicit@{LOOPBACK}:{port}"
            gw.port = port
        self.gateways.append(gw)
        gw.start()
        # Listening once the banner is out (the old process answers the port meanwhile).
        def banner():
            with open(gw.stdout_path, "rb") as f:
                return b"listening on" in f.read()

        self.assertIsNotNone(wait_until(banner, t(20)), gw.diagnostics())
        return gw

    def test_restart_loses_no_new_connection(self):
        no_migrate = os.environ.get("TLSGATE_RESTART_NO_MIGRATE") == "1"
        if IN_PRIVATE_NETNS or no_migrate or _sysctl(MIGRATE_REQ) == "1":
            note(f"restart: net.ipv4.tcp_migrate_req = {_sysctl(MIGRATE_REQ)}")
            self.restarts_under_load()
            return
        if os.geteuid() != 0 or not harness.shutil.which("unshare") or _sysctl(MIGRATE_REQ) is None:
            self.skipTest("needs net.ipv4.tcp_migrate_req = 1 (Linux 5.14+), or root to set it in "
                          "a private network namespace")
        script = ("ip link set lo up && sysctl -q -w net.ipv4.tcp_migrate_req=1 && exec \"$0\" -m "
                  "unittest test_resilience.RestartUnderLoad.test_restart_loses_no_new_connection")
        env = dict(os.environ, TLSGATE_RESILIENCE_NETNS="1")
        r = subprocess.run(["unshare", "--net", "--", "sh", "-c", script, sys.executable],
                           cwd=harness.HERE, env=env, capture_output=True, timeout=t(300),
                           preexec_fn=harness._die_with_parent)
        err = r.stderr.decode(errors="replace")
        for line in err.splitlines():
            if line.startswith("[resilience]"):
                print(line + " (private netns)", file=sys.stderr, flush=True)
        self.assertEqual(r.returncode, 0, err[-3000:])

    def restarts_under_load(self):
        w = self.w = harness.world()
        first = self.new_gateway()
        port = first.port
        stop = threading.Event()
        ok, failures = [0], []
        lock = threading.Lock()

        def client():
            while not stop.is_set():
                try:
                    intercepted_get(first, w, "/1k.bin", timeout=10)
                    with lock:
                        ok[0] += 1
                except Exception as e:  # noqa: BLE001
                    with lock:
                        failures.append((round(time.monotonic() - t_start, 2),
                                         repr(e).split("\\n")[0][:120]))

        t_start = time.monotonic()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(self.CLIENTS)]
        for th in threads:
            th.start()
        old = first
        events = []
        try:
            time.sleep(1.5)
            for _ in range(self.RESTARTS):
                new = self.new_gateway(port)
                time.sleep(0.5)
                t0 = time.monotonic()
                old.proc.send_signal(signal.SIGTERM)
                rc = old.proc.wait(timeout=t(15))
                events.append((time.monotonic() - t0, rc, round(t0 - t_start, 2)))
                time.sleep(1.5)
                old = new
        finally:
            stop.set()
            for th in threads:
                th.join(t(30))
        served = [len(gw.log_lines()) for gw in self.gateways]
        note(f"restart: {self.RESTARTS} restarts under {self.CLIENTS} looping clients: {ok[0]} "
             f"requests ok, {len(failures)} failed; old processes exited after "
             + ", ".join(f"{d:.2f} s (rc {rc}, SIGTERM at {at} s)" for d, rc, at in events)
             + f"; connections logged per process {served}; failures {failures[:5]}")
        self.assertEqual(failures, [], failures[:5])
        self.assertTrue(all(rc == 0 for _, rc, _ in events))
        self.assertTrue(all(n > 0 for n in served), "every process served")


if __name__ == "__main__":
    unittest.main()
