"""The CA key in a PKCS#11 token (issue #7): the key is generated inside a SoftHSM2 token and
never leaves it; `tlsgate ca init --key pkcs11:...` has the token sign the root, and the gateway
mints every leaf through the token. Needs softhsm2, opensc (pkcs11-tool) and
libengine-pkcs11-openssl; skipped otherwise."""

import os
import shutil
import subprocess
import tempfile
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import harness

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
ENGINE = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
PIN = "4711"
TOKEN = "tlsgate-ca"


def available():
    return (shutil.which("softhsm2-util") and shutil.which("pkcs11-tool")
            and os.path.exists(SOFTHSM_MODULE) and os.path.exists(ENGINE))


def tlsgate(*args):
    return harness.run([harness.BIN, *args], timeout=60)


def uri(label):
    return f"pkcs11:token={TOKEN};object={label};type=private"


@unittest.skipUnless(available(), "needs softhsm2, opensc and libengine-pkcs11-openssl")
class CaKeyInToken(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tlsgate-pkcs11-")
        tokens = os.path.join(cls.dir, "tokens")
        os.mkdir(tokens)
        conf = os.path.join(cls.dir, "softhsm2.conf")
        with open(conf, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
        cls.saved_conf = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = conf  # the gateway and the tools inherit it
        cls.pin_file = os.path.join(cls.dir, "pin")
        with open(os.open(cls.pin_file, os.O_CREAT | os.O_WRONLY, 0o600), "w") as f:
            f.write(PIN + "\n")
        r = harness.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN,
                         "--pin", PIN, "--so-pin", "123456"])
        assert r.returncode == 0, r.stderr
        # Generated inside the token: the private key never exists anywhere else.
        for label, key_id, key_type in (("ec-ca", "01", "EC:prime256v1"),
                                        ("rsa-ca", "02", "rsa:3072"),
                                        ("other", "03", "EC:prime256v1")):
            r = harness.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", TOKEN,
                             "--login", "--pin", PIN, "--keypairgen", "--key-type", key_type,
                             "--label", label, "--id", key_id], timeout=120)
            assert r.returncode == 0, r.stderr
        cls.w = harness.world()
        cls.ca_dirs = {}
        for label in ("ec-ca", "rsa-ca"):
            ca_dir = os.path.join(cls.dir, label)
            r = tlsgate("ca", "init", "--dir", ca_dir, "--key", uri(label), "--pkcs11-module",
                        SOFTHSM_MODULE, "--pkcs11-pin-file", cls.pin_file)
            assert r.returncode == 0, r.stderr
            cls.ca_dirs[label] = ca_dir
        cls.gateways = []

    @classmethod
    def tearDownClass(cls):
        for gw in cls.gateways:
            gw.cleanup()
        if cls.saved_conf is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = cls.saved_conf
        if not harness.KEEP:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def token_public_key(self, key_id):
        r = harness.run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", TOKEN,
                         "--read-object", "--type", "pubkey", "--id", key_id])
        self.assertEqual(r.returncode, 0, r.stderr)
        return serialization.load_der_public_key(r.stdout)

    def gateway(self, label, *extra):
        args = ["--ca-key", uri(label), "--pkcs11-module", SOFTHSM_MODULE, *extra]
        return harness.Gateway(self.w, ca_dir=self.ca_dirs[label], extra_args=args)

    def started_gateway(self, label):
        gw = self.gateway(label, "--pkcs11-pin-file", self.pin_file).start()
        self.gateways.append(gw)
        return gw

    def test_ca_init_writes_only_the_certificate_of_the_token_key(self):
        for label, key_id in (("ec-ca", "01"), ("rsa-ca", "02")):
            ca_dir = self.ca_dirs[label]
            self.assertEqual(sorted(os.listdir(ca_dir)), ["ca.pem"])
            with open(os.path.join(ca_dir, "ca.pem"), "rb") as f:
                ca = x509.load_pem_x509_certificate(f.read())
            public = self.token_public_key(key_id).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            self.assertEqual(ca.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
                public)
            harness.check_signature(ca, ca.public_key())  # the token signed it
            shown = tlsgate("ca", "show", "--dir", ca_dir)
            self.assertEqual(shown.returncode, 0, shown.stderr)
            self.assertIn(b"not in this directory", shown.stdout)

    def test_leaves_are_signed_through_the_token(self):
        for label in ("ec-ca", "rsa-ca"):
            gw = self.started_gateway(label)
            # Several names at once: both workers sign through the token concurrently.
            names = ["origin.test", "www.origin.test", "rsa.origin.test"]
            procs = []
            for name in names:
                port = self.w.port("rsa" if name == "rsa.origin.test" else "valid")
                argv = [harness.CURL, "-sS", "--max-time", str(int(harness.t(60))), "--proxy",
                        gw.proxy, "--cacert", gw.ca_path, "--resolve",
                        f"{name}:{port}:{harness.LOOPBACK}", "-o", "/dev/null", "-w",
                        "%{http_code}", f"https://{name}:{port}/1k.bin"]
                procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, env=harness.clean_env()))
            for name, proc in zip(names, procs):
                out, err = proc.communicate(timeout=harness.t(90))
                self.assertEqual((proc.returncode, out), (0, b"200"),
                                 f"{label} {name}: {err!r}\n{gw.diagnostics()}")
            with open(gw.stderr_path, "rb") as f:
                stderr = f.read()
            self.assertIn(b"CA key in a PKCS#11 token", stderr)
            self.assertNotIn(PIN.encode(), stderr)

    def test_a_wrong_pin_refuses_to_start_with_a_clear_error(self):
        wrong = os.path.join(self.dir, "wrong-pin")
        with open(os.open(wrong, os.O_CREAT | os.O_WRONLY, 0o600), "w") as f:
            f.write("0000\n")
        self.assert_refused(self.gateway("ec-ca", "--pkcs11-pin-file", wrong),
                            b"cannot find the private key")

    def test_no_pin_refuses_to_start_instead_of_prompting(self):
        self.assert_refused(self.gateway("ec-ca"), b"needs a PIN")

    def test_a_pin_file_others_can_read_is_refused(self):
        loose = os.path.join(self.dir, "loose-pin")
        with open(loose, "w") as f:
            f.write(PIN + "\n")
        os.chmod(loose, 0o644)
        self.assert_refused(self.gateway("ec-ca", "--pkcs11-pin-file", loose), b"chmod 600")

    def test_a_token_key_that_does_not_match_the_certificate_is_refused(self):
        gw = harness.Gateway(self.w, ca_dir=self.ca_dirs["ec-ca"], extra_args=[
            "--ca-key", uri("other"), "--pkcs11-module", SOFTHSM_MODULE, "--pkcs11-pin-file",
            self.pin_file])
        self.assert_refused(gw, b"does not match the certificate")

    def assert_refused(self, gw, expected):
        r = harness.run(gw.argv, timeout=60)
        shutil.rmtree(gw.dir, ignore_errors=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(expected, r.stderr + r.stdout)
        self.assertNotIn(PIN.encode(), r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
