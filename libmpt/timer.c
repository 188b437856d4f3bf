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

#include <mpt/mpt.h>

#include "core/alloc.h"
#include "watch.h"

#define NOT_IN_HEAP UINT32_MAX

/* libev's own absolute expiry of an active timer (what ev_timer_remaining
 * subtracts the loop time from): ordering by it is libev's order exactly,
 * whatever the clock did. */
static double expiry(const struct mpt_tmr *t)
{
    return t->w.at;
}

static void heap_set(struct mpt_watchers *ws, uint32_t i, struct mpt_tmr *t)
{
    ws->theap[i] = t;
    t->hidx = i;
}

static void sift_up(struct mpt_watchers *ws, uint32_t i)
{
    struct mpt_tmr *t = ws->theap[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (expiry(ws->theap[parent]) <= expiry(t))
            break;
        heap_set(ws, i, ws->theap[parent]);
        i = parent;
    }
    heap_set(ws, i, t);
}

static void sift_down(struct mpt_watchers *ws, uint32_t i)
{
    struct mpt_tmr *t = ws->theap[i];
    uint32_t n = ws->theap_n;

    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && expiry(ws->theap[c + 1]) < expiry(ws->theap[c]))
            c++;
        if (expiry(t) <= expiry(ws->theap[c]))
            break;
        heap_set(ws, i, ws->theap[c]);
        i = c;
    }
    heap_set(ws, i, t);
}

static void heap_push(struct mpt_watchers *ws, struct mpt_tmr *t)
{
    heap_set(ws, ws->theap_n++, t);
    sift_up(ws, t->hidx);
}

static void heap_remove(struct mpt_watchers *ws, struct mpt_tmr *t)
{
    uint32_t i = t->hidx;

    if (i == NOT_IN_HEAP)
        return;
    t->hidx = NOT_IN_HEAP;
    if (i == --ws->theap_n)
        return;
    struct mpt_tmr *moved = ws->theap[ws->theap_n];
    heap_set(ws, i, moved);
    sift_down(ws, i);
    sift_up(ws, moved->hidx);
}

/* A one-shot timer that fired is no longer active: out of the heap first. */
static void tmr_fired(EV_P_ ev_timer *w, int revents)
{
    struct mpt_tmr *t = (struct mpt_tmr *)w;

    heap_remove(t->ws, t);
    t->cb(EV_A_ w, revents);
}

int mpt_tmr_init(struct mpt_watchers *ws, struct mpt_tmr *t, void (*cb)(EV_P_ ev_timer *, int))
{
    if (ws->ntmrs == ws->theap_cap) {
        uint32_t cap = ws->theap_cap ? 2 * ws->theap_cap : 64;
        struct mpt_tmr **h = mpt_reallocarray(ws->theap, cap, sizeof *h);
        if (h == NULL)
            return MPT_ENOMEM;
        ws->theap = h;
        ws->theap_cap = cap;
    }
    memset(t, 0, sizeof *t);
    t->ws = ws;
    t->cb = cb;
    t->hidx = NOT_IN_HEAP;
    ev_timer_init(&t->w, tmr_fired, 0., 0.);
    LIST_INSERT_HEAD(&ws->tmrs, t, link);
    ws->ntmrs++;
    return 0;
}

void mpt_tmr_start(struct mpt_tmr *t, double after)
{
    struct mpt_watchers *ws = t->ws;

    heap_remove(ws, t);
    ev_timer_stop(ws->loop, &t->w);
    ev_timer_set(&t->w, after < 0 ? 0. : after, 0.);
    ev_timer_start(ws->loop, &t->w);
    heap_push(ws, t);
}

void mpt_tmr_stop(struct mpt_tmr *t)
{
    heap_remove(t->ws, t);
    ev_timer_stop(t->ws->loop, &t->w);
}

void mpt_tmr_fini(struct mpt_tmr *t)
{
    struct mpt_watchers *ws = t->ws;

    if (ws == NULL)
        return;
    mpt_tmr_stop(t);
    LIST_REMOVE(t, link);
    t->ws = NULL;
    ws->ntmrs--;
}

double mpt_tmr_next(struct mpt_watchers *ws)
{
    if (ws->theap_n == 0)
        return -1.;
    return ev_timer_remaining(ws->loop, &ws->theap[0]->w);
}
