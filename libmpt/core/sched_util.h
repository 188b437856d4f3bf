/* Helpers shared by the schedulers that compare a fast and a slow path. */
#ifndef MPT_CORE_SCHED_UTIL_H
#define MPT_CORE_SCHED_UTIL_H

#include "sched.h"

/* The subflow with the lowest end-to-end RTT, with or without room; -1 if none. */
static inline int mpt_sched_fastest(const struct mpt_sched_view *v, int need_room)
{
    int best = -1;

    for (int i = 0; i < v->n; i++) {
        if (need_room && !mpt_path_has_room(&v->sf[i]))
            continue;
        if (best < 0 || v->sf[i].e2e_rtt < v->sf[best].e2e_rtt)
            best = i;
    }
    return best;
}

/* A congestion window in bytes for a decision (the kernel's, else what is in
 * flight, else ten segments). */
static inline uint64_t mpt_sched_cwnd(const struct mpt_path_view *p)
{
    uint64_t mss = p->mss ? p->mss : 1448;

    if (p->cwnd_bytes)
        return p->cwnd_bytes;
    return p->tcp_inflight > 10 * mss ? p->tcp_inflight : 10 * mss;
}

static inline void mpt_sched_one(struct mpt_sched_pick *p, const struct mpt_path_view *s)
{
    p->n = 1;
    p->sf[0] = s->index;
    p->len = 0;
}

#endif
