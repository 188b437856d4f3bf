/*
 * libFuzzer target: a client and a server engine joined by in-memory TCP
 * connections, where the input is the schedule. It decides which bytes cross
 * which connection when and in what chunks, when time advances (and so which
 * timers fire), when a connection is reset or refused, when the client opens
 * another subflow, what the applications write, read and shut down, and
 * which allocation fails (core/alloc.h's hook: one, or every one after it).
 *
 * Oracles, checked after every step (abort on breach):
 *   - what either application reads is exactly a prefix of what the other
 *     wrote (every byte is compared with the writer's pure stream function),
 *     and end of stream comes only after every byte the peer wrote;
 *   - receive and send memory never exceed the configured rcvbuf / sndbuf,
 *     also when allocations fail (an error, never a crash or a leak);
 *   - every byte an engine writes decodes as a valid preamble or frame;
 *   - after the schedule, both applications shut down and the connections
 *     run on a well-behaved network: both engines must end (CLOSED or
 *     ABORTED) within bounded virtual time, and if both closed gracefully
 *     every byte written was read (no hang, no lost byte).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/alloc.h"
#include "core/conn.h"
#include "core/frame.h"
#include "input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NLINKS 6
#define PIPE_CAP (128 * 1024)
#define MS MPT_NS_PER_MS

struct pipe {
    uint8_t *b;
    size_t len;
    int fin; /* the sender closed its socket: EOF once len is 0 */
};

/* Decodes everything an engine writes on one connection, to check it. */
struct shadow {
    uint8_t buf[MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY + MPT_PREAMBLE_MAX_LEN];
    size_t len;
    int pre_done;
};

struct link {
    int used;
    int sf[2];      /* engine subflow index per side, -1: none (closed or not accepted) */
    int accepted;   /* server side passed mpt_server_accept */
    int done[2];    /* that side closed its socket */
    struct pipe p[2]; /* p[s]: bytes written by side s, not yet read by the other */
    uint8_t *rx;    /* server: bytes before and during accept */
    size_t rxlen;
    struct shadow sh[2];
};

struct world {
    struct mpt_core_settings set;
    uint64_t rng;
    struct mpt_server *srv;
    struct mpt_conn *c[2];
    struct mpt_conn *extra[NLINKS]; /* further server connections (a HELLO on a join link) */
    int nextra;
    uint64_t now;
    struct link l[NLINKS];
    uint64_t written[2], readn[2]; /* by the application on side s */
    int shut[2], eof[2], established[2], closed[2], error[2];
};

static uint8_t scratch[PIPE_CAP];

static void xrand(void *user, uint8_t *buf, size_t len)
{
    uint64_t *s = user;
    for (size_t i = 0; i < len; i++) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        buf[i] = (uint8_t)(*s >> 24);
    }
}

static void shadow_feed(struct shadow *sh, const uint8_t *p, size_t n)
{
    while (n) {
        size_t take = sizeof sh->buf - sh->len < n ? sizeof sh->buf - sh->len : n;
        size_t off = 0;

        memcpy(sh->buf + sh->len, p, take);
        sh->len += take;
        p += take;
        n -= take;
        if (!sh->pre_done) {
            struct mpt_preamble pre;
            ssize_t r = mpt_preamble_decode(sh->buf, sh->len, &pre);
            if (r == MPT_EINCOMPLETE)
                continue;
            FZ_CHECK(r > 0);
            off = (size_t)r;
            sh->pre_done = 1;
        }
        for (;;) {
            struct mpt_frame f;
            ssize_t r = mpt_frame_decode(sh->buf + off, sh->len - off, MPT_FRAME_MAX_BODY, &f);
            if (r == MPT_EINCOMPLETE)
                break;
            FZ_CHECK(r > 0);
            off += (size_t)r;
        }
        memmove(sh->buf, sh->buf + off, sh->len - off);
        sh->len -= off;
    }
}

static void check_mem(struct world *w)
{
    for (int s = 0; s < 2; s++) {
        struct mpt_conn_stats st;
        if (!w->c[s])
            continue;
        mpt_conn_get_stats(w->c[s], &st);
        FZ_CHECK(st.rcv_mem <= w->set.rcvbuf);
        FZ_CHECK(st.snd_mem <= w->set.sndbuf);
    }
}

static void drain_events(struct world *w)
{
    struct mpt_event ev;
    for (int s = 0; s < 2; s++)
        while (w->c[s] && mpt_conn_next_event(w->c[s], &ev)) {
            if (ev.type == MPT_EV_ESTABLISHED)
                w->established[s] = 1;
            else if (ev.type == MPT_EV_CLOSED)
                w->closed[s] = 1;
            else if (ev.type == MPT_EV_ERROR) {
                FZ_CHECK(ev.error < 0);
                w->error[s] = ev.error;
            }
        }
    for (int i = 0; i < w->nextra; i++)
        while (mpt_conn_next_event(w->extra[i], &ev))
            ;
}

static struct mpt_conn *conn_of(struct world *w, int side)
{
    return w->c[side];
}

/* Everything each engine wants to write, within each pipe's room; then the
 * sockets of subflows the engine is done with are closed. */
static void pump(struct world *w)
{
    for (int k = 0; k < NLINKS; k++) {
        struct link *l = &w->l[k];
        if (!l->used)
            continue;
        for (int s = 0; s < 2; s++) {
            struct mpt_conn *c = conn_of(w, s);
            struct mpt_iovec iov[8];
            int n;
            enum mpt_sf_state st;

            if (l->sf[s] < 0 || !c)
                continue;
            mpt_conn_sf_set_room(c, l->sf[s], PIPE_CAP - l->p[s].len, w->now);
            while ((n = mpt_conn_sf_output(c, l->sf[s], iov, 8, w->now)) > 0) {
                size_t tot = 0;
                for (int i = 0; i < n && l->p[s].len + iov[i].len <= PIPE_CAP; i++) {
                    memcpy(l->p[s].b + l->p[s].len, iov[i].base, iov[i].len);
                    shadow_feed(&l->sh[s], iov[i].base, iov[i].len);
                    l->p[s].len += iov[i].len;
                    tot += iov[i].len;
                }
                if (!tot)
                    break;
                mpt_conn_sf_sent(c, l->sf[s], tot, w->now);
            }
            st = mpt_conn_sf_state(c, l->sf[s]);
            if (st == MPT_SF_FAILED || st == MPT_SF_CLOSED) {
                FZ_CHECK(mpt_conn_sf_release(c, l->sf[s]) == 0);
                l->sf[s] = -1;
                l->done[s] = 1;
                l->p[s].fin = 1;
            }
        }
    }
    for (int k = 0; k < NLINKS; k++) {
        struct link *l = &w->l[k];
        if (l->used && l->done[0] && l->done[1] && !l->p[0].len && !l->p[1].len) {
            free(l->p[0].b);
            free(l->p[1].b);
            free(l->rx);
            memset(l, 0, sizeof *l);
            l->sf[0] = l->sf[1] = -1;
        }
    }
    drain_events(w);
    check_mem(w);
}

/* The TCP connection of link k is reset: both ends learn at once. */
static void link_reset(struct world *w, int k, int err)
{
    struct link *l = &w->l[k];
    for (int s = 0; s < 2; s++) {
        if (l->sf[s] >= 0 && conn_of(w, s))
            mpt_conn_sf_failed(conn_of(w, s), l->sf[s], err, w->now);
        l->p[s].len = 0;
        l->p[s].fin = 1;
    }
    l->done[1] = l->done[1] || !l->accepted;
}

static void server_rx(struct world *w, int k, const uint8_t *p, size_t n)
{
    struct link *l = &w->l[k];
    if (!l->accepted) {
        struct mpt_accept a;
        int r;

        memcpy(l->rx + l->rxlen, p, n);
        l->rxlen += n;
        r = mpt_server_accept(w->srv, l->rx, l->rxlen, w->now, &a);
        if (r == MPT_EINCOMPLETE)
            return;
        if (r < 0) {
            FZ_CHECK(a.reply_len <= sizeof a.reply);
            memcpy(l->p[1].b + l->p[1].len, a.reply, a.reply_len);
            l->p[1].len += a.reply_len;
            l->p[1].fin = 1;
            l->done[1] = 1;
            l->accepted = -1;
            return;
        }
        if (a.is_new && w->c[1] && a.conn != w->c[1]) {
            /* another connection (the client does not make one, but nothing
             * forbids it): kept aside, its subflow reset */
            w->extra[w->nextra++] = a.conn;
            mpt_conn_sf_failed(a.conn, a.sf, MPT_ECONNRESET, w->now);
            link_reset(w, k, MPT_ECONNRESET);
            l->accepted = -1;
            return;
        }
        FZ_CHECK(a.is_new || a.conn == w->c[1]);
        w->c[1] = a.conn;
        l->accepted = 1;
        l->sf[1] = a.sf;
        FZ_CHECK(a.consumed <= l->rxlen);
        p = l->rx + a.consumed;
        n = l->rxlen - a.consumed;
        l->rxlen = 0;
    }
    if (l->sf[1] >= 0 && n)
        (void)mpt_conn_sf_input(w->c[1], l->sf[1], p, n, w->now);
}

/* Moves up to n bytes of link k from side `from` to the other side. */
static void deliver(struct world *w, int k, int from, size_t n)
{
    struct link *l = &w->l[k];
    struct pipe *p = &l->p[from];
    int to = 1 - from;

    if (!l->used)
        return;
    if (n > p->len)
        n = p->len;
    if (n) {
        memcpy(scratch, p->b, n);
        memmove(p->b, p->b + n, p->len - n);
        p->len -= n;
        if (to == 1 && l->accepted >= 0 && !l->done[1])
            server_rx(w, k, scratch, n);
        else if (to == 0 && l->sf[0] >= 0) {
            ssize_t r = mpt_conn_sf_input(w->c[0], l->sf[0], scratch, n, w->now);
            FZ_CHECK(r == (ssize_t)n || r < 0);
        }
    }
    if (!p->len && p->fin && l->sf[to] >= 0) {
        mpt_conn_sf_failed(conn_of(w, to), l->sf[to], MPT_ECLOSED, w->now);
        p->fin = 0;
    }
    if (!p->len && p->fin && to == 1 && !l->accepted)
        l->done[1] = 1;
    if (!p->len)
        p->fin = 0; /* EOF delivered, or nobody left to deliver it to */
}

static int open_link(struct world *w, uint8_t addr_id, int backup, int refuse)
{
    int k, sf;

    for (k = 0; k < NLINKS && w->l[k].used; k++)
        ;
    if (k == NLINKS || !w->c[0])
        return -1;
    sf = mpt_conn_add_subflow(w->c[0], addr_id, backup, w->now);
    if (sf < 0)
        return -1;
    if (refuse) {
        mpt_conn_sf_failed(w->c[0], sf, MPT_ECONNREFUSED, w->now);
        (void)mpt_conn_sf_release(w->c[0], sf);
        return -1;
    }
    memset(&w->l[k], 0, sizeof w->l[k]);
    w->l[k].used = 1;
    w->l[k].sf[0] = sf;
    w->l[k].sf[1] = -1;
    w->l[k].sh[1].pre_done = 1; /* only the client writes a preamble */
    w->l[k].p[0].b = malloc(PIPE_CAP);
    w->l[k].p[1].b = malloc(PIPE_CAP);
    w->l[k].rx = malloc(PIPE_CAP);
    FZ_CHECK(w->l[k].p[0].b && w->l[k].p[1].b && w->l[k].rx);
    (void)mpt_conn_sf_connected(w->c[0], sf, w->now);
    return k;
}

static void app_write(struct world *w, int s, size_t n)
{
    ssize_t r;
    if (!w->c[s])
        return;
    for (size_t i = 0; i < n; i++)
        scratch[i] = fz_stream_byte(s, w->written[s] + i);
    r = mpt_conn_send(w->c[s], scratch, n, w->now);
    if (r > 0) {
        FZ_CHECK((size_t)r <= n);
        FZ_CHECK(!w->shut[s]);
        w->written[s] += (uint64_t)r;
    }
}

static void app_read(struct world *w, int s, size_t n)
{
    ssize_t r;
    if (!w->c[s] || !n)
        return;
    r = mpt_conn_recv(w->c[s], scratch, n, w->now);
    if (r > 0) {
        FZ_CHECK((size_t)r <= n);
        FZ_CHECK(!w->eof[s]);
        for (ssize_t i = 0; i < r; i++)
            FZ_CHECK(scratch[i] == fz_stream_byte(1 - s, w->readn[s] + (uint64_t)i));
        w->readn[s] += (uint64_t)r;
        FZ_CHECK(w->readn[s] <= w->written[1 - s]);
    } else if (r == 0) {
        /* end of stream: the peer shut down after its last byte, all read */
        FZ_CHECK(w->shut[1 - s]);
        FZ_CHECK(w->readn[s] == w->written[1 - s]);
        w->eof[s] = 1;
    }
}

static void advance(struct world *w, uint64_t dt)
{
    w->now += dt;
    for (int s = 0; s < 2; s++)
        if (w->c[s] && mpt_conn_next_timeout(w->c[s]) <= w->now)
            mpt_conn_handle_timeout(w->c[s], w->now);
    for (int i = 0; i < w->nextra; i++)
        if (mpt_conn_next_timeout(w->extra[i]) <= w->now)
            mpt_conn_handle_timeout(w->extra[i], w->now);
}

static int finished(const struct world *w, int s)
{
    enum mpt_conn_state st;
    if (!w->c[s])
        return 1;
    st = mpt_conn_state(w->c[s]);
    return st == MPT_CONN_CLOSED || st == MPT_CONN_ABORTED;
}

/* After the schedule: shut down, then a network that delivers everything
 * and time that only moves forward. Both ends must finish. */
static void settle(struct world *w)
{
    uint64_t limit = w->now + 600 * 1000 * MS;

    mpt_alloc_fail_at(0, 0); /* the network and the allocator behave from now on */

    for (int s = 0; s < 2; s++)
        if (w->c[s] && !w->shut[s] && mpt_conn_shutdown(w->c[s], w->now) == 0)
            w->shut[s] = 1;
    pump(w);
    while (!(finished(w, 0) && finished(w, 1))) {
        uint64_t t = MPT_TIME_NEVER;
        int moved = 0;

        FZ_CHECK(w->now < limit);
        /* a connection still in its handshake cannot shut down yet */
        for (int s = 0; s < 2; s++)
            if (w->c[s] && !w->shut[s] && mpt_conn_shutdown(w->c[s], w->now) == 0)
                w->shut[s] = 1;
        for (int k = 0; k < NLINKS; k++)
            for (int s = 0; s < 2; s++)
                if (w->l[k].used && (w->l[k].p[s].len || w->l[k].p[s].fin)) {
                    deliver(w, k, s, PIPE_CAP);
                    moved = 1;
                }
        for (int s = 0; s < 2; s++)
            for (;;) {
                uint64_t before = w->readn[s];
                app_read(w, s, sizeof scratch);
                if (w->readn[s] == before)
                    break;
            }
        pump(w);
        if (moved)
            continue;
        for (int s = 0; s < 2; s++)
            if (w->c[s] && mpt_conn_next_timeout(w->c[s]) < t)
                t = mpt_conn_next_timeout(w->c[s]);
        if (t == MPT_TIME_NEVER)
            break;
        advance(w, t > w->now ? t - w->now : 1);
        pump(w);
    }
    for (int s = 0; s < 2; s++)
        app_read(w, s, sizeof scratch);
    if (getenv("FZ_DEBUG"))
        fprintf(stderr, "fuzz_pair: t=%llu ms written %llu/%llu read %llu/%llu closed %d/%d error %d/%d\n",
                (unsigned long long)(w->now / MS), (unsigned long long)w->written[0],
                (unsigned long long)w->written[1], (unsigned long long)w->readn[1],
                (unsigned long long)w->readn[0], w->closed[0], w->closed[1], w->error[0], w->error[1]);
    FZ_CHECK(finished(w, 0) && finished(w, 1));
    if (w->closed[0] && w->closed[1] && w->c[0] && w->c[1]) {
        for (int s = 0; s < 2; s++)
            FZ_CHECK(w->readn[s] == w->written[1 - s]);
    }
}

static void world_free(struct world *w)
{
    if (w->c[0])
        mpt_conn_free(w->c[0]);
    if (w->c[1])
        mpt_conn_free(w->c[1]);
    for (int i = 0; i < w->nextra; i++)
        mpt_conn_free(w->extra[i]);
    mpt_server_free(w->srv);
    for (int k = 0; k < NLINKS; k++) {
        free(w->l[k].p[0].b);
        free(w->l[k].p[1].b);
        free(w->l[k].rx);
    }
}

static void step(struct world *w, struct fz_in *in)
{
    unsigned op = fz_u8(in);
    int k = (int)(fz_u8(in) % NLINKS), s = (int)(op >> 7);

    switch (op & 0x0f) {
    case 0: /* deliver a chunk */
    case 1:
        deliver(w, k, s, (size_t)fz_u16(in) + 1);
        break;
    case 2: /* deliver everything on a link */
        deliver(w, k, s, PIPE_CAP);
        break;
    case 3: /* time: up to 65 s */
        advance(w, (uint64_t)fz_u16(in) * MS);
        break;
    case 4:
        advance(w, (uint64_t)fz_u8(in) * MS / 4 + 1);
        break;
    case 5:
        app_write(w, s, fz_u16(in) % 20000 + 1);
        break;
    case 6:
        app_read(w, s, fz_u16(in) + 1);
        break;
    case 7:
        if (w->l[k].used)
            link_reset(w, k, (op & 0x10) ? MPT_ECONNRESET : MPT_ETIMEDOUT);
        break;
    case 8:
        (void)open_link(w, (uint8_t)(fz_u8(in) % 4), (op >> 4) & 1, (op >> 5) & 1);
        break;
    case 9:
        if (w->c[s] && mpt_conn_shutdown(w->c[s], w->now) == 0)
            w->shut[s] = 1;
        break;
    case 10:
        if (w->c[s] && (op & 0x70) == 0x70)
            (void)mpt_conn_abort(w->c[s], fz_u8(in), w->now);
        else if ((op & 0x70) == 0x10) { /* an allocation soon fails, maybe all after it */
            unsigned v = fz_u8(in);
            mpt_alloc_fail_at((v & 0x7f) + 1, v >> 7);
        } else if ((op & 0x70) == 0x20)
            mpt_alloc_fail_at(0, 0);
        break;
    case 11:
        if (w->c[s])
            (void)mpt_conn_set_rcv_limit(w->c[s], (size_t)fz_u16(in) * 4);
        break;
    case 12:
        if (w->c[s] && w->l[k].sf[s] >= 0)
            (void)mpt_conn_sf_close(w->c[s], w->l[k].sf[s], fz_u8(in) % 8, w->now);
        break;
    case 13:
        if (w->c[s] && w->l[k].sf[s] >= 0)
            (void)mpt_conn_sf_set_backup(w->c[s], w->l[k].sf[s], (op >> 4) & 1, w->now);
        break;
    case 14:
        if (w->c[1]) {
            uint8_t a4[4] = {192, 0, 2, (uint8_t)k};
            if (op & 0x10)
                (void)mpt_conn_remove_addr(w->c[1], (uint8_t)(k + 1), w->now);
            else
                (void)mpt_conn_add_addr(w->c[1], (uint8_t)(k + 1), 4, a4, 443, w->now);
        }
        break;
    default: /* a round of "everything arrives" */
        for (int j = 0; j < NLINKS; j++)
            for (int d = 0; d < 2; d++)
                deliver(w, j, d, PIPE_CAP);
        break;
    }
    pump(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct world w;
    struct fz_in in = {data, size, 0};
    unsigned cfg = fz_u8(&in);

    mpt_alloc_fail_at(0, 0);
    memset(&w, 0, sizeof w);
    w.rng = 0x9e3779b97f4a7c15ull;
    mpt_core_settings_default(&w.set);
    w.set.rand = xrand;
    w.set.rand_user = &w.rng;
    /* small buffers so that windows, limits and wrap-around are reached */
    w.set.sndbuf = (cfg & 1) ? 8192 : 64 * 1024;
    w.set.rcvbuf = (cfg & 2) ? 4096 : 48 * 1024;
    w.set.max_frame_payload = (cfg & 4) ? 700 : 16384;
    w.set.max_subflows = 2 + (cfg >> 6);
    w.now = 1000 * MS;
    for (int k = 0; k < NLINKS; k++)
        w.l[k].sf[0] = w.l[k].sf[1] = -1;
    if (mpt_server_new(&w.set, &w.srv) != 0 || mpt_conn_client_new(&w.set, w.now, &w.c[0]) != 0)
        abort();
    (void)open_link(&w, 0, 0, 0);
    pump(&w);
    for (int steps = 0; fz_more(&in) && steps < 2000; steps++)
        step(&w, &in);
    settle(&w);
    world_free(&w);
    return 0;
}
