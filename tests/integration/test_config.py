"""`tlsgate run --config FILE`: a TOML file can set everything, flags override it, --log moves the
connection log, unknown keys are errors."""

import os
import shutil
import tempfile
import unittest

import harness
from harness import curl


def toml_str(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.w = harness.world()
        self.dir = tempfile.mkdtemp(prefix="tlsgate-cfg-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write_config(self, port, extra=""):
        resolve = "\n".join(f'{toml_str(n)} = "127.0.0.1"' for n in self.w.names())
        text = f"""
listen = [{toml_str(f"explicit@127.0.0.1:{port}")}]
data_dir = {toml_str(os.path.join(self.dir, "data"))}
upstream_ca = [{toml_str(self.w.pki.root_path)}]
system_trust = false
log = {toml_str(os.path.join(self.dir, "custom.jsonl"))}
workers = 1
{extra}

[policy]
default = "intercept"

[[policy.rules]]
name = "cfg-block"
action = "block"
hosts = ["blocked.test"]

[resolve]
{resolve}
"""
        path = os.path.join(self.dir, "tlsgate.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def gateway(self, argv_tail, port):
        gw = harness.Gateway(self.w)
        gw.argv = [harness.BIN, "run", *argv_tail]
        gw.port = port
        gw.data_dir = os.path.join(self.dir, "data")
        gw.log_path = os.path.join(self.dir, "custom.jsonl")
        self.addCleanup(gw.cleanup)
        return gw.start()

    def test_everything_from_the_config_file(self):
        port = harness.free_port()
        gw = self.gateway(["--config", self.write_config(port)], port)
        r = curl(gw, f"https://origin.test:{self.w.port('valid')}/1k.bin", "-o", "-")
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{gw.diagnostics()}")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))
        status, head, body, _ = harness.proxy_connect(gw, f"blocked.test:{self.w.port('policy')}")
        self.assertEqual(status, 403, head)
        line = gw.wait_log(lambda l: l.get("rule") == "cfg-block")[0]
        self.assertEqual(line.get("action"), "block")
        self.assertTrue(os.path.exists(os.path.join(self.dir, "data", "ca.pem")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "data", "connections.jsonl")),
                         "the log went to the configured file instead")

    def test_flags_override_the_config_file(self):
        config_port = harness.free_port()
        flag_port = harness.free_port()
        other_log = os.path.join(self.dir, "flag.jsonl")
        gw = self.gateway(["--config", self.write_config(config_port),
                           "--listen", f"explicit@127.0.0.1:{flag_port}", "--log", other_log],
                          flag_port)
        gw.log_path = other_log
        with self.assertRaises(OSError, msg="the config's listen address was overridden"):
            harness.socket.create_connection(("127.0.0.1", config_port), timeout=2).close()
        r = curl(gw, f"https://origin.test:{self.w.port('valid')}/1k.bin", "-o", "/dev/null")
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{gw.diagnostics()}")
        gw.wait_log(lambda l: l.get("sni") == "origin.test")

    def test_unknown_key_is_an_error(self):
        path = self.write_config(harness.free_port(), extra="no_such_setting = 1")
        r = harness.run([harness.BIN, "run", "--config", path], timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no_such_setting", (r.stdout + r.stderr).decode())

    def test_bad_policy_file_is_an_error(self):
        policy = os.path.join(self.dir, "bad-policy.toml")
        with open(policy, "w") as f:
            f.write('default = "intercept"\n[[rules]]\nname = "x"\naction = "explode"\n'
                    'hosts = ["a.test"]\n')
        r = harness.run([harness.BIN, "run", "--listen", f"explicit@127.0.0.1:{harness.free_port()}",
                         "--data-dir", os.path.join(self.dir, "d"), "--policy", policy],
                        timeout=30)
        self.assertNotEqual(r.returncode, 0, "an invalid action must not start a gateway")

    def test_check_config_accepts_the_example_and_names_on_upstream_error(self):
        example = os.path.join(harness.REPO, "packaging", "config.toml")
        r = harness.run([harness.BIN, "check-config", "--config", example], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'on_upstream_error = "mirror"', r.stdout)
        path = self.write_config(harness.free_port())
        with open(path) as f:
            text = f.read().replace('default = "intercept"',
                                    'default = "intercept"\non_upstream_error = "wave"')
        with open(path, "w") as f:
            f.write(text)
        r = harness.run([harness.BIN, "check-config", "--config", path], timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"mirror or block", r.stderr)


if __name__ == "__main__":
    unittest.main()
