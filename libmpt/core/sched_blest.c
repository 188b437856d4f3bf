/*
 * BLEST (Ferlin, Alay, Mehani, Boreli; IFIP Networking 2016): blocking
 * estimation. While the fastest subflow has room, use it. Otherwise, before
 * sending on a slower subflow s, estimate how many bytes the fastest one f
 * could send during one RTT of s,
 *     X = (cwnd_f + mss_f (r - 1) / 2) r,   r = rtt_s / rtt_f,
 * (its window now, growing by one segment per RTT); if lambda X would not
 * fit in the peer's window once s's bytes in flight and this chunk hold
 * their share of it, sending on s would block the receiver: wait for f.
 * lambda starts at 1; at most once per RTT of f it grows by 0.1 (up to 3)
 * if the peer's window is exhausted while slower subflows hold bytes in
 * flight (head-of-line blocking happened), else shrinks by 0.05 (down to 0.5).
 */
#include "sched.h"

#include <mpt/error.h>

#include "sched_util.h"

struct blest_state {
    unsigned lambda_pct; /* lambda x 100 */
    uint64_t adapted_at; /* lambda changes at most once per RTT of the fastest subflow */
};

static void adapt(struct blest_state *st, const struct mpt_sched_view *v, int f)
{
    int blocked = 0;

    if (v->now < st->adapted_at + v->sf[f].e2e_rtt)
        return;
    st->adapted_at = v->now;
    if (v->window < v->chunk)
        for (int i = 0; i < v->n; i++)
            blocked |= i != f && v->sf[i].inflight > 0;
    if (blocked && st->lambda_pct < 300)
        st->lambda_pct += 10;
    else if (!blocked && st->lambda_pct > 50)
        st->lambda_pct -= 5;
}

static void blest_init(void *state)
{
    ((struct blest_state *)state)->lambda_pct = 100;
}

static int pick_blest(void *state, const struct mpt_sched_view *v, struct mpt_sched_pick *p)
{
    struct blest_state *st = state;
    int f = mpt_sched_fastest(v, 0), s = -1;
    const struct mpt_path_view *F, *S;
    uint64_t rf, rs, mss, x, need;

    if (f < 0)
        return MPT_EAGAIN;
    F = &v->sf[f];
    adapt(st, v, f);
    if (mpt_path_has_room(F)) {
        mpt_sched_one(p, F);
        return 0;
    }
    /* the fastest subflow with room among the slower ones */
    for (int i = 0; i < v->n; i++)
        if (i != f && mpt_path_has_room(&v->sf[i]) &&
            (s < 0 || v->sf[i].e2e_rtt < v->sf[s].e2e_rtt))
            s = i;
    if (s < 0)
        return MPT_EAGAIN;
    S = &v->sf[s];
    rf = F->e2e_rtt ? F->e2e_rtt : 1;
    rs = S->e2e_rtt > rf ? S->e2e_rtt : rf;
    mss = F->mss ? F->mss : 1448;
    /* X in bytes; r kept as a fraction rs / rf */
    x = (mpt_sched_cwnd(F) * rs + mss * (rs - rf) / 2 * rs / rf) / rf;
    need = x * st->lambda_pct / 100;
    if (need + S->inflight + v->chunk > v->window)
        return MPT_EAGAIN;
    mpt_sched_one(p, S);
    return 0;
}

const struct mpt_sched_ops mpt_sched_blest = {
    .name = "blest",
    .state_size = sizeof(struct blest_state),
    .flags = MPT_SCHED_OPPORTUNISTIC,
    .init = blest_init,
    .pick = pick_blest,
};
