"""The research checklist for upstream validation, one origin per point (issue #7).

Every bad origin below is built here, from a test PKI of its own, and served by one TLS server
that picks the certificate by SNI (Python's ssl module, security level 0 so that it can serve the
weak ones), plus `openssl s_server` for the stapled OCSP responses. For each: the client never
gets a session it trusts, and the connection log names the reason. The valid-but-unusual set
(1,000 SANs, RSA-8192, P-384, SHA-384/512, no subject CN, an IP literal) goes through.
"""

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

import harness

DAY = datetime.timedelta(days=1)
# RSA-8192 takes tens of seconds to generate on a busy CI machine: a fixed test-only key.
RSA8192_KEY = os.path.join(harness.REPO, "tests", "data", "test-origin-rsa8192.key")


def name(cn):
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsgate checklist tests")]
    if cn:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


def p256():
    return ec.generate_private_key(ec.SECP256R1())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


class Authority:
    """A CA certificate and its key."""

    def __init__(self, cert, key):
        self.cert, self.key = cert, key


def authority(cn, issuer=None, key=None, **kwargs):
    """A CA: self-signed when `issuer` is None; `ca=False` makes the not-a-CA case."""
    key = key or p256()
    kwargs.setdefault("ca", True)
    return Authority(build(name(cn), key, issuer, **kwargs), key)


def build(subject, key, issuer, *, ca=False, sans=None, ips=None, digest=None, extra=(),
          nb=None, na=None, serial=None):
    """A certificate for `key`; self-signed when `issuer` is None."""
    now = datetime.datetime.utcnow().replace(microsecond=0)
    issuer_name = subject if issuer is None else issuer.cert.subject
    signing_key = key if issuer is None else issuer.key
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
         .not_valid_before(nb or now - DAY).not_valid_after(na or now + 300 * DAY))
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False)
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
        signing_key.public_key()), critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                          False), critical=True)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
    alt = [x509.DNSName(n) for n in sans or []] + [x509.IPAddress(ipaddress.ip_address(a))
                                                   for a in ips or []]
    if alt:
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    for extension, critical in extra:
        b = b.add_extension(extension, critical=critical)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MD5 and SHA-1 are deprecated: that is the point
        return b.sign(signing_key, digest or hashes.SHA256())


def corrupt_signature(cert):
    """The same certificate with one bit of its signature flipped."""
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature BIT STRING, which ends the DER
    return x509.load_der_x509_certificate(bytes(der))


def v1_intermediate(directory, root, cn):
    """An X.509 version 1 certificate signed by `root` (openssl x509 -req adds no extensions,
    so it writes version 1); returns (Authority, pem bytes)."""
    key = p256()
    key_path = os.path.join(directory, "v1.key")
    root_key_path = os.path.join(directory, "v1-root.key")
    root_path = os.path.join(directory, "v1-root.pem")
    for path, data in ((key_path, key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption())),
                       (root_key_path, root.key.private_bytes(
                           serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())),
                       (root_path, pem(root.cert))):
        with open(path, "wb") as f:
            f.write(data)
    csr = os.path.join(directory, "v1.csr")
    out = os.path.join(directory, "v1.pem")
    harness.run([harness.OPENSSL, "req", "-new", "-key", key_path, "-subj",
                 f"/O=tlsgate checklist tests/CN={cn}", "-out", csr]).check_returncode()
    harness.run([harness.OPENSSL, "x509", "-req", "-in", csr, "-CA", root_path, "-CAkey",
                 root_key_path, "-days", "30", "-out", out]).check_returncode()
    with open(out, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert cert.version == x509.Version.v1, cert.version
    return Authority(cert, key)


class Origin:
    """One certificate chain to serve: leaf first."""

    def __init__(self, host, chain, key):
        self.host, self.chain, self.key = host, chain, key


class SniServer:
    """TLS server on loopback choosing the origin by SNI; answers any request with 200 "ok".
    Connections without SNI get `default`."""

    def __init__(self, directory, origins, default=None):
        self.contexts = {}
        for origin in origins + ([default] if default else []):
            self.contexts[origin.host] = self._context(directory, origin)
        self.default = self.contexts[default.host] if default else None
        first = self.default or next(iter(self.contexts.values()))
        self.listener = socket.create_server((harness.LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.base = first
        self.base.sni_callback = self._pick
        self.quit = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _context(directory, origin):
        path = os.path.join(directory, f"{origin.host}.chain.pem")
        key_path = os.path.join(directory, f"{origin.host}.key")
        with open(path, "wb") as f:
            f.write(b"".join(pem(c) for c in origin.chain))
        with open(key_path, "wb") as f:
            f.write(origin.key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.load_cert_chain(path, key_path)
        return ctx

    def _pick(self, sock, server_name, _):
        ctx = self.contexts.get(server_name) if server_name else self.default
        if ctx is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sock.context = ctx
        return None

    def _serve(self):
        while not self.quit:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        conn.settimeout(20)
        try:
            with self.base.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self.quit = True
        self.listener.close()


class StaplingServer:
    """openssl s_server stapling a fixed OCSP response."""

    def __init__(self, directory, origin, response_der, tag):
        cert = os.path.join(directory, f"{tag}.pem")
        chain = os.path.join(directory, f"{tag}.chain.pem")
        key = os.path.join(directory, f"{tag}.key")
        status = os.path.join(directory, f"{tag}.ocsp.der")
        with open(cert, "wb") as f:
            f.write(pem(origin.chain[0]))
        with open(chain, "wb") as f:
            f.write(b"".join(pem(c) for c in origin.chain[1:]))
        with open(key, "wb") as f:
            f.write(origin.key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        with open(status, "wb") as f:
            f.write(response_der)
        self.port = harness.free_port()
        self.log = open(os.path.join(directory, f"{tag}.s_server.log"), "wb")
        self.proc = harness.spawn([harness.OPENSSL, "s_server", "-accept",
                                   f"{harness.LOOPBACK}:{self.port}", "-cert", cert, "-cert_chain",
                                   chain, "-key", key,
                                   "-status_file", status, "-www", "-quiet"],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        harness.wait_for_port(self.port, proc=self.proc, what="openssl s_server")

    def close(self):
        harness.stop_process(self.proc)
        self.log.close()


def ocsp_response(leaf, issuer, status):
    now = datetime.datetime.utcnow().replace(microsecond=0)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf, issuer=issuer.cert, algorithm=hashes.SHA1(), cert_status=status,
        this_update=now - datetime.timedelta(hours=1), next_update=now + DAY,
        revocation_time=now - DAY if status == ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.cert)
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def spki_sha256(cert):
    import hashlib
    return hashlib.sha256(cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


# host -> the reason the connection log must name
BAD = {
    "badsig-leaf.test": "bad_signature",
    "badsig-intermediate.test": "bad_signature",
    "cafalse.test": "not_a_ca",
    "v1-intermediate.test": "not_a_ca",
    "md5.test": "weak_signature",
    "sha1-intermediate.test": "weak_signature",
    "rsa1024-intermediate.test": "weak_key",
    "outside.constrained.test": "name_constraints",
    "critical.test": "unknown_critical_extension",
    "known-root.test": "known_interception_root",
    "revoked.test": "revoked",
}
GOOD = ["n0500.many.test", "rsa8192.test", "p384.test", "sha384.test", "sha512.test",
        "nocn.test", "inside.constrained.test", "good-staple.test"]


class UpstreamChecklist(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tlsgate-checklist-")
        d = cls.dir
        root = authority("Checklist Root")
        issuing = authority("Checklist Issuing", root)
        # a second trusted root whose key the gateway is told is an interception root
        known = authority("Checklist Known Interception Root")

        def leaf(host, issuer=issuing, chain=(), key=None, **kwargs):
            key = key or p256()
            cert = build(name(kwargs.pop("cn", host)), key, issuer, sans=[host], **kwargs)
            return Origin(host, [cert, *chain], key)

        origins = []
        # bad signatures: on the leaf, and on the intermediate it comes with
        good_leaf = leaf("badsig-leaf.test", chain=[issuing.cert])
        origins.append(Origin(good_leaf.host, [corrupt_signature(good_leaf.chain[0]),
                                               issuing.cert], good_leaf.key))
        origins.append(leaf("badsig-intermediate.test", chain=[corrupt_signature(issuing.cert)]))
        # intermediates that are not CAs: CA:FALSE, and X.509v1
        not_ca = authority("Checklist CA:FALSE", root, ca=False)
        origins.append(leaf("cafalse.test", issuer=not_ca, chain=[not_ca.cert]))
        v1 = v1_intermediate(d, root, "Checklist v1 intermediate")
        origins.append(leaf("v1-intermediate.test", issuer=v1, chain=[v1.cert]))
        # weak signatures and keys in the chain
        rsa_ca = authority("Checklist RSA intermediate", root,  # MD5 signatures need RSA
                           key=rsa.generate_private_key(65537, 2048))
        origins.append(leaf("md5.test", issuer=rsa_ca, chain=[rsa_ca.cert], digest=hashes.MD5()))
        sha1_ca = authority("Checklist SHA-1 intermediate", root, digest=hashes.SHA1())
        origins.append(leaf("sha1-intermediate.test", issuer=sha1_ca, chain=[sha1_ca.cert]))
        weak_ca = authority("Checklist RSA-1024 intermediate", root,
                            key=rsa.generate_private_key(65537, 1024))
        origins.append(leaf("rsa1024-intermediate.test", issuer=weak_ca, chain=[weak_ca.cert]))
        # name constraints: the intermediate may only issue for inside.constrained.test
        constraint = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName("inside.constrained.test")], excluded_subtrees=None)
        nc = authority("Checklist constrained", root, extra=[(constraint, True)])
        origins.append(leaf("outside.constrained.test", issuer=nc, chain=[nc.cert]))
        origins.append(leaf("inside.constrained.test", issuer=nc, chain=[nc.cert]))
        # an extension nobody knows, marked critical
        unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.7.1"),
                                             b"\x05\x00")
        origins.append(leaf("critical.test", chain=[issuing.cert], extra=[(unknown, True)]))
        # a chain ending at a known interception root
        origins.append(leaf("known-root.test", issuer=known, chain=[known.cert]))
        # the valid but unusual
        many = [f"n{i:04d}.many.test" for i in range(1000)]
        many_key = p256()
        origins.append(Origin("n0500.many.test",
                              [build(name("many"), many_key, issuing, sans=many), issuing.cert],
                              many_key))
        with open(RSA8192_KEY, "rb") as f:
            big_key = serialization.load_pem_private_key(f.read(), None)
        origins.append(leaf("rsa8192.test", chain=[issuing.cert], key=big_key))
        origins.append(leaf("p384.test", chain=[issuing.cert],
                            key=ec.generate_private_key(ec.SECP384R1())))
        origins.append(leaf("sha384.test", chain=[issuing.cert], digest=hashes.SHA384()))
        origins.append(leaf("sha512.test", chain=[issuing.cert], digest=hashes.SHA512()))
        origins.append(leaf("nocn.test", chain=[issuing.cert], cn=None))
        cls.server = SniServer(d, origins)
        # IP literals: checked against the iPAddress SANs (no SNI is sent for them)
        ip_key = p256()
        cls.ip_good = SniServer(d, [], default=Origin(
            "ip-good", [build(name(None), ip_key, issuing, ips=["127.0.0.1"]), issuing.cert],
            ip_key))
        cls.ip_bad = SniServer(d, [], default=Origin(
            "ip-bad", [build(name(None), ip_key, issuing, ips=["192.0.2.77"],
                             sans=["127.0.0.1.example"]), issuing.cert], ip_key))
        # stapled OCSP: revoked and good
        revoked = leaf("revoked.test", chain=[issuing.cert])
        cls.revoked = StaplingServer(
            d, revoked, ocsp_response(revoked.chain[0], issuing, ocsp.OCSPCertStatus.REVOKED),
            "revoked")
        stapled_good = leaf("good-staple.test", chain=[issuing.cert])
        cls.good_staple = StaplingServer(
            d, stapled_good, ocsp_response(stapled_good.chain[0], issuing,
                                           ocsp.OCSPCertStatus.GOOD), "good-staple")
        cls.ports = {host: cls.server.port for host in BAD.keys() | set(GOOD)}
        cls.ports["revoked.test"] = cls.revoked.port
        cls.ports["good-staple.test"] = cls.good_staple.port

        trust = os.path.join(d, "trust.pem")
        with open(trust, "wb") as f:
            f.write(pem(root.cert) + pem(known.cert))
        known_file = os.path.join(d, "interception-roots.txt")
        with open(known_file, "w") as f:
            f.write(f"# test: a trusted root the operator lists as an interception root\n"
                    f"{spki_sha256(known.cert)}  Checklist Known Interception Root\n")
        resolve = []
        for host in cls.ports:
            resolve += ["--resolve", f"{host}={harness.LOOPBACK}"]
        cls.w = harness.world()
        cls.gw = harness.Gateway(cls.w, upstream_cas=[trust],
                                 extra_args=["--interception-roots", known_file, *resolve])
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        for server in (cls.server, cls.ip_good, cls.ip_bad, cls.revoked, cls.good_staple):
            server.close()
        if not harness.KEEP:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def get(self, authority):
        return harness.curl(self.gw, f"https://{authority}/", "-o", "-", timeout=30)

    def assert_refused(self, host, authority, reason):
        r = self.get(authority)
        # 35: the handshake ended in an alert; 60: a certificate curl does not trust. Never 0.
        self.assertIn(r.returncode, (35, 60), f"{host}: rc={r.returncode} {r.stderr!r}\n"
                                              f"{self.gw.diagnostics()}")
        line = self.gw.wait_log(lambda l: l.get("destination") == authority)[-1]
        self.assertEqual(line.get("upstream_verify_error"), reason, f"{host}: {line}")
        self.assertIn("upstream certificate rejected", line.get("reason", ""), line)

    def test_each_bad_chain_is_refused_with_its_reason(self):
        for host, reason in BAD.items():
            with self.subTest(host=host):
                self.assert_refused(host, f"{host}:{self.ports[host]}", reason)

    def test_valid_but_unusual_chains_are_accepted(self):
        for host in GOOD:
            with self.subTest(host=host):
                r = self.get(f"{host}:{self.ports[host]}")
                self.assertEqual(r.returncode, 0, f"{host}: {r.stderr!r}\n"
                                                  f"{self.gw.diagnostics()}")
                self.assertTrue(r.stdout.endswith(b"ok") or b"s_server" in r.stdout,
                                r.stdout[:200])

    def test_ip_literals_are_checked_against_ip_sans(self):
        r = self.get(f"127.0.0.1:{self.ip_good.port}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_refused("ip-bad", f"127.0.0.1:{self.ip_bad.port}", "wrong_host")


if __name__ == "__main__":
    unittest.main()
