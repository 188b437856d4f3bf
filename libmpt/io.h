/*
 * The I/O layer's internal types: libev watchers and kernel sockets around
 * the sans-I/O engine (core/conn.h). Everything here runs on the context's
 * loop thread; the only other thread is the name resolver's, which hands its
 * result back through an ev_async (resolve.c).
 */
#ifndef MPT_IO_H
#define MPT_IO_H

#include <ev.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <mpt/mpt.h>

#include "core/conn.h"
#include "netlink.h"
#include "resolve.h"
#include "util.h"
#include "watch.h"

/* ---- Pull-style events (events.c) -------------------------------------------- */

/* Embedded in a socket or listener without callbacks: its pending events,
 * one bit per kind, and its place in the context's queue (at most once). */
struct mpt_evsrc {
    TAILQ_ENTRY(mpt_evsrc) link;
    unsigned pending;                /* 1u << enum mpt_ctx_event_type */
    int queued;
    int connected_status, closed_status;
    struct mpt_socket *s;            /* exactly one of s and l */
    struct mpt_listener *l;
};
TAILQ_HEAD(mpt_evsrc_q, mpt_evsrc);

struct mpt_ctx;
int mpt_events_init(struct mpt_ctx *ctx);
void mpt_events_fini(struct mpt_ctx *ctx);
void mpt_evq_post(struct mpt_ctx *ctx, struct mpt_evsrc *src, enum mpt_ctx_event_type type,
                  int status);
void mpt_evq_forget(struct mpt_ctx *ctx, struct mpt_evsrc *src);

/* struct mpt_callbacks as libmpt 0.1.0 had it: what the unsized entry
 * points (mpt_connect, mpt_accept, mpt_set_callbacks) receive. */
#define MPT_CALLBACKS_SIZE_0_1 (7 * sizeof(void (*)(void)))
_Static_assert(sizeof(struct mpt_callbacks) >= MPT_CALLBACKS_SIZE_0_1,
               "struct mpt_callbacks only grows");
struct mpt_socket;
int mpt_callbacks_size_ok(const struct mpt_callbacks *cb, size_t cb_size);
/* Installs the known members of cb (NULL: none, events are pulled). */
void mpt_callbacks_take(struct mpt_socket *s, const struct mpt_callbacks *cb, size_t cb_size);

/* ---- ABI ------------------------------------------------------------------------- */

/*
 * struct mpt_subflow_info as libmpt 0.1.0 laid it out: binaries built then
 * call the mpt_get_subflows symbol with arrays of these (doc/abi.md). The
 * current struct must begin with exactly this layout.
 */
struct mpt_subflow_info_0_1 {
    int id;
    int path_id;
    enum mpt_subflow_state state;
    struct sockaddr_storage local;
    struct sockaddr_storage remote;
    char ifname[16];
    int backup;
    uint64_t rtt_us;
    uint64_t rttvar_us;
    uint32_t cwnd_bytes;
    uint32_t total_retrans;
    uint64_t bytes_sent;
    uint64_t bytes_acked;
    int fail_error;
    uint32_t fail_reason;
};
#define MPT_SUBFLOW_INFO_SIZE_0_1 sizeof(struct mpt_subflow_info_0_1)
#define MPT_SAME_FIELD_(f)                                                                   \
    _Static_assert(offsetof(struct mpt_subflow_info, f) ==                                   \
                       offsetof(struct mpt_subflow_info_0_1, f),                             \
                   "struct mpt_subflow_info: 0.1.0 field " #f " moved")
MPT_SAME_FIELD_(id);
MPT_SAME_FIELD_(path_id);
MPT_SAME_FIELD_(state);
MPT_SAME_FIELD_(local);
MPT_SAME_FIELD_(remote);
MPT_SAME_FIELD_(ifname);
MPT_SAME_FIELD_(backup);
MPT_SAME_FIELD_(rtt_us);
MPT_SAME_FIELD_(rttvar_us);
MPT_SAME_FIELD_(cwnd_bytes);
MPT_SAME_FIELD_(total_retrans);
MPT_SAME_FIELD_(bytes_sent);
MPT_SAME_FIELD_(bytes_acked);
MPT_SAME_FIELD_(fail_error);
MPT_SAME_FIELD_(fail_reason);
#undef MPT_SAME_FIELD_
_Static_assert(sizeof(struct mpt_subflow_info) >= MPT_SUBFLOW_INFO_SIZE_0_1,
               "struct mpt_subflow_info only grows");

/*
 * struct mpt_config as libmpt 0.1.0 laid it out (its sizeof, padding
 * included, is the smallest size mpt_ctx_new accepts). Every field added
 * later starts at or beyond the sizeof of the layout before it.
 */
struct mpt_config_0_1 {
    size_t size;
    uint32_t max_subflows;
    size_t sndbuf;
    size_t rcvbuf;
    uint32_t connect_timeout_ms, handshake_timeout_ms, close_timeout_ms, user_timeout_ms;
    uint32_t subflow_timeout_ms, ping_interval_ms, notsent_lowat, write_budget;
    uint32_t reconnect_min_ms, reconnect_max_ms, subflows_per_path, listen_backlog;
    uint32_t max_connections;
    const char *scheduler, *congestion, *tcp_congestion;
    int fullmesh, include_loopback, advertise_addresses;
};
#define MPT_CONFIG_SIZE_0_1 sizeof(struct mpt_config_0_1)
#define MPT_SAME_FIELD_(f)                                                                   \
    _Static_assert(offsetof(struct mpt_config, f) == offsetof(struct mpt_config_0_1, f),     \
                   "struct mpt_config: 0.1.0 field " #f " moved")
MPT_SAME_FIELD_(max_subflows);
MPT_SAME_FIELD_(sndbuf);
MPT_SAME_FIELD_(rcvbuf);
MPT_SAME_FIELD_(connect_timeout_ms);
MPT_SAME_FIELD_(max_connections);
MPT_SAME_FIELD_(scheduler);
MPT_SAME_FIELD_(tcp_congestion);
MPT_SAME_FIELD_(fullmesh);
MPT_SAME_FIELD_(advertise_addresses);
#undef MPT_SAME_FIELD_
_Static_assert(offsetof(struct mpt_config, ack_timeout_ms) >= MPT_CONFIG_SIZE_0_1,
               "struct mpt_config: fields added after 0.1.0 start beyond its padding");
/* A struct from a newer program may be at most this much larger. */
#define MPT_CONFIG_MAX_TAIL 4096u

/* ---- Context ---------------------------------------------------------------- */

#define MPT_IO_RBUF (256u * 1024u + MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY)

struct mpt_resolve_req;

struct mpt_ctx {
    struct ev_loop *loop;
    int own_loop;
    struct mpt_config cfg;           /* full copy, strings below */
    char *cfg_sched, *cfg_cc, *cfg_tcpcc;
    struct mpt_core_settings core;   /* derived from cfg */
    uint64_t t0;                     /* trace epoch, ns */
    uint8_t *rbuf;                   /* shared read buffer, MPT_IO_RBUF bytes */
    struct mpt_watchers ws;          /* every watcher and timer (watcher.c, timer.c) */
    int wakefd;                      /* eventfd in ws.extfd: wake-ups, or -1; wake_mu */
    pthread_mutex_t wake_mu;
    struct mpt_netlink nl;           /* rtnetlink watcher */
    LIST_HEAD(, mpt_linger) lingers; /* subflow sockets closing gracefully (subflow.c) */
    struct mpt_socket *socks;        /* every socket, both roles */
    struct mpt_listener *listeners;
    unsigned nconns;
    unsigned next_conn_id;
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

/* Trace: cheap check first. */
#define MPT_TRACING(ctx) ((ctx)->trace_fp != NULL || (ctx)->trace_cb != NULL)
void mpt_trace_emit(struct mpt_ctx *ctx, unsigned conn, const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define MPT_TRACE(ctx, conn, ev, ...)                                                       \
    do {                                                                                     \
        if (MPT_TRACING(ctx))                                                                \
            mpt_trace_emit((ctx), (conn), (ev), __VA_ARGS__);                                \
    } while (0)

/* ---- Connection and subflows --------------------------------------------------- */

struct mpt_sfio {
    struct mpt_socket *s;
    int idx;                         /* engine subflow index */
    int fd;
    int slot;                        /* client: path-manager slot, or -1 */
    int connecting;
    int backup;
    struct mpt_io io;
    struct mpt_tmr ctimer;           /* connect timeout (client) */
    size_t room_left;
    uint64_t last_info;
    struct mpt_sf_info info;
    struct sockaddr_storage local, remote;
    char ifname[IF_NAMESIZE];
    int down_reported;
    int fail_error;                  /* MPT_E* cause seen by the I/O layer, or 0 */
    int sys_errno;                   /* the errno behind fail_error, or 0 */
    int eof_seen;                    /* peer FIN during a graceful close */
};

/* Client path manager. */
struct mpt_path {
    int used, removed, backup;
    char ifname[IF_NAMESIZE];        /* SO_BINDTODEVICE, or "" */
    struct sockaddr_storage src;     /* ss_family AF_UNSPEC: no bind */
    socklen_t srclen;
};

struct mpt_raddr {
    struct sockaddr_storage sa;
    socklen_t len;
    int addr_id;                     /* server's id, -1 for the resolved one */
    int removed;
};

struct mpt_slot {                    /* one (path, remote address, k) subflow */
    int path, raddr;
    int sf;                          /* engine index while a subflow exists, else -1 */
    int dead;
    unsigned fails;                  /* consecutive failures since one was up */
    struct mpt_tmr retry;
    struct mpt_socket *s;
    int has_last;                    /* `last` holds the subflow that went down last */
    struct mpt_subflow_info last;    /* as it went down (mpt_get_subflows records) */
};

#define MPT_IO_MAX_PATHS 16
#define MPT_IO_MAX_RADDRS 16
#define MPT_IO_MAX_SLOTS 64

struct mpt_socket {
    struct mpt_ctx *ctx;
    struct mpt_socket *prev, *next;  /* ctx->socks */
    struct mpt_socket *qnext;        /* listener's accept queue */
    unsigned id;                     /* for traces */
    struct mpt_conn *c;              /* NULL until started */
    int server;
    struct mpt_listener *listener;   /* server side, until the listener is gone */
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
    const struct mpt_cc_ops *cc;
    /* client */
    char *host;
    uint16_t port;
    struct mpt_resolve_req *rreq;
    struct mpt_path *paths;          /* MPT_IO_MAX_PATHS, client only */
    int npaths;
    struct mpt_raddr *raddrs;        /* MPT_IO_MAX_RADDRS, client only */
    int nraddrs;
    struct mpt_slot *slots[MPT_IO_MAX_SLOTS];
    int nslots;
};

struct mpt_listener {
    struct mpt_ctx *ctx;
    struct mpt_listener *prev, *next;
    struct mpt_server *srv;
    mpt_accept_cb cb;                /* NULL: MPT_EVENT_ACCEPT in ctx->evq */
    void *user;
    struct mpt_evsrc evsrc;
    int port;
    int nfds;
    int fds[8];
    struct sockaddr_storage addrs[8];
    struct mpt_io ios[8];
    struct mpt_pending *pending;     /* accepted TCP connections before HELLO/JOIN */
    struct mpt_socket *qhead, *qtail;
    unsigned nconns;                 /* sockets created by this listener still alive */
    int closed;
};

/* sock.c */
struct mpt_socket *mpt_sock_alloc(struct mpt_ctx *ctx, int server);
void mpt_sock_pump(struct mpt_socket *s, int dispatch);
void mpt_sock_kick(struct mpt_socket *s);
void mpt_sock_maybe_free(struct mpt_socket *s);
void mpt_sock_destroy(struct mpt_socket *s);
void mpt_sock_linger_flush(struct mpt_ctx *ctx);
struct mpt_sfio *mpt_sock_attach(struct mpt_socket *s, int idx, int fd, int connecting);
void mpt_sock_sf_input(struct mpt_socket *s, struct mpt_sfio *sf, const uint8_t *data,
                       size_t len, uint64_t now);
int mpt_sock_setopts(struct mpt_ctx *ctx, int fd); /* 0 or an errno */
/* Test-only accessor (not exported in the installed header). */
int mpt_io_test_subflow_fd(struct mpt_socket *s, int sf);

/* subflow.c: the kernel socket of one subflow */
void mpt_sf_close(struct mpt_socket *s, struct mpt_sfio *sf);
void mpt_sf_fail_sys(struct mpt_socket *s, struct mpt_sfio *sf, const char *what, int e,
                     uint64_t now);
void mpt_sf_flush(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);
void mpt_sf_connected(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);
void mpt_sf_sample_info(struct mpt_socket *s, struct mpt_sfio *sf, uint64_t now);
void mpt_sf_linger_close(struct mpt_ctx *ctx, int fd);
int mpt_sf_socket(struct mpt_ctx *ctx, const struct mpt_path *p, const struct mpt_raddr *r,
                  int *fd, int *in_progress, const char **what);

/* paths.c: the client's paths and the (re)creation of their subflows */
void mpt_paths_slot_free(struct mpt_slot *sl);
void mpt_paths_slot_down(struct mpt_socket *s, int idx, const struct mpt_subflow_info *si);
void mpt_paths_start_all(struct mpt_socket *s);
int mpt_paths_add_raddr(struct mpt_socket *s, const struct sockaddr_storage *ss, socklen_t len,
                        int addr_id);
void mpt_paths_slot_connect(struct mpt_slot *sl);
int mpt_paths_parse(const char *str, struct mpt_path *p);
int mpt_paths_check(const struct mpt_path *p);
int mpt_paths_fullmesh(struct mpt_socket *s);
/* Follows the context's links (netlink.c) for every client socket. */
void mpt_paths_watch_links(struct mpt_ctx *ctx);
int mpt_paths_slot_record(const struct mpt_socket *s, const struct mpt_slot *sl,
                          struct mpt_subflow_info *o);

/* listener.c */
void mpt_listener_conn_gone(struct mpt_listener *l, struct mpt_socket *s);
void mpt_listener_ready(struct mpt_listener *l, struct mpt_socket *s);
void mpt_listener_unqueue(struct mpt_listener *l, struct mpt_socket *s);


#endif
