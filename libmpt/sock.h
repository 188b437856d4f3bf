/*
 * One multipath connection of the I/O layer (sock.c), as the files that
 * carry it out see it: its subflow sockets (subflow.h), its client paths
 * (paths.h, whose structs only paths.c sees) and its listener (listener.h).
 */
#ifndef MPT_SOCK_H
#define MPT_SOCK_H

#include <stdint.h>
#include <sys/queue.h>

#include "ctx.h"

#define MPT_IO_MAX_PATHS 16           /* MPT_PM_MAX_PATHS */

struct mpt_sfio;
struct mpt_paths;

struct mpt_socket {
    struct mpt_ctx *ctx;
    LIST_ENTRY(mpt_socket) link;     /* ctx->socks */
    TAILQ_ENTRY(mpt_socket) qlink;   /* its listener's accept queue while queued */
    unsigned id;                     /* for traces */
    struct mpt_conn *c;              /* NULL until started */
    int server;
    struct mpt_listener *listener;   /* server side, until the listener is gone */
    struct mpt_peer_count *peer;     /* server: its source address's count (listener.c) */
    struct mpt_callbacks cb;
    void *user;
    int pull;                        /* no callbacks: events go to ctx->evq */
    struct mpt_evsrc evsrc;
    struct mpt_tmr timer;            /* engine deadline, or 0 for a kick */
    struct mpt_sfio *sf[MPT_MAX_SUBFLOWS_LIMIT];
    int established, done, released, accepted, queued, error;
    int sys_errno;                   /* errno behind `error`, or 0 (mpt_info) */
    int last_fail_error, last_sys_errno; /* the latest subflow syscall failure */
    int busy;
    int shut;
    uint64_t trace_reinj;            /* reinjected bytes already traced */
    const struct mpt_sched_ops *sched; /* chosen before the engine exists */
    int mode;                          /* mpt_set_mode before the engine exists, -1 none */
    const struct mpt_cc_ops *cc;
    /* client */
    char *host;
    uint16_t port;
    struct mpt_resolve_req *rreq;
    struct mpt_paths *paths;         /* client only: its path manager (paths.c) */
    /* TLS (ctx->tls) */
    void *tls_session;               /* client: the first subflow's session, to resume */
    uint32_t tls_full, tls_resumed;  /* handshakes completed on its subflows */
    const char *tls_suite;           /* the first subflow's suite (static), or NULL */
    char tls_error[192];             /* why the last TLS handshake failed, or "" */
};

struct mpt_socket *mpt_sock_alloc(struct mpt_ctx *ctx, int server);
/* Writes what the engine has, closes dead subflows, re-arms the timer;
 * events are delivered only with dispatch (from the loop). */
void mpt_sock_pump(struct mpt_socket *s, int dispatch);
/* mpt_blocking_recv's loan of its buffer to the engine while it waits
 * (mpt_conn_recv_lend): lend returns 1 if lent; unlend returns the bytes
 * delivered into the buffer meanwhile. */
int mpt_sock_recv_lend(struct mpt_socket *s, void *buf, size_t len);
size_t mpt_sock_recv_unlend(struct mpt_socket *s);
/* In-order bytes in the loan now, and whether it waits on a hole with
 * bytes held beyond it (mpt_conn_recv_lent, mpt_conn_recv_lend_waiting). */
size_t mpt_sock_recv_lent(const struct mpt_socket *s);
int mpt_sock_recv_lend_waiting(const struct mpt_socket *s);
void mpt_sock_kick(struct mpt_socket *s);
void mpt_sock_maybe_free(struct mpt_socket *s);
void mpt_sock_destroy(struct mpt_socket *s);

#endif
