/* The receive side: DATA and DATA_FIN input, the values acks carry, and
 * mpt_conn_recv.
 *
 * RECEIVE SIDE (rcvbuf.c). A byte ring of W bytes (the receive window,
 * grown by autotune.c from rcvbuf_initial towards rcvbuf) indexed by DSN
 * covers [read, read + W) and the right edge advertised is read + W (never
 * retreating: `read` only grows and W only grows while data flows). So
 * out-of-order data is copied once, straight to its final place; a presence
 * bitmap records what is held above the cumulative point. Memory (in-order +
 * out-of-order) can never exceed W <= rcvbuf and acknowledged data is never
 * dropped; a peer exceeding the edge gets ERROR(FLOW) + FASTCLOSE (EFLOW).
 * The ring is malloc'ed (not touched), so a large window costs resident
 * memory only as it is used, and an idle connection frees it. Under memory
 * pressure the caller lowers the window with mpt_conn_set_rcv_limit(): the
 * edge stops advancing until the application has read past it, so memory
 * shrinks without retreating the edge or dropping anything acknowledged. The
 * bitmap costs W / 8 bytes: any in-window pattern fits, nothing inside the
 * window is ever dropped.
 */
#include "conn_int.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

uint64_t mpt_rcv_ack_value(const struct mpt_conn *c)
{
    return c->rb.nxt + (c->rfin_consumed ? 1 : 0);
}

/* The right edge we would advertise now, before the never-retreat rule. */
uint64_t mpt_rcv_edge_target(const struct mpt_conn *c)
{
    size_t w = c->rcv_win < c->rb.cap ? c->rcv_win : c->rb.cap; /* autotune.c */

    if (c->rcv_limit && c->rcv_limit < w)
        w = c->rcv_limit;
    if (w > MAX_WINDOW)
        w = MAX_WINDOW;
    return c->rb.read + w;
}

uint64_t mpt_rcv_edge(const struct mpt_conn *c)
{
    return mpt_dsn_max(mpt_rcv_edge_target(c), c->adv_edge);
}

static void try_consume_fin(struct mpt_conn *c, uint64_t now)
{
    if (c->rfin_known && !c->rfin_consumed && c->rb.nxt == c->rfin_dsn) {
        c->rfin_consumed = 1;
        mpt_enter_closing(c, now);
        mpt_ev_push(c, MPT_EV_READABLE, -1, 0, 0);
        c->ack_needed = 1;
    }
}

/* The application took bytes: ack early if the window opened a lot or
 * was nearly closed (a peer waiting on it should not wait for a timer). */
static void rcv_window_opened(struct mpt_conn *c)
{
    uint64_t edge = mpt_rcv_edge_target(c);
    size_t open_by = mpt_dsn_gt(edge, c->adv_edge) ? (size_t)(edge - c->adv_edge) : 0;
    size_t wnd = mpt_dsn_gt(c->adv_edge, c->rb.nxt) ? (size_t)(c->adv_edge - c->rb.nxt) : 0;

    c->st.rcv_mem = mpt_rcvbuf_mem(&c->rb);
    if (open_by && (open_by >= c->rcv_win / 4 || wnd < 2 * (size_t)c->s.max_frame_payload) &&
        !c->rfin_consumed)
        c->ack_needed = 1;
}

ssize_t mpt_conn_recv(struct mpt_conn *c, void *buf, size_t len, uint64_t now)
{
    size_t n;

    if (!c || (!buf && len))
        return MPT_EINVAL;
    c->now = now;
    if (mpt_rcvbuf_lent(&c->rb))
        return MPT_EAGAIN; /* earlier bytes wait in the lent buffer */
    if (c->state == MPT_CONN_ABORTED)
        return c->error;
    if (!c->rb_ready)
        return c->state == MPT_CONN_HANDSHAKE ? MPT_EAGAIN : MPT_ESTATE;
    n = mpt_rcvbuf_read(&c->rb, buf, len);
    if (n > 0) {
        mpt_rwin_on_read(c, now);
        rcv_window_opened(c);
        mpt_post(c, now);
        return (ssize_t)n;
    }
    if (len == 0)
        return 0;
    if (c->rfin_consumed)
        return 0;
    return MPT_EAGAIN;
}

/* The loan reaches the ring buffer once it is set up and nothing is readable. */
static void lend_apply(struct mpt_conn *c)
{
    if (c->lend_buf && !c->rb.lend && c->rb_ready && mpt_rcvbuf_readable(&c->rb) == 0)
        (void)mpt_rcvbuf_lend(&c->rb, c->lend_buf, c->lend_len);
}

int mpt_conn_recv_lend(struct mpt_conn *c, void *buf, size_t len)
{
    if (!c || !buf || !len)
        return MPT_EINVAL;
    if (c->lend_buf)
        return MPT_ESTATE;
    c->lend_buf = buf;
    c->lend_len = len;
    lend_apply(c);
    return 0;
}

int mpt_conn_recv_lend_full(const struct mpt_conn *c)
{
    return c && c->lend_buf && mpt_rcvbuf_lent(&c->rb) == c->lend_len;
}

int mpt_conn_recv_next_sf(const struct mpt_conn *c)
{
    if (!c || !c->rb.lend || mpt_rcvbuf_lent(&c->rb) == c->rb.lend_len)
        return -1;
    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        if (s->rx_seen && s->rx_next == c->rb.nxt && s->state < MPT_SF_FAILED)
            return i;
    }
    return -1;
}

size_t mpt_conn_recv_read_hint(const struct mpt_conn *c, int i)
{
    uint64_t end, at;

    if (!c || i < 0 || i >= c->nslots || !c->rb.lend || !c->sf[i].rx_seen ||
        mpt_rcvbuf_lent(&c->rb) == c->rb.lend_len)
        return 0;
    end = c->rb.lend_base + c->rb.lend_len;
    at = c->sf[i].rx_next;
    if (mpt_dsn_lt(at, c->rb.nxt) || !mpt_dsn_lt(at, end))
        return 0;
    /* its bytes go on from inside the loan: up to its end, with room for
     * the frame headers on the way (more would go through the ring) */
    return (size_t)(end - at) + (size_t)(end - at) / 256 + MPT_DATA_HDR_LEN;
}

size_t mpt_conn_recv_lent(const struct mpt_conn *c)
{
    return c && c->lend_buf ? mpt_rcvbuf_lent(&c->rb) : 0;
}

int mpt_conn_recv_lend_waiting(const struct mpt_conn *c)
{
    return c && c->lend_buf && mpt_rcvbuf_lend_waiting(&c->rb);
}

size_t mpt_conn_recv_unlend(struct mpt_conn *c, uint64_t now)
{
    size_t got;

    if (!c || !c->lend_buf)
        return 0;
    got = mpt_rcvbuf_unlend(&c->rb);
    c->lend_buf = NULL;
    c->lend_len = 0;
    if (got) {
        c->now = now;
        mpt_post(c, now);
    }
    return got;
}

int mpt_conn_set_rcv_limit(struct mpt_conn *c, size_t limit)
{
    if (!c)
        return MPT_EINVAL;
    c->rcv_limit = limit;
    return 0;
}

/* Stores a DATA payload: into a lent buffer (mpt_conn_recv_lend) what falls
 * inside it, the rest in the ring. */
static int store(struct mpt_conn *c, const struct mpt_frame *f, size_t *dup, uint64_t now)
{
    uint64_t read = c->rb.read;
    int r;

    lend_apply(c);
    r = mpt_rcvbuf_insert(&c->rb, f->u.data.dsn, f->u.data.payload, f->u.data.len, c->adv_edge,
                          dup);
    if (c->rb.read != read) {
        /* in-order bytes landed in the lent buffer */
        mpt_rwin_on_read(c, now);
        rcv_window_opened(c);
    }
    return r;
}

int mpt_rcv_on_data(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now,
                    int *got_data)
{
    struct sf *s = &c->sf[i];
    uint64_t old = c->rb.nxt, end = f->u.data.dsn + f->u.data.len;
    size_t dup = 0;
    int r;

    s->bytes_received += f->u.data.len;
    s->rx_next = end;
    s->rx_seen = 1;
    if ((c->rfin_known && mpt_dsn_gt(end, c->rfin_dsn)))
        return mpt_proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
    c->buf_active_at = now;
    r = store(c, f, &dup, now);
    if (r == MPT_EFLOW)
        return mpt_proto_violation(c, i, MPT_EFLOW, MPT_REASON_FLOW, f->type, now);
    if (r == MPT_EPROTO)
        return mpt_proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
    if (r < 0)
        return mpt_proto_violation(c, i, r, MPT_REASON_RESOURCE, f->type, now);
    c->st.dup_bytes_dropped += dup;
    if (dup)
        c->ack_all = 1;
    *got_data = 1;
    if (dup < f->u.data.len)
        mpt_reorder_on_frame(&c->reorder, end, c->rb.nxt, now);
    if (c->rb.nxt != old) {
        mpt_reorder_on_advance(&c->reorder, c->rb.nxt, now);
        c->st.bytes_received += c->rb.nxt - old;
        mpt_ev_push(c, MPT_EV_READABLE, -1, 0, 0);
    }
    {
        size_t m = mpt_rcvbuf_mem(&c->rb);
        if (m > c->st.rcv_mem_peak)
            c->st.rcv_mem_peak = m;
    }
    try_consume_fin(c, now);
    return 0;
}

int mpt_rcv_on_data_fin(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now,
                        int *got_data)
{
    if (c->rfin_known) {
        if (f->u.data_fin.dsn != c->rfin_dsn)
            return mpt_proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
    } else {
        /* 9.7: placed by its distance from the cumulative point (9.1);
         * before data already received (in order or not) is a protocol
         * error; beyond the advertised right edge a flow violation; at
         * the right edge it is fine (it needs no buffer space). */
        uint64_t ahead = f->u.data_fin.dsn - c->rb.nxt;
        if (ahead >= ((uint64_t)1 << 63) || mpt_dsn_lt(f->u.data_fin.dsn, c->rb.ooo_end))
            return mpt_proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
        if (ahead > c->adv_edge - c->rb.nxt)
            return mpt_proto_violation(c, i, MPT_EFLOW, MPT_REASON_FLOW, f->type, now);
        c->rfin_known = 1;
        c->rfin_dsn = f->u.data_fin.dsn;
        mpt_enter_closing(c, now);
    }
    *got_data = 1;
    try_consume_fin(c, now);
    return 0;
}
