"""Shared machinery for the tlsgate integration tests (Python 3 stdlib unittest + cryptography).

What lives here:
  * a test "public" PKI (root, issuing intermediate, good and deliberately bad leaves), built with
    python3-cryptography into a temporary directory;
  * one nginx origin on 127.0.0.1 for the whole test run: one TLS port per certificate (HTTP/1.1
    and h2) and one plain-HTTP port, serving files of known content;
  * a Gateway class that starts/stops `tlsgate run` on a free loopback port and reads its
    connection log;
  * clients: curl through the proxy, CONNECT by hand, TLS over a tunnel with the ssl module, and a
    MemoryBIO TLS client that lets a test choose how the ClientHello is cut into records/segments.

Everything runs on loopback, in a temporary directory, and every child process is started with
PR_SET_PDEATHSIG so nothing outlives the test process even if it is killed.
"""

import atexit
import contextlib
import ctypes
import datetime
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("TLSGATE_BIN") or os.path.join(REPO, "build", "tlsgate")
NGINX = os.environ.get("TLSGATE_TEST_NGINX", "/usr/sbin/nginx")
CURL = os.environ.get("TLSGATE_TEST_CURL", "curl")
OPENSSL = os.environ.get("TLSGATE_TEST_OPENSSL", "openssl")
# Sanitizer builds and loaded machines are slow: every timeout is multiplied by this.
SCALE = float(os.environ.get("TLSGATE_TEST_TIMEOUT_SCALE", "3" if "asan" in BIN else "1"))
LOOPBACK = "127.0.0.1"
KEEP = os.environ.get("TLSGATE_TEST_KEEP") == "1"  # keep the temp dirs for post-mortems


def t(seconds):
    """A timeout, scaled for slow builds."""
    return seconds * SCALE


# --------------------------------------------------------------------------------------------
# processes


_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _die_with_parent():
    # PR_SET_PDEATHSIG = 1: the child gets SIGKILL when the test process goes away.
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def clean_env():
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.setdefault("LC_ALL", "C")
    return env


def spawn(argv, *, stdout, stderr, env=None, cwd=None):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            env=env or clean_env(), cwd=cwd, preexec_fn=_die_with_parent)


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Signal `proc`, wait, SIGKILL if needed. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def run(argv, *, timeout=60, input=None, env=None, cwd=None):
    """Runs a short command, returns CompletedProcess with bytes stdout/stderr."""
    return subprocess.run(argv, input=input, capture_output=True, timeout=t(timeout),
                          env=env or clean_env(), cwd=cwd, preexec_fn=_die_with_parent)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def closed_port():
    """A loopback port nothing listens on (bound, then released without listen)."""
    return free_port()


def wait_for_port(port, timeout=20, proc=None, what="process"):
    deadline = time.monotonic() + t(timeout)
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s: {last}")


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError as e:
        return f"<{path}: {e}>"


# --------------------------------------------------------------------------------------------
# PKI


ORG = "tlsgate integration tests"


def _name(cn, org=ORG):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now():
    return datetime.datetime.utcnow().replace(microsecond=0)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def make_cert(subject, public_key, issuer_name, signing_key, not_before, not_after, *,
              ca=False, pathlen=None, sans=(), digest=None, issuer_key=None):
    digest = digest or hashes.SHA256()
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
         .public_key(public_key).serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after))
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if issuer_key is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key),
                            critical=False)
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=is_rsa, data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False,
                                          decipher_only=False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]),
                                critical=False)
    return b.sign(signing_key, digest)


class Leaf:
    def __init__(self, name, cert, key, chain_pems, dirpath):
        self.name = name
        self.cert = cert
        self.key = key
        self.cert_path = os.path.join(dirpath, f"{name}.chain.pem")
        self.key_path = os.path.join(dirpath, f"{name}.key")
        with open(self.cert_path, "wb") as f:
            f.write(_cert_pem(cert) + b"".join(chain_pems))
        with open(self.key_path, "wb") as f:
            f.write(_key_pem(key))
        os.chmod(self.key_path, 0o600)

    @property
    def der(self):
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def sha256(self):
        return hashlib.sha256(self.der).hexdigest()

    def dns_names(self):
        return sorted(self.cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))


# Host names used by the policy tests; the "policy" origin's certificate covers all of them.
POLICY_NAMES = ["pass.test", "allowed.test", "star.test", "xstar.test", "dot.test", "xdot.test",
                "ok.dot.test", "sni-blocked.test", "blocked.test", "a.star.test",
                "deep.a.star.test", "a.dot.test", "deep.a.dot.test", "plain.test", "echo.test"]


class PKI:
    """The test "public" PKI the gateway is told to trust, plus a separate untrusted root."""

    ROOT_CN = "tlsgate-test Public Root CA"
    ISSUING_CN = "tlsgate-test Public Issuing CA"
    OTHER_ROOT_CN = "tlsgate-test Untrusted Root CA"

    def __init__(self, dirpath):
        os.makedirs(dirpath, exist_ok=True)
        self.dir = dirpath
        now = _now()
        day = datetime.timedelta(days=1)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = make_cert(_name(self.ROOT_CN), self.root_key.public_key(),
                              _name(self.ROOT_CN), self.root_key, now - day, now + 3650 * day,
                              ca=True)
        self.issuing_key = ec.generate_private_key(ec.SECP256R1())
        self.issuing = make_cert(_name(self.ISSUING_CN), self.issuing_key.public_key(),
                                 self.root.subject, self.root_key, now - day, now + 3000 * day,
                                 ca=True, pathlen=0, issuer_key=self.root_key.public_key())
        self.other_root_key = ec.generate_private_key(ec.SECP256R1())
        self.other_root = make_cert(_name(self.OTHER_ROOT_CN), self.other_root_key.public_key(),
                                    _name(self.OTHER_ROOT_CN), self.other_root_key, now - day,
                                    now + 3650 * day, ca=True)
        self.root_path = os.path.join(dirpath, "public-root.pem")
        with open(self.root_path, "wb") as f:
            f.write(_cert_pem(self.root))
        self.other_root_path = os.path.join(dirpath, "untrusted-root.pem")
        with open(self.other_root_path, "wb") as f:
            f.write(_cert_pem(self.other_root))
        issuing_pem = _cert_pem(self.issuing)
        self.leaves = {}

        def leaf(name, sans, *, key=None, nb=now - day, na=now + 730 * day, digest=None,
                 issuer=(self.issuing, self.issuing_key), chain=(issuing_pem,), cn=None):
            key = key or ec.generate_private_key(ec.SECP256R1())
            cert = make_cert(_name(cn or sans[0]), key.public_key(), issuer[0].subject, issuer[1],
                             nb, na, sans=sans, digest=digest,
                             issuer_key=issuer[1].public_key())
            self.leaves[name] = Leaf(name, cert, key, list(chain), dirpath)

        # good ones
        leaf("valid", ["origin.test", "www.origin.test"])
        leaf("rsa", ["rsa.origin.test"], key=rsa.generate_private_key(65537, 2048),
             na=now + 30 * day)
        leaf("policy", POLICY_NAMES, cn="policy origin")
        leaf("mail", ["mail.test", "pass.mail.test", "nostarttls.mail.test"])  # test_lab_mail
        # bad ones
        leaf("expired", ["expired.test"], nb=now - 60 * day, na=now - day)
        leaf("notyet", ["notyet.test"], nb=now + 30 * day, na=now + 60 * day)
        leaf("wronghost", ["other.test"])
        leaf("untrusted", ["untrusted.test"], issuer=(self.other_root, self.other_root_key),
             chain=(_cert_pem(self.other_root),))
        leaf("weakkey", ["weakkey.test"], key=rsa.generate_private_key(65537, 1024))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cryptography deprecates SHA-1 signing: that's the point
            leaf("sha1", ["sha1.test"], digest=hashes.SHA1())
        leaf("tls11", ["tls11.test"])  # served with TLS 1.1 only
        # A CA handed to the gateway with `ca import`: an origin whose chain ends there must be
        # refused (own_ca) even when that CA is also in the upstream trust bundle.
        self.owned_ca_key = ec.generate_private_key(ec.SECP256R1())
        self.owned_ca = make_cert(_name("tlsgate-test Owned Gateway CA"),
                                  self.owned_ca_key.public_key(),
                                  _name("tlsgate-test Owned Gateway CA"), self.owned_ca_key,
                                  now - day, now + 3650 * day, ca=True, pathlen=0)
        self.owned_ca_path = os.path.join(dirpath, "owned-ca.pem")
        self.owned_ca_key_path = os.path.join(dirpath, "owned-ca.key")
        with open(self.owned_ca_path, "wb") as f:
            f.write(_cert_pem(self.owned_ca))
        with open(self.owned_ca_key_path, "wb") as f:
            f.write(_key_pem(self.owned_ca_key))
        os.chmod(self.owned_ca_key_path, 0o600)
        leaf("owned", ["owned.test"], issuer=(self.owned_ca, self.owned_ca_key), chain=())
        # self-signed: issuer is itself, no chain
        ss_key = ec.generate_private_key(ec.SECP256R1())
        ss = make_cert(_name("selfsigned.test"), ss_key.public_key(), _name("selfsigned.test"),
                       ss_key, now - day, now + 365 * day, sans=["selfsigned.test"])
        self.leaves["selfsigned"] = Leaf("selfsigned", ss, ss_key, [], dirpath)


# --------------------------------------------------------------------------------------------
# origin (nginx)


# origin key -> (leaf name, host name clients use, weak crypto allowed)
TLS_ORIGINS = {
    "valid": ("valid", "origin.test"),
    "rsa": ("rsa", "rsa.origin.test"),
    "policy": ("policy", "pass.test"),
    "expired": ("expired", "expired.test"),
    "notyet": ("notyet", "notyet.test"),
    "selfsigned": ("selfsigned", "selfsigned.test"),
    "untrusted": ("untrusted", "untrusted.test"),
    "wronghost": ("wronghost", "wronghost.test"),
    "weakkey": ("weakkey", "weakkey.test"),
    "sha1": ("sha1", "sha1.test"),
    "tls11": ("tls11", "tls11.test"),
    "owned": ("owned", "owned.test"),
}


def content(name, size):
    """Deterministic file content."""
    return random.Random(name).randbytes(size)


BIG_FILE_SIZE = 200 * 1024 * 1024
FILES = {"1k.bin": 1024, "64k.bin": 64 * 1024, "1m.bin": 1024 * 1024, "5m.bin": 5 * 1024 * 1024}


COMMON_LOCATIONS = """
        location = /proto {{ default_type text/plain; return 200 "$server_protocol $http2\\n"; }}
        location = /host {{ default_type text/plain; return 200 "$host $ssl_server_name\\n"; }}
        location /slow/ {{ alias {www}/; limit_rate {slow_rate}; }}
        location /gz/ {{ alias {www}/; gzip on; gzip_types *; gzip_min_length 0; }}
        location /dav/ {{
            root {root};
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 50m;
        }}
        location / {{ root {www}; }}
"""


class Nginx:
    SLOW_RATE = 512 * 1024  # bytes/s for /slow/

    def __init__(self, dirpath, pki):
        self.dir = dirpath
        self.pki = pki
        self.www = os.path.join(dirpath, "www")
        os.makedirs(self.www, exist_ok=True)
        os.makedirs(os.path.join(dirpath, "root", "dav"), exist_ok=True)
        os.makedirs(os.path.join(dirpath, "tmp"), exist_ok=True)
        for name, size in FILES.items():
            with open(os.path.join(self.www, name), "wb") as f:
                f.write(content(name, size))
        # Sparse: a large download that costs no disk.
        with open(os.path.join(self.www, "200m.bin"), "wb") as f:
            f.truncate(BIG_FILE_SIZE)
        self.ports = {key: free_port() for key in TLS_ORIGINS}
        self.plain_port = free_port()
        self.conf = os.path.join(dirpath, "nginx.conf")
        self.error_log = os.path.join(dirpath, "error.log")
        self.stderr_path = os.path.join(dirpath, "nginx.stderr")
        self._write_conf()
        # The weak-key and SHA-1 origins must load and serve their certificates: security level 0
        # for this process only (nginx loads certificates before applying ssl_ciphers).
        self.openssl_conf = os.path.join(dirpath, "openssl-seclevel0.cnf")
        with open(self.openssl_conf, "w") as f:
            f.write("openssl_conf = default_conf\n[default_conf]\nssl_conf = ssl_sect\n"
                    "[ssl_sect]\nsystem_default = system_default_sect\n"
                    "[system_default_sect]\nCipherString = DEFAULT:@SECLEVEL=0\n")
        self.proc = None

    def _write_conf(self):
        d = self.dir
        loc = COMMON_LOCATIONS.format(www=self.www, root=os.path.join(d, "root"),
                                      slow_rate=self.SLOW_RATE)
        servers = []
        for key, (leaf_name, host) in TLS_ORIGINS.items():
            leaf = self.pki.leaves[leaf_name]
            weak = key in ("weakkey", "sha1", "tls11")
            protocols = "TLSv1.1" if key == "tls11" else "TLSv1.2 TLSv1.3"
            servers.append(f"""
    server {{
        listen {LOOPBACK}:{self.ports[key]} ssl http2;
        server_name {host};
        ssl_certificate {leaf.cert_path};
        ssl_certificate_key {leaf.key_path};
        ssl_protocols {protocols};
        {'ssl_ciphers DEFAULT:@SECLEVEL=0;' if weak else ''}
        {loc}
    }}""")
        servers.append(f"""
    server {{
        listen {LOOPBACK}:{self.plain_port};
        server_name plain.test;
        {loc}
    }}""")
        conf = f"""
user root;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    sendfile off;
    {''.join(servers)}
}}
"""
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        env = clean_env()
        env["OPENSSL_CONF"] = self.openssl_conf
        self._stderr = open(self.stderr_path, "wb")
        self.proc = spawn([NGINX, "-p", self.dir + "/", "-c", self.conf, "-g", "daemon off;"],
                          stdout=self._stderr, stderr=self._stderr, env=env)
        for port in list(self.ports.values()) + [self.plain_port]:
            try:
                wait_for_port(port, timeout=20, proc=self.proc, what="nginx")
            except RuntimeError as e:
                raise RuntimeError(f"{e}\n{tail(self.stderr_path)}\n{tail(self.error_log)}")

    def stop(self):
        stop_process(self.proc, signal.SIGQUIT, timeout=5)
        self.proc = None
        if getattr(self, "_stderr", None):
            self._stderr.close()


# --------------------------------------------------------------------------------------------
# the world: PKI + origin, built once per test process


class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tlsgate-it-")
        self.pki = PKI(os.path.join(self.dir, "pki"))
        self.nginx = Nginx(os.path.join(self.dir, "nginx"), self.pki)
        self.nginx.start()

    # names every gateway resolves to loopback (so no DNS is needed)
    def names(self):
        names = {"origin.test", "www.origin.test", "plain.test", "other.test"}
        names.update(host for _, host in TLS_ORIGINS.values())
        names.update(POLICY_NAMES)
        return sorted(names)

    def port(self, key):
        return self.nginx.ports[key]

    @property
    def plain_port(self):
        return self.nginx.plain_port

    def leaf(self, key):
        return self.pki.leaves[TLS_ORIGINS[key][0]]

    def file(self, name):
        return content(name, FILES[name])

    def close(self):
        self.nginx.stop()
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


_world = None
_world_lock = threading.Lock()


def world():
    global _world
    with _world_lock:
        if _world is None:
            _world = World()
            atexit.register(_world.close)
        return _world


# --------------------------------------------------------------------------------------------
# the gateway


class Gateway:
    """One `tlsgate run` with an explicit listener on a free loopback port."""

    def __init__(self, w, *, policy=None, workers=2, extra_args=(), ca_dir=None,
                 upstream_cas=None, data_dir=None):
        self.world = w
        self.dir = tempfile.mkdtemp(prefix="tlsgate-gw-")
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        self.ca_dir = ca_dir
        self.port = free_port()
        self.policy_path = None
        if policy is not None:
            self.policy_path = os.path.join(self.dir, "policy.toml")
            with open(self.policy_path, "w") as f:
                f.write(policy)
        self.log_path = os.path.join(self.data_dir, "connections.jsonl")
        self.stdout_path = os.path.join(self.dir, "stdout.txt")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        argv = [BIN, "run", "--listen", f"explicit@{LOOPBACK}:{self.port}",
                "--data-dir", self.data_dir, "--no-system-trust", "--workers", str(workers),
                "--log-level", "info"]
        for ca in (upstream_cas or [w.pki.root_path]):
            argv += ["--upstream-ca", ca]
        if ca_dir:
            argv += ["--ca-dir", ca_dir]
        if self.policy_path:
            argv += ["--policy", self.policy_path]
        for name in w.names():
            argv += ["--resolve", f"{name}={LOOPBACK}"]
        argv += list(extra_args)
        self.argv = argv
        self.proc = None

    @property
    def ca_path(self):
        return os.path.join(self.ca_dir or self.data_dir, "ca.pem")

    @property
    def proxy(self):
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout=30):
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = spawn(self.argv, stdout=self._out, stderr=self._err)
        try:
            wait_for_port(self.port, timeout=timeout, proc=self.proc, what="tlsgate")
            deadline = time.monotonic() + t(10)
            while not os.path.exists(self.ca_path) and time.monotonic() < deadline:
                time.sleep(0.05)
        except Exception as e:
            self.stop()
            raise RuntimeError(f"{e}\n{self.diagnostics()}")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15):
        rc = stop_process(self.proc, sig, timeout=t(timeout))
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f:
                f.close()
        return rc

    def sanitizer_report(self):
        return sanitizer_report(self.stderr_path)

    def cleanup(self):
        self.stop()
        report = self.sanitizer_report()
        if not KEEP and not report:
            shutil.rmtree(self.dir, ignore_errors=True)
        if report:
            raise AssertionError(f"sanitizer report from tlsgate ({self.dir}):\n{report}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ca_cert(self):
        with open(self.ca_path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())

    def log_lines(self):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        out = []
        for line in data.splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"_unparsable": line})
        return out

    def wait_log(self, predicate, timeout=15, count=1):
        """Waits until `count` log lines satisfy `predicate`; returns them (or raises)."""
        deadline = time.monotonic() + t(timeout)
        while True:
            matches = [line for line in self.log_lines() if predicate(line)]
            if len(matches) >= count:
                return matches
            if time.monotonic() > deadline:
                raise AssertionError(f"connection log: expected {count} matching line(s), found "
                                     f"{len(matches)}\n{self.diagnostics()}")
            time.sleep(0.1)

    def diagnostics(self):
        rc = None if self.proc is None else self.proc.poll()
        return (f"--- tlsgate {' '.join(self.argv[:4])} ... (alive={self.alive()}, exit={rc})\n"
                f"--- stdout (tail)\n{tail(self.stdout_path, 25)}\n"
                f"--- stderr (tail)\n{tail(self.stderr_path, 25)}\n"
                f"--- connection log (tail)\n{tail(self.log_path, 8)}")


# --------------------------------------------------------------------------------------------
# clients


def sanitizer_report(stderr_path):
    """Sanitizer findings in a tlsgate stderr file (ASan/UBSan builds), or ''."""
    if not os.path.exists(stderr_path):
        return ""
    text = tail(stderr_path, 200)
    markers = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
               "WARNING: ThreadSanitizer")
    return text if any(m in text for m in markers) else ""


def start_gateway(w, config="", **kwargs):
    """A started Gateway, with `config` (TOML text) as its --config file when given."""
    gw = Gateway(w, **kwargs)
    if config:
        path = os.path.join(gw.dir, "config.toml")
        with open(path, "w") as f:
            f.write(config)
        gw.argv += ["--config", path]
    return gw.start()


def curl(gw, *args, timeout=60, cacert=None):
    """curl through the gateway's proxy. Returns CompletedProcess (bytes)."""
    argv = [CURL, "-sS", "--max-time", str(int(t(timeout))), "--proxy", gw.proxy]
    if cacert is not False:
        argv += ["--cacert", cacert or gw.ca_path]
    argv += list(args)
    return run(argv, timeout=timeout + 15)


def rss_kib(pid):
    """Resident set size of a process, KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def is_sanitizer_build():
    """Whether BIN is an AddressSanitizer build (TLSGATE_SANITIZER=1 says so explicitly)."""
    if os.environ.get("TLSGATE_SANITIZER") == "1":
        return True
    try:
        out = subprocess.run(["nm", "-D", BIN], capture_output=True, timeout=30).stdout
        if b"__asan_init" in out:
            return True
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open(BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def read_http_head(sock, timeout=20):
    """Reads an HTTP response head; returns (status:int|None, head:str, rest:bytes)."""
    sock.settimeout(t(timeout))
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            break
        data += chunk
        if len(data) > 1 << 20:
            break
    head, sep, rest = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    status = None
    parts = text.split(" ", 2)
    if sep and len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
        status = int(parts[1])
    return status, text, rest


def read_to_eof(sock, timeout=20, limit=64 << 20):
    sock.settimeout(t(timeout))
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    return data


def proxy_connect(gw, authority, timeout=20):
    """Sends CONNECT authority; returns (status, head, body, sock). body is read to EOF for non-200
    answers; for 200 the socket is left open for the tunnel."""
    sock = socket.create_connection((LOOPBACK, gw.port), timeout=t(timeout))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
                 f"User-Agent: tlsgate-tests\r\n\r\n".encode())
    status, head, rest = read_http_head(sock, timeout)
    if status != 200:
        rest += read_to_eof(sock, timeout)
        sock.close()
        return status, head, rest, None
    assert rest == b"", f"bytes after 200 before we spoke: {rest[:64]!r}"
    return status, head, rest, sock


def client_context(cafile=None, *, verify=True, alpn=None, check_hostname=True):
    if verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = check_hostname
        ctx.load_verify_locations(cafile)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_through(gw, authority, sni, ctx, timeout=30):
    """CONNECT then a TLS handshake with `ctx` inside the tunnel. Returns the SSLSocket. Raises
    ssl.SSLError (e.g. on an alert) or AssertionError if the CONNECT was not answered 200."""
    status, head, body, sock = proxy_connect(gw, authority, timeout)
    if status != 200:
        raise AssertionError(f"CONNECT {authority}: {head!r} {body!r}")
    try:
        tls = ctx.wrap_socket(sock, server_hostname=sni, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        tls.settimeout(t(timeout))
        tls.do_handshake()
        return tls
    except BaseException:
        tls.close()
        raise


def https_get(tls, host, path, timeout=30):
    """HTTP/1.1 GET with Connection: close over an established TLS socket: (status, headers, body)."""
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    tls.settimeout(t(timeout))
    while True:
        try:
            chunk = tls.recv(65536)
        except (ssl.SSLZeroReturnError, ConnectionResetError):
            break
        except ssl.SSLError as e:
            if "UNEXPECTED_EOF" in str(e) or "EOF occurred" in str(e):
                break
            raise
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def peer_cert(tls):
    return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def cn_of(name):
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else None


def san_names(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return sorted(ext.value.get_values_for_type(x509.DNSName))


def spki_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def check_signature(cert, issuer_public_key):
    from cryptography.hazmat.primitives.asymmetric import padding
    if isinstance(issuer_public_key, ec.EllipticCurvePublicKey):
        issuer_public_key.verify(cert.signature, cert.tbs_certificate_bytes,
                                 ec.ECDSA(cert.signature_hash_algorithm))
    else:
        issuer_public_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                                 cert.signature_hash_algorithm)


def norm_hex(text):
    return "".join(ch for ch in text.lower() if ch in "0123456789abcdef")


# --------------------------------------------------------------------------------------------
# raw TLS bytes


def split_records(data):
    """Parses TLS records: list of (type, version_bytes, payload). Trailing partial bytes ignored."""
    records = []
    i = 0
    while i + 5 <= len(data):
        length = int.from_bytes(data[i + 3:i + 5], "big")
        if i + 5 + length > len(data):
            break
        records.append((data[i], data[i + 1:i + 3], data[i + 5:i + 5 + length]))
        i += 5 + length
    return records


def reframe(hello_records, record_payload):
    """Re-cuts handshake bytes into records of at most `record_payload` bytes each (legal: the
    handshake transcript covers handshake messages, not records)."""
    records = split_records(hello_records)
    assert records and all(r[0] == 0x16 for r in records), "not handshake records"
    version = records[0][1]
    payload = b"".join(r[2] for r in records)
    out = b""
    for i in range(0, len(payload), record_payload):
        piece = payload[i:i + record_payload]
        out += bytes([0x16]) + version + len(piece).to_bytes(2, "big") + piece
    return out


def extensions_length_offset(hello_record):
    """Offset of the 2-byte extensions length in a single-record ClientHello."""
    i = 5 + 4 + 2 + 32               # record header, handshake header, version, random
    i += 1 + hello_record[i]         # session id
    i += 2 + int.from_bytes(hello_record[i:i + 2], "big")  # cipher suites
    i += 1 + hello_record[i]         # compression methods
    return i


def send_in_pieces(sock, data, piece=512, delay=0.01):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(data), piece):
        sock.sendall(data[i:i + piece])
        if delay:
            time.sleep(delay)


def read_some(sock, timeout=15, want=1):
    """Reads until at least `want` bytes arrived, EOF, or the timeout. Never raises on reset."""
    sock.settimeout(t(timeout))
    data = b""
    deadline = time.monotonic() + t(timeout)
    while len(data) < want and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    return data


def raw_client_hello(sni, alpn=None):
    """The bytes of a genuine ClientHello from Python's ssl module (nobody finishes it)."""
    ctx = client_context(verify=False, alpn=alpn)
    client = MemoryTLSClient(None, ctx, sni)
    return client.client_hello()


def is_fatal_alert(data):
    """True if `data` starts with a plaintext fatal TLS alert record."""
    return len(data) >= 7 and data[0] == 0x15 and data[1] == 0x03 and data[5] == 0x02


class MemoryTLSClient:
    """A TLS client driven through MemoryBIOs, so the test decides how bytes hit the wire."""

    def __init__(self, sock, ctx, server_hostname):
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)

    def client_hello(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def _flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(t(timeout))
        data = self.sock.recv(65536)
        if not data:
            self.incoming.write_eof()
        else:
            self.incoming.write(data)
        return data

    def finish_handshake(self, timeout=30):
        deadline = time.monotonic() + t(timeout)
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if time.monotonic() > deadline:
                    raise TimeoutError("handshake did not finish")
                self._fill(timeout)

    def request(self, raw, timeout=30):
        self.obj.write(raw)
        self._flush()
        out = b""
        deadline = time.monotonic() + t(timeout)
        while time.monotonic() < deadline:
            try:
                chunk = self.obj.read(65536)
                if not chunk:
                    break
                out += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                break
            except ssl.SSLEOFError:
                break
            self._flush()
            if not self._fill(timeout):
                with contextlib.suppress(ssl.SSLError):
                    out += self.obj.read(65536)
                break
        return out


def padded_alpn(total=8000, real=("http/1.1",)):
    """An ALPN offer of about `total` bytes: junk protocol names then the real ones. Makes a
    genuine ClientHello of 8 KiB+ that a peer can complete a handshake with."""
    junk = []
    size = 0
    i = 0
    while size < total:
        name = f"x-pad-{i:04d}-" + "p" * 180
        junk.append(name)
        size += len(name) + 1
        i += 1
    return junk + list(real)


# --------------------------------------------------------------------------------------------
# small servers


class EchoServer:
    """Plain TCP echo on loopback (for raw tunnels); echoes until EOF, then half-closes."""

    def __init__(self, host=LOOPBACK):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            conn.settimeout(60)
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
