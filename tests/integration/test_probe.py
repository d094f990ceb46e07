"""`tlsgate probe` end to end, on loopback: through a tlsgate that intercepts a target list
(the targeted names are reported intercepted with tlsgate's CA named, the others clean),
SNI-triggered detection with --connect and --control, a policy block and a path that resets
chosen SNIs (blocked), direct connections to the origin (clean; expired and other broken
certificates invalid), non-TLS answers, 1,000 names in seconds, exit statuses and usage errors."""

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

import harness

# Names the "policy" origin's certificate covers (harness.POLICY_NAMES), split by what the
# gateway does with them.
TARGETED = ["allowed.test", "echo.test", "a.dot.test"]
PASSED = ["pass.test", "plain.test", "xstar.test", "ok.dot.test"]
SNI_BLOCKED = "sni-blocked.test"
CONNECT_BLOCKED = "blocked.test"
CONTROL = "pass.test"

POLICY = f"""
default = "passthrough"

[[rules]]
name = "targets"
action = "intercept"
hosts = {json.dumps(TARGETED)}

[[rules]]
name = "block-sni"
action = "block"
hosts = ["{SNI_BLOCKED}"]

[[rules]]
name = "block-connect"
action = "block"
hosts = ["{CONNECT_BLOCKED}"]
"""


def spki_sha256(cert):
    return hashlib.sha256(harness.spki_der(cert.public_key())).hexdigest()


class ResettingPath:
    """A Hyperquack-style censor on loopback: forwards each connection to the origin unless the
    ClientHello carries one of `names`, in which case it answers with a TCP reset."""

    def __init__(self, origin_port, names):
        self.origin_port = origin_port
        self.names = [name.encode() for name in names]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((harness.LOOPBACK, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        conn.settimeout(30)
        try:
            hello = conn.recv(65536)
        except OSError:
            conn.close()
            return
        if any(name in hello for name in self.names):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()
            return
        try:
            upstream = socket.create_connection((harness.LOOPBACK, self.origin_port), timeout=30)
        except OSError:
            conn.close()
            return
        upstream.sendall(hello)

        def pipe(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
        back.start()
        pipe(conn, upstream)
        back.join(30)
        upstream.close()
        conn.close()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class ProbeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.port = cls.w.port("policy")
        cls.gw = harness.Gateway(cls.w, policy=POLICY).start()
        cls.home = tempfile.mkdtemp(prefix="tlsgate-probe-home-")
        cls.public_root_spki = spki_sha256(cls.w.pki.root)
        cls.gateway_ca = cls.gw.ca_cert()
        cls.gateway_ca_spki = spki_sha256(cls.gateway_ca)

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        shutil.rmtree(cls.home, ignore_errors=True)

    def setUp(self):
        self.assertTrue(self.gw.alive(), self.gw.diagnostics())

    # ---------------------------------------------------------------- helpers

    def probe(self, *args, timeout=60, trust=True):
        """Runs `tlsgate probe ARGS`; returns (exit status, stdout text, stderr text). HOME points
        at an empty directory, so no tlsgate CA of the machine running the tests is picked up."""
        env = harness.clean_env()
        env["HOME"] = self.home
        env.pop("XDG_DATA_HOME", None)
        argv = [harness.BIN, "probe"]
        if trust:
            argv += ["--no-system-trust", "--trust", self.w.pki.root_path]
        argv += list(args)
        r = harness.run(argv, timeout=timeout, env=env)
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            self.assertNotIn(marker, err, f"sanitizer report from the probe:\n{err}")
        return r.returncode, out, err

    def probe_json(self, *args, expect_status=None, **kwargs):
        status, out, err = self.probe("--format", "json", *args, **kwargs)
        if expect_status is not None:
            self.assertEqual(status, expect_status, f"stdout:\n{out}\nstderr:\n{err}")
        try:
            document = json.loads(out)
        except ValueError:
            self.fail(f"not JSON (exit {status}):\n{out}\nstderr:\n{err}")
        return document

    def by_host(self, document):
        return {result["host"]: result for result in document["results"]}

    def names(self, hosts):
        return [f"{host}:{self.port}" for host in hosts]

    def assert_intercepted_by_this_gateway(self, result, known_by_key=True):
        self.assertEqual(result["status"], "intercepted", result)
        self.assertEqual(result["issuer"], self.gateway_ca.subject.rfc4514_string(), result)
        self.assertTrue(result["issuer"].startswith("CN=tlsgate CA"), result)
        known = result["known_root"]
        self.assertIsNotNone(known, result)
        if known_by_key:
            self.assertIn("tlsgate CA on this machine", known["name"])
            self.assertEqual(known["spki_sha256"], self.gateway_ca_spki)
            self.assertEqual(result["root"]["spki_sha256"], self.gateway_ca_spki)
            self.assertEqual(result["root"]["source"], "known")
        else:
            self.assertEqual(known["source"], "issuer name")
            self.assertIn("tlsgate", known["name"])
        self.assertFalse(result["root"]["in_trust_store"], result)

    def assert_clean_origin(self, result):
        self.assertEqual(result["status"], "clean", result)
        self.assertEqual(result["leaf"]["sha256"], self.w.leaf("policy").sha256, result)
        self.assertEqual(result["root"]["spki_sha256"], self.public_root_spki, result)
        self.assertTrue(result["root"]["in_trust_store"], result)
        self.assertIsNone(result["known_root"], result)

    # ---------------------------------------------------------------- through the gateway

    def test_through_the_gateway_targeted_names_are_intercepted_others_clean(self):
        doc = self.probe_json("--proxy", self.gw.proxy, "--ca-dir", self.gw.data_dir,
                              *self.names(TARGETED + PASSED + [CONNECT_BLOCKED]),
                              expect_status=1)
        results = self.by_host(doc)
        for host in TARGETED:
            self.assert_intercepted_by_this_gateway(results[host])
        for host in PASSED:
            self.assert_clean_origin(results[host])
        blocked = results[CONNECT_BLOCKED]
        self.assertEqual(blocked["status"], "blocked", blocked)
        self.assertEqual(blocked["proxy_status"], 403, blocked)
        self.assertTrue(doc["intercepted"])
        self.assertEqual(doc["summary"]["intercepted_names"], self.names(TARGETED))
        self.assertEqual(doc["summary"]["clean"], len(PASSED))
        self.assertEqual(doc["summary"]["blocked"], 1)
        self.assertEqual(doc["run"]["proxy"], self.gw.proxy)
        self.assertEqual(doc["run"]["local_ca"], os.path.join(self.gw.data_dir, "ca.pem"))
        for result in doc["results"]:
            self.assertEqual(result["address"], f"{harness.LOOPBACK}:{self.gw.port}")

    def test_any_tlsgate_is_named_even_without_its_ca_certificate(self):
        doc = self.probe_json("--proxy", self.gw.proxy, *self.names(TARGETED[:1] + PASSED[:1]),
                              expect_status=1)
        results = self.by_host(doc)
        self.assert_intercepted_by_this_gateway(results[TARGETED[0]], known_by_key=False)
        # The gateway sends its leaf only: the root's name is known, its key is not.
        self.assertEqual(results[TARGETED[0]]["root"]["source"], "not presented")
        self.assertIsNone(results[TARGETED[0]]["root"]["spki_sha256"])
        self.assert_clean_origin(results[PASSED[0]])
        self.assertIsNone(doc["run"]["local_ca"])

    def test_table_output_names_the_interceptor(self):
        status, out, err = self.probe("--proxy", self.gw.proxy, "--ca-dir", self.gw.data_dir,
                                      *self.names(TARGETED[:1] + PASSED[:1]))
        self.assertEqual(status, 1, f"{out}\n{err}")
        self.assertIn("STATUS", out.splitlines()[0])
        self.assertIn("intercepted", out)
        self.assertIn("known interception root: tlsgate CA on this machine", out)
        self.assertIn(self.gateway_ca_spki, out)
        self.assertIn("TLS interception detected.", out)

    def test_sni_triggered_detection_finds_exactly_the_targeted_names(self):
        # Every handshake goes to the same origin address through the gateway; only the SNI
        # changes, so only what the SNI triggers differs from the control.
        everything = TARGETED + PASSED + [SNI_BLOCKED]
        doc = self.probe_json("--proxy", self.gw.proxy, "--connect", f"127.0.0.1:{self.port}",
                              "--control", CONTROL, *everything, expect_status=1)
        self.assertEqual(doc["run"]["connect"], f"127.0.0.1:{self.port}")
        control = doc["control"]
        self.assertEqual(control["host"], CONTROL)
        self.assertEqual(control["status"], "clean", control)
        self.assertEqual(doc["summary"]["triggered_names"], [f"{h}:443" for h in TARGETED])
        results = self.by_host(doc)
        for host in TARGETED:
            result = results[host]
            self.assertEqual(result["status"], "intercepted", result)
            self.assertTrue(result["control_comparison"]["same_destination"], result)
            self.assertIn("certificate", result["control_comparison"]["fields"], result)
            self.assertTrue(result["control_comparison"]["triggered"], result)
        for host in PASSED:
            result = results[host]
            self.assertEqual(result["status"], "clean", result)
            self.assertFalse(result["control_comparison"]["differs"], result)
            self.assertFalse(result["control_comparison"]["triggered"], result)
        blocked = results[SNI_BLOCKED]
        self.assertEqual(blocked["status"], "blocked", blocked)
        self.assertEqual(blocked["alert"], "access_denied", blocked)
        self.assertIsNone(blocked["tls"], blocked)

    def test_a_path_that_resets_chosen_snis_is_blocked_for_those(self):
        resetting = ["xstar.test", "allowed.test"]
        path = ResettingPath(self.port, resetting)
        try:
            doc = self.probe_json("--connect", f"127.0.0.1:{path.port}", "--control", CONTROL,
                                  *(TARGETED + PASSED), expect_status=0)
        finally:
            path.close()
        self.assertEqual(doc["control"]["status"], "clean", doc["control"])
        for host, result in self.by_host(doc).items():
            if host in resetting:
                self.assertEqual(result["status"], "blocked", result)
                self.assertIn("reset", result["reason"], result)
            else:
                self.assertEqual(result["status"], "clean", result)

    # ---------------------------------------------------------------- direct to the origin

    def test_direct_to_the_origin_everything_is_clean(self):
        doc = self.probe_json("--connect", f"127.0.0.1:{self.port}",
                              *(TARGETED + PASSED + [SNI_BLOCKED]), expect_status=0)
        self.assertFalse(doc["intercepted"])
        for result in doc["results"]:
            self.assert_clean_origin(result)
            self.assertEqual(result["tls"]["alpn"], "h2", result)
            self.assertIsNotNone(result["timings_ms"]["handshake"], result)

    def test_broken_origin_certificates_are_invalid_not_intercepted(self):
        cases = {"expired": "expired", "selfsigned": "self_signed", "wronghost": "wrong_host",
                 "notyet": "not_yet_valid"}
        for key, code in cases.items():
            with self.subTest(origin=key):
                host = harness.TLS_ORIGINS[key][1]
                doc = self.probe_json("--connect", f"127.0.0.1:{self.w.port(key)}", host,
                                      expect_status=0)
                (result,) = doc["results"]
                self.assertEqual(result["status"], "invalid", result)
                self.assertEqual(result["verify_errors"][0], code, result)
                self.assertIsNone(result["known_root"], result)

    def test_unknown_root_for_a_public_name_is_intercepted(self):
        # Without a control nothing tells a private root from an interceptor's: the name is
        # expected to be public, so a root outside the trust store is reported.
        doc = self.probe_json("--connect", f"127.0.0.1:{self.w.port('untrusted')}",
                              "untrusted.test", expect_status=1)
        (result,) = doc["results"]
        self.assertEqual(result["status"], "intercepted", result)
        self.assertEqual(result["root"]["subject"],
                         self.w.pki.other_root.subject.rfc4514_string(), result)
        self.assertEqual(result["root"]["spki_sha256"], spki_sha256(self.w.pki.other_root))

    def test_known_roots_file_extends_the_list(self):
        listing = os.path.join(self.home, "known-roots.txt")
        with open(listing, "w") as f:
            f.write(f"# test\n{self.public_root_spki}  Test middlebox root\n")
        doc = self.probe_json("--connect", f"127.0.0.1:{self.port}", "--known-roots", listing,
                              "pass.test", expect_status=1)
        (result,) = doc["results"]
        self.assertEqual(result["status"], "intercepted", result)
        self.assertEqual(result["known_root"]["name"], "Test middlebox root")
        self.assertEqual(result["known_root"]["source"], listing)
        self.assertEqual(doc["run"]["known_root_files"], [listing])

    def test_plain_http_is_no_tls(self):
        doc = self.probe_json("--connect", f"127.0.0.1:{self.w.plain_port}", "plain.test",
                              expect_status=0)
        (result,) = doc["results"]
        self.assertEqual(result["status"], "no-tls", result)
        self.assertIn("HTTP/1.1 400", result["reason"], result)

    def test_unreachable_is_an_error_not_a_verdict(self):
        doc = self.probe_json("--connect", f"127.0.0.1:{harness.closed_port()}", "pass.test",
                              expect_status=0)
        (result,) = doc["results"]
        self.assertEqual(result["status"], "error", result)
        self.assertIn("refused", result["reason"].lower(), result)

    def test_a_thousand_names_finish_in_seconds(self):
        listing = os.path.join(self.home, "thousand.txt")
        with open(listing, "w") as f:
            f.write("# 1000 names at one origin\n")
            for i in range(999):
                f.write(f"n{i}.origin.test\n")
            f.write("origin.test\n")
        started = time.monotonic()
        doc = self.probe_json("--connect", f"127.0.0.1:{self.w.port('valid')}", "--list",
                              listing, "--timeout", "20", timeout=120, expect_status=0)
        elapsed = time.monotonic() - started
        self.assertEqual(doc["summary"]["total"], 1000)
        results = doc["results"]
        self.assertEqual(results[-1]["status"], "clean", results[-1])
        self.assertEqual(doc["summary"]["invalid"], 999, doc["summary"])  # wrong host each
        self.assertLess(elapsed, harness.t(60), f"1000 names took {elapsed:.1f}s")
        print(f"\n  1000 names in {elapsed:.2f}s", end="", flush=True)

    # ---------------------------------------------------------------- usage

    def test_usage_and_setup_errors_exit_2(self):
        missing = os.path.join(self.home, "missing.txt")
        cases = [
            [],                                          # no names
            ["--format", "xml", "pass.test"],
            ["--bogus-flag", "pass.test"],
            ["--timeout"],                               # missing value
            ["--timeout", "0", "pass.test"],
            ["--concurrency", "100000", "pass.test"],
            ["--list", missing],
            ["--connect", "origin.test:443", "pass.test"],  # not an address
            ["--proxy", "https://127.0.0.1:1", "pass.test"],
            ["--trust", missing, "pass.test"],
            ["--ca-dir", self.home, "pass.test"],        # no ca.pem there
            ["bad name!"],
        ]
        for args in cases:
            with self.subTest(args=args):
                status, out, err = self.probe(*args)
                self.assertEqual(status, 2, f"{args}: {out}\n{err}")
                self.assertTrue(err.strip(), "an explanation on stderr")
        status, out, _ = self.probe("--help", trust=False)
        self.assertEqual(status, 0)
        self.assertIn("--control", out)


if __name__ == "__main__":
    unittest.main()
