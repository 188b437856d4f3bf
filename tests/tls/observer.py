#!/usr/bin/env python3
"""An observer of a libmpt connection's first subflow (tests/test-tls-mitm.sh).

observer.py SERVER_PORT: prints "listening PORT", forwards every TCP
connection on 127.0.0.1:PORT to 127.0.0.1:SERVER_PORT unchanged and records
the bytes of the first one. As soon as it has seen the client's HELLO and the
server's HELLO_ACK (where they would be without TLS: doc/protocol.md 5.1,
5.2), it builds a join from the recorded bytes alone: key_C and key_S at
their offsets, the token from key_S, the routing ID from the HELLO_ACK; it
sends the JOIN (inside a TLS session of its own if the preamble asked for
TLS, as the server requires), and answers the JOIN_ACK with the JOIN_CONFIRM
those keys give. It prints "forged join: sent JOIN_CONFIRM" or
"forged join: refused: ..." and keeps its subflow open for a second, so the
server's log shows whether it took it.
"""
import hashlib
import hmac
import os
import socket
import ssl
import struct
import sys
import threading

from relaylib import read_exact as recv_exact, relay

recorded = {"c2s": b"", "s2c": b""}
seen = threading.Event()


def recorder(key):
    def record(d):
        recorded[key] += d
        if len(recorded["c2s"]) >= 8 + 44 and len(recorded["s2c"]) >= 52:
            seen.set()
    return record


def forge(server_port):
    c2s, s2c = recorded["c2s"], recorded["s2c"]
    tls = c2s[6] & 1
    key_c = c2s[8 + 4 + 4:8 + 4 + 4 + 32]
    key_s = s2c[4 + 4:4 + 4 + 32]
    routing = s2c[4 + 36:4 + 44]
    token = hashlib.sha256(key_s).digest()[:8]
    print("first subflow: preamble flags=%d, byte after the preamble 0x%02x (%s)" %
          (c2s[6], c2s[8], "a TLS record" if c2s[8] == 0x16 else "a frame"), flush=True)
    nonce = os.urandom(16)
    s = socket.create_connection(("127.0.0.1", server_port))
    s.sendall(b"MPTL" + bytes([1, 1, 1 if tls else 0, 0]) + routing)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="mpt-test.example")
    s.sendall(bytes([0x03, 0, 0, 26]) + token + nonce + bytes([5, 0]))
    hdr = recv_exact(s, 4)
    body = recv_exact(s, struct.unpack(">H", hdr[2:4])[0])
    if hdr[0] != 0x04:
        text = body[5:].decode("ascii", "replace") if hdr[0] == 0x43 else ""
        print("forged join: refused: frame 0x%02x %s" % (hdr[0], text), flush=True)
        return
    n_s = body[:16]
    mac = hmac.new(key_c + key_s, b"MPTL-JOIN-C" + nonce + n_s + bytes([5, 0]),
                   hashlib.sha256).digest()
    s.sendall(bytes([0x05, 0, 0, 32]) + mac)
    print("forged join: sent JOIN_CONFIRM", flush=True)
    s.settimeout(1.0)
    try:
        while s.recv(65536):
            pass
    except (OSError, ssl.SSLError):
        pass


def main():
    server_port = int(sys.argv[1])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("listening %d" % ls.getsockname()[1], flush=True)
    first = True

    def forger():
        if seen.wait(10):
            try:
                forge(server_port)
            except (OSError, ssl.SSLError) as e:
                print("forged join: refused: %s" % e, flush=True)

    threading.Thread(target=forger, daemon=True).start()
    while True:
        c, _ = ls.accept()
        up = socket.create_connection(("127.0.0.1", server_port))
        threading.Thread(target=relay, args=(c, up, recorder("c2s") if first else None),
                         daemon=True).start()
        threading.Thread(target=relay, args=(up, c, recorder("s2c") if first else None),
                         daemon=True).start()
        first = False


if __name__ == "__main__":
    main()
