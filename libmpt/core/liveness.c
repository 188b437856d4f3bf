/* Timers and liveness: end-to-end RTT, stalls, subflow failure, PING/PONG,
 * the ack timeout, mpt_conn_next_timeout and mpt_conn_handle_timeout.
 *
 * LIVENESS. A subflow with in-flight records and no progress (no bytes
 * received on it, no DATA_ACK advancing over its records) for
 * max(stall_min, 3*rtt + 4*rttvar), doubled per stall in a row, since its
 * oldest record was sent is STALLED: the scheduler skips it, its records are
 * queued for reinjection and a PING is sent; any byte received on it clears
 * the stall. rtt is end to end (sf_e2e_rtt: the kernel's srtt, or the least
 * recent handshake / PONG / DATA_ACK sample if larger, as behind a splitting
 * proxy); without an end-to-end sample a subflow never stalls. Nothing
 * received for subflow_timeout while data or a PING is outstanding: FAILED
 * with MPT_ETIMEDOUT. PING every ping_interval on each established subflow
 * (opaque = send time); the server skips its own while the client's PINGs
 * arrive (mpt_live_on_ping), halving what idle connections cost. No live or connecting subflow for subflow_timeout:
 * abort with MPT_ENOPATH. Data outstanding and the cumulative ack still for
 * ack_timeout while a subflow is established: abort with MPT_ETIMEDOUT.
 * A connection-level retransmission timer covers the bytes at snd_una
 * (una_rtx_at): if the cumulative ack has not moved for max(2*stall_min,
 * 4*rtt+4*rttvar) since their newest copy was sent, they are queued again,
 * with exponential backoff.
 *
 * BLACKHOLE. A path that silently drops everything is failed sooner than
 * subflow_timeout from the kernel's own view (mpt_sf_info from TCP_INFO):
 * with records outstanding on it, no TCP ACK received for
 * max(MPT_BH_MIN, 3*srtt + 4*rttvar) since the later of the last ACK and
 * the oldest record, AND the kernel in retransmission timeout (retransmits
 * or backoff non-zero), the subflow FAILS with MPT_ETIMEDOUT: its records
 * are reinjected and the peer is told with SUBFLOW_FAILED. Both conditions
 * are needed: a congested but alive path (a long queue, losses) keeps
 * receiving ACKs, and a quiet ACK clock without an RTO is only a slow
 * path. While the ACKs stay away without an RTO the check is repeated every
 * max(srtt, MPT_BH_POLL); the caller refreshes the sample before
 * mpt_conn_handle_timeout. Without last_ack_at (0: the simulator, or no
 * TCP_INFO) nothing changes.
 *
 * QUIET (earlier, and reversible). Before the kernel's first RTO (srtt +
 * 200 ms or more after the segment it times) the same evidence is often
 * already plain: with records outstanding on it and at least two segments
 * unacknowledged in its kernel (a live receiver acknowledges those at once,
 * or within its delayed-ACK timer, at most 200 ms, when it does not read), no TCP ACK for max(srtt + MPT_QUIET_MIN, 3*srtt + 4*rttvar)
 * since the later of the last ACK and the oldest record, WHILE another
 * established subflow's kernel received an ACK at least half that long into
 * the silence (the host and the peer are alive: only this path went quiet):
 * the subflow is STALLED as by the stall detector (skipped by the
 * scheduler, its records reinjected, a PING sent, cleared by any byte
 * received on it), not failed: a path that only had a long hiccup comes
 * back by itself, and the BLACKHOLE rule above still fails it once the
 * kernel is in RTO. Also checked every max(srtt, MPT_BH_POLL).
 * A subflow in that silence (mpt_sf_ack_silent: ACK-less for the quiet
 * threshold with anything unacknowledged) is also the last choice for
 * control frames (outq.c: DATA_ACKs and SUBFLOW_FAILED go where they arrive).
 */
#define MPT_BH_MIN (200 * MPT_NS_PER_MS)
#define MPT_QUIET_MIN (200 * MPT_NS_PER_MS)
#define MPT_BH_POLL (25 * MPT_NS_PER_MS)
#include "conn_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

/*
 * End-to-end round trip of a subflow as the connection sees it: the larger of
 * the kernel's srtt and the least recent end-to-end sample (handshake,
 * PING -> PONG, DATA -> DATA_ACK). Behind a TCP-splitting proxy the kernel's
 * srtt is the short hop to the proxy while a DATA_ACK takes the whole path:
 * stall and reinjection decisions must wait for the latter. The minimum, not
 * an average, because samples include time queued in our own socket, which
 * the stall detector does not need to wait for: progress on a busy path is
 * measured between acks, and after idle the queue is empty.
 */
#define E2E_MIN_WINDOW (10000 * MPT_NS_PER_MS) /* a path may get longer: forget */

uint64_t mpt_sf_e2e_rtt(const struct sf *s)
{
    return u64max(sf_srtt(s), s->e2e_min);
}

/* An end-to-end sample exists (the kernel's srtt alone says nothing about
 * what lies behind a proxy). */
static int sf_e2e_known(const struct sf *s)
{
    return s->e2e_min != 0;
}

void mpt_e2e_sample(struct sf *s, uint64_t rtt, uint64_t now)
{
    if (rtt == 0)
        rtt = 1;
    if (!s->e2e_min || rtt <= s->e2e_min || now - s->e2e_min_t > E2E_MIN_WINDOW) {
        s->e2e_min = rtt;
        s->e2e_min_t = now;
    }
}

static void rtt_update(uint64_t *srtt, uint64_t *rttvar, uint64_t rtt)
{
    if (!*srtt) {
        *srtt = rtt;
        *rttvar = rtt / 2;
    } else {
        uint64_t d = rtt > *srtt ? rtt - *srtt : *srtt - rtt;
        *rttvar = (3 * *rttvar + d) / 4;
        *srtt = (7 * *srtt + rtt) / 8;
    }
}

/* No progress this long means stalled: the end-to-end RTT (never only the
 * kernel's, see sf_e2e_rtt), doubled for every stall in a row without
 * progress, so a path that keeps stalling is not re-declared every RTT. */
static uint64_t stall_thresh(const struct mpt_conn *c, const struct sf *s)
{
    uint64_t t = u64max(c->s.stall_min, 3 * mpt_sf_e2e_rtt(s) + 4 * sf_rttvar(s));

    return t << (s->stalls < 5 ? s->stalls : 5);
}

static uint64_t sf_stall_at(const struct mpt_conn *c, const struct sf *s)
{
    const struct rec *r;

    /* Without an end-to-end sample (a server's first subflow before its
     * first PONG) nothing says how long an ack may take: the failure
     * timeout alone applies. */
    if (s->stalled || !s->recs.n || !sf_e2e_known(s))
        return MPT_TIME_NEVER;
    r = mpt_ring_at(&s->recs, 0);
    return u64max(r->t, u64max(s->last_rx, s->last_progress)) + stall_thresh(c, s);
}

static uint64_t bh_thresh(const struct sf *s)
{
    return u64max(MPT_BH_MIN, 3 * sf_srtt(s) + 4 * sf_rttvar(s));
}

/* A live receiver acknowledges within its delayed-ACK timer (at most
 * MPT_QUIET_MIN, Linux's TCP_DELACK_MAX, when it does not read and its
 * window is not growing) plus one srtt. */
static uint64_t quiet_thresh(const struct sf *s)
{
    return u64max(sf_srtt(s) + MPT_QUIET_MIN, 3 * sf_srtt(s) + 4 * sf_rttvar(s));
}

/* Its kernel has at least two segments unacknowledged: a live receiver
 * acknowledges them without delay. */
static int sf_kernel_waits(const struct sf *s)
{
    uint64_t mss = s->info.mss ? s->info.mss : 1448;

    return s->info.unacked_bytes >= 2 * mss;
}

int mpt_sf_ack_silent(const struct sf *s, uint64_t now)
{
    return s->info.last_ack_at && s->info.unacked_bytes > 0 &&
           now >= s->info.last_ack_at + quiet_thresh(s);
}

/* Since when the subflow should have heard an ACK: the later of the last
 * one and its oldest record. */
static uint64_t sf_silence_from(const struct sf *s)
{
    const struct rec *r = mpt_ring_at(&s->recs, 0);

    return u64max(r->t, s->info.last_ack_at);
}

/* When the blackhole or the quiet rule is next worth checking (see
 * BLACKHOLE and QUIET above). */
static uint64_t sf_bh_at(const struct sf *s)
{
    uint64_t from, t;

    if (!s->recs.n || !s->info.last_ack_at)
        return MPT_TIME_NEVER;
    from = sf_silence_from(s);
    t = from + bh_thresh(s);
    if (!s->stalled && sf_kernel_waits(s))
        t = tmin(t, from + quiet_thresh(s));
    return u64max(s->bh_next, t);
}

/* Another established subflow's kernel received an ACK at or after t. */
static int other_path_acked(const struct mpt_conn *c, const struct sf *s, uint64_t t)
{
    for (int j = 0; j < c->nslots; j++) {
        const struct sf *o = &c->sf[j];
        if (o != s && o->state == MPT_SF_ESTABLISHED && o->info.last_ack_at >= t)
            return 1;
    }
    return 0;
}

/* The check itself, at now >= sf_bh_at: 2 when the subflow is a blackhole
 * (fail it), 1 when it went quiet (stall it), else 0 (and the next check is
 * one poll later). */
static int sf_bh_check(const struct mpt_conn *c, struct sf *s, uint64_t now)
{
    uint64_t from = sf_silence_from(s), q = quiet_thresh(s);

    s->bh_next = now + u64max(sf_srtt(s), MPT_BH_POLL);
    if (now >= from + bh_thresh(s) && (s->info.retransmits || s->info.backoff))
        return 2;
    if (!s->stalled && sf_kernel_waits(s) && now >= from + q && other_path_acked(c, s, from + q / 2))
        return 1;
    return 0;
}

static uint64_t sf_fail_at(const struct mpt_conn *c, const struct sf *s)
{
    if (!s->recs.n && !s->ping_sent_at)
        return MPT_TIME_NEVER;
    return u64max(s->last_rx, s->last_progress) + c->s.subflow_timeout;
}

/*
 * A peer that keeps its subflows alive but acknowledges nothing would hold
 * our data (and memory) forever: when data is outstanding on an established
 * subflow and the cumulative ack has not moved for ack_timeout (counted from
 * the first byte outstanding, or from when a path came back), the connection
 * is aborted with MPT_ETIMEDOUT. Without any established subflow the
 * no-path rule applies instead.
 */
static uint64_t ack_timeout_at(const struct mpt_conn *c)
{
    int est = 0;

    if (!conn_open(c) || !(mpt_dsn_lt(c->snd_una, c->snd_nxt) || (c->fin_sent && !c->fin_acked)))
        return MPT_TIME_NEVER;
    for (int i = 0; i < c->nslots && !est; i++)
        est = c->sf[i].state == MPT_SF_ESTABLISHED;
    if (!est)
        return MPT_TIME_NEVER;
    return c->una_moved_at + c->ack_timeout;
}

uint64_t mpt_conn_next_timeout(const struct mpt_conn *c)
{
    uint64_t t = MPT_TIME_NEVER;

    if (!c || c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED)
        return MPT_TIME_NEVER;
    if (c->state == MPT_CONN_HANDSHAKE)
        t = c->hs_deadline;
    if (c->close_sent)
        t = tmin(t, c->close_deadline);
    if (c->nopath_since)
        t = tmin(t, c->nopath_since + c->s.subflow_timeout);
    if (conn_open(c) && c->ack_deadline != MPT_TIME_NEVER)
        t = tmin(t, c->ack_deadline);
    t = tmin(t, mpt_snd_una_rtx_at(c, NULL));
    t = tmin(t, mpt_snd_reinj_grant_at(c));
    t = tmin(t, ack_timeout_at(c));
    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        switch (s->state) {
        case MPT_SF_CONNECTING:
        case MPT_SF_HANDSHAKE:
        case MPT_SF_CLOSING:
            t = tmin(t, s->hs_deadline);
            break;
        case MPT_SF_ESTABLISHED:
            if (!s->ping_sent_at)
                t = tmin(t, s->next_ping);
            t = tmin(t, sf_stall_at(c, s));
            t = tmin(t, sf_fail_at(c, s));
            if (s->rate && (c->reinj.n || mpt_dsn_lt(c->snd_nxt, mpt_dsn_min(c->sb.end, c->snd_edge))))
                t = tmin(t, mpt_meter_wake_at(c, s)); /* rate-capped with data waiting */
            t = tmin(t, sf_bh_at(s));
            break;
        default:
            break;
        }
    }
    return t;
}

static void send_ping(struct sf *s, uint64_t now)
{
    uint64_t v = now ? now : 1;

    if (mpt_q_u64(s, MPT_FT_PING, v) == 0)
        s->ping_sent_at = v;
}

/* STALLED (see LIVENESS): skipped by the scheduler, its records queued for
 * reinjection, a PING to find out, its pending ack moved elsewhere. */
static void sf_stall(struct mpt_conn *c, struct sf *s, uint64_t now)
{
    s->stalled = 1;
    s->stalls++;
    mpt_snd_reinject_sf(c, s, 0);
    if (!s->ping_sent_at)
        send_ping(s, now);
    if (s->ack_pending) {
        s->ack_pending = 0;
        c->ack_needed = 1;
    }
}

void mpt_conn_handle_timeout(struct mpt_conn *c, uint64_t now)
{
    if (!c)
        return;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED)
        return;
    if (c->state == MPT_CONN_HANDSHAKE && now >= c->hs_deadline) {
        mpt_abort_conn(c, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 1, 1, -1, 0);
        return;
    }
    if (c->close_sent && now >= c->close_deadline) {
        mpt_abort_conn(c, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 1, 1, -1, 0);
        return;
    }
    if (c->nopath_since && now >= c->nopath_since + c->s.subflow_timeout) {
        mpt_abort_conn(c, MPT_ENOPATH, MPT_REASON_TIMEOUT, 0, 1, -1, 0);
        return;
    }
    if (now >= ack_timeout_at(c)) {
        c->abort_text = "no DATA_ACK for the data outstanding within the ack timeout";
        mpt_abort_conn(c, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 1, 1, -1, 0);
        return;
    }
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        switch (s->state) {
        case MPT_SF_CONNECTING:
        case MPT_SF_HANDSHAKE:
            if (now >= s->hs_deadline)
                mpt_sf_fail(c, i, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, s->state == MPT_SF_HANDSHAKE, 0,
                        now);
            break;
        case MPT_SF_CLOSING:
            if (now >= s->hs_deadline)
                mpt_sf_closing_done(c, i, s->fail_reason);
            break;
        case MPT_SF_ESTABLISHED:
            if (now >= sf_fail_at(c, s)) {
                mpt_sf_fail(c, i, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 0, 0, now);
                break;
            }
            if (now >= sf_bh_at(s)) {
                int v = sf_bh_check(c, s, now);
                if (v == 2) {
                    c->st.sf_blackholes++;
                    mpt_sf_fail(c, i, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 0, 0, now);
                    break;
                }
                if (v == 1) {
                    c->st.sf_quiet_stalls++;
                    sf_stall(c, s, now);
                }
            }
            if (now >= sf_stall_at(c, s))
                sf_stall(c, s, now);
            if (!s->ping_sent_at && now >= s->next_ping) {
                send_ping(s, now);
                s->next_ping = now + c->s.ping_interval;
                /* a periodic ack too: repairs any lost ack or window update */
                if (c->rb_ready && conn_open(c))
                    s->ack_pending = 1;
            }
            break;
        default:
            break;
        }
        if (!conn_open(c) && c->state != MPT_CONN_HANDSHAKE)
            return;
    }
    mpt_snd_reinj_grant_check(c, now);
    mpt_snd_una_rtx_check(c, now);
    /* Stale-ack check: an ack written long ago may have died with a path. */
    if (conn_open(c) && c->rb_ready) {
        if (c->ack_deadline != MPT_TIME_NEVER && now >= c->ack_deadline) {
            c->ack_deadline = MPT_TIME_NEVER;
            if (c->ack_written != mpt_rcv_ack_value(c) || mpt_dsn_lt(c->edge_written, mpt_rcv_edge(c)))
                c->ack_needed = 1;
        }
        if (c->ack_deadline == MPT_TIME_NEVER &&
            (c->ack_written != mpt_rcv_ack_value(c) || mpt_dsn_lt(c->edge_written, c->adv_edge)))
            c->ack_deadline = now + c->s.ack_delay + c->s.stall_min;
    }
    mpt_post(c, now);
}

/* 11.4: answer promptly; PINGs that arrive before the answer could be sent
 * are answered by one PONG with the newest opaque, so a flood costs one
 * queued frame. */
void mpt_live_on_ping(struct mpt_conn *c, int i, const struct mpt_frame *f)
{
    struct sf *s = &c->sf[i];

    s->pong_opaque = f->u.ping.opaque;
    /* Idle cost (issue 15): the client's PINGs keep a subflow alive for
     * both ends, so the server sends its own only once they stop coming
     * (1.5 intervals after the last). Failure detection is unchanged: it
     * counts from the last byte received, and a PING goes out well within
     * subflow_timeout of that. Not before its own first PING has had its
     * answer (the first RTT sample, right after the handshake). Also when
     * its own PING is out: both ends start their interval at the
     * handshake, so the two PINGs cross. */
    if (c->is_server && s->state == MPT_SF_ESTABLISHED && s->srtt)
        s->next_ping = u64max(s->next_ping, c->now + c->s.ping_interval + c->s.ping_interval / 2);
    if (!s->pong_queued) {
        struct oitem *it = mpt_q_insert_before_data(s);
        if (it) {
            memset(it, 0, offsetof(struct oitem, hdr));
            it->kind = IT_PONG;
            it->hlen = MPT_FRAME_HDR_LEN + 8;
            s->q_bytes += it->hlen;
            s->pong_queued = 1;
        }
    }
}

/* A subflow is up. Its first RTT sample is due right away: the handshake's
 * exchange where there was one (the client's HELLO -> HELLO_ACK and JOIN ->
 * JOIN_ACK, the server's JOIN_ACK -> JOIN_CONFIRM), or else a PING queued
 * now, behind the HELLO_ACK, so both leave in one write (the server's first
 * subflow). Not a PING on every subflow: on a server accepting thousands of
 * connections a second, PING and PONG both ways cost both ends four system
 * calls per subflow for a sample they already had (issue 15). */
void mpt_live_sf_up(struct mpt_conn *c, int i, uint64_t now)
{
    struct sf *s = &c->sf[i];

    if (!s->e2e_min)
        send_ping(s, now);
    else if (!s->srtt)
        rtt_update(&s->srtt, &s->rttvar, s->e2e_min);
    s->next_ping = now + c->s.ping_interval;
}

void mpt_live_on_pong(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now)
{
    struct sf *s = &c->sf[i];

    if (s->ping_sent_at && f->u.ping.opaque == s->ping_sent_at) {
        if (now >= s->ping_sent_at) {
            uint64_t rtt = now - s->ping_sent_at ? now - s->ping_sent_at : 1;
            rtt_update(&s->srtt, &s->rttvar, rtt);
            mpt_e2e_sample(s, rtt, now);
            mpt_cc_on_rtt(c, i, rtt, now);
        }
        s->ping_sent_at = 0;
    }
}
