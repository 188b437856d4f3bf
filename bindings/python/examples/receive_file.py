#!/usr/bin/env python3
"""Receives one file over libmpt (see send_file.py) and answers with its
SHA-256.

    receive_file.py [--bind ADDR]... [--port PORT] OUTPUT

Prints "listening on PORT" once ready (port 0: any free port).
"""
import argparse
import hashlib
import sys

import mpt


def main():
    p = argparse.ArgumentParser(description="receive a file over libmpt")
    p.add_argument("output")
    p.add_argument("--bind", action="append", help="listening address (default: all)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60)
    o = p.parse_args()
    try:
        with mpt.create_server(("", o.port), addresses=o.bind, timeout=o.timeout) as srv:
            print("listening on %d" % srv.port, flush=True)
            conn, peer = srv.accept()
            digest = hashlib.sha256()
            buf = bytearray(64 * 1024)
            view = memoryview(buf)
            with conn, open(o.output, "wb") as out:
                while True:
                    n = conn.recv_into(buf)
                    if n == 0:                   # end of file
                        break
                    digest.update(view[:n])
                    out.write(view[:n])
                conn.sendall(digest.hexdigest().encode() + b"\n")
            print("received from %s: %s" % (peer, digest.hexdigest()))
    except OSError as e:
        print("receive_file: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
