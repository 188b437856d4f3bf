#!/usr/bin/env python3
"""Sends a file over libmpt, using several local paths at once.

    send_file.py HOST PORT FILE [--path ADDR_OR_IFACE]...

Prints the SHA-256 the receiver computed (it must equal the file's) and
how many bytes went over each subflow. Exit status 0 only if they match.
"""
import argparse
import hashlib
import sys

import mpt


def main():
    p = argparse.ArgumentParser(description="send a file over libmpt")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("file")
    p.add_argument("--path", action="append", help="local path (source address or interface)")
    p.add_argument("--timeout", type=float, default=30)
    o = p.parse_args()
    digest = hashlib.sha256()
    try:
        with mpt.create_connection((o.host, o.port), paths=o.path, timeout=o.timeout) as conn, \
                open(o.file, "rb") as f:
            while True:
                chunk = f.read(256 * 1024)
                if not chunk:
                    break
                digest.update(chunk)
                conn.sendall(chunk)
            conn.shutdown()                      # the receiver reads end of file
            answer = conn.makefile("r", encoding="ascii").readline().strip()
            for sf in conn.subflows():
                print("subflow %d %s -> %s: %d bytes" % (sf.id, sf.local, sf.remote,
                                                         sf.bytes_sent))
    except OSError as e:                         # mpt.Error is an OSError
        print("send_file: %s:%d: %s" % (o.host, o.port, e), file=sys.stderr)
        return 1
    print("receiver sha256 %s" % answer)
    if answer != digest.hexdigest():
        print("send_file: MISMATCH (sent %s)" % digest.hexdigest(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
