/*
 * Server side: listening sockets, the first bytes of every accepted TCP
 * connection (preamble + HELLO or JOIN) handed to mpt_server_accept(), joins
 * routed to their connection, and the queue of established connections that
 * mpt_accept() returns.
 */
#include "config.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/frame.h"
#include "abi.h"
#include "listener.h"
#include "sock.h"
#include "subflow.h"
#include "tls.h"

#define PENDING_BUF 512

struct mpt_listener {
    struct mpt_ctx *ctx;
    LIST_ENTRY(mpt_listener) link;   /* ctx->listeners */
    struct mpt_server *srv;
    mpt_accept_cb cb;                /* NULL: MPT_EVENT_ACCEPT in ctx->evq */
    void *user;
    struct mpt_evsrc evsrc;
    int port;
    int nfds;
    int fds[8];
    struct sockaddr_storage addrs[8];
    struct mpt_io ios[8];
    int adv_set;                     /* mpt_listener_set_advertised replaced the default */
    int nadv;
    struct sockaddr_storage adv[8];  /* with their ports */
    LIST_HEAD(, mpt_pending) pending; /* accepted TCP connections before HELLO/JOIN */
    TAILQ_HEAD(, mpt_socket) queue;  /* established, waiting for mpt_accept */
    unsigned nconns;                 /* sockets created by this listener still alive */
    int closed;
};

struct mpt_pending {
    struct mpt_listener *l;
    LIST_ENTRY(mpt_pending) link;    /* l->pending */
    TAILQ_ENTRY(mpt_pending) clink;  /* ctx->pendq, oldest first */
    int fd;
    struct mpt_io io;
    struct mpt_tmr tmr;
    struct mpt_preamble pre;         /* once have_pre */
    int have_pre;
    struct mpt_tp *tp;               /* TLS after the preamble, or NULL */
    int tls_done;
    uint8_t binding[MPT_TLS_SECRET_LEN]; /* this subflow's exporter, once tls_done */
    struct sockaddr_storage peer;    /* from accept4: no getpeername() later */
    struct sockaddr_storage local;   /* the listener's address, or AF_UNSPEC (wildcard) */
    size_t len;                      /* buf: the preamble, then what follows it */
    uint8_t buf[PENDING_BUF];
};

/* ---- Lifetime -------------------------------------------------------------------- */

static void listener_free(struct mpt_listener *l)
{
    struct mpt_ctx *ctx = l->ctx;

    mpt_evq_forget(ctx, &l->evsrc);
    LIST_REMOVE(l, link);
    if (l->srv)
        mpt_server_free(l->srv);
    mpt_free(l);
}

struct mpt_ctx *mpt_listener_ctx(const struct mpt_listener *l)
{
    return l->ctx;
}

int mpt_listener_closed(const struct mpt_listener *l)
{
    return l->closed;
}

void *mpt_listener_user(const struct mpt_listener *l)
{
    return l->user;
}

void mpt_listener_conn_gone(struct mpt_listener *l, struct mpt_socket *s)
{
    if (!s->accepted)
        mpt_listener_unqueue(l, s);
    if (s->c != NULL)
        mpt_conn_set_user(s->c, NULL); /* joins find no socket any more */
    s->listener = NULL;
    if (l->nconns > 0)
        l->nconns--;
    if (l->closed && l->nconns == 0)
        listener_free(l);
}

void mpt_listener_ready(struct mpt_listener *l, struct mpt_socket *s)
{
    if (s->queued || s->accepted || l->closed)
        return;
    s->queued = 1;
    TAILQ_INSERT_TAIL(&l->queue, s, qlink);
    if (l->cb) {
        l->ctx->in_cb++;
        l->cb(l, l->user);
        l->ctx->in_cb--;
    } else {
        mpt_evq_post(l->ctx, &l->evsrc, MPT_EVENT_ACCEPT, 0);
    }
}

void mpt_listener_unqueue(struct mpt_listener *l, struct mpt_socket *s)
{
    if (!s->queued)
        return;
    TAILQ_REMOVE(&l->queue, s, qlink);
    s->queued = 0;
}

/* ---- Connections per source address ---------------------------------------------- */

#define MPT_PEER_BUCKETS 1024

/* The source of a connection's first subflow: an IPv4 address (mapped ones
 * included) or an IPv6 /64, what one host is usually given. */
struct mpt_peer_count {
    struct mpt_peer_count *next;
    uint8_t fam, key[8];
    unsigned n;
};

static int peer_key(const struct sockaddr_storage *ss, uint8_t *fam, uint8_t key[8])
{
    memset(key, 0, 8);
    if (ss->ss_family == AF_INET) {
        *fam = 4;
        memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            *fam = 4;
            memcpy(key, a->s6_addr + 12, 4);
        } else {
            *fam = 6;
            memcpy(key, a->s6_addr, 8);
        }
    } else {
        return -1;
    }
    return 0;
}

static unsigned peer_hash(uint8_t fam, const uint8_t key[8])
{
    uint32_t h = 2166136261u ^ fam;
    for (int i = 0; i < 8; i++)
        h = (h ^ key[i]) * 16777619u;
    return h & (MPT_PEER_BUCKETS - 1);
}

static struct mpt_peer_count *peer_find(struct mpt_ctx *ctx, uint8_t fam, const uint8_t key[8])
{
    if (ctx->peers == NULL)
        return NULL;
    for (struct mpt_peer_count *pc = ctx->peers[peer_hash(fam, key)]; pc; pc = pc->next)
        if (pc->fam == fam && memcmp(pc->key, key, 8) == 0)
            return pc;
    return NULL;
}

/* The count of (fam, key), one higher; NULL without memory. */
static struct mpt_peer_count *peer_get(struct mpt_ctx *ctx, uint8_t fam, const uint8_t key[8])
{
    struct mpt_peer_count *pc = peer_find(ctx, fam, key);

    if (pc == NULL) {
        if (ctx->peers == NULL &&
            (ctx->peers = mpt_calloc(MPT_PEER_BUCKETS, sizeof *ctx->peers)) == NULL)
            return NULL;
        if ((pc = mpt_calloc(1, sizeof *pc)) == NULL)
            return NULL;
        unsigned b = peer_hash(fam, key);
        pc->fam = fam;
        memcpy(pc->key, key, 8);
        pc->next = ctx->peers[b];
        ctx->peers[b] = pc;
    }
    pc->n++;
    return pc;
}

void mpt_peer_put(struct mpt_ctx *ctx, struct mpt_peer_count *pc)
{
    if (pc == NULL || ctx->peers == NULL)
        return;
    if (--pc->n > 0)
        return;
    for (struct mpt_peer_count **pp = &ctx->peers[peer_hash(pc->fam, pc->key)]; *pp;
         pp = &(*pp)->next) {
        if (*pp == pc) {
            *pp = pc->next;
            mpt_free(pc);
            return;
        }
    }
}

void mpt_peer_counts_free(struct mpt_ctx *ctx)
{
    if (ctx->peers == NULL)
        return;
    for (unsigned b = 0; b < MPT_PEER_BUCKETS; b++) {
        while (ctx->peers[b] != NULL) {
            struct mpt_peer_count *pc = ctx->peers[b];
            ctx->peers[b] = pc->next;
            mpt_free(pc);
        }
    }
    mpt_free(ctx->peers);
    ctx->peers = NULL;
}

static void pending_free(struct mpt_pending *p, int close_fd)
{
    struct mpt_ctx *ctx = p->l->ctx;

    TAILQ_REMOVE(&ctx->pendq, p, clink);
    ctx->npending--;
    mpt_io_set(&p->io, 0);
    mpt_tmr_fini(&p->tmr);
    mpt_tp_free(p->tp);
    if (close_fd && p->fd >= 0)
        close(p->fd);
    LIST_REMOVE(p, link);
    mpt_free(p);
}

/* ---- First bytes of an accepted subflow -------------------------------------------- */

/* Behind a load balancer the listening addresses are the backend's own, not
 * the ones clients can reach: the operator's list goes out instead, as is. */
static void advertise_set(struct mpt_listener *l, struct mpt_socket *s, uint64_t now)
{
    for (int i = 0; i < l->nadv; i++) {
        const struct sockaddr_storage *a = &l->adv[i];
        uint8_t fam, raw[16];
        uint16_t port;
        if (a->ss_family == AF_INET) {
            const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
            fam = 4;
            memcpy(raw, &a4->sin_addr, 4);
            port = ntohs(a4->sin_port);
        } else {
            const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
            fam = 6;
            memcpy(raw, &a6->sin6_addr, 16);
            port = ntohs(a6->sin6_port);
        }
        (void)mpt_conn_add_addr(s->c, (uint8_t)(i + 1), fam, raw, port, now);
    }
}

static void advertise(struct mpt_listener *l, struct mpt_socket *s, int fd, uint64_t now)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof local;

    if (l->adv_set) {
        advertise_set(l, s, now);
        return;
    }
    if (!l->ctx->cfg.advertise_addresses || l->nfds < 2)
        return;
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
        return;
    for (int i = 0; i < l->nfds; i++) {
        const struct sockaddr_storage *a = &l->addrs[i];
        uint8_t fam, raw[16];
        if (a->ss_family == AF_INET) {
            const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
            if (a4->sin_addr.s_addr == htonl(INADDR_ANY))
                continue;
            if (local.ss_family == AF_INET &&
                ((struct sockaddr_in *)&local)->sin_addr.s_addr == a4->sin_addr.s_addr)
                continue;
            fam = 4;
            memcpy(raw, &a4->sin_addr, 4);
        } else {
            const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
            if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr))
                continue;
            if (local.ss_family == AF_INET6 &&
                memcmp(&((struct sockaddr_in6 *)&local)->sin6_addr, &a6->sin6_addr, 16) == 0)
                continue;
            fam = 6;
            memcpy(raw, &a6->sin6_addr, 16);
        }
        (void)mpt_conn_add_addr(s->c, (uint8_t)(i + 1), fam, raw, (uint16_t)l->port, now);
    }
}

static void pending_tls(struct mpt_pending *p);

static void pending_try(struct mpt_pending *p)
{
    struct mpt_listener *l = p->l;
    struct mpt_ctx *ctx = l->ctx;
    struct mpt_accept a;
    uint64_t now = mpt_io_now();
    int rc;

    memset(&a, 0, sizeof a);
    if (!p->have_pre) {
        /* The preamble is in clear, TLS or not (a balancer routes on it). */
        rc = mpt_server_preamble(l->srv, p->buf, p->len, &p->pre, &a);
        if (rc == MPT_EINCOMPLETE)
            return;
        if (rc < 0)
            goto refuse;
        p->have_pre = 1;
        p->len -= (size_t)rc;
        memmove(p->buf, p->buf + rc, p->len);
        if (p->pre.flags & MPT_PREF_TLS) {
            /* What came with the preamble is the start of the ClientHello. */
            p->tp = mpt_tp_tls_server(ctx->tls, p->fd, p->buf, p->len);
            p->len = 0;
            if (p->tp == NULL) {
                rc = MPT_ENOMEM;
                goto refuse;
            }
            pending_tls(p);
            return;
        }
    }
    rc = mpt_server_first_frame_bound(l->srv, &p->pre, p->tls_done ? p->binding : NULL, p->buf,
                                      p->len, now, &a);
    if (rc == MPT_EINCOMPLETE) {
        if (p->len == sizeof p->buf)
            goto refuse;
        return;
    }
    if (rc < 0)
        goto refuse;

    struct mpt_socket *s;
    uint8_t pfam = 0, pkey[8];
    if (a.is_new && peer_key(&p->peer, &pfam, pkey) == 0) {
        struct mpt_peer_count *pc = peer_find(ctx, pfam, pkey);
        if (pc != NULL && pc->n >= ctx->cfg.max_conns_per_addr) {
            /* One source holding max_conns_per_addr connections: the
             * HELLO_ACK queued on the engine's subflow never goes out. */
            rc = mpt_server_refuse_new(&a, "too many connections from this address");
            ctx->stats.refused_per_addr++;
            MPT_TRACE(ctx, 0, "limit_per_addr", "\"max\":%u", ctx->cfg.max_conns_per_addr);
            goto refuse;
        }
    }
    if (a.is_new) {
        s = mpt_sock_alloc(ctx, 1);
        if (s == NULL) {
            mpt_conn_free(a.conn);
            a.reply_len = 0;
            goto refuse;
        }
        s->c = a.conn;
        s->listener = l;
        if (pfam != 0)
            s->peer = peer_get(ctx, pfam, pkey); /* NULL without memory: not counted */
        mpt_conn_set_user(a.conn, s); /* joins find their socket through it */
        l->nconns++;
        MPT_TRACE(ctx, s->id, "conn_accepted", NULL);
        if (p->tp != NULL) {
            /* Keys the connection (joins, ADD_ADDR) before anything is sent. */
            uint8_t sec[MPT_TLS_SECRET_LEN];
            int e = mpt_tp_export(p->tp, MPT_TLS_LABEL_CONN, sec, sizeof sec);
            if (e == 0)
                e = mpt_conn_set_secret(s->c, sec);
            memset(sec, 0, sizeof sec);
            if (e < 0) {
                mpt_conn_abort(s->c, MPT_REASON_RESOURCE, now);
                MPT_TRACE(ctx, s->id, "tls_export_failed", "\"error\":\"%s\"", mpt_err_name(e));
            }
            s->tls_suite = mpt_tp_tls_suite(p->tp);
        }
    } else {
        s = mpt_conn_get_user(a.conn);
        if (s == NULL || s->done) {
            /* Should not happen: the engine knows the connection. */
            mpt_conn_sf_failed(a.conn, a.sf, MPT_ESTATE, now);
            a.reply_len = 0;
            goto refuse;
        }
        MPT_TRACE(ctx, s->id, "sf_joined", "\"sf\":%d", a.sf);
    }
    if (p->tp != NULL) {
        if (mpt_tp_tls_resumed(p->tp))
            s->tls_resumed++;
        else
            s->tls_full++;
    }
    /* The fd changes watcher: stop the pending one first (the external-loop
     * epoll set holds one registration per fd). */
    mpt_io_set(&p->io, 0);
    struct mpt_sfio *sf = mpt_sock_attach_tp(s, a.sf, p->fd, p->tp, &p->local, &p->peer);
    p->tp = NULL; /* the subflow's now, whatever happened */
    if (sf == NULL) {
        mpt_conn_sf_failed(s->c, a.sf, MPT_ENOMEM, now);
        mpt_sock_pump(s, 1);
        a.reply_len = 0;
        goto refuse;
    }
    size_t rest = p->len - a.consumed;
    uint8_t tmp[PENDING_BUF];
    memcpy(tmp, p->buf + a.consumed, rest);
    p->fd = -1;
    pending_free(p, 0);
    if (a.is_new)
        advertise(l, s, sf->fd, now);
    if (rest > 0)
        mpt_sock_sf_input(s, sf, tmp, rest, now);
    mpt_sfio_read_held(s, sf, now);
    mpt_sock_pump(s, 1);
    return;

refuse:
    MPT_TRACE(ctx, 0, "subflow_refused", "\"error\":\"%s\",\"tls\":%d",
              mpt_err_name(rc < 0 ? rc : 0), p->tls_done);
    if (a.reply_len > 0 && p->tls_done) {
        /* After TLS the refusal goes inside it, where the client reads. */
        struct iovec iov = {.iov_base = a.reply, .iov_len = a.reply_len};
        (void)mpt_tp_writev(p->tp, &iov, 1);
    } else if (a.reply_len > 0) {
        (void)!send(p->fd, a.reply, a.reply_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    pending_free(p, 1);
}

/* A TLS subflow before its first frame: the handshake, then reads inside
 * TLS until the first frame is complete. A handshake that fails (a
 * certificate refused, a client without TLS speaking frames) closes it. */
static void pending_tls(struct mpt_pending *p)
{
    struct mpt_ctx *ctx = p->l->ctx;

    if (!p->tls_done) {
        if (mpt_tp_handshake(p->tp) < 0) {
            if (errno == EAGAIN) {
                mpt_io_set(&p->io, p->tp->want);
                return;
            }
            MPT_TRACE(ctx, 0, "subflow_refused",
                      "\"error\":\"%s\",\"errno\":%d,\"why\":\"%s\"",
                      mpt_err_name(p->tp->error ? p->tp->error : mpt_errno_to_mpt(errno)),
                      p->tp->error ? 0 : errno, p->tp->why);
            pending_free(p, 1);
            return;
        }
        if (mpt_tp_export(p->tp, MPT_TLS_LABEL_JOIN, p->binding, sizeof p->binding) < 0) {
            pending_free(p, 1);
            return;
        }
        p->tls_done = 1;
        MPT_TRACE(ctx, 0, "sf_tls_up", "\"suite\":\"%s\",\"resumed\":%d",
                  mpt_tp_tls_suite(p->tp), mpt_tp_tls_resumed(p->tp));
        mpt_io_set(&p->io, EV_READ);
    }
    ssize_t n = mpt_tp_read(p->tp, p->buf + p->len, sizeof p->buf - p->len);
    if (n < 0 && errno == EAGAIN) {
        mpt_io_set(&p->io, p->tp->want);
        return;
    }
    if (n <= 0) {
        pending_free(p, 1);
        return;
    }
    p->len += (size_t)n;
    pending_try(p); /* may free p */
}

static void pending_io_cb(EV_P_ ev_io *w, int revents)
{
    struct mpt_pending *p = w->data;

    if (p->tp != NULL) {
        pending_tls(p);
        return;
    }
    ssize_t n = read(p->fd, p->buf + p->len, sizeof p->buf - p->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        pending_free(p, 1);
        return;
    }
    p->len += (size_t)n;
    pending_try(p);
}

static void pending_tmr_cb(EV_P_ ev_timer *w, int revents)
{
    struct mpt_pending *p = w->data;

    p->l->ctx->stats.pending_timed_out++;
    pending_free(p, 1);
}

/* The local address of every socket accepted on fd, when the listener is
 * bound to one address (a wildcard one: AF_UNSPEC, ask the kernel). */
static void accepted_local(const struct mpt_listener *l, int fd, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    out->ss_family = AF_UNSPEC;
    for (int k = 0; k < l->nfds; k++) {
        if (l->fds[k] != fd)
            continue;
        const struct sockaddr_storage *a = &l->addrs[k];
        if (a->ss_family == AF_INET &&
            ((const struct sockaddr_in *)a)->sin_addr.s_addr != htonl(INADDR_ANY)) {
            memcpy(out, a, sizeof(struct sockaddr_in));
            ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)l->port);
        } else if (a->ss_family == AF_INET6) {
            const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
            if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) || IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr))
                return;
            memcpy(out, a, sizeof(struct sockaddr_in6));
            ((struct sockaddr_in6 *)out)->sin6_port = htons((uint16_t)l->port);
        }
        return;
    }
}

static void listen_io_cb(EV_P_ ev_io *w, int revents)
{
    struct mpt_listener *l = w->data;
    struct mpt_ctx *ctx = l->ctx;
    struct sockaddr_storage local;

    accepted_local(l, w->fd, &local);

    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(w->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or EMFILE etc.: try again on the next wakeup */
        if (ctx->nconns >= ctx->cfg.max_connections) {
            ctx->stats.refused_max_connections++;
            MPT_TRACE(ctx, 0, "limit_connections", "\"max\":%u", ctx->cfg.max_connections);
            close(fd);
            continue;
        }
        struct mpt_pending *p = mpt_malloc(sizeof *p);
        if (p != NULL)
            memset(p, 0, offsetof(struct mpt_pending, buf));
        if (p == NULL || mpt_tmr_init(&ctx->ws, &p->tmr, pending_tmr_cb) < 0) {
            mpt_free(p);
            close(fd);
            continue;
        }
        if (ctx->npending >= ctx->cfg.max_pending_handshakes) {
            /* A flood of half-open handshakes pushes out the oldest, not
             * the newcomers: an honest client's HELLO follows its connect
             * within a round trip. */
            ctx->stats.pending_evicted++;
            MPT_TRACE(ctx, 0, "limit_pending", "\"max\":%u", ctx->cfg.max_pending_handshakes);
            pending_free(TAILQ_FIRST(&ctx->pendq), 1);
        }
        p->l = l;
        p->fd = fd;
        p->peer = peer;
        p->local = local;
#ifndef __linux__
        (void)mpt_sock_setopts(ctx, fd); /* Linux: inherited from the listener (open_listen) */
#endif
        mpt_io_init(&ctx->ws, &p->io, pending_io_cb, fd);
        p->io.w.data = p;
        p->tmr.w.data = p;
        LIST_INSERT_HEAD(&l->pending, p, link);
        TAILQ_INSERT_TAIL(&ctx->pendq, p, clink);
        ctx->npending++;
        mpt_io_set(&p->io, EV_READ);
        mpt_tmr_start(&p->tmr, ctx->cfg.handshake_timeout_ms / 1000.);
    }
}

/* ---- Public API ------------------------------------------------------------------ */

/* A listening socket on ss, or the MPT_E* code of why not (*err: errno). */
static int open_listen(struct mpt_listener *l, const struct sockaddr_storage *ss, socklen_t len,
                       int *err)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    *err = 0;
    if (fd < 0) {
        *err = errno;
        return mpt_errno_to_mpt(*err);
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    /* On Linux an accepted socket is a clone of the listener's, options
     * included (TCP_NODELAY, TCP_NOTSENT_LOWAT, TCP_USER_TIMEOUT,
     * TCP_CONGESTION): set once here instead of three or four system calls
     * per accepted subflow (test_io_api accepted_subflow_options). */
    (void)mpt_sock_setopts(l->ctx, fd);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 ||
        listen(fd, (int)l->ctx->cfg.listen_backlog) < 0) {
        *err = errno;
        close(fd);
        return mpt_errno_to_mpt(*err);
    }
    return fd;
}

int mpt_listen(struct mpt_ctx *ctx, const char *const *addrs, size_t naddrs, uint16_t port,
               mpt_accept_cb cb, void *user, struct mpt_listener **out)
{
    static const char *const wild[] = {"::", "0.0.0.0"};
    struct mpt_listener *l;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (ctx == NULL || out == NULL || (naddrs > 0 && addrs == NULL) || naddrs > 8)
        return MPT_EINVAL;
    if (ctx->tls != NULL && !mpt_tls_can_serve(ctx->tls))
        return MPT_EINVAL; /* TLS without a certificate or PSK to serve with */
    if (addrs == NULL || naddrs == 0) {
        addrs = wild;
        naddrs = 2;
    }
    if ((l = mpt_calloc(1, sizeof *l)) == NULL)
        return MPT_ENOMEM;
    LIST_INIT(&l->pending);
    TAILQ_INIT(&l->queue);
    l->ctx = ctx;
    l->evsrc.l = l;
    l->cb = cb;
    l->user = user;
    l->port = port;
    for (size_t i = 0; i < naddrs; i++) {
        socklen_t len;
        if (addrs[i] == NULL) {
            rc = MPT_EINVAL;
            goto fail;
        }
        if ((rc = mpt_parse_addr(addrs[i], 0, &l->addrs[i], &len)) < 0)
            goto fail;
    }
    if ((rc = mpt_server_new(&ctx->core, &l->srv)) < 0)
        goto fail;
    struct sockaddr_storage parsed[8];
    memcpy(parsed, l->addrs, sizeof parsed);
    /* With port 0 the first address picks an ephemeral port that may be
     * taken on another address: then start over with a new one. */
    rc = MPT_ESYS;
    for (int attempt = 0; attempt < 32; attempt++) {
        int retry = 0;
        memcpy(l->addrs, parsed, sizeof parsed);
        l->port = port;
        l->nfds = 0;
        for (size_t i = 0; i < naddrs; i++) {
            struct sockaddr_storage *ss = &l->addrs[i];
            socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                     : sizeof(struct sockaddr_in6);
            if (ss->ss_family == AF_INET)
                ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)l->port);
            else
                ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)l->port);
            int err;
            int fd = open_listen(l, ss, len, &err);
            if (fd < 0) {
                MPT_TRACE(ctx, 0, "listen_failed", "\"addr\":\"%s\",\"port\":%d,\"errno\":%d",
                          addrs[i], l->port, err);
                rc = fd;
                /* The wildcard pair: a host without IPv6 still listens on IPv4. */
                if (addrs == wild && i == 0)
                    continue;
                if (port == 0 && l->nfds > 0 && err == EADDRINUSE) {
                    retry = 1;
                    break;
                }
                goto fail;
            }
            if (l->port == 0) {
                struct sockaddr_storage b;
                socklen_t bl = sizeof b;
                getsockname(fd, (struct sockaddr *)&b, &bl);
                l->port = ntohs(b.ss_family == AF_INET ? ((struct sockaddr_in *)&b)->sin_port
                                                       : ((struct sockaddr_in6 *)&b)->sin6_port);
            }
            int k = l->nfds++;
            l->fds[k] = fd;
            if (k != (int)i)
                l->addrs[k] = *ss;
            mpt_io_init(&ctx->ws, &l->ios[k], listen_io_cb, fd);
            l->ios[k].w.data = l;
        }
        if (!retry)
            break;
        for (int k = 0; k < l->nfds; k++)
            close(l->fds[k]);
        l->nfds = 0;
    }
    if (l->nfds == 0)
        goto fail; /* rc: why the last address failed */
    for (int k = 0; k < l->nfds; k++)
        mpt_io_set(&l->ios[k], EV_READ);
    LIST_INSERT_HEAD(&ctx->listeners, l, link);
    MPT_TRACE(ctx, 0, "listen", "\"port\":%d,\"addrs\":%d", l->port, l->nfds);
    *out = l;
    return 0;
fail:
    for (int k = 0; k < l->nfds; k++)
        close(l->fds[k]);
    if (l->srv)
        mpt_server_free(l->srv);
    mpt_free(l);
    return rc;
}

int mpt_listener_set_advertised(struct mpt_listener *l, const char *const *addrs,
                                size_t naddrs)
{
    struct sockaddr_storage adv[8];

    if (l == NULL || l->closed || (naddrs > 0 && addrs == NULL) || naddrs > 8)
        return MPT_EINVAL;
    for (size_t i = 0; i < naddrs; i++) {
        socklen_t len;
        int rc;
        if (addrs[i] == NULL)
            return MPT_EINVAL;
        if ((rc = mpt_parse_addr_port(addrs[i], (uint16_t)l->port, &adv[i], &len)) < 0)
            return rc;
    }
    memcpy(l->adv, adv, naddrs * sizeof adv[0]);
    l->nadv = (int)naddrs;
    l->adv_set = 1;
    MPT_TRACE(l->ctx, 0, "advertise_set", "\"addrs\":%d", l->nadv);
    return 0;
}

int mpt_listener_port(const struct mpt_listener *l)
{
    return l ? l->port : MPT_EINVAL;
}

void mpt_listener_close(struct mpt_listener *l)
{
    if (l == NULL || l->closed)
        return;
    l->closed = 1;
    mpt_evq_forget(l->ctx, &l->evsrc);
    l->nconns++; /* hold: aborting below may drop the last connection */
    for (int k = 0; k < l->nfds; k++) {
        mpt_io_set(&l->ios[k], 0);
        close(l->fds[k]);
    }
    l->nfds = 0;
    while (!LIST_EMPTY(&l->pending))
        pending_free(LIST_FIRST(&l->pending), 1);
    /* Established but never accepted: abort. */
    while (!TAILQ_EMPTY(&l->queue)) {
        struct mpt_socket *s = TAILQ_FIRST(&l->queue);
        mpt_listener_unqueue(l, s);
        s->accepted = 1;
        mpt_abort(s);
    }
    /* Connections not yet established belong to nobody: abort them too. */
    struct mpt_socket *s, *next;
    LIST_FOREACH_SAFE(s, &l->ctx->socks, link, next) {
        if (s->listener == l && !s->accepted && !s->released) {
            s->accepted = 1;
            mpt_abort(s);
        }
    }
    if (--l->nconns == 0)
        listener_free(l);
}

int mpt_accept_sized(struct mpt_listener *l, const struct mpt_callbacks *cb, size_t cb_size,
                     void *user, struct mpt_socket **out)
{
    if (out != NULL)
        *out = NULL;
    if (l == NULL || out == NULL || l->closed || !mpt_callbacks_size_ok(cb, cb_size))
        return MPT_EINVAL;
    struct mpt_socket *s = TAILQ_FIRST(&l->queue);
    if (s == NULL)
        return MPT_EAGAIN;
    mpt_listener_unqueue(l, s);
    s->accepted = 1;
    mpt_callbacks_take(s, cb, cb_size);
    s->user = user;
    *out = s;
    if (s->pull) {
        /* Data may have arrived before the accept: let the puller look. */
        mpt_evq_post(l->ctx, &s->evsrc, MPT_EVENT_READABLE, 0);
        mpt_evq_post(l->ctx, &s->evsrc, MPT_EVENT_WRITABLE, 0);
    }
    mpt_sock_kick(s);
    return 0;
}

/* The 0.1.0 entry point (see mpt_connect in sock.c). */
int(mpt_accept)(struct mpt_listener *l, const struct mpt_callbacks *cb, void *user,
                struct mpt_socket **out)
{
    return mpt_accept_sized(l, cb, MPT_CALLBACKS_SIZE_0_1, user, out);
}

/* mpt_ctx_free: the sockets are gone already; so go the listeners. */
void mpt_listener_free_all(struct mpt_ctx *ctx)
{
    while (!LIST_EMPTY(&ctx->listeners)) {
        struct mpt_listener *l = LIST_FIRST(&ctx->listeners);
        l->nconns = 0;
        mpt_listener_close(l);
    }
}
