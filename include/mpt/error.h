/*
 * libmpt error codes.
 *
 * Every libmpt function that can fail returns 0 (or a non-negative count) on
 * success and one of the negative MPT_E* codes below on failure. The list is
 * one X-macro so that the enum, mpt_strerror() and mpt_err_name() never drift.
 * Codes are stable ABI: new ones are appended, none is renumbered.
 *
 * System call failures are reported with the code of their cause where one
 * exists (MPT_ECONNREFUSED ... MPT_EAFNOSUPPORT, MPT_ETIMEDOUT, MPT_ENOMEM)
 * and MPT_ESYS otherwise; the raw errno is kept in struct mpt_info and
 * struct mpt_subflow_info (sys_errno).
 */
#ifndef MPT_ERROR_H
#define MPT_ERROR_H

#include <mpt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define MPT_ERRNO_MAP(X)                                                        \
    X(EINVAL,          -1, "invalid argument")                                  \
    X(ENOMEM,          -2, "out of memory")                                     \
    X(EAGAIN,          -3, "operation would block; try again when ready")       \
    X(EINCOMPLETE,     -4, "input ends inside a frame; more bytes are needed")  \
    X(EFRAME_LEN,      -5, "frame length field is invalid for its type")        \
    X(EFRAME_TOOBIG,   -6, "frame exceeds the maximum allowed size")            \
    X(EFRAME_RESERVED, -7, "reserved bits or fields are not zero")              \
    X(EFRAME_TYPE,     -8, "unknown mandatory frame type")                      \
    X(EFRAME_VALUE,    -9, "frame field has an invalid value")                  \
    X(EPREAMBLE,      -10, "subflow preamble is invalid (bad magic or kind)")   \
    X(EVERSION,       -11, "no protocol version in common with the peer")       \
    X(EAUTH,          -12, "authentication failed (bad HMAC)")                  \
    X(ETOKEN,         -13, "unknown connection token")                          \
    X(EREPLAY,        -14, "replayed join refused")                             \
    X(ETOOMANY,       -15, "subflow limit reached")                             \
    X(ESTATE,         -16, "operation not valid in the current state")          \
    X(ECLOSED,        -17, "connection is closed")                              \
    X(ERESET,         -18, "connection aborted by the peer (FASTCLOSE)")        \
    X(ETIMEDOUT,      -19, "operation timed out")                               \
    X(ENOPATH,        -20, "no usable path remains")                            \
    X(EPROTO,         -21, "peer violated the protocol")                        \
    X(EFLOW,          -22, "peer exceeded the advertised receive window")       \
    X(ENOBUFS,        -23, "buffer space exhausted (limit reached)")            \
    X(ENOTFOUND,      -24, "no such object")                                    \
    X(ESYS,           -25, "system call failed")                                \
    X(ERESOLVE,       -26, "name resolution failed")                            \
    X(ENOTSUP,        -27, "operation not supported")                           \
    X(EPIPE,          -28, "sending side already shut down")                    \
    X(ETLS,           -29, "TLS failure")                                       \
    X(ECONNREFUSED,   -30, "connection refused (nothing listens there)")        \
    X(EADDRINUSE,     -31, "address already in use")                            \
    X(EADDRNOTAVAIL,  -32, "address not available (not a local address)")       \
    X(ENODEV,         -33, "no such network interface")                         \
    X(ENETUNREACH,    -34, "network unreachable (no route, or link down)")      \
    X(EHOSTUNREACH,   -35, "host unreachable")                                  \
    X(EPERM,          -36, "permission denied")                                 \
    X(EMFILE,         -37, "too many open files")                               \
    X(ECONNRESET,     -38, "subflow reset by the peer (TCP RST)")               \
    X(EAFNOSUPPORT,   -39, "address family not supported on this host")

enum mpt_error {
    MPT_OK = 0,
#define MPT_ERR_ENUM_(name, value, msg) MPT_##name = (value),
    MPT_ERRNO_MAP(MPT_ERR_ENUM_)
#undef MPT_ERR_ENUM_
};

/* Human-readable text for an MPT_E* code (or "success" for 0). Never NULL;
 * the string is static and owned by the library. */
MPT_EXPORT const char *mpt_strerror(int err);

/* The code's symbolic name, for example "MPT_EAUTH". Never NULL; static. */
MPT_EXPORT const char *mpt_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
