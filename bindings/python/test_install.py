"""`pip install ./bindings/python` works offline (--no-index, pip's build
isolation with nothing installed) into a fresh venv, with this interpreter
and with the system's /usr/bin/python3 (Debian's pip) when it is another
one, and the installed package runs a loopback transfer against libmpt.
Also: the package version is libmpt's (configure.ac)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("MPT_SRCDIR") or os.path.join(HERE, "..", "..")

SCRIPT = r"""
import os, sys, threading, mpt, mpt.asyncio
assert mpt.__file__.startswith(sys.prefix), mpt.__file__
data = os.urandom(300000)
srv = mpt.create_server(("127.0.0.1", 0), timeout=10)
got = []
def serve():
    c, _ = srv.accept()
    with c:
        buf = bytearray()
        while True:
            b = c.recv(65536)
            if not b:
                break
            buf += b
        got.append(bytes(buf))
t = threading.Thread(target=serve); t.start()
with mpt.create_connection(("127.0.0.1", srv.port), paths=["127.0.0.1", "127.0.0.2"], timeout=10) as c:
    c.sendall(data)
    c.shutdown()
    assert c.recv(1) == b""
t.join(); srv.close()
assert got == [data]
print("ok", mpt.version())
"""


def interpreters():
    seen, out = set(), []
    for py in (sys.executable, "/usr/bin/python3"):
        if py and os.path.exists(py):
            real = os.path.realpath(py)
            if real not in seen:
                seen.add(real)
                out.append(py)
    return out


def has_venv_pip(py):
    r = subprocess.run([py, "-c", "import venv, ensurepip"], capture_output=True)
    return r.returncode == 0


class TestInstall(unittest.TestCase):
    def test_version_matches_configure(self):
        with open(os.path.join(HERE, "pyproject.toml")) as f:
            v = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
        ac = os.path.join(SRCDIR, "configure.ac")
        if not os.path.exists(ac):
            self.skipTest("no configure.ac")
        with open(ac) as f:
            self.assertEqual(v, re.search(r"AC_INIT\(\[libmpt\], \[([^\]]+)\]", f.read()).group(1),
                             "bindings/python/pyproject.toml version differs from configure.ac")

    def test_pip_install_into_venv(self):
        lib = os.environ.get("MPT_LIBRARY")
        if not lib:
            self.skipTest("MPT_LIBRARY not set")
        tried = 0
        for py in interpreters():
            if not has_venv_pip(py):
                continue
            tried += 1
            with self.subTest(python=py), tempfile.TemporaryDirectory() as d:
                # A copy: pip must not need to write into the (maybe read-only) source.
                src = os.path.join(d, "src")
                shutil.copytree(HERE, src, ignore=shutil.ignore_patterns(
                    "__pycache__", "_install.py", "*.pyc"))
                venv = os.path.join(d, "venv")
                subprocess.run([py, "-m", "venv", venv], check=True, capture_output=True)
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                env["PIP_NO_INDEX"] = "1"
                env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
                r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--no-index", src],
                                   capture_output=True, text=True, env=env, timeout=300)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                env["MPT_LIBRARY"] = lib
                r = subprocess.run([os.path.join(venv, "bin", "python"), "-c", SCRIPT], cwd=d,
                                   capture_output=True, text=True, env=env, timeout=120)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertTrue(r.stdout.startswith("ok "), r.stdout)
        if not tried:
            self.skipTest("no interpreter with venv and ensurepip (apt-get install python3-venv)")


if __name__ == "__main__":
    unittest.main()
