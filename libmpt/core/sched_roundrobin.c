/*
 * Round-robin scheduler: the next usable regular subflow with room after the
 * one picked last (backups only when no regular subflow is usable).
 */
#include "sched.h"

struct rr_state {
    int last;
};

static int pick_rr(const struct mpt_sched_sf *sf, int n, void *state)
{
    struct rr_state *st = state;
    int regular = 0, best = -1, first = -1;

    for (int i = 0; i < n; i++)
        if (!sf[i].backup)
            regular = 1;
    for (int i = 0; i < n; i++) {
        if (sf[i].room == 0 || sf[i].cc_room == 0 || (regular && sf[i].backup))
            continue;
        if (first < 0)
            first = i;
        if (best < 0 && sf[i].index > st->last)
            best = i;
    }
    if (best < 0)
        best = first;
    if (best < 0)
        return -1;
    st->last = sf[best].index;
    return sf[best].index;
}

const struct mpt_sched_ops mpt_sched_roundrobin = {
    .name = "roundrobin",
    .pick = pick_rr,
    .state_size = sizeof(struct rr_state),
};
