"""TLS through the Python bindings (mpt.TLSConfig, doc/python.md): a
transfer over 2 TLS subflows, byte-exact, with one full handshake and a
resumed one for the join; a client that does not trust the server's CA is
refused at once with MPT_ETLS and the certificate's verdict in the
message; a client without TLS hears the server's "TLS required". Certificates are made at
run time by tests/tls/make-certs.sh (OpenSSL)."""

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import mpt

SRC = os.environ.get("MPT_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))


@unittest.skipUnless(shutil.which("openssl"), "needs openssl")
class TestTLS(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mpt-py-tls.")
        subprocess.run(["sh", os.path.join(SRC, "tests", "tls", "make-certs.sh"), cls.dir],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.server_tls = mpt.TLSConfig(cert_file=os.path.join(cls.dir, "server.pem"),
                                       key_file=os.path.join(cls.dir, "server.key"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_transfer_over_two_tls_subflows(self):
        data = os.urandom(3 * 1024 * 1024 + 7)
        got = {}
        with mpt.create_server(("127.0.0.1", 0), timeout=30, tls=self.server_tls) as srv:
            def serve():
                conn, _ = srv.accept()
                with conn:
                    buf = bytearray()
                    while True:
                        b = conn.recv(65536)
                        if not b:
                            break
                        buf += b
                    got["digest"] = hashlib.sha256(buf).hexdigest()
                    conn.sendall(b"ok")
                    conn.shutdown()
            t = threading.Thread(target=serve, daemon=True)
            t.start()
            tls = mpt.TLSConfig(ca_file=os.path.join(self.dir, "ca.pem"),
                                server_name="mpt-test.example")
            with mpt.create_connection(("127.0.0.1", srv.port), timeout=30,
                                       paths=["127.0.0.1", "127.0.0.2"], tls=tls) as c:
                c.sendall(data)
                c.shutdown()
                self.assertEqual(c.recv(16), b"ok")
                info = c.tls_info()
            t.join(30)
        self.assertEqual(got.get("digest"), hashlib.sha256(data).hexdigest())
        self.assertEqual(info["full_handshakes"], 1)
        self.assertGreaterEqual(info["resumed_handshakes"], 1)
        self.assertNotEqual(info["suite"], "")

    def _refused(self, client_tls):
        """Connects while a thread serves the listener (a server context
        that nobody runs never answers: that is a timeout, not a refusal);
        returns the mpt.Error and how long it took."""
        with mpt.create_server(("127.0.0.1", 0), timeout=5, tls=self.server_tls) as srv:
            def serve():
                try:
                    srv.accept()
                except mpt.Error:
                    pass
            t = threading.Thread(target=serve, daemon=True)
            t.start()
            t0 = time.monotonic()
            with self.assertRaises(mpt.Error) as cm:
                mpt.create_connection(("127.0.0.1", srv.port), timeout=10, tls=client_tls)
            took = time.monotonic() - t0
            t.join(10)
        return cm.exception, took

    def test_unknown_ca_refused_with_reason(self):
        e, took = self._refused(mpt.TLSConfig(ca_file=os.path.join(self.dir, "other-ca.pem"),
                                              server_name="mpt-test.example"))
        self.assertEqual(e.name, "MPT_ETLS")
        self.assertIn("certificate", str(e))   # mbedTLS's verdict, not just a code
        self.assertLess(took, 3.0)             # refused, not timed out

    def test_plain_client_hears_tls_required(self):
        e, took = self._refused(None)
        self.assertEqual(e.name, "MPT_EPROTO")
        self.assertIn("TLS required by this server", str(e))
        self.assertLess(took, 3.0)

    def test_tls_must_be_a_tlsconfig(self):
        with self.assertRaises(TypeError):
            mpt.create_connection(("127.0.0.1", 1), tls={"ca_file": "x"})


if __name__ == "__main__":
    unittest.main()
