/*
 * The context (ctx.c): configuration, the loop and what runs on it, the
 * sockets and listeners it holds, and the trace. Everything runs on the
 * loop thread; the only other thread is the name resolver's (resolve.h).
 */
#ifndef MPT_CTX_H
#define MPT_CTX_H

#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/queue.h>

#include <mpt/mpt.h>

#include "core/conn.h"
#include "events.h"
#include "netlink.h"
#include "random.h"
#include "resolve.h"
#include "util.h"
#include "watch.h"

/* The shared read buffer: a whole read batch plus one frame. */
#define MPT_IO_RBUF (256u * 1024u + MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY)
/* The smallest read when the engine asks for less (mpt_conn_recv_read_hint). */
#define MPT_IO_RBUF_MIN 4096u

struct mpt_socket;
struct mpt_listener;
struct mpt_tls;
struct mpt_linger;

struct mpt_ctx {
    struct ev_loop *loop;
    int own_loop;
    struct mpt_config cfg;           /* full copy, strings below */
    char *cfg_sched, *cfg_cc, *cfg_tcpcc;
    struct mpt_core_settings core;   /* derived from cfg */
    struct mpt_tls *tls;             /* cfg's TLS, loaded (tls.h), or NULL: plain TCP */
    uint64_t t0;                     /* trace epoch, ns */
    uint8_t *rbuf;                   /* shared read buffer, MPT_IO_RBUF bytes */
    struct mpt_watchers ws;          /* every watcher and timer (watcher.c, timer.c) */
    int wakefd;                      /* eventfd in ws.extfd: wake-ups, or -1; wake_mu */
    pthread_mutex_t wake_mu;
    struct mpt_netlink nl;           /* rtnetlink watcher */
    struct mpt_random rng;           /* the engine's randomness (random.h) */
    /* Source addresses a test bind accepted lately (paths.c check_path):
     * a burst of connections tests each once, not once per connection. */
    struct mpt_src_seen {
        struct sockaddr_storage a;
        uint64_t at;                 /* mpt_io_now() of the test; 0: empty */
    } src_seen[4];
    unsigned src_tests;              /* test binds made (test hook below) */
    LIST_HEAD(, mpt_linger) lingers; /* subflow sockets closing gracefully (subflow.c) */
    LIST_HEAD(, mpt_socket) socks;   /* every socket, both roles */
    LIST_HEAD(, mpt_listener) listeners;
    unsigned nconns;
    unsigned next_conn_id;
    /* limits (listener.c): pending handshakes oldest first, connections per
     * source address (buckets of MPT_PEER_BUCKETS, NULL until the first) */
    TAILQ_HEAD(mpt_pendq, mpt_pending) pendq;
    unsigned npending;
    struct mpt_peer_count **peers;
    struct mpt_ctx_stats stats;      /* counters; conns and pending filled on demand */
    int in_cb;                       /* application callback depth */
    int breaking;
    /* trace */
    FILE *trace_fp;
    mpt_trace_cb trace_cb;
    void *trace_user;
    struct mpt_resolver resolver;
    /* pull-style events and mpt_ctx_wakeup (events.c) */
    struct mpt_evsrc_q evq;
    ev_async wake_async;
    int wake_pending;
    int running;                     /* inside mpt_ctx_run: a wake-up ends it */
};

/* Test-only (not in the installed header): how many test binds check_path
 * made. */
unsigned mpt_io_test_src_tests(const struct mpt_ctx *ctx);

/* Trace: cheap check first. */
#define MPT_TRACING(ctx) ((ctx)->trace_fp != NULL || (ctx)->trace_cb != NULL)
void mpt_trace_emit(struct mpt_ctx *ctx, unsigned conn, const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define MPT_TRACE(ctx, conn, ev, ...)                                                       \
    do {                                                                                     \
        if (MPT_TRACING(ctx))                                                                \
            mpt_trace_emit((ctx), (conn), (ev), __VA_ARGS__);                                \
    } while (0)

/* What mpt_ctx_free asks of the files that own the context's handles. */
void mpt_sock_free_all(struct mpt_ctx *ctx);      /* sock.c: every socket, no callback */
void mpt_listener_free_all(struct mpt_ctx *ctx);  /* listener.c */
void mpt_peer_counts_free(struct mpt_ctx *ctx);   /* listener.c: the per-address table */
void mpt_sock_linger_flush(struct mpt_ctx *ctx);  /* subflow.c: lingering closes end */

#endif
