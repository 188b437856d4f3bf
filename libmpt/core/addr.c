/* Addresses and priorities: ADD_ADDR (our advertisements until echoed),
 * REMOVE_ADDR, PRIO and backup marks. */
#include "conn_int.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "crypto.h"

static int adv_matches(const struct adv *a, const struct mpt_frame *f)
{
    size_t alen = a->family == 4 ? 4 : 16;

    return a->id == f->u.add_addr.addr_id && a->family == f->u.add_addr.family &&
           a->port == f->u.add_addr.port && memcmp(a->addr, f->u.add_addr.addr, alen) == 0 &&
           mpt_ct_equal(a->hmac, f->u.add_addr.hmac, MPT_ADDR_HMAC_LEN);
}

int mpt_addr_on_add_addr(struct mpt_conn *c, int i, const struct mpt_frame *f)
{
    uint8_t mac[MPT_ADDR_HMAC_LEN];
    struct mpt_event *ev;

    if (f->flags & MPT_FF_ADD_ADDR_ECHO) {
        /* An echo carries the HMAC we computed: match it, all fields
         * equal, against what we advertised; an echo of nothing is ignored. */
        for (uint32_t k = 0; k < c->advs.n; k++) {
            struct adv *a = mpt_ring_at(&c->advs, k);
            if (adv_matches(a, f))
                a->echoed = 1;
        }
        return 0;
    }
    mpt_addr_hmac_tls(c->key_peer, c->key_local, c->has_secret ? c->secret : NULL,
                      f->u.add_addr.addr_id, f->u.add_addr.family,
                      f->u.add_addr.port, f->u.add_addr.addr, mac);
    if (f->u.add_addr.addr_id == 0 || !mpt_ct_equal(mac, f->u.add_addr.hmac, MPT_ADDR_HMAC_LEN)) {
        c->addr_bad++; /* id 0 is the first subflow's and never advertised (10.1) */
        return 0;
    }
    {
        struct mpt_frame e = *f;
        e.flags = MPT_FF_ADD_ADDR_ECHO;
        mpt_q_frame(&c->sf[i], &e);
    }
    ev = mpt_ev_push(c, MPT_EV_ADDR_LEARNED, -1, 0, 0);
    if (ev) {
        ev->addr.addr_id = f->u.add_addr.addr_id;
        ev->addr.family = f->u.add_addr.family;
        ev->addr.port = f->u.add_addr.port;
        memcpy(ev->addr.addr, f->u.add_addr.addr, 16);
    }
    return 0;
}

int mpt_conn_add_addr(struct mpt_conn *c, uint8_t addr_id, uint8_t family, const uint8_t *addr,
                      uint16_t port, uint64_t now)
{
    struct mpt_frame f;
    struct adv *a;
    int i;

    if (!c || !addr || (family != 4 && family != 6))
        return MPT_EINVAL;
    c->now = now;
    if (!conn_open(c))
        return MPT_ESTATE;
    if (addr_id == 0)
        return MPT_EINVAL; /* id 0 is the first subflow's address (10.1) */
    i = mpt_best_ctrl_sf(c);
    if (i < 0)
        return MPT_ENOPATH;
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_ADD_ADDR;
    f.u.add_addr.addr_id = addr_id;
    f.u.add_addr.family = family;
    f.u.add_addr.port = port;
    memcpy(f.u.add_addr.addr, addr, family == 4 ? 4 : 16);
    mpt_addr_hmac_tls(c->key_local, c->key_peer, c->has_secret ? c->secret : NULL, addr_id,
                      family, port, f.u.add_addr.addr, f.u.add_addr.hmac);
    a = NULL;
    for (uint32_t k = 0; k < c->advs.n; k++) {
        struct adv *x = mpt_ring_at(&c->advs, k);
        if (x->id != addr_id)
            continue;
        if (!adv_matches(x, &f))
            return MPT_EINVAL; /* 10.2: remove an id before reusing it */
        a = x;
    }
    if (!a && !(a = mpt_ring_push_back(&c->advs)))
        return MPT_ENOMEM;
    memset(a, 0, sizeof *a);
    a->id = addr_id;
    a->family = family;
    a->port = port;
    memcpy(a->addr, f.u.add_addr.addr, 16);
    memcpy(a->hmac, f.u.add_addr.hmac, MPT_ADDR_HMAC_LEN);
    a->sf = (int8_t)i;
    return mpt_q_frame(&c->sf[i], &f);
}

/* The subflow that carried our un-echoed advertisements went away. */
void mpt_addr_resend(struct mpt_conn *c, int gone)
{
    for (uint32_t k = 0; k < c->advs.n; k++) {
        struct adv *a = mpt_ring_at(&c->advs, k);
        struct mpt_frame f;
        int i;
        if (a->echoed || a->sf != gone || (i = mpt_best_ctrl_sf(c)) < 0)
            continue;
        memset(&f, 0, sizeof f);
        f.type = MPT_FT_ADD_ADDR;
        f.u.add_addr.addr_id = a->id;
        f.u.add_addr.family = a->family;
        f.u.add_addr.port = a->port;
        memcpy(f.u.add_addr.addr, a->addr, 16);
        memcpy(f.u.add_addr.hmac, a->hmac, MPT_ADDR_HMAC_LEN);
        if (mpt_q_frame(&c->sf[i], &f) == 0)
            a->sf = (int8_t)i;
    }
}

int mpt_conn_remove_addr(struct mpt_conn *c, uint8_t addr_id, uint64_t now)
{
    struct mpt_frame f;
    int i;

    if (!c)
        return MPT_EINVAL;
    c->now = now;
    if (!conn_open(c))
        return MPT_ESTATE;
    i = mpt_best_ctrl_sf(c);
    if (i < 0)
        return MPT_ENOPATH;
    for (uint32_t k = 0; k < c->advs.n; k++) {
        struct adv *a = mpt_ring_at(&c->advs, k);
        if (a->id == addr_id) {
            memcpy(a, mpt_ring_at(&c->advs, c->advs.n - 1), sizeof *a);
            mpt_ring_pop_back(&c->advs);
            break;
        }
    }
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_REMOVE_ADDR;
    f.u.remove_addr.n = 1;
    f.u.remove_addr.ids[0] = addr_id;
    return mpt_q_frame(&c->sf[i], &f);
}

int mpt_conn_sf_set_weight(struct mpt_conn *c, int i, uint32_t weight)
{
    if (!valid_sf(c, i) || weight == 0 || weight > 1000)
        return MPT_EINVAL;
    c->sf[i].weight = weight;
    return 0;
}

uint8_t mpt_prio_flags(const struct mpt_conn *c, int prio)
{
    int tiers = (c->features & MPT_FEAT_TIERS) != 0;

    switch (prio) {
    case MPT_PRIO_BACKUP: return MPT_FF_PRIO_BACKUP;
    case MPT_PRIO_NEVER: return tiers ? MPT_FF_PRIO_BACKUP | MPT_FF_PRIO_NEVER : MPT_FF_PRIO_BACKUP;
    case MPT_PRIO_SECONDARY: return tiers ? MPT_FF_PRIO_SECONDARY : 0;
    default: return 0;
    }
}

int mpt_conn_sf_set_prio(struct mpt_conn *c, int i, int prio, uint64_t now)
{
    struct sf *s;

    if (!valid_sf(c, i) || prio < MPT_PRIO_PRIMARY || prio > MPT_PRIO_NEVER)
        return MPT_EINVAL;
    s = &c->sf[i];
    c->now = now;
    if (!sf_live(s))
        return MPT_ESTATE;
    s->prio = prio;
    if (s->state == MPT_SF_ESTABLISHED)
        mpt_q_simple(s, MPT_FT_PRIO, mpt_prio_flags(c, prio));
    mpt_post(c, now);
    return 0;
}

/* ---- metering ---------------------------------------------------------------- */

#define METER_NS 1000000000ull

static uint64_t meter_burst(const struct mpt_conn *c, const struct sf *s)
{
    uint64_t b = s->rate / 20; /* 50 ms */
    return b > c->s.max_frame_payload ? b : c->s.max_frame_payload;
}

size_t mpt_meter_left(const struct sf *s)
{
    uint64_t left = UINT64_MAX;

    if (s->budget && !s->budget_spent)
        left = s->budget > s->budget_used ? s->budget - s->budget_used : 0;
    if (s->rate && s->tokens < left)
        left = s->tokens;
    return left > SIZE_MAX ? SIZE_MAX : (size_t)left;
}

void mpt_meter_refill(const struct mpt_conn *c, struct sf *s, uint64_t now)
{
    uint64_t dt, add, burst;

    if (!s->rate || now <= s->tokens_t)
        return;
    burst = meter_burst(c, s);
    dt = now - s->tokens_t;
    s->tokens_t = now;
    if (dt >= 10 * METER_NS) { /* long idle: full */
        s->tokens = burst;
        s->tokens_frac = 0;
        return;
    }
    /* rate * dt / 1e9 without overflow for rate < 2^34 B/s, dt < 10 s */
    add = s->rate * (dt / 1000) + (s->rate * (dt % 1000)) / 1000;
    s->tokens_frac += add % 1000000;
    add = add / 1000000 + s->tokens_frac / 1000000;
    s->tokens_frac %= 1000000;
    s->tokens = s->tokens + add > burst ? burst : s->tokens + add;
}

uint64_t mpt_meter_wake_at(const struct mpt_conn *c, const struct sf *s)
{
    uint64_t want;

    if (!s->rate || s->state != MPT_SF_ESTABLISHED)
        return MPT_TIME_NEVER;
    want = meter_burst(c, s) < c->s.max_frame_payload ? meter_burst(c, s)
                                                       : c->s.max_frame_payload;
    if (s->tokens >= want)
        return MPT_TIME_NEVER;
    return s->tokens_t + ((want - s->tokens) * METER_NS + s->rate - 1) / s->rate;
}

int mpt_conn_sf_set_budget(struct mpt_conn *c, int i, uint64_t bytes, uint64_t used,
                           uint64_t now)
{
    struct sf *s;

    if (!valid_sf(c, i))
        return MPT_EINVAL;
    s = &c->sf[i];
    c->now = now;
    if (!sf_live(s))
        return MPT_ESTATE;
    s->budget = bytes;
    s->budget_used = used;
    s->budget_spent = 0;
    mpt_meter_check(c, i);
    mpt_post(c, now);
    return 0;
}

int mpt_conn_sf_set_rate(struct mpt_conn *c, int i, uint64_t bytes_per_s, uint64_t now)
{
    struct sf *s;

    if (!valid_sf(c, i) || bytes_per_s > ((uint64_t)1 << 34))
        return MPT_EINVAL;
    s = &c->sf[i];
    c->now = now;
    if (!sf_live(s))
        return MPT_ESTATE;
    s->rate = bytes_per_s;
    s->tokens_t = now;
    s->tokens_frac = 0;
    s->tokens = bytes_per_s ? meter_burst(c, s) : 0;
    mpt_post(c, now);
    return 0;
}

/* The budget of subflow i reached: BACKUP (unless NEVER), PRIO, the event. */
void mpt_meter_check(struct mpt_conn *c, int i)
{
    struct sf *s = &c->sf[i];

    if (!s->budget || s->budget_spent || s->budget_used < s->budget)
        return;
    s->budget_spent = 1;
    if (s->prio == MPT_PRIO_PRIMARY || s->prio == MPT_PRIO_SECONDARY) {
        s->prio = MPT_PRIO_BACKUP;
        if (s->state == MPT_SF_ESTABLISHED)
            mpt_q_simple(s, MPT_FT_PRIO, mpt_prio_flags(c, MPT_PRIO_BACKUP));
    }
    mpt_ev_push(c, MPT_EV_BUDGET_SPENT, i, 0, 0);
}

int mpt_conn_sf_set_backup(struct mpt_conn *c, int i, int backup, uint64_t now)
{
    return mpt_conn_sf_set_prio(c, i, backup ? MPT_PRIO_BACKUP : MPT_PRIO_PRIMARY, now);
}

/* NEVER wins over BACKUP, BACKUP over SECONDARY: an old peer's BACKUP stays
 * BACKUP, and a combination nobody sends still means "less" rather than more. */
void mpt_addr_on_prio(struct mpt_conn *c, int i, const struct mpt_frame *f)
{
    int p = MPT_PRIO_PRIMARY;

    if (f->flags & MPT_FF_PRIO_NEVER)
        p = MPT_PRIO_NEVER;
    else if (f->flags & MPT_FF_PRIO_BACKUP)
        p = MPT_PRIO_BACKUP;
    else if (f->flags & MPT_FF_PRIO_SECONDARY)
        p = MPT_PRIO_SECONDARY;
    c->sf[i].prio = p;
}

/* 10.3: forget the ids and close the subflows that use them: for a server
 * those whose JOIN named that client address (0: the first subflow's), for
 * a client those it opened to that server address. */
void mpt_addr_on_remove_addr(struct mpt_conn *c, const struct mpt_frame *f, uint64_t now)
{
    for (unsigned k = 0; k < f->u.remove_addr.n; k++) {
        uint8_t id = f->u.remove_addr.ids[k];
        struct mpt_event *ev = mpt_ev_push(c, MPT_EV_ADDR_REMOVED, -1, 0, 0);
        if (ev)
            ev->addr.addr_id = id;
        for (int j = 0; j < c->nslots; j++)
            if (c->sf[j].state == MPT_SF_ESTABLISHED &&
                (c->is_server ? c->sf[j].addr_id : c->sf[j].remote_id) == id)
                mpt_sf_begin_close(c, j, MPT_REASON_PATH_REMOVED, now);
    }
}
