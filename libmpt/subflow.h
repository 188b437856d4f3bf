/*
 * The kernel socket of one subflow (subflow.c): what sock.c, paths.c and
 * listener.c hand it and ask of it.
 */
#ifndef MPT_SUBFLOW_H
#define MPT_SUBFLOW_H

#include <net/if.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sock.h"
#include "transport.h"

struct mpt_sfio {
    struct mpt_socket *s;
    int idx;                         /* engine subflow index */
    int fd;
    struct mpt_tp *tp;               /* the byte stream on fd (transport.h), or NULL */
    int tp_ready;                    /* its own handshake is over: frames flow */
    int slot;                        /* client: path-manager slot, or -1 */
    int connecting;
    struct mpt_io io;
    struct mpt_tmr ctimer;           /* connect timeout (client) */
    size_t room_left;
    uint64_t last_info;
    size_t sent_since_info;          /* bytes written since the last TCP_INFO sample */
    struct mpt_sf_info info;
    struct sockaddr_storage local, remote;
    char ifname[IF_NAMESIZE];
    int down_reported;
    int fail_error;                  /* MPT_E* cause seen by the I/O layer, or 0 */
    int sys_errno;                   /* the errno behind fail_error, or 0 */
    int eof_seen;                    /* peer FIN during a graceful close */
    unsigned lowat;                  /* TCP_NOTSENT_LOWAT set now (0: the configured one) */
    int traced_stall;                /* the stall state last traced (sock.c) */
};

struct mpt_sfio *mpt_sock_attach(struct mpt_socket *s, int idx, int fd, int connecting);
/* The same with the transport already running on fd (the server's TLS):
 * the subflow owns tp from now on, also when NULL is returned. local, peer:
 * the listener's own address and the one accept4() gave, or NULL (or
 * AF_UNSPEC) to ask the kernel. */
struct mpt_sfio *mpt_sock_attach_tp(struct mpt_socket *s, int idx, int fd, struct mpt_tp *tp,
                                    const struct sockaddr_storage *local,
                                    const struct sockaddr_storage *peer);
void mpt_sock_sf_input(struct mpt_socket *s, struct mpt_sfio *sf, const uint8_t *data,
                       size_t len, uint64_t now);
int mpt_sock_setopts(struct mpt_ctx *ctx, int fd); /* 0 or an errno */
/* Test-only accessor (not exported in the installed header). */
int mpt_io_test_subflow_fd(struct mpt_socket *s, int sf);

void mpt_sfio_close(struct mpt_socket *s, struct mpt_sfio *sf);
/* Reads what sf's transport already holds (a TLS record read ahead with the
 * first frame), which no readable socket would announce. */
void mpt_sfio_read_held(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);
/* Reads what sf's socket has now, whatever the loop has reported: before a
 * timeout that fires late (sock.c), so that a busy process does not call a
 * peer silent whose answer is waiting in the socket. */
void mpt_sfio_read_late(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);
void mpt_sfio_fail_sys(struct mpt_socket *s, struct mpt_sfio *sf, const char *what, int e,
                       uint64_t now);
void mpt_sfio_flush(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);
void mpt_sfio_connected(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);
void mpt_sfio_sample_info(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);
/* Whether a sample older than min_age is worth taking now: bytes in flight
 * or unsent at the last one, more than a few control frames written since,
 * or a second old (an idle subflow: its PINGs and PONGs change nothing the
 * engine reads from it; issue 15). */
int mpt_sfio_info_due(const struct mpt_sfio *sf, uint64_t now, uint64_t min_age);
void mpt_sfio_linger_close(struct mpt_ctx *ctx, int fd);
/* A subflow's socket, created, configured, bound (ifname "" and src
 * AF_UNSPEC: not) and connecting to dst. 0 (*fd set, *in_progress until
 * connect() finishes) or the errno of the step that failed (*what). */
int mpt_sfio_socket(struct mpt_ctx *ctx, const char *ifname, const struct sockaddr_storage *src,
                    socklen_t srclen, const struct sockaddr_storage *dst, socklen_t dstlen,
                    int *fd, int *in_progress, const char **what);

#endif
