"""What tests/tls/mitm.py and observer.py share: a one-way TCP relay and an
exact read."""
import socket


def relay(a, b, on_data=None):
    """Copies a's bytes to b until a closes or either fails, calling
    on_data(chunk) for each chunk first; then shuts both down, so the relay
    the other way ends too."""
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            if on_data is not None:
                on_data(d)
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def read_exact(s, n):
    """n bytes from s, or OSError if it closes first."""
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise OSError("closed after %d of %d bytes" % (len(buf), n))
        buf += d
    return buf
