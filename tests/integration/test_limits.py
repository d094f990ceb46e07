"""Running out of file descriptors pauses accepting, is logged once, and never kills the gateway."""

import shutil
import socket
import time
import unittest

import harness


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


if __name__ == "__main__":
    unittest.main()
