#!/usr/bin/env python3
"""The Python contenders of the python-loopback benchmark: mpt-bench's
transfer (tests/bench/mpt-bench.c) through the Python bindings, with the
same command line subset and output line, so that tests/bench/lib.sh runs
it like the C tool.

  mpt-bench.py [--asyncio] server [--bind ADDR]... --port P [--expect N] [--send N]
  mpt-bench.py [--asyncio] client --host ADDR --port P [--path ADDR]... [--send N]
  (--timeout SEC, --sched NAME)

The sender writes a pattern (a 1 MiB random block, repeated) in 256 KiB
sendall()s; the receiver reads with recv_into() into one 64 KiB buffer
(asyncio: StreamReader.read(65536)) and compares every chunk with the
pattern (memcmp), so the check costs what the C tool's does. Output:
  role=R bytes=N seconds=S gbps=G cpu_s=C subflows=K ... verify=ok|FAIL
"""

import argparse
import asyncio
import ctypes
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "bindings", "python"))
import mpt  # noqa: E402
import mpt.asyncio as masyncio  # noqa: E402

PERIOD = 1 << 20
SEND_CHUNK = 256 * 1024
RECV_BUF = 64 * 1024
_rnd = random.Random(4242)
PATTERN = bytearray(_rnd.getrandbits(8 * PERIOD).to_bytes(PERIOD, "little")) * 2
_pat_c = (ctypes.c_char * len(PATTERN)).from_buffer(PATTERN)
PAT = ctypes.addressof(_pat_c)
_libc = ctypes.CDLL(None)
memcmp = _libc.memcmp
memcmp.restype = ctypes.c_int
memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
VIEW = memoryview(PATTERN)


def cpu():
    t = os.times()
    return t.user + t.system


def report(role, nbytes, secs, cpu_s, subflows, extra=""):
    print("role=%s bytes=%d seconds=%.6f gbps=%.6f cpu_s=%.4f subflows=%d%s"
          % (role, nbytes, secs, nbytes * 8 / secs / 1e9 if secs > 0 else 0.0, cpu_s,
             subflows, extra), flush=True)


def blocking_send(conn, n, role):
    t0, c0, off = time.monotonic(), cpu(), 0
    sub = 0
    while off < n:
        k = min(SEND_CHUNK, n - off)
        o = off % PERIOD
        conn.sendall(VIEW[o:o + k])
        off += k
        if sub < 2:
            sub = max(sub, conn.info().subflows_established)
    sub = max(sub, conn.info().subflows_established)
    conn.close()  # waits until the peer has everything and has closed
    report(role, off, time.monotonic() - t0, cpu() - c0, sub, " completed=1")


def blocking_recv(conn, expect, role):
    buf = bytearray(RECV_BUF)
    addr = ctypes.addressof((ctypes.c_char * RECV_BUF).from_buffer(buf))
    t0, c0, got, ok, sub = time.monotonic(), cpu(), 0, True, 0
    t_last = t0
    while True:
        n = conn.recv_into(buf)
        if n == 0:
            break
        if memcmp(addr, PAT + got % PERIOD, n) != 0:
            ok = False
        got += n
        t_last = time.monotonic()
        if sub < 2 and got & 0xfffff < n:
            sub = max(sub, conn.info().subflows_established)
    cpu_s = cpu() - c0
    sub = max(sub, conn.info().subflows_established)
    conn.close()
    verify = "ok" if ok and (expect is None or got == expect) else "FAIL"
    report(role, got, t_last - t0, cpu_s, sub, " completed=1 lost_bytes=%d verify=%s"
           % ((expect or got) - got, verify))
    return verify == "ok"


def run_blocking(o):
    cfg = mpt.Config(scheduler=o.sched)
    if o.role == "server":
        srv = mpt.create_server((o.bind[0] if o.bind else "", o.port),
                                addresses=o.bind or None, config=cfg, timeout=o.timeout)
        print("listening", flush=True)
        conn, _ = srv.accept()
        try:
            if o.send:
                blocking_send(conn, o.send, "server")
                return True
            return blocking_recv(conn, o.expect, "server")
        finally:
            srv.close()
    conn = mpt.create_connection((o.host, o.port), paths=o.path or None, config=cfg,
                                 timeout=o.timeout)
    if o.send:
        blocking_send(conn, o.send, "client")
        return True
    return blocking_recv(conn, o.expect, "client")


async def async_send(reader, writer, n, role):
    t0, c0, off = time.monotonic(), cpu(), 0
    while off < n:
        k = min(SEND_CHUNK, n - off)
        o = off % PERIOD
        writer.write(VIEW[o:o + k])
        off += k
        await writer.drain()
    writer.write_eof()
    sub = writer.transport.info().subflows_established
    await reader.read()  # the peer's end of stream: it has everything
    writer.close()
    await writer.wait_closed()
    report(role, off, time.monotonic() - t0, cpu() - c0, sub, " completed=1")


async def async_recv(reader, writer, expect, role):
    t0, c0, got, ok, sub = time.monotonic(), cpu(), 0, True, 0
    t_last = t0
    while True:
        b = await reader.read(RECV_BUF)
        if not b:
            break
        n = len(b)
        if memcmp(b, PAT + got % PERIOD, n) != 0:
            ok = False
        got += n
        t_last = time.monotonic()
        if sub < 2 and got & 0xfffff < n:
            sub = max(sub, writer.transport.info().subflows_established)
    cpu_s = cpu() - c0
    writer.close()
    await writer.wait_closed()
    verify = "ok" if ok and (expect is None or got == expect) else "FAIL"
    report(role, got, t_last - t0, cpu_s, sub, " completed=1 lost_bytes=%d verify=%s"
           % ((expect or got) - got, verify))
    return verify == "ok"


async def run_async(o):
    cfg = mpt.Config(scheduler=o.sched) if o.sched else None
    if o.role == "server":
        done = asyncio.get_running_loop().create_future()

        async def handle(reader, writer):
            try:
                if o.send:
                    await async_send(reader, writer, o.send, "server")
                    done.set_result(True)
                else:
                    done.set_result(await async_recv(reader, writer, o.expect, "server"))
            except BaseException as e:
                done.set_exception(e)
        srv = await masyncio.start_server(handle, addresses=o.bind or None, port=o.port,
                                          config=cfg)
        print("listening", flush=True)
        try:
            return await done
        finally:
            srv.close()
    reader, writer = await masyncio.open_connection(o.host, o.port, paths=o.path or None,
                                                    config=cfg)
    if o.send:
        await async_send(reader, writer, o.send, "client")
        return True
    return await async_recv(reader, writer, o.expect, "client")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--asyncio", action="store_true")
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--bind", action="append", default=[])
    p.add_argument("--host")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", action="append", default=[])
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--expect", type=int)
    p.add_argument("--sched")
    p.add_argument("--timeout", type=float, default=300)
    o = p.parse_args()
    try:
        if o.asyncio:
            ok = asyncio.run(asyncio.wait_for(run_async(o), o.timeout))
        else:
            ok = run_blocking(o)
    except (OSError, asyncio.TimeoutError) as e:
        print("mpt-bench.py: %s: %s" % (o.role, e), file=sys.stderr)
        return 3
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
