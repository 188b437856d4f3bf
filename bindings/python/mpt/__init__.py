"""Python bindings for libmpt (multipath transport above kernel TCP).

This module wraps libmpt's *blocking layer* (mpt_blocking_*) through cffi in
ABI mode: no C compiler is needed, only the shared library.

Library lookup
    1. the environment variable ``MPT_LIBRARY`` (path to libmpt.so),
    2. ``ctypes.util.find_library("mpt")``,
    3. otherwise :class:`ImportError` explaining both options.

Model
    * :class:`Context` owns everything (mpt_ctx_new / mpt_ctx_free): its
      listeners and connections become invalid when it is closed.
    * Every blocking call runs the context's event loop in the calling
      thread, with the GIL released. A context (and everything created from
      it) must only be used by one thread at a time; use one context per
      thread. Concurrent use of one context raises :class:`RuntimeError`.
    * Timeouts are in seconds (float); ``None`` waits forever.
    * Errors are raised as :class:`Error` carrying ``.code`` (negative MPT_E*
      value), ``.name`` (``"MPT_ETIMEDOUT"``) and ``.strerror`` (mpt_strerror
      text).

Buffer ownership
    Python always copies, in both directions. ``sendall(data)`` passes a
    pointer to the bytes-like object to mpt_blocking_send_all, which copies
    the bytes into the connection's send buffer before returning; libmpt
    keeps no pointer to Python memory afterwards. ``recv(n)`` lets libmpt
    copy into a temporary C buffer owned by this module (allocated with
    ffi.new, freed by Python) and returns a fresh ``bytes`` copy of the bytes
    received. Strings handed to libmpt (hosts, paths, addresses, config
    strings) are kept alive for the duration of the call only; libmpt copies
    them. Structures libmpt fills (mpt_info, mpt_subflow_info) are allocated
    by this module and converted to plain dicts. Handles (mpt_ctx,
    mpt_listener, mpt_socket) are owned by libmpt and released only through
    close()/abort() or Context.close().
"""

import ctypes.util
import os
import socket
import struct
import threading
import weakref

from cffi import FFI

__all__ = ["Context", "Listener", "Connection", "Error", "version", "lib", "ffi",
           "STATE_NAMES", "SUBFLOW_STATE_NAMES"]

ffi = FFI()

# Copied from include/mpt/error.h and include/mpt/mpt.h. Only what the
# bindings use; struct mpt_callbacks is never passed (always NULL), so the
# functions taking it declare an opaque pointer. struct sockaddr_storage is
# glibc's Linux layout (128 bytes, 8-byte aligned). The structs may lag the
# header (doc/abi.md): mpt_info carries its size and mpt_subflow_info arrays
# are passed with their element size (mpt_get_subflows is a C macro).
ffi.cdef("""
enum mpt_error {
    MPT_OK = 0,
    MPT_EINVAL = -1, MPT_ENOMEM = -2, MPT_EAGAIN = -3, MPT_EINCOMPLETE = -4,
    MPT_EFRAME_LEN = -5, MPT_EFRAME_TOOBIG = -6, MPT_EFRAME_RESERVED = -7,
    MPT_EFRAME_TYPE = -8, MPT_EFRAME_VALUE = -9, MPT_EPREAMBLE = -10,
    MPT_EVERSION = -11, MPT_EAUTH = -12, MPT_ETOKEN = -13, MPT_EREPLAY = -14,
    MPT_ETOOMANY = -15, MPT_ESTATE = -16, MPT_ECLOSED = -17, MPT_ERESET = -18,
    MPT_ETIMEDOUT = -19, MPT_ENOPATH = -20, MPT_EPROTO = -21, MPT_EFLOW = -22,
    MPT_ENOBUFS = -23, MPT_ENOTFOUND = -24, MPT_ESYS = -25, MPT_ERESOLVE = -26,
    MPT_ENOTSUP = -27, MPT_EPIPE = -28, MPT_ETLS = -29, MPT_ECONNREFUSED = -30,
    MPT_EADDRINUSE = -31, MPT_EADDRNOTAVAIL = -32, MPT_ENODEV = -33,
    MPT_ENETUNREACH = -34, MPT_EHOSTUNREACH = -35, MPT_EPERM = -36, MPT_EMFILE = -37,
    MPT_ECONNRESET = -38, MPT_EAFNOSUPPORT = -39
};
const char *mpt_strerror(int err);
const char *mpt_err_name(int err);

const char *mpt_version(void);

struct mpt_ctx;
struct mpt_socket;
struct mpt_listener;
struct mpt_callbacks;

struct mpt_config {
    size_t size;
    uint32_t max_subflows;
    size_t sndbuf;
    size_t rcvbuf;
    uint32_t connect_timeout_ms;
    uint32_t handshake_timeout_ms;
    uint32_t close_timeout_ms;
    uint32_t user_timeout_ms;
    uint32_t subflow_timeout_ms;
    uint32_t ping_interval_ms;
    uint32_t notsent_lowat;
    uint32_t write_budget;
    uint32_t reconnect_min_ms;
    uint32_t reconnect_max_ms;
    uint32_t subflows_per_path;
    uint32_t listen_backlog;
    uint32_t max_connections;
    const char *scheduler;
    const char *congestion;
    const char *tcp_congestion;
    int fullmesh;
    int include_loopback;
    int advertise_addresses;
    uint32_t reserved0;
    uint32_t ack_timeout_ms;
};
void mpt_config_default(struct mpt_config *cfg, size_t size);

int mpt_ctx_new(struct mpt_ctx **out, void *ev_loop, const struct mpt_config *cfg);
void mpt_ctx_free(struct mpt_ctx *ctx);
int mpt_ctx_run(struct mpt_ctx *ctx, int timeout_ms);

enum mpt_state {
    MPT_STATE_CONNECTING = 0,
    MPT_STATE_ESTABLISHED,
    MPT_STATE_CLOSING,
    MPT_STATE_CLOSED,
    MPT_STATE_ABORTED
};

enum mpt_subflow_state {
    MPT_SUBFLOW_CONNECTING = 0,
    MPT_SUBFLOW_HANDSHAKE,
    MPT_SUBFLOW_ESTABLISHED,
    MPT_SUBFLOW_CLOSING,
    MPT_SUBFLOW_FAILED,
    MPT_SUBFLOW_CLOSED
};
const char *mpt_state_name(enum mpt_state state);
const char *mpt_subflow_state_name(enum mpt_subflow_state state);

struct sockaddr_storage {
    unsigned short ss_family;
    char __ss_padding[118];
    unsigned long __ss_align;
};

struct mpt_subflow_info {
    int id;
    int path_id;
    enum mpt_subflow_state state;
    struct sockaddr_storage local;
    struct sockaddr_storage remote;
    char ifname[16];
    int backup;
    uint64_t rtt_us;
    uint64_t rttvar_us;
    uint32_t cwnd_bytes;
    uint32_t total_retrans;
    uint64_t bytes_sent;
    uint64_t bytes_acked;
    int fail_error;
    uint32_t fail_reason;
    int sys_errno;
    uint32_t failures;
    int retry_ms;
    uint64_t bytes_received;
};

struct mpt_info {
    size_t size;
    enum mpt_state state;
    int error;
    uint64_t bytes_sent;
    uint64_t bytes_acked;
    uint64_t bytes_received;
    uint64_t bytes_reinjected;
    uint64_t reinjections;
    size_t snd_buffered;
    size_t rcv_buffered;
    uint32_t subflows;
    uint32_t subflows_established;
    int sys_errno;
    uint64_t unacked_bytes;
    uint64_t subflows_opened;
    uint64_t subflows_failed;
    const char *scheduler;
    const char *congestion;
    uint64_t reorder_frames;
    uint64_t reorder_p50_us, reorder_p99_us, reorder_max_us;
};

typedef void (*mpt_accept_cb)(struct mpt_listener *l, void *user);
int mpt_listen(struct mpt_ctx *ctx, const char *const *addrs, size_t naddrs,
               uint16_t port, mpt_accept_cb cb, void *user,
               struct mpt_listener **out);
int mpt_listener_port(const struct mpt_listener *l);
void mpt_listener_close(struct mpt_listener *l);

int mpt_shutdown(struct mpt_socket *s);
int mpt_set_scheduler(struct mpt_socket *s, const char *name);
int mpt_set_cc(struct mpt_socket *s, const char *name);
int mpt_abort(struct mpt_socket *s);

int mpt_get_info(struct mpt_socket *s, struct mpt_info *info);
int mpt_get_subflows_sized(struct mpt_socket *s, struct mpt_subflow_info *sf, size_t n,
                           size_t elem_size);

int mpt_blocking_connect(struct mpt_ctx *ctx, const char *host, uint16_t port,
                         const char *const *paths, size_t npaths, int timeout_ms,
                         struct mpt_socket **out);
int mpt_blocking_accept(struct mpt_listener *l, int timeout_ms,
                        struct mpt_socket **out);
ssize_t mpt_blocking_send_all(struct mpt_socket *s, const void *buf, size_t len,
                              int timeout_ms);
ssize_t mpt_blocking_recv(struct mpt_socket *s, void *buf, size_t len,
                          int timeout_ms);
int mpt_blocking_close(struct mpt_socket *s, int timeout_ms);
""")


def _load():
    path = os.environ.get("MPT_LIBRARY") or ctypes.util.find_library("mpt")
    if not path:
        raise ImportError("libmpt not found: set MPT_LIBRARY to the path of libmpt.so "
                          "or install libmpt where ctypes.util.find_library('mpt') finds it")
    try:
        return ffi.dlopen(path)
    except OSError as e:
        raise ImportError("cannot load libmpt from %r: %s" % (path, e)) from e


lib = _load()

# The library names its states (mpt_state_name, mpt_subflow_state_name).
STATE_NAMES = {v: ffi.string(lib.mpt_state_name(v)).decode()
               for v in range(lib.MPT_STATE_CONNECTING, lib.MPT_STATE_ABORTED + 1)}
SUBFLOW_STATE_NAMES = {v: ffi.string(lib.mpt_subflow_state_name(v)).decode()
                       for v in range(lib.MPT_SUBFLOW_CONNECTING, lib.MPT_SUBFLOW_CLOSED + 1)}

_MAX_SUBFLOWS = 32  # mpt_config.max_subflows is at most 32


def version():
    """The library's version string (mpt_version)."""
    return ffi.string(lib.mpt_version()).decode()


def _err_name(code):
    return ffi.string(lib.mpt_err_name(code)).decode()


def _strerror(code):
    return ffi.string(lib.mpt_strerror(code)).decode()


class Error(Exception):
    """A libmpt error: .code (negative MPT_E* value), .name ("MPT_E..."),
    .strerror (mpt_strerror text)."""

    def __init__(self, code, context=None):
        self.code = int(code)
        self.name = _err_name(self.code)
        self.strerror = _strerror(self.code)
        msg = "%s: %s" % (self.name, self.strerror)
        if context:
            msg = "%s: %s" % (context, msg)
        super().__init__(msg)


def _cstr(p):
    return None if p == ffi.NULL else ffi.string(p).decode()

def _check(rc, what):
    if rc < 0:
        raise Error(rc, what)
    return rc


def _timeout_ms(timeout):
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    return min(int(timeout * 1000), 2 ** 31 - 1)


def _strings(items):
    """A (const char *const *, count, keepalive) triple; NULL for None/empty."""
    if not items:
        return ffi.NULL, 0, None
    if isinstance(items, (str, bytes)):
        items = [items]
    bufs = [ffi.new("char[]", s.encode() if isinstance(s, str) else bytes(s)) for s in items]
    arr = ffi.new("const char *[]", bufs)
    return arr, len(bufs), bufs


def _sockaddr(ss):
    """(host, port) from a struct sockaddr_storage, or None if unknown."""
    raw = bytes(ffi.buffer(ffi.addressof(ss), ffi.sizeof("struct sockaddr_storage")))
    fam = ss.ss_family
    if fam == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack("!H", raw[2:4])[0]
    if fam == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack("!H", raw[2:4])[0]
    return None


class Context:
    """A libmpt context (mpt_ctx_new). config: None for the defaults, or a
    dict of struct mpt_config field names to values, e.g.
    {"max_subflows": 4, "scheduler": "roundrobin", "sndbuf": 1 << 20}."""

    def __init__(self, config=None):
        self._ptr = ffi.NULL
        self._lock = threading.Lock()
        self._children = weakref.WeakSet()
        cfg = ffi.NULL
        keep = []
        if config is not None:
            cfg = ffi.new("struct mpt_config *")
            lib.mpt_config_default(cfg, ffi.sizeof("struct mpt_config"))
            for key, value in dict(config).items():
                if key in ("size", "reserved0") or not hasattr(cfg, key):
                    raise ValueError("unknown mpt_config field %r" % key)
                if key in ("scheduler", "congestion", "tcp_congestion"):
                    if value is None:
                        value = ffi.NULL
                    else:
                        value = ffi.new("char[]", value.encode() if isinstance(value, str)
                                        else bytes(value))
                        keep.append(value)
                setattr(cfg, key, value)
        out = ffi.new("struct mpt_ctx **")
        _check(lib.mpt_ctx_new(out, ffi.NULL, cfg), "mpt_ctx_new")
        self._ptr = out[0]

    # One thread at a time: the blocking layer runs this context's loop.
    def _enter(self):
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("mpt.Context used concurrently from two threads; "
                               "use one context per thread")
        if self._ptr == ffi.NULL:
            self._lock.release()
            raise ValueError("mpt.Context is closed")

    def _leave(self):
        self._lock.release()

    def listen(self, addrs=None, port=0):
        """Listens on port (0: ephemeral, the same on every address) at each
        numeric address of addrs (a string or a list; None: the wildcards).
        Returns a Listener."""
        arr, n, keep = _strings(addrs)
        out = ffi.new("struct mpt_listener **")
        self._enter()
        try:
            _check(lib.mpt_listen(self._ptr, arr, n, port, ffi.NULL, ffi.NULL, out), "mpt_listen")
        finally:
            self._leave()
        del keep
        listener = Listener(self, out[0])
        self._children.add(listener)
        return listener

    def connect(self, host, port, paths=None, timeout=10.0):
        """Connects to host:port over the local paths (source addresses or
        interface names; None: the configuration decides) and waits for the
        handshake. Returns a Connection."""
        hostbuf = ffi.new("char[]", host.encode() if isinstance(host, str) else bytes(host))
        arr, n, keep = _strings(paths)
        out = ffi.new("struct mpt_socket **")
        tmo = _timeout_ms(timeout)
        self._enter()
        try:
            _check(lib.mpt_blocking_connect(self._ptr, hostbuf, port, arr, n, tmo, out),
                   "connect")
        finally:
            self._leave()
        del keep
        conn = Connection(self, out[0])
        self._children.add(conn)
        return conn

    def run(self, timeout):
        """Runs the context's loop for at most timeout seconds (0: one
        non-blocking pass), letting connections progress (subflows join,
        buffered data is sent) between blocking calls."""
        if timeout is None:
            raise ValueError("run() needs a timeout")
        tmo = _timeout_ms(timeout)
        self._enter()
        try:
            _check(lib.mpt_ctx_run(self._ptr, tmo), "mpt_ctx_run")
        finally:
            self._leave()

    def close(self):
        """Aborts every connection, closes every listener, frees the context.
        Idempotent."""
        if self._ptr == ffi.NULL:
            return
        self._enter()
        try:
            for child in list(self._children):
                child._ptr = ffi.NULL
            lib.mpt_ctx_free(self._ptr)
            self._ptr = ffi.NULL
        finally:
            self._leave()

    @property
    def closed(self):
        return self._ptr == ffi.NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._ptr != ffi.NULL:
                lib.mpt_ctx_free(self._ptr)
                self._ptr = ffi.NULL
        except Exception:
            pass


class _Handle:
    def __init__(self, ctx, ptr):
        self._ctx = ctx
        self._ptr = ptr

    def _get(self):
        if self._ptr == ffi.NULL:
            raise ValueError("%s is closed" % type(self).__name__)
        return self._ptr

    @property
    def closed(self):
        return self._ptr == ffi.NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Listener(_Handle):
    """A server endpoint (mpt_listen). .port is the bound port."""

    @property
    def port(self):
        self._ctx._enter()
        try:
            return _check(lib.mpt_listener_port(self._get()), "mpt_listener_port")
        finally:
            self._ctx._leave()

    def accept(self, timeout=None):
        """Waits for an established connection; returns a Connection."""
        out = ffi.new("struct mpt_socket **")
        tmo = _timeout_ms(timeout)
        self._ctx._enter()
        try:
            _check(lib.mpt_blocking_accept(self._get(), tmo, out), "accept")
        finally:
            self._ctx._leave()
        conn = Connection(self._ctx, out[0])
        self._ctx._children.add(conn)
        return conn

    def close(self):
        """Stops listening; accepted connections are not affected."""
        if self._ptr == ffi.NULL:
            return
        self._ctx._enter()
        try:
            lib.mpt_listener_close(self._ptr)
            self._ptr = ffi.NULL
        finally:
            self._ctx._leave()


class Connection(_Handle):
    """One multipath connection (struct mpt_socket)."""

    def sendall(self, data, timeout=None):
        """Queues all of data (bytes-like; libmpt copies it). Returns when it
        is in the send buffer, not when it is acknowledged. On error an
        unknown part may have been queued."""
        mv = memoryview(data).cast("B")
        if not mv.contiguous:
            mv = memoryview(bytes(mv))
        if len(mv) == 0:
            return
        buf = ffi.from_buffer(mv)
        tmo = _timeout_ms(timeout)
        self._ctx._enter()
        try:
            _check(lib.mpt_blocking_send_all(self._get(), buf, len(mv), tmo), "sendall")
        finally:
            self._ctx._leave()

    def recv(self, n, timeout=None):
        """Waits for at least one byte; returns up to n bytes, b'' at the
        end of the stream. Raises Error (MPT_ETIMEDOUT) on timeout."""
        if n <= 0:
            raise ValueError("n must be > 0")
        buf = ffi.new("char[]", n)
        tmo = _timeout_ms(timeout)
        self._ctx._enter()
        try:
            got = _check(lib.mpt_blocking_recv(self._get(), buf, n, tmo), "recv")
        finally:
            self._ctx._leave()
        return ffi.buffer(buf, got)[:]

    def set_scheduler(self, name):
        """Switches the scheduler ("minrtt", "roundrobin", "redundant",
        "blest", "ecf", "weighted") while connected, on either side."""
        self._ctx._enter()
        try:
            _check(lib.mpt_set_scheduler(self._get(), name.encode()), "set_scheduler")
        finally:
            self._ctx._leave()

    def set_cc(self, name):
        """Switches the connection-level congestion control ("uncoupled",
        "lia", "olia", "balia") while connected, on either side."""
        self._ctx._enter()
        try:
            _check(lib.mpt_set_cc(self._get(), name.encode()), "set_cc")
        finally:
            self._ctx._leave()

    def shutdown(self):
        """No more data will be sent; the peer reads end of stream."""
        self._ctx._enter()
        try:
            _check(lib.mpt_shutdown(self._get()), "shutdown")
        finally:
            self._ctx._leave()

    def close(self, timeout=10.0):
        """Graceful close (mpt_blocking_close): shuts down, waits for the
        peer's end of stream (discarding data still arriving), releases the
        handle. If the timeout passes first the connection is aborted
        (FASTCLOSE) and Error(MPT_ETIMEDOUT) raised; the handle is released
        even if this raises Error."""
        if self._ptr == ffi.NULL:
            return
        tmo = _timeout_ms(timeout)
        self._ctx._enter()
        try:
            ptr, self._ptr = self._ptr, ffi.NULL
            _check(lib.mpt_blocking_close(ptr, tmo), "close")
        finally:
            self._ctx._leave()

    def abort(self):
        """Releases the handle at once (FASTCLOSE to the peer)."""
        if self._ptr == ffi.NULL:
            return
        self._ctx._enter()
        try:
            ptr, self._ptr = self._ptr, ffi.NULL
            lib.mpt_abort(ptr)
        finally:
            self._ctx._leave()

    def info(self):
        """Connection totals (mpt_get_info) as a dict."""
        info = ffi.new("struct mpt_info *")
        info.size = ffi.sizeof("struct mpt_info")
        self._ctx._enter()
        try:
            _check(lib.mpt_get_info(self._get(), info), "mpt_get_info")
        finally:
            self._ctx._leave()
        return {
            "state": STATE_NAMES.get(info.state, int(info.state)),
            "error": int(info.error),
            "bytes_sent": info.bytes_sent,
            "bytes_acked": info.bytes_acked,
            "bytes_received": info.bytes_received,
            "bytes_reinjected": info.bytes_reinjected,
            "reinjections": info.reinjections,
            "snd_buffered": info.snd_buffered,
            "rcv_buffered": info.rcv_buffered,
            "subflows": info.subflows,
            "subflows_established": info.subflows_established,
            "sys_errno": int(info.sys_errno),
            "unacked_bytes": info.unacked_bytes,
            "subflows_opened": info.subflows_opened,
            "subflows_failed": info.subflows_failed,
            "scheduler": _cstr(info.scheduler),
            "congestion": _cstr(info.congestion),
            "reorder_frames": info.reorder_frames,
            "reorder_p50_us": info.reorder_p50_us,
            "reorder_p99_us": info.reorder_p99_us,
            "reorder_max_us": info.reorder_max_us,
        }

    def subflows(self):
        """The subflows that exist (mpt_get_subflows), each as a dict, then
        (client) a record per path slot waiting to retry after a failure:
        state "failed", its cause (fail_error, sys_errno), "failures" and
        "retry_ms" (ms to the next attempt)."""
        sf = ffi.new("struct mpt_subflow_info[]", _MAX_SUBFLOWS)
        self._ctx._enter()
        try:
            n = _check(lib.mpt_get_subflows_sized(self._get(), sf, _MAX_SUBFLOWS,
                                                  ffi.sizeof("struct mpt_subflow_info")),
                       "mpt_get_subflows")
        finally:
            self._ctx._leave()
        result = []
        for i in range(min(n, _MAX_SUBFLOWS)):
            s = sf[i]
            result.append({
                "id": s.id,
                "path_id": s.path_id,
                "state": SUBFLOW_STATE_NAMES.get(s.state, int(s.state)),
                "local": _sockaddr(s.local),
                "remote": _sockaddr(s.remote),
                "ifname": ffi.string(s.ifname).decode(errors="replace"),
                "backup": bool(s.backup),
                "rtt_us": s.rtt_us,
                "rttvar_us": s.rttvar_us,
                "cwnd_bytes": s.cwnd_bytes,
                "total_retrans": s.total_retrans,
                "bytes_sent": s.bytes_sent,
                "bytes_acked": s.bytes_acked,
                "bytes_received": s.bytes_received,
                "fail_error": s.fail_error,
                "fail_reason": s.fail_reason,
                "sys_errno": s.sys_errno,
                "failures": s.failures,
                "retry_ms": s.retry_ms,
            })
        return result
