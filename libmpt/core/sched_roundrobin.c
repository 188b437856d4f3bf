/*
 * Round-robin scheduler: the next subflow with room after the one picked
 * last, in index order.
 */
#include "sched.h"

#include <mpt/error.h>

struct rr_state {
    int last;
};

static int pick_rr(void *state, const struct mpt_sched_view *v, struct mpt_sched_pick *p)
{
    struct rr_state *st = state;
    int best = -1, first = -1;

    for (int i = 0; i < v->n; i++) {
        if (!mpt_path_has_room(&v->sf[i]))
            continue;
        if (first < 0)
            first = i;
        if (best < 0 && v->sf[i].index > st->last)
            best = i;
    }
    if (best < 0)
        best = first;
    if (best < 0)
        return MPT_EAGAIN;
    st->last = v->sf[best].index;
    p->n = 1;
    p->sf[0] = st->last;
    p->len = 0;
    return 0;
}

const struct mpt_sched_ops mpt_sched_roundrobin = {
    .name = "roundrobin",
    .state_size = sizeof(struct rr_state),
    .flags = MPT_SCHED_OPPORTUNISTIC,
    .pick = pick_rr,
};
