/*
 * ECF, Earliest Completion First (Lim, Nahum, Towsley, Gibbens; CoNEXT 2017).
 * While the fastest subflow f has room, use it. Otherwise compare finishing
 * the backlog k on f alone (n = 1 + k / cwnd_f rounds of rtt_f) with
 * sending on the slower subflow s (rtt_s + delta, delta the larger rttvar):
 * if waiting for f is faster, and s could not even deliver its share of the
 * backlog before f is free again (k / cwnd_s x rtt_s >= 2 rtt_f + delta),
 * wait for f. The comparison has hysteresis (beta = 0.25) once waiting.
 */
#include "sched.h"

#include <mpt/error.h>

#include "sched_util.h"

struct ecf_state {
    int waiting;
};

static int pick_ecf(void *state, const struct mpt_sched_view *v, struct mpt_sched_pick *p)
{
    struct ecf_state *st = state;
    int f = mpt_sched_fastest(v, 0), s = -1;
    const struct mpt_path_view *F, *S;
    uint64_t rf, rs, delta, k, cf, cs, n;

    if (f < 0)
        return MPT_EAGAIN;
    F = &v->sf[f];
    if (mpt_path_has_room(F)) {
        mpt_sched_one(p, F);
        return 0;
    }
    for (int i = 0; i < v->n; i++)
        if (i != f && mpt_path_has_room(&v->sf[i]) &&
            (s < 0 || v->sf[i].e2e_rtt < v->sf[s].e2e_rtt))
            s = i;
    if (s < 0)
        return MPT_EAGAIN;
    S = &v->sf[s];
    rf = F->e2e_rtt ? F->e2e_rtt : 1;
    rs = S->e2e_rtt > rf ? S->e2e_rtt : rf;
    delta = F->rttvar > S->rttvar ? F->rttvar : S->rttvar;
    k = v->backlog ? v->backlog : v->chunk;
    cf = mpt_sched_cwnd(F);
    cs = mpt_sched_cwnd(S);
    n = 1 + k / cf;
    /* n rtt_f < (1 + waiting beta)(rtt_s + delta), beta = 1/4 */
    if (4 * n * rf < (uint64_t)(4 + st->waiting) * (rs + delta)) {
        if (k * rs / cs >= 2 * rf + delta) {
            st->waiting = 1;
            return MPT_EAGAIN;
        }
    } else {
        st->waiting = 0;
    }
    mpt_sched_one(p, S);
    return 0;
}

const struct mpt_sched_ops mpt_sched_ecf = {
    .name = "ecf",
    .state_size = sizeof(struct ecf_state),
    .flags = MPT_SCHED_OPPORTUNISTIC,
    .pick = pick_ecf,
};
