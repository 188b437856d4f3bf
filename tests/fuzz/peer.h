/*
 * A server engine and a raw client that writes preambles and frames itself
 * (from doc/protocol.md), for the fuzz targets that play a hostile peer:
 * fuzz_engine (arbitrary bytes on established subflows) and fuzz_handshake
 * (arbitrary first bytes, forged and replayed joins). The client's key is
 * fixed, so the harness knows the client's IDSN and can compute the join
 * HMACs an honest client would send.
 */
#ifndef MPT_FUZZ_PEER_H
#define MPT_FUZZ_PEER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/conn.h"
#include "core/crypto.h"
#include "core/frame.h"
#include "input.h"
#include "../unit/wirebuf.h"

#define FP_MAXSF 8
#define FP_MS MPT_NS_PER_MS

static inline size_t fp_preamble(uint8_t *b, size_t o, uint8_t kind, const uint8_t *rid)
{
    o = putn(b, o, "MPTL", 4);
    o = put8(b, o, 1);
    o = put8(b, o, kind);
    o = put8(b, o, 0);
    o = put8(b, o, 0);
    if (kind == 1)
        o = putn(b, o, rid, MPT_ROUTING_ID_LEN);
    return o;
}

/* What the engine wrote on one subflow, decoded as it goes. */
struct fp_out {
    uint8_t buf[MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY];
    size_t len;
    uint64_t total;
    /* the latest of some frames, for the harness */
    int have_join_ack, have_hello_ack;
    struct mpt_frame join_ack, hello_ack;
};

struct fp_sf {
    int used;
    int sf;       /* engine index, -1 before accept or after release */
    int refused;
    int accepted;
    int legit;    /* an honest JOIN_CONFIRM (right HMAC, fresh nonce) was sent */
    uint8_t *rx;  /* bytes not yet accepted (before mpt_server_accept succeeds) */
    size_t rxlen;
    uint8_t nonce[MPT_NONCE_LEN];
    uint8_t addr_id, flags;
    struct fp_out out;
};

struct fp_world {
    struct mpt_core_settings set;
    uint64_t rng;
    struct mpt_server *srv;
    struct mpt_conn *c;         /* the connection the raw client made */
    struct mpt_conn *others[64]; /* connections other HELLOs made */
    int nothers;
    uint64_t now;
    uint8_t key_c[MPT_KEY_LEN], key_s[MPT_KEY_LEN], rid[MPT_ROUTING_ID_LEN];
    uint64_t idsn_c, idsn_s, token_s;
    struct fp_sf s[FP_MAXSF];
    uint64_t in_bytes, out_bytes, app_written;
};

static inline void fp_rand(void *user, uint8_t *buf, size_t len)
{
    uint64_t *s = user;
    for (size_t i = 0; i < len; i++) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        buf[i] = (uint8_t)(*s >> 24);
    }
}

static inline void fp_out_feed(struct fp_out *o, const uint8_t *p, size_t n)
{
    o->total += n;
    while (n) {
        size_t take = sizeof o->buf - o->len < n ? sizeof o->buf - o->len : n, off = 0;
        memcpy(o->buf + o->len, p, take);
        o->len += take;
        p += take;
        n -= take;
        for (;;) {
            struct mpt_frame f;
            ssize_t r = mpt_frame_decode(o->buf + off, o->len - off, MPT_FRAME_MAX_BODY, &f);
            if (r == MPT_EINCOMPLETE)
                break;
            FZ_CHECK(r > 0); /* everything an engine writes is a valid frame */
            if (f.type == MPT_FT_JOIN_ACK) {
                o->join_ack = f;
                o->have_join_ack = 1;
            } else if (f.type == MPT_FT_HELLO_ACK) {
                o->hello_ack = f;
                o->have_hello_ack = 1;
            }
            off += (size_t)r;
        }
        memmove(o->buf, o->buf + off, o->len - off);
        o->len -= off;
    }
}

static inline void fp_check_mem(struct fp_world *w)
{
    struct mpt_conn_stats st;
    if (!w->c)
        return;
    mpt_conn_get_stats(w->c, &st);
    FZ_CHECK(st.rcv_mem <= w->set.rcvbuf);
    FZ_CHECK(st.snd_mem <= w->set.sndbuf);
    FZ_CHECK(mpt_conn_sf_count(w->c) <= (int)w->set.max_subflows);
}

/* Everything the engine writes (the raw client reads it all); subflows the
 * engine is done with are closed. */
static inline void fp_pump(struct fp_world *w)
{
    struct mpt_event ev;

    for (int k = 0; k < FP_MAXSF; k++) {
        struct fp_sf *r = &w->s[k];
        struct mpt_iovec iov[8];
        int n;
        enum mpt_sf_state st;

        if (!r->used || r->sf < 0 || !w->c)
            continue;
        mpt_conn_sf_set_room(w->c, r->sf, 1 << 20, w->now);
        while ((n = mpt_conn_sf_output(w->c, r->sf, iov, 8, w->now)) > 0) {
            size_t tot = 0;
            for (int i = 0; i < n; i++) {
                fp_out_feed(&r->out, iov[i].base, iov[i].len);
                tot += iov[i].len;
            }
            mpt_conn_sf_sent(w->c, r->sf, tot, w->now);
            w->out_bytes += tot;
        }
        st = mpt_conn_sf_state(w->c, r->sf);
        if (st == MPT_SF_FAILED || st == MPT_SF_CLOSED) {
            FZ_CHECK(mpt_conn_sf_release(w->c, r->sf) == 0);
            r->sf = -1;
        }
    }
    while (w->c && mpt_conn_next_event(w->c, &ev))
        if (ev.type == MPT_EV_ERROR)
            FZ_CHECK(ev.error < 0);
    for (int i = 0; i < w->nothers; i++)
        while (mpt_conn_next_event(w->others[i], &ev))
            ;
    fp_check_mem(w);
}

static inline int fp_is_error(long r)
{
    return r < 0 && r >= MPT_EAFNOSUPPORT;
}

/* The raw client writes n bytes on its connection k. Returns 0, the
 * accept refusal, or the engine's input error. */
static inline long fp_send(struct fp_world *w, int k, const uint8_t *b, size_t n)
{
    struct fp_sf *r = &w->s[k];
    long rc = 0;

    if (!r->used) {
        memset(r, 0, sizeof *r);
        r->used = 1;
        r->sf = -1;
    }
    w->in_bytes += n;
    if (r->refused)
        return MPT_ECLOSED;
    if (!r->accepted) {
        struct mpt_accept a;
        r->rx = realloc(r->rx, r->rxlen + n + 1);
        FZ_CHECK(r->rx != NULL);
        memcpy(r->rx + r->rxlen, b, n);
        r->rxlen += n;
        rc = mpt_server_accept(w->srv, r->rx, r->rxlen, w->now, &a);
        if (rc == MPT_EINCOMPLETE) {
            /* the engine decides from a bounded prefix (the I/O layer keeps 512 bytes) */
            FZ_CHECK(r->rxlen < MPT_PREAMBLE_MAX_LEN + MPT_FRAME_MAX_CONTROL);
            return 0;
        }
        if (rc < 0) {
            FZ_CHECK(fp_is_error(rc));
            FZ_CHECK(a.reply_len <= sizeof a.reply);
            if (a.reply_len) {
                struct mpt_frame f;
                FZ_CHECK(mpt_frame_decode(a.reply, a.reply_len, MPT_FRAME_MAX_BODY, &f) ==
                         (ssize_t)a.reply_len);
                FZ_CHECK(f.type == MPT_FT_ERROR);
            }
            r->refused = 1;
            return rc;
        }
        FZ_CHECK(a.consumed <= r->rxlen);
        if (a.is_new) {
            if (!w->c) {
                w->c = a.conn;
            } else {
                FZ_CHECK(a.conn != w->c);
                if (w->nothers == (int)(sizeof w->others / sizeof w->others[0])) {
                    mpt_conn_free(a.conn);
                    r->refused = 1;
                    return MPT_ETOOMANY;
                }
                /* another connection: kept (and freed at the end), this
                 * raw connection no longer followed */
                w->others[w->nothers++] = a.conn;
                r->refused = 1;
                return 0;
            }
        } else {
            FZ_CHECK(a.conn == w->c);
        }
        r->sf = a.sf;
        b = r->rx + a.consumed;
        n = r->rxlen - a.consumed;
        r->accepted = 1;
    }
    if (r->sf >= 0 && n) {
        ssize_t u = mpt_conn_sf_input(w->c, r->sf, b, n, w->now);
        FZ_CHECK(u == (ssize_t)n || fp_is_error(u));
        rc = u < 0 ? u : 0;
    }
    if (r->accepted && r->rx) {
        free(r->rx);
        r->rx = NULL;
        r->rxlen = 0;
    }
    fp_pump(w);
    return rc;
}

/* The raw client closes connection k (the engine sees EOF). */
static inline void fp_close(struct fp_world *w, int k)
{
    struct fp_sf *r = &w->s[k];
    if (r->used && r->sf >= 0 && w->c) {
        mpt_conn_sf_failed(w->c, r->sf, MPT_ECLOSED, w->now);
        fp_pump(w);
        if (r->sf >= 0 && mpt_conn_sf_release(w->c, r->sf) == 0)
            r->sf = -1;
    }
    free(r->rx);
    memset(r, 0, sizeof *r);
    r->sf = -1;
}

static inline void fp_init(struct fp_world *w, size_t rcvbuf, size_t sndbuf, uint32_t max_subflows)
{
    memset(w, 0, sizeof *w);
    w->rng = 0x9e3779b97f4a7c15ull;
    mpt_core_settings_default(&w->set);
    w->set.rand = fp_rand;
    w->set.rand_user = &w->rng;
    w->set.rcvbuf = rcvbuf;
    w->set.sndbuf = sndbuf;
    w->set.max_subflows = max_subflows;
    w->now = 1000 * FP_MS;
    for (int i = 0; i < FP_MAXSF; i++)
        w->s[i].sf = -1;
    for (int i = 0; i < MPT_KEY_LEN; i++)
        w->key_c[i] = (uint8_t)(0x40 + i);
    mpt_key_derive(w->key_c, NULL, &w->idsn_c);
    FZ_CHECK(mpt_server_new(&w->set, &w->srv) == 0);
}

/* Preamble NEW + HELLO on raw connection 0 with window `win`; returns 1 if
 * the server answered HELLO_ACK (keys, routing id and token then known). */
static inline int fp_handshake(struct fp_world *w, uint32_t win)
{
    uint8_t b[64];
    size_t o = fp_preamble(b, 0, 0, NULL);

    o = hdr(b, o, MPT_FT_HELLO, 0, 40);
    o = put8(b, o, 1);
    o = put8(b, o, 1);
    o = put16(b, o, MPT_FEAT_SACK);
    o = putn(b, o, w->key_c, MPT_KEY_LEN);
    o = put32(b, o, win);
    if (fp_send(w, 0, b, o) != 0 || !w->s[0].out.have_hello_ack)
        return 0;
    memcpy(w->key_s, w->s[0].out.hello_ack.u.hello_ack.key, MPT_KEY_LEN);
    memcpy(w->rid, w->s[0].out.hello_ack.u.hello_ack.routing_id, MPT_ROUTING_ID_LEN);
    mpt_key_derive(w->key_s, &w->token_s, &w->idsn_s);
    return 1;
}

/* The bytes of a JOIN on a new connection: preamble(JOIN, rid) + JOIN. */
static inline size_t fp_join_bytes(struct fp_world *w, uint8_t *b, const uint8_t *rid,
                                   uint64_t token, const uint8_t nonce[MPT_NONCE_LEN],
                                   uint8_t addr_id, uint8_t flags)
{
    size_t o = fp_preamble(b, 0, 1, rid);
    (void)w;
    o = hdr(b, o, MPT_FT_JOIN, flags, 26);
    o = put64(b, o, token);
    o = putn(b, o, nonce, MPT_NONCE_LEN);
    o = put8(b, o, addr_id);
    return put8(b, o, 0);
}

/* JOIN_CONFIRM for raw connection k, answering the JOIN_ACK it received;
 * a wrong HMAC when `corrupt` is non-zero (xor'ed into a byte). Returns its
 * length, 0 if no JOIN_ACK arrived. */
static inline size_t fp_confirm_bytes(struct fp_world *w, int k, uint8_t *b, unsigned corrupt)
{
    struct fp_sf *r = &w->s[k];
    uint8_t mac[MPT_HMAC_LEN];
    size_t o;

    if (!r->out.have_join_ack)
        return 0;
    mpt_join_hmac(MPT_JOIN_CLIENT, w->key_c, w->key_s, r->nonce, r->out.join_ack.u.join_ack.nonce,
                  r->addr_id, r->flags, mac);
    mac[(corrupt >> 8) % MPT_HMAC_LEN] ^= (uint8_t)corrupt;
    o = hdr(b, 0, MPT_FT_JOIN_CONFIRM, 0, MPT_HMAC_LEN);
    return putn(b, o, mac, MPT_HMAC_LEN);
}

static inline void fp_advance(struct fp_world *w, uint64_t dt)
{
    w->now += dt;
    if (w->c && mpt_conn_next_timeout(w->c) <= w->now)
        mpt_conn_handle_timeout(w->c, w->now);
    for (int i = 0; i < w->nothers; i++)
        if (mpt_conn_next_timeout(w->others[i]) <= w->now)
            mpt_conn_handle_timeout(w->others[i], w->now);
    fp_pump(w);
}

static inline int fp_finished(const struct fp_world *w)
{
    enum mpt_conn_state st;
    if (!w->c)
        return 1;
    st = mpt_conn_state(w->c);
    return st == MPT_CONN_CLOSED || st == MPT_CONN_ABORTED;
}

/* The raw client goes silent: within bounded time the engine gives up on
 * it (subflow and ack timeouts) and the connection ends. */
static inline void fp_silence(struct fp_world *w)
{
    uint64_t limit = w->now + 300 * 1000 * FP_MS;
    while (!fp_finished(w)) {
        uint64_t t = mpt_conn_next_timeout(w->c);
        FZ_CHECK(t != MPT_TIME_NEVER && t < limit);
        fp_advance(w, t > w->now ? t - w->now : 1);
    }
}

static inline void fp_free(struct fp_world *w)
{
    for (int k = 0; k < FP_MAXSF; k++)
        free(w->s[k].rx);
    if (w->c)
        mpt_conn_free(w->c);
    for (int i = 0; i < w->nothers; i++)
        mpt_conn_free(w->others[i]);
    mpt_server_free(w->srv);
}

#endif
