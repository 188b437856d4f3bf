#!/usr/bin/env python3
"""Hostile mpt-copy sender streams, written from the protocol in
doc/man/mpt-copy.1 (PROTOCOL). `copy-evil.py KIND OUT` writes the frames of
one attack to OUT; tests/test-copy.sh has mpt-copy send them verbatim
(MPT_COPY_TEST_STREAM) and checks that the receiver refuses them.

KIND: dotdot, absolute, inner-dotdot, empty-part, link-absolute,
link-climbs, checksum (a file whose announced SHA-256 is wrong),
bad-magic (not an mpt-copy sender), huge-frame (a 2 GiB length), good (a
well-formed one-file stream, to show the generator itself is right).
"""
import hashlib
import struct
import sys


def frame(t, payload=b""):
    return t.encode() + struct.pack(">I", len(payload)) + payload


def string(b):
    return struct.pack(">H", len(b)) + b


def entry(i, kind, name, size=0, target=None, mode=0o644):
    p = struct.pack(">IBIqIQ", i, kind, mode, 1700000000, 0, size) + string(name)
    if target is not None:
        p += string(target)
    return frame("E", p)


def stream(entries, files):
    """entries: E frames; files: [(id, data, sha)] sent after the manifest."""
    out = frame("H", b"MPTCOPY" + bytes([1]) + struct.pack(">I", 0))
    out += b"".join(entries)
    total = sum(len(d) for _, d, _ in files)
    out += frame("M", struct.pack(">IQ", len(entries), total))
    for i, data, sha in files:
        out += frame("S", struct.pack(">IQ", i, 0))
        out += frame("D", data)
        out += frame("F", struct.pack(">I", i) + sha)
    return out + frame("Z")


def one_file(name, data=b"owned\n", sha=None):
    return stream([entry(0, 1, name, len(data))],
                  [(0, data, sha or hashlib.sha256(data).digest())])


def main():
    kind, path = sys.argv[1], sys.argv[2]
    if kind == "dotdot":
        s = one_file(b"../evil")
    elif kind == "absolute":
        s = one_file(b"/tmp/mpt-copy-evil-absolute")
    elif kind == "inner-dotdot":
        s = stream([entry(0, 2, b"a", mode=0o755), entry(1, 1, b"a/../../evil", 6)],
                   [(1, b"owned\n", hashlib.sha256(b"owned\n").digest())])
    elif kind == "empty-part":
        s = one_file(b"a//evil")
    elif kind == "link-absolute":
        s = stream([entry(0, 3, b"l", target=b"/etc")], [])
    elif kind == "link-climbs":
        s = stream([entry(0, 2, b"d", mode=0o755), entry(1, 3, b"d/l", target=b"../../x")], [])
    elif kind == "checksum":
        s = one_file(b"bad", b"payload\n", hashlib.sha256(b"other\n").digest())
    elif kind == "bad-magic":
        s = frame("H", b"NOTCOPY" + bytes([1]) + struct.pack(">I", 0))
    elif kind == "huge-frame":
        s = frame("H", b"MPTCOPY" + bytes([1]) + struct.pack(">I", 0)) + b"E" + struct.pack(">I", 0x7fffffff)
    elif kind == "good":
        s = one_file(b"good", b"payload\n")
    else:
        sys.exit("copy-evil.py: unknown kind " + kind)
    with open(path, "wb") as f:
        f.write(s)


if __name__ == "__main__":
    main()
