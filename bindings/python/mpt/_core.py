"""The socket-like API: Context, Connection, Server, create_connection,
create_server, and the dataclasses info() and subflows() return."""

from __future__ import annotations

import ctypes
import dataclasses
import io
import os
import select
import socket
import struct
import threading
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _lib
from ._errors import Error, NotConnected, Timeout, WouldBlock, check, error_for

lib = _lib.lib
_MAX_SUBFLOWS = 64  # room for 32 subflows plus the failed slots' records
_DEFAULT = object()  # "the socket module's default timeout"

Address = Tuple[Any, ...]


def version() -> str:
    """The library's version string (mpt_version), e.g. "0.1.0"."""
    return _lib.decode(lib.mpt_version())


STATE_NAMES = {v: _lib.decode(lib.mpt_state_name(v)) for v in range(0, 5)}
SUBFLOW_STATE_NAMES = {v: _lib.decode(lib.mpt_subflow_state_name(v)) for v in range(0, 6)}
_PRIORITIES = {"primary": 0, "regular": 0, "backup": 1, "secondary": 2, "never": 3}
PRIORITY_NAMES = {0: "primary", 1: "backup", 2: "secondary", 3: "never"}


# ---- configuration ----------------------------------------------------------------

@dataclasses.dataclass
class TLSConfig:
    """struct mpt_tls_config (doc/security.md): TLS 1.2 on every subflow.
    A server gives cert_file and key_file; a client gives ca_file (or
    ca_path) and, when the host it connects to is not the name in the
    certificate, server_name. psk and psk_identity instead of certificates
    on both sides. insecure_skip_verify accepts any certificate: tests
    only."""
    ca_file: Optional[str] = None
    ca_path: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None
    psk: Optional[bytes] = None
    psk_identity: Optional[str] = None
    insecure_skip_verify: bool = False


def _make_tls(tls: "TLSConfig", keep: list):
    t = _lib.mpt_tls_config()
    t.size = ctypes.sizeof(t)
    for name in ("ca_file", "ca_path", "cert_file", "key_file", "server_name", "psk_identity"):
        v = getattr(tls, name)
        if v is not None:
            b = os.fsencode(v) if name.endswith(("_file", "_path")) else v.encode()
            keep.append(b)
            setattr(t, name, b)
    if tls.psk is not None:
        buf = (ctypes.c_uint8 * len(tls.psk)).from_buffer_copy(bytes(tls.psk))
        keep.append(buf)
        t.psk = ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint8))
        t.psk_len = len(tls.psk)
    t.insecure_skip_verify = 1 if tls.insecure_skip_verify else 0
    keep.append(t)
    return t


@dataclasses.dataclass
class Config:
    """struct mpt_config: every field None means libmpt's default
    (doc/man/mpt_config_default.3). Times are in milliseconds."""
    max_subflows: Optional[int] = None
    sndbuf: Optional[int] = None
    rcvbuf: Optional[int] = None
    connect_timeout_ms: Optional[int] = None
    handshake_timeout_ms: Optional[int] = None
    close_timeout_ms: Optional[int] = None
    user_timeout_ms: Optional[int] = None
    subflow_timeout_ms: Optional[int] = None
    ping_interval_ms: Optional[int] = None
    notsent_lowat: Optional[int] = None
    write_budget: Optional[int] = None
    reconnect_min_ms: Optional[int] = None
    reconnect_max_ms: Optional[int] = None
    subflows_per_path: Optional[int] = None
    listen_backlog: Optional[int] = None
    max_connections: Optional[int] = None
    scheduler: Optional[str] = None
    congestion: Optional[str] = None
    tcp_congestion: Optional[str] = None
    fullmesh: Optional[bool] = None
    include_loopback: Optional[bool] = None
    advertise_addresses: Optional[bool] = None
    ack_timeout_ms: Optional[int] = None
    server_id: Optional[int] = None
    tls: Optional[TLSConfig] = None
    max_pending_handshakes: Optional[int] = None
    max_conns_per_addr: Optional[int] = None
    service_mode: Union[None, int, str] = None  # "aggregate", "handover", "interactive"
    rcvbuf_initial: Optional[int] = None
    sndbuf_initial: Optional[int] = None


_MODES = {"aggregate": 0, "handover": 1, "interactive": 2}


def _mode(mode: Union[int, str]) -> int:
    """A service mode by name ("aggregate", "handover", "interactive") or number."""
    if isinstance(mode, str):
        if mode not in _MODES:
            raise ValueError("unknown service mode %r (modes: %s)" % (mode, ", ".join(_MODES)))
        return _MODES[mode]
    if isinstance(mode, bool) or not isinstance(mode, int) or mode not in _MODES.values():
        raise ValueError("unknown service mode %r" % (mode,))
    return mode


_STRING_FIELDS = ("scheduler", "congestion", "tcp_congestion")


def _make_config(config: Union[None, Config, Mapping[str, Any]], **overrides: Any):
    """A filled struct mpt_config (and the bytes objects it points to)."""
    if config is None:
        values: Dict[str, Any] = {}
    elif isinstance(config, Config):
        values = {f.name: getattr(config, f.name) for f in dataclasses.fields(Config)
                  if getattr(config, f.name) is not None}
    else:
        values = dict(config)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(Config)}
    for key in values:
        if key not in known:
            raise ValueError("unknown mpt config field %r (fields: %s)"
                             % (key, ", ".join(sorted(known))))
    cfg = _lib.mpt_config()
    lib.mpt_config_default(ctypes.byref(cfg), ctypes.sizeof(cfg))
    keep = []
    for key, value in values.items():
        if key == "service_mode":
            cfg.service_mode = _mode(value)
        elif key == "tls":
            if not isinstance(value, TLSConfig):
                raise TypeError("tls must be an mpt.TLSConfig, not %r" % (type(value),))
            cfg.tls = ctypes.pointer(_make_tls(value, keep))
        elif key in _STRING_FIELDS:
            b = value.encode() if isinstance(value, str) else bytes(value)
            keep.append(b)
            setattr(cfg, key, b)
        else:
            setattr(cfg, key, int(value))
    return cfg, keep


# ---- dataclasses ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Info:
    """Connection totals (struct mpt_info, mpt_get_info)."""
    state: str
    error: int
    bytes_sent: int
    bytes_acked: int
    bytes_received: int
    bytes_reinjected: int
    reinjections: int
    snd_buffered: int
    rcv_buffered: int
    subflows: int
    subflows_established: int
    sys_errno: int
    unacked_bytes: int
    subflows_opened: int
    subflows_failed: int
    scheduler: Optional[str]
    congestion: Optional[str]
    reorder_frames: int
    reorder_p50_us: int
    reorder_p99_us: int
    reorder_max_us: int
    peer_text: Optional[str] = None  # the peer's ERROR / FASTCLOSE text, if it gave one
    rcv_window: int = 0     # the receive window the connection may open now
    rcv_allocated: int = 0  # receive memory allocated now (0 while idle)
    snd_allocated: int = 0  # send buffer memory allocated now (0 while idle)


@dataclasses.dataclass(frozen=True)
class SubflowInfo:
    """One subflow (struct mpt_subflow_info, mpt_get_subflows). local and
    remote are (host, port) tuples or None when unknown."""
    id: int
    path_id: int
    state: str
    local: Optional[Tuple[str, int]]
    remote: Optional[Tuple[str, int]]
    ifname: str
    backup: bool
    rtt_us: int
    rttvar_us: int
    cwnd_bytes: int
    total_retrans: int
    bytes_sent: int
    bytes_acked: int
    bytes_received: int
    fail_error: int
    fail_reason: int
    sys_errno: int
    failures: int
    retry_ms: int
    priority: str = "primary"   # tier: primary, secondary, backup, never
    budget_bytes: int = 0       # set_budget, 0: none
    budget_used: int = 0        # DATA bytes counted against it
    rate_cap: int = 0           # set_rate_cap, bytes/s, 0: none
    budget_spent: bool = False  # the budget was reached (the path is backup now)


@dataclasses.dataclass(frozen=True)
class SubflowEvent:
    """A change seen after libmpt reported MPT_EVENT_SUBFLOWS: kind is "up"
    (a subflow became established), "down" (an established subflow failed
    or closed, or disappeared), "failed" (an attempt failed before it
    was up) or "budget" (its path's byte budget is spent, set_budget: it is
    a backup now); subflow is its state at that moment."""
    kind: str
    subflow: SubflowInfo


def _sockaddr(ss: _lib.sockaddr_storage) -> Optional[Tuple[str, int]]:
    raw = ctypes.string_at(ctypes.addressof(ss), ctypes.sizeof(ss))
    if ss.ss_family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack("!H", raw[2:4])[0]
    if ss.ss_family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack("!H", raw[2:4])[0]
    return None


def _info_from(c: _lib.mpt_info) -> Info:
    d = {}
    for f in dataclasses.fields(Info):
        v = getattr(c, f.name)
        if f.name == "state":
            v = STATE_NAMES.get(v, str(v))
        elif f.name in ("scheduler", "congestion", "peer_text"):
            v = _lib.decode(v)
        d[f.name] = v
    return Info(**d)


def _subflow_from(s: _lib.mpt_subflow_info) -> SubflowInfo:
    return SubflowInfo(
        id=s.id, path_id=s.path_id, state=SUBFLOW_STATE_NAMES.get(s.state, str(s.state)),
        local=_sockaddr(s.local), remote=_sockaddr(s.remote),
        ifname=s.ifname.decode(errors="replace"), backup=bool(s.backup),
        priority=PRIORITY_NAMES.get(s.priority, str(s.priority)),
        budget_bytes=s.budget_bytes, budget_used=s.budget_used, rate_cap=s.rate_cap,
        budget_spent=bool(s.budget_spent),
        rtt_us=s.rtt_us, rttvar_us=s.rttvar_us, cwnd_bytes=s.cwnd_bytes,
        total_retrans=s.total_retrans, bytes_sent=s.bytes_sent, bytes_acked=s.bytes_acked,
        bytes_received=s.bytes_received, fail_error=s.fail_error, fail_reason=s.fail_reason,
        sys_errno=s.sys_errno, failures=s.failures, retry_ms=s.retry_ms)


# ---- helpers -------------------------------------------------------------------------

def _timeout_ms(timeout: Optional[float]) -> int:
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    # Round up: a positive timeout shorter than 1 ms must not become "poll".
    ms = int(timeout * 1000)
    if ms == 0 and timeout > 0:
        ms = 1
    return min(ms, 2 ** 31 - 1)


def _strv(items: Optional[Iterable[str]]):
    """A (char **, count, keepalive) triple; (None, 0) for None/empty."""
    if not items:
        return None, 0, None
    if isinstance(items, (str, bytes)):
        items = [items]
    enc = [s.encode() if isinstance(s, str) else bytes(s) for s in items]
    arr = (ctypes.c_char_p * len(enc))(*enc)
    return arr, len(enc), enc


def _rbuf(data):
    """(address, length, keepalive) of a bytes-like object, without a copy
    for bytes and writable buffers (libmpt copies out of it during the call)."""
    if type(data) is bytes:
        return ctypes.cast(data, ctypes.c_void_p).value, len(data), data
    mv = memoryview(data)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B") if mv.c_contiguous else memoryview(mv.tobytes())
    n = mv.nbytes
    if n == 0:
        return None, 0, None
    if mv.readonly:
        b = mv.tobytes()
        return ctypes.cast(b, ctypes.c_void_p).value, n, b
    c = (ctypes.c_char * n).from_buffer(mv)
    return ctypes.addressof(c), n, c


def _wbuf(buffer, nbytes: int):
    mv = memoryview(buffer)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    if mv.readonly:
        raise TypeError("recv_into() needs a writable buffer")
    n = mv.nbytes if nbytes <= 0 else min(nbytes, mv.nbytes)
    if nbytes < 0:
        raise ValueError("negative buffersize in recv_into")
    c = (ctypes.c_char * mv.nbytes).from_buffer(mv)
    return ctypes.addressof(c), n, c


def _addr(host, what: str) -> bytes:
    if not isinstance(host, (str, bytes)) or not host:
        raise ValueError("%s: host must be a non-empty str" % what)
    return host.encode("idna") if isinstance(host, str) else bytes(host)


# ---- context ---------------------------------------------------------------------------

class Context:
    """A libmpt context (mpt_ctx_new): the event loop and configuration its
    listeners and connections share. create_connection() and
    create_server() make one per object unless given ``context=``.

    A context is used by one thread at a time: every blocking call runs its
    loop in the calling thread with the GIL released. A second thread that
    uses the same context meanwhile gets RuntimeError; use one context per
    thread (or asyncio, which drives one context for many connections)."""

    def __init__(self, config: Union[None, Config, Mapping[str, Any]] = None, **fields: Any):
        self._ptr = None
        self._lock = threading.Lock()
        self._socks: Dict[int, "Connection"] = {}
        self._fd: Optional[int] = None
        cfg, keep = _make_config(config, **fields)
        out = ctypes.c_void_p()
        check(lib.mpt_ctx_new(ctypes.byref(out), None, ctypes.byref(cfg)), "mpt_ctx_new")
        del keep
        self._ptr = out.value
        self.close_timeout = (cfg.close_timeout_ms or 10000) / 1000.0
        self._ev = _lib.mpt_ctx_event()

    def _enter(self):
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("mpt.Context used from two threads at once; "
                               "use one context per thread")
        if self._ptr is None:
            self._lock.release()
            raise ValueError("mpt.Context is closed")
        return self._ptr

    def _leave(self):
        try:
            self._drain()
        finally:
            self._lock.release()

    def _drain(self):
        """Takes libmpt's queued pull-style events; SUBFLOWS and CLOSED are
        handed to their connection, the rest are hints the blocking layer
        does not need (it retries the operation itself)."""
        ev = self._ev
        ev.size = ctypes.sizeof(ev)
        while lib.mpt_ctx_next_event(self._ptr, ctypes.byref(ev)) == 0:
            if ev.socket and ev.type in (_lib.MPT_EVENT_SUBFLOWS, _lib.MPT_EVENT_CLOSED,
                                         _lib.MPT_EVENT_BUDGET_SPENT):
                conn = self._socks.get(ev.socket)
                if conn is not None:
                    conn._event(ev.type, ev.status)

    def _wait(self, end):
        """Waits (the lock is held) for the context's descriptor, its next
        timer or end (monotonic seconds, None: no limit), at most 1 s, then
        returns so the caller processes; False once end has passed."""
        left = 1.0 if end is None else end - time.monotonic()
        if left <= 0:
            return False
        ptr = self._ptr
        due = lib.mpt_ctx_timeout(ptr)
        wait = min(left, 1.0) if due < 0 else min(left, due / 1000.0)
        fd = lib.mpt_ctx_fd(ptr)
        if fd >= 0:
            select.select([fd], [], [], wait)  # the GIL is released while waiting
        else:  # not Linux: no readiness descriptor
            lib.mpt_ctx_run(ptr, max(1, int(wait * 1000)))
        return True

    def _connect_wait(self, hostb, port, arr, n, tmo_ms, out):
        """mpt_connect with pull events, run until CONNECTED (the lock is
        held): unlike mpt_blocking_connect, a failed connection is still
        there to say why (the certificate's verdict, the peer's ERROR text)
        before it is aborted. Returns (rc, why) with why "" or ": ..."."""
        ptr = self._ptr
        rc = lib.mpt_connect_sized(ptr, hostb, port, arr, n, None, 0, None,
                                   ctypes.byref(out))
        if rc < 0:
            return rc, ""
        s = out.value
        end = None if tmo_ms < 0 else time.monotonic() + tmo_ms / 1000.0
        ev = self._ev
        status = None
        while status is None:
            rc = lib.mpt_ctx_process(ptr)
            if rc < 0:
                status = rc
                break
            ev.size = ctypes.sizeof(ev)
            while lib.mpt_ctx_next_event(ptr, ctypes.byref(ev)) == 0:
                if ev.socket == s and ev.type == _lib.MPT_EVENT_CONNECTED:
                    status = ev.status
                elif ev.socket and ev.type in (_lib.MPT_EVENT_SUBFLOWS,
                                               _lib.MPT_EVENT_CLOSED):
                    conn = self._socks.get(ev.socket)
                    if conn is not None:
                        conn._event(ev.type, ev.status)
            if status is not None:
                break
            if not self._wait(end):
                status = _lib.MPT_ETIMEDOUT
        if status == 0:
            return 0, ""
        why = []
        ti = _lib.mpt_tls_info()
        ti.size = ctypes.sizeof(ti)
        if lib.mpt_get_tls_info(s, ctypes.byref(ti)) == 0 and ti.error:
            why.append("TLS: " + _lib.decode(ti.error))
        inf = _lib.mpt_info()
        inf.size = ctypes.sizeof(inf)
        if lib.mpt_get_info(s, ctypes.byref(inf)) == 0 and inf.peer_text:
            why.append("the server said: " + _lib.decode(inf.peer_text))
        lib.mpt_abort(s)
        out.value = None
        return status, "".join(" (%s)" % w for w in why)

    def fileno(self) -> int:
        """The context's readiness descriptor (mpt_ctx_fd): readable
        whenever libmpt has socket I/O to service. Wait for it (or for
        pending_timeout() to pass), then call process()."""
        if self._fd is None:
            ptr = self._enter()
            try:
                self._fd = check(lib.mpt_ctx_fd(ptr), "mpt_ctx_fd")
            finally:
                self._leave()
        return self._fd

    def pending_timeout(self) -> Optional[float]:
        """Seconds until libmpt has a timer due (mpt_ctx_timeout), None if
        none: the longest a selector loop may wait before process()."""
        ptr = self._enter()
        try:
            ms = lib.mpt_ctx_timeout(ptr)
        finally:
            self._leave()
        return None if ms < 0 else ms / 1000.0

    def process(self) -> None:
        """Services whatever is ready without blocking (mpt_ctx_process)."""
        ptr = self._enter()
        try:
            check(lib.mpt_ctx_process(ptr), "mpt_ctx_process")
        finally:
            self._leave()

    def run(self, timeout: float) -> None:
        """Runs the loop for timeout seconds (subflows join, buffered data
        is sent) between blocking calls."""
        ptr = self._enter()
        try:
            check(lib.mpt_ctx_run(ptr, _timeout_ms(timeout)), "mpt_ctx_run")
        finally:
            self._leave()

    def set_trace_file(self, path: Optional[str]) -> None:
        """Appends libmpt's JSON-lines trace to path (None: off)."""
        ptr = self._enter()
        try:
            check(lib.mpt_set_trace_file(ptr, None if path is None else path.encode()),
                  "trace file %s" % path)
        finally:
            self._leave()

    def close(self) -> None:
        """Aborts every connection and listener of the context and frees
        it (mpt_ctx_free). Idempotent."""
        if self._ptr is None:
            return
        ptr = self._enter()
        try:
            for conn in list(self._socks.values()):
                conn._ptr = None
            self._socks.clear()
            self._ptr = None
            lib.mpt_ctx_free(ptr)
        finally:
            self._lock.release()

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        ptr, self._ptr = getattr(self, "_ptr", None), None
        if ptr is not None:
            lib.mpt_ctx_free(ptr)


# ---- connection ---------------------------------------------------------------------------


def _send_opts(what: str, deadline: Optional[float], redundant_below: Optional[int]):
    """struct mpt_send_opts for a send with a per-message policy, or None."""
    if deadline is None and redundant_below is None:
        return None
    opts = _lib.mpt_send_opts()
    opts.size = ctypes.sizeof(opts)
    if deadline is not None:
        if deadline <= 0:
            raise ValueError("%s: deadline must be > 0 seconds" % what)
        opts.deadline_ms = max(1, min(int(deadline * 1000 + 0.5), 0xFFFFFFFF))
    if redundant_below is not None:
        if redundant_below < 0:
            raise ValueError("%s: redundant_below must be >= 0" % what)
        opts.redundant_below = min(int(redundant_below), 0xFFFFFFFF)
    return opts

class Connection:
    """One multipath connection, used like a connected socket.socket
    (SOCK_STREAM). Made by create_connection() or Server.accept()."""

    def __init__(self, ctx: Context, ptr: int, timeout: Optional[float], owns_ctx: bool):
        self._ctx = ctx
        self._ptr: Optional[int] = ptr
        self._timeout = timeout
        self._owns_ctx = owns_ctx
        self._rd_shut = False
        self._failed = False      # an error was raised to the caller already
        self._subflow_state: Dict[int, str] = {}
        self._events: List[SubflowEvent] = []
        self._budget_seen: set = set()  # subflow ids whose spent budget was reported
        self._closed_status: Optional[int] = None
        self._peer: Optional[Address] = None
        self._sock: Optional[Address] = None
        ctx._socks[ptr] = self
        self._snapshot()

    # -- plumbing
    def _enter(self) -> int:
        p = self._ptr
        if p is None:
            raise OSError(9, "mpt.Connection is closed")  # EBADF, like a closed socket
        self._ctx._enter()
        return p

    def _leave(self):
        self._ctx._leave()

    def _raise(self, rc: int, what: str):
        if rc != _lib.MPT_EAGAIN and rc != _lib.MPT_ETIMEDOUT:
            self._failed = True
        raise error_for(rc, what)

    def _event(self, kind: int, status: int):
        if kind == _lib.MPT_EVENT_SUBFLOWS:
            self._snapshot()
        elif kind == _lib.MPT_EVENT_CLOSED:
            self._closed_status = status
        elif kind == _lib.MPT_EVENT_BUDGET_SPENT:
            try:
                for sf in self._subflows_raw():
                    if sf.budget_spent and sf.id not in self._budget_seen:
                        self._budget_seen.add(sf.id)
                        self._events.append(SubflowEvent("budget", sf))
            except Error:
                pass

    def _snapshot(self):
        """Turns a SUBFLOWS hint into SubflowEvents by comparing states."""
        try:
            now = self._subflows_raw()
        except Error:
            return
        seen = set()
        for sf in now:
            seen.add(sf.id)
            before = self._subflow_state.get(sf.id)
            if sf.state == "established" and before != "established":
                self._events.append(SubflowEvent("up", sf))
            elif before == "established" and sf.state != "established":
                self._events.append(SubflowEvent("down", sf))
            elif sf.state == "failed" and before not in ("failed", None) or \
                    (before is None and sf.state == "failed"):
                self._events.append(SubflowEvent("failed", sf))
            self._subflow_state[sf.id] = sf.state
            if sf.state == "established" and self._peer is None:
                self._peer, self._sock = sf.remote, sf.local
        for sid in list(self._subflow_state):
            if sid not in seen:
                if self._subflow_state[sid] == "established":
                    self._events.append(SubflowEvent("down", dataclasses.replace(
                        _GONE, id=sid, state="closed")))
                del self._subflow_state[sid]
        del self._events[:-1000]  # bounded if nobody reads them

    def _subflows_raw(self) -> List[SubflowInfo]:
        if self._ptr is None:
            return []
        arr = (_lib.mpt_subflow_info * _MAX_SUBFLOWS)()
        n = check(lib.mpt_get_subflows_sized(self._ptr, arr, _MAX_SUBFLOWS,
                                             ctypes.sizeof(_lib.mpt_subflow_info)),
                  "mpt_get_subflows")
        return [_subflow_from(arr[i]) for i in range(min(n, _MAX_SUBFLOWS))]

    # -- timeouts
    def settimeout(self, timeout: Optional[float]) -> None:
        """None: block; 0.0: non-blocking (BlockingIOError instead of
        waiting); > 0: each operation raises TimeoutError after that long."""
        if timeout is not None and timeout < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = None if timeout is None else float(timeout)

    def gettimeout(self) -> Optional[float]:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    @property
    def timeout(self) -> Optional[float]:
        return self._timeout

    # -- data
    def send(self, data, flags: int = 0, *, deadline: Optional[float] = None,
             redundant_below: Optional[int] = None) -> int:
        """Queues some of data and returns how many bytes (at least 1, or
        BlockingIOError in non-blocking mode). libmpt copies them.
        deadline (seconds) and redundant_below (bytes) are the per-message
        policy of mpt_send_msg (doc/policy.md) for the bytes this call
        queues: wanted at the peer within deadline of the call (never
        dropped when late), and sent on two paths if len(data) is below
        redundant_below. A blocking send that has to wait for buffer space
        waits with the policy kept."""
        addr, n, keep = _rbuf(data)
        if n == 0:
            return 0
        opts = _send_opts("send", deadline, redundant_below)
        p = self._enter()
        try:
            if opts is None:
                rc = lib.mpt_send(p, addr, n)
                if rc == _lib.MPT_EAGAIN or rc == _lib.MPT_ESTATE:
                    lib.mpt_ctx_process(self._ctx._ptr)
                    rc = lib.mpt_send(p, addr, n)
                    if (rc == _lib.MPT_EAGAIN or rc == _lib.MPT_ESTATE) and self._timeout != 0.0:
                        k = min(n, 256 * 1024)
                        rc = lib.mpt_blocking_send_all(p, addr, k, _timeout_ms(self._timeout))
            else:
                end = None if not self._timeout else time.monotonic() + self._timeout
                rc = self._send_msg_wait(p, addr, n, opts, end)
        finally:
            self._leave()
        if rc < 0:
            self._raise(rc, "send")
        return rc

    def _send_msg_wait(self, p, addr, n, opts, end):
        """mpt_send_msg until it takes at least one byte (lock held): in
        blocking mode it waits on the context's descriptor for buffer space
        until end (monotonic seconds, None: no limit), so every byte keeps
        its policy. Returns the count or a negative MPT_E* code."""
        ctx = self._ctx._ptr
        while True:
            rc = lib.mpt_send_msg(p, addr, n, ctypes.byref(opts))
            if rc != _lib.MPT_EAGAIN and rc != _lib.MPT_ESTATE:
                return rc
            lib.mpt_ctx_process(ctx)
            rc = lib.mpt_send_msg(p, addr, n, ctypes.byref(opts))
            if rc != _lib.MPT_EAGAIN and rc != _lib.MPT_ESTATE:
                return rc
            if self._timeout == 0.0:
                return _lib.MPT_EAGAIN
            if not self._ctx._wait(end):
                return _lib.MPT_ETIMEDOUT

    def sendall(self, data, flags: int = 0, *, deadline: Optional[float] = None,
                redundant_below: Optional[int] = None) -> None:
        """Queues all of data (the timeout bounds the whole call). Returns
        once it is in libmpt's send buffer; close() waits for delivery.
        deadline and redundant_below are send()'s per-message policy, for
        every byte (redundant_below compares with len(data)); a deadline
        counts from when each part is queued."""
        addr, n, keep = _rbuf(data)
        if n == 0:
            return
        if self._timeout == 0.0:
            raise ValueError("sendall() on a non-blocking connection: use send()")
        opts = _send_opts("sendall", deadline, redundant_below)
        p = self._enter()
        try:
            if opts is None:
                rc = lib.mpt_blocking_send_all(p, addr, n, _timeout_ms(self._timeout))
            else:
                if opts.redundant_below:
                    # the whole message decides, not the piece that fits now
                    opts.redundant_below = 0xFFFFFFFF if n < opts.redundant_below else 0
                end = None if not self._timeout else time.monotonic() + self._timeout
                off = 0
                rc = 0
                while off < n:
                    rc = self._send_msg_wait(p, addr + off, n - off, opts, end)
                    if rc < 0:
                        break
                    off += rc
        finally:
            self._leave()
        if rc < 0:
            self._raise(rc, "sendall")

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        """Receives up to nbytes (0: len(buffer)) into buffer; returns the
        count, 0 at the end of the stream."""
        addr, n, keep = _wbuf(buffer, nbytes)
        if n == 0 or self._rd_shut:
            return 0
        p = self._enter()
        try:
            if self._timeout == 0.0:
                rc = lib.mpt_recv(p, addr, n)
                if rc == _lib.MPT_EAGAIN or rc == _lib.MPT_ESTATE:
                    lib.mpt_ctx_process(self._ctx._ptr)
                    rc = lib.mpt_recv(p, addr, n)
                    if rc == _lib.MPT_ESTATE:
                        rc = _lib.MPT_EAGAIN
            else:
                rc = lib.mpt_blocking_recv(p, addr, n, _timeout_ms(self._timeout))
        finally:
            self._leave()
        if rc < 0:
            self._raise(rc, "recv")
        return rc

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receives up to bufsize bytes; b"" at the end of the stream."""
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        buf = bytearray(bufsize)
        n = self.recv_into(buf)
        del buf[n:]
        return bytes(buf)

    def makefile(self, mode: str = "r", buffering: Optional[int] = None, *,
                 encoding: Optional[str] = None, errors: Optional[str] = None,
                 newline: Optional[str] = None):
        """A file object reading and/or writing the connection, as
        socket.makefile(). Closing the file does not close the connection."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError("invalid mode %r (only r, w, b)" % (mode,))
        reading, writing, binary = "r" in mode, "w" in mode, "b" in mode
        if not reading and not writing:
            raise ValueError("mode must contain r or w")
        raw = _ConnIO(self, reading, writing)
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        if reading and writing:
            buf = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buf = io.BufferedReader(raw, buffering)
        else:
            buf = io.BufferedWriter(raw, buffering)
        if binary:
            return buf
        text = io.TextIOWrapper(buf, encoding, errors, newline)
        text.mode = mode
        return text

    def shutdown(self, how: int = socket.SHUT_WR) -> None:
        """SHUT_WR (or SHUT_RDWR): no more data will be sent, the peer
        reads end of stream after the last byte (mpt_shutdown). SHUT_RD
        only makes further recv() return b"" (libmpt has no read side
        shutdown)."""
        if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            raise ValueError("how must be SHUT_RD, SHUT_WR or SHUT_RDWR")
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._rd_shut = True
        if how == socket.SHUT_RD:
            return
        p = self._enter()
        try:
            rc = lib.mpt_shutdown(p)
        finally:
            self._leave()
        if rc < 0:
            self._raise(rc, "shutdown")

    def close(self) -> None:
        """Graceful close (mpt_blocking_close): shuts the sending side
        down, waits until the peer has everything and has closed too, then
        releases the connection. The wait is bounded by the timeout (or the
        context's close_timeout_ms, 10 s by default); past it the
        connection is aborted and TimeoutError raised. A connection that had
        already failed (the error was raised before) closes silently."""
        if self._ptr is None:
            return
        tmo = self._timeout if self._timeout else self._ctx.close_timeout
        p = self._enter()
        try:
            self._ptr = None
            self._ctx._socks.pop(p, None)
            rc = lib.mpt_blocking_close(p, _timeout_ms(tmo))
        finally:
            self._leave()
            self._release_ctx()
        if rc < 0 and (rc == _lib.MPT_ETIMEDOUT or not self._failed):
            raise error_for(rc, "close")

    def abort(self) -> None:
        """Releases the connection at once: FASTCLOSE to the peer, unsent
        data dropped (mpt_abort). Never blocks, never raises."""
        if self._ptr is None:
            return
        p = self._ptr
        self._ptr = None
        self._ctx._socks.pop(p, None)
        if self._ctx._ptr is not None:
            self._ctx._enter()
            try:
                lib.mpt_abort(p)
            finally:
                self._ctx._lock.release()
        self._release_ctx()

    def _release_ctx(self):
        if self._owns_ctx:
            self._ctx.close()

    def detach(self):
        raise NotImplementedError("an mpt.Connection has no kernel socket to detach")

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # An exception in the body: abort at once and let it propagate
        # unchanged (a graceful close could wait seconds for the peer).
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self):
        if getattr(self, "_ptr", None) is not None:
            try:
                self.abort()
            except Exception:
                pass

    # -- descriptors and names
    def fileno(self) -> int:
        """The context's readiness descriptor (mpt_ctx_fd), for selectors:
        readable when libmpt has subflow I/O to service, which may or may
        not end in data for this connection (the descriptor is shared by
        every connection of the context). After it is readable call recv()
        until BlockingIOError; also call process() when pending_timeout()
        passes. Do not read or close it."""
        return self._ctx.fileno()

    def pending_timeout(self) -> Optional[float]:
        """See Context.pending_timeout()."""
        return self._ctx.pending_timeout()

    def process(self) -> None:
        """See Context.process()."""
        self._ctx.process()

    @property
    def context(self) -> Context:
        return self._ctx

    @property
    def family(self) -> int:
        return socket.AF_INET6 if self.getpeername()[0].count(":") else socket.AF_INET

    @property
    def type(self) -> int:
        return socket.SOCK_STREAM

    def getpeername(self) -> Address:
        """The server address of the first subflow, (host, port)."""
        if self._peer is None:
            self._snapshot_now()
        if self._peer is None:
            raise OSError(107, "mpt.Connection has no established subflow")  # ENOTCONN
        return self._peer

    def getsockname(self) -> Address:
        """The local address of the first subflow, (host, port)."""
        if self._sock is None:
            self._snapshot_now()
        if self._sock is None:
            raise OSError(107, "mpt.Connection has no established subflow")
        return self._sock

    def _snapshot_now(self):
        self._enter()
        try:
            self._snapshot()
        finally:
            self._leave()

    # -- introspection and path control
    def info(self) -> Info:
        """Connection totals (mpt_get_info)."""
        c = _lib.mpt_info()
        c.size = ctypes.sizeof(c)
        p = self._enter()
        try:
            check(lib.mpt_get_info(p, ctypes.byref(c)), "mpt_get_info")
        finally:
            self._leave()
        return _info_from(c)

    def subflows(self) -> List[SubflowInfo]:
        """The subflows that exist, then (client) one record per path slot
        waiting to retry after a failure (state "failed", failures,
        retry_ms)."""
        self._enter()
        try:
            return self._subflows_raw()
        finally:
            self._leave()

    def subflow_events(self) -> List[SubflowEvent]:
        """The subflow events seen since the last call (oldest first). They
        are collected whenever the context's loop runs (any blocking call,
        process(), run(), wait_subflows())."""
        ev, self._events = self._events, []
        return ev

    def wait_subflows(self, count: int, timeout: Optional[float] = 10.0) -> int:
        """Runs the loop until at least count subflows are established;
        returns how many are. Raises TimeoutError if that takes longer."""
        deadline = None if timeout is None else _now() + timeout
        while True:
            n = self.info().subflows_established
            if n >= count:
                return n
            left = None if deadline is None else deadline - _now()
            if left is not None and left <= 0:
                raise Timeout(_lib.MPT_ETIMEDOUT, "wait_subflows(%d): %d established"
                              % (count, n))
            self._ctx.run(0.02 if left is None else min(0.02, left))

    def add_path(self, path: str) -> int:
        """Client: adds a local path while connected (a source address or
        an interface name, "/backup" suffix for a backup path); returns
        its path id."""
        p = self._enter()
        try:
            rc = lib.mpt_add_path(p, path.encode())
        finally:
            self._leave()
        return check(rc, "add_path %s" % path)

    def remove_path(self, path_id: int) -> None:
        """Closes the path's subflows and stops re-creating them."""
        p = self._enter()
        try:
            rc = lib.mpt_remove_path(p, int(path_id))
        finally:
            self._leave()
        check(rc, "remove_path %d" % path_id)

    def set_backup(self, path_id: int, backup: bool = True) -> None:
        """Marks a path's subflows backup (True) or regular (False); on the
        server side path_id is a subflow id (SubflowInfo.id)."""
        p = self._enter()
        try:
            rc = lib.mpt_set_backup(p, int(path_id), 1 if backup else 0)
        finally:
            self._leave()
        check(rc, "set_backup %d" % path_id)

    def set_priority(self, path_id: int, priority: str) -> None:
        """The path's tier (mpt_set_priority(3), doc/policy.md): "primary"
        (or "regular"), "secondary", "backup" or "never"; on the server side
        path_id is a subflow id (SubflowInfo.id)."""
        if priority not in _PRIORITIES:
            raise ValueError('priority must be one of "primary", "secondary", "backup", '
                             '"never" (or "regular"), not %r' % (priority,))
        p = self._enter()
        try:
            rc = lib.mpt_set_priority(p, int(path_id), _PRIORITIES[priority])
        finally:
            self._leave()
        check(rc, "set_priority %d" % path_id)

    def set_budget(self, path_id: int, nbytes: int) -> None:
        """A byte budget for the path (mpt_set_path_budget(3), doc/policy.md):
        once nbytes of data were handed to it, it drops to "backup" and a
        SubflowEvent "budget" is queued (once). 0 removes it. On the server
        side path_id is a subflow id (SubflowInfo.id)."""
        if int(nbytes) < 0:
            raise ValueError("nbytes must be >= 0, not %r" % (nbytes,))
        p = self._enter()
        try:
            rc = lib.mpt_set_path_budget(p, int(path_id), int(nbytes))
            if rc == 0:
                self._budget_seen.clear()  # a new budget: its spending is news again
        finally:
            self._leave()
        check(rc, "set_budget %d" % path_id)

    def set_rate_cap(self, path_id: int, bytes_per_s: int) -> None:
        """At most bytes_per_s of data handed to the path (mpt_set_path_rate(3));
        0 removes the cap."""
        if int(bytes_per_s) < 0:
            raise ValueError("bytes_per_s must be >= 0, not %r" % (bytes_per_s,))
        p = self._enter()
        try:
            rc = lib.mpt_set_path_rate(p, int(path_id), int(bytes_per_s))
        finally:
            self._leave()
        check(rc, "set_rate_cap %d" % path_id)

    def tls_info(self) -> Dict[str, Any]:
        """TLS of this connection (mpt_get_tls_info): full_handshakes,
        resumed_handshakes, suite ("" without TLS) and error (or None)."""
        ti = _lib.mpt_tls_info()
        ti.size = ctypes.sizeof(ti)
        p = self._enter()
        try:
            rc = lib.mpt_get_tls_info(p, ctypes.byref(ti))
        finally:
            self._leave()
        check(rc, "tls_info")
        return {"full_handshakes": ti.full_handshakes, "resumed_handshakes": ti.resumed_handshakes,
                "suite": _lib.decode(ti.suite) if ti.suite else "",
                "error": _lib.decode(ti.error) if ti.error else None}

    def set_mode(self, mode: Union[int, str]) -> None:
        """Switches the service mode while connected: "aggregate" (the
        default), "handover" or "interactive" (doc/policy.md)."""
        m = _mode(mode)
        p = self._enter()
        try:
            rc = lib.mpt_set_mode(p, m)
        finally:
            self._leave()
        check(rc, "set_mode %s" % (mode,))

    def set_scheduler(self, name: str) -> None:
        """Switches the scheduler while connected ("minrtt", "roundrobin",
        "redundant", "blest", "ecf", "weighted")."""
        p = self._enter()
        try:
            rc = lib.mpt_set_scheduler(p, name.encode())
        finally:
            self._leave()
        check(rc, "set_scheduler %s" % name)

    def set_congestion(self, name: str) -> None:
        """Switches the connection-level congestion control ("uncoupled",
        "lia", "olia", "balia")."""
        p = self._enter()
        try:
            rc = lib.mpt_set_cc(p, name.encode())
        finally:
            self._leave()
        check(rc, "set_congestion %s" % name)

    def __repr__(self):
        state = "closed" if self._ptr is None else "open"
        return "<mpt.Connection %s peer=%r>" % (state, self._peer)


_GONE = SubflowInfo(0, -1, "closed", None, None, "", False, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1)


def _now() -> float:
    import time
    return time.monotonic()


class _ConnIO(io.RawIOBase):
    """The raw stream under Connection.makefile()."""

    def __init__(self, conn: Connection, reading: bool, writing: bool):
        super().__init__()
        self._conn, self._r, self._w = conn, reading, writing

    def readable(self):
        return self._r

    def writable(self):
        return self._w

    def readinto(self, b):
        if self._conn._timeout == 0.0:
            try:
                return self._conn.recv_into(b)
            except BlockingIOError:
                return None
        return self._conn.recv_into(b)

    def write(self, b):
        if self._conn._timeout == 0.0:
            try:
                return self._conn.send(b)
            except BlockingIOError:
                return None
        self._conn.sendall(b)
        return memoryview(b).nbytes

    def fileno(self):
        return self._conn.fileno()


# ---- server ---------------------------------------------------------------------------------

class Server:
    """A listening endpoint, used like a listening socket.socket. Made by
    create_server(). Accepted connections share its context."""

    def __init__(self, ctx: Context, ptr: int, timeout: Optional[float], owns_ctx: bool,
                 host: str):
        self._ctx, self._ptr, self._timeout, self._owns_ctx = ctx, ptr, timeout, owns_ctx
        self._host = host

    @property
    def port(self) -> int:
        """The bound port."""
        if self._ptr is None:
            raise OSError(9, "mpt.Server is closed")
        return lib.mpt_listener_port(self._ptr)

    def getsockname(self) -> Address:
        return (self._host, self.port)

    def set_advertised(self, addresses: Sequence[str]) -> None:
        """Replaces the addresses advertised (ADD_ADDR) to connections
        accepted from now on: "ADDR", "V4:PORT" or "[V6]:PORT", at most 8;
        [] advertises nothing (mpt_listener_set_advertised, e.g. behind a
        load balancer)."""
        if self._ptr is None:
            raise OSError(9, "mpt.Server is closed")
        arr, n, keep = _strv(list(addresses))
        self._ctx._enter()
        try:
            rc = lib.mpt_listener_set_advertised(self._ptr, arr, n)
        finally:
            self._ctx._leave()
        check(rc, "set_advertised")

    def settimeout(self, timeout: Optional[float]) -> None:
        """Timeout of accept(); new connections start with the same."""
        if timeout is not None and timeout < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = timeout

    def gettimeout(self) -> Optional[float]:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def accept(self) -> Tuple[Connection, Address]:
        """Waits for an established connection; returns (connection,
        peer address). TimeoutError after the timeout, BlockingIOError in
        non-blocking mode when none is ready."""
        if self._ptr is None:
            raise OSError(9, "mpt.Server is closed")
        out = ctypes.c_void_p()
        ctx = self._ctx
        ctx._enter()
        try:
            if self._timeout == 0.0:
                lib.mpt_ctx_process(ctx._ptr)
                rc = lib.mpt_accept_sized(self._ptr, None, 0, None, ctypes.byref(out))
            else:
                rc = lib.mpt_blocking_accept(self._ptr, _timeout_ms(self._timeout),
                                             ctypes.byref(out))
        finally:
            ctx._leave()
        check(rc, "accept on port %d" % self.port)
        conn = Connection(ctx, out.value, self._timeout, owns_ctx=False)
        try:
            peer = conn.getpeername()
        except OSError:
            peer = None
        return conn, peer

    def fileno(self) -> int:
        """The context's readiness descriptor (see Connection.fileno)."""
        return self._ctx.fileno()

    @property
    def context(self) -> Context:
        return self._ctx

    def close(self) -> None:
        """Stops listening. If the server made its own context (no
        ``context=``), that is freed too: connections accepted from it and
        still open are aborted, so close them first."""
        if self._ptr is None:
            return
        p, self._ptr = self._ptr, None
        if self._ctx._ptr is not None:
            self._ctx._enter()
            try:
                lib.mpt_listener_close(p)
            finally:
                self._ctx._lock.release()
        if self._owns_ctx:
            self._ctx.close()

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self):
        return "<mpt.Server %s>" % ("closed" if self._ptr is None else "port %d" % self.port)


# ---- constructors -----------------------------------------------------------------------------

def create_connection(address: Tuple[str, int], timeout: Any = _DEFAULT, *,
                      paths: Optional[Sequence[str]] = None, scheduler: Optional[str] = None,
                      congestion: Optional[str] = None,
                      config: Union[None, Config, Mapping[str, Any]] = None,
                      context: Optional[Context] = None,
                      tls: Optional[TLSConfig] = None,
                      mode: Union[None, int, str] = None) -> Connection:
    """Connects to address (host, port) over the local paths (source
    addresses or interface names, "/backup" suffix for backup paths; None:
    the configuration decides) and waits for the multipath handshake.
    timeout bounds the connect and becomes the connection's timeout
    (default: socket.getdefaulttimeout()). scheduler / congestion choose the
    algorithms; config is an mpt.Config (or a dict of its fields) for the
    connection's own context. With context= the connection uses that
    context (and config must be None). tls= an mpt.TLSConfig: TLS on every
    subflow (the same as config.tls). mode= the service mode ("aggregate",
    "handover", "interactive"; the same as config.service_mode)."""
    host, port = address[0], address[1]
    if mode is not None:
        mode = _mode(mode)
    hostb = _addr(host, "create_connection")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("create_connection: port must be 1..65535, not %r" % (port,))
    if timeout is _DEFAULT:
        timeout = socket.getdefaulttimeout()
    owns = context is None
    if owns:
        ctx = Context(config, scheduler=scheduler, congestion=congestion, tls=tls,
                      service_mode=mode)
    else:
        if config is not None or tls is not None:
            raise ValueError("config= and tls= apply to a new context, not to context=")
        ctx = context
    try:
        arr, n, keep = _strv(paths)
        out = ctypes.c_void_p()
        tmo = _timeout_ms(timeout) if timeout else -1
        ptr = ctx._enter()
        try:
            rc, why = ctx._connect_wait(hostb, port, arr, n, tmo, out)
        finally:
            ctx._leave()
        check(rc, "connect to %s:%d%s" % (host, port, why))
        conn = Connection(ctx, out.value, timeout, owns_ctx=owns)
        if not owns:
            if scheduler:
                conn.set_scheduler(scheduler)
            if congestion:
                conn.set_congestion(congestion)
            if mode is not None:
                conn.set_mode(mode)
        return conn
    except BaseException:
        if owns:
            ctx.close()
        raise


def create_server(address: Tuple[Optional[str], int] = ("", 0), *,
                  addresses: Optional[Sequence[str]] = None,
                  config: Union[None, Config, Mapping[str, Any]] = None,
                  scheduler: Optional[str] = None, congestion: Optional[str] = None,
                  timeout: Optional[float] = None,
                  context: Optional[Context] = None,
                  tls: Optional[TLSConfig] = None,
                  mode: Union[None, int, str] = None) -> Server:
    """Listens on address (host, port): host "" or None is the IPv6 and
    IPv4 wildcard, port 0 an ephemeral port (Server.port tells which).
    addresses lists several numeric addresses to listen on instead of
    host, the same port on each; clients are told about the others and
    join them. config, scheduler, congestion and context as for
    create_connection."""
    host, port = address
    if addresses is None and host:
        addresses = [host]
    owns = context is None
    if not owns and tls is not None:
        raise ValueError("tls= applies to a new context, not to context=")
    if not owns and mode is not None:
        raise ValueError("mode= applies to a new context, not to context= (use set_mode)")
    ctx = (Context(config, scheduler=scheduler, congestion=congestion, tls=tls,
                   service_mode=None if mode is None else _mode(mode)) if owns else context)
    try:
        arr, n, keep = _strv(addresses)
        out = ctypes.c_void_p()
        ptr = ctx._enter()
        try:
            rc = lib.mpt_listen(ptr, arr, n, int(port), None, None, ctypes.byref(out))
        finally:
            ctx._leave()
        check(rc, "listen on %s port %d" % (",".join(addresses or ["*"]), port))
        return Server(ctx, out.value, timeout, owns, (addresses or [""])[0])
    except BaseException:
        if owns:
            ctx.close()
        raise
