"""`tlsgate ca init|show|export|import`, `version` and `--help`, checked with the openssl CLI."""

import datetime
import hashlib
import os
import re
import shutil
import stat
import tempfile
import unittest

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import harness
from harness import BIN, OPENSSL, run


def tlsgate(*args, timeout=60):
    return run([BIN, *args], timeout=timeout)


def openssl(*args, input=None):
    return run([OPENSSL, *args], input=input)


def load_pem(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


class CaCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tlsgate-ca-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def init(self, cadir, *args, expect_ok=True):
        r = tlsgate("ca", "init", "--dir", cadir, *args)
        if expect_ok:
            self.assertEqual(r.returncode, 0, f"ca init {args}: {r.stdout!r} {r.stderr!r}")
        return r

    def openssl_text(self, pem):
        r = openssl("x509", "-in", pem, "-noout", "-text")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def assert_root_profile(self, pem):
        text = self.openssl_text(pem)
        self.assertRegex(text, r"X509v3 Basic Constraints: critical\s*\n\s*CA:TRUE, pathlen:0\b")
        self.assertRegex(text, r"X509v3 Key Usage: critical\s*\n\s*Certificate Sign, CRL Sign\s*\n")
        self.assertIn("X509v3 Subject Key Identifier", text)
        cert = load_pem(pem)
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        self.assertGreater(len(ski.value.digest), 0)
        life = cert.not_valid_after - cert.not_valid_before
        self.assertGreaterEqual(life.days, 3640, "about 10 years")
        self.assertLessEqual(life.days, 3665, "about 10 years")
        now = datetime.datetime.utcnow()
        self.assertLessEqual(cert.not_valid_before, now + datetime.timedelta(minutes=5))
        self.assertEqual(cert.subject, cert.issuer, "a self-signed root")
        return text

    # ---------------------------------------------------------------- init

    def test_init_creates_cert_and_private_key_0600(self):
        cadir = self.path("ca")
        self.init(cadir)
        pem, key = self.path("ca", "ca.pem"), self.path("ca", "ca.key")
        self.assertTrue(os.path.isfile(pem))
        self.assertTrue(os.path.isfile(key))
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        with open(key, "rb") as f:
            self.assertIn(b"PRIVATE KEY-----", f.read())
        self.assertEqual(openssl("pkey", "-in", key, "-noout").returncode, 0)
        # the key belongs to the certificate
        cert_pub = openssl("x509", "-in", pem, "-noout", "-pubkey").stdout
        key_pub = openssl("pkey", "-in", key, "-pubout").stdout
        self.assertEqual(cert_pub, key_pub)
        text = self.assert_root_profile(pem)
        self.assertIn("prime256v1", text, "ec-p256 is the default key type")

    def test_init_refuses_to_overwrite_without_force(self):
        cadir = self.path("ca")
        self.init(cadir)
        with open(self.path("ca", "ca.pem"), "rb") as f:
            before_pem = f.read()
        with open(self.path("ca", "ca.key"), "rb") as f:
            before_key = f.read()
        r = self.init(cadir, expect_ok=False)
        self.assertNotEqual(r.returncode, 0, "second init without --force must fail")
        self.assertTrue((r.stderr + r.stdout).strip(), "and say why")
        with open(self.path("ca", "ca.pem"), "rb") as f:
            self.assertEqual(f.read(), before_pem)
        with open(self.path("ca", "ca.key"), "rb") as f:
            self.assertEqual(f.read(), before_key)
        self.init(cadir, "--force")
        with open(self.path("ca", "ca.pem"), "rb") as f:
            self.assertNotEqual(f.read(), before_pem, "--force makes a new CA")
        self.assertEqual(stat.S_IMODE(os.stat(self.path("ca", "ca.key")).st_mode), 0o600)

    def test_init_rsa_3072(self):
        cadir = self.path("rsa")
        self.init(cadir, "--key", "rsa-3072")
        text = self.assert_root_profile(self.path("rsa", "ca.pem"))
        self.assertIn("rsaEncryption", text)
        self.assertIn("Public-Key: (3072 bit)", text)
        self.assertIsInstance(load_pem(self.path("rsa", "ca.pem")).public_key(), rsa.RSAPublicKey)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("rsa", "ca.key")).st_mode), 0o600)

    def test_init_ec_p256_and_subject(self):
        cadir = self.path("ec")
        self.init(cadir, "--key", "ec-p256", "--subject", "CN=Example Test CA,O=Example Org")
        pem = self.path("ec", "ca.pem")
        self.assert_root_profile(pem)
        cert = load_pem(pem)
        self.assertIsInstance(cert.public_key(), ec.EllipticCurvePublicKey)
        self.assertEqual(cert.public_key().curve.name, "secp256r1")
        self.assertEqual(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
                         "Example Test CA")
        self.assertEqual(
            cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value,
            "Example Org")

    # ---------------------------------------------------------------- show

    def test_show_prints_fingerprints_that_match_openssl(self):
        cadir = self.path("ca")
        self.init(cadir)
        pem = self.path("ca", "ca.pem")
        r = tlsgate("ca", "show", "--dir", cadir)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        fp = openssl("x509", "-in", pem, "-noout", "-fingerprint", "-sha256").stdout.decode()
        fp_hex = harness.norm_hex(fp.split("=", 1)[1])
        self.assertEqual(len(fp_hex), 64)
        pub = openssl("x509", "-in", pem, "-noout", "-pubkey").stdout
        spki_der = openssl("pkey", "-pubin", "-outform", "der", input=pub).stdout
        spki_hex = hashlib.sha256(spki_der).hexdigest()
        # both digests appear, in whatever spelling (colons, case)
        hexes = {harness.norm_hex(m) for m in
                 re.findall(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}|[0-9A-Fa-f]{64}", out)}
        self.assertIn(fp_hex, hexes, f"certificate SHA-256 {fp_hex} not in:\n{out}")
        self.assertIn(spki_hex, hexes, f"SPKI SHA-256 {spki_hex} not in:\n{out}")
        self.assertIn("tlsgate CA", out, "subject is shown")
        cert = load_pem(pem)
        self.assertIn(str(cert.not_valid_after.year), out, "validity is shown")

    # ---------------------------------------------------------------- export

    def test_export_pem_der_p12(self):
        cadir = self.path("ca")
        self.init(cadir)
        ca_der = openssl("x509", "-in", self.path("ca", "ca.pem"), "-outform", "der").stdout

        out = self.path("export.pem")
        r = tlsgate("ca", "export", "--dir", cadir, "--format", "pem", "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            data = f.read()
        self.assertNotIn(b"PRIVATE KEY", data)
        r = openssl("x509", "-in", out, "-outform", "der")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, ca_der)

        out = self.path("export.der")
        r = tlsgate("ca", "export", "--dir", cadir, "--format", "der", "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = openssl("x509", "-inform", "der", "-in", out, "-outform", "der")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, ca_der)

        out = self.path("export.p12")
        r = tlsgate("ca", "export", "--dir", cadir, "--format", "p12", "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = openssl("pkcs12", "-in", out, "-passin", "pass:", "-nokeys")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"BEGIN CERTIFICATE", r.stdout)
        r2 = openssl("x509", "-outform", "der", input=r.stdout)
        self.assertEqual(r2.stdout, ca_der)
        r = openssl("pkcs12", "-in", out, "-passin", "pass:", "-nocerts", "-nodes")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"PRIVATE KEY", r.stdout, "the p12 must not contain the CA key")

    def test_export_pem_to_stdout(self):
        cadir = self.path("ca")
        self.init(cadir)
        r = tlsgate("ca", "export", "--dir", cadir, "--format", "pem")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"BEGIN CERTIFICATE", r.stdout)
        self.assertNotIn(b"PRIVATE KEY", r.stdout)
        self.assertEqual(openssl("x509", "-noout", input=r.stdout).returncode, 0)

    # ---------------------------------------------------------------- import

    def make_openssl_ca(self, name, cn):
        key, pem = self.path(f"{name}.key"), self.path(f"{name}.pem")
        r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", pem, "-days", "365", "-subj",
                    f"/O=Imported/CN={cn}",
                    "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    "-addext", "subjectKeyIdentifier=hash")
        self.assertEqual(r.returncode, 0, r.stderr)
        return pem, key

    def test_import_then_run_uses_the_imported_ca(self):
        pem, key = self.make_openssl_ca("imported", "Imported Test CA")
        cadir = self.path("imported-ca")
        r = tlsgate("ca", "import", "--cert", pem, "--key", key, "--dir", cadir)
        self.assertEqual(r.returncode, 0, f"{r.stdout!r} {r.stderr!r}")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(cadir, "ca.key")).st_mode), 0o600)
        self.assertEqual(load_pem(os.path.join(cadir, "ca.pem")), load_pem(pem))
        # show agrees with openssl on the imported certificate
        r = tlsgate("ca", "show", "--dir", cadir)
        self.assertEqual(r.returncode, 0, r.stderr)
        fp = openssl("x509", "-in", pem, "-noout", "-fingerprint", "-sha256").stdout.decode()
        self.assertIn(harness.norm_hex(fp.split("=", 1)[1]), harness.norm_hex(r.stdout.decode()))

        w = harness.world()
        gw = harness.Gateway(w, ca_dir=cadir).start()
        self.addCleanup(gw.cleanup)
        url = f"https://origin.test:{w.port('valid')}/1k.bin"
        r = harness.curl(gw, url, "-o", "-", cacert=pem)
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{gw.diagnostics()}")
        self.assertEqual(r.stdout, w.file("1k.bin"))
        ctx = harness.client_context(pem)
        with harness.tls_through(gw, f"origin.test:{w.port('valid')}", "origin.test", ctx) as tls:
            leaf = harness.peer_cert(tls)
        self.assertEqual(harness.cn_of(leaf.issuer), "Imported Test CA")
        harness.check_signature(leaf, load_pem(pem).public_key())

    def test_import_refuses_mismatched_key(self):
        pem, _ = self.make_openssl_ca("one", "One CA")
        _, other_key = self.make_openssl_ca("two", "Two CA")
        r = tlsgate("ca", "import", "--cert", pem, "--key", other_key, "--dir", self.path("x"))
        self.assertNotEqual(r.returncode, 0, "a key that does not match the certificate")
        self.assertFalse(os.path.exists(self.path("x", "ca.key")))

    def test_import_refuses_overwrite_without_force(self):
        cadir = self.path("ca")
        self.init(cadir)
        with open(self.path("ca", "ca.pem"), "rb") as f:
            before = f.read()
        pem, key = self.make_openssl_ca("imported", "Imported Test CA")
        r = tlsgate("ca", "import", "--cert", pem, "--key", key, "--dir", cadir)
        self.assertNotEqual(r.returncode, 0)
        with open(self.path("ca", "ca.pem"), "rb") as f:
            self.assertEqual(f.read(), before)
        r = tlsgate("ca", "import", "--cert", pem, "--key", key, "--dir", cadir, "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(load_pem(self.path("ca", "ca.pem")), load_pem(pem))

    # ---------------------------------------------------------------- run creates/reuses the CA

    def test_run_creates_ca_on_first_start_and_reuses_it(self):
        w = harness.world()
        data = self.path("data")
        gw = harness.Gateway(w, data_dir=data).start()
        try:
            self.assertTrue(os.path.isfile(os.path.join(data, "ca.pem")))
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(data, "ca.key")).st_mode), 0o600)
            self.assert_root_profile(os.path.join(data, "ca.pem"))
            with open(os.path.join(data, "ca.pem"), "rb") as f:
                first = f.read()
            self.assertEqual(gw.stop(), 0, gw.diagnostics())
        finally:
            gw.cleanup()
        gw = harness.Gateway(w, data_dir=data).start()
        try:
            with open(os.path.join(data, "ca.pem"), "rb") as f:
                self.assertEqual(f.read(), first, "the second start reuses the CA")
        finally:
            gw.cleanup()

    # ---------------------------------------------------------------- version / help

    def test_version(self):
        for args in (["version"], ["--version"]):
            r = tlsgate(*args)
            self.assertEqual(r.returncode, 0, f"{args}: {r.stderr!r}")
            self.assertRegex(r.stdout.decode(), r"\d+\.\d+", f"{args} prints a version")

    def test_help_on_every_command(self):
        commands = [[], ["run"], ["version"], ["ca"], ["ca", "init"], ["ca", "show"],
                    ["ca", "export"], ["ca", "import"]]
        for cmd in commands:
            with self.subTest(cmd=cmd):
                r = tlsgate(*cmd, "--help")
                self.assertEqual(r.returncode, 0, f"{cmd} --help: {r.stderr!r}")
                self.assertIn("usage", (r.stdout + r.stderr).decode().lower())


if __name__ == "__main__":
    unittest.main()
