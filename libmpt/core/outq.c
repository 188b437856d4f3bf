/*
 * Per-subflow output queues: control frames (pre-encoded), DATA (a 12-byte
 * header and a reference into the send buffer), DATA_ACK and PONG (encoded
 * with fresh values when emitted), turned into iovecs by mpt_conn_sf_output.
 *
 * ACKS. One DATA_ACK per input batch that carried DATA (new or duplicate) or
 * a DATA_FIN, queued on the established subflow with the least queued output
 * (our queue + the kernel's notsent bytes) and then the lowest srtt; plus one
 * when reads open the window by >= rcvbuf/4 or the window was under two
 * frames. Lost acks (a window update written on a path that then dies would
 * deadlock the sender) are repaired by: a fresh ack whenever a subflow goes
 * away, an ack on every subflow when duplicates arrive (the sender is
 * retransmitting), a periodic ack with each timer PING, and a timer
 * (ack_delay + stall_min) when the last ack written is stale. An ack waiting
 * in a queue is re-encoded with current values when emitted, never doubled.
 */
#include "conn_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

static size_t item_total(const struct oitem *it)
{
    return (size_t)it->hlen + (it->kind == IT_DATA ? it->len : 0);
}

int mpt_q_raw(struct sf *s, const uint8_t *bytes, size_t len)
{
    struct oitem *it;

    if (len > sizeof it->hdr)
        return MPT_EINVAL;
    it = mpt_ring_push_back(&s->q);
    if (!it)
        return MPT_ENOMEM;
    it->kind = IT_CTRL;
    it->off = 0;
    it->len = 0;
    it->hlen = (uint16_t)len;
    memcpy(it->hdr, bytes, len);
    s->q_bytes += len;
    s->ctrl_items++;
    return 0;
}

/* Insert an empty item ahead of queued DATA that has not started, but behind
 * a partly written item and behind control frames (which keep their order:
 * handshake frames must stay first). O(items ahead of it); used for control
 * frames that should measure or serve the path, not wait for our queue. */
struct oitem *mpt_q_insert_before_data(struct sf *s)
{
    uint32_t pos = 0;

    while (pos < s->q.n) {
        const struct oitem *q = mpt_ring_at(&s->q, pos);
        if (q->off == 0 && q->kind == IT_DATA)
            break;
        pos++;
    }
    /* open a slot at the front and slide the (few) leading items into it */
    if (!mpt_ring_push_front(&s->q))
        return NULL;
    for (uint32_t j = 0; j < pos; j++)
        memcpy(mpt_ring_at(&s->q, j), mpt_ring_at(&s->q, j + 1), sizeof(struct oitem));
    return mpt_ring_at(&s->q, pos);
}

int mpt_q_frame_front(struct sf *s, const struct mpt_frame *f)
{
    uint8_t buf[MPT_FRAME_MAX_CONTROL];
    ssize_t n = mpt_frame_encode(f, buf, sizeof buf);
    struct oitem *it;

    if (n < 0)
        return (int)n;
    it = mpt_q_insert_before_data(s);
    if (!it)
        return MPT_ENOMEM;
    it->kind = IT_CTRL;
    it->off = 0;
    it->len = 0;
    it->hlen = (uint16_t)n;
    memcpy(it->hdr, buf, (size_t)n);
    s->q_bytes += (size_t)n;
    s->ctrl_items++;
    return 0;
}

int mpt_q_frame(struct sf *s, const struct mpt_frame *f)
{
    uint8_t buf[MPT_FRAME_MAX_CONTROL];
    ssize_t n = mpt_frame_encode(f, buf, sizeof buf);

    if (n < 0)
        return (int)n;
    return mpt_q_raw(s, buf, (size_t)n);
}

int mpt_q_simple(struct sf *s, uint8_t type, uint8_t flags)
{
    struct mpt_frame f;

    memset(&f, 0, sizeof f);
    f.type = type;
    f.flags = flags;
    return mpt_q_frame(s, &f);
}

int mpt_q_reason(struct sf *s, uint8_t type, uint32_t reason, uint8_t ftype)
{
    struct mpt_frame f;

    memset(&f, 0, sizeof f);
    f.type = type;
    f.u.close.reason = reason;
    f.u.close.frame_type = ftype;
    return mpt_q_frame(s, &f);
}

int mpt_q_u64(struct sf *s, uint8_t type, uint64_t v)
{
    struct mpt_frame f;

    memset(&f, 0, sizeof f);
    f.type = type;
    if (type == MPT_FT_DATA_FIN) {
        f.u.data_fin.dsn = v;
        return mpt_q_frame(s, &f);
    }
    f.u.ping.opaque = v;
    return mpt_q_frame_front(s, &f);
}

/* Drops queued output except a partly written head item (which must be
 * completed for the byte stream to stay parseable). */
void mpt_q_drop(struct sf *s)
{
    while (s->q.n) {
        struct oitem *it = mpt_ring_at(&s->q, s->q.n - 1);
        if (s->q.n == 1 && it->off > 0)
            break;
        s->q_bytes -= zmin(s->q_bytes, item_total(it) - it->off);
        if (it->kind == IT_CTRL && s->ctrl_items)
            s->ctrl_items--;
        mpt_ring_pop_back(&s->q);
    }
    s->ack_pending = 0;
    s->pong_queued = 0;
}

/* A subflow that is no longer live must not pin send-buffer memory (the
 * caller may close its socket without writing another byte): a partly written
 * DATA frame is dropped with everything behind it (the peer sees a truncated
 * stream on a dead subflow). Returns 1 if that happened. */
int mpt_q_drop_partial_data(struct sf *s)
{
    const struct oitem *it;

    if (!s->q.n)
        return 0;
    it = mpt_ring_at(&s->q, 0);
    if (it->kind != IT_DATA || it->off == 0 || it->len == 0)
        return 0;
    s->q.n = s->q.head = 0;
    s->q_bytes = 0;
    s->ctrl_items = 0;
    s->pong_queued = 0;
    return 1;
}

void mpt_q_encode_ack(struct mpt_conn *c, struct oitem *it)
{
    struct mpt_frame f;
    uint64_t ack = mpt_rcv_ack_value(c), edge = mpt_rcv_edge(c);
    ssize_t n;

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_DATA_ACK;
    f.u.data_ack.ack = ack;
    f.u.data_ack.window = mpt_dsn_lt(edge, ack) ? 0 : (uint32_t)zmin((size_t)(edge - ack), MAX_WINDOW);
    if ((c->features & MPT_FEAT_SACK) && !c->rfin_consumed)
        f.u.data_ack.nranges =
            (uint8_t)mpt_rcvbuf_sack(&c->rb, f.u.data_ack.ranges, MPT_FRAME_MAX_SACK);
    n = mpt_frame_encode(&f, it->hdr, sizeof it->hdr);
    if (n < 0) {
        /* cannot happen with valid ranges; send the ack without them */
        f.u.data_ack.nranges = 0;
        n = mpt_frame_encode(&f, it->hdr, sizeof it->hdr);
    }
    it->hlen = (uint16_t)(n > 0 ? n : 0);
    it->dsn = ack;
    it->edge = ack + f.u.data_ack.window;
    if (mpt_dsn_gt(it->edge, c->adv_edge))
        c->adv_edge = it->edge;
}

/* Pick the subflow for a control frame that may go anywhere: established,
 * least queued output, then lowest srtt; a stalled subflow, or one whose
 * kernel has heard no ACK for a while with data unacknowledged (a path
 * that may have gone dark: liveness.c, QUIET), only if nothing else is
 * left. */
int mpt_best_ctrl_sf(const struct mpt_conn *c)
{
    int best = -1;
    uint64_t bq = 0, br = 0;

    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        uint64_t q, r;
        if (s->state != MPT_SF_ESTABLISHED)
            continue;
        q = s->q_bytes + s->info.notsent_bytes + (s->stalled ? (1u << 30) : 0) +
            (mpt_sf_ack_silent(s, c->now) ? (1u << 29) : 0);
        r = sf_srtt(s);
        if (best < 0 || q < bq || (q == bq && r < br)) {
            best = i;
            bq = q;
            br = r;
        }
    }
    return best;
}

void mpt_place_ack(struct mpt_conn *c)
{
    int i;

    if (!c->ack_needed || !conn_open(c) || !c->rb_ready)
        return;
    if (c->ack_all) {
        c->ack_all = 0;
        for (i = 0; i < c->nslots; i++)
            if (c->sf[i].state == MPT_SF_ESTABLISHED) {
                c->sf[i].ack_pending = 1;
                c->ack_needed = 0;
            }
        if (!c->ack_needed)
            return;
    }
    i = mpt_best_ctrl_sf(c);
    if (i < 0)
        return;
    c->ack_needed = 0;
    c->sf[i].ack_pending = 1;
}

static void materialize(struct mpt_conn *c, struct sf *s, struct oitem *it)
{
    if (it->kind == IT_PONG) {
        struct mpt_frame f;
        memset(&f, 0, sizeof f);
        f.type = MPT_FT_PONG;
        f.u.ping.opaque = s->pong_opaque;
        mpt_frame_encode(&f, it->hdr, sizeof it->hdr);
        return;
    }
    if (it->kind == IT_ACK) {
        size_t old = it->hlen;
        mpt_q_encode_ack(c, it);
        s->q_bytes = s->q_bytes - zmin(s->q_bytes, old) + it->hlen;
        return;
    }
    if (it->kind != IT_DATA || it->len == 0)
        return;
    if (mpt_dsn_lt(it->dsn, c->snd_una)) {
        uint64_t end = it->dsn + it->len;
        size_t cut;
        if (mpt_dsn_le(end, c->snd_una)) {
            cut = (size_t)it->hlen + it->len;
            it->len = 0;
            it->hlen = 0;
        } else {
            cut = (size_t)(c->snd_una - it->dsn);
            it->dsn = c->snd_una;
            it->len -= (uint32_t)cut;
        }
        s->q_bytes -= zmin(s->q_bytes, cut);
        s->room += cut;
        if (it->len == 0)
            return;
    }
    mpt_frame_data_header(it->dsn, it->len, it->hdr);
}

int mpt_conn_sf_output(struct mpt_conn *c, int i, struct mpt_iovec *iov, int n, uint64_t now)
{
    struct sf *s;
    int k = 0;

    if (!valid_sf(c, i) || !iov || n <= 0)
        return 0;
    s = &c->sf[i];
    c->now = now;
    if (s->ack_pending && c->rb_ready && s->state != MPT_SF_HANDSHAKE) {
        struct oitem *it = NULL;
        /* an ack still waiting ahead of the data is refreshed, not doubled */
        for (uint32_t j = 0; j < s->q.n; j++) {
            const struct oitem *q = mpt_ring_at(&s->q, j);
            if (q->off == 0 && q->kind == IT_ACK) {
                s->ack_pending = 0;
                break;
            }
            if (q->off == 0 && q->kind == IT_DATA)
                break;
        }
        if (s->ack_pending)
            it = mpt_q_insert_before_data(s);
        if (it) {
            it->kind = IT_ACK;
            it->off = 0;
            it->len = 0;
            it->hlen = 0;
            s->ack_pending = 0;
        }
    }
    for (uint32_t j = 0; j < s->q.n && k < n; j++) {
        struct oitem *it = mpt_ring_at(&s->q, j);
        size_t off = it->off;
        if (off == 0)
            materialize(c, s, it);
        if (off < it->hlen) {
            iov[k].base = it->hdr + off;
            iov[k].len = it->hlen - off;
            k++;
            off = it->hlen;
        }
        if (it->kind == IT_DATA && it->len > 0 && k < n) {
            struct mpt_iovec pv[2];
            size_t poff = off - it->hlen;
            int np;
            if (poff >= it->len)
                continue;
            np = mpt_sendbuf_peek(&c->sb, it->dsn + poff, it->len - poff, pv);
            for (int q = 0; q < np && k < n; q++)
                iov[k++] = pv[q];
        }
    }
    return k;
}

void mpt_conn_sf_sent(struct mpt_conn *c, int i, size_t n, uint64_t now)
{
    struct sf *s;

    if (!valid_sf(c, i))
        return;
    s = &c->sf[i];
    c->now = now;
    if (n > 0)
        s->preamble_len = 0; /* written: it can no longer be taken */
    while (s->q.n) {
        struct oitem *it = mpt_ring_at(&s->q, 0);
        size_t rem = item_total(it) - it->off;
        if (it->kind == IT_PONG && n > 0)
            s->pong_queued = 0; /* started: its opaque is fixed now */
        if (n < rem) {
            it->off += (uint32_t)n;
            s->q_bytes -= zmin(s->q_bytes, n);
            break;
        }
        n -= rem;
        s->q_bytes -= zmin(s->q_bytes, rem);
        if (it->kind == IT_ACK) {
            c->ack_written = it->dsn;
            c->edge_written = it->edge;
            c->st.acks_sent++;
        } else if (it->kind == IT_CTRL && s->ctrl_items) {
            s->ctrl_items--;
        }
        mpt_ring_pop_front(&s->q);
    }
    mpt_snd_release(c);
    mpt_post(c, now);
}
