"""Auto passthrough (issue #7): clients that refuse the minted certificate (here curl trusting only
the real root, as a pinned app or a device without the tlsgate CA would) teach the gateway to pass
that host through; `tlsgate passthrough list|clear` shows and forgets what it learned."""

import json
import unittest

import harness


start = harness.start_gateway


class AutoPassthrough(unittest.TestCase):
    FAILURES = 2

    def setUp(self):
        self.w = harness.world()
        self.url = f"https://origin.test:{self.w.port('valid')}/1k.bin"

    def refusing_client(self, gw):
        """curl without the tlsgate CA: the real root only."""
        return harness.curl(gw, self.url, "-o", "/dev/null", cacert=self.w.pki.root_path)

    def passthrough(self, gw, *args):
        return harness.run([harness.BIN, "passthrough", *args, "--data-dir", gw.data_dir],
                           timeout=20)

    def test_refusals_teach_a_passthrough_that_list_shows_and_clear_forgets(self):
        gw = start(self.w, f"[auto_passthrough]\nenabled = true\nfailures = {self.FAILURES}\n"
                           f"duration = 600\n")
        self.addCleanup(gw.cleanup)
        for _ in range(self.FAILURES):
            r = self.refusing_client(gw)
            self.assertEqual(r.returncode, 60, f"the minted certificate is refused: {r.stderr!r}")
        refusals = gw.wait_log(lambda l: l.get("client_rejection"), count=self.FAILURES)
        self.assertEqual(refusals[0]["client_rejection"], "unknown_ca", refusals[0])

        # now the same client gets the real certificate, passed through untouched
        r = self.refusing_client(gw)
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{gw.diagnostics()}")
        line = gw.wait_log(lambda l: l.get("rule") == "auto_passthrough")[-1]
        self.assertEqual(line["action"], "passthrough", line)
        self.assertIn("learned", line["reason"], line)
        self.assertNotIn("client_tls", line, "not intercepted")
        # a client that trusts the tlsgate CA but not the real root fails now: proof of the
        # real certificate
        r = harness.curl(gw, self.url, "-o", "/dev/null")
        self.assertEqual(r.returncode, 60, r.stderr)

        listed = self.passthrough(gw, "list", "--format", "json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        answer = json.loads(listed.stdout)
        self.assertTrue(answer["enabled"])
        self.assertEqual(answer["failures"], self.FAILURES)
        entry = [e for e in answer["entries"] if e["host"] == "origin.test"]
        self.assertEqual(len(entry), 1, answer)
        self.assertEqual(entry[0]["rejections"], self.FAILURES)
        self.assertIsNotNone(entry[0]["passthrough_until"], entry)
        table = self.passthrough(gw, "list")
        self.assertIn(b"origin.test", table.stdout)

        cleared = self.passthrough(gw, "clear", "origin.test")
        self.assertEqual(cleared.returncode, 0, cleared.stderr)
        self.assertIn(b"cleared 1 entry", cleared.stdout)
        r = harness.curl(gw, self.url, "-o", "/dev/null")
        self.assertEqual(r.returncode, 0, f"intercepted again: {r.stderr!r}")
        self.assertEqual(json.loads(self.passthrough(gw, "list", "--format", "json").stdout)
                         ["entries"], [])

    def test_off_by_default(self):
        gw = start(self.w)
        self.addCleanup(gw.cleanup)
        for _ in range(self.FAILURES + 2):
            self.assertEqual(self.refusing_client(gw).returncode, 60)
        r = harness.curl(gw, self.url, "-o", "/dev/null")
        self.assertEqual(r.returncode, 0, "still intercepted")
        listed = self.passthrough(gw, "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(b"auto passthrough is off", listed.stdout)

    def test_list_without_a_running_gateway_says_so(self):
        r = harness.run([harness.BIN, "passthrough", "list", "--data-dir", "/nonexistent"],
                        timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"cannot reach the gateway", r.stderr)


if __name__ == "__main__":
    unittest.main()
