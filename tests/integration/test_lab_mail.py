"""Mail and file transfer over TLS through the transparent gateway, STARTTLS included.

The same shape as test_lab_transparent.py, in namespaces of its own:

    tgm-cli 192.0.2.2 ── 192.0.2.1 tgm-gw 203.0.113.1 ── 203.0.113.10 tgm-org (mail.test)
                         REDIRECT of all TCP           203.0.113.11 (nostarttls.mail.test)

Real servers from Debian packages on the origin: aiosmtpd (STARTTLS on 25 and 587, required on
587; implicit TLS on 465; a second instance without TLS on .11:25), Dovecot (IMAP 143/993, POP3
110/995) and vsftpd (anonymous FTP with TLS required on control and data, passive mode, and its default
require_ssl_reuse: a data connection must resume the control connection's TLS session, which the
gateway does on its upstream leg). Real clients on the client side:
curl, openssl s_client, Python's smtplib and ftplib. The gateway intercepts by default and passes
pass.mail.test through.

Needs root, iproute2, iptables, dovecot, vsftpd and python3-aiosmtpd; skipped otherwise.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from test_lab_transparent import in_ns, read_log, sh, stop_lab, wait_listening

NS_CLIENT, NS_ROUTER, NS_ORIGIN = "tgm-cli", "tgm-gw", "tgm-org"
CLIENT_IP, ROUTER_CLIENT_IP = "192.0.2.2", "192.0.2.1"
ROUTER_ORIGIN_IP, ORIGIN_IP, PLAIN_ORIGIN_IP = "203.0.113.1", "203.0.113.10", "203.0.113.11"
GATEWAY_PORT = 8443
HOSTS = {"mail.test": ORIGIN_IP, "pass.mail.test": ORIGIN_IP,
         "nostarttls.mail.test": PLAIN_ORIGIN_IP}
USER, PASSWORD = "tester", "secret"
PYTHON = "/usr/bin/python3"  # the Debian interpreter, which has the packages' modules

POLICY = """
default = "intercept"

[[rules]]
name = "pinned mail"
action = "passthrough"
hosts = ["pass.mail.test"]
"""

SMTP_SERVER = r"""
import itertools, json, os, ssl, sys, threading
from aiosmtpd.controller import Controller

outdir, cert, key, ip, plain_ip = sys.argv[1:6]
counter = itertools.count()

class Saver:
    def __init__(self, port):
        self.port = port
    async def handle_DATA(self, server, session, envelope):
        base = os.path.join(outdir, f"{self.port}-{next(counter)}")
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "tls": session.ssl is not None}, f)
        return "250 OK queued"

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controllers = [
    Controller(Saver(25), hostname=ip, port=25, server_hostname="mail.test",
               tls_context=context),
    Controller(Saver(587), hostname=ip, port=587, server_hostname="mail.test",
               tls_context=context, require_starttls=True),
    Controller(Saver(465), hostname=ip, port=465, server_hostname="mail.test",
               ssl_context=context),
    Controller(Saver(2525), hostname=plain_ip, port=25, server_hostname="nostarttls.mail.test"),
    # Implicit TLS on a STARTTLS port: the client's first byte tells.
    Controller(Saver(5870), hostname=plain_ip, port=587, server_hostname="nostarttls.mail.test",
               ssl_context=context),
]
for controller in controllers:
    controller.start()
print("ready", flush=True)
threading.Event().wait()
"""

VSFTPD_CONF = """
listen=YES
listen_ipv6=NO
listen_address={ip}
listen_port=21
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root={root}
local_enable=NO
write_enable=NO
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
ssl_enable=YES
require_ssl_reuse=YES
ssl_ciphers=HIGH
rsa_cert_file={cert}
rsa_private_key_file={key}
pasv_enable=YES
pasv_min_port=60000
pasv_max_port=60050
seccomp_sandbox=NO
ftpd_banner=mail.test FTP ready
secure_chroot_dir=/var/run/vsftpd/empty
vsftpd_log_file={log}
dual_log_enable=YES
"""

MESSAGE = (b"From: Alice <alice@sender.test>\r\nTo: Bob <bob@rcpt.test>\r\n"
           b"Subject: through the gateway\r\n\r\n"
           + b"".join(b"line %04d of a message that must arrive intact\r\n" % i
                      for i in range(400)))
STORED_MESSAGE = (b"From: Carol <carol@sender.test>\r\nSubject: in the mailbox\r\n\r\n"
                  b"a message Dovecot serves over IMAP and POP3\r\n")
FTP_FILE = harness.content("ftp-file", 200 * 1024)


def tear_down_lab():
    for ns in (NS_CLIENT, NS_ROUTER, NS_ORIGIN):
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
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
    sh("ip", "link", "add", "tgm-c0", "netns", NS_CLIENT, "type", "veth", "peer", "name",
       "tgm-c1", "netns", NS_ROUTER)
    sh("ip", "link", "add", "tgm-o0", "netns", NS_ORIGIN, "type", "veth", "peer", "name",
       "tgm-o1", "netns", NS_ROUTER)
    for ns, dev, address in ((NS_CLIENT, "tgm-c0", CLIENT_IP),
                             (NS_ROUTER, "tgm-c1", ROUTER_CLIENT_IP),
                             (NS_ROUTER, "tgm-o1", ROUTER_ORIGIN_IP),
                             (NS_ORIGIN, "tgm-o0", ORIGIN_IP),
                             (NS_ORIGIN, "tgm-o0", PLAIN_ORIGIN_IP)):
        sh(*in_ns(ns, "ip", "addr", "add", f"{address}/24", "dev", dev))
        sh(*in_ns(ns, "ip", "link", "set", dev, "up"))
    sh(*in_ns(NS_CLIENT, "ip", "route", "add", "default", "via", ROUTER_CLIENT_IP))
    sh(*in_ns(NS_ORIGIN, "ip", "route", "add", "default", "via", ROUTER_ORIGIN_IP))
    sh(*in_ns(NS_ROUTER, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
    # Every port: the mail ports, the implicit-TLS ports and FTP's passive data ports alike.
    sh(*in_ns(NS_ROUTER, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "tgm-c1", "-p",
              "tcp", "-j", "REDIRECT", "--to-ports", str(GATEWAY_PORT)))
    for ns in (NS_CLIENT, NS_ROUTER):
        os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
        with open(f"/etc/netns/{ns}/hosts", "w") as f:
            f.write("127.0.0.1 localhost\n")
            for name, address in HOSTS.items():
                f.write(f"{address} {name}\n")
        with open(f"/etc/netns/{ns}/resolv.conf", "w") as f:
            f.write("nameserver 127.0.0.1\n")


def lab_available():
    return (os.geteuid() == 0 and shutil.which("ip") and shutil.which("iptables")
            and os.path.exists("/usr/sbin/dovecot") and os.path.exists("/usr/sbin/vsftpd")
            and subprocess.run([PYTHON, "-c", "import aiosmtpd"],
                               capture_output=True).returncode == 0)


@unittest.skipUnless(lab_available(), "needs root, iproute2, iptables, dovecot, vsftpd and "
                                      "python3-aiosmtpd")
class MailLab(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tlsgate-mail-")
        # Dovecot's mail processes run as nobody and must reach the mailbox below.
        os.chmod(cls.dir, 0o755)
        cls.procs = []
        cls.logs = []
        try:
            build_lab()
            cls.pki = harness.PKI(os.path.join(cls.dir, "pki"))
            cls.leaf = cls.pki.leaves["mail"]
            cls._start_smtp()
            cls._start_dovecot()
            cls._start_ftp()
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
    def _start_smtp(cls):
        cls.outbox = os.path.join(cls.dir, "delivered")
        os.makedirs(cls.outbox)
        proc = cls._spawn(NS_ORIGIN, [PYTHON, "-c", SMTP_SERVER, cls.outbox, cls.leaf.cert_path,
                                      cls.leaf.key_path, ORIGIN_IP, PLAIN_ORIGIN_IP], "smtp")
        for port in (25, 587, 465):
            wait_listening(NS_ORIGIN, port, proc, "aiosmtpd")
        deadline = time.monotonic() + harness.t(20)
        while not sh(*in_ns(NS_ORIGIN, "ss", "-Hltn", f"src {PLAIN_ORIGIN_IP}:587"),
                     check=False).stdout.strip():
            if time.monotonic() > deadline:
                raise RuntimeError("aiosmtpd is not listening on the plain origin's 587")
            time.sleep(0.1)

    @classmethod
    def _start_dovecot(cls):
        d = os.path.join(cls.dir, "dovecot")
        maildir = os.path.join(d, "mail", USER)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(maildir, sub))
        with open(os.path.join(maildir, "new", "1700000000.1.mail.test"), "wb") as f:
            f.write(STORED_MESSAGE)
        for root, dirs, files in os.walk(os.path.join(d, "mail")):
            for name in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.chown(name, 65534, 65534)
        conf = os.path.join(d, "dovecot.conf")
        with open(conf, "w") as f:
            f.write(f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap pop3
listen = {ORIGIN_IP}
ssl = yes
ssl_cert = <{cls.leaf.cert_path}
ssl_key = <{cls.leaf.key_path}
disable_plaintext_auth = yes
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
pop3_uidl_format = %08Xu%08Xv
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 143
  }}
  inet_listener imaps {{
    port = 993
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 110
  }}
  inet_listener pop3s {{
    port = 995
    ssl = yes
  }}
}}
""")
        proc = cls._spawn(NS_ORIGIN, ["/usr/sbin/dovecot", "-F", "-c", conf], "dovecot")
        for port in (143, 993, 110, 995):
            wait_listening(NS_ORIGIN, port, proc, "dovecot")

    @classmethod
    def _start_ftp(cls):
        root = os.path.join(cls.dir, "ftp")
        os.makedirs(root, mode=0o755)
        with open(os.path.join(root, "file.bin"), "wb") as f:
            f.write(FTP_FILE)
        conf = os.path.join(cls.dir, "vsftpd.conf")
        with open(conf, "w") as f:
            f.write(VSFTPD_CONF.format(ip=ORIGIN_IP, root=root, cert=cls.leaf.cert_path,
                                       key=cls.leaf.key_path,
                                       log=os.path.join(cls.dir, "vsftpd.log")))
        proc = cls._spawn(NS_ORIGIN, ["/usr/sbin/vsftpd", conf], "ftp")
        wait_listening(NS_ORIGIN, 21, proc, "vsftpd")

    @classmethod
    def _start_gateway(cls):
        policy = os.path.join(cls.dir, "policy.toml")
        with open(policy, "w") as f:
            f.write(POLICY)
        cls.data_dir = os.path.join(cls.dir, "gateway")
        cls.ca_path = os.path.join(cls.data_dir, "ca.pem")
        cls.log_path = os.path.join(cls.data_dir, "connections.jsonl")
        argv = [harness.BIN, "run", "--listen", f"transparent@{ROUTER_CLIENT_IP}:{GATEWAY_PORT}",
                "--data-dir", cls.data_dir, "--no-system-trust", "--upstream-ca",
                cls.pki.root_path, "--policy", policy, "--workers", "2"]
        gateway = cls._spawn(NS_ROUTER, argv, "gateway")
        wait_listening(NS_ROUTER, GATEWAY_PORT, gateway, "tlsgate")

    # ----------------------------------------------------------------------------------------
    # helpers

    def client(self, *argv, input=None, timeout=60):
        return subprocess.run(in_ns(NS_CLIENT, *argv), input=input, capture_output=True,
                              timeout=harness.t(timeout))

    def curl(self, url, *args, cacert=None):
        return self.client(harness.CURL, "-sS", "-v", "--max-time", str(int(harness.t(30))),
                           "--cacert", cacert or self.ca_path, *args, url)

    def python(self, script):
        return self.client(PYTHON, "-c", script)

    @staticmethod
    def issuer(stderr):
        for line in stderr.decode(errors="replace").splitlines():
            if "issuer:" in line:
                return line.split("issuer:", 1)[1].strip()
        return ""

    def new_lines(self, before, predicate, count=1, timeout=15):
        """Connection log lines written since `before` lines that satisfy `predicate`."""
        deadline = time.monotonic() + harness.t(timeout)
        while True:
            lines = [l for l in read_log(self.log_path)[before:] if predicate(l)]
            if len(lines) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertGreaterEqual(len(lines), count,
                                f"no such log line; the log's tail:\n"
                                f"{harness.tail(self.log_path, 6)}")
        return lines

    def log_mark(self):
        return len(read_log(self.log_path))

    def delivered(self, port, since):
        names = sorted(n for n in os.listdir(self.outbox)
                       if n.startswith(f"{port}-") and n.endswith(".eml") and n not in since)
        mails = []
        for name in names:
            with open(os.path.join(self.outbox, name), "rb") as f:
                content = f.read()
            with open(os.path.join(self.outbox, name[:-4] + ".json")) as f:
                mails.append((content, json.load(f)))
        return mails

    def send_with_curl(self, scheme, host, port):
        message = os.path.join(self.dir, "message.eml")
        with open(message, "wb") as f:
            f.write(MESSAGE)
        since = set(os.listdir(self.outbox))
        mark = self.log_mark()
        args = ["--mail-from", "alice@sender.test", "--mail-rcpt", "bob@rcpt.test",
                "--mail-rcpt", "dave@rcpt.test", "-T", message]
        if scheme == "smtp":
            args.append("--ssl-reqd")
        r = self.curl(f"{scheme}://{host}:{port}", *args)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        mails = self.delivered(port, since)
        self.assertEqual(len(mails), 1)
        content, envelope = mails[0]
        self.assertEqual(content, MESSAGE)
        self.assertEqual(envelope["to"], ["bob@rcpt.test", "dave@rcpt.test"])
        # aiosmtpd tells STARTTLS sessions only; 465 is TLS from the start
        self.assertEqual(envelope["tls"], scheme == "smtp")
        return r, mark

    # ----------------------------------------------------------------------------------------
    # SMTP

    def test_smtp_starttls_on_587_is_intercepted_and_delivered_intact(self):
        r, mark = self.send_with_curl("smtp", "mail.test", 587)
        self.assertIn("tlsgate CA", self.issuer(r.stderr))
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:587")[0]
        self.assertEqual(line["action"], "intercept", line)
        self.assertEqual(line["sni"], "mail.test", line)
        self.assertIn("version", line["client_tls"], line)
        self.assertIn("version", line["upstream_tls"], line)
        mail = line["mail"]
        self.assertEqual(mail["protocol"], "smtp", line)
        self.assertEqual(mail["upgrade"], "upgraded", line)
        self.assertTrue(mail["upgrade_offered"], line)
        self.assertTrue(mail["observed_inside_tls"], line)
        self.assertEqual(mail["greeting_host"], "mail.test", line)
        self.assertEqual(mail["envelope"]["mail_from"], 1, line)
        self.assertEqual(mail["envelope"]["rcpt_to"], 2, line)
        self.assertEqual(mail["envelope"]["sender_domains"], ["sender.test"], line)
        self.assertEqual(mail["messages"], 1, line)
        self.assertEqual(mail["message_sizes"], [len(MESSAGE)], line)
        for verb in ("EHLO", "STARTTLS", "MAIL", "RCPT", "DATA"):
            self.assertIn(verb, mail["commands"], line)

    def test_smtp_starttls_on_25_is_intercepted_too(self):
        r, mark = self.send_with_curl("smtp", "mail.test", 25)
        self.assertIn("tlsgate CA", self.issuer(r.stderr))
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:25")[0]
        self.assertEqual(line["action"], "intercept", line)
        self.assertEqual(line["mail"]["upgrade"], "upgraded", line)

    def test_smtps_on_465_is_implicit_tls(self):
        r, mark = self.send_with_curl("smtps", "mail.test", 465)
        self.assertIn("tlsgate CA", self.issuer(r.stderr))
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:465")[0]
        self.assertEqual(line["action"], "intercept", line)
        self.assertNotIn("mail", line)

    def test_implicit_tls_on_a_starttls_port_is_intercepted(self):
        message = os.path.join(self.dir, "implicit.eml")
        with open(message, "wb") as f:
            f.write(MESSAGE)
        since = set(os.listdir(self.outbox))
        mark = self.log_mark()
        r = self.curl("smtps://nostarttls.mail.test:587", "--mail-from", "alice@sender.test",
                      "--mail-rcpt", "bob@rcpt.test", "-T", message)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual([m[0] for m in self.delivered(5870, since)], [MESSAGE])
        self.assertIn("tlsgate CA", self.issuer(r.stderr))
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{PLAIN_ORIGIN_IP}:587")[0]
        self.assertEqual(line["action"], "intercept", line)
        self.assertNotIn("mail", line)

    def test_commands_pipelined_after_starttls_are_never_intercepted(self):
        # CVE-2011-0411: bytes after the upgrade request, before the answer, would be read as
        # the first command inside TLS. The gateway stops following and relays untouched.
        mark = self.log_mark()
        r = self.python(f"""
import socket
s = socket.create_connection(("mail.test", 25), timeout=20)
f = s.makefile("rb")
assert f.readline().startswith(b"220")
s.sendall(b"EHLO client.test\\r\\n")
while not f.readline().startswith(b"250 "):
    pass
s.sendall(b"STARTTLS\\r\\nNOOP\\r\\n")
print(f.readline().decode().strip())
s.close()
""")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertTrue(r.stdout.startswith(b"220"), r.stdout)
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:25")[0]
        self.assertEqual(line["action"], "passthrough", line)
        self.assertEqual(line["mail"]["state"], "error", line)
        self.assertIn("pipelined", line["mail"]["dialogue_error"], line)
        self.assertNotIn("client_tls", line)

    def test_passthrough_mail_host_shows_the_servers_own_certificate(self):
        r, mark = self.send_with_curl_cacert("pass.mail.test", 587, self.pki.root_path)
        self.assertIn(harness.PKI.ISSUING_CN, self.issuer(r.stderr))
        line = self.new_lines(mark, lambda l: l.get("sni") == "pass.mail.test")[0]
        self.assertEqual(line["action"], "passthrough", line)
        self.assertEqual(line["mail"]["upgrade"], "upgraded", line)
        self.assertFalse(line["mail"]["observed_inside_tls"], line)

    def send_with_curl_cacert(self, host, port, cacert):
        message = os.path.join(self.dir, "message.eml")
        with open(message, "wb") as f:
            f.write(MESSAGE)
        since = set(os.listdir(self.outbox))
        mark = self.log_mark()
        r = self.curl(f"smtp://{host}:{port}", "--ssl-reqd", "--mail-from", "alice@sender.test",
                      "--mail-rcpt", "bob@rcpt.test", "-T", message, cacert=cacert)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual([m[0] for m in self.delivered(port, since)], [MESSAGE])
        return r, mark

    def test_a_client_that_never_asks_is_relayed_untouched_with_starttls_still_offered(self):
        mark = self.log_mark()
        since = set(os.listdir(self.outbox))
        r = self.python(f"""
import smtplib
with smtplib.SMTP("mail.test", 25, timeout=20) as s:
    s.ehlo("client.test")
    assert s.has_extn("starttls"), s.esmtp_features
    s.sendmail("alice@sender.test", ["bob@rcpt.test"], {MESSAGE!r})
""")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        content, envelope = self.delivered(25, since)[0]
        self.assertEqual(content, MESSAGE)
        self.assertFalse(envelope["tls"])
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:25")[0]
        self.assertEqual(line["action"], "passthrough", line)
        self.assertIn("no upgrade", line["reason"], line)
        mail = line["mail"]
        self.assertEqual(mail["upgrade"], "none", line)
        self.assertTrue(mail["upgrade_offered"], line)
        self.assertEqual(mail["envelope"]["rcpt_to"], 1, line)
        self.assertEqual(mail["message_sizes"], [len(MESSAGE)], line)

    def test_a_server_that_refuses_starttls_is_relayed_untouched(self):
        mark = self.log_mark()
        since = set(os.listdir(self.outbox))
        r = self.python(f"""
import smtplib
with smtplib.SMTP("nostarttls.mail.test", 25, timeout=20) as s:
    s.ehlo("client.test")
    code, _ = s.docmd("STARTTLS")
    assert code == 454, code
    s.sendmail("alice@sender.test", ["bob@rcpt.test", "eve@rcpt.test"], {MESSAGE!r})
""")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual([m[0] for m in self.delivered(2525, since)], [MESSAGE])
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{PLAIN_ORIGIN_IP}:25")[0]
        self.assertEqual(line["action"], "passthrough", line)
        self.assertIn("refused", line["reason"], line)
        self.assertEqual(line["mail"]["upgrade"], "refused", line)
        self.assertEqual(line["mail"]["envelope"]["rcpt_to"], 2, line)

    # ----------------------------------------------------------------------------------------
    # IMAP and POP3

    def test_imap_starttls_login_and_select(self):
        mark = self.log_mark()
        r = self.client(harness.OPENSSL, "s_client", "-starttls", "imap", "-connect",
                        "mail.test:143", "-servername", "mail.test", "-CAfile", self.ca_path,
                        "-verify_return_error", "-crlf", "-ign_eof",
                        input=f"a LOGIN {USER} {PASSWORD}\nb SELECT INBOX\nc LOGOUT\n".encode())
        out = r.stdout.decode(errors="replace")
        self.assertIn("a OK", out, r.stderr.decode(errors="replace"))
        self.assertIn("b OK", out)
        self.assertIn("1 EXISTS", out)
        self.assertIn("tlsgate CA", out.split("issuer=", 1)[1].splitlines()[0])
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:143")[0]
        self.assertEqual(line["action"], "intercept", line)
        mail = line["mail"]
        self.assertEqual((mail["protocol"], mail["upgrade"]), ("imap", "upgraded"), line)
        self.assertTrue(mail["observed_inside_tls"], line)
        for verb in ("STARTTLS", "LOGIN", "SELECT", "LOGOUT"):
            self.assertIn(verb, mail["commands"], line)
        self.assertNotIn(PASSWORD, json.dumps(line))

    def test_imaps_lists_and_fetches(self):
        r = self.curl("imaps://mail.test/", "-u", f"{USER}:{PASSWORD}")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertIn(b"INBOX", r.stdout)
        self.assertIn("tlsgate CA", self.issuer(r.stderr))
        r = self.curl("imaps://mail.test/INBOX;UID=1", "-u", f"{USER}:{PASSWORD}")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual(r.stdout, STORED_MESSAGE)

    def test_pop3_stls_and_pop3s(self):
        mark = self.log_mark()
        r = self.curl("pop3://mail.test/1", "--ssl-reqd", "-u", f"{USER}:{PASSWORD}")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual(r.stdout, STORED_MESSAGE)
        self.assertIn("tlsgate CA", self.issuer(r.stderr))
        line = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:110")[0]
        mail = line["mail"]
        self.assertEqual((mail["protocol"], mail["upgrade"]), ("pop3", "upgraded"), line)
        self.assertTrue(mail["observed_inside_tls"], line)
        for verb in ("STLS", "CAPA", "RETR"):
            self.assertIn(verb, mail["commands"], line)
        self.assertNotIn(PASSWORD, json.dumps(line))
        r = self.curl("pop3s://mail.test/", "-u", f"{USER}:{PASSWORD}")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual(r.stdout.split(), [b"1", str(len(STORED_MESSAGE)).encode()])
        self.assertIn("tlsgate CA", self.issuer(r.stderr))

    # ----------------------------------------------------------------------------------------
    # FTP

    def test_ftp_auth_tls_download_with_the_data_channel_intercepted(self):
        mark = self.log_mark()
        r = self.curl("ftp://mail.test/file.bin", "--ssl-reqd", "-o", "-")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual(r.stdout, FTP_FILE)
        self.assertIn("tlsgate CA", self.issuer(r.stderr))
        control = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:21")[0]
        self.assertEqual(control["action"], "intercept", control)
        mail = control["mail"]
        self.assertEqual((mail["protocol"], mail["upgrade"]), ("ftp", "upgraded"), control)
        self.assertGreaterEqual(mail["ftp_data_endpoints"], 1, control)
        for verb in ("AUTH", "PBSZ", "PROT", "RETR"):
            self.assertIn(verb, mail["commands"], control)
        data = self.new_lines(mark, lambda l: l.get("mail", {}).get("protocol") == "ftp-data")[0]
        self.assertEqual(data["mail"]["control_connection"], control["id"], data)
        self.assertEqual(data["action"], "intercept", data)
        self.assertIn("version", data["client_tls"], data)
        # vsftpd's require_ssl_reuse: the data connection resumed the control session upstream
        self.assertTrue(data["upstream_tls"].get("resumed"), data)

    def test_ftp_data_without_sni_gets_the_control_sessions_name(self):
        # Connecting by address: Python sends no SNI on either connection. The control session is
        # verified by chain and its names mirrored; the data connection is recognised as its own.
        mark = self.log_mark()
        r = self.python(f"""
import ftplib, io, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations({self.ca_path!r})
ctx.check_hostname = False
ftp = ftplib.FTP_TLS(context=ctx, timeout=20)
ftp.connect({ORIGIN_IP!r}, 21)
ftp.auth()
ftp.login()
ftp.prot_p()
out = io.BytesIO()
ftp.retrbinary("RETR file.bin", out.write)
ftp.quit()
assert out.getvalue() == open({os.path.join(self.dir, "ftp", "file.bin")!r}, "rb").read()
""")
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        control = self.new_lines(mark, lambda l: l.get("destination") == f"{ORIGIN_IP}:21")[0]
        self.assertNotIn("sni", control)
        self.assertEqual(control["mail"]["greeting_host"], "mail.test", control)
        data = self.new_lines(mark, lambda l: l.get("mail", {}).get("protocol") == "ftp-data")[0]
        self.assertEqual(data["mail"]["control_connection"], control["id"], data)
        self.assertEqual(data["action"], "intercept", data)
        self.assertTrue(data["upstream_tls"].get("resumed"), data)


if __name__ == "__main__":
    unittest.main()
