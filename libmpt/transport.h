/*
 * The byte stream under one subflow: plain TCP (transport_plain.c) or TLS
 * over it (transport_tls.c). subflow.c and listener.c drive a subflow's
 * socket only through this table, so the pump does not care which one it
 * has. A transport borrows the socket: the subflow opens and closes the fd.
 *
 * handshake, read and writev behave like the system calls: a byte count
 * (handshake: 0 once frames can flow), 0 at the end of the stream (read),
 * or -1 with errno (EAGAIN: not now, and `want` says which readiness lets
 * it go on). A failure of the transport's
 * own protocol (a TLS alert, a bad record) is -1 with errno EPROTO and
 * `error` set to the MPT_E* code, `why` to what happened.
 */
#ifndef MPT_TRANSPORT_H
#define MPT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct mpt_tp;

struct mpt_tp_ops {
    const char *name;
    /* Runs the transport's own handshake as far as the socket allows. */
    int (*handshake)(struct mpt_tp *tp);
    ssize_t (*read)(struct mpt_tp *tp, uint8_t *buf, size_t len);
    /* All iovecs in order, as far as the socket takes them: one sendmsg on
     * plain TCP, whole records with TLS. n == 0 only pushes out_pending. */
    ssize_t (*writev)(struct mpt_tp *tp, const struct iovec *iov, int n);
    /* A keying-material exporter (RFC 5705) over the finished handshake:
     * 0, or MPT_ENOTSUP (plain TCP) / MPT_ESTATE. */
    int (*export_secret)(struct mpt_tp *tp, const char *label, uint8_t *out, size_t len);
    /* Frees the transport (not the fd). */
    void (*free)(struct mpt_tp *tp);
};

struct mpt_tp {
    const struct mpt_tp_ops *ops;
    int fd;                          /* borrowed */
    int want;                        /* EV_READ / EV_WRITE it waits for after EAGAIN */
    int error;                       /* MPT_E* after a failure of its own, else 0 */
    size_t pending;                  /* read: bytes it holds that no readable socket
                                        will announce (the rest of a TLS record) */
    int out_pending;                 /* written: bytes it took are not all on the socket
                                        yet; writev(tp, NULL, 0) when writable */
    char why[192];                   /* that failure, for humans and the trace */
};

/* Plain TCP on fd; NULL without memory. */
struct mpt_tp *mpt_tp_plain_new(int fd);

static inline int mpt_tp_handshake(struct mpt_tp *tp)
{
    return tp->ops->handshake(tp);
}

static inline ssize_t mpt_tp_read(struct mpt_tp *tp, uint8_t *buf, size_t len)
{
    return tp->ops->read(tp, buf, len);
}

static inline ssize_t mpt_tp_writev(struct mpt_tp *tp, const struct iovec *iov, int n)
{
    return tp->ops->writev(tp, iov, n);
}

static inline void mpt_tp_free(struct mpt_tp *tp)
{
    if (tp != NULL)
        tp->ops->free(tp);
}

#endif
