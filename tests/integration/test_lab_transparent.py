"""tlsgate in the network path: a router that redirects its clients' TCP to the gateway.

Three hosts as network namespaces joined by veth pairs, addresses from the documentation ranges:

    tgl-cli 192.0.2.2 ── 192.0.2.1 tgl-gw 198.51.100.1 ── 198.51.100.10 tgl-org
    (default via .1)     ip_forward=1, iptables REDIRECT     nginx :443 :80, echo :7
                         of TCP from the client to tlsgate

The client configures no proxy: it resolves names to the origin's address (its own hosts file)
and connects; the router's PREROUTING rule hands every TCP connection to the transparent
listener, which finds the real destination with SO_ORIGINAL_DST. The gateway's own upstream
connections leave through OUTPUT, so they are never redirected back to it.

Needs root and iproute2/iptables; skipped otherwise. Everything is torn down even on failure.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness

NS_CLIENT, NS_ROUTER, NS_ORIGIN = "tgl-cli", "tgl-gw", "tgl-org"
CLIENT_IP, ROUTER_CLIENT_IP = "192.0.2.2", "192.0.2.1"
ROUTER_ORIGIN_IP, ORIGIN_IP = "198.51.100.1", "198.51.100.10"
# IPv6 from the documentation prefix (RFC 3849).
CLIENT_IP6, ROUTER_CLIENT_IP6 = "2001:db8:2::2", "2001:db8:2::1"
ROUTER_ORIGIN_IP6, ORIGIN_IP6 = "2001:db8:100::1", "2001:db8:100::10"
GATEWAY_PORT = 8443
TPROXY_PORT = 8444          # the gateway's TPROXY listener
TPROXY_ORIGIN_PORT = 4443   # connections to this origin port are TPROXYed, all others REDIRECTed
SCALE_ORIGIN_PORT = 5443    # ... and these go to HAProxy in front of two tlsgate instances
HAPROXY_PORT = 8445
BACKEND_PORTS = (9001, 9002)
NAMES = ["origin.test", "www.origin.test", "pass.test", "blocked.test", "plain.test"]
NAMES6 = ["origin.test"]  # also AAAA: curl -6 takes this one

POLICY = """
default = "intercept"

[[rules]]
name = "pinned"
action = "passthrough"
hosts = ["pass.test"]

[[rules]]
name = "forbidden"
action = "block"
hosts = ["blocked.test"]
"""


def sh(*argv, check=True, timeout=30):
    result = subprocess.run(list(argv), capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.decode(errors='replace')}")
    return result


def in_ns(ns, *argv):
    return ["ip", "netns", "exec", ns, *argv]


def lab_available():
    return os.geteuid() == 0 and shutil.which("ip") and shutil.which("iptables")


def tear_down_lab():
    for ns in (NS_CLIENT, NS_ROUTER, NS_ORIGIN):
        pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


def build_lab():
    tear_down_lab()
    for ns in (NS_CLIENT, NS_ROUTER, NS_ORIGIN):
        sh("ip", "netns", "add", ns)
        sh(*in_ns(ns, "ip", "link", "set", "lo", "up"))
    sh("ip", "link", "add", "tgl-c0", "netns", NS_CLIENT, "type", "veth", "peer", "name",
       "tgl-c1", "netns", NS_ROUTER)
    sh("ip", "link", "add", "tgl-o0", "netns", NS_ORIGIN, "type", "veth", "peer", "name",
       "tgl-o1", "netns", NS_ROUTER)
    for ns, dev, address in ((NS_CLIENT, "tgl-c0", CLIENT_IP), (NS_ROUTER, "tgl-c1", ROUTER_CLIENT_IP),
                             (NS_ROUTER, "tgl-o1", ROUTER_ORIGIN_IP), (NS_ORIGIN, "tgl-o0", ORIGIN_IP)):
        prefix = "24"
        sh(*in_ns(ns, "ip", "addr", "add", f"{address}/{prefix}", "dev", dev))
        sh(*in_ns(ns, "ip", "link", "set", dev, "up"))
    for ns, dev, address in ((NS_CLIENT, "tgl-c0", CLIENT_IP6),
                             (NS_ROUTER, "tgl-c1", ROUTER_CLIENT_IP6),
                             (NS_ROUTER, "tgl-o1", ROUTER_ORIGIN_IP6),
                             (NS_ORIGIN, "tgl-o0", ORIGIN_IP6)):
        sh(*in_ns(ns, "ip", "-6", "addr", "add", f"{address}/64", "dev", dev, "nodad"))
    sh(*in_ns(NS_CLIENT, "ip", "-6", "route", "add", "default", "via", ROUTER_CLIENT_IP6))
    sh(*in_ns(NS_ORIGIN, "ip", "-6", "route", "add", "default", "via", ROUTER_ORIGIN_IP6))
    sh(*in_ns(NS_ROUTER, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"))
    sh(*in_ns(NS_ROUTER, "ip6tables", "-t", "nat", "-A", "PREROUTING", "-i", "tgl-c1", "-p",
              "tcp", "!", "--dport", str(TPROXY_ORIGIN_PORT), "-j", "REDIRECT", "--to-ports",
              str(GATEWAY_PORT)))
    sh(*in_ns(NS_CLIENT, "ip", "route", "add", "default", "via", ROUTER_CLIENT_IP))
    sh(*in_ns(NS_ORIGIN, "ip", "route", "add", "default", "via", ROUTER_ORIGIN_IP))
    sh(*in_ns(NS_ROUTER, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
    # What an operator writes on the router: every TCP connection arriving from the client side
    # goes to the transparent listener.
    sh(*in_ns(NS_ROUTER, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "tgl-c1", "-p",
              "tcp", "!", "--dport", str(TPROXY_ORIGIN_PORT), "-j", "REDIRECT", "--to-ports",
              str(GATEWAY_PORT)))
    # Scale-out: this port goes to HAProxy, which spreads connections over two gateways and tells
    # each the real client and destination in a PROXY v2 header.
    sh(*in_ns(NS_ROUTER, "iptables", "-t", "nat", "-I", "PREROUTING", "1", "-i", "tgl-c1", "-p",
              "tcp", "--dport", str(SCALE_ORIGIN_PORT), "-j", "REDIRECT", "--to-ports",
              str(HAPROXY_PORT)))
    # TPROXY keeps the destination address on the packets and delivers them to the gateway's
    # IP_TRANSPARENT socket; the policy route makes marked packets local.
    sh(*in_ns(NS_ROUTER, "iptables", "-t", "mangle", "-A", "PREROUTING", "-i", "tgl-c1", "-p",
              "tcp", "--dport", str(TPROXY_ORIGIN_PORT), "-j", "TPROXY", "--on-ip",
              ROUTER_CLIENT_IP, "--on-port", str(TPROXY_PORT), "--tproxy-mark", "0x1/0x1"))
    # spoof_source: the origin answers the client's address; those packets belong to the
    # gateway's transparent upstream socket, so they are made local too.
    sh(*in_ns(NS_ROUTER, "iptables", "-t", "mangle", "-A", "PREROUTING", "-i", "tgl-o1", "-p",
              "tcp", "-m", "socket", "--transparent", "-j", "MARK", "--set-mark", "0x1"))
    sh(*in_ns(NS_ROUTER, "ip", "rule", "add", "fwmark", "0x1/0x1", "lookup", "100"))
    sh(*in_ns(NS_ROUTER, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"))
    sh(*in_ns(NS_ROUTER, "ip6tables", "-t", "mangle", "-A", "PREROUTING", "-i", "tgl-c1", "-p",
              "tcp", "--dport", str(TPROXY_ORIGIN_PORT), "-j", "TPROXY", "--on-ip",
              ROUTER_CLIENT_IP6, "--on-port", str(TPROXY_PORT), "--tproxy-mark", "0x1/0x1"))
    sh(*in_ns(NS_ROUTER, "ip6tables", "-t", "mangle", "-A", "PREROUTING", "-i", "tgl-o1", "-p",
              "tcp", "-m", "socket", "--transparent", "-j", "MARK", "--set-mark", "0x1"))
    sh(*in_ns(NS_ROUTER, "ip", "-6", "rule", "add", "fwmark", "0x1/0x1", "lookup", "100"))
    sh(*in_ns(NS_ROUTER, "ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "100"))
    for ns in (NS_CLIENT, NS_ROUTER):
        os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
        with open(f"/etc/netns/{ns}/hosts", "w") as f:
            f.write("127.0.0.1 localhost\n")
            for name in NAMES:
                f.write(f"{ORIGIN_IP} {name}\n")
            for name in NAMES6:
                f.write(f"{ORIGIN_IP6} {name}\n")
        with open(f"/etc/netns/{ns}/resolv.conf", "w") as f:
            f.write("nameserver 127.0.0.1\n")


def read_log(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wait_listening(ns, port, proc, what, timeout=20):
    deadline = time.monotonic() + harness.t(timeout)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        out = sh(*in_ns(ns, "ss", "-Hltn", f"sport = :{port}"), check=False).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} is not listening on {port} in {ns}")


ECHO_SERVER = r"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7)); s.listen(64)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@unittest.skipUnless(lab_available(), "needs root, iproute2 and iptables")

def stop_lab(lab, tear_down):
    """Ends a lab class's processes and namespaces; fails on a sanitizer report from tlsgate."""
    for proc in reversed(lab.procs):
        harness.stop_process(proc, timeout=5)
    for log in lab.logs:
        log.close()
    tear_down()
    report = harness.sanitizer_report(os.path.join(lab.dir, "gateway.stderr"))
    if not harness.KEEP:
        shutil.rmtree(lab.dir, ignore_errors=True)
    if report:
        raise AssertionError(f"sanitizer report from tlsgate:\n{report}")

class TransparentRedirectLab(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tlsgate-lab-")
        cls.procs = []
        cls.logs = []
        try:
            build_lab()
            cls.pki = harness.PKI(os.path.join(cls.dir, "pki"))
            cls._start_origin()
            cls._start_gateway()
        except Exception:
            cls._stop_all()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._stop_all()

    @classmethod
    def _stop_all(cls):
        stop_lab(cls, tear_down_lab)

    @classmethod
    def _spawn(cls, ns, argv, name):
        log = open(os.path.join(cls.dir, f"{name}.stderr"), "wb")
        cls.logs.append(log)
        proc = harness.spawn(in_ns(ns, *argv), stdout=log, stderr=log)
        cls.procs.append(proc)
        return proc

    @classmethod
    def _start_origin(cls):
        www = os.path.join(cls.dir, "www")
        os.makedirs(www)
        for name, size in harness.FILES.items():
            with open(os.path.join(www, name), "wb") as f:
                f.write(harness.content(name, size))
        valid, policy = cls.pki.leaves["valid"], cls.pki.leaves["policy"]
        servers = ""
        for leaf, names in ((valid, "origin.test www.origin.test"),
                            (policy, "pass.test blocked.test")):
            servers += f"""
    server {{
        listen {ORIGIN_IP}:443 ssl http2;
        listen [{ORIGIN_IP6}]:443 ssl http2;
        listen {ORIGIN_IP}:{TPROXY_ORIGIN_PORT} ssl http2;
        listen [{ORIGIN_IP6}]:{TPROXY_ORIGIN_PORT} ssl http2;
        listen {ORIGIN_IP}:{SCALE_ORIGIN_PORT} ssl http2;
        server_name {names};
        ssl_certificate {leaf.cert_path};
        ssl_certificate_key {leaf.key_path};
        location = /proto {{ default_type text/plain; return 200 "$server_protocol\\n"; }}
        location = /whoami {{ default_type text/plain; return 200 "$remote_addr\\n"; }}
        location /slow/ {{ alias {www}/; limit_rate 256k; }}
        location / {{ root {www}; }}
    }}"""
        conf = os.path.join(cls.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
user root;
master_process off;
worker_processes 1;
pid {cls.dir}/nginx.pid;
error_log {cls.dir}/nginx-error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path {cls.dir}/body;
    {servers}
    server {{ listen {ORIGIN_IP}:80; location / {{ root {www}; }} }}
}}
""")
        nginx = cls._spawn(NS_ORIGIN, [harness.NGINX, "-p", cls.dir + "/", "-c", conf, "-g",
                                       "daemon off;"], "nginx")
        wait_listening(NS_ORIGIN, 443, nginx, "nginx")
        echo = cls._spawn(NS_ORIGIN, ["/usr/bin/python3", "-c", ECHO_SERVER], "echo")
        wait_listening(NS_ORIGIN, 7, echo, "echo server")

    @classmethod
    def _start_gateway(cls):
        policy = os.path.join(cls.dir, "policy.toml")
        with open(policy, "w") as f:
            f.write(POLICY)
        cls.data_dir = os.path.join(cls.dir, "gateway")
        cls.ca_path = os.path.join(cls.data_dir, "ca.pem")
        cls.log_path = os.path.join(cls.data_dir, "connections.jsonl")
        config = os.path.join(cls.dir, "tlsgate.toml")
        with open(config, "w") as f:
            f.write("spoof_source = true\n")
        argv = [harness.BIN, "run", "--config", config,
                "--listen", f"transparent@{ROUTER_CLIENT_IP}:{GATEWAY_PORT}",
                "--listen", f"transparent@[{ROUTER_CLIENT_IP6}]:{GATEWAY_PORT}",
                "--listen", f"tproxy@{ROUTER_CLIENT_IP}:{TPROXY_PORT}",
                "--listen", f"tproxy@[{ROUTER_CLIENT_IP6}]:{TPROXY_PORT}",
                "--data-dir", cls.data_dir, "--no-system-trust", "--upstream-ca",
                cls.pki.root_path, "--policy", policy, "--workers", "2"]
        gateway = cls._spawn(NS_ROUTER, argv, "gateway")
        wait_listening(NS_ROUTER, GATEWAY_PORT, gateway, "tlsgate")

    def start_scale_out(self):
        """Two gateways sharing one CA behind HAProxy (mode tcp, send-proxy-v2, health checks)."""
        gateways = []
        for index, port in enumerate(BACKEND_PORTS):
            data_dir = os.path.join(self.dir, f"node{index}")
            os.makedirs(data_dir)
            argv = [harness.BIN, "run", "--listen", f"transparent+proxy@127.0.0.1:{port}",
                    "--data-dir", data_dir, "--ca-dir", self.data_dir, "--no-system-trust",
                    "--upstream-ca", self.pki.root_path, "--workers", "1"]
            proc = self._spawn(NS_ROUTER, argv, f"node{index}")
            wait_listening(NS_ROUTER, port, proc, f"tlsgate node {index}")
            gateways.append((proc, os.path.join(data_dir, "connections.jsonl")))
        conf = os.path.join(self.dir, "haproxy.cfg")
        servers = "\n".join(
            f"    server node{i} 127.0.0.1:{port} send-proxy-v2 check check-send-proxy "
            "inter 300ms fall 1 rise 2" for i, port in enumerate(BACKEND_PORTS))
        with open(conf, "w") as f:
            f.write(f"""
global
    maxconn 2000
defaults
    mode tcp
    timeout connect 3s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
frontend gateways_in
    bind {ROUTER_CLIENT_IP}:{HAPROXY_PORT}
    default_backend gateways
backend gateways
    balance roundrobin
{servers}
""")
        haproxy = self._spawn(NS_ROUTER, [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db",
                                          "-f", conf], "haproxy")
        wait_listening(NS_ROUTER, HAPROXY_PORT, haproxy, "haproxy")
        return gateways

    @unittest.skipUnless(shutil.which("haproxy") or os.path.exists("/usr/sbin/haproxy"),
                         "needs haproxy")
    def test_scale_out_behind_haproxy_survives_losing_a_node(self):
        gateways = self.start_scale_out()
        url = f"https://origin.test:{SCALE_ORIGIN_PORT}/1k.bin"
        for _ in range(6):
            r = self.curl(url, "-o", "/dev/null", "-w", "%{http_code}", cacert=self.ca_path)
            self.assertEqual(r.stdout, b"200", r.stderr)
        for proc, log_path in gateways:
            lines = [l for l in read_log(log_path) if l.get("action") == "intercept"]
            self.assertTrue(lines, f"node behind {log_path} served nothing")
            for line in lines:
                # The real client, not HAProxy, and the real destination.
                self.assertTrue(line["client"].startswith(CLIENT_IP + ":"), line)
                self.assertTrue(line["proxied_by"].startswith("127.0.0.1:"), line)
                self.assertEqual(line["destination"], f"{ORIGIN_IP}:{SCALE_ORIGIN_PORT}", line)
        # One node dies mid-run. Downloads in flight on it end at once (none is left hanging),
        # and new connections keep succeeding through the other node.
        slow_url = f"https://origin.test:{SCALE_ORIGIN_PORT}/slow/1m.bin"
        downloads = [subprocess.Popen(
            in_ns(NS_CLIENT, harness.CURL, "-4", "-sS", "--max-time", "60", "--cacert",
                  self.ca_path, "-o", "/dev/null", "-w", "%{http_code}", slow_url),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        time.sleep(harness.t(1))
        started = time.monotonic()
        gateways[0][0].kill()
        for download in downloads:
            download.communicate(timeout=harness.t(30))
        # 1 MiB at 256 KiB/s takes 4 s: the survivor's download completes in about that, and the
        # dead node's client learns at once; nobody waits for the 60 s limit.
        self.assertLess(time.monotonic() - started, harness.t(15))
        self.assertIn(0, [download.returncode for download in downloads])
        failures = 0
        for _ in range(10):
            r = self.curl(url, "-o", "/dev/null", "-w", "%{http_code}", cacert=self.ca_path)
            failures += r.stdout != b"200"
        self.assertEqual(failures, 0)

    def curl(self, url, *args, cacert=None):
        # origin.test has an AAAA record too: IPv4 unless a test asks for -6.
        family = [] if "-6" in args else ["-4"]
        argv = in_ns(NS_CLIENT, harness.CURL, "-sS", "--max-time", str(int(harness.t(20))),
                     "--noproxy", "*", *family, *args)
        if cacert:
            argv += ["--cacert", cacert]
        return subprocess.run(argv + [url], capture_output=True, timeout=harness.t(60))

    def issuer_seen(self, url, cacert):
        r = self.curl(url, "-v", "-o", "/dev/null", cacert=cacert)
        for line in r.stderr.decode(errors="replace").splitlines():
            if "issuer:" in line:
                return line.split("issuer:", 1)[1].strip()
        return ""

    def log_lines(self):
        return read_log(self.log_path)

    def test_intercepted_name_gets_a_minted_certificate_and_the_right_body(self):
        r = self.curl("https://origin.test/64k.bin", "-o", "-", cacert=self.ca_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.content("64k.bin", harness.FILES["64k.bin"]))
        self.assertIn("tlsgate CA", self.issuer_seen("https://origin.test/1k.bin", self.ca_path))

    def test_ipv6_client_is_intercepted_too(self):
        r = self.curl("https://origin.test/1k.bin", "-6", "-o", "-", cacert=self.ca_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.content("1k.bin", 1024))
        deadline = time.monotonic() + harness.t(15)
        line = None
        while time.monotonic() < deadline and line is None:
            line = next((l for l in self.log_lines()
                         if l.get("client", "").startswith(f"[{CLIENT_IP6}]")), None)
            time.sleep(0.1)
        self.assertIsNotNone(line, "no log line for the IPv6 client")
        self.assertEqual(line["destination"], f"[{ORIGIN_IP6}]:443", line)
        self.assertEqual(line["action"], "intercept", line)

    def test_tproxy_delivers_to_the_gateway_with_the_destination_intact(self):
        r = self.curl(f"https://origin.test:{TPROXY_ORIGIN_PORT}/1k.bin", "-o", "-",
                      cacert=self.ca_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.content("1k.bin", 1024))
        deadline = time.monotonic() + harness.t(15)
        line = None
        while time.monotonic() < deadline and line is None:
            line = next((l for l in self.log_lines() if l.get("listener", "").startswith("tproxy")),
                        None)
            time.sleep(0.1)
        self.assertIsNotNone(line, "no log line from the tproxy listener")
        self.assertEqual(line["destination"], f"{ORIGIN_IP}:{TPROXY_ORIGIN_PORT}", line)
        self.assertEqual(line["action"], "intercept", line)

    def test_client_without_sni_gets_the_upstream_names_mirrored(self):
        # No SNI, no proxy: the gateway knows only the address. It verifies the chain upstream and
        # mirrors the real certificate's names; the client then checks the name it expects.
        script = f"""
import socket, ssl, json
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations({self.ca_path!r})
ctx.check_hostname = False
with socket.create_connection(({ORIGIN_IP!r}, 443), timeout=20) as raw:
    with ctx.wrap_socket(raw) as tls:
        cert = tls.getpeercert()
        print(json.dumps({{"san": [v for k, v in cert.get("subjectAltName", ())],
                           "issuer": dict(x[0] for x in cert["issuer"])}}))
"""
        r = subprocess.run(in_ns(NS_CLIENT, "/usr/bin/python3", "-c", script),
                           capture_output=True, timeout=harness.t(60))
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = json.loads(r.stdout)
        self.assertIn("origin.test", seen["san"])
        self.assertIn("tlsgate CA", seen["issuer"]["commonName"])

    def test_tproxy_with_spoof_source_shows_the_client_address_to_the_server(self):
        r = self.curl(f"https://origin.test:{TPROXY_ORIGIN_PORT}/whoami", "-o", "-",
                      cacert=self.ca_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip().decode(), CLIENT_IP)
        # REDIRECT connections come from the router, as NAT implies.
        r = self.curl("https://origin.test/whoami", "-o", "-", cacert=self.ca_path)
        self.assertEqual(r.stdout.strip().decode(), ROUTER_ORIGIN_IP, r.stderr)

    def test_tproxy_over_ipv6(self):
        r = self.curl(f"https://origin.test:{TPROXY_ORIGIN_PORT}/whoami", "-6", "-o", "-",
                      cacert=self.ca_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        # spoof_source keeps the IPv6 client's address too
        self.assertEqual(r.stdout.strip().decode(), CLIENT_IP6)

    def test_h2_end_to_end_without_a_proxy(self):
        r = self.curl("https://origin.test/proto", "--http2", "-o", "-", cacert=self.ca_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), b"HTTP/2.0")

    def test_passthrough_name_shows_the_origin_certificate(self):
        r = self.curl("https://pass.test/1k.bin", "-o", "/dev/null", "-w", "%{http_code}",
                      cacert=self.pki.root_path)
        self.assertEqual(r.stdout, b"200", r.stderr)
        self.assertIn(harness.PKI.ISSUING_CN,
                      self.issuer_seen("https://pass.test/1k.bin", self.pki.root_path))

    def test_blocked_name_fails_with_a_tls_alert(self):
        r = self.curl("https://blocked.test/1k.bin", "-o", "/dev/null", cacert=self.ca_path)
        self.assertEqual(r.returncode, 35, r.stderr)
        self.assertIn(b"alert", r.stderr.lower())

    def test_the_router_answers_tlsgate_local_with_the_portal(self):
        # the operator's DNS points tlsgate.local at the router; REDIRECT brings it to the gateway
        r = self.curl("http://tlsgate.local/", "--resolve", f"tlsgate.local:80:{ROUTER_CLIENT_IP}",
                      "-A", "Mozilla/5.0 (Linux; Android 14)")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.ca_path, "rb") as f:
            ca = harness.x509.load_pem_x509_certificate(f.read())
        fingerprint = ":".join(f"{b:02X}" for b in ca.fingerprint(harness.hashes.SHA256()))
        self.assertIn(f'id="ca-fingerprint-sha256">{fingerprint}<'.encode(), r.stdout)
        self.assertIn(b'<section id="platform-android"', r.stdout)
        r = self.curl("http://tlsgate.local/cert/tlsgate-ca.pem", "--resolve",
                      f"tlsgate.local:80:{ROUTER_CLIENT_IP}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, open(self.ca_path, "rb").read())

    def test_plain_http_is_relayed_raw(self):
        r = self.curl("http://plain.test/1k.bin", "-o", "-")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.content("1k.bin", 1024))

    def test_an_arbitrary_tcp_protocol_on_another_port_still_works(self):
        script = (f"import socket; s = socket.create_connection(('{ORIGIN_IP}', 7), timeout=20);"
                  "s.sendall(b'ping through the router\\n'); print(s.recv(100).decode(), end='')")
        r = subprocess.run(in_ns(NS_CLIENT, "/usr/bin/python3", "-c", script),
                           capture_output=True, timeout=harness.t(60))
        self.assertEqual(r.stdout, b"ping through the router\n", r.stderr)

    def test_the_log_carries_the_real_client_and_destination(self):
        self.curl("https://www.origin.test/1k.bin", "-o", "/dev/null", cacert=self.ca_path)
        deadline = time.monotonic() + harness.t(15)
        line = None
        while time.monotonic() < deadline and line is None:
            line = next((l for l in self.log_lines() if l.get("sni") == "www.origin.test"), None)
            time.sleep(0.1)
        self.assertIsNotNone(line, "no log line for www.origin.test")
        self.assertTrue(line["client"].startswith(CLIENT_IP + ":"), line)
        self.assertEqual(line["destination"], f"{ORIGIN_IP}:443", line)
        self.assertEqual(line["action"], "intercept", line)


if __name__ == "__main__":
    unittest.main()
