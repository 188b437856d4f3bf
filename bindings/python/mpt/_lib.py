"""ctypes declarations of include/mpt/mpt.h and the loading of libmpt.

ABI mode through the standard library's ctypes: nothing to compile and no
dependency to install. ctypes releases the GIL around every foreign call,
so a blocking libmpt call never holds up other Python threads.

The declarations are a copy of the header, kept honest by
test_declarations.py, which compiles a C program that checks every size,
offset, enum value and prototype below against the real header and that
every MPT_EXPORT function of the header is either declared here or listed
in UNWRAPPED.
"""

import ctypes
import ctypes.util
import os

c_int, c_uint32, c_uint64, c_size_t, c_ssize_t = (ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64,
                                                   ctypes.c_size_t, ctypes.c_ssize_t)
c_char_p, c_void_p, c_uint16 = ctypes.c_char_p, ctypes.c_void_p, ctypes.c_uint16


class sockaddr_storage(ctypes.Structure):
    # glibc's Linux layout: 128 bytes, aligned like unsigned long.
    _fields_ = [("ss_family", ctypes.c_ushort),
                ("__ss_padding", ctypes.c_char * 118),
                ("__ss_align", ctypes.c_ulong)]


class mpt_tls_config(ctypes.Structure):
    _fields_ = [("size", c_size_t),
                ("ca_file", c_char_p),
                ("ca_path", c_char_p),
                ("cert_file", c_char_p),
                ("key_file", c_char_p),
                ("server_name", c_char_p),
                ("psk", ctypes.POINTER(ctypes.c_uint8)),
                ("psk_len", c_size_t),
                ("psk_identity", c_char_p),
                ("insecure_skip_verify", c_int)]


class mpt_tls_info(ctypes.Structure):
    _fields_ = [("size", c_size_t),
                ("full_handshakes", c_uint32),
                ("resumed_handshakes", c_uint32),
                ("suite", c_char_p),
                ("error", c_char_p)]


class mpt_config(ctypes.Structure):
    _fields_ = [("size", c_size_t),
                ("max_subflows", c_uint32),
                ("sndbuf", c_size_t),
                ("rcvbuf", c_size_t),
                ("connect_timeout_ms", c_uint32),
                ("handshake_timeout_ms", c_uint32),
                ("close_timeout_ms", c_uint32),
                ("user_timeout_ms", c_uint32),
                ("subflow_timeout_ms", c_uint32),
                ("ping_interval_ms", c_uint32),
                ("notsent_lowat", c_uint32),
                ("write_budget", c_uint32),
                ("reconnect_min_ms", c_uint32),
                ("reconnect_max_ms", c_uint32),
                ("subflows_per_path", c_uint32),
                ("listen_backlog", c_uint32),
                ("max_connections", c_uint32),
                ("scheduler", c_char_p),
                ("congestion", c_char_p),
                ("tcp_congestion", c_char_p),
                ("fullmesh", c_int),
                ("include_loopback", c_int),
                ("advertise_addresses", c_int),
                ("reserved0", c_uint32),
                ("ack_timeout_ms", c_uint32),
                ("server_id", c_uint32),
                ("tls", ctypes.POINTER(mpt_tls_config)),
                ("max_pending_handshakes", c_uint32),
                ("max_conns_per_addr", c_uint32),
                ("service_mode", c_uint32),
                ("rcvbuf_initial", c_size_t),
                ("sndbuf_initial", c_size_t)]


class mpt_send_opts(ctypes.Structure):
    _fields_ = [("size", c_size_t),
                ("redundant_below", c_uint32),
                ("deadline_ms", c_uint32),
                ("flags", c_uint32)]


class mpt_ctx_event(ctypes.Structure):
    _fields_ = [("size", c_size_t),
                ("type", c_int),
                ("status", c_int),
                ("socket", c_void_p),
                ("listener", c_void_p),
                ("user", c_void_p)]


class mpt_ctx_stats(ctypes.Structure):
    _fields_ = [("size", c_size_t),
                ("conns", c_uint64),
                ("pending", c_uint64),
                ("refused_max_connections", c_uint64),
                ("refused_per_addr", c_uint64),
                ("pending_evicted", c_uint64),
                ("pending_timed_out", c_uint64)]


class mpt_subflow_info(ctypes.Structure):
    _fields_ = [("id", c_int),
                ("path_id", c_int),
                ("state", c_int),
                ("local", sockaddr_storage),
                ("remote", sockaddr_storage),
                ("ifname", ctypes.c_char * 16),
                ("backup", c_int),
                ("rtt_us", c_uint64),
                ("rttvar_us", c_uint64),
                ("cwnd_bytes", c_uint32),
                ("total_retrans", c_uint32),
                ("bytes_sent", c_uint64),
                ("bytes_acked", c_uint64),
                ("fail_error", c_int),
                ("fail_reason", c_uint32),
                ("sys_errno", c_int),
                ("failures", c_uint32),
                ("retry_ms", c_int),
                ("bytes_received", c_uint64),
                ("priority", c_int),
                ("budget_bytes", c_uint64),
                ("budget_used", c_uint64),
                ("rate_cap", c_uint64),
                ("budget_spent", c_int)]


class mpt_info(ctypes.Structure):
    _fields_ = [("size", c_size_t),
                ("state", c_int),
                ("error", c_int),
                ("bytes_sent", c_uint64),
                ("bytes_acked", c_uint64),
                ("bytes_received", c_uint64),
                ("bytes_reinjected", c_uint64),
                ("reinjections", c_uint64),
                ("snd_buffered", c_size_t),
                ("rcv_buffered", c_size_t),
                ("subflows", c_uint32),
                ("subflows_established", c_uint32),
                ("sys_errno", c_int),
                ("unacked_bytes", c_uint64),
                ("subflows_opened", c_uint64),
                ("subflows_failed", c_uint64),
                ("scheduler", c_char_p),
                ("congestion", c_char_p),
                ("reorder_frames", c_uint64),
                ("reorder_p50_us", c_uint64),
                ("reorder_p99_us", c_uint64),
                ("reorder_max_us", c_uint64),
                ("peer_text", c_char_p),
                ("rcv_window", c_size_t),
                ("rcv_allocated", c_size_t),
                ("snd_allocated", c_size_t)]


STRUCTS = {"mpt_config": mpt_config, "mpt_send_opts": mpt_send_opts, "mpt_ctx_event": mpt_ctx_event,
           "mpt_ctx_stats": mpt_ctx_stats,
           "mpt_subflow_info": mpt_subflow_info, "mpt_info": mpt_info,
           "mpt_tls_config": mpt_tls_config, "mpt_tls_info": mpt_tls_info}

# The enums of mpt.h (the error codes come from mpt_err_name at run time
# and are checked against error.h by the drift test as well).
ENUMS = {
    "MPT_EVENT_ACCEPT": 1, "MPT_EVENT_CONNECTED": 2, "MPT_EVENT_SUBFLOWS": 3,
    "MPT_EVENT_READABLE": 4, "MPT_EVENT_WRITABLE": 5, "MPT_EVENT_CLOSED": 6,
    "MPT_EVENT_WAKEUP": 7, "MPT_EVENT_BUDGET_SPENT": 8,
    "MPT_STATE_CONNECTING": 0, "MPT_STATE_ESTABLISHED": 1, "MPT_STATE_CLOSING": 2,
    "MPT_STATE_CLOSED": 3, "MPT_STATE_ABORTED": 4,
    "MPT_SUBFLOW_CONNECTING": 0, "MPT_SUBFLOW_HANDSHAKE": 1, "MPT_SUBFLOW_ESTABLISHED": 2,
    "MPT_SUBFLOW_CLOSING": 3, "MPT_SUBFLOW_FAILED": 4, "MPT_SUBFLOW_CLOSED": 5,
    "MPT_PRIORITY_PRIMARY": 0, "MPT_PRIORITY_BACKUP": 1, "MPT_PRIORITY_SECONDARY": 2,
    "MPT_PRIORITY_NEVER": 3,
    "MPT_MODE_AGGREGATE": 0, "MPT_MODE_HANDOVER": 1, "MPT_MODE_INTERACTIVE": 2,
}
globals().update(ENUMS)

# MPT_E* codes by name, as error.h numbers them (stable ABI: appended only).
ERRORS = {
    "EINVAL": -1, "ENOMEM": -2, "EAGAIN": -3, "EINCOMPLETE": -4, "EFRAME_LEN": -5,
    "EFRAME_TOOBIG": -6, "EFRAME_RESERVED": -7, "EFRAME_TYPE": -8, "EFRAME_VALUE": -9,
    "EPREAMBLE": -10, "EVERSION": -11, "EAUTH": -12, "ETOKEN": -13, "EREPLAY": -14,
    "ETOOMANY": -15, "ESTATE": -16, "ECLOSED": -17, "ERESET": -18, "ETIMEDOUT": -19,
    "ENOPATH": -20, "EPROTO": -21, "EFLOW": -22, "ENOBUFS": -23, "ENOTFOUND": -24,
    "ESYS": -25, "ERESOLVE": -26, "ENOTSUP": -27, "EPIPE": -28, "ETLS": -29,
    "ECONNREFUSED": -30, "EADDRINUSE": -31, "EADDRNOTAVAIL": -32, "ENODEV": -33,
    "ENETUNREACH": -34, "EHOSTUNREACH": -35, "EPERM": -36, "EMFILE": -37,
    "ECONNRESET": -38, "EAFNOSUPPORT": -39,
}
for _n, _v in ERRORS.items():
    globals()["MPT_" + _n] = _v

_P = c_void_p
_PP = ctypes.POINTER(c_void_p)
_STRV = ctypes.POINTER(c_char_p)

# name: (restype, argtypes), in the order of mpt.h.
FUNCS = {
    "mpt_version": (c_char_p, []),
    "mpt_strerror": (c_char_p, [c_int]),
    "mpt_err_name": (c_char_p, [c_int]),
    "mpt_tls_config_check": (c_int, [ctypes.POINTER(mpt_tls_config), ctypes.c_char_p, c_size_t]),
    "mpt_config_default": (None, [ctypes.POINTER(mpt_config), c_size_t]),
    "mpt_ctx_new": (c_int, [_PP, _P, ctypes.POINTER(mpt_config)]),
    "mpt_ctx_free": (None, [_P]),
    "mpt_ctx_run": (c_int, [_P, c_int]),
    "mpt_ctx_break": (None, [_P]),
    "mpt_ctx_fd": (c_int, [_P]),
    "mpt_ctx_timeout": (c_int, [_P]),
    "mpt_ctx_process": (c_int, [_P]),
    "mpt_ctx_wakeup": (c_int, [_P]),
    "mpt_ctx_next_event": (c_int, [_P, ctypes.POINTER(mpt_ctx_event)]),
    "mpt_ctx_get_stats": (c_int, [_P, ctypes.POINTER(mpt_ctx_stats)]),
    "mpt_set_trace_file": (c_int, [_P, c_char_p]),
    "mpt_state_name": (c_char_p, [c_int]),
    "mpt_subflow_state_name": (c_char_p, [c_int]),
    "mpt_set_callbacks_sized": (c_int, [_P, _P, c_size_t, _P]),
    "mpt_connect_sized": (c_int, [_P, c_char_p, c_uint16, _STRV, c_size_t, _P, c_size_t, _P,
                                  _PP]),
    "mpt_listen": (c_int, [_P, _STRV, c_size_t, c_uint16, _P, _P, _PP]),
    "mpt_listener_port": (c_int, [_P]),
    "mpt_listener_set_advertised": (c_int, [_P, _STRV, c_size_t]),
    "mpt_listener_close": (None, [_P]),
    "mpt_accept_sized": (c_int, [_P, _P, c_size_t, _P, _PP]),
    "mpt_send": (c_ssize_t, [_P, _P, c_size_t]),
    "mpt_send_msg": (c_ssize_t, [_P, _P, c_size_t, ctypes.POINTER(mpt_send_opts)]),
    "mpt_recv": (c_ssize_t, [_P, _P, c_size_t]),
    "mpt_shutdown": (c_int, [_P]),
    "mpt_close": (c_int, [_P]),
    "mpt_abort": (c_int, [_P]),
    "mpt_add_path": (c_int, [_P, c_char_p]),
    "mpt_remove_path": (c_int, [_P, c_int]),
    "mpt_set_backup": (c_int, [_P, c_int, c_int]),
    "mpt_set_priority": (c_int, [_P, c_int, c_int]),
    "mpt_set_path_budget": (c_int, [_P, c_int, c_uint64]),
    "mpt_set_path_rate": (c_int, [_P, c_int, c_uint64]),
    "mpt_set_scheduler": (c_int, [_P, c_char_p]),
    "mpt_set_mode": (c_int, [_P, c_int]),
    "mpt_set_cc": (c_int, [_P, c_char_p]),
    "mpt_get_info": (c_int, [_P, ctypes.POINTER(mpt_info)]),
    "mpt_get_tls_info": (c_int, [_P, ctypes.POINTER(mpt_tls_info)]),
    "mpt_get_subflows_sized": (c_int, [_P, ctypes.POINTER(mpt_subflow_info), c_size_t,
                                       c_size_t]),
    "mpt_blocking_connect": (c_int, [_P, c_char_p, c_uint16, _STRV, c_size_t, c_int, _PP]),
    "mpt_blocking_accept": (c_int, [_P, c_int, _PP]),
    "mpt_blocking_send_all": (c_ssize_t, [_P, _P, c_size_t, c_int]),
    "mpt_blocking_recv": (c_ssize_t, [_P, _P, c_size_t, c_int]),
    "mpt_blocking_close": (c_int, [_P, c_int]),
}

# Exported functions of the header the bindings deliberately do not call:
# the callback API (the bindings use pull-style events instead, so that C
# never calls into Python), the unsized 0.1.0 entry points, the libev loop.
UNWRAPPED = {
    "mpt_ctx_loop", "mpt_set_trace_callback", "mpt_set_callbacks", "mpt_get_user",
    "mpt_connect", "mpt_accept", "mpt_get_subflows",
}


def _candidates():
    env = os.environ.get("MPT_LIBRARY")
    if env:
        return [env]
    found = []
    try:
        from . import _install  # written by `make install`: the libdir it installed to
        import glob
        found += sorted(glob.glob(os.path.join(_install.LIBDIR, "libmpt.so.*")), key=len)
        found.append(os.path.join(_install.LIBDIR, "libmpt.so"))
    except ImportError:
        pass
    name = ctypes.util.find_library("mpt")
    if name:
        found.append(name)
    found.append("libmpt.so.0")
    return found


def _load():
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            errors.append("%s: %s" % (path, e))
    else:
        raise ImportError("libmpt not found (%s); set MPT_LIBRARY to the path of libmpt.so "
                          "or install libmpt where the dynamic linker finds it"
                          % "; ".join(errors))
    for fname, (res, args) in FUNCS.items():
        f = getattr(lib, fname)
        f.restype = res
        f.argtypes = args
    return lib


lib = _load()


def decode(p):
    """A C string (bytes from a c_char_p) as str; None stays None."""
    return None if p is None else p.decode("utf-8", "replace")
