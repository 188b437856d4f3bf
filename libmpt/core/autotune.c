/*
 * Buffer auto-tuning: the receive window and the send buffer start small
 * (settings.rcvbuf_initial, sndbuf_initial) and grow, up to rcvbuf and
 * sndbuf, to what the measured rate and round trip need; the buffers of an
 * idle connection are freed. A fixed 4 MiB was too small for a fast long
 * path and too large for the thousands of idle or slow connections of a
 * server.
 *
 * RECEIVE WINDOW (like Linux's receive-buffer auto-tuning, "DRS"). Over an
 * interval of at least H = the largest end-to-end RTT of the established
 * subflows + the 90th percentile of the reorder delay + 1 ms of scheduling
 * slack, the bytes the application consumed give a rate; the window
 * needed is 2 x rate x H: the bytes that arrive in one such horizon, with
 * room for the sender to double its rate in the next one; while the rate
 * is still rising (the subflows in slow start), times the rise since the
 * previous interval (up to 2 more), because the measurement lags one
 * interval behind the sender (Linux does the same). A window that limits
 * the sender is consumed whole every round trip, so it at least doubles
 * each interval until something else limits the rate; an
 * application that does not read keeps the window where it is. The ring
 * buffer grows with it (mpt_rcvbuf_grow copies what it holds). The window
 * never shrinks while data flows (the right edge never retreats anyway).
 *
 * SEND BUFFER. When the application writes more than the buffer has room
 * for, it grows to twice the peer's current window (the bytes that may be
 * in flight, and as many again waiting so the scheduler always has data),
 * within [sndbuf_initial, sndbuf].
 *
 * IDLE. Nothing received, read or written for MPT_BUF_IDLE_CHECK (1 s): the
 * memory of each buffer that is empty is freed (allocated again on the next byte) and the
 * window starts again from rcvbuf_initial. The receive ring comes back at
 * least as large as the window already advertised, which never retreats.
 */
#include "conn_int.h"

#include "alloc.h"

#define RWIN_SLACK (1 * MPT_NS_PER_MS)
#define RWIN_RTT_UNKNOWN (100 * MPT_NS_PER_MS)
#define BUF_ROUND ((size_t)64 << 10)

static size_t initial_of(size_t initial, size_t max)
{
    return initial == 0 || initial > max ? max : initial;
}

size_t mpt_rwin_initial(const struct mpt_conn *c)
{
    return initial_of(c->s.rcvbuf_initial, c->s.rcvbuf);
}

size_t mpt_sbuf_initial(const struct mpt_conn *c)
{
    return initial_of(c->s.sndbuf_initial, c->s.sndbuf);
}

static size_t round_up(uint64_t n, size_t max)
{
    uint64_t r = (n + BUF_ROUND - 1) / BUF_ROUND * BUF_ROUND;

    return r > max ? max : (size_t)r;
}

/* The horizon H of a rate measurement (see above), ns. */
static uint64_t rwin_horizon(const struct mpt_conn *c)
{
    uint64_t rtt = 0, reorder = 0;

    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        uint64_t r;
        if (s->state != MPT_SF_ESTABLISHED)
            continue;
        r = mpt_sf_e2e_rtt(s);
        if (r > rtt)
            rtt = r;
    }
    if (rtt == 0)
        rtt = RWIN_RTT_UNKNOWN;
    if (mpt_reorder_samples(&c->reorder))
        reorder = mpt_reorder_quantile(&c->reorder, 900);
    return rtt + reorder + RWIN_SLACK;
}

void mpt_rwin_on_read(struct mpt_conn *c, uint64_t now)
{
    uint64_t h, el, copied;
    unsigned __int128 need, per_h;
    size_t w;

    c->buf_active_at = now;
    if (c->rcv_win >= c->s.rcvbuf)
        return;
    if (!c->rwin_started) {
        c->rwin_started = 1;
        c->rwin_t0 = now;
        c->rwin_read0 = c->rb.read;
        return;
    }
    h = rwin_horizon(c);
    el = now - c->rwin_t0;
    if (el < h)
        return;
    copied = c->rb.read - c->rwin_read0;
    c->rwin_t0 = now;
    c->rwin_read0 = c->rb.read;
    per_h = (unsigned __int128)copied * h / el;
    need = 2 * per_h;
    if (c->rwin_prev && per_h > c->rwin_prev) /* still speeding up: by as much again */
        need = per_h >= 2 * (unsigned __int128)c->rwin_prev ? 2 * need
                                                            : need * per_h / c->rwin_prev;
    c->rwin_prev = per_h > UINT64_MAX ? UINT64_MAX : (uint64_t)per_h;
    if (need <= c->rcv_win)
        return;
    w = round_up(need > UINT64_MAX ? UINT64_MAX : (uint64_t)need, c->s.rcvbuf);
    if (w > c->rb.cap && mpt_rcvbuf_grow(&c->rb, w) < 0) {
        c->st.buf_grow_failed++;
        w = c->rb.cap; /* out of memory: keep what there is, try again later */
    }
    if (w > c->rcv_win) {
        c->rcv_win = w;
        c->st.rwin_grown++;
    }
}

void mpt_sbuf_want(struct mpt_conn *c)
{
    uint64_t wnd = mpt_dsn_gt(c->snd_edge, c->snd_una) ? c->snd_edge - c->snd_una : 0;
    size_t want = round_up(2 * wnd, c->s.sndbuf);

    if (want <= c->sb.cap)
        return;
    if (mpt_sendbuf_grow(&c->sb, want) < 0)
        c->st.buf_grow_failed++;
}

void mpt_bufs_idle(struct mpt_conn *c, uint64_t now)
{
    if (now - c->buf_active_at < MPT_BUF_IDLE_CHECK)
        return;
    c->buf_active_at = now; /* looked at: next look in MPT_BUF_IDLE_CHECK */
    if (c->rb_ready && (c->rb.buf || c->rb.bits)) {
        size_t init = mpt_rwin_initial(c);
        uint64_t open = mpt_dsn_gt(c->adv_edge, c->rb.read) ? c->adv_edge - c->rb.read : 0;
        if (mpt_rcvbuf_trim(&c->rb, open > init ? (size_t)open : init)) {
            c->rcv_win = init;
            c->rwin_started = 0;
            c->rwin_prev = 0;
            c->st.bufs_freed++;
        }
    }
    if (c->sb.buf && mpt_sendbuf_trim(&c->sb, mpt_sbuf_initial(c)))
        c->st.bufs_freed++;
}
