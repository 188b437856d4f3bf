#!/usr/bin/env python3
"""A man in the middle for libmpt's TLS subflows (tests/test-tls-mitm.sh).

mitm.py LISTEN_PORT SERVER_PORT CERT KEY: prints "listening PORT" (LISTEN_PORT
0: a free one), then for every TCP connection on 127.0.0.1:PORT it reads the clear preamble (8 bytes, 16 for a join),
terminates TLS towards the client with CERT/KEY, opens its own TCP and TLS
connection to 127.0.0.1:SERVER_PORT (sending the same preamble, verifying
nothing) and relays the plaintext both ways, the way an attacker with a
certificate the client accepts would. It prints one line per subflow on
stdout: "subflow N kind=new|join relayed=BYTES" when it ends.
"""
import socket
import ssl
import sys
import threading

from relaylib import read_exact, relay


def handle(n, conn, server_port, sctx, cctx):
    kind = "?"
    counter = [0, 0]
    try:
        pre = read_exact(conn, 8)
        if pre[5] == 1:
            pre += read_exact(conn, 8)
        kind = "join" if pre[5] == 1 else "new"
        tls_c = sctx.wrap_socket(conn, server_side=True)
        up = socket.create_connection(("127.0.0.1", server_port))
        up.sendall(pre)
        tls_s = cctx.wrap_socket(up, server_hostname="mpt-test.example")
        def count(i):
            def add(d):
                counter[i] += len(d)
            return add
        t = threading.Thread(target=relay, args=(tls_s, tls_c, count(1)), daemon=True)
        t.start()
        relay(tls_c, tls_s, count(0))
        t.join(5)
    except (OSError, ssl.SSLError) as e:
        print(f"subflow {n} kind={kind} error={e}", flush=True)
        return
    print(f"subflow {n} kind={kind} relayed={counter[0] + counter[1]}", flush=True)


def main():
    listen_port, server_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.maximum_version = ssl.TLSVersion.TLSv1_2
    sctx.load_cert_chain(cert, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.maximum_version = ssl.TLSVersion.TLSv1_2
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(16)
    print(f"listening {ls.getsockname()[1]}", flush=True)
    n = 0
    while True:
        c, _ = ls.accept()
        n += 1
        threading.Thread(target=handle, args=(n, c, server_port, sctx, cctx), daemon=True).start()


if __name__ == "__main__":
    main()
