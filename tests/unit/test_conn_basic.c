/*
 * Two engines back to back: a client and a server connection wired with
 * in-memory byte pipes per subflow (no simulator). Covers the handshake,
 * transfers both ways over one and two subflows, join refusals (bad HMAC in
 * either direction, unknown token, replay, subflow limit), subflow failure
 * with reinjection, flow control bounds, FASTCLOSE and graceful close in
 * every order. With TLS keying (doc/protocol.md 6.5, the I/O layer's TLS
 * stood in for by the secrets and bindings it would export): joins and
 * ADD_ADDR bound to the secret, a join without it or relayed across two TLS
 * sessions refused, and an observer who recorded the first subflow's
 * plaintext (keys included) forging a join: accepted without TLS, refused
 * with it.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/conn.h"
#include "core/conn_int.h" /* abort_text: a FASTCLOSE with text */
#include "core/crypto.h"
#include "core/frame.h"

#define MAXL 8

struct pipe {
    uint8_t *buf;
    size_t len, cap;
};

struct link {
    int used;
    int csf, ssf;      /* indexes on each side; ssf -1 until accepted */
    int refused;       /* server refused: reply delivered, link dead */
    int refuse_err;
    int broken;        /* drops everything */
    int held;          /* delivers nothing for now (a very slow path) */
    int partial;       /* the socket takes only part of each write */
    int stuck;         /* the socket takes nothing more (blackholed, buffer full) */
    struct pipe c2s, s2c;
    /* tampering: flip byte at absolute offset in the s2c / c2s stream */
    long tamper_s2c, tamper_c2s;
    size_t s2c_total, c2s_total;
    uint8_t first_c2s[256]; /* first bytes the client sent (preamble + JOIN) */
    size_t first_c2s_len;
    uint8_t first_s2c[256]; /* and the server's */
    size_t first_s2c_len;
    /* TLS keying: each end's exporter of this subflow's own session (they
     * differ when someone relays between two TLS sessions) */
    uint8_t cbind[MPT_SECRET_LEN], sbind[MPT_SECRET_LEN];
};

struct world {
    struct mpt_core_settings cs, ss;
    struct mpt_server *srv;
    struct mpt_conn *cli, *sc;
    struct link l[MAXL];
    uint64_t now;
    uint64_t rng;
    /* transfer state */
    size_t c_to_send, s_to_send, c_sent, s_sent, c_recvd, s_recvd;
    int c_eof, s_eof;
    int c_read, s_read; /* applications read? */
    uint64_t c_pat, s_pat;
    int c_events[16], s_events[16];
    int last_c_err, last_s_err;
    size_t room;
    int tls;                                   /* TLS keying in force */
    uint8_t csec[MPT_SECRET_LEN], ssec[MPT_SECRET_LEN]; /* each end's connection exporter */
};

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

/* byte i of a stream with pattern seed p */
static uint8_t pat(uint64_t p, size_t i)
{
    uint64_t x = (i / 8) * 0x9E3779B97F4A7C15ull + p;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (uint8_t)(x >> ((i % 8) * 8));
}

static void pipe_push(struct pipe *p, const void *d, size_t n)
{
    if (p->len + n > p->cap) {
        p->cap = (p->len + n) * 2 + 4096;
        p->buf = realloc(p->buf, p->cap);
        ck_assert_ptr_nonnull(p->buf);
    }
    memcpy(p->buf + p->len, d, n);
    p->len += n;
}

static void pipe_consume(struct pipe *p, size_t n)
{
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
}

static uint64_t seed_ctr = 1;

static void world_init(struct world *w)
{
    memset(w, 0, sizeof *w);
    w->rng = 0x1234567ull + seed_ctr++ * 7919;
    mpt_core_settings_default(&w->cs);
    w->cs.rand = xrand;
    w->cs.rand_user = &w->rng;
    w->ss = w->cs;
    w->now = 1000 * MPT_NS_PER_MS;
    w->c_pat = 11;
    w->s_pat = 22;
    w->c_read = w->s_read = 1;
    w->room = 256 * 1024;
    for (int i = 0; i < MAXL; i++) {
        w->l[i].tamper_s2c = -1;
        w->l[i].tamper_c2s = -1;
        memset(w->l[i].cbind, 0x40 + i, MPT_SECRET_LEN);
        memset(w->l[i].sbind, 0x40 + i, MPT_SECRET_LEN);
    }
    memset(w->csec, 0x5e, MPT_SECRET_LEN);
    memset(w->ssec, 0x5e, MPT_SECRET_LEN);
}

static void world_start(struct world *w)
{
    if (w->tls) {
        w->cs.tls = 1;
        w->ss.tls = w->ss.accept_tls = 1;
    }
    ck_assert_int_eq(mpt_server_new(&w->ss, &w->srv), 0);
    ck_assert_int_eq(mpt_conn_client_new(&w->cs, w->now, &w->cli), 0);
    if (w->tls) /* the first subflow's TLS ran before any frame is read */
        ck_assert_int_eq(mpt_conn_set_secret(w->cli, w->csec), 0);
}

static void world_free(struct world *w)
{
    if (w->cli)
        mpt_conn_free(w->cli);
    if (w->sc)
        mpt_conn_free(w->sc);
    mpt_server_free(w->srv);
    for (int i = 0; i < MAXL; i++) {
        free(w->l[i].c2s.buf);
        free(w->l[i].s2c.buf);
    }
}

/* open a subflow from the client: returns link index */
static int open_link(struct world *w, uint8_t addr_id, int backup)
{
    int li, sf = mpt_conn_add_subflow(w->cli, addr_id, backup, w->now);

    if (sf < 0)
        return sf;
    for (li = 0; li < MAXL && w->l[li].used; li++)
        ;
    ck_assert_int_lt(li, MAXL);
    w->l[li].used = 1;
    w->l[li].csf = sf;
    w->l[li].ssf = -1;
    ck_assert_int_eq(mpt_conn_sf_connected(w->cli, sf, w->now), 0);
    if (w->tls && li > 0)
        ck_assert_int_eq(mpt_conn_sf_set_binding(w->cli, sf, w->l[li].cbind), 0);
    return li;
}

static int drain_out(struct world *w, struct mpt_conn *c, int sf, struct link *l, int to_server)
{
    struct mpt_iovec iov[16];
    int any = 0, n;

    if (!c || sf < 0)
        return 0;
    /* like an I/O layer: a socket of a dead subflow is closed, not drained */
    if (l->stuck || (l->broken && mpt_conn_sf_state(c, sf) >= MPT_SF_FAILED))
        return 0;
    while ((n = mpt_conn_sf_output(c, sf, iov, 16, w->now)) > 0) {
        size_t tot = 0, want = 0;
        if (l->partial) {
            for (int i = 0; i < n; i++)
                want += iov[i].len;
            want = want / 2 + 1;
            for (int i = 0; i < n; i++) {
                if (iov[i].len >= want) {
                    iov[i].len = want;
                    n = i + 1;
                    break;
                }
                want -= iov[i].len;
            }
        }
        for (int i = 0; i < n; i++) {
            struct pipe *p = to_server ? &l->c2s : &l->s2c;
            size_t *total = to_server ? &l->c2s_total : &l->s2c_total;
            long tamper = to_server ? l->tamper_c2s : l->tamper_s2c;
            size_t start = p->len;
            if (to_server && l->first_c2s_len < sizeof l->first_c2s) {
                size_t k = iov[i].len;
                if (k > sizeof l->first_c2s - l->first_c2s_len)
                    k = sizeof l->first_c2s - l->first_c2s_len;
                memcpy(l->first_c2s + l->first_c2s_len, iov[i].base, k);
                l->first_c2s_len += k;
            }
            if (!to_server && l->first_s2c_len < sizeof l->first_s2c) {
                size_t k = iov[i].len;
                if (k > sizeof l->first_s2c - l->first_s2c_len)
                    k = sizeof l->first_s2c - l->first_s2c_len;
                memcpy(l->first_s2c + l->first_s2c_len, iov[i].base, k);
                l->first_s2c_len += k;
            }
            if (!l->broken)
                pipe_push(p, iov[i].base, iov[i].len);
            if (!l->broken && tamper >= 0 && (size_t)tamper >= *total &&
                (size_t)tamper < *total + iov[i].len)
                p->buf[start + ((size_t)tamper - *total)] ^= 0x55;
            *total += iov[i].len;
            tot += iov[i].len;
        }
        mpt_conn_sf_sent(c, sf, tot, w->now);
        any = 1;
        if (l->partial)
            break; /* the socket is full for this round */
    }
    mpt_conn_sf_set_room(c, sf, w->room, w->now);
    return any;
}

static void drain_events(struct world *w)
{
    struct mpt_event ev;

    while (w->cli && mpt_conn_next_event(w->cli, &ev)) {
        w->c_events[ev.type]++;
        if (ev.type == MPT_EV_ERROR)
            w->last_c_err = ev.error;
    }
    while (w->sc && mpt_conn_next_event(w->sc, &ev)) {
        w->s_events[ev.type]++;
        if (ev.type == MPT_EV_ERROR)
            w->last_s_err = ev.error;
    }
}

static int app_io(struct world *w, struct mpt_conn *c, size_t *to_send, size_t *sent,
                  uint64_t spat, size_t *recvd, uint64_t rpat, int *eof, int do_read)
{
    uint8_t buf[65536];
    int any = 0;

    if (!c || (mpt_conn_state(c) != MPT_CONN_ESTABLISHED && mpt_conn_state(c) != MPT_CONN_CLOSING))
        goto rd;
    while (*sent < *to_send) {
        size_t n = *to_send - *sent;
        ssize_t r;
        if (n > sizeof buf)
            n = sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = pat(spat, *sent + i);
        r = mpt_conn_send(c, buf, n, w->now);
        if (r <= 0)
            break;
        *sent += (size_t)r;
        any = 1;
    }
rd:
    while (c && do_read && !*eof) {
        ssize_t r = mpt_conn_recv(c, buf, sizeof buf, w->now);
        if (r == 0) {
            *eof = 1;
            any = 1;
            break;
        }
        if (r < 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pat(rpat, *recvd + (size_t)i))
                ck_abort_msg("byte %zu differs", *recvd + (size_t)i);
        *recvd += (size_t)r;
        any = 1;
    }
    return any;
}

/* The server's two steps around TLS: preamble, then the first frame with
 * this subflow's binding (none on the first subflow). */
static int accept_tls(struct world *w, struct link *l, int li, struct mpt_accept *a)
{
    struct mpt_preamble p;
    int np = mpt_server_preamble(w->srv, l->c2s.buf, l->c2s.len, &p, a), r;

    if (np < 0)
        return np;
    ck_assert(p.flags & MPT_PREF_TLS);
    r = mpt_server_first_frame_bound(w->srv, &p, li > 0 ? l->sbind : NULL, l->c2s.buf + np,
                                     l->c2s.len - (size_t)np, w->now, a);
    if (r == 0)
        a->consumed += (size_t)np;
    return r;
}

/* one round: move output into pipes, deliver pipes, run apps; returns progress */
static int step(struct world *w)
{
    int any = 0;

    for (int li = 0; li < MAXL; li++) {
        struct link *l = &w->l[li];
        if (!l->used)
            continue;
        any |= drain_out(w, w->cli, l->csf, l, 1);
        if (l->ssf >= 0)
            any |= drain_out(w, w->sc, l->ssf, l, 0);
        if (l->held)
            continue;
        /* deliver client -> server */
        if (l->c2s.len && !l->refused) {
            if (l->ssf < 0) {
                struct mpt_accept a;
                int r = w->tls ? accept_tls(w, l, li, &a)
                               : mpt_server_accept(w->srv, l->c2s.buf, l->c2s.len, w->now, &a);
                if (r == 0) {
                    l->ssf = a.sf;
                    if (a.is_new) {
                        ck_assert_ptr_null(w->sc);
                        w->sc = a.conn;
                        if (w->tls)
                            ck_assert_int_eq(mpt_conn_set_secret(w->sc, w->ssec), 0);
                    } else {
                        ck_assert_ptr_eq(a.conn, w->sc);
                    }
                    pipe_consume(&l->c2s, a.consumed);
                    any = 1;
                } else if (r != MPT_EINCOMPLETE) {
                    l->refused = 1;
                    l->refuse_err = r;
                    l->c2s.len = 0;
                    pipe_push(&l->s2c, a.reply, a.reply_len);
                    any = 1;
                }
            }
            if (l->ssf >= 0 && l->c2s.len) {
                ssize_t r = mpt_conn_sf_input(w->sc, l->ssf, l->c2s.buf, l->c2s.len, w->now);
                if (r < 0)
                    r = (ssize_t)l->c2s.len;
                if (r > 0) {
                    pipe_consume(&l->c2s, (size_t)r);
                    any = 1;
                }
            }
        }
        if (l->s2c.len) {
            ssize_t r = mpt_conn_sf_input(w->cli, l->csf, l->s2c.buf, l->s2c.len, w->now);
            if (r < 0)
                r = (ssize_t)l->s2c.len;
            if (r > 0) {
                pipe_consume(&l->s2c, (size_t)r);
                any = 1;
            }
            if (l->refused && mpt_conn_sf_state(w->cli, l->csf) != MPT_SF_FAILED)
                mpt_conn_sf_failed(w->cli, l->csf, MPT_ECLOSED, w->now);
        }
    }
    any |= app_io(w, w->cli, &w->c_to_send, &w->c_sent, w->c_pat, &w->c_recvd, w->s_pat,
                  &w->c_eof, w->c_read);
    any |= app_io(w, w->sc, &w->s_to_send, &w->s_sent, w->s_pat, &w->s_recvd, w->c_pat,
                  &w->s_eof, w->s_read);
    drain_events(w);
    return any;
}

/* run until quiet; time advances 1 ms per idle round, timers fire */
/* run until quiet for max_idle_ms (pings keep traffic going, so `until`
 * bounds simulated time too: run for at most that long) */
static void run_until(struct world *w, int max_idle_ms, uint64_t until)
{
    int idle = 0;

    while (idle < max_idle_ms && w->now < until) {
        uint64_t t;
        if (step(w)) {
            idle = 0;
            w->now += 10000; /* 10 us per busy round */
        } else {
            idle++;
            w->now += MPT_NS_PER_MS;
        }
        t = mpt_conn_next_timeout(w->cli);
        if (t <= w->now)
            mpt_conn_handle_timeout(w->cli, w->now);
        if (w->sc) {
            t = mpt_conn_next_timeout(w->sc);
            if (t <= w->now)
                mpt_conn_handle_timeout(w->sc, w->now);
        }
    }
}

static void run(struct world *w, int max_idle_ms)
{
    run_until(w, max_idle_ms, w->now + 60000 * MPT_NS_PER_MS);
}

/* exactly ms of simulated time */
static void advance(struct world *w, int ms)
{
    run_until(w, 1 << 30, w->now + (uint64_t)ms * MPT_NS_PER_MS);
}

static void establish(struct world *w)
{
    world_start(w);
    ck_assert_int_eq(open_link(w, 0, 0), 0);
    run(w, 5);
    ck_assert_ptr_nonnull(w->sc);
    ck_assert_int_eq(mpt_conn_state(w->cli), MPT_CONN_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_state(w->sc), MPT_CONN_ESTABLISHED);
}

START_TEST(handshake)
{
    struct world w;

    world_init(&w);
    establish(&w);
    ck_assert_int_eq(w.c_events[MPT_EV_ESTABLISHED], 1);
    ck_assert_int_eq(w.s_events[MPT_EV_ESTABLISHED], 1);
    ck_assert_int_eq(w.c_events[MPT_EV_SF_UP], 1);
    ck_assert_int_eq(w.s_events[MPT_EV_SF_UP], 1);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, 0), MPT_SF_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_sf_count(w.sc), 1);
    /* client may not send before establishment; a fresh client is in HANDSHAKE */
    {
        struct mpt_conn *c;
        ck_assert_int_eq(mpt_conn_client_new(&w.cs, 0, &c), 0);
        ck_assert_int_eq(mpt_conn_send(c, "x", 1, 0), MPT_ESTATE);
        ck_assert_int_eq(mpt_conn_state(c), MPT_CONN_HANDSHAKE);
        mpt_conn_free(c);
    }
    world_free(&w);
}
END_TEST

static void transfer(int nsub, size_t nbytes, int both)
{
    struct world w;
    struct mpt_conn_stats st;

    world_init(&w);
    establish(&w);
    for (int i = 1; i < nsub; i++)
        ck_assert_int_ge(open_link(&w, (uint8_t)i, 0), 0);
    run(&w, 5);
    ck_assert_int_eq(mpt_conn_sf_count(w.cli), nsub);
    ck_assert_int_eq(mpt_conn_sf_count(w.sc), nsub);
    w.c_to_send = nbytes;
    w.s_to_send = both ? nbytes : 0;
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, nbytes);
    ck_assert_uint_eq(w.c_recvd, both ? nbytes : 0);
    mpt_conn_get_stats(w.cli, &st);
    ck_assert_uint_eq(st.bytes_acked, nbytes);
    ck_assert_uint_le(st.snd_mem, 0);
    mpt_conn_get_stats(w.sc, &st);
    ck_assert_uint_le(st.rcv_mem_peak, w.ss.rcvbuf);
    if (nsub > 1) {
        struct mpt_sf_stats a, b;
        mpt_conn_sf_get_stats(w.cli, 0, &a);
        mpt_conn_sf_get_stats(w.cli, 1, &b);
        ck_assert_uint_gt(a.bytes_sent, 0);
        ck_assert_uint_gt(b.bytes_sent, 0);
    }
    world_free(&w);
}

START_TEST(transfer_one_subflow)
{
    transfer(1, 4u << 20, 1);
}
END_TEST

/* A server id goes into bytes 0-3 of the routing id, which every JOIN
 * preamble carries (bytes 8-15) for a load balancer; the rest stays random,
 * so two connections get different routing ids with the same prefix. */
static void join_preamble_rid(uint32_t server_id, uint8_t rid[8])
{
    struct world w;
    int li;

    world_init(&w);
    w.ss.server_id = server_id;
    establish(&w);
    li = open_link(&w, 1, 0);
    ck_assert_int_ge(li, 0);
    run(&w, 5);
    ck_assert_int_eq(mpt_conn_sf_count(w.sc), 2); /* the join was accepted */
    ck_assert_uint_ge(w.l[li].first_c2s_len, 16);
    ck_assert_int_eq(w.l[li].first_c2s[5], MPT_PRE_JOIN);
    memcpy(rid, w.l[li].first_c2s + 8, 8);
    world_free(&w);
}

START_TEST(server_id_in_routing_id)
{
    uint8_t a[8], b[8], z[8];

    join_preamble_rid(0x0a0b0c0du, a);
    join_preamble_rid(0x0a0b0c0du, b);
    join_preamble_rid(0, z);
    ck_assert_mem_eq(a, "\x0a\x0b\x0c\x0d", 4);
    ck_assert_mem_eq(b, "\x0a\x0b\x0c\x0d", 4);
    ck_assert_mem_ne(a + 4, b + 4, 4);
    ck_assert_mem_ne(z, "\x0a\x0b\x0c\x0d", 4);
}
END_TEST

START_TEST(transfer_two_subflows)
{
    transfer(2, 4u << 20, 1);
}
END_TEST

START_TEST(transfer_four_subflows_one_way)
{
    transfer(4, 3u << 20, 0);
}
END_TEST

START_TEST(flow_control_bounds_memory)
{
    struct world w;
    struct mpt_conn_stats st;

    world_init(&w);
    w.ss.rcvbuf = 64 * 1024;
    w.cs.rcvbuf = 64 * 1024;
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    w.s_read = 0; /* server application does not read */
    w.c_to_send = 1u << 20;
    run(&w, 20);
    mpt_conn_get_stats(w.sc, &st);
    ck_assert_uint_eq(st.rcv_mem, 64 * 1024);
    ck_assert_uint_le(st.rcv_mem_peak, 64 * 1024);
    ck_assert_uint_eq(w.s_recvd, 0);
    ck_assert_int_eq(w.last_s_err, 0);
    ck_assert_int_eq(mpt_conn_state(w.sc), MPT_CONN_ESTABLISHED);
    w.s_read = 1;
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, 1u << 20);
    world_free(&w);
}
END_TEST

START_TEST(rcv_limit_shrinks_window)
{
    struct world w;
    struct mpt_conn_stats st;
    size_t before;

    world_init(&w);
    w.ss.rcvbuf = 256 * 1024;
    establish(&w);
    w.s_read = 0;
    w.c_to_send = 2u << 20;
    run(&w, 20);
    mpt_conn_get_stats(w.sc, &st);
    ck_assert_uint_eq(st.rcv_mem, 256 * 1024); /* the full window */
    /* memory pressure: 32 KiB from now on */
    ck_assert_int_eq(mpt_conn_set_rcv_limit(w.sc, 32 * 1024), 0);
    w.s_read = 1;
    for (int i = 0; i < 3; i++)
        step(&w); /* read what is buffered, the window reopens by 32 KiB only */
    w.s_read = 0;
    before = w.s_recvd;
    run(&w, 20);
    mpt_conn_get_stats(w.sc, &st);
    ck_assert_uint_ge(before, 256 * 1024);
    ck_assert_uint_le(st.rcv_mem, 32 * 1024);
    ck_assert_uint_gt(st.rcv_mem, 0);
    /* pressure gone: full speed again, byte-exact */
    ck_assert_int_eq(mpt_conn_set_rcv_limit(w.sc, 0), 0);
    w.s_read = 1;
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, 2u << 20);
    world_free(&w);
}
END_TEST

static void bad_join(int tamper_ack)
{
    struct world w;
    int li;

    world_init(&w);
    establish(&w);
    li = 1;
    w.l[li].tamper_s2c = tamper_ack ? 4 + 16 + 5 : -1; /* JOIN_ACK hmac byte */
    w.l[li].tamper_c2s = tamper_ack ? -1 : 16 + 30 + 4 + 3; /* JOIN_CONFIRM hmac byte */
    ck_assert_int_eq(open_link(&w, 1, 0), li);
    run(&w, 10);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[li].csf), MPT_SF_FAILED);
    {
        struct mpt_sf_stats s;
        mpt_conn_sf_get_stats(w.cli, w.l[li].csf, &s);
        ck_assert_int_eq(s.fail_error, MPT_EAUTH);
    }
    ck_assert_int_ne(mpt_conn_sf_state(w.sc, w.l[li].ssf), MPT_SF_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_state(w.cli), MPT_CONN_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_state(w.sc), MPT_CONN_ESTABLISHED);
    /* the connection carries on */
    w.c_to_send = w.s_to_send = 100000;
    run(&w, 20);
    ck_assert_uint_eq(w.s_recvd, 100000);
    ck_assert_uint_eq(w.c_recvd, 100000);
    world_free(&w);
}

START_TEST(join_bad_hmac_in_join_ack)
{
    bad_join(1);
}
END_TEST

START_TEST(join_bad_hmac_in_join_confirm)
{
    bad_join(0);
}
END_TEST

START_TEST(join_unknown_token)
{
    struct world w;
    uint8_t buf[128];
    struct mpt_preamble p;
    struct mpt_frame f;
    struct mpt_accept a;
    ssize_t n1, n2;

    world_init(&w);
    establish(&w);
    memset(&p, 0, sizeof p);
    p.version = MPT_PROTO_VERSION;
    p.kind = MPT_PRE_JOIN;
    n1 = mpt_preamble_encode(&p, buf, sizeof buf);
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_JOIN;
    f.u.join.token = 0x0123456789abcdefull;
    n2 = mpt_frame_encode(&f, buf + n1, sizeof buf - (size_t)n1);
    ck_assert_int_gt(n2, 0);
    ck_assert_int_eq(mpt_server_accept(w.srv, buf, (size_t)(n1 + n2), w.now, &a), MPT_ETOKEN);
    ck_assert_uint_gt(a.reply_len, 0);
    {
        struct mpt_frame e;
        ck_assert_int_gt(mpt_frame_decode(a.reply, a.reply_len, MPT_FRAME_MAX_BODY, &e), 0);
        ck_assert_int_eq(e.type, MPT_FT_ERROR);
        ck_assert_uint_eq(e.u.close.reason, MPT_REASON_UNKNOWN_TOKEN);
    }
    /* partial input: incomplete */
    ck_assert_int_eq(mpt_server_accept(w.srv, buf, 10, w.now, &a), MPT_EINCOMPLETE);
    ck_assert_int_eq(mpt_conn_state(w.sc), MPT_CONN_ESTABLISHED);
    world_free(&w);
}
END_TEST

START_TEST(join_replay_refused)
{
    struct world w;
    struct mpt_accept a;
    int li;

    world_init(&w);
    establish(&w);
    li = open_link(&w, 1, 0);
    run(&w, 5);
    ck_assert_int_eq(mpt_conn_sf_state(w.sc, w.l[li].ssf), MPT_SF_ESTABLISHED);
    ck_assert_uint_ge(w.l[li].first_c2s_len, 16 + 30);
    ck_assert_int_eq(mpt_server_accept(w.srv, w.l[li].first_c2s, 16 + 30, w.now, &a),
                     MPT_EREPLAY);
    ck_assert_uint_gt(a.reply_len, 0);
    ck_assert_int_eq(mpt_conn_sf_count(w.sc), 2);
    world_free(&w);
}
END_TEST

/* Someone who saw the token opens a join and sends FASTCLOSE before it is
 * authenticated: only that subflow dies. */
START_TEST(unauthenticated_join_cannot_fastclose)
{
    struct world w;
    uint8_t buf[256];
    struct mpt_preamble p;
    struct mpt_frame f;
    struct mpt_accept a;
    ssize_t n1, n2, n3;
    uint64_t token = 0;

    world_init(&w);
    establish(&w);
    /* the token is in every JOIN in clear: take it from a real one */
    {
        int li = open_link(&w, 1, 0);
        run(&w, 5);
        ck_assert_int_gt(mpt_frame_decode(w.l[li].first_c2s + 16, 30, MPT_FRAME_MAX_BODY, &f), 0);
        token = f.u.join.token;
    }
    memset(&p, 0, sizeof p);
    p.version = MPT_PROTO_VERSION;
    p.kind = MPT_PRE_JOIN;
    n1 = mpt_preamble_encode(&p, buf, sizeof buf);
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_JOIN;
    f.u.join.token = token;
    f.u.join.nonce[0] = 0x42;
    n2 = mpt_frame_encode(&f, buf + n1, sizeof buf - (size_t)n1);
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_FASTCLOSE;
    f.u.close.reason = MPT_REASON_ADMIN;
    f.u.close.text = (const uint8_t *)"planted";
    f.u.close.text_len = 7;
    n3 = mpt_frame_encode(&f, buf + n1 + n2, sizeof buf - (size_t)(n1 + n2));
    ck_assert_int_eq(mpt_server_accept(w.srv, buf, (size_t)(n1 + n2), w.now, &a), 0);
    ck_assert_ptr_eq(a.conn, w.sc);
    mpt_conn_sf_input(w.sc, a.sf, buf + a.consumed, (size_t)n3, w.now);
    ck_assert_int_eq(mpt_conn_state(w.sc), MPT_CONN_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_sf_state(w.sc, a.sf), MPT_SF_FAILED);
    ck_assert_ptr_null(mpt_conn_peer_text(w.sc)); /* its text is not the peer's word */
    w.c_to_send = w.s_to_send = 100000;
    run(&w, 20);
    ck_assert_uint_eq(w.s_recvd, 100000);
    ck_assert_uint_eq(w.c_recvd, 100000);
    world_free(&w);
}
END_TEST

START_TEST(join_limit)
{
    struct world w;
    int li;

    world_init(&w);
    w.ss.max_subflows = 2;
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    li = open_link(&w, 2, 0);
    run(&w, 5);
    ck_assert_int_eq(w.l[li].refuse_err, MPT_ETOOMANY);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[li].csf), MPT_SF_FAILED);
    {
        struct mpt_sf_stats s;
        mpt_conn_sf_get_stats(w.cli, w.l[li].csf, &s);
        ck_assert_int_eq(s.fail_error, MPT_ETOOMANY);
    }
    ck_assert_int_eq(mpt_conn_sf_count(w.sc), 2);
    ck_assert_int_eq(mpt_conn_state(w.cli), MPT_CONN_ESTABLISHED);
    /* client-side limit */
    w.cs.max_subflows = 2;
    world_free(&w);
}
END_TEST

START_TEST(subflow_failure_reinjects)
{
    struct world w;
    struct mpt_conn_stats st;

    world_init(&w);
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    w.room = 16384;
    w.c_to_send = w.s_to_send = 2u << 20;
    for (int i = 0; i < 10; i++)
        step(&w);
    ck_assert_uint_lt(w.s_recvd, 2u << 20);
    /* path 1 dies: bytes in flight on it are lost */
    w.l[1].broken = 1;
    w.l[1].c2s.len = w.l[1].s2c.len = 0;
    mpt_conn_sf_failed(w.cli, w.l[1].csf, MPT_ECLOSED, w.now);
    mpt_conn_sf_failed(w.sc, w.l[1].ssf, MPT_ECLOSED, w.now);
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, 2u << 20);
    ck_assert_uint_eq(w.c_recvd, 2u << 20);
    mpt_conn_get_stats(w.cli, &st);
    ck_assert_uint_gt(st.reinjections, 0);
    ck_assert_int_ge(w.c_events[MPT_EV_SF_DOWN], 1);
    world_free(&w);
}
END_TEST

START_TEST(blackhole_detected_and_reinjected)
{
    struct world w;
    struct mpt_conn_stats st;

    world_init(&w);
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    w.room = 16384;
    w.c_to_send = 1u << 20;
    for (int i = 0; i < 5; i++)
        step(&w);
    ck_assert_uint_lt(w.s_recvd, 1u << 20);
    /* path 1 silently drops everything: no failure reported by the caller */
    w.l[1].broken = 1;
    w.l[1].c2s.len = w.l[1].s2c.len = 0;
    advance(&w, 3000);
    ck_assert_uint_eq(w.s_recvd, 1u << 20);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[1].csf), MPT_SF_FAILED);
    mpt_conn_get_stats(w.cli, &st);
    ck_assert_uint_gt(st.reinjections, 0);
    world_free(&w);
}
END_TEST

/* The blackhole rule (liveness.c): with the stall detector and the subflow
 * timeout far away, a path whose kernel reports no ACK since it broke and
 * an RTO in progress is failed within a few hundred ms, the peer learns it
 * from SUBFLOW_FAILED, and the transfer completes on the other path. */
static void bh_world(struct world *w)
{
    world_init(w);
    w->cs.stall_min = w->ss.stall_min = 5000 * MPT_NS_PER_MS;
    w->cs.subflow_timeout = w->ss.subflow_timeout = 20000 * MPT_NS_PER_MS;
    establish(w);
    ck_assert_int_ge(open_link(w, 1, 0), 0);
    run(w, 5);
    w->room = 16384;
    w->c_to_send = 1u << 20;
    for (int i = 0; i < 5; i++)
        step(w);
    ck_assert_uint_lt(w->s_recvd, 1u << 20);
}

static struct mpt_sf_info bh_info(uint64_t last_ack_at, uint32_t rtx, uint32_t backoff)
{
    struct mpt_sf_info in;

    memset(&in, 0, sizeof in);
    in.srtt = 10 * MPT_NS_PER_MS;
    in.rttvar = 2 * MPT_NS_PER_MS;
    in.last_ack_at = last_ack_at;
    in.retransmits = rtx;
    in.backoff = backoff;
    return in;
}

START_TEST(blackhole_from_tcp_info)
{
    struct world w;
    struct mpt_conn_stats st;
    struct mpt_sf_info in;
    uint64_t t0;

    bh_world(&w);
    w.l[1].broken = 1;
    w.l[1].c2s.len = w.l[1].s2c.len = 0;
    t0 = w.now;
    in = bh_info(t0, _i == 0, _i == 1);
    mpt_conn_sf_set_info(w.cli, w.l[1].csf, &in);
    advance(&w, 150); /* below MPT_BH_MIN: not yet */
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[1].csf), MPT_SF_ESTABLISHED);
    advance(&w, 350);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[1].csf), MPT_SF_FAILED);
    mpt_conn_get_stats(w.cli, &st);
    ck_assert_uint_eq(st.sf_blackholes, 1);
    ck_assert_uint_gt(st.reinjections, 0);
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, 1u << 20);
    /* the server heard of it on path 0 (SUBFLOW_FAILED), not by its timeout */
    ck_assert_int_eq(mpt_conn_sf_state(w.sc, w.l[1].ssf), MPT_SF_FAILED);
    world_free(&w);
}
END_TEST

/* Not a blackhole: a congested but alive path keeps receiving ACKs even
 * while it retransmits (_i == 0), and a path whose ACKs are late without
 * an RTO is only slow (_i == 1): neither is failed while held back. */
START_TEST(slow_path_with_queue_not_blackholed)
{
    struct world w;
    struct mpt_conn_stats st;
    struct mpt_sf_info in;
    uint64_t t0;

    bh_world(&w);
    w.l[1].held = 1;
    t0 = w.now;
    for (int ms = 0; ms < 1500; ms += 10) {
        in = _i == 0 ? bh_info(w.now, 2, 1) : bh_info(t0, 0, 0);
        mpt_conn_sf_set_info(w.cli, w.l[1].csf, &in);
        advance(&w, 10);
    }
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[1].csf), MPT_SF_ESTABLISHED);
    mpt_conn_get_stats(w.cli, &st);
    ck_assert_uint_eq(st.sf_blackholes, 0);
    ck_assert_uint_eq(st.sf_failed, 0);
    w.l[1].held = 0;
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, 1u << 20);
    world_free(&w);
}
END_TEST

/* The quiet rule (liveness.c, QUIET): before any RTO, a path whose kernel
 * has heard no ACK for max(srtt + 200 ms, 3 srtt + 4 rttvar) with segments
 * unacknowledged while the other path's kernel keeps hearing ACKs is
 * stalled (not failed) and its bytes are reinjected, so the transfer
 * completes on the other path long before stall_min (5 s here). Not when
 * the other path is silent too (_i == 1: the host or the peer, not the
 * path) nor with a single segment out (_i == 2: a delayed ACK). */
START_TEST(quiet_path_stalled_before_rto)
{
    struct world w;
    struct mpt_conn_stats st;
    struct mpt_sf_stats ss;
    struct mpt_sf_info in;
    uint64_t t0;

    bh_world(&w);
    w.l[1].broken = 1;
    w.l[1].c2s.len = w.l[1].s2c.len = 0;
    t0 = w.now;
    for (int ms = 0; ms < 400; ms += 10) {
        in = bh_info(t0, 0, 0);
        in.mss = 1448;
        in.unacked_bytes = _i == 2 ? 1448 : 20 * 1448;
        mpt_conn_sf_set_info(w.cli, w.l[1].csf, &in);
        in = bh_info(_i == 1 ? t0 : w.now, 0, 0);
        in.mss = 1448;
        in.unacked_bytes = 20 * 1448;
        mpt_conn_sf_set_info(w.cli, w.l[0].csf, &in);
        advance(&w, 10);
    }
    ck_assert_int_eq(mpt_conn_sf_get_stats(w.cli, w.l[1].csf, &ss), 0);
    mpt_conn_get_stats(w.cli, &st);
    ck_assert_int_eq(ss.state, MPT_SF_ESTABLISHED); /* stalled, never failed by it */
    ck_assert_uint_eq(st.sf_failed, 0);
    if (_i != 0) {
        ck_assert_int_eq(ss.stalled, 0);
        ck_assert_uint_eq(st.sf_quiet_stalls, 0);
        ck_assert_uint_lt(w.s_recvd, 1u << 20);
        world_free(&w);
        return;
    }
    ck_assert_int_eq(ss.stalled, 1);
    ck_assert_uint_eq(st.sf_quiet_stalls, 1);
    ck_assert_uint_gt(st.reinjections, 0);
    ck_assert_uint_eq(w.s_recvd, 1u << 20); /* on path 0, within the 400 ms */
    world_free(&w);
}
END_TEST

/* DATA_ACKs avoid a subflow whose kernel has heard no ACK for the quiet
 * threshold (a path that may have gone dark eats the acks the sender
 * needs) even when it is otherwise the better choice (lower srtt). */
START_TEST(acks_avoid_ack_silent_subflow)
{
    struct world w;
    struct mpt_sf_info in;
    size_t before0, before1;
    uint64_t t0;

    bh_world(&w);
    t0 = w.now;
    in = bh_info(t0, 0, 0);
    in.mss = 1448;
    in.unacked_bytes = 4 * 1448;
    mpt_conn_sf_set_info(w.sc, w.l[1].ssf, &in); /* srtt 10 ms, silent from t0 */
    advance(&w, 250); /* past srtt + 200 ms */
    w.c_to_send += 1u << 20;
    before0 = w.l[0].s2c_total;
    before1 = w.l[1].s2c_total;
    for (int ms = 0; ms < 200; ms += 10) {
        in = bh_info(w.now, 0, 0);
        in.srtt = 20 * MPT_NS_PER_MS;
        in.mss = 1448;
        in.unacked_bytes = 4 * 1448;
        mpt_conn_sf_set_info(w.sc, w.l[0].ssf, &in); /* slower but hears ACKs */
        advance(&w, 10);
    }
    ck_assert_uint_gt(w.l[0].s2c_total - before0, 200);
    ck_assert_uint_lt(w.l[1].s2c_total - before1, 64); /* a PING or PONG at most */
    world_free(&w);
}
END_TEST

/* protocol.md 5.18: SUBFLOW_FAILED goes on the surviving subflow ahead of
 * the DATA queued there and not yet written (behind a full queue the peer
 * learnt of the failure about a second late). */
START_TEST(subflow_failed_ahead_of_queued_data)
{
    static uint8_t buf[256 * 1024];
    struct world w;
    struct mpt_iovec iov[16];
    struct mpt_sf_stats ss;
    int live = -1, dead, n, seen = 0;

    world_init(&w);
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    w.room = 1u << 20;
    run(&w, 5); /* the room is handed over at the end of each drain */
    memset(buf, 0x5a, sizeof buf);
    ck_assert_int_gt(mpt_conn_send(w.cli, buf, sizeof buf, w.now), 0);
    for (int li = 0; li < 2 && live < 0; li++) {
        ck_assert_int_eq(mpt_conn_sf_get_stats(w.cli, w.l[li].csf, &ss), 0);
        if (ss.queued > 0)
            live = li;
    }
    ck_assert_int_ge(live, 0);
    dead = 1 - live;
    mpt_conn_sf_failed(w.cli, w.l[dead].csf, MPT_ENETUNREACH, w.now);
    n = mpt_conn_sf_output(w.cli, w.l[live].csf, iov, 16, w.now);
    ck_assert_int_gt(n, 0);
    for (int k = 0; k < n; k++) {
        const uint8_t *b = iov[k].base;
        ck_assert_uint_ge(iov[k].len, MPT_FRAME_HDR_LEN);
        ck_assert_msg(b[0] != MPT_FT_DATA, "DATA (iovec %d) ahead of SUBFLOW_FAILED", k);
        if (b[0] == MPT_FT_SUBFLOW_FAILED) {
            seen = 1;
            break;
        }
    }
    ck_assert(seen);
    world_free(&w);
}
END_TEST

START_TEST(opportunistic_retransmission_penalises_slow_path)
{
    struct world w;
    struct mpt_conn_stats st;
    struct mpt_sf_info fast, slow;

    world_init(&w);
    w.ss.rcvbuf = 128 * 1024; /* small window: the slow path blocks it */
    w.cs.stall_min = 5000 * MPT_NS_PER_MS; /* keep the stall detector out of it */
    w.cs.subflow_timeout = 20000 * MPT_NS_PER_MS;
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    memset(&fast, 0, sizeof fast);
    memset(&slow, 0, sizeof slow);
    fast.srtt = 1 * MPT_NS_PER_MS;
    slow.srtt = 100 * MPT_NS_PER_MS;
    mpt_conn_sf_set_info(w.cli, w.l[0].csf, &fast);
    mpt_conn_sf_set_info(w.cli, w.l[1].csf, &slow);
    /* The server's kernel knows the paths too (TCP_INFO). Without it only
     * the server's own PINGs told it which path is slow, and since the
     * server skips them while the client's arrive, its DATA_ACKs went onto
     * the held path. */
    mpt_conn_sf_set_info(w.sc, w.l[0].ssf, &fast);
    mpt_conn_sf_set_info(w.sc, w.l[1].ssf, &slow);
    w.room = 32768;
    w.l[1].held = 1;
    w.c_to_send = 2u << 20;
    for (int i = 0; i < 200; i++) {
        step(&w);
        w.now += 100000;
    }
    mpt_conn_get_stats(w.cli, &st);
    ck_assert_uint_gt(st.penalisations, 0);
    ck_assert_uint_gt(st.reinjections, 0);
    ck_assert_uint_gt(st.bytes_reinjected, 0);
    ck_assert_uint_gt(w.s_recvd, 256 * 1024); /* progress despite the stuck path */
    w.l[1].held = 0;
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, 2u << 20);
    mpt_conn_get_stats(w.sc, &st);
    ck_assert_uint_gt(st.dup_bytes_dropped, 0);
    ck_assert_uint_le(st.rcv_mem_peak, 128 * 1024);
    world_free(&w);
}
END_TEST

/* A path dies while a DATA frame is half written on it, and the caller only
 * learns it from MPT_EV_SF_DOWN (never calls mpt_conn_sf_failed): the half
 * frame must not pin the send buffer, the transfer completes on the other. */
START_TEST(dead_subflow_with_partial_frame_does_not_pin)
{
    struct world w;

    world_init(&w);
    w.cs.sndbuf = 128 * 1024;
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    w.l[1].partial = 1;
    w.room = 64 * 1024;
    w.c_to_send = 4u << 20;
    for (int i = 0; i < 6; i++)
        step(&w);
    w.l[1].broken = w.l[1].stuck = 1;
    w.l[1].c2s.len = w.l[1].s2c.len = 0;
    advance(&w, 4000);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[1].csf), MPT_SF_FAILED);
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, 4u << 20);
    world_free(&w);
}
END_TEST

START_TEST(partial_writes_keep_frames_intact)
{
    struct world w;

    world_init(&w);
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    w.l[0].partial = w.l[1].partial = 1;
    w.c_to_send = w.s_to_send = 1u << 20;
    run(&w, 50);
    ck_assert_uint_eq(w.s_recvd, 1u << 20);
    ck_assert_uint_eq(w.c_recvd, 1u << 20);
    world_free(&w);
}
END_TEST

START_TEST(all_paths_gone_aborts)
{
    struct world w;

    world_init(&w);
    establish(&w);
    w.c_to_send = 1u << 20;
    for (int i = 0; i < 5; i++)
        step(&w);
    w.l[0].broken = 1;
    w.l[0].c2s.len = w.l[0].s2c.len = 0;
    advance(&w, 8000);
    ck_assert_int_eq(mpt_conn_state(w.cli), MPT_CONN_ABORTED);
    ck_assert_int_eq(w.last_c_err, MPT_ENOPATH);
    ck_assert_int_eq(mpt_conn_recv(w.cli, (uint8_t[4]){0}, 4, w.now), MPT_ENOPATH);
    world_free(&w);
}
END_TEST

START_TEST(fastclose)
{
    struct world w;
    uint8_t b[8];

    world_init(&w);
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    ck_assert_int_eq(mpt_conn_abort(w.cli, MPT_REASON_APP_ABORT, w.now), 0);
    run(&w, 5);
    ck_assert_int_eq(mpt_conn_state(w.sc), MPT_CONN_ABORTED);
    ck_assert_int_eq(w.last_s_err, MPT_ERESET);
    ck_assert_int_eq(mpt_conn_recv(w.sc, b, sizeof b, w.now), MPT_ERESET);
    ck_assert_int_eq(mpt_conn_send(w.sc, b, sizeof b, w.now), MPT_ERESET);
    ck_assert_int_eq(mpt_conn_next_timeout(w.sc), MPT_TIME_NEVER);
    world_free(&w);
}
END_TEST

/* The peer's FASTCLOSE text reaches the application, bytes outside
 * printable ASCII replaced (5.17: sanitize before display). */
START_TEST(fastclose_text_kept_sanitized)
{
    struct world w;

    world_init(&w);
    establish(&w);
    ck_assert_ptr_null(mpt_conn_peer_text(w.sc));
    w.cli->abort_text = "bye\x1b[2J\xff now";
    ck_assert_int_eq(mpt_conn_abort(w.cli, MPT_REASON_ADMIN, w.now), 0);
    run(&w, 5);
    ck_assert_int_eq(mpt_conn_state(w.sc), MPT_CONN_ABORTED);
    ck_assert_ptr_nonnull(mpt_conn_peer_text(w.sc));
    ck_assert_str_eq(mpt_conn_peer_text(w.sc), "bye?[2J? now");
    world_free(&w);
}
END_TEST

/* order: 0 client first, 1 server first, 2 both at once */
static void close_order(int order)
{
    struct world w;
    uint8_t b[8];

    world_init(&w);
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    w.c_to_send = w.s_to_send = 300000;
    run(&w, 20);
    if (order == 0 || order == 2)
        ck_assert_int_eq(mpt_conn_shutdown(w.cli, w.now), 0);
    if (order == 1 || order == 2)
        ck_assert_int_eq(mpt_conn_shutdown(w.sc, w.now), 0);
    run(&w, 20);
    if (order == 0) {
        ck_assert_int_eq(w.s_eof, 1);
        ck_assert_int_eq(w.c_eof, 0);
        ck_assert_int_eq(mpt_conn_state(w.cli), MPT_CONN_CLOSING);
        ck_assert_int_eq(mpt_conn_send(w.cli, b, 1, w.now), MPT_EPIPE);
        /* half-closed: the server can still send */
        w.s_to_send += 100000;
        run(&w, 20);
        ck_assert_uint_eq(w.c_recvd, 400000);
        ck_assert_int_eq(mpt_conn_shutdown(w.sc, w.now), 0);
    } else if (order == 1) {
        ck_assert_int_eq(w.c_eof, 1);
        ck_assert_int_eq(w.s_eof, 0);
        w.c_to_send += 100000;
        run(&w, 20);
        ck_assert_uint_eq(w.s_recvd, 400000);
        ck_assert_int_eq(mpt_conn_shutdown(w.cli, w.now), 0);
    }
    run(&w, 20);
    ck_assert_int_eq(w.c_eof, 1);
    ck_assert_int_eq(w.s_eof, 1);
    ck_assert_int_eq(mpt_conn_state(w.cli), MPT_CONN_CLOSED);
    ck_assert_int_eq(mpt_conn_state(w.sc), MPT_CONN_CLOSED);
    ck_assert_int_eq(w.c_events[MPT_EV_CLOSED], 1);
    ck_assert_int_eq(w.s_events[MPT_EV_CLOSED], 1);
    ck_assert_int_eq(mpt_conn_recv(w.cli, b, sizeof b, w.now), 0);
    ck_assert_int_eq(mpt_conn_next_timeout(w.cli), MPT_TIME_NEVER);
    world_free(&w);
}

START_TEST(close_client_first)
{
    close_order(0);
}
END_TEST

START_TEST(close_server_first)
{
    close_order(1);
}
END_TEST

START_TEST(close_simultaneous)
{
    close_order(2);
}
END_TEST

START_TEST(subflow_close_graceful)
{
    struct world w;

    world_init(&w);
    establish(&w);
    ck_assert_int_ge(open_link(&w, 1, 0), 0);
    run(&w, 5);
    w.c_to_send = w.s_to_send = 1u << 20;
    for (int i = 0; i < 10; i++)
        step(&w);
    ck_assert_int_eq(mpt_conn_sf_close(w.cli, w.l[1].csf, MPT_REASON_ADMIN, w.now), 0);
    run(&w, 50);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[1].csf), MPT_SF_CLOSED);
    ck_assert_int_eq(mpt_conn_sf_state(w.sc, w.l[1].ssf), MPT_SF_CLOSED);
    ck_assert_uint_eq(w.s_recvd, 1u << 20);
    ck_assert_uint_eq(w.c_recvd, 1u << 20);
    world_free(&w);
}
END_TEST

START_TEST(add_addr_learned)
{
    struct world w;
    uint8_t a4[4] = {10, 0, 0, 7};

    world_init(&w);
    establish(&w);
    ck_assert_int_eq(mpt_conn_add_addr(w.sc, 3, 4, a4, 4433, w.now), 0);
    ck_assert_int_eq(mpt_conn_remove_addr(w.sc, 3, w.now), 0);
    run(&w, 5);
    ck_assert_int_eq(w.c_events[MPT_EV_ADDR_LEARNED], 1);
    ck_assert_int_eq(w.c_events[MPT_EV_ADDR_REMOVED], 1);
    ck_assert_int_eq(w.s_events[MPT_EV_ADDR_LEARNED], 0);
    world_free(&w);
}
END_TEST

START_TEST(add_addr_bad_hmac_ignored)
{
    struct world w;
    uint8_t a4[4] = {10, 0, 0, 9};
    struct mpt_conn_stats st;

    world_init(&w);
    establish(&w);
    /* ADD_ADDR is the next frame on the server's first subflow: 4 header
     * bytes + id, family, port (4) + address (4), then the 8-byte MAC */
    w.l[0].tamper_s2c = (long)w.l[0].s2c_total + 4 + 4 + 4 + 2;
    ck_assert_int_eq(mpt_conn_add_addr(w.sc, 5, 4, a4, 80, w.now), 0);
    run(&w, 5);
    mpt_conn_get_stats(w.cli, &st);
    ck_assert_uint_eq(st.addr_rejected, 1);
    ck_assert_int_eq(w.c_events[MPT_EV_ADDR_LEARNED], 0);
    ck_assert_int_eq(mpt_conn_state(w.cli), MPT_CONN_ESTABLISHED);
    world_free(&w);
}
END_TEST

START_TEST(handshake_timeout)
{
    struct world w;
    struct mpt_event ev;
    int sf, got = 0;

    world_init(&w);
    world_start(&w);
    sf = mpt_conn_add_subflow(w.cli, 0, 0, w.now);
    ck_assert_int_eq(sf, 0);
    ck_assert_int_eq(mpt_conn_add_subflow(w.cli, 1, 0, w.now), MPT_ESTATE); /* no join yet */
    ck_assert_int_eq(mpt_conn_sf_connected(w.cli, sf, w.now), 0);
    /* the server never answers */
    ck_assert_uint_eq(mpt_conn_next_timeout(w.cli), w.now + w.cs.handshake_timeout);
    w.now += w.cs.handshake_timeout;
    mpt_conn_handle_timeout(w.cli, w.now);
    ck_assert_int_eq(mpt_conn_state(w.cli), MPT_CONN_ABORTED);
    while (mpt_conn_next_event(w.cli, &ev))
        if (ev.type == MPT_EV_ERROR) {
            ck_assert_int_eq(ev.error, MPT_ETIMEDOUT);
            got = 1;
        }
    ck_assert_int_eq(got, 1);
    world_free(&w);
}
END_TEST

START_TEST(version_mismatch_refused)
{
    struct world w;
    uint8_t buf[128];
    struct mpt_preamble p;
    struct mpt_frame f;
    struct mpt_accept a;
    ssize_t n1, n2;

    world_init(&w);
    world_start(&w);
    memset(&p, 0, sizeof p);
    p.version = MPT_PROTO_VERSION;
    p.kind = MPT_PRE_NEW;
    n1 = mpt_preamble_encode(&p, buf, sizeof buf);
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_HELLO;
    f.u.hello.version_min = 2;
    f.u.hello.version_max = 3;
    n2 = mpt_frame_encode(&f, buf + n1, sizeof buf - (size_t)n1);
    ck_assert_int_gt(n2, 0);
    ck_assert_int_eq(mpt_server_accept(w.srv, buf, (size_t)(n1 + n2), w.now, &a), MPT_EVERSION);
    ck_assert_uint_gt(a.reply_len, 0);
    ck_assert_ptr_null(a.conn);
    /* and a join-kind preamble carrying HELLO is a protocol error */
    p.kind = MPT_PRE_JOIN;
    n1 = mpt_preamble_encode(&p, buf, sizeof buf);
    f.u.hello.version_min = f.u.hello.version_max = 1;
    n2 = mpt_frame_encode(&f, buf + n1, sizeof buf - (size_t)n1);
    ck_assert_int_eq(mpt_server_accept(w.srv, buf, (size_t)(n1 + n2), w.now, &a), MPT_EPROTO);
    world_free(&w);
}
END_TEST

/* ---- TLS keying (doc/protocol.md 6.5) ------------------------------------------ */

START_TEST(tls_join_and_add_addr_bound)
{
    struct world w;
    uint8_t a4[4] = {10, 0, 0, 7};
    int li;

    world_init(&w);
    w.tls = 1;
    establish(&w);
    ck_assert_uint_eq(w.l[0].first_c2s[6], MPT_PREF_TLS); /* the preamble asks for TLS */
    li = open_link(&w, 1, 0);
    run(&w, 5);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[li].csf), MPT_SF_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_sf_state(w.sc, w.l[li].ssf), MPT_SF_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_add_addr(w.sc, 3, 4, a4, 4433, w.now), 0);
    run(&w, 5);
    ck_assert_int_eq(w.c_events[MPT_EV_ADDR_LEARNED], 1);
    w.c_to_send = w.s_to_send = 300000;
    run(&w, 20);
    ck_assert_uint_eq(w.s_recvd, 300000);
    ck_assert_uint_eq(w.c_recvd, 300000);
    /* the secret is given once */
    ck_assert_int_eq(mpt_conn_set_secret(w.cli, w.csec), MPT_ESTATE);
    world_free(&w);
}
END_TEST

/* Ends that disagree on the exporter: a join with the right token and
 * keys but without the connection's secret (csec), or relayed between two
 * TLS sessions (the subflow's bindings differ): refused with AUTH, and
 * ADD_ADDR keyed by the other secret is ignored. */
static void tls_mismatch(int secret)
{
    struct world w;
    uint8_t a4[4] = {10, 0, 0, 8};
    struct mpt_sf_stats st;
    int li;

    world_init(&w);
    w.tls = 1;
    if (secret)
        w.csec[7] ^= 1;
    else
        w.l[1].cbind[0] ^= 1;
    establish(&w);
    li = open_link(&w, 1, 0);
    ck_assert_int_eq(li, 1);
    run(&w, 10);
    ck_assert_int_eq(mpt_conn_sf_state(w.cli, w.l[li].csf), MPT_SF_FAILED);
    mpt_conn_sf_get_stats(w.cli, w.l[li].csf, &st);
    ck_assert_int_eq(st.fail_error, MPT_EAUTH);
    ck_assert_int_ne(mpt_conn_sf_state(w.sc, w.l[li].ssf), MPT_SF_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_add_addr(w.sc, 3, 4, a4, 4433, w.now), 0);
    run(&w, 5);
    ck_assert_int_eq(w.c_events[MPT_EV_ADDR_LEARNED], secret ? 0 : 1);
    ck_assert_int_eq(mpt_conn_state(w.sc), MPT_CONN_ESTABLISHED);
    world_free(&w);
}

START_TEST(tls_join_without_secret_refused)
{
    tls_mismatch(1);
}
END_TEST

START_TEST(tls_join_relayed_across_sessions_refused)
{
    tls_mismatch(0);
}
END_TEST

START_TEST(tls_plain_join_refused)
{
    struct world w;
    struct mpt_preamble p;
    struct mpt_accept a;
    int li;

    world_init(&w);
    w.tls = 1;
    establish(&w);
    li = open_link(&w, 1, 0);
    ck_assert_int_eq(li, 1);
    drain_out(&w, w.cli, w.l[1].csf, &w.l[1], 1);
    /* the JOIN the client sent, offered without TLS (no binding) */
    ck_assert_int_gt(mpt_server_preamble(w.srv, w.l[1].first_c2s, 16, &p, &a), 0);
    ck_assert_int_eq(mpt_server_first_frame(w.srv, &p, w.l[1].first_c2s + 16,
                                            w.l[1].first_c2s_len - 16, w.now, &a),
                     MPT_ETLS);
    ck_assert_uint_gt(a.reply_len, 0);
    world_free(&w);
}
END_TEST

/* The reverse: a JOIN over TLS (with a binding) to a connection that did
 * not start with TLS. */
START_TEST(tls_join_to_plain_connection_refused)
{
    struct world w;
    struct mpt_preamble p;
    struct mpt_accept a;
    uint8_t b[MPT_SECRET_LEN];

    world_init(&w);
    w.ss.accept_tls = 1; /* the server could run TLS, this connection did not */
    establish(&w);
    ck_assert_int_eq(open_link(&w, 1, 0), 1);
    drain_out(&w, w.cli, w.l[1].csf, &w.l[1], 1);
    memset(b, 0x33, sizeof b);
    ck_assert_int_gt(mpt_server_preamble(w.srv, w.l[1].first_c2s, 16, &p, &a), 0);
    ck_assert_int_eq(mpt_server_first_frame_bound(w.srv, &p, b, w.l[1].first_c2s + 16,
                                                  w.l[1].first_c2s_len - 16, w.now, &a),
                     MPT_ETLS);
    ck_assert_uint_gt(a.reply_len, 0);
    ck_assert_int_eq(mpt_conn_sf_count(w.sc), 1);
    world_free(&w);
}
END_TEST

/* An observer recorded the first subflow's bytes. Here the harness hands
 * it the plaintext, keys included (with TLS a wire observer sees less:
 * ciphertext), and it builds a JOIN + JOIN_CONFIRM from them. Without TLS
 * the server takes the forged subflow (the control: this test can tell);
 * with TLS keying the same forgery, over a TLS session of its own, is
 * refused. */
static int observer_forges_join(int tls)
{
    struct world w;
    struct mpt_frame hello, hello_ack, f;
    struct mpt_preamble p;
    struct mpt_accept a;
    uint8_t buf[256], nonce[MPT_NONCE_LEN], attacker_binding[MPT_SECRET_LEN];
    uint64_t token;
    ssize_t n, m;
    int state;

    world_init(&w);
    w.tls = tls;
    establish(&w);
    ck_assert_int_gt(mpt_frame_decode(w.l[0].first_c2s + 8, w.l[0].first_c2s_len - 8,
                                      MPT_FRAME_MAX_BODY, &hello), 0);
    ck_assert_int_eq(hello.type, MPT_FT_HELLO);
    ck_assert_int_gt(mpt_frame_decode(w.l[0].first_s2c, w.l[0].first_s2c_len, MPT_FRAME_MAX_BODY,
                                      &hello_ack), 0);
    ck_assert_int_eq(hello_ack.type, MPT_FT_HELLO_ACK);
    mpt_key_derive(hello_ack.u.hello_ack.key, &token, NULL);
    memset(&p, 0, sizeof p);
    p.version = MPT_PROTO_VERSION;
    p.kind = MPT_PRE_JOIN;
    p.flags = tls ? MPT_PREF_TLS : 0;
    memcpy(p.routing_id, hello_ack.u.hello_ack.routing_id, MPT_ROUTING_ID_LEN);
    n = mpt_preamble_encode(&p, buf, sizeof buf);
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_JOIN;
    f.u.join.token = token;
    memset(nonce, 0xa5, sizeof nonce);
    memcpy(f.u.join.nonce, nonce, sizeof nonce);
    f.u.join.addr_id = 9;
    m = mpt_frame_encode(&f, buf + n, sizeof buf - (size_t)n);
    ck_assert_int_gt(m, 0);
    memset(attacker_binding, 0x77, sizeof attacker_binding);
    ck_assert_int_eq(mpt_server_preamble(w.srv, buf, (size_t)(n + m), &p, &a), n);
    ck_assert_int_eq(mpt_server_first_frame_bound(w.srv, &p, tls ? attacker_binding : NULL,
                                                  buf + n, (size_t)m, w.now, &a),
                     0);
    /* the JOIN_ACK's nonce, from the server's output on the new subflow */
    struct mpt_iovec iov[4];
    int k = mpt_conn_sf_output(w.sc, a.sf, iov, 4, w.now);
    ck_assert_int_gt(k, 0);
    uint8_t out[512];
    size_t ol = 0;
    for (int i = 0; i < k; i++) {
        memcpy(out + ol, iov[i].base, iov[i].len);
        ol += iov[i].len;
    }
    mpt_conn_sf_sent(w.sc, a.sf, ol, w.now);
    struct mpt_frame ack;
    ck_assert_int_gt(mpt_frame_decode(out, ol, MPT_FRAME_MAX_BODY, &ack), 0);
    ck_assert_int_eq(ack.type, MPT_FT_JOIN_ACK);
    /* everything the observer knows: both keys, both nonces, its binding */
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_JOIN_CONFIRM;
    mpt_join_hmac_tls(MPT_JOIN_CLIENT, hello.u.hello.key, hello_ack.u.hello_ack.key, NULL,
                      tls ? attacker_binding : NULL, nonce, ack.u.join_ack.nonce, 9, 0,
                      f.u.join_confirm.hmac);
    m = mpt_frame_encode(&f, buf, sizeof buf);
    (void)mpt_conn_sf_input(w.sc, a.sf, buf, (size_t)m, w.now);
    state = mpt_conn_sf_state(w.sc, a.sf);
    world_free(&w);
    return state;
}

START_TEST(observer_forges_join_without_tls)
{
    ck_assert_int_eq(observer_forges_join(0), MPT_SF_ESTABLISHED);
}
END_TEST

START_TEST(observer_cannot_forge_join_with_tls)
{
    ck_assert_int_ge(observer_forges_join(1), MPT_SF_FAILED);
}
END_TEST

START_TEST(tls_required_refuses_plain_preamble)
{
    struct world w;
    uint8_t pre[8] = {'M', 'P', 'T', 'L', MPT_PROTO_VERSION, 0, 0, 0};
    struct mpt_preamble p;
    struct mpt_accept a;
    struct mpt_frame e;

    world_init(&w);
    w.tls = 1;
    world_start(&w);
    ck_assert_int_eq(mpt_server_preamble(w.srv, pre, sizeof pre, &p, &a), MPT_ETLS);
    ck_assert_int_gt(mpt_frame_decode(a.reply, a.reply_len, MPT_FRAME_MAX_BODY, &e), 0);
    ck_assert_int_eq(e.type, MPT_FT_ERROR);
    ck_assert_uint_eq(e.u.close.reason, MPT_REASON_PROTOCOL);
    world_free(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn_basic");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, handshake);
    tcase_add_test(tc, transfer_one_subflow);
    tcase_add_test(tc, transfer_two_subflows);
    tcase_add_test(tc, server_id_in_routing_id);
    tcase_add_test(tc, transfer_four_subflows_one_way);
    tcase_add_test(tc, flow_control_bounds_memory);
    tcase_add_test(tc, rcv_limit_shrinks_window);
    tcase_add_test(tc, join_bad_hmac_in_join_ack);
    tcase_add_test(tc, join_bad_hmac_in_join_confirm);
    tcase_add_test(tc, join_unknown_token);
    tcase_add_test(tc, join_replay_refused);
    tcase_add_test(tc, join_limit);
    tcase_add_test(tc, unauthenticated_join_cannot_fastclose);
    tcase_add_test(tc, subflow_failure_reinjects);
    tcase_add_test(tc, blackhole_detected_and_reinjected);
    tcase_add_loop_test(tc, blackhole_from_tcp_info, 0, 2);
    tcase_add_loop_test(tc, slow_path_with_queue_not_blackholed, 0, 2);
    tcase_add_loop_test(tc, quiet_path_stalled_before_rto, 0, 3);
    tcase_add_test(tc, acks_avoid_ack_silent_subflow);
    tcase_add_test(tc, subflow_failed_ahead_of_queued_data);
    tcase_add_test(tc, opportunistic_retransmission_penalises_slow_path);
    tcase_add_test(tc, dead_subflow_with_partial_frame_does_not_pin);
    tcase_add_test(tc, partial_writes_keep_frames_intact);
    tcase_add_test(tc, all_paths_gone_aborts);
    tcase_add_test(tc, fastclose);
    tcase_add_test(tc, fastclose_text_kept_sanitized);
    tcase_add_test(tc, close_client_first);
    tcase_add_test(tc, close_server_first);
    tcase_add_test(tc, close_simultaneous);
    tcase_add_test(tc, subflow_close_graceful);
    tcase_add_test(tc, add_addr_learned);
    tcase_add_test(tc, add_addr_bad_hmac_ignored);
    tcase_add_test(tc, handshake_timeout);
    tcase_add_test(tc, version_mismatch_refused);
    tcase_add_test(tc, tls_join_and_add_addr_bound);
    tcase_add_test(tc, tls_join_without_secret_refused);
    tcase_add_test(tc, tls_join_relayed_across_sessions_refused);
    tcase_add_test(tc, tls_plain_join_refused);
    tcase_add_test(tc, tls_join_to_plain_connection_refused);
    tcase_add_test(tc, observer_forges_join_without_tls);
    tcase_add_test(tc, observer_cannot_forge_join_with_tls);
    tcase_add_test(tc, tls_required_refuses_plain_preamble);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
