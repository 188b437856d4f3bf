#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_frame: one valid frame of every type, a few
streams of frames (with and without a preamble) and some near misses.

The encodings are built here from the layouts in libmpt/core/frame.h rather
than by libmpt itself, so the seeds also pin the wire format independently.
The output is committed; rerun after changing the format:

    tests/fuzz/make-corpus.py [OUTDIR]   (default: tests/fuzz/corpus/frame)
"""
import os
import struct
import sys

HELLO, HELLO_ACK, JOIN, JOIN_ACK, JOIN_CONFIRM = 0x01, 0x02, 0x03, 0x04, 0x05
DATA, DATA_ACK, DATA_FIN = 0x10, 0x11, 0x12
ADD_ADDR, REMOVE_ADDR, PRIO = 0x20, 0x21, 0x22
PING, PONG = 0x30, 0x31
CLOSE, FASTCLOSE, SUBFLOW_CLOSE, ERROR = 0x40, 0x41, 0x42, 0x43
SUBFLOW_FAILED = 0xC2


def frame(ftype, body=b"", flags=0):
    return struct.pack(">BBH", ftype, flags, len(body)) + body


def pattern(n, seed=0):
    return bytes((seed + 7 * i) & 0xFF for i in range(n))


def preamble(kind=0, flags=0, routing_id=b"", version=1):
    return b"MPTL" + bytes([version, kind, flags, 0]) + routing_id


def data_ack(ack, window, ranges):
    body = struct.pack(">QI", ack, window)
    for start, end in ranges:
        body += struct.pack(">QQ", start, end)
    return frame(DATA_ACK, body)


def seeds():
    s = {}
    s["hello"] = frame(HELLO, bytes([1, 1]) + struct.pack(">H", 3) + pattern(32) +
                       struct.pack(">I", 1 << 20))
    s["hello_ack"] = frame(HELLO_ACK, bytes([1, 0]) + struct.pack(">H", 1) + pattern(32, 1) +
                           pattern(8, 2) + struct.pack(">I", 65535))
    s["join"] = frame(JOIN, struct.pack(">Q", 0x0123456789ABCDEF) + pattern(16, 3) + bytes([2, 0]),
                      flags=1)
    s["join_ack"] = frame(JOIN_ACK, pattern(16, 4) + pattern(32, 5))
    s["join_confirm"] = frame(JOIN_CONFIRM, pattern(32, 6))
    s["data"] = frame(DATA, struct.pack(">Q", 1000) + b"hello, world\n")
    s["data_1"] = frame(DATA, struct.pack(">Q", 2**64 - 1) + b"x")
    s["data_ack"] = data_ack(1000, 65536, [])
    s["data_ack_sack"] = data_ack(1000, 65536, [(1100, 1200), (1300, 1400), (1500, 1600),
                                                (1600, 1700)])
    s["data_ack_wrap"] = data_ack(2**64 - 10, 1, [(2**64 - 5, 3), (10, 20)])
    s["data_fin"] = frame(DATA_FIN, struct.pack(">Q", 123456))
    s["add_addr4"] = frame(ADD_ADDR, bytes([1, 4]) + struct.pack(">H", 443) +
                           bytes([192, 0, 2, 1]) + pattern(8, 7), flags=1)
    s["add_addr6"] = frame(ADD_ADDR, bytes([2, 6]) + struct.pack(">H", 8443) +
                           bytes.fromhex("20010db8000000000000000000000001") + pattern(8, 8))
    s["remove_addr"] = frame(REMOVE_ADDR, bytes([1, 2, 3]))
    s["prio"] = frame(PRIO, flags=1)
    s["ping"] = frame(PING, struct.pack(">Q", 42))
    s["pong"] = frame(PONG, struct.pack(">Q", 42))
    s["close"] = frame(CLOSE)
    s["fastclose"] = frame(FASTCLOSE, struct.pack(">I", 6) + b"application abort")
    s["subflow_close"] = frame(SUBFLOW_CLOSE, struct.pack(">I", 8))
    s["error"] = frame(ERROR, struct.pack(">IB", 1, DATA) + b"empty DATA")
    s["subflow_failed"] = frame(SUBFLOW_FAILED, struct.pack(">I", 5) + pattern(16, 12))
    s["subflow_failed_first"] = frame(SUBFLOW_FAILED, struct.pack(">I", 8) + bytes(16))
    s["ignorable"] = frame(0x9A, pattern(5, 9), flags=0xFF)

    # Streams as a subflow carries them.
    s["pre_new"] = preamble(0, 1)
    s["pre_join"] = preamble(1, 0, pattern(8, 10))
    s["stream_new"] = (preamble(0, 0) + s["hello"] + s["hello_ack"] + s["data"] + s["data_ack"] +
                       s["ignorable"] + s["data_fin"] + s["close"])
    s["stream_join"] = (preamble(1, 1, pattern(8, 11)) + s["join"] + s["join_ack"] +
                        s["join_confirm"] + s["prio"] + s["ping"] + s["pong"])
    s["stream_mixed"] = (s["add_addr4"] + s["add_addr6"] + s["remove_addr"] + s["data_1"] +
                         s["data_ack_sack"] + s["fastclose"] + s["subflow_close"] + s["error"] +
                         s["subflow_failed"])

    # Near misses: one field wrong, to start the search next to the edges.
    s["bad_empty_data"] = frame(DATA, struct.pack(">Q", 1))
    s["bad_family"] = frame(ADD_ADDR, bytes([1, 5]) + struct.pack(">H", 1) + bytes(4) + bytes(8))
    s["bad_range"] = data_ack(100, 0, [(100, 200)])
    s["bad_type"] = frame(0x13, b"\x00")
    s["truncated"] = s["hello"][:20]
    s["bad_subflow_failed_len"] = frame(SUBFLOW_FAILED, struct.pack(">I", 5) + pattern(15, 13))
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "frame")
    os.makedirs(out, exist_ok=True)
    for name, blob in sorted(seeds().items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)


if __name__ == "__main__":
    main()
