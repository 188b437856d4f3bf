/* The send side: records, reinjection, scheduling, retransmission timer,
 * DATA_ACK processing and mpt_conn_send.
 *
 * SEND SIDE.
 *  - sendbuf (sendbuf.c): a byte ring indexed by DSN holding [base, end) where
 *    base = min(snd_una, DSN of any partly written DATA frame). Application
 *    bytes are copied once into it; DATA payloads are sent zero-copy from it.
 *  - snd_una (highest DATA_ACK), snd_nxt (next new byte), snd_edge (highest
 *    right edge ack+window ever seen; new data never goes beyond it).
 *  - Each subflow keeps a FIFO of "records" (dsn, len, time) for the bytes
 *    handed to it and not yet covered by DATA_ACK: its in-flight bytes, what
 *    gets reinjected if it fails/stalls, and the age used by the stall
 *    detector. A DATA_ACK pops/trims the heads of these FIFOs: O(subflows +
 *    records freed).
 *  - The reinjection queue has priority over new data. Ranges are trimmed
 *    against snd_una and the peer's latest SACK ranges (bytes it already
 *    holds) when used. (Output items: outq.c.)
 *  - Scheduling (mpt_snd_schedule()) runs at the end of every entry point: while a
 *    chunk is available (reinjection first, then new data within the peer's
 *    window) ask sched->pick among usable subflows, clamp to the subflow's
 *    room, the cc cap (cc->cap, and the penalty cap) and max_frame_payload,
 *    and enqueue a DATA item. O(subflows) per frame, no per-byte work.
 *
 * REINJECTION BOUND. The reinjection queue is a sorted set of disjoint
 * ranges (<= what is in flight), and a range goes only to a subflow that does
 * not hold those bytes (sf_holds): each byte is outstanding at most once per
 * subflow, so a peer that never acknowledges gets each byte at most once per
 * subflow before the ack timeout ends the connection.
 *
 * REINJECTION CREDIT. Subflows come and go, so "once per subflow" alone does
 * not bound the output: a peer that holds the keys could open a join, let it
 * take the unacknowledged data and fail, and again (fuzz_engine found 52
 * joins in 4.6 s turning 64 KiB into 2.4 MB). Every byte sent again
 * (reinjection, opportunistic retransmission, the snd_una timer) spends one
 * byte of a connection-level credit; every byte sent for the first time and
 * every byte newly acknowledged earns MPT_REINJ_EARN (2), up to 2 x sndbuf.
 * So what is reinjected never exceeds 4 x what the application wrote, and a
 * peer that acknowledges nothing gets each byte at most twice more. An honest
 * failover (two in a row with nothing acknowledged between) spends at most
 * what first transmissions earned, so it goes at once as before. When the
 * credit is spent, the queued ranges wait (new data still goes) and a grant
 * of one frame's worth comes 2 x stall_min after the queue blocked, doubled
 * per grant until the peer acknowledges everything sent before the last one:
 * the bytes at snd_una keep moving, an honest peer's acks earn the credit
 * back (twice what they ack: exponential, like slow start), and a hostile
 * peer gets a few frames before the ack timeout ends the connection.
 * Counted in reinj_throttled.
 *
 * OPPORTUNISTIC RETRANSMISSION. When new data is blocked by the peer's window
 * (or the send buffer is full and all of it was sent) and the bytes at
 * snd_una were sent on subflow S while a usable subflow F with room has
 * srtt_F < srtt_S / 4 (or S is stalled), those bytes are sent again on F
 * (once per record) and S's in-flight cap is halved (at most once per
 * srtt_S), regrowing by the bytes acked on S.
 */
#include "conn_int.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "cc.h"
#include "sched.h"

/* Lowest DSN a partly written DATA frame still needs from the send buffer
 * (live subflows only: see drop_partial_data). */
static uint64_t snd_pin(const struct mpt_conn *c)
{
    uint64_t t = mpt_dsn_min(c->snd_una, c->sb.end);

    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        const struct oitem *it;
        if (!s->q.n || !sf_live(s))
            continue;
        it = mpt_ring_at(&s->q, 0);
        if (it->kind == IT_DATA && it->off > 0 && it->len > 0)
            t = mpt_dsn_min(t, it->dsn);
    }
    return t;
}

void mpt_snd_release(struct mpt_conn *c)
{
    mpt_sendbuf_release(&c->sb, snd_pin(c));
    if (c->want_writable && mpt_sendbuf_space(&c->sb) == 0)
        mpt_sbuf_want(c); /* the peer's window may have grown (autotune.c) */
    if (c->want_writable && mpt_sendbuf_space(&c->sb) > 0 && conn_open(c) && !c->fin_pending) {
        c->want_writable = 0;
        mpt_ev_push(c, MPT_EV_WRITABLE, -1, 0, 0);
    }
}

/* Does subflow s hold DSN a in flight (handed to it, not yet acked)? If so
 * *end is the end of the record holding it; *next is the first DSN after a
 * that starts another record (a + 2^62 if none). O(records). */
static int sf_holds(const struct sf *s, uint64_t a, uint64_t *end, uint64_t *next)
{
    uint64_t nx = a + ((uint64_t)1 << 62);
    int held = 0;

    *end = a;
    for (uint32_t i = 0; i < s->recs.n; i++) {
        const struct rec *r = mpt_ring_at(&s->recs, i);
        uint64_t re = r->dsn + r->len;
        if (mpt_dsn_le(r->dsn, a) && mpt_dsn_lt(a, re)) {
            held = 1;
            *end = mpt_dsn_max(*end, re);
        } else if (mpt_dsn_gt(r->dsn, a) && mpt_dsn_lt(r->dsn, nx)) {
            nx = r->dsn;
        }
    }
    *next = nx;
    return held;
}

/*
 * The reinjection queue is a set of disjoint, non-adjacent DSN ranges in
 * ascending order, all within [snd_una, snd_nxt): adding a range merges it,
 * so the bytes queued for resending never exceed what is in flight (<=
 * sndbuf) however often a range is queued again. O(ranges).
 */
void mpt_snd_reinj_add(struct mpt_conn *c, uint64_t s, uint64_t e)
{
    uint32_t i = 0, j;
    struct rng *r;

    s = mpt_dsn_max(s, c->snd_una);
    e = mpt_dsn_min(e, c->snd_nxt);
    if (!mpt_dsn_lt(s, e))
        return;
    /* first range that ends at or after s */
    while (i < c->reinj.n && mpt_dsn_lt(((struct rng *)mpt_ring_at(&c->reinj, i))->e, s))
        i++;
    /* ranges [i, j) touch [s, e]: merge them into one */
    for (j = i; j < c->reinj.n; j++) {
        r = mpt_ring_at(&c->reinj, j);
        if (mpt_dsn_gt(r->s, e))
            break;
        s = mpt_dsn_min(s, r->s);
        e = mpt_dsn_max(e, r->e);
    }
    if (j > i) {
        r = mpt_ring_at(&c->reinj, i);
        r->s = s;
        r->e = e;
        /* close the gap left by ranges i+1 .. j-1 */
        for (uint32_t k = i + 1, m = j; m < c->reinj.n; k++, m++)
            memcpy(mpt_ring_at(&c->reinj, k), mpt_ring_at(&c->reinj, m), sizeof *r);
        c->reinj.n -= j - i - 1;
        return;
    }
    if (!mpt_ring_push_back(&c->reinj))
        return; /* out of memory: the data stays on the paths that hold it */
    for (uint32_t k = c->reinj.n - 1; k > i; k--)
        memcpy(mpt_ring_at(&c->reinj, k), mpt_ring_at(&c->reinj, k - 1), sizeof *r);
    r = mpt_ring_at(&c->reinj, i);
    r->s = s;
    r->e = e;
}

#define MPT_REINJ_EARN 2 /* credit per byte first sent or newly acknowledged */

static void reinj_earn(struct mpt_conn *c, uint64_t n)
{
    uint64_t cap = 2 * (uint64_t)c->s.sndbuf;

    if (n > cap / MPT_REINJ_EARN)
        c->reinj_credit = cap;
    else
        c->reinj_credit = u64min(cap, c->reinj_credit + MPT_REINJ_EARN * n);
    if (c->reinj_credit)
        c->reinj_blocked_at = 0;
}

static void reinj_spend(struct mpt_conn *c, uint64_t n)
{
    c->reinj_credit -= n < c->reinj_credit ? n : c->reinj_credit;
}

uint64_t mpt_snd_reinj_grant_at(const struct mpt_conn *c)
{
    if (!conn_open(c) || !c->reinj.n || c->reinj_credit || !c->reinj_blocked_at)
        return MPT_TIME_NEVER;
    return c->reinj_blocked_at +
           ((2 * c->s.stall_min) << (c->reinj_grants < 6 ? c->reinj_grants : 6));
}

void mpt_snd_reinj_grant_check(struct mpt_conn *c, uint64_t now)
{
    if (now < mpt_snd_reinj_grant_at(c))
        return;
    c->reinj_credit = c->s.max_frame_payload;
    c->reinj_blocked_at = 0;
    c->reinj_grants++;
    c->reinj_grant_dsn = c->snd_nxt;
}

/* Queue every unacknowledged byte handed to subflow s for sending elsewhere. */
void mpt_snd_reinject_sf(struct mpt_conn *c, struct sf *s, int drop_records)
{
    int any = 0;

    for (uint32_t i = 0; i < s->recs.n; i++) {
        struct rec *r = mpt_ring_at(&s->recs, i);
        uint64_t st = mpt_dsn_max(r->dsn, c->snd_una), en = r->dsn + r->len;
        if (mpt_dsn_lt(st, en)) {
            mpt_snd_reinj_add(c, st, en);
            r->flags |= REC_AMBIG;
            any = 1;
        }
    }
    if (any)
        c->st.reinjections++;
    if (drop_records) {
        s->recs.n = 0;
        s->recs.head = 0;
        s->inflight = 0;
    }
    if (c->fin_sf >= 0 && &c->sf[c->fin_sf] == s && !c->fin_acked)
        c->fin_sf = -1;
}



static int enqueue_data(struct mpt_conn *c, int i, uint64_t dsn, size_t len, int reinj,
                        uint32_t rflags, uint64_t now)
{
    struct sf *s = &c->sf[i];
    struct oitem *it;
    struct rec *r;

    it = mpt_ring_push_back(&s->q);
    if (!it)
        return MPT_ENOMEM;
    r = mpt_ring_push_back(&s->recs);
    if (!r) {
        mpt_ring_pop_back(&s->q);
        return MPT_ENOMEM;
    }
    it->kind = IT_DATA;
    it->off = 0;
    it->len = (uint32_t)len;
    it->dsn = dsn;
    it->hlen = MPT_DATA_HDR_LEN;
    if (!reinj && !mpt_dsn_lt(c->snd_una, c->snd_nxt) && !(c->fin_sent && !c->fin_acked))
        c->una_moved_at = now; /* the ack timeout counts from the first byte outstanding */
    r->dsn = dsn;
    r->len = (uint32_t)len;
    r->flags = rflags | (reinj ? REC_COPY : 0);
    r->t = now;
    s->inflight += len;
    s->q_bytes += MPT_DATA_HDR_LEN + len;
    s->room -= zmin(s->room, MPT_DATA_HDR_LEN + len);
    s->bytes_sent += len;
    c->st.bytes_sent += len;
    if (reinj)
        c->st.bytes_reinjected += len;
    s->budget_used += len;
    if (s->rate)
        s->tokens -= s->tokens < len ? s->tokens : len;
    if (s->budget)
        mpt_meter_check(c, i);
    return 0;
}

static void maybe_send_fin(struct mpt_conn *c, uint64_t now)
{
    int i;

    if (!c->fin_pending || c->fin_acked || c->fin_sf >= 0 || c->snd_nxt != c->sb.end)
        return;
    i = mpt_best_ctrl_sf(c);
    if (i < 0)
        return;
    if (mpt_q_u64(&c->sf[i], MPT_FT_DATA_FIN, c->fin_dsn) == 0) {
        if (!c->fin_sent && !mpt_dsn_lt(c->snd_una, c->snd_nxt))
            c->una_moved_at = now; /* the DATA_FIN alone is outstanding */
        c->fin_sent = 1;
        c->fin_sf = i;
    }
}

static void opportunistic(struct mpt_conn *c, uint64_t now, const struct mpt_cc_env *e,
                          const int *map);

/*
 * Retransmission timer for the bytes at snd_una. A path can keep delivering
 * (so it never looks stalled) while the receiver dropped one segment (its
 * out-of-order range table was full): the cumulative ack then stops at a
 * hole nobody resends. When snd_una has not moved, and the newest copy of
 * the bytes at snd_una was sent, longer than max(2 * stall_min, 4 * srtt +
 * 4 * rttvar) of its path (doubled per retry while snd_una does not move),
 * they are queued for reinjection. Deep socket queues do not trigger it: the
 * cumulative ack keeps moving there. O(subflows).
 */
uint64_t mpt_snd_una_rtx_at(const struct mpt_conn *c, uint64_t *end)
{
    uint64_t t = 0, rto = 0, e = 0;
    int found = 0;

    if (!conn_open(c) || !mpt_dsn_lt(c->snd_una, c->snd_nxt) || c->reinj.n)
        return MPT_TIME_NEVER;
    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        const struct rec *r;
        uint64_t x;
        if (s->state != MPT_SF_ESTABLISHED || !s->recs.n)
            continue;
        r = mpt_ring_at(&s->recs, 0);
        if (!(mpt_dsn_le(r->dsn, c->snd_una) && mpt_dsn_lt(c->snd_una, r->dsn + r->len)))
            continue;
        x = u64max(2 * c->s.stall_min, 4 * mpt_sf_e2e_rtt(s) + 4 * sf_rttvar(s));
        if (!found || r->t > t) {
            t = r->t;
            e = r->dsn + r->len;
        }
        rto = u64max(rto, x);
        found = 1;
    }
    if (!found)
        return MPT_TIME_NEVER;
    t = u64max(t, c->una_moved_at);
    if (c->una_rtx_dsn == c->snd_una && c->una_backoff) {
        t = u64max(t, c->una_rtx_t);
        rto <<= (c->una_backoff < 6 ? c->una_backoff : 6);
    }
    if (end)
        *end = e;
    return t + rto;
}

void mpt_snd_una_rtx_check(struct mpt_conn *c, uint64_t now)
{
    uint64_t end = 0, at = mpt_snd_una_rtx_at(c, &end);

    if (at == MPT_TIME_NEVER || now < at)
        return;
    if (c->una_rtx_dsn != c->snd_una) {
        c->una_rtx_dsn = c->snd_una;
        c->una_backoff = 0;
    }
    c->una_backoff++;
    c->una_rtx_t = now;
    mpt_snd_reinj_add(c, c->snd_una, end);
    c->st.reinjections++;
}

/*
 * MPT_SCHED_REDUNDANT: each usable subflow also carries, as its room allows,
 * every byte sent that it does not hold and the peer has not acknowledged,
 * in DSN order from its cursor (which only moves forward, so bytes it holds
 * are skipped once). Copies are REC_COPY records counted in bytes_redundant.
 */
static void redundant_copies(struct mpt_conn *c, uint64_t now, const struct mpt_cc_env *e,
                             const int *map)
{
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        uint64_t pos, hend, hnext;
        if (!sf_usable(s))
            continue;
        pos = s->red_next; /* outside [snd_una, snd_nxt] (new subflow, acked): restart */
        if ((uint64_t)(pos - c->snd_una) > (uint64_t)(c->snd_nxt - c->snd_una))
            pos = c->snd_una;
        while (mpt_dsn_lt(pos, c->snd_nxt) && s->room > MPT_DATA_HDR_LEN) {
            size_t len;
            if (sf_holds(s, pos, &hend, &hnext)) {
                pos = hend;
                continue;
            }
            len = zmin((size_t)(mpt_dsn_min(hnext, c->snd_nxt) - pos), c->s.max_frame_payload);
            len = zmin(len, s->room - MPT_DATA_HDR_LEN);
            len = zmin(len, mpt_cc_room(c, i, e, map));
            len = zmin(len, mpt_meter_left(s));
            if (len == 0 || enqueue_data(c, i, pos, len, 1, 0, now))
                break;
            c->st.bytes_redundant += len;
            c->st.bytes_reinjected -= len; /* counted as redundancy, not reinjection */
            pos += len;
        }
        s->red_next = pos;
    }
}

/* Which usable subflows may carry data now (9.6): the primaries, and the
 * secondaries too while no primary has room (saturated); the secondaries if
 * no primary is usable; the backups only if neither is. Keeps ss's order. */
static int tier_filter(struct mpt_path_view *ss, int n)
{
    int have[4] = {0}, room[4] = {0}, allow[4] = {0}, k = 0;

    for (int j = 0; j < n; j++) {
        have[ss[j].prio]++;
        room[ss[j].prio] |= mpt_path_has_room(&ss[j]);
    }
    if (have[MPT_PRIO_PRIMARY]) {
        allow[MPT_PRIO_PRIMARY] = 1;
        allow[MPT_PRIO_SECONDARY] = !room[MPT_PRIO_PRIMARY];
    } else if (have[MPT_PRIO_SECONDARY]) {
        allow[MPT_PRIO_SECONDARY] = 1;
    } else {
        allow[MPT_PRIO_BACKUP] = 1;
    }
    for (int j = 0; j < n; j++)
        if (allow[ss[j].prio])
            ss[k++] = ss[j];
    return k;
}

/* The bytes waiting for their first transmission, and the window left. */
static void backlog_window(const struct mpt_conn *c, size_t *backlog, size_t *window)
{
    *backlog = mpt_dsn_lt(c->snd_nxt, c->sb.end) ? (size_t)(c->sb.end - c->snd_nxt) : 0;
    *window = mpt_dsn_lt(c->snd_nxt, c->snd_edge) ? (size_t)(c->snd_edge - c->snd_nxt) : 0;
}

/*
 * SERVICE MODES AND PER-MESSAGE POLICY (doc/policy.md).
 *
 * Handover: the subflow carrying data is the usable one of the best tier
 * present (primary, else secondary, else backup) with the lowest address id
 * (client: its local address; server: the JOIN's), the oldest on a tie; the others carry control frames and PINGs only, so a dead idle
 * path is still found (subflow_timeout after a PING). A stalled or failed
 * active subflow is no longer usable: the next one takes over at once (its
 * bytes are reinjected there); when the earlier one clears its stall (a
 * byte arrived on it) or re-joins, data returns to it.
 */
static int tier_rank(int prio)
{
    return prio == MPT_PRIO_PRIMARY ? 0 : prio == MPT_PRIO_SECONDARY ? 1 : 2;
}

static void handover_update(struct mpt_conn *c)
{
    int best = -1;

    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        if (!sf_usable(s) || s->prio == MPT_PRIO_NEVER)
            continue;
        if (best < 0 || tier_rank(s->prio) < tier_rank(c->sf[best].prio) ||
            (tier_rank(s->prio) == tier_rank(c->sf[best].prio) &&
             s->addr_id < c->sf[best].addr_id))
            best = i;
    }
    if (best >= 0 && best != c->ho_active) {
        if (c->ho_active >= 0)
            c->ho_switches++;
        c->ho_active = best;
    }
}

/* The policy of the bytes at dsn, NULL if none; drops the policies of bytes
 * already sent. *len is clipped so that a chunk has one policy. */
static const struct msgpol *msg_policy_at(struct mpt_conn *c, uint64_t dsn, size_t *len)
{
    while (c->msgs.n) {
        const struct msgpol *m = mpt_ring_at(&c->msgs, 0);
        if (mpt_dsn_gt(m->e, dsn))
            break;
        mpt_ring_pop_front(&c->msgs);
    }
    if (!c->msgs.n)
        return NULL;
    {
        const struct msgpol *m = mpt_ring_at(&c->msgs, 0);
        if (mpt_dsn_lt(dsn, m->s)) {
            *len = zmin(*len, (size_t)(m->s - dsn));
            return NULL;
        }
        *len = zmin(*len, (size_t)(m->e - dsn));
        return m;
    }
}

/* Estimated arrival of len more bytes sent on p now: half the end-to-end RTT
 * plus what is queued ahead of them at the path's rate (the delivery rate,
 * else cwnd per RTT), as ECF and BLEST estimate. */
static uint64_t est_arrival(const struct mpt_path_view *p, size_t len, uint64_t now)
{
    uint64_t rtt = p->e2e_rtt ? p->e2e_rtt : (p->srtt ? p->srtt : 100 * MPT_NS_PER_MS);
    uint64_t rate = p->delivery_rate;
    uint64_t q = (uint64_t)p->tcp_inflight + len;

    if (!rate) {
        uint64_t cw = p->cwnd_bytes ? p->cwnd_bytes : 10u * (p->mss ? p->mss : 1448u);
        rate = cw * 1000000000ull / rtt;
    }
    if (!rate)
        rate = 1;
    return now + rtt / 2 + q * 1000000000ull / rate;
}

#define MSGPOL_MAX 4096u /* per-message policy ranges kept at most */

/* A subflow whose kernel retransmitted at least 0.1% of what it was given. */
static int sf_lossy(const struct sf *s)
{
    uint64_t mss = s->info.mss ? s->info.mss : 1448;

    return s->info.total_retrans && (uint64_t)s->info.total_retrans * mss * 1000 >= s->bytes_sent;
}

/* Adds a second subflow to pick pk for a chunk under policy m: for
 * "redundant", the lowest-RTT other subflow with room; for a deadline, the
 * other subflow with room and the earliest estimated arrival, when the
 * chosen one would miss the deadline or is lossy. */
static void msg_policy_apply(const struct mpt_conn *c, const struct msgpol *m,
                             const struct mpt_path_view *ss, int n, size_t len, uint64_t now,
                             struct mpt_sched_pick *pk)
{
    const struct mpt_path_view *first = NULL;
    int want = m->redundant, best = -1;
    uint64_t best_t = 0;

    if (pk->n != 1)
        return;
    for (int q = 0; q < n; q++)
        if (ss[q].index == pk->sf[0])
            first = &ss[q];
    if (!first)
        return;
    if (!want && m->deadline) {
        uint64_t t = est_arrival(first, len, now);
        /* lossy: one retransmission (one more RTT) must still be in time */
        if (sf_lossy(&c->sf[first->index]))
            t += first->e2e_rtt;
        want = t > m->deadline;
    }
    if (!want)
        return;
    for (int q = 0; q < n; q++) {
        uint64_t t;
        if (&ss[q] == first || !mpt_path_has_room(&ss[q]))
            continue;
        t = m->deadline ? est_arrival(&ss[q], len, now) : ss[q].e2e_rtt;
        if (m->deadline && !m->redundant && t > m->deadline)
            continue; /* a copy that would be late helps nobody */
        if (best < 0 || t < best_t) {
            best = q;
            best_t = t;
        }
    }
    if (best >= 0) {
        pk->sf[1] = ss[best].index;
        pk->n = 2;
    }
}

void mpt_snd_schedule(struct mpt_conn *c, uint64_t now)
{
    struct mpt_path_view ss[MPT_MAX_SUBFLOWS_LIMIT], ccv[MPT_MAX_SUBFLOWS_LIMIT];
    void *ccst[MPT_MAX_SUBFLOWS_LIMIT];
    int map[MPT_MAX_SUBFLOWS_LIMIT];
    struct mpt_cc_env env;

    if (!conn_open(c))
        return;
    for (int i = 0; i < c->nslots; i++)
        mpt_meter_refill(c, &c->sf[i], now);
    mpt_cc_env_fill(c, &env, ccv, ccst, map);
    if (c->mode == MPT_SM_HANDOVER)
        handover_update(c);
    /* redundancy first: a subflow that lags carries copies before new data */
    if (c->sched->flags & MPT_SCHED_REDUNDANT)
        redundant_copies(c, now, &env, map);
    for (;;) {
        uint64_t dsn;
        size_t avail, len;
        int reinj = 0, n = 0;
        struct rng *r = NULL;
        const struct msgpol *mp = NULL;
        struct mpt_sched_view v;
        struct mpt_sched_pick pk;

        while (c->reinj.n) {
            r = mpt_ring_at(&c->reinj, 0);
            if (mpt_dsn_lt(r->s, c->snd_una))
                r->s = mpt_dsn_min(c->snd_una, r->e);
            /* skip what the peer already holds (its SACK ranges never shrink
             * except into the cumulative ack) */
            for (int q = 0; q < c->nsack; q++)
                if (mpt_dsn_le(c->sack[q].start, r->s) && mpt_dsn_lt(r->s, c->sack[q].end))
                    r->s = mpt_dsn_min(c->sack[q].end, r->e);
            if (r->s != r->e)
                break;
            mpt_ring_pop_front(&c->reinj);
            r = NULL;
        }
        if (!r) {
            c->reinj_blocked_at = 0;
        } else if (!c->reinj_credit) {
            /* the queue waits for credit or a grant; new data still goes */
            if (!c->reinj_blocked_at) {
                c->reinj_blocked_at = now ? now : 1;
                c->st.reinj_throttled++;
            }
            r = NULL;
        }
        if (r) {
            dsn = r->s;
            avail = (size_t)u64min(r->e - r->s, c->reinj_credit);
            reinj = 1;
        } else {
            uint64_t lim = mpt_dsn_min(c->sb.end, c->snd_edge);
            if (!mpt_dsn_lt(c->snd_nxt, lim))
                break;
            dsn = c->snd_nxt;
            avail = (size_t)(lim - c->snd_nxt);
        }
        len = zmin(avail, c->s.max_frame_payload);
        if (!reinj && c->msgs.n)
            mp = msg_policy_at(c, dsn, &len);

        /* A subflow never carries the same byte twice at once: TCP delivers
         * what it holds, or the subflow fails and its bytes are queued
         * again. Reinjected bytes go only to subflows that do not hold them;
         * bytes every usable subflow holds leave the queue. */
        uint64_t skip_to = 0, clip[MPT_MAX_SUBFLOWS_LIMIT];
        int usable = 0, held = 0;
        for (int i = 0; i < c->nslots; i++) {
            struct sf *s = &c->sf[i];
            uint64_t hend, hnext;
            if (!sf_usable(s) || s->prio == MPT_PRIO_NEVER)
                continue; /* NEVER: control frames only */
            usable++;
            clip[i] = dsn + len;
            if (reinj) {
                if (sf_holds(s, dsn, &hend, &hnext)) {
                    skip_to = !held++ || mpt_dsn_lt(hend, skip_to) ? hend : skip_to;
                    continue;
                }
                clip[i] = mpt_dsn_min(clip[i], hnext);
            }
            mpt_algo_view(c, i, &ss[n]);
            ss[n].cc_room = mpt_cc_room(c, i, &env, map);
            n++;
        }
        if (n == 0) {
            if (reinj && usable > 0) {
                r->s = mpt_dsn_min(r->e, skip_to); /* held everywhere usable */
                continue;
            }
            break;
        }
        n = tier_filter(ss, n);
        if (c->mode == MPT_SM_HANDOVER) {
            int k = -1;
            for (int q = 0; q < n; q++)
                if (ss[q].index == c->ho_active)
                    k = q;
            if (k >= 0) {
                ss[0] = ss[k];
                n = 1;
            } else if (!reinj || n == 0) {
                break; /* a reinjection the active subflow holds may go elsewhere */
            }
        }
        memset(&v, 0, sizeof v);
        v.now = now;
        v.sf = ss;
        v.n = n;
        v.chunk = len;
        v.reinjection = reinj;
        backlog_window(c, &v.backlog, &v.window);
        memset(&pk, 0, sizeof pk);
        if (c->mode == MPT_SM_INTERACTIVE) {
            if (mpt_sched_minrtt.pick(NULL, &v, &pk) != 0 || pk.n <= 0)
                break;
        } else if (c->sched->pick(c->sched_state, &v, &pk) != 0 || pk.n <= 0) {
            break;
        }
        if (mp)
            msg_policy_apply(c, mp, ss, n, len, now, &pk);
        /* the same bytes on every chosen subflow: clamp to each one's limits */
        if (pk.len && pk.len < len)
            len = pk.len;
        {
            int ok = 0;
            for (int j = 0; j < pk.n && j < MPT_MAX_SUBFLOWS_LIMIT; j++) {
                const struct mpt_path_view *pv = NULL;
                for (int q = 0; q < n; q++)
                    if (ss[q].index == pk.sf[j])
                        pv = &ss[q];
                if (!pv || !mpt_path_has_room(pv))
                    continue; /* not offered, or full: that copy is skipped */
                len = zmin(len, zmin(pv->room, pv->cc_room));
                len = zmin(len, (size_t)(clip[pv->index] - dsn));
                pk.sf[ok++] = pv->index;
            }
            pk.n = ok;
        }
        if (pk.n == 0 || len == 0)
            break;
        for (int j = 0; j < pk.n; j++) {
            /* later copies of a new chunk are redundancy, not reinjection */
            if (enqueue_data(c, pk.sf[j], dsn, len, reinj || j > 0, 0, now))
                break;
            if (j > 0)
                c->st.bytes_redundant += len;
            if (map[pk.sf[j]] >= 0)
                ccv[map[pk.sf[j]]].tcp_inflight += MPT_DATA_HDR_LEN + len;
        }
        if (reinj) {
            r->s += len;
            reinj_spend(c, (uint64_t)len * (uint64_t)pk.n);
        } else {
            c->snd_nxt += len;
            reinj_earn(c, len);
        }
    }
    if (c->sched->flags & MPT_SCHED_REDUNDANT)
        redundant_copies(c, now, &env, map);
    if ((c->sched->flags & MPT_SCHED_OPPORTUNISTIC) && c->mode != MPT_SM_HANDOVER)
        opportunistic(c, now, &env, map);
    maybe_send_fin(c, now);
}

/* Opportunistic retransmission of the segment blocking the window. */
static void opportunistic(struct mpt_conn *c, uint64_t now, const struct mpt_cc_env *e,
                          const int *map)
{
    int blocked, S = -1, F = -1;
    struct rec *hold = NULL;
    uint64_t sr, end, dsn;

    if (c->reinj.n || !mpt_dsn_lt(c->snd_una, c->snd_nxt) || !c->reinj_credit)
        return;
    blocked = (c->snd_nxt == c->snd_edge && mpt_dsn_lt(c->snd_nxt, c->sb.end)) ||
              (mpt_sendbuf_space(&c->sb) == 0 && c->snd_nxt == c->sb.end);
    if (!blocked)
        return;
    for (int i = 0; i < c->nslots && !hold; i++) {
        struct sf *s = &c->sf[i];
        struct rec *r;
        if (s->state != MPT_SF_ESTABLISHED || !s->recs.n)
            continue;
        r = mpt_ring_at(&s->recs, 0);
        if (mpt_dsn_le(r->dsn, c->snd_una) && mpt_dsn_lt(c->snd_una, r->dsn + r->len)) {
            if (r->flags & REC_OPP)
                return; /* done already */
            hold = r;
            S = i;
        }
    }
    if (!hold)
        return;
    sr = mpt_sf_e2e_rtt(&c->sf[S]);
    end = hold->dsn + hold->len;
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        uint64_t fr = mpt_sf_e2e_rtt(s), hend, hnext;
        if (i == S || !sf_usable(s) || s->room <= MPT_DATA_HDR_LEN)
            continue;
        if (!c->sf[S].stalled && !(fr && sr && fr * 4 < sr))
            continue;
        if (mpt_cc_room(c, i, e, map) == 0 || mpt_meter_left(s) == 0)
            continue;
        if (sf_holds(s, c->snd_una, &hend, &hnext))
            continue; /* a copy is already on its way there */
        if (F < 0 || fr < mpt_sf_e2e_rtt(&c->sf[F])) {
            F = i;
            end = mpt_dsn_min(hold->dsn + hold->len, hnext);
        }
    }
    if (F < 0)
        return;
    hold->flags |= REC_OPP | REC_AMBIG;
    dsn = c->snd_una;
    c->st.reinjections++;
    while (mpt_dsn_lt(dsn, end) && c->sf[F].room > MPT_DATA_HDR_LEN) {
        size_t len = zmin((size_t)(end - dsn),
                          zmin(c->s.max_frame_payload, c->sf[F].room - MPT_DATA_HDR_LEN));
        len = zmin(len, mpt_meter_left(&c->sf[F]));
        len = (size_t)u64min(len, c->reinj_credit);
        if (len == 0)
            break;
        if (enqueue_data(c, F, dsn, len, 1, REC_OPP, now))
            break;
        reinj_spend(c, len);
        dsn += len;
    }
    if (mpt_dsn_lt(dsn, end))
        mpt_snd_reinj_add(c, dsn, end);
    /* penalise the slow subflow: halve its in-flight cap once per its RTT */
    {
        struct sf *s = &c->sf[S];
        if (!s->last_pen || now - s->last_pen >= sr) {
            size_t half = s->inflight / 2;
            size_t floor = 2 * (size_t)c->s.max_frame_payload;
            s->pen_cap = half > floor ? half : floor;
            s->pen_base = s->pen_cap;
            s->last_pen = now ? now : 1;
            c->st.penalisations++;
        }
    }
}

/* Returns 0, or MPT_EPROTO for an Ack of data never sent (9.3). Ack is
 * placed by its distance from snd_una (9.1): ahead if less than 2^63, else
 * behind (stale, however far). */
int mpt_snd_on_data_ack(struct mpt_conn *c, int from, uint64_t ack, uint32_t window,
                       const struct mpt_sack_range *sack, int nsack, uint64_t now)
{
    uint64_t maxack = c->fin_sent ? c->fin_dsn + 1 : c->snd_nxt;
    uint64_t ahead = ack - c->snd_una, edge;

    (void)from;
    if (ahead < ((uint64_t)1 << 63) && ahead > maxack - c->snd_una)
        return MPT_EPROTO;
    if (ahead < ((uint64_t)1 << 63)) {
        /* the newest view of what the peer holds out of order */
        c->nsack = 0;
        for (int k = 0; k < nsack; k++)
            if (mpt_dsn_le(sack[k].end, c->snd_nxt))
                c->sack[c->nsack++] = sack[k];
    }
    if (mpt_dsn_gt(ack, c->snd_una)) {
        uint64_t data_end = mpt_dsn_min(ack, c->sb.end);
        if (mpt_dsn_gt(data_end, c->snd_una)) {
            c->st.bytes_acked += data_end - c->snd_una;
            reinj_earn(c, data_end - c->snd_una);
        }
        if (c->reinj_grants && mpt_dsn_ge(ack, c->reinj_grant_dsn))
            c->reinj_grants = 0; /* everything sent before the last grant arrived */
        c->snd_una = ack;
        c->una_moved_at = now;
        if (mpt_dsn_lt(c->snd_nxt, mpt_dsn_min(ack, c->sb.end)))
            c->snd_nxt = mpt_dsn_min(ack, c->sb.end);
        for (int i = 0; i < c->nslots; i++) {
            struct sf *s = &c->sf[i];
            size_t acked = 0;
            while (s->recs.n) {
                struct rec *r = mpt_ring_at(&s->recs, 0);
                uint64_t e = r->dsn + r->len;
                if (mpt_dsn_le(e, ack)) {
                    acked += r->len;
                    if (!(r->flags & (REC_COPY | REC_AMBIG)) && now > r->t) {
                        mpt_e2e_sample(s, now - r->t, now);
                        mpt_cc_on_rtt(c, i, now - r->t, now);
                    }
                    mpt_ring_pop_front(&s->recs);
                } else {
                    if (mpt_dsn_lt(r->dsn, ack)) {
                        uint32_t cut = (uint32_t)(ack - r->dsn);
                        acked += cut;
                        r->dsn = ack;
                        r->len -= cut;
                    }
                    break;
                }
            }
            if (!acked)
                continue;
            s->inflight -= zmin(s->inflight, acked);
            s->bytes_acked += acked;
            if (!s->stalled) {
                s->last_progress = now; /* a stalled path's bytes were acked via copies */
                s->stalls = 0;
            }
            if (s->pen_cap != SIZE_MAX) {
                s->pen_cap += acked;
                if (s->pen_cap >= 2 * s->pen_base)
                    s->pen_cap = SIZE_MAX;
            }
            if (s->state == MPT_SF_ESTABLISHED)
                mpt_cc_on_ack(c, i, acked, now);
        }
        if (c->fin_pending && mpt_dsn_ge(ack, c->fin_dsn + 1))
            c->fin_acked = 1;
        mpt_snd_release(c);
    }
    edge = ack + window;
    if (mpt_dsn_gt(edge, c->snd_edge))
        c->snd_edge = edge;
    return 0;
}

ssize_t mpt_conn_send(struct mpt_conn *c, const void *buf, size_t len, uint64_t now)
{
    return mpt_conn_send_msg(c, buf, len, NULL, now);
}

int mpt_conn_set_mode(struct mpt_conn *c, int mode, uint64_t now)
{
    if (!c || mode < MPT_SM_AGGREGATE || mode > MPT_SM_INTERACTIVE)
        return MPT_EINVAL;
    c->now = now;
    c->mode = mode;
    if (mode != MPT_SM_HANDOVER)
        c->ho_active = -1;
    mpt_post(c, now);
    return 0;
}

int mpt_conn_mode(const struct mpt_conn *c)
{
    return c ? c->mode : MPT_EINVAL;
}

int mpt_conn_active_sf(const struct mpt_conn *c)
{
    return c && c->mode == MPT_SM_HANDOVER ? c->ho_active : -1;
}

uint64_t mpt_conn_handovers(const struct mpt_conn *c)
{
    return c ? c->ho_switches : 0;
}

ssize_t mpt_conn_send_msg(struct mpt_conn *c, const void *buf, size_t len,
                          const struct mpt_msg_policy *pol, uint64_t now)
{
    long n;
    uint64_t start;
    int redundant = 0;
    uint64_t deadline = 0;

    if (!c || (!buf && len))
        return MPT_EINVAL;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED)
        return c->error;
    if (c->state == MPT_CONN_HANDSHAKE)
        return MPT_ESTATE;
    if (c->fin_pending || c->state == MPT_CONN_CLOSED)
        return MPT_EPIPE;
    if (len == 0)
        return 0;
    start = c->sb.end;
    c->buf_active_at = now;
    if (len > mpt_sendbuf_space(&c->sb))
        mpt_sbuf_want(c);
    n = mpt_sendbuf_write(&c->sb, buf, len);
    if (n < 0)
        return (ssize_t)n;
    if (pol) {
        redundant = len < pol->redundant_below;
        if (pol->deadline_ms)
            deadline = now + (uint64_t)pol->deadline_ms * MPT_NS_PER_MS;
    }
    if (c->mode == MPT_SM_INTERACTIVE && len <= MPT_INTERACTIVE_SMALL)
        redundant = 1;
    if (n > 0 && (redundant || deadline)) {
        struct msgpol *m;
        while (c->msgs.n && !mpt_dsn_lt(c->snd_nxt, ((struct msgpol *)mpt_ring_at(&c->msgs, 0))->e))
            mpt_ring_pop_front(&c->msgs); /* sent already */
        m = c->msgs.n ? mpt_ring_at(&c->msgs, c->msgs.n - 1) : NULL;
        /* An adjacent range with the same policy grows; past MSGPOL_MAX
         * ranges every new one merges into the last (the bytes in between
         * and after get its policy too, the earlier deadline wins), so tiny
         * writes cannot make this list outgrow the send buffer. */
        if (m && (c->msgs.n >= MSGPOL_MAX ||
                  (m->e == start && m->redundant == redundant && m->deadline == deadline))) {
            m->e = start + (uint64_t)n;
            m->redundant |= redundant;
            if (deadline && (!m->deadline || deadline < m->deadline))
                m->deadline = deadline;
        } else if ((m = mpt_ring_push_back(&c->msgs)) != NULL) {
            /* out of memory: the bytes go without their policy */
            m->s = start;
            m->e = start + (uint64_t)n;
            m->deadline = deadline ? deadline : 0;
            m->redundant = redundant;
        }
    }
    if ((size_t)n < len)
        c->want_writable = 1; /* full now (short write): say when space returns */
    if (n == 0)
        return MPT_EAGAIN;
    c->st.snd_mem = mpt_sendbuf_used(&c->sb);
    mpt_post(c, now);
    return (ssize_t)n;
}
