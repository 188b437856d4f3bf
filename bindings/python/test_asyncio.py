"""unittest tests of mpt.asyncio (open_connection, start_server) on loopback."""

import asyncio
import errno
import hashlib
import os
import socket
import time
import unittest

import mpt
import mpt.asyncio as masyncio

PATHS = ["127.0.0.1", "127.0.0.2"]


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


class TestAsyncio(unittest.TestCase):
    def test_standard_streams_two_subflows_byte_exact(self):
        data = os.urandom(6 * 1024 * 1024 + 777)

        async def main():
            srv = await masyncio.start_server(echo, "127.0.0.1", 0)
            async with srv:
                reader, writer = await masyncio.open_connection("127.0.0.1", srv.port,
                                                                paths=PATHS)
                self.assertIsInstance(reader, asyncio.StreamReader)
                self.assertIsInstance(writer, asyncio.StreamWriter)
                t = writer.transport
                self.assertEqual(await asyncio.wait_for(t.wait_subflows(2), 10), 2)
                self.assertEqual(writer.get_extra_info("peername"), ("127.0.0.1", srv.port))

                async def send():
                    for off in range(0, len(data), 100000):
                        writer.write(data[off:off + 100000])
                        await writer.drain()
                    writer.write_eof()
                sender = asyncio.ensure_future(send())
                h = hashlib.sha256()
                n = 0
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    h.update(chunk)
                    n += len(chunk)
                await sender
                self.assertEqual(n, len(data))
                self.assertEqual(h.digest(), hashlib.sha256(data).digest())
                est = [s for s in t.subflows() if s.state == "established"]
                self.assertEqual(len(est), 2)
                self.assertTrue(all(s.bytes_sent > 0 for s in est), est)
                self.assertIn("up", [e.kind for e in t.subflow_events()])
                self.assertEqual(t.info().bytes_received, len(data))
                writer.close()
                await writer.wait_closed()

        run(main())
        self.assertEqual(masyncio._drivers, {})  # the context was freed

    def test_200_concurrent_connections(self):
        # 400 connection ends and 800 subflows on one Python thread: on a
        # loaded machine (make -j2 distcheck beside other builds) a pass can
        # take longer than the 2 s subflow_timeout, which ends connections
        # with MPT_ENOPATH; the test is about the bindings, not that.
        CFG = mpt.Config(subflow_timeout_ms=15000)
        async def one(port, i):
            reader, writer = await masyncio.open_connection("127.0.0.1", port, paths=PATHS,
                                                            config=CFG)
            msg = (b"%d:" % i) * (100 + i)
            writer.write(msg)
            writer.write_eof()
            back = await reader.read()
            writer.close()
            await writer.wait_closed()
            return back == msg

        server_errors = []
        served = []

        async def checked_echo(reader, writer):
            try:
                await echo(reader, writer)  # ends with a graceful close on both sides
                served.append(1)
            except Exception as e:
                server_errors.append(e)

        async def main():
            srv = await masyncio.start_server(checked_echo, "127.0.0.1", 0, config=CFG)
            self.assertIs(srv._d, masyncio._driver(CFG))  # one context for all 400 ends
            async with srv:
                t0 = time.monotonic()
                ok = await asyncio.gather(*[one(srv.port, i) for i in range(200)])
                for _ in range(100):
                    if len(served) + len(server_errors) >= 200:
                        break
                    await asyncio.sleep(0.05)
                return ok, time.monotonic() - t0

        ok, dt = run(main(), 120)
        self.assertEqual(ok.count(True), 200)
        self.assertEqual(server_errors, [])
        self.assertEqual(len(served), 200)

    def test_errors_and_timeouts(self):
        async def main():
            with self.assertRaises(ConnectionRefusedError) as cm:
                await masyncio.open_connection("127.0.0.1", closed_port())
            self.assertIsInstance(cm.exception, mpt.Error)
            self.assertEqual(cm.exception.errno, errno.ECONNREFUSED)

            async def silent(reader, writer):
                try:
                    await reader.read()  # until the client aborts
                except ConnectionError:
                    pass
            srv = await masyncio.start_server(silent, "127.0.0.1", 0)
            async with srv:
                reader, writer = await masyncio.open_connection("127.0.0.1", srv.port)
                t0 = time.monotonic()
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(reader.read(10), 0.3)
                self.assertLess(time.monotonic() - t0, 2)
                writer.transport.abort()
            # A connect that cannot finish (the handshake is never answered)
            # is cancelled by wait_for and aborted.
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            try:
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(
                        masyncio.open_connection("127.0.0.1", s.getsockname()[1]), 0.3)
            finally:
                s.close()

        run(main())

    def test_peer_abort_reaches_reader(self):
        async def rude(reader, writer):
            await reader.read(1)
            writer.transport.abort()

        async def main():
            srv = await masyncio.start_server(rude, "127.0.0.1", 0)
            async with srv:
                reader, writer = await masyncio.open_connection("127.0.0.1", srv.port)
                writer.write(b"x")
                with self.assertRaises(ConnectionResetError):
                    await reader.read()
                writer.close()

        run(main())

    def test_protocol_level_create_connection(self):
        async def main():
            srv = await masyncio.start_server(echo, "127.0.0.1", 0)
            loop = asyncio.get_running_loop()
            done = loop.create_future()

            class P(asyncio.Protocol):
                buf = b""

                def connection_made(self, transport):
                    transport.write(b"abc")
                    transport.write_eof()

                def data_received(self, data):
                    self.buf += data

                def eof_received(self):
                    done.set_result(self.buf)

            t, p = await masyncio.create_connection(P, "127.0.0.1", srv.port)
            self.assertEqual(await done, b"abc")
            t.close()
            srv.close()
            await srv.wait_closed()

        run(main())


if __name__ == "__main__":
    unittest.main()
