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

#include "abi.h"
#include "listener.h"
#include "sock.h"
#include "subflow.h"

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
    int fd;
    struct mpt_io io;
    struct mpt_tmr tmr;
    size_t len;
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
    free(l);
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

static void pending_free(struct mpt_pending *p, int close_fd)
{
    mpt_io_set(&p->io, 0);
    mpt_tmr_fini(&p->tmr);
    if (close_fd && p->fd >= 0)
        close(p->fd);
    LIST_REMOVE(p, link);
    free(p);
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

static void pending_try(struct mpt_pending *p)
{
    struct mpt_listener *l = p->l;
    struct mpt_ctx *ctx = l->ctx;
    struct mpt_accept a;
    uint64_t now = mpt_io_now();
    int rc;

    memset(&a, 0, sizeof a);
    rc = mpt_server_accept(l->srv, p->buf, p->len, now, &a);
    if (rc == MPT_EINCOMPLETE) {
        if (p->len == sizeof p->buf)
            goto refuse;
        return;
    }
    if (rc < 0)
        goto refuse;

    struct mpt_socket *s;
    if (a.is_new) {
        s = mpt_sock_alloc(ctx, 1);
        if (s == NULL) {
            mpt_conn_free(a.conn);
            a.reply_len = 0;
            goto refuse;
        }
        s->c = a.conn;
        s->listener = l;
        mpt_conn_set_user(a.conn, s); /* joins find their socket through it */
        l->nconns++;
        MPT_TRACE(ctx, s->id, "conn_accepted", NULL);
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
    /* The fd changes watcher: stop the pending one first (the external-loop
     * epoll set holds one registration per fd). */
    mpt_io_set(&p->io, 0);
    struct mpt_sfio *sf = mpt_sock_attach(s, a.sf, p->fd, 0);
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
    mpt_sock_pump(s, 1);
    return;

refuse:
    MPT_TRACE(ctx, 0, "subflow_refused", "\"error\":\"%s\"", mpt_err_name(rc < 0 ? rc : 0));
    if (a.reply_len > 0)
        (void)!send(p->fd, a.reply, a.reply_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    pending_free(p, 1);
}

static void pending_io_cb(EV_P_ ev_io *w, int revents)
{
    struct mpt_pending *p = w->data;

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
    pending_free(w->data, 1);
}

static void listen_io_cb(EV_P_ ev_io *w, int revents)
{
    struct mpt_listener *l = w->data;
    struct mpt_ctx *ctx = l->ctx;

    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or EMFILE etc.: try again on the next wakeup */
        struct mpt_pending *p = malloc(sizeof *p);
        if (p != NULL)
            memset(p, 0, offsetof(struct mpt_pending, buf));
        if (p == NULL || ctx->nconns >= ctx->cfg.max_connections ||
            mpt_tmr_init(&ctx->ws, &p->tmr, pending_tmr_cb) < 0) {
            free(p);
            close(fd);
            continue;
        }
        p->l = l;
        p->fd = fd;
        (void)mpt_sock_setopts(ctx, fd);
        mpt_io_init(&ctx->ws, &p->io, pending_io_cb, fd);
        p->io.w.data = p;
        p->tmr.w.data = p;
        LIST_INSERT_HEAD(&l->pending, p, link);
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
    if (addrs == NULL || naddrs == 0) {
        addrs = wild;
        naddrs = 2;
    }
    if ((l = calloc(1, sizeof *l)) == NULL)
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
    free(l);
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
