/*
 * Redundant scheduler: every byte on every usable subflow; the receiver
 * keeps the first copy to arrive (duplicates are dropped by DSN). Latency of
 * the best path at each moment, and no gap when one path dies, at the cost of
 * sending everything n times. New data goes to the fastest subflow with
 * room; the engine copies it to each other subflow as that subflow's room
 * allows (MPT_SCHED_REDUNDANT), and a copy that would only arrive after the
 * peer acknowledged the bytes is never sent.
 */
#include "sched.h"

#include <mpt/error.h>

static int pick_redundant(void *state, const struct mpt_sched_view *v, struct mpt_sched_pick *p)
{
    int best = -1;

    (void)state;
    for (int i = 0; i < v->n; i++)
        if (mpt_path_has_room(&v->sf[i]) && (best < 0 || v->sf[i].e2e_rtt < v->sf[best].e2e_rtt))
            best = i;
    if (best < 0)
        return MPT_EAGAIN;
    p->n = 1;
    p->sf[0] = v->sf[best].index;
    p->len = 0;
    return 0;
}

const struct mpt_sched_ops mpt_sched_redundant = {
    .name = "redundant",
    .flags = MPT_SCHED_REDUNDANT,
    .pick = pick_redundant,
};
