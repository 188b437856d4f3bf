"""The examples in bindings/python/examples, run as a user would."""

import asyncio
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import unittest

import mpt.asyncio as masyncio

EX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples")


def start(args):
    p = subprocess.Popen([sys.executable] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    m = re.match(r"listening on (\d+)", line)
    if not m:
        p.kill()
        raise AssertionError("no port: %r %s" % (line, p.stderr.read()))
    return p, int(m.group(1))


class TestExamples(unittest.TestCase):
    def test_send_and_receive_file(self):
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "in"), os.path.join(d, "out")
            with open(src, "wb") as f:
                f.write(os.urandom(5 * 1024 * 1024 + 3))
            rx, port = start([os.path.join(EX, "receive_file.py"), "--bind", "127.0.0.1", dst])
            try:
                r = subprocess.run([sys.executable, os.path.join(EX, "send_file.py"), "127.0.0.1",
                                    str(port), src, "--path", "127.0.0.1", "--path", "127.0.0.2"],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertEqual(rx.wait(30), 0, rx.stderr.read())
            finally:
                if rx.poll() is None:
                    rx.kill()
                rx.stdout.close()
                rx.stderr.close()
            with open(src, "rb") as a, open(dst, "rb") as b:
                self.assertEqual(a.read(), b.read())
            self.assertIn("receiver sha256", r.stdout)

    def test_asyncio_echo_server(self):
        srv, port = start([os.path.join(EX, "echo_server.py"), "--bind", "127.0.0.1"])
        try:
            async def client():
                r, w = await masyncio.open_connection("127.0.0.1", port,
                                                      paths=["127.0.0.1", "127.0.0.2"])
                lines = [b"line %d %s\n" % (i, b"x" * i) for i in range(300)]
                w.writelines(lines)
                w.write_eof()
                back = await r.read()
                w.close()
                await w.wait_closed()
                return back == b"".join(lines)
            self.assertTrue(asyncio.run(asyncio.wait_for(client(), 30)))
        finally:
            srv.terminate()
            srv.wait(10)
            srv.stdout.close()
            srv.stderr.close()


if __name__ == "__main__":
    unittest.main()
