#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets, one directory per target.

fuzz_frame: one valid frame of every type, a few streams of frames (with and
without a preamble) and some near misses. The encodings are built here from
the layouts in libmpt/core/frame.h rather than by libmpt itself, so the seeds
also pin the wire format independently.

fuzz_engine, fuzz_handshake, fuzz_reasm, fuzz_pair: their inputs are programs
for the harness (the opcodes are documented in each target's switch); the
seeds are short programs that reach the interesting states: data both ways,
joins right and wrong, replays, resets, reads and writes, time.

The output is committed; rerun after changing a format or an opcode:

    tests/fuzz/make-corpus.py [TARGET [OUTDIR]]   (default: every target into
                                                   tests/fuzz/corpus/TARGET)
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


def u16(v):
    return struct.pack(">H", v & 0xFFFF)


def u32(v):
    return struct.pack(">I", v & 0xFFFFFFFF)


def seeds_pair():
    """fuzz_pair: cfg byte, then (op, link[, args]) steps; see step()."""
    ALL = bytes([15, 0])          # everything arrives
    def write(side, n):
        return bytes([5 | side << 7, 0]) + u16(n)
    def read(side, n):
        return bytes([6 | side << 7, 0]) + u16(n)
    def time(ms):
        return bytes([3, 0]) + u16(ms)
    s = {}
    s["empty"] = b""
    s["handshake_only"] = bytes([0]) + ALL * 3
    s["both_ways"] = (bytes([0]) + ALL * 3 + write(0, 20000) + write(1, 2048) + ALL * 6 +
                      read(0, 65535) + read(1, 65535) + time(100))
    s["join_then_reset"] = (bytes([0]) + ALL * 3 + bytes([8, 0, 1]) + ALL * 4 +
                            write(0, 16384) + bytes([0, 1]) + u16(256) + bytes([7, 1]) +
                            ALL * 4 + time(3000) + ALL * 2 + read(1, 65535))
    s["small_buffers"] = (bytes([7]) + ALL * 3 + write(0, 19999) + write(1, 19999) +
                          (ALL + read(0, 1000) + read(1, 1000) + bytes([4, 0, 40])) * 8)
    s["refused_join"] = (bytes([0x40]) + ALL * 3 + bytes([8 | 0x20, 0, 1]) + bytes([8, 0, 2]) +
                         ALL * 3 + bytes([0x0c, 0, 3]) + ALL * 2 + bytes([0x8e, 0]) + ALL)
    s["shutdown_and_abort"] = (bytes([0]) + ALL * 3 + write(0, 500) + bytes([9, 0]) + ALL * 3 +
                               bytes([0xfa, 0, 7]) + ALL)
    s["rcv_limit_and_stall"] = (bytes([0]) + ALL * 3 + bytes([0x8b, 0]) + u16(256) +
                                write(0, 19000) + ALL * 2 + time(20000) + ALL + read(1, 30000))
    s["alloc_fail_once"] = (bytes([0]) + ALL + bytes([0x1a, 0, 3]) + ALL * 2 + bytes([8, 0, 1]) +
                            ALL * 2 + write(0, 4000) + ALL * 3 + read(1, 65535))
    s["alloc_fail_all"] = (bytes([0]) + ALL * 3 + write(1, 3000) + bytes([0x1a, 0, 0x81]) +
                           bytes([8, 0, 2]) + ALL * 3 + write(0, 3000) + ALL * 3 + time(3000) + ALL)
    return s


def seeds_engine():
    """fuzz_engine: cfg byte, then records; see LLVMFuzzerTestOneInput."""
    def data(rel, payload, k=0):
        return bytes([2 | k << 4]) + u16(rel) + u16(len(payload)) + payload
    def ack(rel, window, ranges=()):
        b = bytes([3, len(ranges)]) + u32(rel) + u32(window)
        for a, e in ranges:
            b += u32(a) + u32(e)
        return b
    def raw(b, k=0):
        return bytes([1 | k << 4]) + u16(len(b)) + b
    s = {}
    s["empty"] = b""
    s["in_order"] = bytes([0]) + data(0, pattern(100)) + data(100, pattern(50, 1)) + bytes([6]) + u16(1000)
    s["out_of_order"] = (bytes([0]) + data(200, pattern(100)) + data(0, pattern(200, 2)) +
                         data(50, pattern(10, 3)) + bytes([6]) + u16(65535))
    s["dup_different"] = bytes([0]) + data(0, pattern(64)) + data(0, pattern(64, 9)) + bytes([6]) + u16(64)
    s["beyond_window"] = bytes([1]) + data(5000, pattern(100)) + data(0, pattern(4096))
    s["acks"] = (bytes([0x10]) + ack(1000, 1 << 20) + ack(500, 1 << 20) + ack(40000, 1 << 20) +
                 ack(1000, 1 << 20, [(2000, 3000), (4000, 5000)]) + bytes([5]) + u16(4000))
    s["data_fin"] = bytes([0]) + data(0, pattern(10)) + bytes([4]) + u32(10) + bytes([6]) + u16(100)
    s["join_good"] = bytes([0]) + bytes([0x18, 0]) + pattern(16) + data(0, pattern(30), 1) + bytes([6]) + u16(30)
    s["join_bad_hmac"] = bytes([0]) + bytes([0x28, 2]) + pattern(16) + u16(0x0101)
    s["ping_add_addr"] = (bytes([0]) + bytes([9]) + u32(1) + u32(2) + bytes([0x89]) + u32(3) + u32(4) +
                          bytes([10, 1, 7]) + bytes([0x8a, 2, 8]) + bytes([5]) + u16(20000))
    s["garbage_raw"] = bytes([0]) + raw(b"GET / HTTP/1.1\r\n\r\n") + bytes([6]) + u16(10)
    s["truncated_frames"] = (bytes([0]) + raw(frame(DATA, struct.pack(">Q", 0))[:7]) +
                             bytes([0x1f, 3, DATA_ACK]) + b"abc")
    s["oversized_control"] = bytes([0]) + bytes([0x0f, 200, PING]) + bytes(200)
    s["reset_and_silence"] = bytes([0x10]) + bytes([0x18, 0]) + pattern(16) + bytes([0x0b]) + bytes([5]) + u16(60000)
    return s


def seeds_handshake():
    """fuzz_handshake: cfg byte, then records; see LLVMFuzzerTestOneInput."""
    s = {}
    s["empty"] = b""
    s["good_join"] = bytes([0]) + bytes([0x12, 0]) + pattern(16) + bytes([1])
    s["replayed_join"] = bytes([0]) + bytes([0x12, 0]) + pattern(16) + bytes([1]) + bytes([0x33, 2])
    s["forged_rid_token"] = bytes([0]) + bytes([0x22, 3, 0, 1]) + pattern(16) + bytes([1]) + bytes([0x42, 2, 5, 3]) + pattern(16, 1) + bytes([2])
    s["bad_hmac"] = bytes([0]) + bytes([0x12, 32]) + pattern(16) + bytes([1]) + u16(0x0301)
    s["half_open"] = bytes([4]) + bytes([0x12, 16]) + pattern(16) + bytes([1]) + bytes([0x22, 16]) + pattern(16, 5) + bytes([2]) + bytes([5]) + u16(10000)
    s["split_join"] = bytes([0]) + bytes([0x12, 8]) + pattern(16) + bytes([1, 11])
    s["hello_other"] = bytes([0]) + bytes([0x16]) + pattern(32, 4) + u32(65536) + bytes([0x26]) + pattern(32, 4) + u32(1)
    s["garbage"] = bytes([0]) + bytes([0x10, 20]) + b"MPTL\x01\x07\x00\x00garbagegarbage" + bytes([0x20, 4]) + b"MPTL"
    s["too_many"] = bytes([0]) + b"".join(bytes([0x12 + 0x10 * i, 0]) + pattern(16, i) + bytes([i]) for i in range(6))
    s["inband_after_join"] = bytes([0]) + bytes([0x12, 0]) + pattern(16) + bytes([1]) + bytes([0x17, 12]) + frame(PING, struct.pack(">Q", 1))
    return s


def seeds_reasm():
    """fuzz_reasm: u16 ring size selector, u64 initial DSN, then ops."""
    def seg(rel, n, op=0x12):
        return bytes([op]) + struct.pack(">i", rel) + u16(n)
    def read(n):
        return bytes([1]) + u16(n)
    s = {}
    s["in_order"] = u16(0x0100) + struct.pack(">Q", 1000) + seg(0, 100) + seg(0, 50) + read(120)
    s["holes"] = (u16(0x0040) + struct.pack(">Q", 5) + seg(10, 5) + seg(20, 5) + seg(30, 5) +
                  seg(0, 12) + seg(0, 40) + read(1000))
    s["wrap"] = u16(0x0100) + struct.pack(">Q", 2**64 - 100) + seg(0, 150) + seg(200, 10) + read(500)
    s["far_behind"] = u16(0x0100) + struct.pack(">Q", 7) + seg(0, 10) + bytes([0x04]) + struct.pack(">i", 0) + u16(5) + u16(3)
    s["past_edge"] = u16(0x0001) + struct.pack(">Q", 0) + seg(0, 100, 0x22) + bytes([0x20]) + struct.pack(">i", 0) + u16(50) + bytes([3])
    s["single_bytes"] = u16(0x0010) + struct.pack(">Q", 99) + b"".join(seg(2 * i + 1, 1) for i in range(40)) + seg(0, 1) + read(200)
    return s


TARGETS = {"frame": seeds, "pair": seeds_pair, "engine": seeds_engine,
           "handshake": seeds_handshake, "reasm": seeds_reasm}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    names = [sys.argv[1]] if len(sys.argv) > 1 else sorted(TARGETS)
    for t in names:
        out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "corpus", t)
        os.makedirs(out, exist_ok=True)
        for name, blob in sorted(TARGETS[t]().items()):
            with open(os.path.join(out, name), "wb") as f:
                f.write(blob)


if __name__ == "__main__":
    main()
