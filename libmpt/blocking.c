/*
 * The blocking convenience layer: every call runs the context's loop one
 * iteration at a time until its condition holds or the deadline passes.
 */
#include "config.h"

#include <limits.h>
#include <string.h>

#include "listener.h"
#include "sock.h"

struct waiter {
    int fired;
};

static void deadline_cb(EV_P_ ev_timer *w, int revents)
{
    ((struct waiter *)w->data)->fired = 1;
}

struct deadline {
    ev_timer t;
    struct waiter w;
    int active;
};

static void deadline_start(struct mpt_ctx *ctx, struct deadline *d, int timeout_ms)
{
    memset(d, 0, sizeof *d);
    if (timeout_ms < 0)
        return;
    /* libev times a timer from the loop's cached time, which is as old as
     * the last iteration: refresh it, or a blocking call made long after
     * the loop last ran times out early by that much. */
    ev_now_update(ctx->loop);
    ev_timer_init(&d->t, deadline_cb, timeout_ms / 1000., 0.);
    d->t.data = &d->w;
    ev_timer_start(ctx->loop, &d->t);
    d->active = 1;
}

static void deadline_stop(struct mpt_ctx *ctx, struct deadline *d)
{
    if (d->active)
        ev_timer_stop(ctx->loop, &d->t);
}

/* One loop iteration; returns MPT_ETIMEDOUT once the deadline passed. */
static int step(struct mpt_ctx *ctx, struct deadline *d)
{
    if (d->w.fired)
        return MPT_ETIMEDOUT;
    ev_run(ctx->loop, EVRUN_ONCE);
    return d->w.fired ? MPT_ETIMEDOUT : 0;
}

struct bconn {
    int status;
    int done;
};

static void bc_connected(struct mpt_socket *s, int status, void *user)
{
    struct bconn *b = user;
    b->status = status;
    b->done = 1;
}

int mpt_blocking_connect(struct mpt_ctx *ctx, const char *host, uint16_t port,
                         const char *const *paths, size_t npaths, int timeout_ms,
                         struct mpt_socket **out)
{
    struct mpt_callbacks cb;
    struct bconn b = {0, 0};
    struct deadline d;
    struct mpt_socket *s;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (ctx == NULL || out == NULL)
        return MPT_EINVAL;
    if (ctx->in_cb)
        return MPT_ESTATE;
    memset(&cb, 0, sizeof cb);
    cb.connected = bc_connected;
    if ((rc = mpt_connect(ctx, host, port, paths, npaths, &cb, &b, &s)) < 0)
        return rc;
    deadline_start(ctx, &d, timeout_ms);
    while (!b.done && (rc = step(ctx, &d)) == 0)
        ;
    deadline_stop(ctx, &d);
    if (!b.done) {
        mpt_abort(s);
        return rc < 0 ? rc : MPT_ETIMEDOUT;
    }
    if (b.status < 0) {
        mpt_abort(s);
        return b.status;
    }
    mpt_set_callbacks(s, NULL, NULL);
    *out = s;
    return 0;
}

int mpt_blocking_accept(struct mpt_listener *l, int timeout_ms, struct mpt_socket **out)
{
    struct deadline d;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (l == NULL || out == NULL || mpt_listener_closed(l))
        return MPT_EINVAL;
    struct mpt_ctx *ctx = mpt_listener_ctx(l);
    if (ctx->in_cb)
        return MPT_ESTATE;
    deadline_start(ctx, &d, timeout_ms);
    while ((rc = mpt_accept(l, NULL, NULL, out)) == MPT_EAGAIN) {
        if ((rc = step(ctx, &d)) < 0)
            break;
    }
    deadline_stop(ctx, &d);
    return rc;
}

ssize_t mpt_blocking_send_all(struct mpt_socket *s, const void *buf, size_t len, int timeout_ms)
{
    const uint8_t *p = buf;
    size_t off = 0;
    struct deadline d;
    ssize_t rc = 0;

    if (s == NULL || (buf == NULL && len > 0) || len > (size_t)SSIZE_MAX)
        return MPT_EINVAL;
    if (s->ctx->in_cb)
        return MPT_ESTATE;
    deadline_start(s->ctx, &d, timeout_ms);
    while (off < len) {
        rc = mpt_send(s, p + off, len - off);
        if (rc > 0) {
            off += (size_t)rc;
            continue;
        }
        if (rc != MPT_EAGAIN && rc != MPT_ESTATE)
            break;
        if ((rc = step(s->ctx, &d)) < 0)
            break;
    }
    deadline_stop(s->ctx, &d);
    return off == len ? (ssize_t)len : rc;
}

ssize_t mpt_blocking_recv(struct mpt_socket *s, void *buf, size_t len, int timeout_ms)
{
    struct deadline d;
    ssize_t rc;
    int lent = 0;

    if (s == NULL || buf == NULL || len == 0)
        return MPT_EINVAL;
    if (s->ctx->in_cb)
        return MPT_ESTATE;
    deadline_start(s->ctx, &d, timeout_ms);
    for (;;) {
        size_t got;
        /* With a loan holding nothing in order yet this still reports the
         * end of the stream and errors (nothing is readable meanwhile). */
        rc = mpt_recv(s, buf, len);
        if (rc != MPT_EAGAIN && rc != MPT_ESTATE)
            break;
        /* Nothing buffered: data that arrives while we wait goes straight
         * into buf, not through the receive ring. The loan lasts until it
         * holds bytes in order, so bytes held out of order in it are not
         * copied back to the ring at every wake-up. */
        if (!lent)
            lent = mpt_sock_recv_lend(s, buf, len);
        rc = step(s->ctx, &d);
        got = lent ? mpt_sock_recv_lent(s) : 0;
        /* Bytes out of order in it too: what the other subflows already
         * have may fill the hole below them (ending the loan copies them
         * to the ring). Only what is ready: no waiting. */
        for (int k = 0; got > 0 && k < 8 && mpt_sock_recv_lend_waiting(s); k++) {
            size_t before = got;
            ev_run(s->ctx->loop, EVRUN_NOWAIT);
            got = mpt_sock_recv_lent(s);
            if (got == before)
                break;
        }
        if (got > 0)
            break;
        if (rc < 0)
            break;
    }
    if (lent) {
        size_t got = mpt_sock_recv_unlend(s);
        if (got > 0)
            rc = (ssize_t)got;
    }
    deadline_stop(s->ctx, &d);
    return rc;
}

int mpt_blocking_close(struct mpt_socket *s, int timeout_ms)
{
    struct deadline d;
    int rc = 0;

    if (s == NULL || s->released)
        return MPT_EINVAL;
    if (s->ctx->in_cb)
        return MPT_ESTATE;
    if (!s->shut && s->established && !s->done)
        (void)mpt_shutdown(s);
    deadline_start(s->ctx, &d, timeout_ms);
    while (!s->done) {
        uint8_t *scratch = s->ctx->rbuf;
        while (s->c && mpt_recv(s, scratch, MPT_IO_RBUF) > 0)
            ;
        if (s->done)
            break;
        if ((rc = step(s->ctx, &d)) < 0)
            break;
    }
    deadline_stop(s->ctx, &d);
    if (rc == 0 && s->done)
        rc = s->error;
    if (s->done)
        mpt_close(s);
    else
        mpt_abort(s);
    return rc;
}
