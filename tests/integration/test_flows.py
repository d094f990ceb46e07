"""Inspect and record: HTTP/1.1, HTTP/2 and WebSocket flows through real clients, into SQLite and
JSON lines, queried with `tlsgate flows`, exported as HAR, and opened in tshark (pcap, key log)."""

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import unittest

import harness
from harness import curl

TSHARK = shutil.which("tshark")
TCPDUMP = shutil.which("tcpdump")

try:
    import websockets
    import websockets.server
except ImportError:  # python3-websockets is in scripts/install-deps.sh
    websockets = None


def flows(gw, *args, db=None, expect_ok=True):
    db = db or os.path.join(gw.data_dir, "flows.db")
    r = harness.run([harness.BIN, "flows", "--db", db, "--limit", "0", *args], timeout=60)
    if expect_ok and r.returncode != 0:
        raise AssertionError(f"tlsgate flows {args}: {r.stderr!r}")
    return r


def flow_lines(gw, *args):
    r = flows(gw, "--format", "json", *args)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def wait_flows(gw, predicate, count, timeout=20, args=()):
    """The flow writer batches (up to 100 ms): poll until `count` matching flows are stored."""
    deadline = time.monotonic() + harness.t(timeout)
    while True:
        found = [f for f in flow_lines(gw, *args) if predicate(f)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


rss_kib = harness.rss_kib


class WebSocketEcho:
    """A TLS WebSocket echo server (python3-websockets) on loopback, serving origin.test."""

    def __init__(self, w):
        self.port = harness.free_port()
        leaf = w.leaf("valid")
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(leaf.cert_path, leaf.key_path)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    async def _echo(self, ws, path=None):
        async for message in ws:
            await ws.send(message)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.server = await websockets.serve(self._echo, harness.LOOPBACK, self.port,
                                                 ssl=self.ctx)
            self.ready.set()
            await self.server.wait_closed()

        self.loop.run_until_complete(main())

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.thread.join(5)


class FlowRecordingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.dir = harness.tempfile.mkdtemp(prefix="tlsgate-flows-")
        cls.key_log = os.path.join(cls.dir, "keys.log")
        cls.pcap = os.path.join(cls.dir, "plain.pcap")
        config = os.path.join(cls.dir, "config.toml")
        with open(config, "w") as f:
            f.write('[record]\nsinks = ["sqlite", "jsonl"]\ncapture_bodies = true\n'
                    'body_capture_limit = 4096\n'
                    f'key_log = "{cls.key_log}"\npcap = "{cls.pcap}"\n')
        cls.gw = harness.Gateway(cls.w, extra_args=["--config", config]).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        if not harness.KEEP:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    def url(self, path, host="origin.test"):
        return f"https://{host}:{self.w.port('valid')}{path}"

    def curl_ok(self, *args, **kw):
        r = curl(self.gw, *args, **kw)
        self.assertEqual(r.returncode, 0, f"curl {args}: {r.stderr!r}\n{self.gw.diagnostics()}")
        return r

    # ------------------------------------------------------------------------------- HTTP/1.1

    def test_keep_alive_requests_each_get_a_record(self):
        tag = "ka"
        urls = [self.url(f"/1k.bin?{tag}={i}") for i in range(25)]
        self.curl_ok("--http1.1", *[arg for u in urls for arg in (u, "-o", "/dev/null")])
        found = wait_flows(self.gw, lambda f: f["uri"].startswith(f"/1k.bin?{tag}="), 25)
        self.assertEqual(len(found), 25)
        self.assertEqual({f["uid"] for f in found}.__len__(), 1, "one connection, kept alive")
        self.assertEqual(sorted(f["trans_depth"] for f in found), list(range(1, 26)))
        expected = hashlib.sha256(self.w.file("1k.bin")).hexdigest()
        for f in found:
            self.assertEqual(f["method"], "GET")
            self.assertEqual(f["status_code"], 200)
            self.assertEqual(f["version"], "1.1")
            self.assertEqual(f["host"], f"origin.test:{self.w.port('valid')}")
            self.assertEqual(f["response_body_len"], 1024)
            self.assertEqual(f["response_sha256"], expected)
            self.assertEqual(f["sni"], "origin.test")
            self.assertEqual(f["scheme"], "https")
            self.assertIn(f["client_tls_version"], ("TLSv1.3", "TLSv1.2"))

    def test_chunked_upload_and_chunked_download(self):
        body = os.urandom(300_000)
        src = os.path.join(self.dir, "upload.bin")
        with open(src, "wb") as f:
            f.write(body)
        self.curl_ok("--http1.1", "-T", src, "-H", "Transfer-Encoding: chunked",
                     self.url("/dav/chunked-upload.bin"), "-o", "/dev/null")
        up = wait_flows(self.gw, lambda f: f["uri"] == "/dav/chunked-upload.bin", 1)
        self.assertEqual(len(up), 1)
        self.assertEqual(up[0]["method"], "PUT")
        self.assertIn(up[0]["status_code"], (201, 204))
        self.assertEqual(up[0]["request_body_len"], len(body))
        self.assertEqual(up[0]["request_sha256"], hashlib.sha256(body).hexdigest())
        self.assertIn(["Transfer-Encoding", "chunked"], up[0]["request_headers"])

        r = self.curl_ok("--http1.1", "-H", "Accept-Encoding: gzip", self.url("/gz/64k.bin"),
                         "-o", "-")
        down = wait_flows(self.gw, lambda f: f["uri"] == "/gz/64k.bin", 1)
        self.assertEqual(len(down), 1)
        headers = {k.lower(): v for k, v in down[0]["response_headers"]}
        self.assertEqual(headers.get("transfer-encoding"), "chunked")
        self.assertEqual(headers.get("content-encoding"), "gzip")
        # the record hashes the body as it travelled (still gzip-encoded), as curl received it
        self.assertEqual(down[0]["response_body_len"], len(r.stdout))
        self.assertEqual(down[0]["response_sha256"], hashlib.sha256(r.stdout).hexdigest())

    def test_sensitive_headers_are_redacted(self):
        self.curl_ok("--http1.1", "-H", "Authorization: Bearer s3cret-token", "-H",
                     "Cookie: session=s3cret-cookie", "-H", "X-Visible: yes",
                     self.url("/1k.bin?redact=1"), "-o", "/dev/null")
        found = wait_flows(self.gw, lambda f: f["uri"] == "/1k.bin?redact=1", 1)
        headers = dict((k.lower(), v) for k, v in found[0]["request_headers"])
        self.assertEqual(headers["authorization"], "<redacted>")
        self.assertEqual(headers["cookie"], "<redacted>")
        self.assertEqual(headers["x-visible"], "yes")
        db = open(os.path.join(self.gw.data_dir, "flows.db"), "rb").read()
        self.assertNotIn(b"s3cret", db)

    def test_large_download_keeps_gateway_memory_flat(self):
        # A gateway of its own with every flow sink and body capture but no pcap: the pcap
        # writer's queue may rightly hold up to 64 MiB of plaintext while the disk catches up
        # (bounded, then dropped and counted), which says nothing about the relay streaming.
        config = os.path.join(self.dir, "no-pcap.toml")
        with open(config, "w") as f:
            f.write('[record]\nsinks = ["sqlite", "jsonl"]\ncapture_bodies = true\n'
                    'body_capture_limit = 4096\n')
        gw = harness.Gateway(self.w, extra_args=["--config", config]).start()
        self.addCleanup(gw.cleanup)
        pid = gw.proc.pid

        def curl_ok(*args, **kw):
            r = curl(gw, *args, **kw)
            self.assertEqual(r.returncode, 0, f"curl {args}: {r.stderr!r}\n{gw.diagnostics()}")
            return r

        # warm up: buffers, allocator arenas and TLS state reach their working size
        curl_ok("--http1.1", self.url("/5m.bin"), "-o", "/dev/null")
        before = rss_kib(pid)
        peak = [before]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            r = curl_ok("--http1.1", self.url("/200m.bin"), "-o", "/dev/null",
                        "-w", "%{size_download}", timeout=240)
        finally:
            stop.set()
            sampler.join()
        self.assertEqual(int(r.stdout), harness.BIG_FILE_SIZE)
        found = wait_flows(gw, lambda f: f["uri"] == "/200m.bin", 1)
        self.assertEqual(found[0]["response_body_len"], harness.BIG_FILE_SIZE)
        zeros = hashlib.sha256(bytes(harness.BIG_FILE_SIZE)).hexdigest()
        self.assertEqual(found[0]["response_sha256"], zeros)
        growth_mib = (peak[0] - before) / 1024
        if "asan" in harness.BIN:
            return  # ASan's quarantine holds freed memory: RSS says nothing there
        # bodies stream through: 200 MiB must not show up in the gateway's memory
        self.assertLess(growth_mib, 32, f"RSS grew {growth_mib:.1f} MiB during a 200 MiB download")

    # --------------------------------------------------------------------------------- HTTP/2

    def test_http2_concurrent_streams_each_get_a_record(self):
        urls = [self.url(f"/64k.bin?h2={i}") for i in range(30)]
        args = ["--http2", "--parallel", "--parallel-max", "30"]
        for u in urls:
            args += [u, "-o", "/dev/null"]
        self.curl_ok(*args)
        found = wait_flows(self.gw, lambda f: f["uri"].startswith("/64k.bin?h2="), 30)
        self.assertEqual(len(found), 30)
        self.assertEqual(sorted(f["uri"] for f in found), sorted(u.split(":" + str(
            self.w.port("valid")))[1] for u in urls))
        expected = hashlib.sha256(self.w.file("64k.bin")).hexdigest()
        for f in found:
            self.assertEqual(f["version"], "2")
            self.assertEqual(f["alpn"], "h2")
            self.assertEqual(f["status_code"], 200)
            self.assertEqual(f["response_sha256"], expected)
            self.assertEqual(f["stream_id"] % 2, 1)
        self.assertEqual(len({f["stream_id"] for f in found}), 30)

    # ------------------------------------------------------------------------------ WebSocket

    @unittest.skipIf(websockets is None, "python3-websockets is not installed")
    def test_websocket_echo_session_counts_messages(self):
        echo = WebSocketEcho(self.w)
        try:
            authority = f"origin.test:{echo.port}"
            status, _, _, raw = harness.proxy_connect(self.gw, authority)
            self.assertEqual(status, 200)
            raw.settimeout(None)
            ctx = harness.client_context(self.gw.ca_path)

            async def session():
                async with websockets.connect(f"wss://{authority}/chat", sock=raw, ssl=ctx,
                                              server_hostname="origin.test") as ws:
                    for i in range(5):
                        await ws.send(f"text message {i}")
                        self.assertEqual(await ws.recv(), f"text message {i}")
                    for i in range(3):
                        await ws.send(bytes([i]) * 1000)
                        self.assertEqual(await ws.recv(), bytes([i]) * 1000)
                    await ws.close(code=1000)

            asyncio.run(session())
        finally:
            echo.stop()
        found = wait_flows(self.gw, lambda f: f["uri"] == "/chat" and "websocket" in f, 1)
        self.assertEqual(len(found), 1, flow_lines(self.gw)[-3:])
        ws = found[0]["websocket"]
        self.assertEqual(found[0]["status_code"], 101)
        # 8 data messages each way plus the close frames
        self.assertEqual(ws["client_messages"], 9)
        self.assertEqual(ws["server_messages"], 9)
        self.assertEqual(ws["client_opcodes"].get("1"), 5)
        self.assertEqual(ws["client_opcodes"].get("2"), 3)
        self.assertEqual(ws["server_opcodes"].get("2"), 3)
        self.assertEqual(ws["close_code"], 1000)

    # ---------------------------------------------------------------------- query and export

    def test_flows_filters_and_har_export(self):
        self.curl_ok("--http1.1", self.url("/1k.bin?har=1"), "-o", "/dev/null")
        self.curl_ok("--http1.1", self.url("/missing-file?har=2"), "-o", "/dev/null")
        self.curl_ok("--http1.1", "-X", "POST", "--data-binary", "field=value&x=1",
                     self.url("/dav/post-target?har=3"), "-o", "/dev/null")
        wait_flows(self.gw, lambda f: "har=" in f["uri"], 3)

        missing = flow_lines(self.gw, "--status", "404", "--grep", "har=2")
        self.assertEqual([f["uri"] for f in missing], ["/missing-file?har=2"])
        four = flow_lines(self.gw, "--status", "4xx", "--grep", "har=")
        self.assertTrue(all(400 <= f["status_code"] < 500 for f in four))
        self.assertIn("/missing-file?har=2", [f["uri"] for f in four])
        self.assertEqual(flow_lines(self.gw, "--host", "*.nowhere.test"), [])
        self.assertTrue(flow_lines(self.gw, "--host", "origin.*", "--since", "10m"))
        self.assertEqual(flow_lines(self.gw, "--since", "2199-01-01"), [])

        table = flows(self.gw, "--grep", "har=").stdout.decode()
        self.assertIn("/missing-file?har=2", table)
        self.assertIn("404", table)

        har = json.loads(flows(self.gw, "--format", "har", "--grep", "har=").stdout)
        log = har["log"]
        self.assertEqual(log["version"], "1.2")
        self.assertEqual(log["creator"]["name"], "tlsgate")
        self.assertGreaterEqual(len(log["entries"]), 3)
        for entry in log["entries"]:
            for key in ("startedDateTime", "time", "request", "response", "cache", "timings"):
                self.assertIn(key, entry)
            for key in ("method", "url", "httpVersion", "cookies", "headers", "queryString",
                        "headersSize", "bodySize"):
                self.assertIn(key, entry["request"])
            for key in ("status", "statusText", "httpVersion", "cookies", "headers", "content",
                        "redirectURL", "headersSize", "bodySize"):
                self.assertIn(key, entry["response"])
            for key in ("size", "mimeType"):
                self.assertIn(key, entry["response"]["content"])
            for key in ("send", "wait", "receive"):
                self.assertIn(key, entry["timings"])
            self.assertTrue(entry["request"]["url"].startswith("https://origin.test:"))
        post = [e for e in log["entries"] if e["request"]["method"] == "POST"][0]
        self.assertEqual(post["request"]["postData"]["text"], "field=value&x=1")
        self.assertIn({"name": "har", "value": "3"}, post["request"]["queryString"])
        got = [e for e in log["entries"] if e["request"]["url"].endswith("har=1")][0]
        content = got["response"]["content"]
        self.assertEqual(content["size"], 1024)
        # captured up to body_capture_limit (4096): the whole 1 KiB body, base64 (binary)
        self.assertEqual(content.get("encoding"), "base64")
        self.assertEqual(base64.b64decode(content["text"]), self.w.file("1k.bin"))

    def test_jsonl_sink_gets_the_same_flows(self):
        self.curl_ok("--http1.1", self.url("/1k.bin?jsonl=1"), "-o", "/dev/null")
        path = os.path.join(self.gw.data_dir, "flows.jsonl")
        deadline = time.monotonic() + harness.t(10)
        while time.monotonic() < deadline:
            if os.path.exists(path) and b"jsonl=1" in open(path, "rb").read():
                break
            time.sleep(0.1)
        lines = [json.loads(x) for x in open(path, "rb").read().splitlines() if b"jsonl=1" in x]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["status_code"], 200)
        self.assertEqual(lines[0]["id.resp_p"], self.w.port("valid"))

    def test_flows_reports_a_missing_database_clearly(self):
        r = flows(self.gw, db=os.path.join(self.dir, "nope.db"), expect_ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"nope.db", r.stderr)

    # ---------------------------------------------------------------------- pcap and key log

    @unittest.skipIf(TSHARK is None, "tshark is not installed")
    def test_pcap_opens_in_tshark_as_http(self):
        self.curl_ok("--http1.1", self.url("/1k.bin?pcap=1"), "-o", "/dev/null")
        port = self.w.port("valid")
        deadline = time.monotonic() + harness.t(15)
        while True:
            r = harness.run([TSHARK, "-r", self.pcap, "-d", f"tcp.port=={port},http", "-Y",
                             "http.request", "-T", "fields", "-e", "http.request.method", "-e",
                             "http.request.uri"], timeout=60)
            if b"/1k.bin?pcap=1" in r.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.assertIn(b"GET\t/1k.bin?pcap=1", r.stdout, r.stderr)

    @unittest.skipIf(TSHARK is None or TCPDUMP is None or os.geteuid() != 0,
                     "needs tshark, tcpdump and root")
    def test_key_log_decrypts_a_capture_of_the_client_leg(self):
        capture = os.path.join(self.dir, "client-leg.pcap")
        dump = subprocess.Popen([TCPDUMP, "-i", "lo", "-U", "-w", capture, "tcp", "port",
                                 str(self.gw.port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            # tcpdump prints "listening on" once the capture runs
            deadline = time.monotonic() + harness.t(10)
            while not os.path.exists(capture) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            self.curl_ok("--http1.1", self.url("/1k.bin?keylog=1"), "-o", "/dev/null")
            time.sleep(0.5)
        finally:
            dump.send_signal(signal.SIGINT)
            dump.wait(10)
        r = harness.run([TSHARK, "-r", capture, "-o", f"tls.keylog_file:{self.key_log}", "-d",
                         f"tcp.port=={self.gw.port},http", "-Y", "http.request", "-T", "fields",
                         "-e", "http.request.method", "-e", "http.request.uri"], timeout=60)
        self.assertIn(b"/1k.bin?keylog=1", r.stdout, r.stderr + r.stdout)
        self.assertEqual(os.stat(self.key_log).st_mode & 0o777, 0o600)


class RecordingUnderPressureTest(unittest.TestCase):
    """With the flow writer slowed to a crawl and a tiny queue, traffic still flows, and the
    records that do not fit are dropped and counted, never the traffic."""

    def test_slow_writer_drops_records_not_traffic(self):
        w = harness.world()
        d = harness.tempfile.mkdtemp(prefix="tlsgate-slow-")
        config = os.path.join(d, "config.toml")
        with open(config, "w") as f:
            f.write('[record]\nqueue_capacity = 4\nwriter_delay_ms = 2000\n')
        gw = harness.Gateway(w, extra_args=["--config", config]).start()
        try:
            url = f"https://origin.test:{w.port('valid')}/1k.bin"

            def fetch(i):
                args = ["--http1.1"]
                for j in range(10):
                    args += [f"{url}?slow={i}-{j}", "-o", "/dev/null"]
                return curl(gw, *args, "-w", "%{http_code}\n")

            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                results = list(pool.map(fetch, range(16)))
            elapsed = time.monotonic() - started
            for r in results:
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.decode().split(), ["200"] * 10)
            # 160 requests against a writer that takes 2 s per batch: waiting for it would take
            # minutes; the traffic did not wait
            self.assertLess(elapsed, harness.t(60))
            self.assertTrue(gw.alive(), gw.diagnostics())
        finally:
            gw.stop()
            stderr = open(gw.stderr_path, "rb").read().decode("utf-8", "replace")
            gw.cleanup()
            shutil.rmtree(d, ignore_errors=True)
        self.assertRegex(stderr, r"dropp", stderr[-3000:])
        summary = [line for line in stderr.splitlines() if "flows recorded" in line]
        self.assertTrue(summary, stderr[-3000:])
        import re
        dropped = int(re.search(r"flows recorded \((\d+) dropped\)", summary[-1]).group(1))
        self.assertGreater(dropped, 0, summary[-1])


class FullDiskTest(unittest.TestCase):
    """The data dir on a small tmpfs that fills up: requests keep working, the gateway says
    why records are lost, and recording resumes once there is room again."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        self.mount = harness.tempfile.mkdtemp(prefix="tlsgate-fulldisk-")
        r = harness.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", self.mount])
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs: {r.stderr!r}")
        self.addCleanup(shutil.rmtree, self.mount, True)
        self.addCleanup(harness.run, ["umount", "-l", self.mount])

    def fill(self):
        """Writes a file until the tmpfs is full; returns its path."""
        path = os.path.join(self.mount, "filler")
        with open(path, "wb", buffering=0) as f:
            chunk = b"\0" * 4096
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass
        return path

    def test_a_full_disk_loses_records_not_traffic_and_recording_resumes(self):
        w = harness.world()
        gw = harness.Gateway(w, data_dir=os.path.join(self.mount, "data")).start()
        self.addCleanup(gw.cleanup)
        url = f"https://origin.test:{w.port('valid')}/1k.bin"

        def fetch(tag, count):
            args = ["--http1.1"]
            for i in range(count):
                args += [f"{url}?{tag}={i}", "-o", "/dev/null"]
            r = curl(gw, *args, "-w", "%{http_code}\n")
            self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{gw.diagnostics()}")
            self.assertEqual(r.stdout.decode().split(), ["200"] * count)

        fetch("before", 3)
        self.assertEqual(len(wait_flows(gw, lambda f: "before=" in f["uri"], 3)), 3)

        filler = self.fill()
        for round_ in range(10):  # connections and exchanges while nothing can be written
            fetch(f"full{round_}", 20)
        self.assertTrue(gw.alive(), gw.diagnostics())
        deadline = time.monotonic() + harness.t(20)
        while True:
            with open(gw.stderr_path, "rb") as f:
                stderr = f.read().decode("utf-8", "replace")
            if "No space left" in stderr or "disk is full" in stderr:
                break
            self.assertLess(time.monotonic(), deadline, f"nothing said about the full disk:\n"
                                                        f"{stderr[-3000:]}")
            time.sleep(0.2)

        os.remove(filler)
        fetch("after", 5)
        self.assertEqual(len(wait_flows(gw, lambda f: "after=" in f["uri"], 5)), 5,
                         gw.diagnostics())
        gw.wait_log(lambda l: l.get("bytes_down", 0) > 0, count=1)
        # Lines cut short by the full disk must not run into the ones written after it.
        for line in gw.log_lines():
            self.assertNotIn("_unparsable", line, line)
        self.assertTrue(gw.alive(), gw.diagnostics())


if __name__ == "__main__":
    unittest.main()
