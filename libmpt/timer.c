/*
 * The context's timers: libev timers that the context also keeps in a
 * binary min-heap ordered by expiry, so that mpt_ctx_timeout() (asked by an
 * external loop after every libmpt call) reads the earliest one in O(1)
 * instead of walking every timer of every connection. Starting, stopping
 * and firing a timer cost O(log n). The heap's array always has room for
 * every initialised timer, so starting one never allocates (and never
 * fails).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "io.h"

#define NOT_IN_HEAP UINT32_MAX

/* libev's own absolute expiry of an active timer (what ev_timer_remaining
 * subtracts the loop time from): ordering by it is libev's order exactly,
 * whatever the clock did. */
static double expiry(const struct mpt_tmr *t)
{
    return t->w.at;
}

static void heap_set(struct mpt_ctx *ctx, uint32_t i, struct mpt_tmr *t)
{
    ctx->theap[i] = t;
    t->hidx = i;
}

static void sift_up(struct mpt_ctx *ctx, uint32_t i)
{
    struct mpt_tmr *t = ctx->theap[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (expiry(ctx->theap[parent]) <= expiry(t))
            break;
        heap_set(ctx, i, ctx->theap[parent]);
        i = parent;
    }
    heap_set(ctx, i, t);
}

static void sift_down(struct mpt_ctx *ctx, uint32_t i)
{
    struct mpt_tmr *t = ctx->theap[i];
    uint32_t n = ctx->theap_n;

    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && expiry(ctx->theap[c + 1]) < expiry(ctx->theap[c]))
            c++;
        if (expiry(t) <= expiry(ctx->theap[c]))
            break;
        heap_set(ctx, i, ctx->theap[c]);
        i = c;
    }
    heap_set(ctx, i, t);
}

static void heap_push(struct mpt_ctx *ctx, struct mpt_tmr *t)
{
    heap_set(ctx, ctx->theap_n++, t);
    sift_up(ctx, t->hidx);
}

static void heap_remove(struct mpt_ctx *ctx, struct mpt_tmr *t)
{
    uint32_t i = t->hidx;

    if (i == NOT_IN_HEAP)
        return;
    t->hidx = NOT_IN_HEAP;
    if (i == --ctx->theap_n)
        return;
    struct mpt_tmr *moved = ctx->theap[ctx->theap_n];
    heap_set(ctx, i, moved);
    sift_down(ctx, i);
    sift_up(ctx, moved->hidx);
}

/* A one-shot timer that fired is no longer active: out of the heap first. */
static void tmr_fired(EV_P_ ev_timer *w, int revents)
{
    struct mpt_tmr *t = (struct mpt_tmr *)w;

    heap_remove(t->ctx, t);
    t->cb(EV_A_ w, revents);
}

int mpt_tmr_init(struct mpt_ctx *ctx, struct mpt_tmr *t, void (*cb)(EV_P_ ev_timer *, int))
{
    if (ctx->ntmrs == ctx->theap_cap) {
        uint32_t cap = ctx->theap_cap ? 2 * ctx->theap_cap : 64;
        struct mpt_tmr **h = reallocarray(ctx->theap, cap, sizeof *h);
        if (h == NULL)
            return MPT_ENOMEM;
        ctx->theap = h;
        ctx->theap_cap = cap;
    }
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->cb = cb;
    t->hidx = NOT_IN_HEAP;
    ev_timer_init(&t->w, tmr_fired, 0., 0.);
    t->next = ctx->tmrs;
    if (ctx->tmrs)
        ctx->tmrs->prev = t;
    ctx->tmrs = t;
    ctx->ntmrs++;
    return 0;
}

void mpt_tmr_start(struct mpt_tmr *t, double after)
{
    struct mpt_ctx *ctx = t->ctx;

    heap_remove(ctx, t);
    ev_timer_stop(ctx->loop, &t->w);
    ev_timer_set(&t->w, after < 0 ? 0. : after, 0.);
    ev_timer_start(ctx->loop, &t->w);
    heap_push(ctx, t);
}

void mpt_tmr_stop(struct mpt_tmr *t)
{
    heap_remove(t->ctx, t);
    ev_timer_stop(t->ctx->loop, &t->w);
}

void mpt_tmr_fini(struct mpt_tmr *t)
{
    struct mpt_ctx *ctx = t->ctx;

    if (ctx == NULL)
        return;
    mpt_tmr_stop(t);
    if (t->prev)
        t->prev->next = t->next;
    else
        ctx->tmrs = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->ctx = NULL;
    ctx->ntmrs--;
}

double mpt_tmr_next(struct mpt_ctx *ctx)
{
    if (ctx->theap_n == 0)
        return -1.;
    return ev_timer_remaining(ctx->loop, &ctx->theap[0]->w);
}
