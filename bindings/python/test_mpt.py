"""unittest tests for the libmpt Python bindings, on loopback only.

Run: MPT_LIBRARY=/path/to/libmpt.so PYTHONPATH=bindings/python \
     python3 -m unittest -v test_mpt

Every server runs in its own thread with its own mpt.Context (one context
per thread; contexts are never shared between threads).
"""

import hashlib
import os
import socket
import threading
import time
import unittest

import mpt

PATHS = ["127.0.0.1", "127.0.0.2"]
SIZE = 4 * 1024 * 1024 + 12345  # a few MiB, deliberately not a round number


def recv_all(conn, timeout=20.0):
    chunks = []
    while True:
        data = conn.recv(256 * 1024, timeout=timeout)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class Server(threading.Thread):
    """Runs handler(conn) on the first accepted connection, in its own
    thread and context. Exceptions are kept for the test to re-raise."""

    def __init__(self, handler, config=None):
        super().__init__(daemon=True)
        self.handler = handler
        self.config = config
        self.ready = threading.Event()
        self.port = None
        self.error = None
        self.result = None

    def run(self):
        try:
            with mpt.Context(self.config) as ctx:
                listener = ctx.listen(["127.0.0.1"], 0)
                self.port = listener.port
                self.ready.set()
                conn = listener.accept(timeout=10.0)
                self.result = self.handler(ctx, conn)
                listener.close()
        except BaseException as e:  # reported by finish()
            self.error = e
        finally:
            self.ready.set()

    def start_and_wait(self):
        self.start()
        if not self.ready.wait(10.0) or self.port is None:
            self.join(1.0)
            raise AssertionError("server did not start: %r" % (self.error,))
        return self.port

    def finish(self, timeout=30.0):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("server thread did not finish")
        if self.error is not None:
            raise self.error
        return self.result


class TestBasics(unittest.TestCase):
    def test_version(self):
        v = mpt.version()
        self.assertRegex(v, r"^\d+\.\d+")

    def test_error_object(self):
        e = mpt.Error(mpt.lib.MPT_ETIMEDOUT)
        self.assertEqual(e.code, -19)
        self.assertEqual(e.name, "MPT_ETIMEDOUT")
        self.assertEqual(e.strerror, "operation timed out")
        self.assertIn("operation timed out", str(e))

    def test_state_names(self):
        self.assertEqual(mpt.STATE_NAMES[mpt.lib.MPT_STATE_ESTABLISHED], "established")
        self.assertEqual(mpt.STATE_NAMES[mpt.lib.MPT_STATE_ABORTED], "aborted")
        self.assertEqual(mpt.SUBFLOW_STATE_NAMES[mpt.lib.MPT_SUBFLOW_FAILED], "failed")
        self.assertEqual(len(set(mpt.STATE_NAMES.values())), 5)
        self.assertEqual(len(set(mpt.SUBFLOW_STATE_NAMES.values())), 6)

    def test_ack_timeout_config(self):
        with mpt.Context({"ack_timeout_ms": 30000}) as ctx:
            self.assertFalse(ctx.closed)
        # The bindings' struct is the library's current layout, not 0.1.0's.
        self.assertGreater(mpt.ffi.offsetof("struct mpt_config", "ack_timeout_ms"),
                           mpt.ffi.offsetof("struct mpt_config", "advertise_addresses") + 4)
        with self.assertRaises(ValueError):
            mpt.Context({"reserved0": 1})

    def test_bad_config_field(self):
        with self.assertRaises(ValueError):
            mpt.Context({"no_such_field": 1})

    def test_unknown_scheduler_is_error(self):
        with self.assertRaises(mpt.Error) as cm:
            mpt.Context({"scheduler": "no-such-scheduler"})
        self.assertEqual(cm.exception.name, "MPT_ENOTFOUND")

    def test_listener_port(self):
        with mpt.Context() as ctx:
            listener = ctx.listen(["127.0.0.1", "127.0.0.2"], 0)
            self.assertGreater(listener.port, 0)
            self.assertLess(listener.port, 65536)
            listener.close()
            self.assertTrue(listener.closed)

    def test_listen_bad_address(self):
        with mpt.Context() as ctx:
            with self.assertRaises(mpt.Error) as cm:
                ctx.listen(["not-an-address"], 0)
            self.assertEqual(cm.exception.name, "MPT_ERESOLVE")


class TestErrors(unittest.TestCase):
    def closed_port(self):
        # Bind a plain TCP socket to get a free port, then close it.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def test_connect_refused(self):
        port = self.closed_port()
        with mpt.Context() as ctx:
            with self.assertRaises(mpt.Error) as cm:
                ctx.connect("127.0.0.1", port, paths=PATHS, timeout=5.0)
        e = cm.exception
        self.assertEqual(e.name, "MPT_ECONNREFUSED")  # the cause, not MPT_ESYS
        self.assertEqual(e.code, mpt.lib.MPT_ECONNREFUSED)
        self.assertEqual(e.strerror, mpt.ffi.string(mpt.lib.mpt_strerror(e.code)).decode())
        self.assertIn(e.strerror, str(e))

    def test_info_has_the_errno(self):
        def handler(ctx, conn):
            conn.close(timeout=5.0)

        server = Server(handler)
        port = server.start_and_wait()
        with mpt.Context() as ctx:
            conn = ctx.connect("127.0.0.1", port, timeout=5.0)
            info = conn.info()
            self.assertEqual(info["error"], 0)
            self.assertEqual(info["sys_errno"], 0)
            # The hand copy of struct mpt_info is the library's: asked with a
            # larger size, the library says how much it filled.
            buf = mpt.ffi.new("char[]", 4096)
            big = mpt.ffi.cast("struct mpt_info *", buf)
            big.size = 4096
            self.assertEqual(mpt.lib.mpt_get_info(conn._ptr, big), 0)
            self.assertEqual(big.size, mpt.ffi.sizeof("struct mpt_info"))
            for sf in conn.subflows():
                self.assertEqual(sf["sys_errno"], 0)
            conn.close(timeout=5.0)
        server.finish()

    def test_bad_paths_are_refused(self):
        with mpt.Context() as ctx:
            listener = ctx.listen(["127.0.0.1"], 0)
            with self.assertRaises(mpt.Error) as cm:
                ctx.connect("127.0.0.1", listener.port, paths=["eht0"], timeout=2.0)
            self.assertEqual(cm.exception.name, "MPT_ENODEV")
            with self.assertRaises(mpt.Error) as cm:
                ctx.connect("127.0.0.1", listener.port, paths=["192.0.2.7"], timeout=2.0)
            self.assertEqual(cm.exception.name, "MPT_EADDRNOTAVAIL")
            listener.close()

    def test_listen_port_in_use(self):
        with mpt.Context() as ctx:
            listener = ctx.listen(["127.0.0.1"], 0)
            with self.assertRaises(mpt.Error) as cm:
                ctx.listen(["127.0.0.1"], listener.port)
            self.assertEqual(cm.exception.name, "MPT_EADDRINUSE")
            self.assertEqual(cm.exception.strerror, "address already in use")
            listener.close()

    def test_error_codes_match_the_library(self):
        # The hand copy of the enum in mpt/__init__.py against the library's names.
        for name in dir(mpt.lib):
            if name.startswith("MPT_E"):
                code = getattr(mpt.lib, name)
                self.assertEqual(mpt.ffi.string(mpt.lib.mpt_err_name(code)).decode(), name)
        # ... and every code the library knows is declared here.
        code = -1
        while True:
            name = mpt.ffi.string(mpt.lib.mpt_err_name(code)).decode()
            if name == "MPT_E(unknown)":
                break
            self.assertEqual(getattr(mpt.lib, name, None), code, name)
            code -= 1
        self.assertLess(code, -39)

    def test_connect_port_zero_is_einval(self):
        with mpt.Context() as ctx:
            with self.assertRaises(mpt.Error) as cm:
                ctx.connect("127.0.0.1", 0, timeout=1.0)
        self.assertEqual(cm.exception.name, "MPT_EINVAL")
        self.assertEqual(cm.exception.code, mpt.lib.MPT_EINVAL)

    def test_recv_timeout(self):
        done = threading.Event()

        def handler(ctx, conn):
            # Send nothing until the client has seen its timeout.
            while not done.is_set():
                ctx.run(0.05)
            conn.close(timeout=5.0)

        server = Server(handler)
        port = server.start_and_wait()
        try:
            with mpt.Context() as ctx:
                conn = ctx.connect("127.0.0.1", port, timeout=5.0)
                t0 = time.monotonic()
                with self.assertRaises(mpt.Error) as cm:
                    conn.recv(100, timeout=0.3)
                elapsed = time.monotonic() - t0
                self.assertEqual(cm.exception.name, "MPT_ETIMEDOUT")
                self.assertEqual(cm.exception.code, mpt.lib.MPT_ETIMEDOUT)
                self.assertGreaterEqual(elapsed, 0.25)
                self.assertLess(elapsed, 5.0)
                # The connection is still usable after a timeout.
                self.assertEqual(conn.info()["state"], "established")
                done.set()
                self.assertEqual(conn.recv(100, timeout=10.0), b"")  # server's EOF
                conn.close(timeout=5.0)
        finally:
            done.set()
            server.finish()

    def test_closed_handle(self):
        with mpt.Context() as ctx:
            listener = ctx.listen(["127.0.0.1"])
        # Context closed: its handles are invalid.
        with self.assertRaises(ValueError):
            listener.port


class TestTransfer(unittest.TestCase):
    def test_two_paths_both_directions(self):
        up = os.urandom(SIZE)
        down = os.urandom(SIZE - 777)
        config = {"scheduler": "roundrobin"}

        def handler(ctx, conn):
            conn.set_cc("balia")  # the server chooses per connection
            got = recv_all(conn)
            conn.sendall(down, timeout=20.0)
            subflows = conn.subflows()
            info = conn.info()
            conn.close(timeout=20.0)
            return got, subflows, info

        server = Server(handler, config)
        port = server.start_and_wait()
        with mpt.Context(config) as ctx:
            conn = ctx.connect("127.0.0.1", port, paths=PATHS, timeout=5.0)
            # Let the second path join before the data flows.
            deadline = time.monotonic() + 5.0
            while (conn.info()["subflows_established"] < 2
                   and time.monotonic() < deadline):
                ctx.run(0.02)
            # Switched while connected, halfway through the data.
            conn.sendall(up[:SIZE // 2], timeout=20.0)
            conn.set_scheduler("blest")
            conn.set_cc("olia")
            with self.assertRaises(mpt.Error):
                conn.set_cc("no-such-cc")
            conn.sendall(up[SIZE // 2:], timeout=20.0)
            conn.shutdown()
            back = recv_all(conn)
            # Everything we sent (and our end of stream) gets acknowledged.
            deadline = time.monotonic() + 5.0
            while conn.info()["unacked_bytes"] > 0 and time.monotonic() < deadline:
                ctx.run(0.02)
            info = conn.info()
            subflows = conn.subflows()
            conn.close(timeout=20.0)
        got, srv_subflows, srv_info = server.finish()

        self.assertEqual((info["scheduler"], info["congestion"]), ("blest", "olia"))
        self.assertEqual((srv_info["scheduler"], srv_info["congestion"]),
                         ("roundrobin", "balia"))
        # Byte-exact in both directions.
        self.assertEqual(len(got), len(up))
        self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(up).digest())
        self.assertEqual(len(back), len(down))
        self.assertEqual(hashlib.sha256(back).digest(), hashlib.sha256(down).digest())

        # Totals.
        self.assertEqual(info["unacked_bytes"], 0)  # everything sent was acknowledged
        self.assertEqual(info["subflows_opened"], 2)
        self.assertEqual(info["subflows_failed"], 0)
        self.assertEqual(info["subflows"], 2)
        self.assertEqual(info["subflows_established"], 2)
        self.assertEqual(info["bytes_received"], len(down))
        self.assertGreaterEqual(info["bytes_sent"], len(up))
        self.assertEqual(srv_info["bytes_received"], len(up))

        # Two subflows on each side, from the two client paths.
        self.assertEqual(len(subflows), 2)
        self.assertEqual(sorted(sf["local"][0] for sf in subflows), PATHS)
        for sf in subflows:
            self.assertEqual(sf["state"], "established")
            self.assertEqual(sf["remote"], ("127.0.0.1", port))
            self.assertEqual(sf["failures"], 0)
            self.assertEqual(sf["retry_ms"], -1)
            self.assertGreater(sf["bytes_sent"], 0, "path %s carried no data" % (sf["local"],))
        self.assertEqual(sorted(sf["path_id"] for sf in subflows), [0, 1])
        self.assertEqual(len(srv_subflows), 2)
        self.assertEqual(sorted(sf["remote"][0] for sf in srv_subflows), PATHS)
        self.assertEqual(sorted(sf["id"] for sf in srv_subflows), [1, 2])  # stable ids
        self.assertGreaterEqual(sum(sf["bytes_received"] for sf in srv_subflows), len(up))
        for sf in srv_subflows:
            self.assertGreater(sf["bytes_received"], 0)
        for sf in srv_subflows:
            self.assertEqual(sf["local"], ("127.0.0.1", port))
            self.assertEqual(sf["path_id"], -1)

    def test_context_manager_and_memoryview(self):
        payload = bytearray(b"hello multipath " * 1000)

        def handler(ctx, conn):
            data = recv_all(conn)
            conn.sendall(memoryview(data)[::-1].tobytes())
            conn.close(timeout=10.0)

        server = Server(handler)
        port = server.start_and_wait()
        with mpt.Context() as ctx:
            with ctx.connect("127.0.0.1", port, timeout=5.0) as conn:
                conn.sendall(memoryview(payload))
                conn.shutdown()
                back = recv_all(conn)
            self.assertTrue(conn.closed)
        self.assertTrue(ctx.closed)
        server.finish()
        self.assertEqual(back, bytes(payload[::-1]))

    def test_concurrent_use_of_one_context_is_refused(self):
        with mpt.Context() as ctx:
            listener = ctx.listen(["127.0.0.1"])
            errors = []
            t = threading.Thread(target=lambda: errors.append(
                self._try(lambda: listener.accept(timeout=1.0))))
            t.start()
            time.sleep(0.2)
            with self.assertRaises(RuntimeError):
                listener.port
            t.join()
            self.assertIsInstance(errors[0], mpt.Error)  # the accept timed out

    @staticmethod
    def _try(fn):
        try:
            fn()
        except Exception as e:
            return e
        return None


if __name__ == "__main__":
    unittest.main()
