/*
 * Pull-style events (events.c): the per-handle event source that sockets
 * and listeners without callbacks embed, and the context's queue of them.
 */
#ifndef MPT_EVENTS_H
#define MPT_EVENTS_H

#include <stddef.h>
#include <sys/queue.h>

#include <mpt/mpt.h>

struct mpt_ctx;
struct mpt_socket;
struct mpt_listener;

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

int mpt_events_init(struct mpt_ctx *ctx);
void mpt_events_fini(struct mpt_ctx *ctx);
void mpt_evq_post(struct mpt_ctx *ctx, struct mpt_evsrc *src, enum mpt_ctx_event_type type,
                  int status);
void mpt_evq_forget(struct mpt_ctx *ctx, struct mpt_evsrc *src);

/* Is cb_size a struct mpt_callbacks this library can take (doc/abi.md)? */
int mpt_callbacks_size_ok(const struct mpt_callbacks *cb, size_t cb_size);
/* Installs the known members of cb (NULL: none, events are pulled). */
void mpt_callbacks_take(struct mpt_socket *s, const struct mpt_callbacks *cb, size_t cb_size);

#endif
