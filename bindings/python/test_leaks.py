"""No reference or memory growth over 1,000 connect/close cycles (blocking
API, one new context per client connection) and 1,000 asyncio
connections: Python objects (gc), Python allocations (tracemalloc) and the
process's resident memory (which sees libmpt's C allocations too)."""

import asyncio
import gc
import os
import socket
import threading
import tracemalloc
import unittest

import mpt
import mpt.asyncio as masyncio

CYCLES = int(os.environ.get("MPT_LEAK_CYCLES", "1000"))


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


class TestLeaks(unittest.TestCase):
    def measure(self, cycle, warmup=100):
        for i in range(warmup):
            cycle(i)
        gc.collect()
        tracemalloc.start()
        objs0, rss0 = len(gc.get_objects()), rss_kib()
        snap0 = tracemalloc.take_snapshot()
        for i in range(CYCLES):
            cycle(i)
        gc.collect()
        snap1 = tracemalloc.take_snapshot()
        objs1, rss1 = len(gc.get_objects()), rss_kib()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
        return objs1 - objs0, grown, rss1 - rss0

    def test_blocking_connect_close_cycles(self):
        srv = mpt.create_server(("127.0.0.1", 0), timeout=30)
        stop = threading.Event()
        errors = []

        def serve():
            try:
                for _ in range(CYCLES + 100):
                    conn, _ = srv.accept()
                    with conn:
                        buf = bytearray(4096)
                        while conn.recv_into(buf):
                            pass
                        conn.sendall(b"bye")
            except BaseException as e:
                errors.append(e)
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        payload = b"x" * 3000

        def cycle(i):
            with mpt.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)
                self.assertEqual(c.recv(10), b"bye")
        try:
            dobj, dmem, drss = self.measure(cycle)
        finally:
            t.join(30)
            srv.close()
        self.assertEqual(errors, [])
        print("\nblocking %d cycles: objects %+d, tracemalloc %+d B, RSS %+d KiB"
              % (CYCLES, dobj, dmem, drss), end=" ", flush=True)
        # A leaked Connection, Context or buffer per cycle would be >= 1000
        # objects, >= 100 KB traced, and (a context, C side) megabytes.
        self.assertLess(dobj, 300, "Python objects grew by %d" % dobj)
        self.assertLess(dmem, 100 * 1024, "tracemalloc: +%d bytes" % dmem)
        self.assertLess(drss, 6 * 1024, "RSS grew by %d KiB" % drss)
        self.assertEqual(srv.context._socks if not srv.context.closed else {}, {})

    def test_asyncio_connection_cycles(self):
        async def echo(reader, writer):
            writer.write(await reader.read())
            writer.close()

        async def main():
            srv = await masyncio.start_server(echo, "127.0.0.1", 0)

            async def one(i):
                r, w = await masyncio.open_connection("127.0.0.1", srv.port)
                w.write(b"hello %d" % i)
                w.write_eof()
                self.assertEqual(await r.read(), b"hello %d" % i)
                w.close()
                await w.wait_closed()

            for i in range(50):
                await one(i)
            gc.collect()
            tracemalloc.start()
            objs0, rss0 = len(gc.get_objects()), rss_kib()
            snap0 = tracemalloc.take_snapshot()
            for i in range(CYCLES):
                await one(i)
            gc.collect()
            snap1 = tracemalloc.take_snapshot()
            objs1, rss1 = len(gc.get_objects()), rss_kib()
            tracemalloc.stop()
            d = srv._d
            handles = len(d.handles)
            srv.close()
            await srv.wait_closed()
            return (objs1 - objs0, sum(s.size_diff for s in snap1.compare_to(snap0, "filename")),
                    rss1 - rss0, handles)

        dobj, dmem, drss, handles = asyncio.run(asyncio.wait_for(main(), 300))
        print("\nasyncio %d cycles: objects %+d, tracemalloc %+d B, RSS %+d KiB"
              % (CYCLES, dobj, dmem, drss), end=" ", flush=True)
        self.assertEqual(handles, 1)  # only the listener was still registered
        self.assertLess(dobj, 300, "Python objects grew by %d" % dobj)
        self.assertLess(dmem, 100 * 1024, "tracemalloc: +%d bytes" % dmem)
        self.assertLess(drss, 6 * 1024, "RSS grew by %d KiB" % drss)


if __name__ == "__main__":
    unittest.main()
