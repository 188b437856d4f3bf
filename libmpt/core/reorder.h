/*
 * How long received data waits in the reorder buffer: the time from a DATA
 * frame's arrival until the cumulative point passes its last byte (0 for a
 * frame that arrives in order). This is the head-of-line cost a scheduler
 * imposes on the receiver (BLEST's and ECF's objective), measured where it
 * happens, per frame, with the engine's `now`.
 *
 * Frames waiting are kept in a small table, allocated at the first
 * out-of-order arrival (a connection that never reorders pays nothing);
 * delays go to a log-scaled histogram (4 bins per octave of microseconds,
 * so percentiles are within 19%). Bounded: when the table is full a frame
 * is not sampled (counted in `unsampled`), never delays anything.
 */
#ifndef MPT_CORE_REORDER_H
#define MPT_CORE_REORDER_H

#include <stdint.h>

#define MPT_REORDER_SLOTS 256
#define MPT_REORDER_BINS 128

struct mpt_reorder_table {
    struct {
        uint64_t end; /* DSN just past the frame */
        uint64_t t;   /* arrival, ns */
    } ent[MPT_REORDER_SLOTS];
    uint32_t n;
    uint64_t bins[MPT_REORDER_BINS];
};

struct mpt_reorder {
    struct mpt_reorder_table *tab; /* NULL until the first out-of-order frame */
    uint64_t in_order;             /* frames delivered on arrival (delay 0) */
    uint64_t unsampled;            /* out-of-order frames the full table could not hold */
    uint64_t max_ns;
};

/* A DATA frame ending at `end` that brought new bytes arrived at `now`;
 * `nxt` is the cumulative point after inserting it. */
void mpt_reorder_on_frame(struct mpt_reorder *r, uint64_t end, uint64_t nxt, uint64_t now);
/* The cumulative point moved to `nxt`: frames it passed stop waiting. */
void mpt_reorder_on_advance(struct mpt_reorder *r, uint64_t nxt, uint64_t now);
/* The delay below which `permille` of the sampled frames stayed, ns. */
uint64_t mpt_reorder_quantile(const struct mpt_reorder *r, unsigned permille);
uint64_t mpt_reorder_samples(const struct mpt_reorder *r);
void mpt_reorder_free(struct mpt_reorder *r);

#endif
