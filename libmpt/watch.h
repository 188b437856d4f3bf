/*
 * The context's libev watchers (watcher.c, timer.c): every started I/O
 * watcher, so that the external-loop fd (mpt_ctx_fd) can mirror them in an
 * epoll set, and every timer, in a heap ordered by expiry, so that
 * mpt_ctx_timeout reads the earliest one in O(1). Knows nothing of sockets
 * or connections: the files that use it embed an mpt_io or mpt_tmr and get
 * their libev callback back.
 */
#ifndef MPT_WATCH_H
#define MPT_WATCH_H

#include <ev.h>
#include <stdint.h>
#include <sys/queue.h>

struct mpt_watchers;

struct mpt_io {
    ev_io w;
    struct mpt_watchers *ws;
    int events;                      /* EV_READ | EV_WRITE currently wanted */
    LIST_ENTRY(mpt_io) link;         /* ws->ios while events != 0 */
};

/* A one-shot timer: a libev timer that is also kept in the heap. */
struct mpt_tmr {
    ev_timer w;                      /* first: the libev callback casts back */
    struct mpt_watchers *ws;
    void (*cb)(EV_P_ ev_timer *, int);
    uint32_t hidx;                   /* index in ws->theap while started */
    LIST_ENTRY(mpt_tmr) link;        /* ws->tmrs while initialised */
};

struct mpt_watchers {
    struct ev_loop *loop;
    int extfd;                       /* epoll fd mirroring the ios, or -1 */
    LIST_HEAD(, mpt_io) ios;         /* the started ones */
    LIST_HEAD(, mpt_tmr) tmrs;       /* every initialised timer */
    struct mpt_tmr **theap;          /* the started ones, a min-heap by expiry */
    uint32_t theap_n, theap_cap, ntmrs;
};

void mpt_watchers_init(struct mpt_watchers *ws, struct ev_loop *loop);
/* Closes the mirror; every timer must have been finished. */
void mpt_watchers_fini(struct mpt_watchers *ws);
/* The epoll fd mirroring every started watcher (created on the first
 * call), or -1 with errno set. */
int mpt_watchers_mirror(struct mpt_watchers *ws);
/* Adds fd (readable) to the mirror, for a wake-up libev's own watchers do
 * not show to a foreign loop. */
void mpt_watchers_mirror_fd(struct mpt_watchers *ws, int fd);

void mpt_io_init(struct mpt_watchers *ws, struct mpt_io *io, void (*cb)(EV_P_ ev_io *, int),
                 int fd);
void mpt_io_set(struct mpt_io *io, int events);

/* 0 or MPT_ENOMEM (the heap keeps room for every initialised timer, so
 * mpt_tmr_start never allocates). */
int mpt_tmr_init(struct mpt_watchers *ws, struct mpt_tmr *t, void (*cb)(EV_P_ ev_timer *, int));
void mpt_tmr_start(struct mpt_tmr *t, double after);
void mpt_tmr_stop(struct mpt_tmr *t);
void mpt_tmr_fini(struct mpt_tmr *t);
/* Seconds until the earliest timer (may be <= 0), -1 if none. */
double mpt_tmr_next(struct mpt_watchers *ws);

#endif
