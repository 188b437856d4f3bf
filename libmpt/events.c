/*
 * Pull-style events (mpt_ctx_next_event) and the thread-safe wake-up.
 *
 * Sockets and listeners without callbacks keep a bit per pending kind of
 * event and sit in the context's queue at most once, so the queue is
 * bounded by the number of handles however fast events arrive: a binding
 * that drains it after every loop pass sees every state change without a
 * C-to-host call.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "abi.h"
#include "ctx.h"
#include "listener.h"
#include "sock.h"

/* Kinds in the order they are reported: CLOSED last, after the data it ends. */
static const enum mpt_ctx_event_type order[] = {
    MPT_EVENT_ACCEPT, MPT_EVENT_CONNECTED, MPT_EVENT_SUBFLOWS, MPT_EVENT_BUDGET_SPENT,
    MPT_EVENT_READABLE, MPT_EVENT_WRITABLE, MPT_EVENT_CLOSED,
};

static void drain_wakefd(struct mpt_ctx *ctx)
{
    pthread_mutex_lock(&ctx->wake_mu);
    if (ctx->wakefd >= 0) {
        uint64_t v;
        (void)!read(ctx->wakefd, &v, sizeof v);
    }
    pthread_mutex_unlock(&ctx->wake_mu);
}

static void wake_cb(EV_P_ ev_async *w, int revents)
{
    struct mpt_ctx *ctx = w->data;

    (void)revents;
    drain_wakefd(ctx);
    ctx->wake_pending = 1;
    if (ctx->running)
        ev_break(EV_A_ EVBREAK_ONE);
}

int mpt_events_init(struct mpt_ctx *ctx)
{
    TAILQ_INIT(&ctx->evq);
    ev_async_init(&ctx->wake_async, wake_cb);
    ctx->wake_async.data = ctx;
    ev_async_start(ctx->loop, &ctx->wake_async);
    /* Not a reason to keep ev_run(loop, 0) running: only real work is. */
    ev_unref(ctx->loop);
    return 0;
}

void mpt_events_fini(struct mpt_ctx *ctx)
{
    while (!TAILQ_EMPTY(&ctx->evq))
        mpt_evq_forget(ctx, TAILQ_FIRST(&ctx->evq));
    ev_ref(ctx->loop);
    ev_async_stop(ctx->loop, &ctx->wake_async);
}

void mpt_evq_post(struct mpt_ctx *ctx, struct mpt_evsrc *src, enum mpt_ctx_event_type type,
                  int status)
{
    if (type == MPT_EVENT_CONNECTED)
        src->connected_status = status;
    else if (type == MPT_EVENT_CLOSED)
        src->closed_status = status;
    src->pending |= 1u << type;
    if (!src->queued) {
        TAILQ_INSERT_TAIL(&ctx->evq, src, link);
        src->queued = 1;
    }
}

void mpt_evq_forget(struct mpt_ctx *ctx, struct mpt_evsrc *src)
{
    if (src->queued)
        TAILQ_REMOVE(&ctx->evq, src, link);
    src->queued = 0;
    src->pending = 0;
}

/* The rule of struct mpt_config (doc/abi.md): a size below the first
 * layout did not come from sizeof, and a member beyond what this library
 * knows is a callback it would never call, so it is refused, not ignored. */
int mpt_callbacks_size_ok(const struct mpt_callbacks *cb, size_t cb_size)
{
    if (cb == NULL)
        return 1;
    if (cb_size < MPT_CALLBACKS_SIZE_0_1 || cb_size > sizeof *cb + 4096)
        return 0;
    for (size_t off = sizeof *cb; off < cb_size; off++)
        if (((const uint8_t *)cb)[off] != 0)
            return 0;
    return 1;
}

void mpt_callbacks_take(struct mpt_socket *s, const struct mpt_callbacks *cb, size_t cb_size)
{
    memset(&s->cb, 0, sizeof s->cb);
    s->pull = cb == NULL;
    if (cb != NULL)
        memcpy(&s->cb, cb, cb_size < sizeof s->cb ? cb_size : sizeof s->cb);
    if (!s->pull)
        mpt_evq_forget(s->ctx, &s->evsrc);
}

int mpt_ctx_wakeup(struct mpt_ctx *ctx)
{
    if (ctx == NULL)
        return MPT_EINVAL;
    /* wake_mu guards wakefd, which mpt_ctx_fd() may create meanwhile;
     * the eventfd makes the wake-up visible to a foreign loop polling
     * mpt_ctx_fd(), which libev's own async pipe is not. */
    pthread_mutex_lock(&ctx->wake_mu);
    ev_async_send(ctx->loop, &ctx->wake_async);
    if (ctx->wakefd >= 0) {
        uint64_t one = 1;
        (void)!write(ctx->wakefd, &one, sizeof one);
    }
    pthread_mutex_unlock(&ctx->wake_mu);
    return 0;
}

int mpt_ctx_next_event(struct mpt_ctx *ctx, struct mpt_ctx_event *ev)
{
    struct mpt_ctx_event o;
    struct mpt_evsrc *src;

    if (ctx == NULL || ev == NULL || ev->size < sizeof(size_t))
        return MPT_EINVAL;
    memset(&o, 0, sizeof o);
    o.size = ev->size < sizeof o ? ev->size : sizeof o;
    if (ctx->wake_pending) {
        ctx->wake_pending = 0;
        o.type = MPT_EVENT_WAKEUP;
    } else {
        for (;;) {
            if ((src = TAILQ_FIRST(&ctx->evq)) == NULL)
                return MPT_EAGAIN;
            if (src->pending != 0 && (src->s == NULL || !src->s->released))
                break;
            mpt_evq_forget(ctx, src);
        }
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            if (src->pending & (1u << order[i])) {
                o.type = order[i];
                src->pending &= ~(1u << order[i]);
                break;
            }
        }
        if (o.type == MPT_EVENT_CONNECTED)
            o.status = src->connected_status;
        else if (o.type == MPT_EVENT_CLOSED)
            o.status = src->closed_status;
        if (src->s != NULL) {
            o.socket = src->s;
            o.user = src->s->user;
        } else {
            o.listener = src->l;
            o.user = mpt_listener_user(src->l);
        }
        if (src->pending == 0)
            mpt_evq_forget(ctx, src);
    }
    if (ev->size > sizeof o)
        memset((uint8_t *)ev + sizeof o, 0, ev->size - sizeof o);
    memcpy(ev, &o, o.size);
    return 0;
}
