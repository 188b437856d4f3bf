"""asyncio support: open_connection() and start_server() with the standard
asyncio.StreamReader / StreamWriter over libmpt connections.

How it runs: one libmpt context per event loop (or per ``config=``) is
driven from the loop's thread only. The loop watches the context's
readiness descriptor (loop.add_reader(mpt_ctx_fd)) and a timer for
mpt_ctx_timeout(); each time either fires, mpt_ctx_process() runs and the
pull-style events (mpt_ctx_next_event: ACCEPT, CONNECTED, SUBFLOWS,
READABLE, WRITABLE, CLOSED) are handed to the transports. C never calls
into Python, so no Python code ever runs on a foreign thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import _lib
from ._core import (Config, Context, Info, SubflowEvent, SubflowInfo, _info_from, _rbuf,
                    _strv, _subflow_from, _addr, _MAX_SUBFLOWS)
from ._errors import Error, error_for, check

lib = _lib.lib

__all__ = ["open_connection", "start_server", "Transport", "Server"]

_READ_CHUNK = 256 * 1024
_READ_BUDGET = 4 * 1024 * 1024  # per transport and pass, so that one cannot starve others


class _Driver:
    """Runs one libmpt context from an asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config, key):
        self.loop = loop
        self.key = key
        self.ctx = Context(config)
        self.ptr = self.ctx._ptr
        self.close_timeout = self.ctx.close_timeout
        self.fd = check(lib.mpt_ctx_fd(self.ptr), "mpt_ctx_fd")
        self.handles: Dict[int, Any] = {}
        self.users = 0
        self.dispatching = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._soon: Optional[asyncio.Handle] = None
        self._ev = _lib.mpt_ctx_event()
        self._rbuf = bytearray(_READ_CHUNK)
        self._rview = memoryview(self._rbuf)
        self._rc = (ctypes.c_char * _READ_CHUNK).from_buffer(self._rbuf)
        self.raddr = ctypes.addressof(self._rc)
        loop.add_reader(self.fd, self.run)

    def acquire(self):
        self.users += 1

    def release(self):
        self.users -= 1
        if self.users <= 0:
            self.loop.call_soon(self._maybe_free)

    def _maybe_free(self):
        if self.users > 0 or self.ptr is None:
            return
        _drivers.pop(self.key, None)
        self.loop.remove_reader(self.fd)
        if self._timer is not None:
            self._timer.cancel()
        if self._soon is not None:
            self._soon.cancel()
        self.ptr = None
        self._rview.release()
        del self._rc
        self.ctx.close()

    def kick(self):
        """A libmpt call was made outside run() (it may have queued events
        or started a timer): process soon. Inside dispatch() schedule()
        follows anyway."""
        if self._soon is None and self.ptr is not None and not self.dispatching:
            self._soon = self.loop.call_soon(self.run)

    def run(self):
        self._soon = None
        if self.ptr is None:
            return
        lib.mpt_ctx_process(self.ptr)
        self.dispatch()

    def dispatch(self):
        self.dispatching = True
        try:
            self._dispatch()
        finally:
            self.dispatching = False
        self.schedule()

    def _dispatch(self):
        ev = self._ev
        ev.size = ctypes.sizeof(ev)
        ptr = self.ptr
        while ptr is not None and lib.mpt_ctx_next_event(ptr, ctypes.byref(ev)) == 0:
            key = ev.socket or ev.listener
            h = self.handles.get(key)
            if h is not None:
                try:
                    h._event(ev.type, ev.status)
                except Exception as e:  # a protocol's bug must not stop the loop for all
                    self.loop.call_exception_handler({
                        "message": "mpt.asyncio: exception in event handler",
                        "exception": e, "transport": h})
            ptr = self.ptr

    def schedule(self):
        if self.ptr is None:
            return
        ms = lib.mpt_ctx_timeout(self.ptr)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if ms == 0:
            self.kick()
        elif ms > 0:
            self._timer = self.loop.call_later(ms / 1000.0, self.run)


_drivers: Dict[Any, _Driver] = {}


def _driver(config) -> _Driver:
    loop = asyncio.get_running_loop()
    # One context per loop and configuration: equal configs share it.
    if config is None:
        ck = None
    elif isinstance(config, Config):
        ck = repr(config)
    else:
        ck = repr(sorted(dict(config).items()))
    key = ("shared", id(loop), ck)
    d = _drivers.get(key)
    if d is not None and d.loop is loop and not loop.is_closed():
        return d
    d = _Driver(loop, config, key)
    _drivers[key] = d
    return d


class Transport(asyncio.Transport):
    """An asyncio transport over one libmpt connection (writer.transport).
    Besides the asyncio.Transport methods it has the path control and
    introspection of mpt.Connection: info(), subflows(), subflow_events(),
    wait_subflows(), add_path(), remove_path(), set_backup(),
    set_scheduler(), set_congestion()."""

    def __init__(self, driver: _Driver, ptr: int, protocol: asyncio.BaseProtocol):
        super().__init__(extra={})
        self._d = driver
        self._ptr: Optional[int] = ptr
        self._protocol = protocol
        self._buf = bytearray()
        self._high, self._low = 64 * 1024, 16 * 1024
        self._writing_paused = False
        self._reading_paused = False
        self._eof_wanted = False
        self._eof_sent = False
        self._eof_seen = False
        self._closed_pending = False
        self._closing = False
        self._lost = False
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self._sf_state: Dict[int, str] = {}
        self._sf_events: List[SubflowEvent] = []
        self._sf_waiters: List[Tuple[int, asyncio.Future]] = []
        driver.handles[ptr] = self
        driver.acquire()
        self._names()
        protocol.connection_made(self)
        driver.loop.call_soon(self._read_ready)

    # -- extra info
    def _names(self):
        for sf in self._subflows_raw():
            if sf.state == "established":
                self._extra.setdefault("peername", sf.remote)
                self._extra.setdefault("sockname", sf.local)
                break
        self._extra["mpt_transport"] = self

    # -- events from the driver
    def _event(self, kind: int, status: int):
        if kind == _lib.MPT_EVENT_READABLE:
            self._read_ready()
        elif kind == _lib.MPT_EVENT_WRITABLE:
            self._write_ready()
        elif kind == _lib.MPT_EVENT_SUBFLOWS:
            self._subflows_changed()
        elif kind == _lib.MPT_EVENT_CLOSED:
            self._on_closed(status)

    def _read_ready(self):
        if self._ptr is None or self._reading_paused or self._closing:
            if self._closing and self._ptr is not None:
                self._discard()
            return
        d, ptr, got = self._d, self._ptr, 0
        while not self._reading_paused and self._ptr is not None:
            n = lib.mpt_recv(ptr, d.raddr, _READ_CHUNK)
            if n > 0:
                got += n
                self._protocol.data_received(bytes(d._rview[:n]))
                if got >= _READ_BUDGET:
                    d.loop.call_soon(self._read_ready)
                    break
            elif n == 0:
                self._reading_paused = True  # nothing more will come
                self._eof_seen = True
                keep_open = self._protocol.eof_received()
                if self._closed_pending:
                    self._release(None)
                elif not keep_open:
                    self.close()
                break
            elif n == _lib.MPT_EAGAIN or n == _lib.MPT_ESTATE:
                break
            else:
                self._fatal(error_for(n, "recv"))
                break
        self._d.kick()  # mpt_recv opens the window: output and events may follow

    def _discard(self):
        while self._ptr is not None and lib.mpt_recv(self._ptr, self._d.raddr, _READ_CHUNK) > 0:
            pass

    def _write_ready(self):
        if self._ptr is None:
            return
        if self._buf:
            if not self._flush():
                return
        if self._eof_wanted and not self._eof_sent:
            self._send_eof()
        if self._closing and not self._buf:
            self._close_when_done()

    def _flush(self) -> bool:
        """Sends from the buffer; True when it is empty."""
        buf = self._buf
        while buf:
            c = (ctypes.c_char * len(buf)).from_buffer(buf)
            n = lib.mpt_send(self._ptr, ctypes.addressof(c), len(buf))
            del c
            if n > 0:
                del buf[:n]
            elif n == _lib.MPT_EAGAIN or n == _lib.MPT_ESTATE:
                break
            else:
                self._fatal(error_for(n, "send"))
                return False
        self._maybe_resume_writing()
        self._d.kick()
        return not buf

    def _maybe_pause_writing(self):
        if not self._writing_paused and len(self._buf) > self._high:
            self._writing_paused = True
            try:
                self._protocol.pause_writing()
            except Exception as e:
                self._d.loop.call_exception_handler({"message": "pause_writing() failed",
                                                     "exception": e, "transport": self})

    def _maybe_resume_writing(self):
        if self._writing_paused and len(self._buf) <= self._low:
            self._writing_paused = False
            try:
                self._protocol.resume_writing()
            except Exception as e:
                self._d.loop.call_exception_handler({"message": "resume_writing() failed",
                                                     "exception": e, "transport": self})

    def _subflows_changed(self):
        seen = set()
        for sf in self._subflows_raw():
            seen.add(sf.id)
            before = self._sf_state.get(sf.id)
            if sf.state == "established" and before != "established":
                self._sf_events.append(SubflowEvent("up", sf))
            elif before == "established" and sf.state != "established":
                self._sf_events.append(SubflowEvent("down", sf))
            elif sf.state == "failed" and before != "failed":
                self._sf_events.append(SubflowEvent("failed", sf))
            self._sf_state[sf.id] = sf.state
        for sid in [s for s in self._sf_state if s not in seen]:
            del self._sf_state[sid]
        del self._sf_events[:-1000]
        n = sum(1 for s in self._sf_state.values() if s == "established")
        for item in list(self._sf_waiters):
            if n >= item[0]:
                self._sf_waiters.remove(item)
                if not item[1].done():
                    item[1].set_result(n)

    def _on_closed(self, status: int):
        if status < 0:
            self._fatal(error_for(status, "connection"))
        elif not self._eof_seen and not self._closing:
            # Closed gracefully with data still unread (reading paused):
            # release once the protocol has read up to the end of stream.
            self._closed_pending = True
            self._read_ready()
        else:
            self._release(None)

    def _fatal(self, exc: Optional[BaseException]):
        self._release(exc)

    def _release(self, exc, abort=False):
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self._d.handles.pop(ptr, None)
            (lib.mpt_abort if abort else lib.mpt_close)(ptr)
            self._d.kick()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._buf.clear()
        for _, fut in self._sf_waiters:
            if not fut.done():
                fut.set_exception(exc or ConnectionResetError("mpt connection closed"))
        self._sf_waiters.clear()
        if not self._lost:
            self._lost = True
            self._closing = True
            self._d.loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._d.release()

    # -- asyncio.Transport
    def write(self, data) -> None:
        if self._eof_wanted:
            raise RuntimeError("cannot write() after write_eof()")
        if self._closing or self._ptr is None:
            return  # like the selector transports: silently dropped once closing
        addr, n, keep = _rbuf(data)
        if n == 0:
            return
        if not self._buf:
            sent = lib.mpt_send(self._ptr, addr, n)
            if sent == n:
                self._d.kick()
                return
            if sent < 0 and sent not in (_lib.MPT_EAGAIN, _lib.MPT_ESTATE):
                self._fatal(error_for(sent, "send"))
                return
            if sent > 0:
                data = memoryview(data).cast("B")[sent:] if type(data) is not bytes \
                    else memoryview(data)[sent:]
            self._d.kick()
        self._buf += data
        self._maybe_pause_writing()

    def writelines(self, list_of_data) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._eof_wanted or self._ptr is None:
            return
        self._eof_wanted = True
        if not self._buf:
            self._send_eof()

    def _send_eof(self):
        self._eof_sent = True
        rc = lib.mpt_shutdown(self._ptr)
        self._d.kick()
        if rc < 0 and rc != _lib.MPT_EPIPE:
            self._fatal(error_for(rc, "shutdown"))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Graceful: sends what is buffered, ends the stream, and once the
        peer has closed too (its data is discarded meanwhile) calls
        connection_lost(None). Past the context's close_timeout_ms (10 s by
        default) the connection is aborted and connection_lost gets
        TimeoutError."""
        if self._closing:
            return
        self._closing = True
        self._reading_paused = True
        if self._ptr is None:
            return
        self._close_timer = self._d.loop.call_later(self._d.close_timeout, self._close_timeout)
        if not self._buf:
            self._close_when_done()

    def _close_when_done(self):
        if self._ptr is None:
            return
        if not self._eof_sent:
            self._eof_wanted = True
            self._send_eof()
        self._discard()
        info = self.info() if self._ptr is not None else None
        if info is not None and info.state in ("closed", "aborted"):
            self._on_closed(info.error)

    def _close_timeout(self):
        self._close_timer = None
        if self._ptr is not None:
            self._release(error_for(_lib.MPT_ETIMEDOUT, "close"), abort=True)

    def abort(self) -> None:
        """Releases the connection at once (FASTCLOSE to the peer);
        connection_lost(None) follows."""
        self._release(None, abort=True)

    def get_write_buffer_size(self) -> int:
        return len(self._buf)

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: Optional[int] = None,
                                low: Optional[int] = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError("high (%r) must be >= low (%r) must be >= 0" % (high, low))
        self._high, self._low = high, low
        self._maybe_pause_writing()

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._closing or not self._reading_paused or self._eof_seen:
            return
        self._reading_paused = False
        self._d.loop.call_soon(self._read_ready)

    def is_reading(self) -> bool:
        return not self._reading_paused and not self._closing

    def set_protocol(self, protocol) -> None:
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    # -- libmpt extras
    def _subflows_raw(self) -> List[SubflowInfo]:
        if self._ptr is None:
            return []
        arr = (_lib.mpt_subflow_info * _MAX_SUBFLOWS)()
        n = check(lib.mpt_get_subflows_sized(self._ptr, arr, _MAX_SUBFLOWS,
                                             ctypes.sizeof(_lib.mpt_subflow_info)),
                  "mpt_get_subflows")
        return [_subflow_from(arr[i]) for i in range(min(n, _MAX_SUBFLOWS))]

    def _need(self) -> int:
        if self._ptr is None:
            raise OSError(9, "mpt connection is closed")
        return self._ptr

    def info(self) -> Info:
        c = _lib.mpt_info()
        c.size = ctypes.sizeof(c)
        check(lib.mpt_get_info(self._need(), ctypes.byref(c)), "mpt_get_info")
        return _info_from(c)

    def subflows(self) -> List[SubflowInfo]:
        self._need()
        return self._subflows_raw()

    def subflow_events(self) -> List[SubflowEvent]:
        ev, self._sf_events = self._sf_events, []
        return ev

    async def wait_subflows(self, count: int) -> int:
        """Waits until at least count subflows are established (bound it
        with asyncio.wait_for); returns how many are."""
        n = self.info().subflows_established
        if n >= count:
            return n
        fut = self._d.loop.create_future()
        self._sf_waiters.append((count, fut))
        return await fut

    def _call(self, rc: int, what: str) -> int:
        self._d.kick()
        return check(rc, what)

    def add_path(self, path: str) -> int:
        return self._call(lib.mpt_add_path(self._need(), path.encode()), "add_path " + path)

    def remove_path(self, path_id: int) -> None:
        self._call(lib.mpt_remove_path(self._need(), int(path_id)), "remove_path")

    def set_backup(self, path_id: int, backup: bool = True) -> None:
        self._call(lib.mpt_set_backup(self._need(), int(path_id), int(bool(backup))),
                   "set_backup")

    def set_scheduler(self, name: str) -> None:
        self._call(lib.mpt_set_scheduler(self._need(), name.encode()), "set_scheduler " + name)

    def set_congestion(self, name: str) -> None:
        self._call(lib.mpt_set_cc(self._need(), name.encode()), "set_congestion " + name)

    def __del__(self):
        if getattr(self, "_ptr", None) is not None and not self._d.loop.is_closed():
            pass  # still registered in the driver: nothing is leaked, the driver frees it


class _PendingConnect:
    def __init__(self, driver: _Driver, ptr: int, fut: asyncio.Future):
        self.d, self.ptr, self.fut = driver, ptr, fut

    def _event(self, kind: int, status: int):
        if kind == _lib.MPT_EVENT_CONNECTED:
            self.d.handles.pop(self.ptr, None)
            if self.fut.done():  # cancelled meanwhile
                lib.mpt_abort(self.ptr)
                self.d.release()
            elif status < 0:
                lib.mpt_close(self.ptr)
                self.d.release()
                self.fut.set_exception(error_for(status, "connect"))
            else:
                self.fut.set_result(self.ptr)
        elif kind == _lib.MPT_EVENT_CLOSED and not self.fut.done():
            self.d.handles.pop(self.ptr, None)
            lib.mpt_close(self.ptr)
            self.d.release()
            self.fut.set_exception(error_for(status or _lib.MPT_ECLOSED, "connect"))


async def _connect(host, port, paths, scheduler, congestion, config, protocol_factory):
    hostb = _addr(host, "open_connection")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("open_connection: port must be 1..65535, not %r" % (port,))
    d = _driver(config)
    arr, n, keep = _strv(paths)
    out = ctypes.c_void_p()
    d.acquire()
    try:
        check(lib.mpt_connect_sized(d.ptr, hostb, port, arr, n, None, 0, None,
                                    ctypes.byref(out)), "connect to %s:%d" % (host, port))
    except BaseException:
        d.release()
        raise
    ptr = out.value
    fut = d.loop.create_future()
    d.handles[ptr] = _PendingConnect(d, ptr, fut)
    d.kick()
    try:
        await fut
    except asyncio.CancelledError:
        if d.handles.pop(ptr, None) is not None:
            lib.mpt_abort(ptr)
            d.release()
            d.kick()
        raise
    try:
        if scheduler:
            check(lib.mpt_set_scheduler(ptr, scheduler.encode()), "set_scheduler")
        if congestion:
            check(lib.mpt_set_cc(ptr, congestion.encode()), "set_congestion")
        t = Transport(d, ptr, protocol_factory())
    finally:
        d.release()  # the transport holds its own reference
    return t


async def create_connection(protocol_factory: Callable[[], asyncio.BaseProtocol], host: str,
                            port: int, *, paths: Optional[Sequence[str]] = None,
                            scheduler: Optional[str] = None, congestion: Optional[str] = None,
                            config: Union[None, Config, Mapping[str, Any]] = None):
    """The protocol-level call, like loop.create_connection(): returns
    (transport, protocol)."""
    t = await _connect(host, port, paths, scheduler, congestion, config, protocol_factory)
    return t, t.get_protocol()


async def open_connection(host: str, port: int, *, paths: Optional[Sequence[str]] = None,
                          scheduler: Optional[str] = None, congestion: Optional[str] = None,
                          config: Union[None, Config, Mapping[str, Any]] = None,
                          limit: int = 2 ** 16
                          ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connects to host:port over the local paths (as mpt.create_connection)
    and returns a standard (StreamReader, StreamWriter) pair. Bound the wait
    with asyncio.wait_for(); errors are mpt.Error kinds
    (ConnectionRefusedError, ...). writer.transport is an
    mpt.asyncio.Transport (subflows(), info(), add_path(), ...)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    t = await _connect(host, port, paths, scheduler, congestion, config, lambda: protocol)
    writer = asyncio.StreamWriter(t, protocol, reader, loop)
    return reader, writer


class Server:
    """A listening endpoint under asyncio (start_server() returns it).
    Accepted connections are served by client_connected_cb(reader, writer)."""

    def __init__(self, d: _Driver, ptr: int, factory: Callable[[], asyncio.BaseProtocol]):
        self._d, self._ptr, self._factory = d, ptr, factory
        self._port = lib.mpt_listener_port(ptr)
        self._closed = d.loop.create_future()
        d.handles[ptr] = self
        d.acquire()

    @property
    def port(self) -> int:
        """The bound port."""
        return self._port

    def _event(self, kind: int, status: int):
        if kind != _lib.MPT_EVENT_ACCEPT or self._ptr is None:
            return
        out = ctypes.c_void_p()
        while self._ptr is not None and \
                lib.mpt_accept_sized(self._ptr, None, 0, None, ctypes.byref(out)) == 0:
            Transport(self._d, out.value, self._factory())

    def get_loop(self):
        return self._d.loop

    def is_serving(self) -> bool:
        return self._ptr is not None

    def close(self) -> None:
        """Stops listening; connections being served go on."""
        if self._ptr is None:
            return
        ptr, self._ptr = self._ptr, None
        self._d.handles.pop(ptr, None)
        lib.mpt_listener_close(ptr)
        self._d.kick()
        self._d.release()
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Returns once close() was called."""
        await asyncio.shield(self._closed)

    async def start_serving(self) -> None:
        pass  # serving starts at once

    async def serve_forever(self) -> None:
        """Serves until cancelled (then the server is closed)."""
        try:
            await asyncio.shield(self._closed)
        finally:
            self.close()

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()
        await self.wait_closed()


async def start_server(client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                     Optional[Awaitable[None]]],
                       host: Optional[str] = None, port: int = 0, *,
                       addresses: Optional[Sequence[str]] = None,
                       scheduler: Optional[str] = None, congestion: Optional[str] = None,
                       config: Union[None, Config, Mapping[str, Any]] = None,
                       limit: int = 2 ** 16) -> Server:
    """Listens on host (None or "": the wildcards) or on each of addresses,
    at port (0: ephemeral; Server.port tells it), and calls
    client_connected_cb(reader, writer) for each connection (a coroutine
    function is run as a task), as asyncio.start_server() does."""
    if addresses is None and host:
        addresses = [host]
    d = _driver(Config(scheduler=scheduler, congestion=congestion)
                if config is None and (scheduler or congestion) else config)
    loop = d.loop
    arr, n, keep = _strv(addresses)
    out = ctypes.c_void_p()
    d.acquire()
    try:
        check(lib.mpt_listen(d.ptr, arr, n, int(port), None, None, ctypes.byref(out)),
              "listen on %s port %d" % (",".join(addresses or ["*"]), port))
        def factory():
            reader = asyncio.StreamReader(limit=limit, loop=loop)
            return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)
        srv = Server(d, out.value, factory)
    finally:
        d.release()
    d.kick()
    return srv
