/*
 * The connection engine's entry points and lifecycle (conn.h is the
 * contract): creation, subflow slots, input dispatch to the modules, subflow
 * failure and close, introspection. conn_int.h maps the modules.
 *
 * INPUTS / OUTPUTS. Every entry point takes `now`; the engine reads no clock,
 * makes no system call, and draws randomness only from settings.rand. Input
 * frames are decoded in place (mpt_frame_decode lends DATA payloads), output
 * is a per-subflow queue of items turned into iovecs on demand.
 */
#include "conn_int.h"
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "cc.h"
#include "sched.h"
#include "wire.h"

void mpt_post(struct mpt_conn *c, uint64_t now)
{
    if (!conn_open(c))
        return;
    if (now - c->buf_active_at >= MPT_BUF_IDLE_CHECK)
        mpt_bufs_idle(c, now);
    mpt_snd_release(c); /* pins may have gone with a subflow */
    mpt_snd_schedule(c, now);
    mpt_place_ack(c);
    mpt_check_close(c);
}

/* Slots [sf_cap, n) come into existence, closed and never used. */
static int sf_grow(struct mpt_conn *c, int n)
{
    struct sf *a = mpt_reallocarray(c->sf, (size_t)n, sizeof *a);

    if (a == NULL)
        return MPT_ENOMEM;
    memset(a + c->sf_cap, 0, (size_t)(n - c->sf_cap) * sizeof *a);
    for (int i = c->sf_cap; i < n; i++) {
        a[i].state = MPT_SF_CLOSED;
        mpt_ring_init(&a[i].q, sizeof(struct oitem));
        mpt_ring_init(&a[i].recs, sizeof(struct rec));
        a[i].pen_cap = SIZE_MAX;
    }
    c->sf = a;
    c->sf_cap = n;
    return 0;
}

int mpt_conn_alloc(const struct mpt_core_settings *s, int is_server, uint64_t now,
                      struct mpt_conn **out)
{
    struct mpt_conn *c;

    if (!s || !s->rand || !out || s->max_frame_payload == 0 || s->sndbuf == 0 || s->rcvbuf == 0)
        return MPT_EINVAL;
    c = mpt_calloc(1, sizeof *c);
    if (!c)
        return MPT_ENOMEM;
    c->s = *s;
    if (c->s.max_subflows == 0 || c->s.max_subflows > MPT_MAX_SUBFLOWS_LIMIT)
        c->s.max_subflows = c->s.max_subflows ? MPT_MAX_SUBFLOWS_LIMIT : 1;
    if (c->s.max_frame_payload > MPT_FRAME_MAX_DATA)
        c->s.max_frame_payload = MPT_FRAME_MAX_DATA;
    if (mpt_algo_init(c, s->sched ? s->sched : &mpt_sched_minrtt,
                      s->cc ? s->cc : &mpt_cc_uncoupled) < 0) {
        mpt_free(c);
        return MPT_ENOMEM;
    }
    c->evq = c->ev_inline;
    c->ev_cap = EVQ_INLINE;
    c->is_server = is_server;
    c->state = MPT_CONN_HANDSHAKE;
    c->now = now;
    c->fin_sf = -1;
    c->mode = (c->s.service_mode >= MPT_SM_AGGREGATE && c->s.service_mode <= MPT_SM_INTERACTIVE)
                  ? c->s.service_mode
                  : MPT_SM_AGGREGATE;
    c->ho_active = -1;
    c->ack_deadline = MPT_TIME_NEVER;
    c->hs_deadline = now + c->s.handshake_timeout;
    c->ack_timeout = c->s.ack_timeout ? c->s.ack_timeout : 4 * c->s.subflow_timeout;
    mpt_ring_init(&c->reinj, sizeof(struct rng));
    mpt_ring_init(&c->msgs, sizeof(struct msgpol));
    mpt_ring_init(&c->advs, sizeof(struct adv));
    if (sf_grow(c, c->s.max_subflows < 2 ? 1 : 2) < 0) {
        mpt_algo_fini(c);
        mpt_free(c);
        return MPT_ENOMEM;
    }
    *out = c;
    return 0;
}

int mpt_conn_client_new(const struct mpt_core_settings *s, uint64_t now, struct mpt_conn **out)
{
    struct mpt_conn *c;
    int r = mpt_conn_alloc(s, 0, now, &c);

    if (r)
        return r;
    c->s.rand(c->s.rand_user, c->key_local, MPT_KEY_LEN);
    mpt_hs_set_local_key(c);
    *out = c;
    return 0;
}

void mpt_conn_free(struct mpt_conn *c)
{
    if (!c)
        return;
    mpt_hs_unlink(c);
    for (int i = 0; i < c->sf_cap; i++) {
        mpt_ring_free(&c->sf[i].q);
        mpt_free(c->sf[i].pend);
        mpt_ring_free(&c->sf[i].recs);
    }
    mpt_ring_free(&c->reinj);
    mpt_ring_free(&c->msgs);
    mpt_ring_free(&c->advs);
    mpt_sendbuf_free(&c->sb);
    if (c->rb_ready)
        mpt_rcvbuf_free(&c->rb);
    mpt_reorder_free(&c->reorder);
    mpt_algo_fini(c);
    mpt_free(c->sf);
    if (c->evq != c->ev_inline)
        mpt_free(c->evq);
    mpt_free(c->peer_text);
    mpt_free(c);
}

void mpt_conn_set_user(struct mpt_conn *c, void *user)
{
    if (c)
        c->user = user;
}

void *mpt_conn_get_user(const struct mpt_conn *c)
{
    return c ? c->user : NULL;
}

enum mpt_conn_state mpt_conn_state(const struct mpt_conn *c)
{
    return c->state;
}

int mpt_live_count(const struct mpt_conn *c)
{
    int n = 0;

    for (int i = 0; i < c->nslots; i++)
        n += sf_live(&c->sf[i]);
    return n;
}

/* A free slot: never-used ones first so indexes are not recycled early. */
int mpt_alloc_slot(struct mpt_conn *c)
{
    int i;

    if (mpt_live_count(c) >= (int)c->s.max_subflows)
        return MPT_ETOOMANY;
    for (i = 0; i < c->sf_cap; i++)
        if (!c->sf[i].used_ever)
            break;
    if (i == c->sf_cap && c->sf_cap < MPT_MAX_SUBFLOWS_LIMIT) {
        /* Never-used slots past the allocated ones: the same index as if
         * all 32 existed. */
        int n = c->sf_cap * 2 > MPT_MAX_SUBFLOWS_LIMIT ? MPT_MAX_SUBFLOWS_LIMIT : c->sf_cap * 2;
        if (sf_grow(c, n) < 0)
            return MPT_ENOMEM;
    }
    if (i == MPT_MAX_SUBFLOWS_LIMIT) {
        for (i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
            if (!sf_live(&c->sf[i]) && c->sf[i].q.n == 0)
                break;
        if (i == MPT_MAX_SUBFLOWS_LIMIT)
            return MPT_ETOOMANY;
    }
    {
        struct sf *s = &c->sf[i];
        struct mpt_ring q = s->q, recs = s->recs;
        mpt_free(s->pend);
        mpt_free(s->cc_sf);
        memset(s, 0, sizeof *s);
        s->q = q;
        s->recs = recs;
        s->q.n = s->q.head = 0;
        s->recs.n = s->recs.head = 0;
        s->pen_cap = SIZE_MAX;
        s->used_ever = 1;
        s->state = MPT_SF_CONNECTING;
        s->id = ++c->next_sf_id;
    }
    if (i >= c->nslots)
        c->nslots = i + 1;
    c->nopath_since = 0;
    return i;
}

int mpt_conn_add_subflow(struct mpt_conn *c, uint8_t addr_id, int prio, uint64_t now)
{
    int i;

    if (!c || prio < MPT_PRIO_PRIMARY || prio > MPT_PRIO_NEVER)
        return MPT_EINVAL;
    c->now = now;
    if (c->is_server)
        return MPT_ESTATE;
    if (c->state == MPT_CONN_HANDSHAKE) {
        if (c->nslots > 0)
            return MPT_ESTATE;
    } else if (!conn_open(c)) {
        return MPT_ESTATE;
    }
    i = mpt_alloc_slot(c);
    if (i < 0)
        return i;
    c->sf[i].addr_id = addr_id;
    c->sf[i].prio = prio;
    c->sf[i].is_join = c->state != MPT_CONN_HANDSHAKE;
    c->sf[i].handshake_sf = !c->sf[i].is_join;
    c->sf[i].hs_deadline = now + c->s.handshake_timeout;
    return i;
}

void mpt_sf_up(struct mpt_conn *c, int i, uint64_t now)
{
    struct sf *s = &c->sf[i];
    int others = 0;

    for (int k = 0; k < c->nslots; k++)
        others += k != i && c->sf[k].state == MPT_SF_ESTABLISHED;
    if (!others)
        c->una_moved_at = u64max(c->una_moved_at, now); /* the peer could not ack before */
    s->state = MPT_SF_ESTABLISHED;
    c->st.sf_opened++;
    mpt_cc_sf_up(c, i, now);
    s->last_rx = now;
    s->last_progress = now;
    mpt_live_sf_up(c, i, now);
    c->nopath_since = 0;
    /* JOIN can only say BACKUP, HELLO nothing: the other tiers follow in PRIO */
    if ((s->prio == MPT_PRIO_SECONDARY || s->prio == MPT_PRIO_NEVER) && !c->is_server)
        mpt_q_simple(s, MPT_FT_PRIO, mpt_prio_flags(c, s->prio));
    mpt_ev_push(c, MPT_EV_SF_UP, i, 0, 0);
}

/* A subflow went away: an ack or window update written on it may be lost,
 * so send a fresh one elsewhere; and note when no path is left. */
void mpt_check_nopath(struct mpt_conn *c, uint64_t now)
{
    if (conn_open(c) && c->rb_ready)
        c->ack_needed = 1;
    for (int i = 0; i < c->nslots; i++)
        if (sf_live(&c->sf[i])) {
            c->nopath_since = 0;
            return;
        }
    if (conn_open(c) && c->fin_acked && c->rfin_consumed) {
        /* both directions are complete: only the CLOSE exchange was lost */
        mpt_finish_close(c);
        return;
    }
    if (!c->nopath_since)
        c->nopath_since = now ? now : 1;
}

/* The client's JOIN nonce names a subflow on both sides (all zero for the
 * first subflow, which had no JOIN). */
static void sf_client_nonce(const struct mpt_conn *c, const struct sf *s,
                            uint8_t out[MPT_NONCE_LEN])
{
    if (!s->is_join)
        memset(out, 0, MPT_NONCE_LEN);
    else
        memcpy(out, c->is_server ? s->nonce_peer : s->nonce_local, MPT_NONCE_LEN);
}

/* protocol.md 5.18: tell the peer on every other established subflow that
 * subflow i failed here, so it reinjects at once instead of waiting for
 * its own stall detection (a link down or a reset is often seen by one end
 * only). Ahead of the DATA queued there and not yet started: the notice is
 * what lets the peer repair its side, and behind a full queue it arrived
 * about a second late (doc/benchmarks.md, "Third pass"). */
static void notify_sf_failed(struct mpt_conn *c, int i, uint32_t reason)
{
    struct mpt_frame f;

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_SUBFLOW_FAILED;
    f.u.sf_failed.reason = reason;
    sf_client_nonce(c, &c->sf[i], f.u.sf_failed.nonce);
    for (int j = 0; j < c->nslots; j++)
        if (j != i && c->sf[j].state == MPT_SF_ESTABLISHED)
            (void)mpt_q_frame_front(&c->sf[j], &f);
}

/* The peer's SUBFLOW_FAILED, arriving on subflow i: fail the subflow it
 * names if it is still up here; anything else (unknown, already gone, the
 * subflow it arrives on) is ignored. */
static void on_sf_failed(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now)
{
    uint8_t n[MPT_NONCE_LEN];

    for (int j = 0; j < c->nslots; j++) {
        struct sf *s = &c->sf[j];
        if (j == i || (s->state != MPT_SF_ESTABLISHED && s->state != MPT_SF_CLOSING))
            continue;
        sf_client_nonce(c, s, n);
        if (memcmp(n, f->u.sf_failed.nonce, MPT_NONCE_LEN) != 0)
            continue;
        c->failing_on_notice = 1;
        c->st.sf_fail_notices++;
        mpt_sf_fail(c, j, f->u.sf_failed.reason == MPT_REASON_TIMEOUT ? MPT_ETIMEDOUT
                                                                      : MPT_ECONNRESET,
                    f->u.sf_failed.reason, 0, 0, now);
        c->failing_on_notice = 0;
        return;
    }
}

void mpt_sf_fail(struct mpt_conn *c, int i, int err, uint32_t reason, int send_error,
                    uint8_t ftype, uint64_t now)
{
    struct sf *s = &c->sf[i];
    int had_ack = s->ack_pending, was_established = s->state == MPT_SF_ESTABLISHED;

    if (!sf_live(s))
        return;
    mpt_cc_sf_down(c, i, now);
    mpt_q_drop(s);
    if (!mpt_q_drop_partial_data(s) && send_error)
        mpt_q_reason(s, MPT_FT_ERROR, reason, ftype);
    s->state = MPT_SF_FAILED;
    c->st.sf_failed++;
    s->stalled = 0;
    s->fail_reason = reason;
    s->fail_error = err;
    if (was_established && conn_open(c) && !c->failing_on_notice)
        notify_sf_failed(c, i, reason);
    mpt_snd_reinject_sf(c, s, 1);
    if (had_ack)
        c->ack_needed = 1;
    mpt_ev_push(c, MPT_EV_SF_DOWN, i, err, reason);
    if (c->state == MPT_CONN_HANDSHAKE && s->handshake_sf) {
        mpt_abort_conn(c, err, reason, 0, 1, -1, 0);
        return;
    }
    mpt_addr_resend(c, i);
    mpt_check_nopath(c, now);
}

void mpt_sf_closing_done(struct mpt_conn *c, int i, uint32_t reason)
{
    struct sf *s = &c->sf[i];

    mpt_cc_sf_down(c, i, c->now);
    s->state = MPT_SF_CLOSED;
    s->fail_reason = reason;
    mpt_q_drop_partial_data(s);
    mpt_ev_push(c, MPT_EV_SF_DOWN, i, MPT_ECLOSED, reason);
    mpt_addr_resend(c, i);
    mpt_check_nopath(c, c->now);
}

/* SUBFLOW_CLOSE(reason) on established subflow i: it sends nothing more,
 * its bytes go elsewhere, and it is gone once the peer closes it (11.2). */
int mpt_sf_begin_close(struct mpt_conn *c, int i, uint32_t reason, uint64_t now)
{
    struct sf *s = &c->sf[i];

    if (mpt_q_reason(s, MPT_FT_SUBFLOW_CLOSE, reason, 0))
        return MPT_ENOMEM;
    mpt_cc_sf_down(c, i, now);
    s->sc_sent = 1;
    s->state = MPT_SF_CLOSING;
    s->fail_reason = reason;
    s->hs_deadline = now + c->s.handshake_timeout;
    mpt_snd_reinject_sf(c, s, 1);
    if (s->ack_pending) {
        s->ack_pending = 0;
        c->ack_needed = 1;
    }
    mpt_addr_resend(c, i);
    return 0;
}

/* One decoded frame on subflow i: each concern's module handles its frames. */
static int handle_frame(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now,
                        int *got_data)
{
    struct sf *s = &c->sf[i];

    if (f->type == MPT_FT_ERROR)
        return mpt_close_on_error(c, i, f, now);
    if (f->type == MPT_FT_FASTCLOSE)
        return mpt_close_on_fastclose(c, i, f, now);
    if (s->state == MPT_SF_HANDSHAKE)
        return mpt_hs_on_frame(c, i, f, now);
    if (s->state != MPT_SF_ESTABLISHED && s->state != MPT_SF_CLOSING)
        return 0;
    switch (f->type) {
    case MPT_FT_DATA:
        return mpt_rcv_on_data(c, i, f, now, got_data);
    case MPT_FT_DATA_ACK:
        if (mpt_snd_on_data_ack(c, i, f->u.data_ack.ack, f->u.data_ack.window,
                                f->u.data_ack.ranges, f->u.data_ack.nranges, now) < 0)
            return mpt_proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
        return 0;
    case MPT_FT_DATA_FIN:
        return mpt_rcv_on_data_fin(c, i, f, now, got_data);
    case MPT_FT_PING:
        mpt_live_on_ping(c, i, f);
        return 0;
    case MPT_FT_PONG:
        mpt_live_on_pong(c, i, f, now);
        return 0;
    case MPT_FT_PRIO:
        mpt_addr_on_prio(c, i, f);
        return 0;
    case MPT_FT_ADD_ADDR:
        return mpt_addr_on_add_addr(c, i, f);
    case MPT_FT_REMOVE_ADDR:
        mpt_addr_on_remove_addr(c, f, now);
        return 0;
    case MPT_FT_CLOSE:
        return mpt_close_on_close(c, i, f, now);
    case MPT_FT_SUBFLOW_CLOSE:
        mpt_close_on_subflow_close(c, i, f);
        return 0;
    case MPT_FT_SUBFLOW_FAILED:
        on_sf_failed(c, i, f, now);
        return 0;
    default:
        if (f->type & MPT_FT_IGNORABLE)
            return 0;
        return mpt_proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
    }
}

static int sf_alive(const struct sf *s)
{
    return s->state == MPT_SF_HANDSHAKE || s->state == MPT_SF_ESTABLISHED ||
           s->state == MPT_SF_CLOSING;
}

/*
 * Decodes and handles the complete frames at the start of data. Returns the
 * bytes used (a partial frame at the end is left), or a negative error once
 * the subflow broke the protocol; *stop is set when nothing more is to be
 * read from this subflow.
 */
static ssize_t input_frames(struct mpt_conn *c, int i, const uint8_t *data, size_t len,
                            uint64_t now, int *got_data, int *stop)
{
    struct sf *s = &c->sf[i];
    size_t off = 0;

    while (off < len) {
        struct mpt_frame f;
        /* 4.3: before the subflow is established no frame may exceed 260 */
        size_t max_body = s->state == MPT_SF_HANDSHAKE ? MPT_FRAME_MAX_CONTROL - MPT_FRAME_HDR_LEN
                                                       : MPT_FRAME_MAX_BODY;
        ssize_t r = mpt_frame_decode(data + off, len - off, max_body, &f);
        int e;
        if (r == MPT_EINCOMPLETE)
            break;
        if (r < 0) {
            /* 13.1: an ERROR or FASTCLOSE, even an invalid one, is never
             * answered with ERROR */
            uint8_t t = data[off];
            int answer = t != MPT_FT_ERROR && t != MPT_FT_FASTCLOSE;
            if (s->state == MPT_SF_HANDSHAKE || !conn_open(c))
                mpt_sf_fail(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, answer, t, now);
            else
                mpt_abort_conn(c, MPT_EPROTO, MPT_REASON_PROTOCOL, 1, 1, answer ? i : -1, t);
            *stop = 1;
            return r;
        }
        off += (size_t)r;
        e = handle_frame(c, i, &f, now, got_data);
        if (e < 0) {
            *stop = 1;
            return e;
        }
        if (c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED || !sf_alive(s)) {
            *stop = 1;
            return (ssize_t)len;
        }
    }
    return (ssize_t)off;
}

/* Keeps the partial frame at the end of the input until the rest arrives
 * (at most one frame: 4 + 65535 bytes per subflow, allocated only while a
 * frame is incomplete). */
static int pend_keep(struct sf *s, const uint8_t *data, size_t len)
{
    if (!s->pend && !(s->pend = mpt_malloc(MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY)))
        return MPT_ENOMEM;
    memcpy(s->pend + s->pend_len, data, len);
    s->pend_len += len;
    return 0;
}

static void pend_clear(struct sf *s)
{
    mpt_free(s->pend);
    s->pend = NULL;
    s->pend_len = 0;
}

ssize_t mpt_conn_sf_input(struct mpt_conn *c, int i, const uint8_t *data, size_t len, uint64_t now)
{
    struct sf *s;
    int got_data = 0, stop = 0;
    ssize_t ret = 0, r;
    size_t total = len;

    if (!valid_sf(c, i) || (!data && len))
        return MPT_EINVAL;
    s = &c->sf[i];
    c->now = now;
    if (c->state == MPT_CONN_ABORTED || !sf_alive(s)) {
        pend_clear(s);
        return (ssize_t)len; /* nothing more is expected: discard */
    }
    if (len) {
        s->last_rx = now;
        s->stalled = 0;
    }
    /* first complete the frame left over from the last input */
    while (s->pend_len && len && !stop) {
        size_t have = s->pend_len, need;
        need = have < MPT_FRAME_HDR_LEN ? MPT_FRAME_HDR_LEN - have
                                        : MPT_FRAME_HDR_LEN + mpt_get16(s->pend + 2) - have;
        if (need > len)
            need = len;
        if ((r = pend_keep(s, data, need)) < 0) {
            mpt_sf_fail(c, i, MPT_ENOMEM, MPT_REASON_RESOURCE, 1, 0, now);
            ret = r;
            break;
        }
        data += need;
        len -= need;
        r = input_frames(c, i, s->pend, s->pend_len, now, &got_data, &stop);
        if (r < 0) {
            ret = r;
            break;
        }
        if ((size_t)r == s->pend_len || stop)
            pend_clear(s);
    }
    if (ret == 0 && !stop && len) {
        r = input_frames(c, i, data, len, now, &got_data, &stop);
        if (r < 0)
            ret = r;
        else if (!stop && (size_t)r < len && (r = pend_keep(s, data + r, len - (size_t)r)) < 0) {
            mpt_sf_fail(c, i, MPT_ENOMEM, MPT_REASON_RESOURCE, 1, 0, now);
            ret = r;
        }
    }
    if (ret < 0 || stop)
        pend_clear(s);
    if (got_data && conn_open(c))
        c->ack_needed = 1;
    if (c->rb_ready)
        c->st.rcv_mem = mpt_rcvbuf_mem(&c->rb);
    mpt_post(c, now);
    return ret < 0 ? ret : (ssize_t)total;
}

void mpt_conn_sf_set_room(struct mpt_conn *c, int i, size_t room, uint64_t now)
{
    if (!valid_sf(c, i))
        return;
    c->now = now;
    c->sf[i].room = room;
    mpt_post(c, now);
}

int mpt_conn_sf_set_remote_id(struct mpt_conn *c, int i, uint8_t remote_id)
{
    if (!valid_sf(c, i))
        return MPT_EINVAL;
    if (c->is_server)
        return MPT_ESTATE;
    c->sf[i].remote_id = remote_id;
    return 0;
}

void mpt_conn_sf_set_info(struct mpt_conn *c, int i, const struct mpt_sf_info *info)
{
    struct sf *s;

    if (!valid_sf(c, i) || !info)
        return;
    s = &c->sf[i];
    /* the first sample is a baseline, not a loss */
    int loss = info->total_retrans > s->info.total_retrans && s->info.srtt;
    s->info = *info;
    if (loss && s->state == MPT_SF_ESTABLISHED)
        mpt_cc_on_loss(c, i, c->now);
}

void mpt_conn_sf_failed(struct mpt_conn *c, int i, int error, uint64_t now)
{
    if (!valid_sf(c, i))
        return;
    c->now = now;
    if (c->sf[i].state == MPT_SF_CLOSING && c->sf[i].sc_sent) {
        /* EOF after our SUBFLOW_CLOSE: a normal end */
        mpt_snd_reinject_sf(c, &c->sf[i], 1);
        mpt_sf_closing_done(c, i, c->sf[i].fail_reason);
    } else {
        mpt_sf_fail(c, i, error ? error : MPT_ECLOSED, mpt_reason_of_err(error), 0, 0, now);
    }
    c->sf[i].q.n = 0; /* the socket is gone: nothing more to write, or read */
    pend_clear(&c->sf[i]);
    c->sf[i].pong_queued = 0;
    c->sf[i].q.head = 0;
    c->sf[i].q_bytes = 0;
    c->sf[i].ctrl_items = 0;
    mpt_snd_release(c);
    mpt_post(c, now);
}

int mpt_conn_sf_release(struct mpt_conn *c, int i)
{
    struct sf *s;

    if (!valid_sf(c, i))
        return MPT_EINVAL;
    s = &c->sf[i];
    if (sf_live(s))
        return MPT_ESTATE;
    s->q.n = s->q.head = 0;
    s->q_bytes = 0;
    s->ctrl_items = 0;
    s->pong_queued = 0;
    pend_clear(s);
    mpt_snd_release(c);
    return 0;
}

int mpt_conn_sf_close(struct mpt_conn *c, int i, uint32_t reason, uint64_t now)
{
    int rc;

    if (!valid_sf(c, i))
        return MPT_EINVAL;
    c->now = now;
    if (c->sf[i].state != MPT_SF_ESTABLISHED)
        return MPT_ESTATE;
    if ((rc = mpt_sf_begin_close(c, i, reason, now)) < 0)
        return rc;
    mpt_post(c, now);
    return 0;
}

enum mpt_sf_state mpt_conn_sf_state(const struct mpt_conn *c, int i)
{
    if (!valid_sf(c, i))
        return MPT_SF_CLOSED;
    return c->sf[i].state;
}

int mpt_conn_sf_count(const struct mpt_conn *c)
{
    return c ? mpt_live_count(c) : 0;
}

int mpt_conn_sf_max(const struct mpt_conn *c)
{
    return c ? (int)c->s.max_subflows : 0;
}

const char *mpt_conn_peer_text(const struct mpt_conn *c)
{
    return c ? c->peer_text : NULL;
}

void mpt_conn_get_stats(const struct mpt_conn *c, struct mpt_conn_stats *st)
{
    *st = c->st;
    st->rcv_mem = c->rb_ready ? mpt_rcvbuf_mem(&c->rb) : 0;
    st->snd_mem = mpt_sendbuf_used(&c->sb);
    st->addr_rejected = c->addr_bad;
    st->events_dropped = c->ev_dropped;
    st->snd_unacked = mpt_dsn_gt(c->sb.end, c->snd_una) ? c->sb.end - c->snd_una : 0;
    if (c->fin_pending && !c->fin_acked)
        st->snd_unacked++; /* the DATA_FIN */
    st->reorder_samples = mpt_reorder_samples(&c->reorder);
    st->reorder_p50 = mpt_reorder_quantile(&c->reorder, 500);
    st->reorder_p99 = mpt_reorder_quantile(&c->reorder, 990);
    st->reorder_max = c->reorder.max_ns;
    st->rcv_window = c->rb_ready ? (c->rcv_win < c->rb.cap ? c->rcv_win : c->rb.cap) : 0;
    st->rcv_allocated = c->rb_ready ? mpt_rcvbuf_allocated(&c->rb) : 0;
    st->snd_allocated = c->sb.buf ? c->sb.cap : 0;
}

int mpt_conn_sf_get_stats(const struct mpt_conn *c, int i, struct mpt_sf_stats *st)
{
    const struct sf *s;

    if (!valid_sf(c, i) || !st)
        return MPT_EINVAL;
    s = &c->sf[i];
    memset(st, 0, sizeof *st);
    st->state = s->state;
    st->backup = mpt_prio_is_backup(s->prio);
    st->prio = s->prio;
    st->id = s->id;
    st->addr_id = s->addr_id;
    st->remote_id = s->remote_id;
    st->bytes_received = s->bytes_received;
    st->srtt = sf_srtt(s);
    st->bytes_sent = s->bytes_sent;
    st->bytes_acked = s->bytes_acked;
    st->fail_reason = s->fail_reason;
    st->fail_error = s->fail_error;
    st->budget = s->budget;
    st->budget_used = s->budget_used;
    st->budget_spent = s->budget_spent;
    st->rate = s->rate;
    st->queued = s->q_bytes;
    st->inflight = s->inflight;
    st->stalled = s->stalled;
    return 0;
}
