/*
 * The engine against a peer written from doc/protocol.md (and the engine's
 * seams for the I/O layer: preamble apart, partial frames): a raw client that
 * builds every preamble and frame byte itself (the codec is used only to
 * read what the engine sends), behaving normally or hostilely. Each test
 * names the issue-8 item and the spec section it checks.
 */
#include <check.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/cc.h"
#include "core/conn.h"
#include "core/crypto.h"
#include "core/frame.h"
#include "rawpeer.h"

#define MAXS 8
#define MS MPT_NS_PER_MS

/* ---- byte building, big-endian as the spec says -------------------------------- */

static size_t preamble(uint8_t *b, size_t o, uint8_t version, uint8_t kind, uint8_t flags,
                       const uint8_t *rid)
{
    o = putn(b, o, "MPTL", 4);
    o = put8(b, o, version);
    o = put8(b, o, kind);
    o = put8(b, o, flags);
    o = put8(b, o, 0);
    if (kind == 1)
        o = putn(b, o, rid, 8);
    return o;
}

/* ---- the world: one server engine, a raw client ----------------------------------- */

struct rsf {
    int used, sf; /* engine index, -1 until accepted */
    int refused, accept_rc;
    uint8_t reply[MPT_FRAME_MAX_CONTROL];
    size_t reply_len;
    uint8_t *pend; /* bytes not yet consumed by the engine */
    size_t pend_len;
    uint8_t *in; /* what the engine wrote to us */
    size_t in_len, in_cap, parsed;
    uint8_t nonce[MPT_NONCE_LEN];
};

struct w {
    struct mpt_core_settings set;
    struct mpt_server *srv;
    struct mpt_conn *c;
    uint64_t now, rng;
    uint8_t key_c[MPT_KEY_LEN], key_s[MPT_KEY_LEN];
    uint64_t idsn_c, idsn_s, token_s;
    uint8_t rid[MPT_ROUTING_ID_LEN];
    uint32_t win_s;
    struct rsf s[MAXS];
    uint64_t join_rtt;     /* join(): time between JOIN_ACK and JOIN_CONFIRM */
    uint64_t wire;         /* every byte the engine wrote */
    uint64_t data_payload; /* DATA payload bytes the engine wrote */
    int ev[16];
    int last_err;
    uint32_t last_reason;
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

static void w_init(struct w *w)
{
    memset(w, 0, sizeof *w);
    w->rng = 0x9e3779b97f4a7c15ull;
    mpt_core_settings_default(&w->set);
    w->set.rand = xrand;
    w->set.rand_user = &w->rng;
    w->set.sndbuf = 256 * 1024;
    w->set.rcvbuf = 256 * 1024;
    w->now = 1000 * MS;
    for (int i = 0; i < MAXS; i++)
        w->s[i].sf = -1;
    for (int i = 0; i < MPT_KEY_LEN; i++)
        w->key_c[i] = (uint8_t)(0x40 + i);
    ck_assert_int_eq(mpt_server_new(&w->set, &w->srv), 0);
}

static void w_free(struct w *w)
{
    if (w->c)
        mpt_conn_free(w->c);
    mpt_server_free(w->srv);
    for (int i = 0; i < MAXS; i++) {
        free(w->s[i].pend);
        free(w->s[i].in);
    }
}

static void drain_events(struct w *w)
{
    struct mpt_event ev;
    while (w->c && mpt_conn_next_event(w->c, &ev)) {
        w->ev[ev.type]++;
        if (ev.type == MPT_EV_ERROR) {
            w->last_err = ev.error;
            w->last_reason = ev.reason;
        }
    }
}

/* Everything the engine has to write, on every subflow (the socket takes it all). */
static void pump(struct w *w)
{
    struct mpt_iovec iov[16];
    int n;

    for (int k = 0; k < MAXS; k++) {
        struct rsf *r = &w->s[k];
        if (!r->used || r->sf < 0 || !w->c)
            continue;
        mpt_conn_sf_set_room(w->c, r->sf, 1 << 20, w->now);
        while ((n = mpt_conn_sf_output(w->c, r->sf, iov, 16, w->now)) > 0) {
            size_t tot = 0;
            for (int i = 0; i < n; i++) {
                if (r->in_len + iov[i].len > r->in_cap) {
                    r->in_cap = (r->in_len + iov[i].len) * 2 + 4096;
                    r->in = realloc(r->in, r->in_cap);
                    ck_assert_ptr_nonnull(r->in);
                }
                memcpy(r->in + r->in_len, iov[i].base, iov[i].len);
                r->in_len += iov[i].len;
                tot += iov[i].len;
            }
            mpt_conn_sf_sent(w->c, r->sf, tot, w->now);
            w->wire += tot;
        }
    }
    drain_events(w);
}

/* The raw client writes bytes on its subflow k. Returns 0, MPT_EINCOMPLETE
 * (the server waits for more), or the engine's error for them. */
static long raw_send(struct w *w, int k, const uint8_t *b, size_t n)
{
    struct rsf *r = &w->s[k];
    long rc = 0;

    r->used = 1;
    if (r->refused)
        return r->accept_rc;
    r->pend = realloc(r->pend, r->pend_len + n + 1);
    memcpy(r->pend + r->pend_len, b, n);
    r->pend_len += n;
    if (r->sf < 0) {
        struct mpt_accept a;
        rc = mpt_server_accept(w->srv, r->pend, r->pend_len, w->now, &a);
        if (rc == MPT_EINCOMPLETE)
            return rc;
        if (rc < 0) {
            r->refused = 1;
            r->accept_rc = (int)rc;
            memcpy(r->reply, a.reply, a.reply_len);
            r->reply_len = a.reply_len;
            return rc;
        }
        if (a.is_new) {
            ck_assert_ptr_null(w->c);
            w->c = a.conn;
        } else {
            ck_assert_ptr_eq(a.conn, w->c);
        }
        r->sf = a.sf;
        memmove(r->pend, r->pend + a.consumed, r->pend_len - a.consumed);
        r->pend_len -= a.consumed;
    }
    if (r->pend_len) {
        ssize_t u = mpt_conn_sf_input(w->c, r->sf, r->pend, r->pend_len, w->now);
        rc = u < 0 ? u : 0;
        if (u < 0)
            u = (ssize_t)r->pend_len;
        memmove(r->pend, r->pend + u, r->pend_len - (size_t)u);
        r->pend_len -= (size_t)u;
    }
    pump(w);
    return rc;
}

/* The next frame the engine sent us on k, skipping DATA_ACK/PING/PONG if skip_ctrl. */
static int next_frame(struct w *w, int k, struct mpt_frame *f)
{
    struct rsf *r = &w->s[k];
    ssize_t n;

    if (r->parsed >= r->in_len)
        return 0;
    n = mpt_frame_decode(r->in + r->parsed, r->in_len - r->parsed, MPT_FRAME_MAX_BODY, f);
    if (n == MPT_EINCOMPLETE)
        return 0;
    ck_assert_int_gt(n, 0);
    r->parsed += (size_t)n;
    return 1;
}

/* Finds the next frame of `type` on k (others are skipped). */
static int find_frame(struct w *w, int k, uint8_t type, struct mpt_frame *f)
{
    while (next_frame(w, k, f))
        if (f->type == type)
            return 1;
    return 0;
}

/* Counts frames of `type` the engine sent on k (all of them, from the start). */
static int count_frames(struct w *w, int k, uint8_t type)
{
    struct rsf *r = &w->s[k];
    size_t off = 0;
    int cnt = 0;
    struct mpt_frame f;

    while (off < r->in_len) {
        ssize_t n = mpt_frame_decode(r->in + off, r->in_len - off, MPT_FRAME_MAX_BODY, &f);
        if (n <= 0)
            break;
        cnt += f.type == type;
        off += (size_t)n;
    }
    return cnt;
}

/* Preamble NEW + HELLO on subflow 0, and the server's HELLO_ACK read back. */
static void handshake(struct w *w, uint8_t pre_version, uint8_t vmin, uint8_t vmax)
{
    uint8_t b[64];
    size_t o = preamble(b, 0, pre_version, 0, 0, NULL);
    struct mpt_frame f;

    o = hdr(b, o, MPT_FT_HELLO, 0, 40);
    o = put8(b, o, vmin);
    o = put8(b, o, vmax);
    o = put16(b, o, MPT_FEAT_SACK);
    o = putn(b, o, w->key_c, MPT_KEY_LEN);
    o = put32(b, o, 1u << 20);
    ck_assert_int_eq(raw_send(w, 0, b, o), 0);
    ck_assert_int_eq(next_frame(w, 0, &f), 1);
    ck_assert_int_eq(f.type, MPT_FT_HELLO_ACK);
    ck_assert_int_eq(f.u.hello_ack.version, 1);
    memcpy(w->key_s, f.u.hello_ack.key, MPT_KEY_LEN);
    memcpy(w->rid, f.u.hello_ack.routing_id, MPT_ROUTING_ID_LEN);
    w->win_s = f.u.hello_ack.window;
    mpt_key_derive(w->key_c, NULL, &w->idsn_c);
    mpt_key_derive(w->key_s, &w->token_s, &w->idsn_s);
}

/* Reuses raw subflow slot k for a new TCP connection: the old one is closed
 * (what the I/O layer tells the engine when it closes a socket). */
static void rsf_reset(struct w *w, int k)
{
    if (w->s[k].sf >= 0 && w->c) {
        mpt_conn_sf_failed(w->c, w->s[k].sf, MPT_ECLOSED, w->now);
        ck_assert_int_eq(mpt_conn_sf_release(w->c, w->s[k].sf), 0);
    }
    free(w->s[k].pend);
    free(w->s[k].in);
    memset(&w->s[k], 0, sizeof w->s[k]);
    w->s[k].sf = -1;
}

static long send_data(struct w *w, int k, uint64_t dsn, const uint8_t *p, size_t n)
{
    uint8_t *b = malloc(12 + n);
    size_t o = hdr(b, 0, MPT_FT_DATA, 0, (uint16_t)(8 + n));
    long rc;

    o = put64(b, o, dsn);
    o = putn(b, o, p, n);
    rc = raw_send(w, k, b, o);
    free(b);
    return rc;
}

static long send_ack(struct w *w, int k, uint64_t ack, uint32_t window)
{
    uint8_t b[16];
    size_t o = hdr(b, 0, MPT_FT_DATA_ACK, 0, 12);
    o = put64(b, o, ack);
    o = put32(b, o, window);
    return raw_send(w, k, b, o);
}

static long send_u64(struct w *w, int k, uint8_t type, uint64_t v)
{
    uint8_t b[12];
    size_t o = hdr(b, 0, type, 0, 8);
    o = put64(b, o, v);
    return raw_send(w, k, b, o);
}

static long send_simple(struct w *w, int k, uint8_t type, uint8_t flags)
{
    uint8_t b[4];
    return raw_send(w, k, b, hdr(b, 0, type, flags, 0));
}

/* JOIN on raw subflow k with nonce byte `nb`; returns the accept verdict. With
 * confirm, completes the join with a correct (or, if !good, wrong) HMAC_C. */
static long join(struct w *w, int k, uint8_t nb, int confirm, int good)
{
    uint8_t b[64];
    size_t o = preamble(b, 0, 1, 1, 0, w->rid);
    struct mpt_frame f;
    long rc;

    memset(w->s[k].nonce, nb, MPT_NONCE_LEN);
    o = hdr(b, o, MPT_FT_JOIN, 0, 26);
    o = put64(b, o, w->token_s);
    o = putn(b, o, w->s[k].nonce, MPT_NONCE_LEN);
    o = put8(b, o, (uint8_t)k);
    o = put8(b, o, 0);
    rc = raw_send(w, k, b, o);
    if (rc < 0 || !confirm)
        return rc;
    ck_assert_int_eq(find_frame(w, k, MPT_FT_JOIN_ACK, &f), 1);
    {
        uint8_t mac[MPT_HMAC_LEN];
        mpt_join_hmac(MPT_JOIN_SERVER, w->key_s, w->key_c, f.u.join_ack.nonce, w->s[k].nonce,
                      (uint8_t)k, 0, mac);
        ck_assert(mpt_ct_equal(mac, f.u.join_ack.hmac, MPT_HMAC_LEN));
        o = hdr(b, 0, MPT_FT_JOIN_CONFIRM, 0, 32);
        mpt_join_hmac(MPT_JOIN_CLIENT, w->key_c, w->key_s, w->s[k].nonce, f.u.join_ack.nonce,
                      (uint8_t)k, 0, mac);
        if (!good)
            mac[0] ^= 1;
        o = putn(b, o, mac, MPT_HMAC_LEN);
    }
    w->now += w->join_rtt;
    return raw_send(w, k, b, o);
}

/* Advance virtual time by dt in steps, firing the engine's timers. The raw
 * client answers PINGs when pong is set (and nothing else). */
static void run_for(struct w *w, uint64_t dt, uint64_t step, int pong)
{
    uint64_t end = w->now + dt;

    while (w->now < end && w->c) {
        uint64_t t = mpt_conn_next_timeout(w->c), nx = w->now + step;
        if (t < nx)
            nx = t > w->now ? t : w->now + 1;
        if (nx > end)
            nx = end;
        w->now = nx;
        if (mpt_conn_next_timeout(w->c) <= w->now)
            mpt_conn_handle_timeout(w->c, w->now);
        pump(w);
        if (pong) {
            struct mpt_frame f;
            for (int k = 0; k < MAXS; k++)
                while (w->s[k].used && w->s[k].sf >= 0 && next_frame(w, k, &f))
                    if (f.type == MPT_FT_PING)
                        send_u64(w, k, MPT_FT_PONG, f.u.ping.opaque);
        }
        if (mpt_conn_state(w->c) == MPT_CONN_ABORTED || mpt_conn_state(w->c) == MPT_CONN_CLOSED)
            break;
    }
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* DATA payload bytes the engine wrote on raw subflow k. */
static uint64_t data_bytes(struct w *w, int k)
{
    struct rsf *r = &w->s[k];
    size_t off = 0;
    uint64_t n = 0;
    struct mpt_frame f;

    while (off < r->in_len) {
        ssize_t m = mpt_frame_decode(r->in + off, r->in_len - off, MPT_FRAME_MAX_BODY, &f);
        if (m <= 0)
            break;
        if (f.type == MPT_FT_DATA)
            n += f.u.data.len;
        off += (size_t)m;
    }
    return n;
}

/* ---- item 1: the retransmission storm ------------------------------------------- */

/*
 * A peer that reads everything, answers every PING, but never sends a
 * DATA_ACK: 64 KiB from the server must cross each subflow at most once, and
 * the connection must end with MPT_ETIMEDOUT and FASTCLOSE(TIMEOUT) within
 * the ack timeout, with bounded memory. Before the fix this turned 64 KiB into
 * gigabytes (each stall re-queued every copy, on the same subflow).
 */
static void storm(int nsub)
{
    struct w w;
    static uint8_t payload[64 * 1024];
    size_t heap0, heap_peak = 0;
    uint64_t t0;
    struct mpt_frame f;
    int fastclose = 0;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    for (int k = 1; k < nsub; k++)
        ck_assert_int_eq(join(&w, k, (uint8_t)(0x10 + k), 1, 1), 0);
    heap0 = heap_in_use();
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 31);
    ck_assert_int_eq(mpt_conn_send(w.c, payload, sizeof payload, w.now), (long)sizeof payload);
    pump(&w);
    t0 = w.now;
    for (int round = 0; round < 300 && mpt_conn_state(w.c) != MPT_CONN_ABORTED &&
                        w.wire < (256u << 20); round++) {
        run_for(&w, 100 * MS, 5 * MS, 1);
        size_t h = heap_in_use();
        if (h > heap_peak)
            heap_peak = h;
    }
    printf("storm, %d subflow(s): %" PRIu64 " bytes on the wire for %zu bytes of data "
           "(%.2fx), heap growth at most %zu KiB, %s after %.2f s\n",
           nsub, w.wire, sizeof payload, (double)w.wire / (double)sizeof payload,
           (heap_peak > heap0 ? heap_peak - heap0 : 0) / 1024,
           mpt_conn_state(w.c) == MPT_CONN_ABORTED ? "aborted" : "still open",
           (double)(w.now - t0) / 1e9);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ABORTED);
    ck_assert_int_eq(w.last_err, MPT_ETIMEDOUT);
    ck_assert_uint_eq(w.last_reason, MPT_REASON_TIMEOUT);
    /* ack timeout: 4 x subflow_timeout = 8 s after the first byte went out */
    ck_assert_uint_le(w.now - t0, 8000 * MS + 200 * MS);
    ck_assert_uint_ge(w.now - t0, 8000 * MS - 200 * MS);
    for (int k = 0; k < nsub; k++) {
        ck_assert_uint_le(data_bytes(&w, k), sizeof payload);
        w.s[k].parsed = 0;
        while (next_frame(&w, k, &f))
            if (f.type == MPT_FT_FASTCLOSE && f.u.close.reason == MPT_REASON_TIMEOUT)
                fastclose++;
    }
    ck_assert_int_eq(fastclose, nsub);
    ck_assert_uint_le(w.wire, (uint64_t)nsub * sizeof payload + 64 * 1024);
    ck_assert_uint_le(heap_peak > heap0 ? heap_peak - heap0 : 0, 1u << 20);
    w_free(&w);
}

START_TEST(storm_one_subflow)
{
    storm(1);
}
END_TEST

START_TEST(storm_three_subflows)
{
    storm(3);
}
END_TEST

/* ---- reinjection credit (fuzz_engine's "reinjection amplification") --------------- */

#define CHURN_DATA (64 * 1024)

/* Marks in `got` the stream offsets DATA frames carried on raw subflow k
 * (those not yet parsed), checking each byte against the payload; answers
 * PINGs. Returns the DATA payload bytes seen. */
static uint64_t take_data(struct w *w, int k, uint8_t *got, const uint8_t *payload)
{
    struct mpt_frame f;
    uint64_t n = 0;

    while (next_frame(w, k, &f)) {
        if (f.type == MPT_FT_PING) {
            send_u64(w, k, MPT_FT_PONG, f.u.ping.opaque);
            continue;
        }
        if (f.type != MPT_FT_DATA)
            continue;
        for (uint32_t i = 0; i < f.u.data.len; i++) {
            uint64_t o = f.u.data.dsn - w->idsn_s + i;
            ck_assert_uint_lt(o, CHURN_DATA);
            ck_assert_uint_eq(f.u.data.payload[i], payload[o]);
            got[o] = 1;
        }
        n += f.u.data.len;
    }
    return n;
}

static uint64_t prefix_len(const uint8_t *got)
{
    uint64_t o = 0;
    while (o < CHURN_DATA && got[o])
        o++;
    return o;
}

static void churn_payload(uint8_t *p)
{
    for (size_t i = 0; i < CHURN_DATA; i++)
        p[i] = (uint8_t)(i * 7 + (i >> 9));
}

/*
 * A peer that holds the keys opens a join, lets it take the unacknowledged
 * data, resets it, and again, 50 times, never acknowledging (what
 * fuzz_engine found: 52 joins turned 64 KiB into 2.4 MB, every failure
 * reinjecting all of it on the next join). With the reinjection credit the
 * engine sends the 64 KiB once and twice more at most (plus grants of one
 * frame, none here: the churn takes less than 2 x stall_min); without it,
 * 51 times. Then the peer turns honest on a last join, acknowledging what
 * it holds: every byte arrives (the credit grant and the acks' credit keep
 * the data moving), within a few seconds.
 */
START_TEST(join_churn_no_amplification)
{
    struct w w;
    static uint8_t payload[CHURN_DATA], got[CHURN_DATA];
    struct mpt_conn_stats st;
    uint64_t sent = 0, t0;
    int k = 1;

    w_init(&w);
    churn_payload(payload);
    memset(got, 0, sizeof got);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(join(&w, 1, 0x20, 1, 1), 0);
    ck_assert_int_eq(mpt_conn_send(w.c, payload, sizeof payload, w.now), (long)sizeof payload);
    pump(&w);
    for (int i = 0; i < 51; i++) {
        int nk = k == 1 ? 2 : 1;
        sent += take_data(&w, 0, got, payload) + take_data(&w, k, got, payload);
        if (i == 0)
            rsf_reset(&w, 0); /* the first subflow goes too */
        ck_assert_int_eq(join(&w, nk, (uint8_t)(0x21 + i), 1, 1), 0);
        rsf_reset(&w, k); /* its bytes are queued again: on the new join */
        run_for(&w, 5 * MS, 5 * MS, 0);
        k = nk;
    }
    sent += take_data(&w, k, got, payload);
    mpt_conn_get_stats(w.c, &st);
    printf("join churn: %" PRIu64 " DATA payload bytes for %d bytes written (%.2fx; engine: "
           "%" PRIu64 " sent, %" PRIu64 " reinjected), throttled %" PRIu64 " time(s)\n",
           sent, CHURN_DATA, (double)sent / CHURN_DATA, st.bytes_sent, st.bytes_reinjected,
           st.reinj_throttled);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    ck_assert_uint_le(st.bytes_reinjected, 2 * CHURN_DATA);
    ck_assert_uint_le(sent, 3 * CHURN_DATA);
    ck_assert_uint_le(st.bytes_sent, 3 * CHURN_DATA);
    ck_assert_uint_ge(st.reinj_throttled, 1);

    /* the peer acknowledges from now on: everything arrives on the last
     * join (what the reset ones carried does not count) */
    memset(got, 0, sizeof got);
    w.s[k].parsed = 0;
    t0 = w.now;
    while (prefix_len(got) < CHURN_DATA && w.now - t0 < 6000 * MS &&
           mpt_conn_state(w.c) == MPT_CONN_ESTABLISHED) {
        uint64_t before = prefix_len(got);
        run_for(&w, 10 * MS, 10 * MS, 0);
        sent += take_data(&w, k, got, payload);
        if (prefix_len(got) != before)
            ck_assert_int_eq(send_ack(&w, k, w.idsn_s + prefix_len(got), 1 << 20), 0);
    }
    printf("join churn: the honest join got every byte %.2f s later, %" PRIu64
           " DATA payload bytes in all\n",
           (double)(w.now - t0) / 1e9, sent);
    ck_assert_uint_eq(prefix_len(got), CHURN_DATA);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    ck_assert_uint_le(w.now - t0, 3000 * MS);
    w_free(&w);
}
END_TEST

/* An honest double failover is as fast as before the credit: the first
 * subflow fails with 64 KiB unacknowledged and the join takes it all at
 * once; that join fails too before acknowledging anything and a third one
 * gets all of it at once again (no virtual time passes). */
START_TEST(double_failover_reinjects_at_once)
{
    struct w w;
    static uint8_t payload[CHURN_DATA], got[CHURN_DATA];
    struct mpt_conn_stats st;

    w_init(&w);
    churn_payload(payload);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(mpt_conn_send(w.c, payload, sizeof payload, w.now), (long)sizeof payload);
    pump(&w);
    ck_assert_int_eq(join(&w, 1, 0x31, 1, 1), 0);
    for (int k = 0; k < 2; k++) {
        memset(got, 0, sizeof got);
        rsf_reset(&w, k);
        if (k == 0)
            ck_assert_int_eq(join(&w, 2, 0x32, 1, 1), 0);
        pump(&w);
        take_data(&w, k + 1, got, payload);
        if (k == 0)
            take_data(&w, 2, got, payload);
        /* every byte is on its way on the surviving subflows */
        for (int kk = k + 1; kk < 3; kk++) {
            w.s[kk].parsed = 0;
            take_data(&w, kk, got, payload);
        }
        ck_assert_uint_eq(prefix_len(got), CHURN_DATA);
    }
    mpt_conn_get_stats(w.c, &st);
    ck_assert_uint_eq(st.reinj_throttled, 0);
    w_free(&w);
}
END_TEST

/* A peer that acknowledges is never timed out, however long the connection lives. */
START_TEST(ack_timeout_not_when_acked)
{
    struct w w;
    uint8_t buf[1000];

    w_init(&w);
    handshake(&w, 1, 1, 1);
    memset(buf, 7, sizeof buf);
    ck_assert_int_eq(mpt_conn_send(w.c, buf, sizeof buf, w.now), (long)sizeof buf);
    pump(&w);
    /* the peer acks everything: no timeout */
    ck_assert_int_eq(send_ack(&w, 0, w.idsn_s + 1000, 1 << 20), 0);
    run_for(&w, 20000 * MS, 10 * MS, 1);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    w_free(&w);
}
END_TEST

/* ---- item 3: any in-window pattern fits -------------------------------------------- */

START_TEST(fifty_thousand_single_byte_fragments)
{
    enum { N = 50000 };
    struct w w;
    static uint8_t data[2 * N + 1], out[2 * N + 1];
    size_t got = 0;
    ssize_t r;
    uint8_t b[8192];
    size_t o = 0;

    w_init(&w);
    w.set.rcvbuf = 1 << 20; /* only for the next connection: make a new server */
    mpt_server_free(w.srv);
    ck_assert_int_eq(mpt_server_new(&w.set, &w.srv), 0);
    handshake(&w, 1, 1, 1);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    /* every odd byte, in batches of frames */
    for (size_t i = 0; i < N; i++) {
        o = hdr(b, o, MPT_FT_DATA, 0, 9);
        o = put64(b, o, w.idsn_c + 2 * i + 1);
        o = put8(b, o, data[2 * i + 1]);
        if (o > sizeof b - 13 || i == N - 1) {
            ck_assert_int_ge(raw_send(&w, 0, b, o), 0);
            o = 0;
        }
    }
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    ck_assert_int_eq(mpt_conn_recv(w.c, out, sizeof out, w.now), MPT_EAGAIN);
    /* then the fill: every even byte, the last one too */
    for (size_t i = 0; i <= N; i++) {
        o = hdr(b, o, MPT_FT_DATA, 0, 9);
        o = put64(b, o, w.idsn_c + 2 * i);
        o = put8(b, o, data[2 * i]);
        if (o > sizeof b - 13 || i == N) {
            ck_assert_int_ge(raw_send(&w, 0, b, o), 0);
            o = 0;
        }
    }
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    while ((r = mpt_conn_recv(w.c, out + got, sizeof out - got, w.now)) > 0)
        got += (size_t)r;
    ck_assert_uint_eq(got, sizeof data);
    ck_assert_int_eq(memcmp(out, data, sizeof data), 0);
    /* and the cumulative ack says so */
    {
        struct mpt_frame f, last;
        int any = 0;
        pump(&w);
        while (find_frame(&w, 0, MPT_FT_DATA_ACK, &f)) {
            last = f;
            any = 1;
        }
        ck_assert(any);
        ck_assert_uint_eq(last.u.data_ack.ack, w.idsn_c + sizeof data);
    }
    w_free(&w);
}
END_TEST

/* A lent buffer over two subflows: out-of-order DATA inside it lands in it,
 * DATA beyond it in the ring; the subflow to read first and how much to
 * read follow the loan (mpt_conn_recv_next_sf, mpt_conn_recv_read_hint);
 * every byte arrives once, in order. */
static void send_range(struct w *w, int k, const uint8_t *data, size_t a, size_t b)
{
    for (size_t o = a; o < b; o += 16384) {
        size_t n = b - o < 16384 ? b - o : 16384;
        ck_assert_int_eq(send_data(w, k, w->idsn_c + o, data + o, n), 0);
    }
}

START_TEST(lend_out_of_order_two_subflows)
{
    enum { K = 1024 };
    static uint8_t data[128 * K], out[64 * K], rest[64 * K];
    struct w w;
    int s0, s1;
    ssize_t r;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(join(&w, 1, 0x51, 1, 1), 0);
    s0 = w.s[0].sf;
    s1 = w.s[1].sf;
    ck_assert_int_ge(s1, 0);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 29 + (i >> 9));
    memset(out, 0, sizeof out);
    ck_assert_int_eq(mpt_conn_recv_lend(w.c, out, sizeof out), 0);
    ck_assert_int_eq(mpt_conn_recv_lend(w.c, out, sizeof out), MPT_ESTATE);
    /* out of order inside the loan: straight into it */
    send_range(&w, 1, data, 16 * K, 32 * K);
    ck_assert_int_eq(memcmp(out + 16 * K, data + 16 * K, 16 * K), 0);
    ck_assert_uint_eq(mpt_conn_recv_lent(w.c), 0);
    ck_assert_int_eq(mpt_conn_recv_lend_waiting(w.c), 1);
    ck_assert_int_eq(mpt_conn_recv(w.c, rest, sizeof rest, w.now), MPT_EAGAIN);
    /* the hole: now 32 KiB in order; subflow 1 carries what comes next */
    send_range(&w, 0, data, 0, 16 * K);
    ck_assert_uint_eq(mpt_conn_recv_lent(w.c), 32 * K);
    ck_assert_int_eq(mpt_conn_recv(w.c, rest, sizeof rest, w.now), MPT_EAGAIN);
    ck_assert_int_eq(mpt_conn_recv_next_sf(w.c), s1);
    ck_assert_uint_eq(mpt_conn_recv_read_hint(w.c, s1), 32 * K + 32 * K / 256 + MPT_DATA_HDR_LEN);
    ck_assert_uint_eq(mpt_conn_recv_read_hint(w.c, s0), 0);
    /* beyond the loan on subflow 0: to the ring, no read limit */
    send_range(&w, 0, data, 80 * K, 96 * K);
    ck_assert_uint_eq(mpt_conn_recv_read_hint(w.c, s0), 0);
    ck_assert_uint_eq(mpt_conn_recv_read_hint(w.c, s1), 32 * K + 32 * K / 256 + MPT_DATA_HDR_LEN);
    /* the loan fills, and 8 KiB goes on into the ring */
    send_range(&w, 1, data, 32 * K, 72 * K);
    ck_assert_int_eq(mpt_conn_recv_lend_full(w.c), 1);
    ck_assert_int_eq(mpt_conn_recv_next_sf(w.c), -1);
    ck_assert_uint_eq(mpt_conn_recv_read_hint(w.c, s0), 0);
    ck_assert_uint_eq(mpt_conn_recv_unlend(w.c, w.now), 64 * K);
    ck_assert_int_eq(memcmp(out, data, 64 * K), 0);
    ck_assert_int_eq(mpt_conn_recv(w.c, rest, sizeof rest, w.now), 8 * K);
    ck_assert_int_eq(memcmp(rest, data + 64 * K, 8 * K), 0);
    ck_assert_int_eq(mpt_conn_recv(w.c, rest, sizeof rest, w.now), MPT_EAGAIN);
    /* a second loan over the hole at [72, 80) KiB and the held [80, 96) */
    memset(out, 0, sizeof out);
    ck_assert_int_eq(mpt_conn_recv_lend(w.c, out, sizeof out), 0);
    ck_assert_int_eq(memcmp(out + 8 * K, data + 80 * K, 16 * K), 0);
    send_range(&w, 1, data, 72 * K, 80 * K);
    ck_assert_uint_eq(mpt_conn_recv_unlend(w.c, w.now), 24 * K);
    ck_assert_int_eq(memcmp(out, data + 72 * K, 24 * K), 0);
    r = mpt_conn_recv(w.c, rest, sizeof rest, w.now);
    ck_assert_int_eq(r, MPT_EAGAIN);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    w_free(&w);
}
END_TEST

/* ---- item 4: CLOSE without DATA_FIN -------------------------------------------------- */

START_TEST(close_without_data_fin_is_an_error)
{
    struct w w;
    uint8_t buf[100], out[200];
    struct mpt_frame f;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    memset(buf, 'x', sizeof buf);
    ck_assert_int_eq(send_data(&w, 0, w.idsn_c, buf, sizeof buf), 0);
    /* the server application has unsent data of its own */
    ck_assert_int_eq(mpt_conn_send(w.c, buf, 10, w.now), 10);
    ck_assert_int_lt(send_simple(&w, 0, MPT_FT_CLOSE, 0), 0);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ABORTED);
    ck_assert_int_eq(w.last_err, MPT_EPROTO);
    /* never end of stream: the application sees the error */
    ck_assert_int_eq(mpt_conn_recv(w.c, out, sizeof out, w.now), MPT_EPROTO);
    ck_assert_int_eq(find_frame(&w, 0, MPT_FT_ERROR, &f), 1);
    ck_assert_uint_eq(f.u.close.reason, MPT_REASON_PROTOCOL);
    ck_assert_uint_eq(f.u.close.frame_type, MPT_FT_CLOSE);
    ck_assert_int_eq(find_frame(&w, 0, MPT_FT_FASTCLOSE, &f), 1);
    w_free(&w);
}
END_TEST

/* Our DATA_FIN sent, the peer's DATA_FIN received but data before it missing:
 * still an error (11.1 "and every byte before it"). */
START_TEST(close_with_missing_data_is_an_error)
{
    struct w w;
    uint8_t buf[100];

    w_init(&w);
    handshake(&w, 1, 1, 1);
    memset(buf, 'y', sizeof buf);
    ck_assert_int_eq(mpt_conn_shutdown(w.c, w.now), 0);
    pump(&w);
    ck_assert_int_eq(send_data(&w, 0, w.idsn_c + 50, buf, 50), 0); /* 0..49 missing */
    ck_assert_int_eq(send_u64(&w, 0, MPT_FT_DATA_FIN, w.idsn_c + 100), 0);
    ck_assert_int_lt(send_simple(&w, 0, MPT_FT_CLOSE, 0), 0);
    ck_assert_int_eq(w.last_err, MPT_EPROTO);
    w_free(&w);
}
END_TEST

/* The graceful path still works, a duplicate CLOSE is ignored, and frames
 * after CLOSED are discarded (11.1). */
START_TEST(graceful_close_and_duplicate_close)
{
    struct w w;
    uint8_t buf[10], out[20];
    struct mpt_frame f;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    memset(buf, 'z', sizeof buf);
    ck_assert_int_eq(send_data(&w, 0, w.idsn_c, buf, sizeof buf), 0);
    ck_assert_int_eq(send_u64(&w, 0, MPT_FT_DATA_FIN, w.idsn_c + 10), 0);
    ck_assert_int_eq(mpt_conn_recv(w.c, out, sizeof out, w.now), 10);
    ck_assert_int_eq(mpt_conn_recv(w.c, out, sizeof out, w.now), 0);
    ck_assert_int_eq(mpt_conn_shutdown(w.c, w.now), 0);
    pump(&w);
    ck_assert_int_eq(find_frame(&w, 0, MPT_FT_DATA_FIN, &f), 1);
    ck_assert_uint_eq(f.u.data_fin.dsn, w.idsn_s);
    /* the CLOSE says our FIN was acknowledged */
    ck_assert_int_eq(send_simple(&w, 0, MPT_FT_CLOSE, 0), 0);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_CLOSED);
    ck_assert_int_eq(w.ev[MPT_EV_CLOSED], 1);
    ck_assert_int_eq(find_frame(&w, 0, MPT_FT_CLOSE, &f), 1);
    ck_assert_int_eq(send_simple(&w, 0, MPT_FT_CLOSE, 0), 0); /* discarded */
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_CLOSED);
    ck_assert_int_eq(w.ev[MPT_EV_ERROR], 0);
    w_free(&w);
}
END_TEST

START_TEST(duplicate_close_before_closed_is_ignored)
{
    struct w w;
    uint8_t two[8];

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(send_u64(&w, 0, MPT_FT_DATA_FIN, w.idsn_c), 0);
    ck_assert_int_eq(mpt_conn_shutdown(w.c, w.now), 0);
    pump(&w);
    /* two CLOSEs in one read: the second is a duplicate */
    hdr(two, hdr(two, 0, MPT_FT_CLOSE, 0, 0), MPT_FT_CLOSE, 0, 0);
    ck_assert_int_ge(raw_send(&w, 0, two, sizeof two), 0);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_CLOSED);
    ck_assert_int_eq(w.ev[MPT_EV_ERROR], 0);
    w_free(&w);
}
END_TEST

/* ---- item 5: version negotiation --------------------------------------------------- */

START_TEST(new_preamble_version_is_a_hint)
{
    struct w w;

    w_init(&w);
    handshake(&w, 2, 1, 2); /* a v2 client offering 1..2: the server picks 1 */
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    w_free(&w);
    w_init(&w);
    handshake(&w, 7, 1, 7);
    w_free(&w);
}
END_TEST

START_TEST(no_common_version)
{
    struct w w;
    uint8_t b[64];
    size_t o;
    struct mpt_frame f;

    w_init(&w);
    o = preamble(b, 0, 3, 0, 0, NULL);
    o = hdr(b, o, MPT_FT_HELLO, 0, 40);
    o = put8(b, o, 2);
    o = put8(b, o, 3);
    o = put16(b, o, 0);
    o = putn(b, o, w.key_c, MPT_KEY_LEN);
    o = put32(b, o, 1000);
    ck_assert_int_eq(raw_send(&w, 0, b, o), MPT_EVERSION);
    ck_assert_int_gt(mpt_frame_decode(w.s[0].reply, w.s[0].reply_len, 300, &f), 0);
    ck_assert_int_eq(f.type, MPT_FT_ERROR);
    ck_assert_uint_eq(f.u.close.reason, MPT_REASON_VERSION);
    ck_assert_uint_eq(f.u.close.frame_type, MPT_FT_HELLO);
    ck_assert_uint_eq(f.u.close.text_len, strlen("supported 1-1"));
    ck_assert_int_eq(memcmp(f.u.close.text, "supported 1-1", f.u.close.text_len), 0);
    w_free(&w);
}
END_TEST

/* A JOIN in a version the server does not know: VERSION as soon as the 16
 * preamble bytes are in, before the frame (which it could not parse), and
 * before the token lookup (8.1 step 0). */
START_TEST(join_in_unknown_version)
{
    struct w w;
    uint8_t b[16], rid[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct mpt_frame f;

    w_init(&w);
    preamble(b, 0, 2, 1, 0, rid);
    ck_assert_int_eq(raw_send(&w, 0, b, 16), MPT_EVERSION);
    ck_assert_int_gt(mpt_frame_decode(w.s[0].reply, w.s[0].reply_len, 300, &f), 0);
    ck_assert_uint_eq(f.u.close.reason, MPT_REASON_VERSION);
    ck_assert_uint_eq(f.u.close.frame_type, MPT_FT_JOIN);
    w_free(&w);
}
END_TEST

/* ---- item 6 ------------------------------------------------------------------------- */

START_TEST(data_ack_for_data_never_sent)
{
    struct w w;
    uint8_t buf[100];
    struct mpt_frame f;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    memset(buf, 1, sizeof buf);
    ck_assert_int_eq(mpt_conn_send(w.c, buf, sizeof buf, w.now), 100);
    pump(&w);
    ck_assert_int_eq(send_ack(&w, 0, w.idsn_s + 100, 1000), 0); /* all of it: fine */
    ck_assert_int_lt(send_ack(&w, 0, w.idsn_s + 101, 1000), 0); /* one byte more */
    ck_assert_int_eq(w.last_err, MPT_EPROTO);
    ck_assert_int_eq(find_frame(&w, 0, MPT_FT_ERROR, &f), 1);
    ck_assert_uint_eq(f.u.close.frame_type, MPT_FT_DATA_ACK);
    w_free(&w);
}
END_TEST

/* An Ack exactly 2^63 away is behind (stale), not ahead: ignored (9.1, 9.3). */
START_TEST(data_ack_two_to_63_away_is_stale)
{
    struct w w;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(send_ack(&w, 0, w.idsn_s + (1ull << 63), 1000), 0);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    ck_assert_int_lt(send_ack(&w, 0, w.idsn_s + (1ull << 63) - 1, 1000), 0); /* ahead */
    w_free(&w);
}
END_TEST

static size_t add_addr_frame(struct w *w, uint8_t *b, uint8_t flags, uint8_t id, int good)
{
    uint8_t a4[4] = {192, 0, 2, 9}, mac[MPT_ADDR_HMAC_LEN];
    size_t o = hdr(b, 0, MPT_FT_ADD_ADDR, flags, 16);

    mpt_addr_hmac(w->key_c, w->key_s, id, 4, 7000, a4, mac);
    if (!good)
        mac[3] ^= 0x80;
    o = put8(b, o, id);
    o = put8(b, o, 4);
    o = put16(b, o, 7000);
    o = putn(b, o, a4, 4);
    return putn(b, o, mac, MPT_ADDR_HMAC_LEN);
}

START_TEST(add_addr_id_zero_and_bad_hmac_ignored)
{
    struct w w;
    uint8_t b[32];
    struct mpt_conn_stats st;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(raw_send(&w, 0, b, add_addr_frame(&w, b, 0, 0, 1)), 0);
    ck_assert_int_eq(raw_send(&w, 0, b, add_addr_frame(&w, b, 0, 3, 0)), 0);
    ck_assert_int_eq(count_frames(&w, 0, MPT_FT_ADD_ADDR), 0); /* neither echoed */
    mpt_conn_get_stats(w.c, &st);
    ck_assert_uint_eq(st.addr_rejected, 2);
    ck_assert_int_eq(raw_send(&w, 0, b, add_addr_frame(&w, b, 0, 3, 1)), 0);
    ck_assert_int_eq(count_frames(&w, 0, MPT_FT_ADD_ADDR), 1); /* a valid one is echoed */
    w_free(&w);
}
END_TEST

/* Our ADD_ADDR is resent on another subflow when the one carrying it dies
 * before the echo; an echo that matches (the HMAC we computed) stops it; an
 * echo of something else is ignored (10.2). */
START_TEST(add_addr_echo_matching_and_resend)
{
    struct w w;
    uint8_t a4[4] = {198, 51, 100, 1}, b[32];
    struct mpt_frame f;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(join(&w, 1, 0x21, 1, 1), 0);
    ck_assert_int_eq(join(&w, 2, 0x22, 1, 1), 0);
    ck_assert_int_eq(mpt_conn_add_addr(w.c, 5, 4, a4, 9000, w.now), 0);
    ck_assert_int_eq(mpt_conn_add_addr(w.c, 0, 4, a4, 9000, w.now), MPT_EINVAL);
    pump(&w);
    int carrier = -1;
    for (int k = 0; k < 3; k++)
        if (count_frames(&w, k, MPT_FT_ADD_ADDR))
            carrier = k;
    ck_assert_int_ge(carrier, 0);
    mpt_conn_sf_failed(w.c, w.s[carrier].sf, MPT_ERESET, w.now);
    pump(&w);
    int again = -1;
    for (int k = 0; k < 3; k++)
        if (k != carrier && count_frames(&w, k, MPT_FT_ADD_ADDR))
            again = k;
    ck_assert_int_ge(again, 0);
    w.s[again].parsed = 0;
    ck_assert_int_eq(find_frame(&w, again, MPT_FT_ADD_ADDR, &f), 1);
    {
        uint8_t mac[MPT_ADDR_HMAC_LEN];
        mpt_addr_hmac(w.key_s, w.key_c, 5, 4, 9000, a4, mac);
        ck_assert(mpt_ct_equal(mac, f.u.add_addr.hmac, MPT_ADDR_HMAC_LEN));
        /* a wrong echo first: ignored, then the right one */
        size_t o = hdr(b, 0, MPT_FT_ADD_ADDR, MPT_FF_ADD_ADDR_ECHO, 16);
        o = put8(b, o, 5);
        o = put8(b, o, 4);
        o = put16(b, o, 9001);
        o = putn(b, o, a4, 4);
        o = putn(b, o, mac, 8);
        ck_assert_int_eq(raw_send(&w, again, b, o), 0);
        put16(b, 6, 9000);
        ck_assert_int_eq(raw_send(&w, again, b, o), 0);
    }
    /* echoed: the next failure resends nothing */
    int before = 0, after = 0, other = 3 - carrier - again;
    before = count_frames(&w, other, MPT_FT_ADD_ADDR);
    mpt_conn_sf_failed(w.c, w.s[again].sf, MPT_ERESET, w.now);
    pump(&w);
    after = count_frames(&w, other, MPT_FT_ADD_ADDR);
    ck_assert_int_eq(after, before);
    w_free(&w);
}
END_TEST

/* REMOVE_ADDR(0) from the client closes the first subflow (10.3). */
START_TEST(remove_addr_zero_closes_first_subflow)
{
    struct w w;
    uint8_t b[8];
    struct mpt_frame f;
    size_t o;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(join(&w, 1, 0x31, 1, 1), 0); /* JOIN addr id 1 */
    o = hdr(b, 0, MPT_FT_REMOVE_ADDR, 0, 1);
    o = put8(b, o, 0);
    ck_assert_int_eq(raw_send(&w, 1, b, o), 0);
    ck_assert_int_eq(mpt_conn_sf_state(w.c, w.s[0].sf), MPT_SF_CLOSING);
    ck_assert_int_eq(mpt_conn_sf_state(w.c, w.s[1].sf), MPT_SF_ESTABLISHED);
    ck_assert_int_eq(find_frame(&w, 0, MPT_FT_SUBFLOW_CLOSE, &f), 1);
    ck_assert_uint_eq(f.u.close.reason, MPT_REASON_PATH_REMOVED);
    ck_assert_int_eq(w.ev[MPT_EV_ADDR_REMOVED], 1);
    w_free(&w);
}
END_TEST

/* Before the handshake: ERROR names the offending frame type (4.4, 8.1);
 * an invalid preamble gets no reply at all (3.2). */
START_TEST(pre_handshake_errors)
{
    struct w w;
    uint8_t b[64];
    size_t o;
    struct mpt_frame f;

    w_init(&w);
    o = preamble(b, 0, 1, 0, 0, NULL);
    o = hdr(b, o, 0x16, 0, 2); /* unknown mandatory type */
    o = put16(b, o, 0);
    ck_assert_int_eq(raw_send(&w, 0, b, o), MPT_EFRAME_TYPE);
    ck_assert_int_gt(mpt_frame_decode(w.s[0].reply, w.s[0].reply_len, 300, &f), 0);
    ck_assert_uint_eq(f.u.close.frame_type, 0x16);
    o = preamble(b, 0, 1, 0, 0, NULL);
    o = hdr(b, o, MPT_FT_DATA, 0, 9);
    o = put64(b, o, 0);
    o = put8(b, o, 0);
    ck_assert_int_eq(raw_send(&w, 1, b, o), MPT_EPROTO);
    ck_assert_int_gt(mpt_frame_decode(w.s[1].reply, w.s[1].reply_len, 300, &f), 0);
    ck_assert_uint_eq(f.u.close.frame_type, MPT_FT_DATA);
    /* bad magic: nothing sent back */
    memcpy(b, "HTTP/1.1", 8);
    ck_assert_int_eq(raw_send(&w, 2, b, 8), MPT_EPREAMBLE);
    ck_assert_uint_eq(w.s[2].reply_len, 0);
    /* reserved byte set: nothing sent back */
    preamble(b, 0, 1, 0, 0, NULL);
    b[7] = 1;
    ck_assert_int_lt(raw_send(&w, 3, b, 8), 0);
    ck_assert_uint_eq(w.s[3].reply_len, 0);
    w_free(&w);
}
END_TEST

/* The 260-byte limit is per frame and decided from the header (4.3). */
START_TEST(pre_handshake_frame_limit)
{
    struct w w;
    uint8_t b[16];
    size_t o;

    w_init(&w);
    o = preamble(b, 0, 1, 0, 0, NULL);
    o = hdr(b, o, 0x90, 0, 261); /* an ignorable type, too big: no need for its body */
    ck_assert_int_eq(raw_send(&w, 0, b, o), MPT_EFRAME_TOOBIG);
    w_free(&w);
    /* and on a join in its handshake */
    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(join(&w, 1, 0x41, 0, 1), 0);
    o = hdr(b, 0, 0x90, 0, 300);
    ck_assert_int_eq(raw_send(&w, 1, b, o), MPT_EFRAME_TOOBIG);
    ck_assert_int_eq(mpt_conn_sf_state(w.c, w.s[1].sf), MPT_SF_FAILED);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    w_free(&w);
}
END_TEST

/* A TLS-flag preamble to a server without TLS: refused at once, in clear (3.2). */
START_TEST(tls_preamble_refused_at_once)
{
    struct w w;
    uint8_t b[8];
    struct mpt_frame f;

    w_init(&w);
    preamble(b, 0, 1, 0, MPT_PREF_TLS, NULL);
    ck_assert_int_eq(raw_send(&w, 0, b, 8), MPT_ETLS);
    ck_assert_int_gt(mpt_frame_decode(w.s[0].reply, w.s[0].reply_len, 300, &f), 0);
    ck_assert_int_eq(f.type, MPT_FT_ERROR);
    ck_assert_uint_eq(f.u.close.reason, MPT_REASON_PROTOCOL);
    ck_assert_uint_gt(f.u.close.text_len, 0);
    w_free(&w);
}
END_TEST

/* 8.2: failed joins leave no nonce behind; 70 unauthenticated JOINs do not
 * flush a real join's nonce; a nonce in a join still in handshake is refused. */
START_TEST(replay_cache_keeps_only_authenticated_nonces)
{
    struct w w;

    w_init(&w);
    w.set.max_subflows = 32;
    mpt_server_free(w.srv);
    ck_assert_int_eq(mpt_server_new(&w.set, &w.srv), 0);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(join(&w, 1, 0xAA, 1, 1), 0); /* the victim's join */
    ck_assert_int_eq(mpt_conn_sf_state(w.c, w.s[1].sf), MPT_SF_ESTABLISHED);
    /* 70 JOINs that never authenticate, each failing its HMAC */
    for (int i = 0; i < 70; i++) {
        ck_assert_int_eq(join(&w, 2, (uint8_t)i, 1, 0), MPT_EAUTH);
        rsf_reset(&w, 2); /* its socket is closed */
    }
    /* the victim's nonce is still remembered */
    rsf_reset(&w, 2);
    ck_assert_int_eq(join(&w, 2, 0xAA, 0, 1), MPT_EREPLAY);
    /* a failed join's nonce was not remembered: it may be used again */
    rsf_reset(&w, 3);
    ck_assert_int_eq(join(&w, 3, 5, 0, 1), 0);
    /* ... and while that join is in its handshake, its nonce is taken */
    rsf_reset(&w, 4);
    ck_assert_int_eq(join(&w, 4, 5, 0, 1), MPT_EREPLAY);
    w_free(&w);
}
END_TEST

/* ---- item 7 ------------------------------------------------------------------------- */

/* An invalid FASTCLOSE or ERROR is never answered with ERROR (13.1). */
START_TEST(invalid_fastclose_and_error_not_answered)
{
    struct w w;
    uint8_t b[8];
    size_t o;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    o = hdr(b, 0, MPT_FT_FASTCLOSE, 0, 3); /* body < 4 */
    o = put16(b, o, 0);
    o = put8(b, o, 0);
    ck_assert_int_lt(raw_send(&w, 0, b, o), 0);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ABORTED);
    ck_assert_int_eq(w.last_err, MPT_EPROTO);
    ck_assert_int_eq(count_frames(&w, 0, MPT_FT_ERROR), 0);
    ck_assert_int_eq(count_frames(&w, 0, MPT_FT_FASTCLOSE), 1);
    w_free(&w);

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(join(&w, 1, 0x51, 0, 1), 0);
    o = hdr(b, 0, MPT_FT_ERROR, 0, 4); /* body < 5 */
    o = put32(b, o, 1);
    ck_assert_int_lt(raw_send(&w, 1, b, o), 0);
    ck_assert_int_eq(mpt_conn_sf_state(w.c, w.s[1].sf), MPT_SF_FAILED);
    ck_assert_int_eq(count_frames(&w, 1, MPT_FT_ERROR), 0);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    w_free(&w);
}
END_TEST

/* DATA 2^63 away or more than 2^32 behind is a protocol error (9.1, 9.2). */
START_TEST(far_away_data)
{
    struct w w;
    uint8_t x = 1;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(send_data(&w, 0, w.idsn_c - 100, &x, 1), 0); /* an old duplicate */
    ck_assert_int_lt(send_data(&w, 0, w.idsn_c + (1ull << 63), &x, 1), 0);
    ck_assert_int_eq(w.last_err, MPT_EPROTO);
    w_free(&w);
}
END_TEST

/* A DATA_FIN at the right edge is fine; beyond it FLOW; before held data
 * PROTOCOL (9.7). */
START_TEST(data_fin_and_the_right_edge)
{
    struct w w;
    uint8_t x = 1;
    struct mpt_frame f;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(send_u64(&w, 0, MPT_FT_DATA_FIN, w.idsn_c + w.set.rcvbuf), 0);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_CLOSING);
    w_free(&w);

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_lt(send_u64(&w, 0, MPT_FT_DATA_FIN, w.idsn_c + w.set.rcvbuf + 1), 0);
    ck_assert_int_eq(w.last_err, MPT_EFLOW);
    ck_assert_int_eq(find_frame(&w, 0, MPT_FT_ERROR, &f), 1);
    ck_assert_uint_eq(f.u.close.reason, MPT_REASON_FLOW);
    ck_assert_uint_eq(f.u.close.frame_type, MPT_FT_DATA_FIN);
    w_free(&w);

    w_init(&w);
    handshake(&w, 1, 1, 1);
    ck_assert_int_eq(send_data(&w, 0, w.idsn_c + 10, &x, 1), 0); /* held out of order */
    ck_assert_int_lt(send_u64(&w, 0, MPT_FT_DATA_FIN, w.idsn_c + 5), 0);
    ck_assert_int_eq(w.last_err, MPT_EPROTO);
    w_free(&w);
}
END_TEST

/* Every PING is answered: a flood in one read costs one PONG carrying the
 * newest opaque; PINGs read one at a time each get their own (11.4). */
START_TEST(ping_flood_answered_with_newest)
{
    struct w w;
    static uint8_t b[12 * 1000];
    size_t o = 0;
    struct mpt_frame f, last;
    int n = 0;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    w.s[0].parsed = w.s[0].in_len; /* skip what came before */
    for (int i = 0; i < 1000; i++) {
        o = hdr(b, o, MPT_FT_PING, 0, 8);
        o = put64(b, o, 0x1000 + (uint64_t)i);
    }
    ck_assert_int_ge(raw_send(&w, 0, b, o), 0);
    while (find_frame(&w, 0, MPT_FT_PONG, &f)) {
        last = f;
        n++;
    }
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(last.u.ping.opaque, 0x1000 + 999);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_ge(send_u64(&w, 0, MPT_FT_PING, 0x5000 + (uint64_t)i), 0);
        ck_assert_int_eq(find_frame(&w, 0, MPT_FT_PONG, &f), 1);
        ck_assert_uint_eq(f.u.ping.opaque, 0x5000 + (uint64_t)i);
    }
    w_free(&w);
}
END_TEST

/* Idle cost (issue 15): while the client's PINGs arrive every interval the
 * server sends none of its own (it answers them); once they stop, it pings
 * again within 1.5 intervals, and a silent client still fails the subflow
 * at subflow_timeout. */
START_TEST(server_pings_only_when_the_client_does_not)
{
    struct w w;
    struct mpt_frame f;
    int before, pings = 0;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    run_for(&w, 10 * MS, 10 * MS, 1); /* its first PING (an RTT sample, at once), answered */
    w.s[0].parsed = w.s[0].in_len;
    before = count_frames(&w, 0, MPT_FT_PING);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_ge(send_u64(&w, 0, MPT_FT_PING, 0x7000 + (uint64_t)i), 0);
        run_for(&w, w.set.ping_interval, 10 * MS, 0);
        ck_assert_int_eq(find_frame(&w, 0, MPT_FT_PONG, &f), 1);
        ck_assert_uint_eq(f.u.ping.opaque, 0x7000 + (uint64_t)i);
        while (next_frame(&w, 0, &f))
            pings += f.type == MPT_FT_PING;
    }
    ck_assert_int_eq(before, 1);
    ck_assert_int_eq(pings, 0);
    /* The client goes quiet but answers: the server's PINGs resume. */
    run_for(&w, w.set.ping_interval * 3 / 2 + 10 * MS, 10 * MS, 1);
    ck_assert_int_ge(count_frames(&w, 0, MPT_FT_PING), before + 1);
    run_for(&w, 5 * w.set.ping_interval, 10 * MS, 1);
    ck_assert_int_ge(count_frames(&w, 0, MPT_FT_PING), before + 5);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    /* Silent and not answering: failure as before, within subflow_timeout
     * (+ one interval until a PING is outstanding). */
    run_for(&w, w.set.subflow_timeout + 2 * w.set.ping_interval, 10 * MS, 0);
    ck_assert_int_ne(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    w_free(&w);
}
END_TEST

/* A join's JOIN_ACK -> JOIN_CONFIRM is the server's first RTT sample on it:
 * no PING right after the handshake (issue 15: four system calls per
 * subflow on each side), the first one a ping_interval later; the first
 * subflow, with no such sample, pings at once, right behind its HELLO_ACK. */
START_TEST(join_handshake_is_the_first_rtt_sample)
{
    struct w w;
    struct mpt_sf_stats st;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    /* the first subflow's PING follows the HELLO_ACK at once, before any
     * timer: the same write */
    struct mpt_frame f;
    ck_assert_int_eq(next_frame(&w, 0, &f), 1);
    ck_assert_int_eq(f.type, MPT_FT_PING);
    ck_assert_int_ge(send_u64(&w, 0, MPT_FT_PONG, f.u.ping.opaque), 0);
    run_for(&w, 10 * MS, 10 * MS, 1);
    ck_assert_int_eq(count_frames(&w, 0, MPT_FT_PING), 1);
    w.join_rtt = 30 * MS;
    ck_assert_int_eq(join(&w, 1, 0x21, 1, 1), 0);
    ck_assert_int_ge(w.s[1].sf, 0);
    ck_assert_int_eq(mpt_conn_sf_get_stats(w.c, w.s[1].sf, &st), 0);
    ck_assert_int_eq(st.state, MPT_SF_ESTABLISHED);
    ck_assert_uint_eq(st.srtt, 30 * MS);
    w.s[1].parsed = w.s[1].in_len; /* past the JOIN_ACK */
    run_for(&w, w.set.ping_interval - 20 * MS, 10 * MS, 1);
    ck_assert_int_eq(count_frames(&w, 1, MPT_FT_PING), 0);
    run_for(&w, 40 * MS, 10 * MS, 1);
    ck_assert_int_eq(count_frames(&w, 1, MPT_FT_PING), 1);
    ck_assert_int_eq(mpt_conn_state(w.c), MPT_CONN_ESTABLISHED);
    w_free(&w);
}
END_TEST

/* cc.h's on_loss is called once per increase of the kernel's retransmits. */
static int loss_calls;
static void count_loss(const struct mpt_cc_env *e, int which, uint64_t now)
{
    (void)now;
    ck_assert_int_ge(which, 0);
    ck_assert_int_lt(which, e->n);
    loss_calls++;
}
static const struct mpt_cc_ops counting_cc = {.name = "counting", .on_loss = count_loss};

START_TEST(cc_on_loss_called)
{
    struct w w;
    struct mpt_sf_info in;

    w_init(&w);
    w.set.cc = &counting_cc;
    mpt_server_free(w.srv);
    ck_assert_int_eq(mpt_server_new(&w.set, &w.srv), 0);
    handshake(&w, 1, 1, 1);
    memset(&in, 0, sizeof in);
    in.srtt = 10 * MS;
    in.total_retrans = 3; /* the first sample is a baseline */
    mpt_conn_sf_set_info(w.c, w.s[0].sf, &in);
    ck_assert_int_eq(loss_calls, 0);
    in.total_retrans = 4;
    mpt_conn_sf_set_info(w.c, w.s[0].sf, &in);
    mpt_conn_sf_set_info(w.c, w.s[0].sf, &in);
    ck_assert_int_eq(loss_calls, 1);
    in.total_retrans = 9;
    mpt_conn_sf_set_info(w.c, w.s[0].sf, &in);
    ck_assert_int_eq(loss_calls, 2);
    w_free(&w);
}
END_TEST

/* The engine keeps an incomplete frame itself (conn.h): frames fed one byte
 * at a time are handled exactly as whole ones, and every call takes all. */
START_TEST(frames_one_byte_at_a_time)
{
    struct w w;
    uint8_t b[3 * (12 + 1000) + 12], out[4000];
    size_t o = 0;
    ssize_t n;

    w_init(&w);
    handshake(&w, 1, 1, 1);
    for (int k = 0; k < 3; k++) {
        o = hdr(b, o, MPT_FT_DATA, 0, 8 + 1000);
        o = put64(b, o, w.idsn_c + 1000u * (unsigned)k);
        for (int j = 0; j < 1000; j++)
            b[o++] = (uint8_t)(k * 7 + j);
    }
    o = hdr(b, o, MPT_FT_DATA_FIN, 0, 8);
    o = put64(b, o, w.idsn_c + 3000);
    for (size_t k = 0; k < o; k++)
        ck_assert_int_eq(mpt_conn_sf_input(w.c, w.s[0].sf, b + k, 1, w.now), 1);
    n = mpt_conn_recv(w.c, out, sizeof out, w.now);
    ck_assert_int_eq(n, 3000);
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 1000; j++)
            ck_assert_uint_eq(out[1000 * k + j], (uint8_t)(k * 7 + j));
    ck_assert_int_eq(mpt_conn_recv(w.c, out, sizeof out, w.now), 0);
    /* a frame too big for a subflow in its handshake is refused from its
     * header, even when the header arrives in pieces */
    ck_assert_int_eq(join(&w, 1, 0x61, 0, 1), 0);
    o = hdr(b, 0, 0x90, 0, 1000);
    ck_assert_int_eq(mpt_conn_sf_input(w.c, w.s[1].sf, b, 3, w.now), 3);
    ck_assert_int_eq(mpt_conn_sf_input(w.c, w.s[1].sf, b + 3, 1, w.now), MPT_EFRAME_TOOBIG);
    ck_assert_int_eq(mpt_conn_sf_state(w.c, w.s[1].sf), MPT_SF_FAILED);
    w_free(&w);
}
END_TEST

/* The preamble apart from the first frame, for TLS between them (issue 9). */
START_TEST(preamble_and_first_frame_apart)
{
    struct w w;
    struct mpt_preamble p;
    struct mpt_accept a;
    uint8_t b[64], pre[16];
    size_t o;
    int x = 5;

    w_init(&w);
    o = preamble(b, 0, 1, 0, MPT_PREF_TLS, NULL);
    ck_assert_int_eq(mpt_server_preamble(w.srv, b, 4, &p, &a), MPT_EINCOMPLETE);
    ck_assert_int_eq(mpt_server_preamble(w.srv, b, o, &p, &a), MPT_ETLS);
    w.set.accept_tls = 1;
    mpt_server_free(w.srv);
    ck_assert_int_eq(mpt_server_new(&w.set, &w.srv), 0);
    ck_assert_int_eq(mpt_server_preamble(w.srv, b, o, &p, &a), 8);
    ck_assert_uint_eq(p.flags, MPT_PREF_TLS);
    o = hdr(b, 0, MPT_FT_HELLO, 0, 40);
    o = put8(b, o, 1);
    o = put8(b, o, 1);
    o = put16(b, o, 0);
    o = putn(b, o, w.key_c, MPT_KEY_LEN);
    o = put32(b, o, 1000);
    ck_assert_int_eq(mpt_server_first_frame(w.srv, &p, b, o - 1, w.now, &a), MPT_EINCOMPLETE);
    ck_assert_int_eq(mpt_server_first_frame(w.srv, &p, b, o, w.now, &a), 0);
    ck_assert_uint_eq(a.consumed, o);
    ck_assert(a.is_new);
    /* the caller's pointer travels with the connection */
    ck_assert_ptr_null(mpt_conn_get_user(a.conn));
    mpt_conn_set_user(a.conn, &x);
    ck_assert_ptr_eq(mpt_conn_get_user(a.conn), &x);
    mpt_conn_free(a.conn);

    /* client: the preamble can be taken out before anything is written */
    {
        struct mpt_conn *c;
        struct mpt_iovec iov[4];
        int sf, n;
        ck_assert_int_eq(mpt_conn_client_new(&w.set, w.now, &c), 0);
        sf = mpt_conn_add_subflow(c, 0, 0, w.now);
        ck_assert_int_ge(sf, 0);
        ck_assert_int_eq(mpt_conn_sf_take_preamble(c, sf, pre, sizeof pre), MPT_ESTATE);
        ck_assert_int_eq(mpt_conn_sf_connected(c, sf, w.now), 0);
        ck_assert_int_eq(mpt_conn_sf_take_preamble(c, sf, pre, 4), MPT_ENOBUFS);
        ck_assert_int_eq(mpt_conn_sf_take_preamble(c, sf, pre, sizeof pre), 8);
        ck_assert_int_eq(memcmp(pre, "MPTL", 4), 0);
        ck_assert_int_eq(mpt_conn_sf_take_preamble(c, sf, pre, sizeof pre), MPT_ESTATE);
        mpt_conn_sf_set_room(c, sf, 4096, w.now);
        n = mpt_conn_sf_output(c, sf, iov, 4, w.now);
        ck_assert_int_ge(n, 1);
        ck_assert_uint_eq(((const uint8_t *)iov[0].base)[0], MPT_FT_HELLO);
        mpt_conn_free(c);
    }
    w_free(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn_hostile");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, storm_one_subflow);
    tcase_add_test(tc, storm_three_subflows);
    tcase_add_test(tc, join_churn_no_amplification);
    tcase_add_test(tc, double_failover_reinjects_at_once);
    tcase_add_test(tc, ack_timeout_not_when_acked);
    tcase_add_test(tc, fifty_thousand_single_byte_fragments);
    tcase_add_test(tc, lend_out_of_order_two_subflows);
    tcase_add_test(tc, close_without_data_fin_is_an_error);
    tcase_add_test(tc, close_with_missing_data_is_an_error);
    tcase_add_test(tc, graceful_close_and_duplicate_close);
    tcase_add_test(tc, duplicate_close_before_closed_is_ignored);
    tcase_add_test(tc, new_preamble_version_is_a_hint);
    tcase_add_test(tc, no_common_version);
    tcase_add_test(tc, join_in_unknown_version);
    tcase_add_test(tc, data_ack_for_data_never_sent);
    tcase_add_test(tc, data_ack_two_to_63_away_is_stale);
    tcase_add_test(tc, add_addr_id_zero_and_bad_hmac_ignored);
    tcase_add_test(tc, add_addr_echo_matching_and_resend);
    tcase_add_test(tc, remove_addr_zero_closes_first_subflow);
    tcase_add_test(tc, pre_handshake_errors);
    tcase_add_test(tc, pre_handshake_frame_limit);
    tcase_add_test(tc, tls_preamble_refused_at_once);
    tcase_add_test(tc, replay_cache_keeps_only_authenticated_nonces);
    tcase_add_test(tc, invalid_fastclose_and_error_not_answered);
    tcase_add_test(tc, far_away_data);
    tcase_add_test(tc, data_fin_and_the_right_edge);
    tcase_add_test(tc, ping_flood_answered_with_newest);
    tcase_add_test(tc, server_pings_only_when_the_client_does_not);
    tcase_add_test(tc, join_handshake_is_the_first_rtt_sample);
    tcase_add_test(tc, cc_on_loss_called);
    tcase_add_test(tc, frames_one_byte_at_a_time);
    tcase_add_test(tc, preamble_and_first_frame_apart);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
