"""Interoperation with the C tools, byte-exact: a Python client (two paths)
to `mpt-cat -l`, and mpt-cat (two paths) to a Python server."""

import hashlib
import os
import re
import subprocess
import tempfile
import threading
import time
import unittest

import mpt

BUILD = os.environ.get("MPT_BUILD_DIR", "")
CAT = os.path.join(BUILD, "examples", "mpt-cat")
PATHS = ["127.0.0.1", "127.0.0.2"]


@unittest.skipUnless(os.access(CAT, os.X_OK), "needs examples/mpt-cat (MPT_BUILD_DIR)")
class TestInterop(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.procs = []
        self.addCleanup(self.kill)

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_python_client_to_mpt_cat_server(self):
        data = os.urandom(3 * 1024 * 1024 + 99)
        reply = os.urandom(100000)
        with open(self.path("reply"), "wb") as f:
            f.write(reply)
        out = open(self.path("out"), "wb")
        err = open(self.path("err"), "w+")
        fin = open(self.path("reply"), "rb")
        for f in (out, err, fin):
            self.addCleanup(f.close)
        p = subprocess.Popen([CAT, "-v", "-l", "127.0.0.1", "0"], stdin=fin, stdout=out,
                             stderr=err)
        self.procs.append(p)
        port = None
        for _ in range(200):
            err.seek(0)
            m = re.search(r"listening on \S*:(\d+)", err.read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.05)
        self.assertIsNotNone(port, "mpt-cat did not say where it listens")
        with mpt.create_connection(("127.0.0.1", port), paths=PATHS, timeout=20) as c:
            c.wait_subflows(2)
            c.sendall(data)
            c.shutdown()
            got = bytearray()
            buf = bytearray(65536)
            while True:
                n = c.recv_into(buf)
                if not n:
                    break
                got += buf[:n]
        self.assertEqual(p.wait(20), 0)
        out.close()
        with open(self.path("out"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(bytes(got), reply)

    def test_mpt_cat_client_to_python_server(self):
        data = os.urandom(2 * 1024 * 1024 + 5)
        with open(self.path("in"), "wb") as f:
            f.write(data)
        result = {}
        srv = mpt.create_server(("127.0.0.1", 0), timeout=20)

        def serve():
            try:
                conn, peer = srv.accept()
                with conn:
                    got = bytearray()
                    while True:
                        b = conn.recv(65536)
                        if not b:
                            break
                        got += b
                    result["subflows"] = conn.info().subflows_established
                    conn.sendall(bytes(got[::-1]))
                result["data"] = bytes(got)
            except BaseException as e:
                result["error"] = e
        t = threading.Thread(target=serve)
        t.start()
        with open(self.path("in"), "rb") as fin, open(self.path("out"), "wb") as fout:
            rc = subprocess.run([CAT, "--path", PATHS[0], "--path", PATHS[1], "127.0.0.1",
                                 str(srv.port)], stdin=fin, stdout=fout,
                                stderr=subprocess.PIPE, timeout=60)
        t.join(30)
        srv.close()
        self.assertEqual(rc.returncode, 0, rc.stderr)
        self.assertNotIn("error", result)
        self.assertEqual(result["data"], data)
        with open(self.path("out"), "rb") as f:
            self.assertEqual(f.read(), data[::-1])


if __name__ == "__main__":
    unittest.main()
