/*
 * Weighted scheduler: a fixed split of the bytes by per-subflow weights
 * (mpt_conn_sf_set_weight; 1 by default), for operators who know their
 * links: each chunk goes to the usable subflow whose bytes sent so far,
 * divided by its weight, are the fewest (deficit round-robin by bytes); if
 * that one has no room, the scheduler waits for it. So a link slower than
 * its weight says slows the connection down: that is the contract of a
 * fixed split (a subflow that fails or stalls leaves the split at once).
 */
#include "sched.h"

#include <mpt/error.h>

struct weighted_state {
    uint32_t id[MPT_MAX_SUBFLOWS_LIMIT];   /* which subflow the base belongs to */
    uint64_t base[MPT_MAX_SUBFLOWS_LIMIT]; /* subtracted from its bytes sent */
};

/* Bytes sent on view i, counted from when this scheduler first saw it. */
static uint64_t owed(const struct weighted_state *st, const struct mpt_path_view *p)
{
    return p->sent - st->base[p->index];
}

static int pick_weighted(void *state, const struct mpt_sched_view *v, struct mpt_sched_pick *p)
{
    struct weighted_state *st = state;
    int best = -1;
    uint64_t level = UINT64_MAX;

    /* a newcomer starts level with the others, not with a huge credit */
    for (int i = 0; i < v->n; i++) {
        uint32_t w = v->sf[i].weight ? v->sf[i].weight : 1;
        if (st->id[v->sf[i].index] == v->sf[i].id && owed(st, &v->sf[i]) / w < level)
            level = owed(st, &v->sf[i]) / w;
    }
    for (int i = 0; i < v->n; i++) {
        const struct mpt_path_view *s = &v->sf[i];
        uint32_t w = s->weight ? s->weight : 1;
        if (st->id[s->index] != s->id) {
            st->id[s->index] = s->id;
            st->base[s->index] = s->sent - (level == UINT64_MAX ? 0 : level * w);
        }
    }
    for (int i = 0; i < v->n; i++) {
        const struct mpt_path_view *s = &v->sf[i];
        uint64_t w = s->weight ? s->weight : 1, bw;
        if (best < 0) {
            best = i;
            continue;
        }
        bw = v->sf[best].weight ? v->sf[best].weight : 1;
        /* owed_i / w_i < owed_b / w_b, without division */
        if (owed(st, s) * bw < owed(st, &v->sf[best]) * w)
            best = i;
    }
    if (best < 0 || !mpt_path_has_room(&v->sf[best]))
        return MPT_EAGAIN;
    p->n = 1;
    p->sf[0] = v->sf[best].index;
    p->len = 0;
    return 0;
}

const struct mpt_sched_ops mpt_sched_weighted = {
    .name = "weighted",
    .state_size = sizeof(struct weighted_state),
    .pick = pick_weighted,
};
