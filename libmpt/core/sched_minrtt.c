/*
 * Lowest-RTT scheduler (the default): the subflow with the lowest smoothed
 * RTT that still has socket room and congestion-control room. Full regular
 * subflows mean "wait", not "spill onto a backup" (the engine passes backups
 * only when no regular subflow is usable). An unknown RTT (0) compares equal
 * to any other; ties go to the first subflow.
 */
#include "sched.h"

#include <mpt/error.h>

static int pick_minrtt(void *state, const struct mpt_sched_view *v, struct mpt_sched_pick *p)
{
    int best = -1;

    (void)state;
    for (int i = 0; i < v->n; i++) {
        if (!mpt_path_has_room(&v->sf[i]))
            continue;
        if (best < 0 || (v->sf[i].srtt != 0 && v->sf[best].srtt != 0 &&
                         v->sf[i].srtt < v->sf[best].srtt))
            best = i;
    }
    if (best < 0)
        return MPT_EAGAIN;
    p->n = 1;
    p->sf[0] = v->sf[best].index;
    p->len = 0;
    return 0;
}

const struct mpt_sched_ops mpt_sched_minrtt = {
    .name = "minrtt",
    .flags = MPT_SCHED_OPPORTUNISTIC,
    .pick = pick_minrtt,
};
