"""An FTP data connection resumes its control connection's upstream TLS session (servers such as
vsftpd require it), and a resumed session skips certificate verification. That session must
never vouch for another name: a server that proved only `other.test` on its FTPS control
connection announces a passive port, and a connection to that port asking for `origin.test`
(as DNS spoofing would send it there) must be verified in full, and refused, not resumed and
handed a trusted leaf for `origin.test`.

Needs root (the FTP control port is 21); skipped otherwise."""

import json
import os
import socket
import ssl
import threading
import unittest

import harness
from harness import t

SERVER_IP = "127.0.0.77"


class FakeFtpsServer:
    """FTPS control (AUTH TLS) on SERVER_IP:21 and a TLS server on a data port, sharing one
    SSLContext (so one ticket key), both presenting `leaf`."""

    def __init__(self, leaf):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(leaf.cert_path, leaf.key_path)
        self.control = socket.create_server((SERVER_IP, 21))
        self.data = socket.create_server((SERVER_IP, 0))
        self.data_port = self.data.getsockname()[1]
        self.data_sessions_reused = []
        for listener, serve in ((self.control, self._control), (self.data, self._data)):
            threading.Thread(target=self._accept, args=(listener, serve), daemon=True).start()

    def _accept(self, listener, serve):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._guarded, args=(serve, conn), daemon=True).start()

    @staticmethod
    def _guarded(serve, conn):
        try:
            serve(conn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def _control(self, conn):
        conn.sendall(b"220 FTP ready\r\n")
        reader = conn.makefile("rb")
        if not reader.readline().upper().startswith(b"AUTH TLS"):
            return
        conn.sendall(b"234 go ahead\r\n")
        with self.context.wrap_socket(conn, server_side=True) as tls:
            self._commands(tls)

    def _commands(self, tls):
        lines = tls.makefile("rb")
        while line := lines.readline():
            if line.strip().upper() == b"PASV":
                a, b, c, d = SERVER_IP.split(".")
                p1, p2 = divmod(self.data_port, 256)
                tls.sendall(f"227 Entering Passive Mode ({a},{b},{c},{d},{p1},{p2})\r\n".encode())
            else:
                tls.sendall(b"200 ok\r\n")

    def _data(self, conn):
        with self.context.wrap_socket(conn, server_side=True) as tls:
            self.data_sessions_reused.append(tls.session_reused)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            tls.recv(100)

    def close(self):
        self.control.close()
        self.data.close()


@unittest.skipUnless(os.geteuid() == 0, "needs root to listen on port 21")
class FtpSessionReuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = harness.world()
        cls.server = FakeFtpsServer(cls.w.pki.leaves["wronghost"])  # proves other.test only
        cls.port = harness.free_port()
        cls.gw = harness.Gateway(cls.w, workers=1, extra_args=[
            "--listen", f"transparent+proxy@{harness.LOOPBACK}:{cls.port}"])
        cls.gw.start()
        harness.wait_for_port(cls.port, proc=cls.gw.proc, what="transparent+proxy listener")
        cls.client_context = ssl.create_default_context(cafile=cls.gw.ca_path)

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.server.close()

    def connect(self, server_port, client_port):
        sock = socket.create_connection((harness.LOOPBACK, self.port), timeout=t(20))
        sock.sendall(f"PROXY TCP4 127.0.0.5 {SERVER_IP} {client_port} {server_port}\r\n".encode())
        return sock

    def test_a_control_session_never_vouches_for_another_name(self):
        control = self.connect(21, 41001)
        reader = control.makefile("rb")
        self.assertTrue(reader.readline().startswith(b"220"))
        control.sendall(b"AUTH TLS\r\n")
        self.assertTrue(reader.readline().startswith(b"234"))
        control_tls = self.client_context.wrap_socket(control, server_hostname="other.test")
        self.addCleanup(control_tls.close)
        lines = control_tls.makefile("rb")
        control_tls.sendall(b"NOOP\r\n")
        self.assertTrue(lines.readline().startswith(b"200"))  # the session ticket has arrived
        control_tls.sendall(b"PASV\r\n")
        self.assertTrue(lines.readline().startswith(b"227"))

        for attempt in range(2):  # the second one would find a poisoned session cache
            data = self.connect(self.server.data_port, 41002 + attempt)
            with self.assertRaises(ssl.SSLError, msg=f"attempt {attempt}: origin.test accepted"):
                with self.client_context.wrap_socket(data, server_hostname="origin.test"):
                    pass
            data.close()
        lines = [json.loads(line) for line in open(self.gw.log_path)] if os.path.exists(
            self.gw.log_path) else []
        resumed = [line for line in lines if line.get("sni") == "origin.test" and
                   line.get("upstream_tls", {}).get("resumed")]
        self.assertEqual(resumed, [], resumed)

    def test_the_same_name_still_resumes(self):
        control = self.connect(21, 42001)
        reader = control.makefile("rb")
        reader.readline()
        control.sendall(b"AUTH TLS\r\n")
        reader.readline()
        control_tls = self.client_context.wrap_socket(control, server_hostname="other.test")
        self.addCleanup(control_tls.close)
        lines = control_tls.makefile("rb")
        control_tls.sendall(b"NOOP\r\n")
        lines.readline()
        control_tls.sendall(b"PASV\r\n")
        lines.readline()
        data = self.connect(self.server.data_port, 42002)
        with self.client_context.wrap_socket(data, server_hostname="other.test") as data_tls:
            data_tls.sendall(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
            self.assertIn(b"hi", harness.read_to_eof(data_tls, timeout=10))
        line = self.gw.wait_log(lambda l: l.get("mail", {}).get("protocol") == "ftp-data" and
                                l.get("client") == "127.0.0.5:42002")[0]
        self.assertTrue(line["upstream_tls"].get("resumed"), line)


if __name__ == "__main__":
    unittest.main()
