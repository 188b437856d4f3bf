/*
 * The engine's side of schedulers and congestion control: what they see of
 * each subflow (struct mpt_path_view), the congestion-control environment
 * and its events, the cap a subflow's bytes in flight must respect, and
 * switching either algorithm on a live connection.
 */
#include "conn_int.h"
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "cc.h"
#include "sched.h"

void mpt_algo_view(const struct mpt_conn *c, int i, struct mpt_path_view *v)
{
    const struct sf *s = &c->sf[i];

    memset(v, 0, sizeof *v);
    v->index = i;
    v->id = s->id;
    v->backup = mpt_prio_is_backup(s->prio);
    v->prio = s->prio;
    v->weight = s->weight ? s->weight : 1;
    v->srtt = sf_srtt(s);
    v->rttvar = sf_rttvar(s);
    v->e2e_rtt = mpt_sf_e2e_rtt(s);
    v->cwnd_bytes = s->info.cwnd_bytes;
    v->mss = s->info.mss;
    v->delivery_rate = s->info.delivery_rate;
    v->tcp_inflight = (size_t)s->info.unacked_bytes + s->info.notsent_bytes + s->q_bytes;
    v->inflight = s->inflight;
    v->sent = s->bytes_sent;
    v->room = s->room > MPT_DATA_HDR_LEN ? s->room - MPT_DATA_HDR_LEN : 0;
    if (mpt_meter_left(s) < v->room)
        v->room = mpt_meter_left(s); /* budget / rate cap */
    v->cc_room = SIZE_MAX;
}

int mpt_cc_env_fill(const struct mpt_conn *c, struct mpt_cc_env *e, struct mpt_path_view *views,
                    void **states, int *map)
{
    int n = 0;

    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        map[i] = -1;
        if (!s->cc_up)
            continue;
        mpt_algo_view(c, i, &views[n]);
        states[n] = s->cc_sf;
        map[i] = n++;
    }
    e->state = c->cc_state;
    e->sf = views;
    e->sf_state = states;
    e->n = n;
    return n;
}

/* Payload subflow i may take now: its penalty cap (opportunistic
 * retransmission halves it; connection-level bytes in flight) and the
 * congestion-control cap (TCP-level bytes in flight). */
size_t mpt_cc_room(const struct mpt_conn *c, int i, const struct mpt_cc_env *e, const int *map)
{
    const struct sf *s = &c->sf[i];
    size_t room = s->pen_cap > s->inflight ? s->pen_cap - s->inflight : 0;

    if (c->cc->cap && map[i] >= 0) {
        size_t cap = c->cc->cap(e, map[i]);
        size_t tcp = e->sf[map[i]].tcp_inflight;
        room = zmin(room, cap > tcp ? cap - tcp : 0);
    }
    return room;
}

/* ---- events --------------------------------------------------------------------- */

#define CC_ENV(c, e, i, which)                                                            \
    struct mpt_path_view views_[MPT_MAX_SUBFLOWS_LIMIT];                                  \
    void *states_[MPT_MAX_SUBFLOWS_LIMIT];                                                \
    int map_[MPT_MAX_SUBFLOWS_LIMIT];                                                     \
    struct mpt_cc_env e;                                                                  \
    int which;                                                                            \
    mpt_cc_env_fill((c), &e, views_, states_, map_);                                      \
    which = map_[(i)]

void mpt_cc_sf_up(struct mpt_conn *c, int i, uint64_t now)
{
    struct sf *s = &c->sf[i];

    if (s->cc_up)
        return;
    if (c->cc->sf_state_size && !(s->cc_sf = mpt_calloc(1, c->cc->sf_state_size)))
        return; /* out of memory: the subflow runs uncapped by us */
    s->cc_up = 1;
    if (c->cc->sf_up) {
        CC_ENV(c, e, i, which);
        c->cc->sf_up(&e, which, now);
    }
}

void mpt_cc_sf_down(struct mpt_conn *c, int i, uint64_t now)
{
    struct sf *s = &c->sf[i];

    if (!s->cc_up)
        return;
    if (c->cc->sf_down) {
        CC_ENV(c, e, i, which);
        c->cc->sf_down(&e, which, now);
    }
    s->cc_up = 0;
    mpt_free(s->cc_sf);
    s->cc_sf = NULL;
}

void mpt_cc_on_ack(struct mpt_conn *c, int i, size_t bytes, uint64_t now)
{
    if (!c->cc->on_ack || !c->sf[i].cc_up)
        return;
    CC_ENV(c, e, i, which);
    c->cc->on_ack(&e, which, bytes, now);
}

void mpt_cc_on_loss(struct mpt_conn *c, int i, uint64_t now)
{
    if (!c->cc->on_loss || !c->sf[i].cc_up)
        return;
    CC_ENV(c, e, i, which);
    c->cc->on_loss(&e, which, now);
}

void mpt_cc_on_rtt(struct mpt_conn *c, int i, uint64_t rtt, uint64_t now)
{
    if (!c->cc->on_rtt || !c->sf[i].cc_up)
        return;
    CC_ENV(c, e, i, which);
    c->cc->on_rtt(&e, which, rtt, now);
}

/* ---- lifecycle and live switching ------------------------------------------------- */

int mpt_algo_init(struct mpt_conn *c, const struct mpt_sched_ops *sched,
                  const struct mpt_cc_ops *cc)
{
    void *ss = NULL, *cs = NULL;

    if (sched->state_size && !(ss = mpt_calloc(1, sched->state_size)))
        return MPT_ENOMEM;
    if (cc->state_size && !(cs = mpt_calloc(1, cc->state_size))) {
        mpt_free(ss);
        return MPT_ENOMEM;
    }
    c->sched = sched;
    c->sched_state = ss;
    c->cc = cc;
    c->cc_state = cs;
    if (sched->init)
        sched->init(ss);
    if (cc->init)
        cc->init(cs);
    return 0;
}

void mpt_algo_fini(struct mpt_conn *c)
{
    for (int i = 0; i < c->nslots; i++) {
        mpt_free(c->sf[i].cc_sf);
        c->sf[i].cc_sf = NULL;
        c->sf[i].cc_up = 0;
    }
    if (c->sched && c->sched->fini)
        c->sched->fini(c->sched_state);
    if (c->cc && c->cc->fini)
        c->cc->fini(c->cc_state);
    mpt_free(c->sched_state);
    mpt_free(c->cc_state);
    c->sched_state = c->cc_state = NULL;
}

int mpt_conn_set_sched(struct mpt_conn *c, const struct mpt_sched_ops *ops, uint64_t now)
{
    void *st = NULL;

    if (!c || !ops || !ops->pick)
        return MPT_EINVAL;
    c->now = now;
    if (ops->state_size && !(st = mpt_calloc(1, ops->state_size)))
        return MPT_ENOMEM;
    if (c->sched->fini)
        c->sched->fini(c->sched_state);
    mpt_free(c->sched_state);
    c->sched = ops;
    c->sched_state = st;
    if (ops->init)
        ops->init(st);
    if (!(ops->flags & MPT_SCHED_OPPORTUNISTIC))
        for (int i = 0; i < c->nslots; i++)
            c->sf[i].pen_cap = SIZE_MAX; /* no penalty without the piece that lifts it */
    mpt_post(c, now);
    return 0;
}

int mpt_conn_set_cc(struct mpt_conn *c, const struct mpt_cc_ops *ops, uint64_t now)
{
    void *st = NULL;

    if (!c || !ops)
        return MPT_EINVAL;
    c->now = now;
    if (ops->state_size && !(st = mpt_calloc(1, ops->state_size)))
        return MPT_ENOMEM;
    for (int i = 0; i < c->nslots; i++)
        mpt_cc_sf_down(c, i, now);
    if (c->cc->fini)
        c->cc->fini(c->cc_state);
    mpt_free(c->cc_state);
    c->cc = ops;
    c->cc_state = st;
    if (ops->init)
        ops->init(st);
    for (int i = 0; i < c->nslots; i++)
        if (c->sf[i].state == MPT_SF_ESTABLISHED)
            mpt_cc_sf_up(c, i, now);
    mpt_post(c, now);
    return 0;
}

const struct mpt_sched_ops *mpt_conn_sched(const struct mpt_conn *c)
{
    return c ? c->sched : NULL;
}

const struct mpt_cc_ops *mpt_conn_cc(const struct mpt_conn *c)
{
    return c ? c->cc : NULL;
}
