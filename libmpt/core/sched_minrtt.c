/*
 * Lowest-RTT scheduler: the regular (non-backup) subflow with the lowest
 * smoothed RTT that still has socket room and congestion-control room.
 * Backup subflows are used only when no regular subflow is usable at all
 * (full regular subflows mean "wait", not "spill onto the backup").
 * An unknown RTT (0) compares equal to any other; ties go to the lower index.
 */
#include "sched.h"

static int has_room(const struct mpt_sched_sf *s)
{
    return s->room > 0 && s->cc_room > 0;
}

static int pick_minrtt(const struct mpt_sched_sf *sf, int n, void *state)
{
    int regular = 0, best = -1;

    (void)state;
    for (int i = 0; i < n; i++)
        if (!sf[i].backup)
            regular = 1;
    for (int i = 0; i < n; i++) {
        if (!has_room(&sf[i]) || (regular && sf[i].backup))
            continue;
        if (best < 0) {
            best = i;
            continue;
        }
        if (sf[i].srtt != 0 && sf[best].srtt != 0 && sf[i].srtt < sf[best].srtt)
            best = i;
    }
    return best < 0 ? -1 : sf[best].index;
}

const struct mpt_sched_ops mpt_sched_minrtt = {
    .name = "minrtt",
    .pick = pick_minrtt,
    .state_size = 0,
};
