"""mpt.Error and its subclasses: OSError kinds with errno set."""

import errno as _errno

from . import _lib

# MPT_E* name -> the errno that means the same, where one exists.
_ERRNO = {
    "EINVAL": _errno.EINVAL, "ENOMEM": _errno.ENOMEM, "EAGAIN": _errno.EAGAIN,
    "ETOOMANY": _errno.EMLINK, "ESTATE": _errno.ENOTCONN, "ECLOSED": _errno.ENOTCONN,
    "ERESET": _errno.ECONNRESET, "ETIMEDOUT": _errno.ETIMEDOUT, "ENOPATH": _errno.ENETUNREACH,
    "EPROTO": _errno.EPROTO, "EFLOW": _errno.EPROTO, "ENOBUFS": _errno.ENOBUFS,
    "ENOTFOUND": _errno.ENOENT, "ENOTSUP": _errno.EOPNOTSUPP, "EPIPE": _errno.EPIPE,
    "ECONNREFUSED": _errno.ECONNREFUSED, "EADDRINUSE": _errno.EADDRINUSE,
    "EADDRNOTAVAIL": _errno.EADDRNOTAVAIL, "ENODEV": _errno.ENODEV,
    "ENETUNREACH": _errno.ENETUNREACH, "EHOSTUNREACH": _errno.EHOSTUNREACH,
    "EPERM": _errno.EPERM, "EMFILE": _errno.EMFILE, "ECONNRESET": _errno.ECONNRESET,
    "EAFNOSUPPORT": _errno.EAFNOSUPPORT, "EAUTH": _errno.EACCES,
}


class Error(OSError):
    """A libmpt error. ``code`` is the negative MPT_E* value, ``name`` its
    symbol ("MPT_ETIMEDOUT"), ``errno`` the matching errno (or None),
    ``strerror`` libmpt's text. Catch the OSError kind (TimeoutError,
    ConnectionRefusedError, ...) or mpt.Error for every libmpt failure."""

    def __init__(self, code, context=None):
        code = int(code)
        name = _lib.decode(_lib.lib.mpt_err_name(code))
        text = _lib.decode(_lib.lib.mpt_strerror(code))
        en = _ERRNO.get(name[4:] if name.startswith("MPT_") else name)
        super().__init__(en, "%s (%s)" % (text, name))
        self.code = code
        self.name = name
        self.context = context

    def __str__(self):
        s = "[%s] %s" % (self.name, self.strerror)
        return "%s: %s" % (self.context, s) if self.context else s

    def __reduce__(self):
        return (error_for, (self.code, self.context))


class Timeout(Error, TimeoutError):
    """MPT_ETIMEDOUT: a timeout passed (errno ETIMEDOUT)."""


class ConnectionRefused(Error, ConnectionRefusedError):
    """MPT_ECONNREFUSED: nothing listens at the address."""


class ConnectionReset(Error, ConnectionResetError):
    """MPT_ERESET (the peer aborted: FASTCLOSE) or MPT_ECONNRESET (TCP RST)."""


class BrokenPipe(Error, BrokenPipeError):
    """MPT_EPIPE: sending after shutdown()."""


class WouldBlock(Error, BlockingIOError):
    """MPT_EAGAIN in non-blocking mode: retry when ready."""


class NotConnected(Error):
    """MPT_ESTATE / MPT_ECLOSED: not valid in the connection's state."""


class AddressError(Error):
    """A local path or listening address is not usable (MPT_EADDRINUSE,
    MPT_EADDRNOTAVAIL, MPT_ENODEV, MPT_ERESOLVE)."""


_KINDS = {
    "MPT_ETIMEDOUT": Timeout, "MPT_ECONNREFUSED": ConnectionRefused,
    "MPT_ERESET": ConnectionReset, "MPT_ECONNRESET": ConnectionReset,
    "MPT_EPIPE": BrokenPipe, "MPT_EAGAIN": WouldBlock,
    "MPT_ESTATE": NotConnected, "MPT_ECLOSED": NotConnected,
    "MPT_EADDRINUSE": AddressError, "MPT_EADDRNOTAVAIL": AddressError,
    "MPT_ENODEV": AddressError, "MPT_ERESOLVE": AddressError,
}


def error_for(code, context=None):
    """The mpt.Error (subclass) instance for a negative MPT_E* code."""
    name = _lib.decode(_lib.lib.mpt_err_name(int(code)))
    return _KINDS.get(name, Error)(code, context)


def check(rc, context):
    if rc < 0:
        raise error_for(rc, context)
    return rc
