/*
 * Name resolution that never blocks the loop (resolve.c). The caller
 * registers what to call: `done` on the loop thread with the answer, and
 * the hooks that mirror the lookup thread's wake-up to a foreign loop. The
 * resolver calls nothing else of libmpt.
 */
#ifndef MPT_RESOLVE_H
#define MPT_RESOLVE_H

#include <ev.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct mpt_resolve_req;

/* Both run with the resolver's lock held: wake on the lookup thread after
 * it stored its answer, woken on the loop thread before answers are
 * collected (what wake made visible can be cleared there). */
struct mpt_resolve_hooks {
    void (*wake)(void *arg);
    void (*woken)(void *arg);
    void *arg;
};

struct mpt_resolver {
    struct ev_loop *loop;
    ev_async async;
    pthread_mutex_t mu;
    SLIST_HEAD(, mpt_resolve_req) reqs; /* all outstanding */
    unsigned waiting;                /* lookups a caller still waits for (loop thread only) */
    struct mpt_resolve_hooks hooks;
};

/* The answer (err 0 or MPT_ERESOLVE), on the loop thread; sa has the port. */
typedef void (*mpt_resolve_done_cb)(void *arg, int err, const struct sockaddr *sa,
                                    socklen_t len);

int mpt_resolve_init(struct mpt_resolver *rs, struct ev_loop *loop,
                     const struct mpt_resolve_hooks *hooks);
void mpt_resolve_fini(struct mpt_resolver *rs);
/* Completes from the loop, never from inside the call. family: AF_UNSPEC
 * or the one to prefer. 0 (*out set until done runs or the request is
 * cancelled) or MPT_ENOMEM, MPT_ERESOLVE, MPT_ESYS. */
int mpt_resolve_start(struct mpt_resolver *rs, const char *host, uint16_t port, int family,
                      mpt_resolve_done_cb done, void *arg, struct mpt_resolve_req **out);
/* done will not be called for *req; *req becomes NULL. */
void mpt_resolve_cancel(struct mpt_resolver *rs, struct mpt_resolve_req **req);
/* An answer waits to be delivered (mpt_ctx_timeout must not sleep). */
int mpt_resolve_pending(struct mpt_resolver *rs);

#endif
