"""Running out of file descriptors pauses accepting, is logged once, and never kills the gateway."""

import os
import shutil
import socket
import time
import unittest

import harness


# The sanitizer runtimes need descriptors of their own: UBSan checks that an object's memory is
# readable through a pipe(2), which fails while the gateway has used up its descriptors, and then
# reports a false "invalid vptr". The release pass runs this test.
@unittest.skipIf("asan" in harness.BIN, "sanitizer runtimes need spare descriptors")
@unittest.skipUnless(shutil.which("prlimit"), "needs prlimit (util-linux)")
class OutOfDescriptors(unittest.TestCase):
    def setUp(self):
        self.w = harness.world()
        self.gw = harness.Gateway(self.w, workers=1)
        # A descriptor limit a few dozen connections exhaust.
        self.gw.argv = ["prlimit", "--nofile=64:64"] + self.gw.argv
        self.gw.start()

    def tearDown(self):
        self.gw.cleanup()

    def test_emfile_pauses_accepting_and_recovers(self):
        held = []
        try:
            for _ in range(120):
                try:
                    held.append(socket.create_connection(("127.0.0.1", self.gw.port), timeout=2))
                except OSError:
                    break
            time.sleep(harness.t(1.0))
            self.assertTrue(self.gw.alive(), self.gw.diagnostics())
        finally:
            for s in held:
                s.close()
        # The held connections end (the gateway sees EOF and frees their descriptors) ...
        deadline = time.monotonic() + harness.t(20)
        while True:
            r = harness.curl(self.gw, f"https://origin.test:{self.w.port('valid')}/1k.bin",
                             "-o", "/dev/null", "-w", "%{http_code}", timeout=30)
            if r.stdout == b"200" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # ... and new clients are served again.
        self.assertEqual(r.stdout, b"200", r.stderr)
        self.assertTrue(self.gw.alive())
        with open(self.gw.stderr_path, errors="replace") as f:
            reports = f.read().count("accept failed")
        # Said, but not once per failed attempt (the loop retries every 100 ms).
        self.assertGreaterEqual(reports, 1, harness.tail(self.gw.stderr_path))
        self.assertLessEqual(reports, 3, harness.tail(self.gw.stderr_path))


class ConnectionLimits(unittest.TestCase):
    """max_connections and max_connections_per_client refuse quickly and recover."""

    def start(self, config):
        self.w = harness.world()
        path = os.path.join(harness.tempfile.mkdtemp(prefix="tlsgate-limits-"), "tlsgate.toml")
        with open(path, "w") as f:
            f.write(config)
        self.gw = harness.Gateway(self.w, workers=2, extra_args=["--config", path])
        self.gw.start()
        # The readiness probe's connection counts until the gateway has seen it close; the
        # connections the test holds must not race it for the last slot.
        self.gw.wait_log(lambda line: True)

    def tearDown(self):
        self.gw.cleanup()

    def refused(self, s):
        # A refused connection is closed at once, before any request is read.
        s.settimeout(harness.t(5))
        try:
            return s.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def check_limit(self, limit, message):
        held = [socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
                for _ in range(limit)]
        try:
            time.sleep(harness.t(0.3))
            extra = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
            self.assertTrue(self.refused(extra), "a connection over the limit was kept open")
            extra.close()
            for s in held:  # the admitted ones are still being served
                s.settimeout(0.2)
                with self.assertRaises(socket.timeout):
                    s.recv(1)
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + harness.t(10)
        while True:
            r = harness.curl(self.gw, f"https://origin.test:{self.w.port('valid')}/1k.bin",
                             "-o", "/dev/null", "-w", "%{http_code}", timeout=30)
            if r.stdout == b"200" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(r.stdout, b"200", r.stderr)
        with open(self.gw.stderr_path, errors="replace") as f:
            self.assertIn(message, f.read())

    def test_per_client_limit(self):
        self.start("max_connections_per_client = 3\n")
        self.check_limit(3, "max_connections_per_client limit reached")

    def test_total_limit(self):
        self.start("max_connections = 4\n")
        self.check_limit(4, "max_connections limit reached")


if __name__ == "__main__":
    unittest.main()
