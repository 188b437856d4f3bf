/*
 * Congestion control above kernel TCP. libmpt cannot raise a subflow's
 * kernel cwnd, only hand the subflow fewer bytes: an algorithm keeps its own
 * window per subflow and the engine caps the subflow's bytes in flight at
 * the TCP level (written or queued and not TCP-acked) by it, so the coupled
 * window is min(kernel cwnd, coupled window). One file per algorithm, found
 * by name, switchable on a live connection (mpt_conn_set_cc); notified of
 * every ack, loss (the kernel's retransmission count grew), end-to-end RTT
 * sample and subflow up / down, with the time.
 */
#ifndef MPT_CORE_CC_H
#define MPT_CORE_CC_H

#include <stddef.h>
#include <stdint.h>

#include "sched.h" /* struct mpt_path_view */

/* Every established subflow, for coupled algorithms; `which` arguments
 * index these arrays. */
struct mpt_cc_env {
    void *state;                    /* the connection's state */
    const struct mpt_path_view *sf;
    void *const *sf_state;          /* each subflow's state */
    int n;
};

struct mpt_cc_ops {
    const char *name;
    size_t state_size;    /* per connection, zeroed before init */
    size_t sf_state_size; /* per subflow, zeroed before sf_up */
    void (*init)(void *state);                                   /* optional */
    void (*fini)(void *state);                                   /* optional */
    void (*sf_up)(const struct mpt_cc_env *e, int which, uint64_t now);   /* optional */
    void (*sf_down)(const struct mpt_cc_env *e, int which, uint64_t now); /* optional; before its state is freed */
    /* `bytes` sent on subflow `which` were acknowledged at connection level */
    void (*on_ack)(const struct mpt_cc_env *e, int which, size_t bytes, uint64_t now);
    /* the kernel retransmitted on `which` (one call per increase of its count) */
    void (*on_loss)(const struct mpt_cc_env *e, int which, uint64_t now);
    /* an end-to-end RTT sample on `which` (DATA to DATA_ACK, PING to PONG) */
    void (*on_rtt)(const struct mpt_cc_env *e, int which, uint64_t rtt, uint64_t now);
    /* the cap on `which`'s bytes in flight at the TCP level; SIZE_MAX: none */
    size_t (*cap)(const struct mpt_cc_env *e, int which);
};

extern const struct mpt_cc_ops mpt_cc_uncoupled;
extern const struct mpt_cc_ops mpt_cc_lia;
extern const struct mpt_cc_ops mpt_cc_olia;
extern const struct mpt_cc_ops mpt_cc_balia;

/* The algorithms' coupling factors, for tests (cc_lia.c, cc_olia.c, cc_balia.c). */
double mpt_cc_lia_alpha(const struct mpt_cc_env *e);
double mpt_cc_olia_alpha(const struct mpt_cc_env *e, int which);
double mpt_cc_balia_alpha(const struct mpt_cc_env *e, int which);
extern const struct mpt_cc_ops *const mpt_cc_registry[];
/* Lookup by name ("passthrough" is the old name of "uncoupled"). */
const struct mpt_cc_ops *mpt_cc_find(const char *name);

#endif
