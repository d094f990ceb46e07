"""Issuing-CA mode (issue #7): an offline root signs a short-lived issuing CA that the gateway
uses, so a stolen online key expires soon. Devices install the root; the gateway sends the
issuing CA with every leaf."""

import datetime
import os
import shutil
import tempfile
import unittest

from cryptography import x509

import harness


def tlsgate(*args):
    return harness.run([harness.BIN, *args], timeout=60)


def load(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


class IssuingCa(unittest.TestCase):
    DAYS = 30

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tlsgate-intermediate-")
        cls.root_dir = os.path.join(cls.dir, "offline-root")
        cls.ca_dir = os.path.join(cls.dir, "gateway-ca")
        r = tlsgate("ca", "init", "--dir", cls.root_dir, "--offline-root", "--subject",
                    "CN=Example Offline Root,O=Example")
        assert r.returncode == 0, r.stderr
        r = tlsgate("ca", "issue-intermediate", "--root-dir", cls.root_dir, "--dir", cls.ca_dir,
                    "--days", str(cls.DAYS))
        assert r.returncode == 0, r.stderr
        cls.issue_output = r.stdout.decode()
        cls.root = load(os.path.join(cls.root_dir, "ca.pem"))
        cls.issuing = load(os.path.join(cls.ca_dir, "ca.pem"))
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w, ca_dir=cls.ca_dir).start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        if not harness.KEEP:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def test_the_issuing_ca_is_short_lived_and_signed_by_the_root(self):
        self.assertEqual(self.issuing.issuer, self.root.subject)
        harness.check_signature(self.issuing, self.root.public_key())
        constraints = self.issuing.extensions.get_extension_for_class(x509.BasicConstraints).value
        self.assertTrue(constraints.ca)
        self.assertEqual(constraints.path_length, 0)
        life = self.issuing.not_valid_after - self.issuing.not_valid_before
        self.assertLessEqual(life, datetime.timedelta(days=self.DAYS, hours=2))
        self.assertEqual(os.stat(os.path.join(self.ca_dir, "ca.key")).st_mode & 0o777, 0o600)
        chain = load(os.path.join(self.ca_dir, "chain.pem"))
        self.assertEqual(chain, self.root)
        self.assertIn("devices install the root", self.issue_output)

    def test_a_client_that_trusts_only_the_root_is_intercepted(self):
        url = f"https://origin.test:{self.w.port('valid')}/1k.bin"
        r = harness.curl(self.gw, url, "-o", "-", cacert=os.path.join(self.root_dir, "ca.pem"))
        self.assertEqual(r.returncode, 0, f"{r.stderr!r}\n{self.gw.diagnostics()}")
        self.assertEqual(r.stdout, self.w.file("1k.bin"))

    def test_leaves_come_with_the_issuing_ca_and_never_outlive_it(self):
        r = harness.run([harness.OPENSSL, "s_client", "-proxy",
                         f"{harness.LOOPBACK}:{self.gw.port}", "-connect",
                         f"origin.test:{self.w.port('valid')}", "-servername", "origin.test",
                         "-showcerts", "-CAfile", os.path.join(self.root_dir, "ca.pem"),
                         "-verify_return_error"], input=b"", timeout=30)
        text = r.stdout.decode(errors="replace")
        self.assertIn("Verify return code: 0 (ok)", text, text[-1500:])
        blocks = text.split("-----BEGIN CERTIFICATE-----")[1:]
        certs = [x509.load_pem_x509_certificate(
            b"-----BEGIN CERTIFICATE-----" + b.split("-----END CERTIFICATE-----")[0].encode() +
            b"-----END CERTIFICATE-----\n") for b in blocks]
        self.assertEqual(len(certs), 2, "the leaf and the issuing CA, not the root")
        leaf, sent_issuing = certs
        self.assertEqual(sent_issuing, self.issuing)
        self.assertEqual(leaf.issuer, self.issuing.subject)
        self.assertLessEqual(leaf.not_valid_after, self.issuing.not_valid_after)

    def test_devices_get_the_root_from_export_and_the_portal(self):
        r = tlsgate("ca", "export", "--dir", self.ca_dir, "--format", "pem")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(x509.load_pem_x509_certificate(r.stdout), self.root)
        shown = tlsgate("ca", "show", "--dir", self.ca_dir)
        self.assertIn(b"devices install this root", shown.stdout)
        r = harness.run([harness.CURL, "-sS", "--proxy", self.gw.proxy,
                         "http://tlsgate.local/cert/tlsgate-ca.pem"], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(x509.load_pem_x509_certificate(r.stdout), self.root)

    def test_a_root_without_room_for_an_issuing_ca_is_refused(self):
        plain = os.path.join(self.dir, "plain-root")
        self.assertEqual(tlsgate("ca", "init", "--dir", plain).returncode, 0)
        r = tlsgate("ca", "issue-intermediate", "--root-dir", plain, "--dir",
                    os.path.join(self.dir, "never"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"--offline-root", r.stderr)

    def test_renewal_replaces_the_issuing_ca_with_force(self):
        renew_dir = os.path.join(self.dir, "renew")
        args = ["ca", "issue-intermediate", "--root-dir", self.root_dir, "--dir", renew_dir,
                "--days", "7"]
        self.assertEqual(tlsgate(*args).returncode, 0)
        first = load(os.path.join(renew_dir, "ca.pem"))
        refused = tlsgate(*args)
        self.assertEqual(refused.returncode, 1)
        self.assertIn(b"--force", refused.stderr)
        self.assertEqual(tlsgate(*args, "--force").returncode, 0)
        self.assertNotEqual(load(os.path.join(renew_dir, "ca.pem")).serial_number,
                            first.serial_number)
        # a plain root replacing it leaves no stale chain behind
        self.assertEqual(tlsgate("ca", "init", "--dir", renew_dir, "--force").returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(renew_dir, "chain.pem")))


if __name__ == "__main__":
    unittest.main()
