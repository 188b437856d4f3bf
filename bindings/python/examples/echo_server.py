#!/usr/bin/env python3
"""An asyncio echo server over libmpt: every connection gets back what it
sends, line by line, with standard asyncio streams.

    echo_server.py [--bind ADDR]... [--port PORT]

Try it with: mpt-cat --path 127.0.0.1 --path 127.0.0.2 127.0.0.1 PORT
"""
import argparse
import asyncio

import mpt.asyncio


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except ConnectionError as e:                 # e.g. the client aborted
        print("%s: %s" % (peer, e), flush=True)
    finally:
        writer.close()
        await writer.wait_closed()


async def main() -> None:
    p = argparse.ArgumentParser(description="asyncio echo server over libmpt")
    p.add_argument("--bind", action="append")
    p.add_argument("--port", type=int, default=0)
    o = p.parse_args()
    server = await mpt.asyncio.start_server(echo, addresses=o.bind, port=o.port)
    print("listening on %d" % server.port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
