"""Python bindings for libmpt: one connection over several network paths
(multipath, above ordinary kernel TCP), used like the socket module.

    import mpt
    with mpt.create_connection(("server", 4000), paths=["10.0.0.2", "10.1.0.2"]) as c:
        c.sendall(b"hello")
        print(c.recv(100))

mpt.asyncio has open_connection() and start_server() with the standard
asyncio StreamReader / StreamWriter. doc/python.md is the manual.

libmpt.so is loaded from $MPT_LIBRARY if set, else from where `make install`
put it, else wherever the dynamic linker finds libmpt.
"""

from ._errors import (AddressError, BrokenPipe, ConnectionRefused, ConnectionReset, Error,
                      NotConnected, Timeout, WouldBlock, error_for)
from ._core import (Config, Connection, Context, Info, Server, SubflowEvent, SubflowInfo, TLSConfig,
                    STATE_NAMES, SUBFLOW_STATE_NAMES, create_connection, create_server, version)
from . import _lib

MPT_MODE_AGGREGATE = _lib.MPT_MODE_AGGREGATE
MPT_MODE_HANDOVER = _lib.MPT_MODE_HANDOVER
MPT_MODE_INTERACTIVE = _lib.MPT_MODE_INTERACTIVE

__version__ = version()

__all__ = [
    "AddressError", "BrokenPipe", "Config", "Connection", "ConnectionRefused",
    "ConnectionReset", "Context", "Error", "Info", "NotConnected", "Server", "SubflowEvent",
    "SubflowInfo", "TLSConfig", "Timeout", "WouldBlock", "STATE_NAMES", "SUBFLOW_STATE_NAMES",
    "create_connection", "create_server", "error_for", "version",
    "MPT_MODE_AGGREGATE", "MPT_MODE_HANDOVER", "MPT_MODE_INTERACTIVE",
]
