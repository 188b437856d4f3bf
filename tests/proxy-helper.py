#!/usr/bin/env python3
"""Helpers for tests/test-proxy.sh (standard library only).

  proxy-helper.py http DIR PORTFILE      HTTP server on 127.0.0.1 (port in PORTFILE):
                                         GET serves DIR, PUT answers the body's sha256
  proxy-helper.py sink PORTFILE          TCP server: reads until end of file, then
                                         answers the sha256 of what it read (half-close)
  proxy-helper.py halfclose HOST PORT FILE [THOST TPORT]   sends FILE (after a SOCKS5
                                         CONNECT to THOST:TPORT if given), shuts down
                                         writing, prints the answer (both FINs carried)
  proxy-helper.py rst PORTFILE           TCP server: reads one byte, then resets
  proxy-helper.py expect-reset HOST PORT THOST TPORT   SOCKS5 CONNECT to THOST:TPORT,
                                         sends a byte, prints reset, eof or data
  proxy-helper.py socks HOST PORT CASE   a raw SOCKS5 exchange; prints the reply bytes
                                         in hex (CASE: auth, bind, udp, atyp, v4,
                                         connect HOST PORT)
"""
import hashlib
import http.server
import os
import socket
import socketserver
import sys


def write_port(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, path)


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        while n > 0:
            b = self.rfile.read(min(n, 65536))
            if not b:
                break
            h.update(b)
            n -= len(b)
        body = (h.hexdigest() + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def http_main(directory, portfile):
    os.chdir(directory)
    http.server.ThreadingHTTPServer.daemon_threads = True
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.request_queue_size = 128
    write_port(portfile, srv.server_address[1])
    srv.serve_forever()


class Sink(socketserver.BaseRequestHandler):
    def handle(self):
        h = hashlib.sha256()
        while True:
            b = self.request.recv(65536)
            if not b:
                break
            h.update(b)
        self.request.sendall((h.hexdigest() + "\n").encode())


def sink_main(portfile):
    socketserver.ThreadingTCPServer.daemon_threads = True
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Sink)
    write_port(portfile, srv.server_address[1])
    srv.serve_forever()


def socks_connect(s, host, port):
    """SOCKS5 CONNECT to host:port on s; returns the reply bytes (hex)."""
    s.sendall(b"\x05\x01\x00")
    method = recv_exact(s, 2).hex()
    try:
        addr = b"\x01" + socket.inet_aton(host)
    except OSError:
        addr = b"\x03" + bytes([len(host)]) + host.encode()
    s.sendall(b"\x05\x01\x00" + addr + int(port).to_bytes(2, "big"))
    return method + " " + recv_exact(s, 10).hex()


class Resetter(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.recv(1)
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.request.close()


def rst_main(portfile):
    socketserver.ThreadingTCPServer.daemon_threads = True
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Resetter)
    write_port(portfile, srv.server_address[1])
    srv.serve_forever()


def expect_reset_main(host, port, thost, tport):
    s = socket.create_connection((host, int(port)), timeout=20)
    r = socks_connect(s, thost, tport)
    if r != "0500 05000001000000000000":
        raise SystemExit("SOCKS5 CONNECT failed: " + r)
    s.sendall(b"x")
    try:
        b = s.recv(100)
        print("eof" if not b else "data")
    except ConnectionResetError:
        print("reset")


def halfclose_main(host, port, path, via=None):
    s = socket.create_connection((host, int(port)), timeout=20)
    if via:
        r = socks_connect(s, via[0], via[1])
        if r != "0500 05000001000000000000":
            raise SystemExit("SOCKS5 CONNECT failed: " + r)
    with open(path, "rb") as f:
        s.sendall(f.read())
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    sys.stdout.write(out.decode())


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            break
        out += b
    return out


def socks_main(host, port, case, args):
    s = socket.create_connection((host, int(port)), timeout=20)
    if case == "auth":  # only username/password offered
        s.sendall(b"\x05\x01\x02")
        print(recv_exact(s, 2).hex())
        return
    if case == "v4":  # a SOCKS4 client: closed without an answer
        s.sendall(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")
        try:
            print(recv_exact(s, 8).hex() or "closed")
        except ConnectionResetError:
            print("closed")
        return
    if case == "connect":
        print(socks_connect(s, args[0], args[1]))
        return
    s.sendall(b"\x05\x01\x00")
    method = recv_exact(s, 2).hex()
    target = b"\x01\x7f\x00\x00\x01\x00\x50"
    if case == "bind":
        req = b"\x05\x02\x00" + target
    elif case == "udp":
        req = b"\x05\x03\x00" + target
    elif case == "atyp":
        req = b"\x05\x01\x00\x09\x00\x00"
    else:
        raise SystemExit("unknown case " + case)
    s.sendall(req)
    print(method + " " + recv_exact(s, 10).hex())


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "http":
        http_main(a[1], a[2])
    elif a[0] == "sink":
        sink_main(a[1])
    elif a[0] == "halfclose":
        halfclose_main(a[1], a[2], a[3], a[4:6] or None)
    elif a[0] == "rst":
        rst_main(a[1])
    elif a[0] == "expect-reset":
        expect_reset_main(a[1], a[2], a[3], a[4])
    elif a[0] == "socks":
        socks_main(a[1], a[2], a[3], a[4:])
    else:
        raise SystemExit(__doc__)
