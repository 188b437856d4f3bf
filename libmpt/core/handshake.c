/* Handshake and joins: HELLO / HELLO_ACK, JOIN / JOIN_ACK / JOIN_CONFIRM, the
 * server's token table and the join replay cache.
 *
 * JOINS. The server's token table is a red-black tree keyed by token; a
 * join is refused with ERROR(UNKNOWN_TOKEN / TOO_MANY / REPLAY) before any
 * state is created; the client nonces of the last 64 joins that
 * authenticated, and of joins in their handshake, are remembered per
 * connection (so joins that never authenticate cannot flush a real one).
 * JOIN_ACK / JOIN_CONFIRM HMACs are checked in constant time; a
 * bad one fails the subflow with ERROR(AUTH), the connection carries on.
 */
#include "conn_int.h"
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "crypto.h"

static int tok_cmp(const struct mpt_conn *a, const struct mpt_conn *b)
{
    return a->token_local < b->token_local ? -1 : a->token_local > b->token_local;
}

RB_GENERATE_INTERNAL(tok_tree, mpt_conn, tnode, tok_cmp, __attribute__((unused)) static)

#define SECRET(c) ((c)->has_secret ? (c)->secret : NULL)
#define BINDING(s) ((s)->has_binding ? (s)->binding : NULL)

int mpt_conn_set_secret(struct mpt_conn *c, const uint8_t secret[MPT_SECRET_LEN])
{
    if (!c || !secret)
        return MPT_EINVAL;
    if (c->has_secret)
        return MPT_ESTATE;
    memcpy(c->secret, secret, MPT_SECRET_LEN);
    c->has_secret = 1;
    return 0;
}

int mpt_conn_sf_set_binding(struct mpt_conn *c, int i, const uint8_t binding[MPT_SECRET_LEN])
{
    struct sf *s;

    if (!c || !binding || i < 0 || i >= c->sf_cap)
        return MPT_EINVAL;
    s = &c->sf[i];
    if (c->is_server || !s->is_join || s->state > MPT_SF_HANDSHAKE)
        return MPT_ESTATE;
    memcpy(s->binding, binding, MPT_SECRET_LEN);
    s->has_binding = 1;
    return 0;
}

void mpt_hs_set_local_key(struct mpt_conn *c)
{
    mpt_key_derive(c->key_local, &c->token_local, &c->idsn_local);
    mpt_sendbuf_init(&c->sb, mpt_sbuf_initial(c), c->idsn_local);
    c->snd_una = c->snd_nxt = c->snd_edge = c->idsn_local;
}

static void set_peer_key(struct mpt_conn *c, const uint8_t key[MPT_KEY_LEN], uint32_t window)
{
    memcpy(c->key_peer, key, MPT_KEY_LEN);
    mpt_key_derive(c->key_peer, &c->token_peer, &c->idsn_peer);
    c->rcv_win = mpt_rwin_initial(c);
    mpt_rcvbuf_init(&c->rb, c->rcv_win, c->idsn_peer);
    c->rb_ready = 1;
    c->adv_edge = c->rb.read + zmin(c->rb.cap, MAX_WINDOW);
    c->ack_written = c->idsn_peer;
    c->edge_written = c->adv_edge;
    c->snd_edge = c->idsn_local + window;
}

int mpt_conn_sf_connected(struct mpt_conn *c, int i, uint64_t now)
{
    struct sf *s;
    struct mpt_preamble p;
    struct mpt_frame f;
    uint8_t pre[MPT_PREAMBLE_MAX_LEN];
    ssize_t n;

    if (!valid_sf(c, i))
        return MPT_EINVAL;
    s = &c->sf[i];
    c->now = now;
    if (s->state != MPT_SF_CONNECTING || c->is_server)
        return MPT_ESTATE;
    memset(&p, 0, sizeof p);
    memset(&f, 0, sizeof f);
    p.version = MPT_PROTO_VERSION;
    if (c->s.tls)
        p.flags |= MPT_PREF_TLS;
    if (!s->is_join) {
        p.kind = MPT_PRE_NEW;
        f.type = MPT_FT_HELLO;
        f.u.hello.version_min = f.u.hello.version_max = MPT_PROTO_VERSION;
        f.u.hello.features = MPT_FEAT_SACK | MPT_FEAT_TIERS | (c->s.tls ? MPT_FEAT_TLS : 0);
        memcpy(f.u.hello.key, c->key_local, MPT_KEY_LEN);
        f.u.hello.window = (uint32_t)zmin(mpt_rwin_initial(c), MAX_WINDOW);
    } else {
        if (!conn_open(c))
            return MPT_ESTATE;
        p.kind = MPT_PRE_JOIN;
        memcpy(p.routing_id, c->routing_id, MPT_ROUTING_ID_LEN);
        c->s.rand(c->s.rand_user, s->nonce_local, MPT_NONCE_LEN);
        s->join_flags = mpt_prio_is_backup(s->prio) ? MPT_FF_JOIN_BACKUP : 0;
        f.type = MPT_FT_JOIN;
        f.flags = s->join_flags;
        f.u.join.token = c->token_peer;
        memcpy(f.u.join.nonce, s->nonce_local, MPT_NONCE_LEN);
        f.u.join.addr_id = s->addr_id;
    }
    n = mpt_preamble_encode(&p, pre, sizeof pre);
    if (n < 0)
        return (int)n;
    s->preamble_len = (uint8_t)n; /* the first item: see mpt_conn_sf_take_preamble */
    if (mpt_q_raw(s, pre, (size_t)n) || mpt_q_frame(s, &f))
        return MPT_ENOMEM;
    s->state = MPT_SF_HANDSHAKE;
    s->hs_deadline = now + c->s.handshake_timeout;
    s->hs_sent_at = now;
    s->last_rx = now;
    return 0;
}

/* The handshake's exchange is the subflow's first end-to-end RTT sample. */
static void hs_rtt_sample(struct sf *s, uint64_t now)
{
    if (s->hs_sent_at && now > s->hs_sent_at)
        mpt_e2e_sample(s, now - s->hs_sent_at, now);
}

int mpt_server_new(const struct mpt_core_settings *s, struct mpt_server **out)
{
    struct mpt_server *srv;

    if (!s || !s->rand || !out)
        return MPT_EINVAL;
    srv = mpt_calloc(1, sizeof *srv);
    if (!srv)
        return MPT_ENOMEM;
    srv->s = *s;
    RB_INIT(&srv->tokens);
    *out = srv;
    return 0;
}

void mpt_server_free(struct mpt_server *srv)
{
    struct mpt_conn *c, *nx;

    if (!srv)
        return;
    RB_FOREACH_SAFE(c, tok_tree, &srv->tokens, nx) {
        RB_REMOVE(tok_tree, &srv->tokens, c);
        c->in_table = 0;
        c->srv = NULL;
    }
    mpt_free(srv);
}

#define VERSION_TEXT "supported 1-1" /* 7.2: the server's range */

static void refuse_text(struct mpt_accept *a, uint32_t reason, uint8_t ftype, const char *text)
{
    struct mpt_frame f;
    ssize_t n;

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_ERROR;
    f.u.close.reason = reason;
    f.u.close.frame_type = ftype;
    if (text) {
        f.u.close.text = (const uint8_t *)text;
        f.u.close.text_len = strlen(text);
    }
    n = mpt_frame_encode(&f, a->reply, sizeof a->reply);
    a->reply_len = n > 0 ? (size_t)n : 0;
}

static void refuse(struct mpt_accept *a, uint32_t reason, uint8_t ftype)
{
    refuse_text(a, reason, ftype, reason == MPT_REASON_VERSION ? VERSION_TEXT : NULL);
}

int mpt_server_refuse_new(struct mpt_accept *a, const char *why)
{
    mpt_conn_free(a->conn);
    a->conn = NULL;
    refuse_text(a, MPT_REASON_RESOURCE, MPT_FT_HELLO, why);
    return MPT_ENOBUFS;
}

/* 8.2: the nonces of the last REPLAY_N joins that authenticated, and of the
 * joins still in their handshake. A join that never authenticates leaves
 * nothing behind, so unauthenticated JOINs cannot flush a real one. */
static int nonce_seen(struct mpt_conn *c, const uint8_t *nonce)
{
    for (unsigned i = 0; i < c->nonce_n; i++)
        if (memcmp(c->nonces[i], nonce, MPT_NONCE_LEN) == 0)
            return 1;
    for (int i = 0; i < c->nslots; i++)
        if (c->sf[i].state == MPT_SF_HANDSHAKE && c->sf[i].is_join &&
            memcmp(c->sf[i].nonce_peer, nonce, MPT_NONCE_LEN) == 0)
            return 1;
    return 0;
}

static void nonce_remember(struct mpt_conn *c, const uint8_t *nonce)
{
    memcpy(c->nonces[c->nonce_pos], nonce, MPT_NONCE_LEN);
    c->nonce_pos = (c->nonce_pos + 1) % REPLAY_N;
    if (c->nonce_n < REPLAY_N)
        c->nonce_n++;
}

static int accept_new(struct mpt_server *srv, const struct mpt_frame *f, uint64_t now,
                      struct mpt_accept *a)
{
    struct mpt_conn *c;
    struct mpt_frame r;
    int i, rc, tries;

    if (f->u.hello.version_min > MPT_PROTO_VERSION || f->u.hello.version_max < MPT_PROTO_VERSION) {
        refuse(a, MPT_REASON_VERSION, MPT_FT_HELLO);
        return MPT_EVERSION;
    }
    rc = mpt_conn_alloc(&srv->s, 1, now, &c);
    if (rc) {
        refuse(a, MPT_REASON_RESOURCE, MPT_FT_HELLO);
        return rc;
    }
    for (tries = 0;; tries++) {
        struct mpt_conn *dup;
        srv->s.rand(srv->s.rand_user, c->key_local, MPT_KEY_LEN);
        mpt_key_derive(c->key_local, &c->token_local, NULL);
        dup = RB_FIND(tok_tree, &srv->tokens, c);
        if (!dup)
            break;
        if (tries == 64) {
            mpt_conn_free(c);
            refuse(a, MPT_REASON_RESOURCE, MPT_FT_HELLO);
            return MPT_ENOBUFS;
        }
    }
    mpt_hs_set_local_key(c);
    c->s.rand(c->s.rand_user, c->routing_id, MPT_ROUTING_ID_LEN);
    if (c->s.server_id != 0) { /* after the draw, so the random stream is the same */
        c->routing_id[0] = (uint8_t)(c->s.server_id >> 24);
        c->routing_id[1] = (uint8_t)(c->s.server_id >> 16);
        c->routing_id[2] = (uint8_t)(c->s.server_id >> 8);
        c->routing_id[3] = (uint8_t)c->s.server_id;
    }
    c->features = f->u.hello.features & (MPT_FEAT_SACK | MPT_FEAT_TIERS);
    set_peer_key(c, f->u.hello.key, f->u.hello.window);
    c->srv = srv;
    RB_INSERT(tok_tree, &srv->tokens, c);
    c->in_table = 1;

    i = mpt_alloc_slot(c);
    memset(&r, 0, sizeof r);
    r.type = MPT_FT_HELLO_ACK;
    r.u.hello_ack.version = MPT_PROTO_VERSION;
    r.u.hello_ack.features = c->features;
    memcpy(r.u.hello_ack.key, c->key_local, MPT_KEY_LEN);
    memcpy(r.u.hello_ack.routing_id, c->routing_id, MPT_ROUTING_ID_LEN);
    r.u.hello_ack.window = (uint32_t)zmin(mpt_rwin_initial(c), MAX_WINDOW);
    if (i < 0 || mpt_q_frame(&c->sf[i], &r)) {
        mpt_conn_free(c);
        refuse(a, MPT_REASON_RESOURCE, MPT_FT_HELLO);
        return MPT_ENOMEM;
    }
    c->state = MPT_CONN_ESTABLISHED;
    mpt_ev_push(c, MPT_EV_ESTABLISHED, -1, 0, 0);
    mpt_sf_up(c, i, now);
    a->conn = c;
    a->sf = i;
    a->is_new = 1;
    return 0;
}

static int accept_join(struct mpt_server *srv, const struct mpt_frame *f,
                       const uint8_t *binding, uint64_t now, struct mpt_accept *a)
{
    struct mpt_conn key, *c;
    struct mpt_frame r;
    struct sf *s;
    int i;

    key.token_local = f->u.join.token;
    c = RB_FIND(tok_tree, &srv->tokens, &key);
    if (!c || !conn_open(c)) {
        refuse(a, MPT_REASON_UNKNOWN_TOKEN, MPT_FT_JOIN);
        return MPT_ETOKEN;
    }
    c->now = now;
    /* A connection keyed by TLS takes joins over TLS only, and the reverse:
     * one side's HMACs would not match the other's anyway. */
    if (c->has_secret != (binding != NULL)) {
        refuse_text(a, MPT_REASON_PROTOCOL, MPT_FT_JOIN,
                    c->has_secret ? "this connection takes joins over TLS only"
                                  : "this connection does not run TLS");
        return MPT_ETLS;
    }
    if (mpt_live_count(c) >= (int)c->s.max_subflows) {
        refuse(a, MPT_REASON_TOO_MANY, MPT_FT_JOIN);
        return MPT_ETOOMANY;
    }
    if (nonce_seen(c, f->u.join.nonce)) {
        refuse(a, MPT_REASON_REPLAY, MPT_FT_JOIN);
        return MPT_EREPLAY;
    }
    i = mpt_alloc_slot(c);
    if (i < 0) {
        refuse(a, i == MPT_ENOMEM ? MPT_REASON_RESOURCE : MPT_REASON_TOO_MANY, MPT_FT_JOIN);
        return i == MPT_ENOMEM ? MPT_ENOMEM : MPT_ETOOMANY;
    }
    s = &c->sf[i];
    s->is_join = 1;
    s->state = MPT_SF_HANDSHAKE;
    s->addr_id = f->u.join.addr_id;
    s->join_flags = f->flags;
    s->prio = (f->flags & MPT_FF_JOIN_BACKUP) ? MPT_PRIO_BACKUP : MPT_PRIO_PRIMARY;
    s->hs_deadline = now + c->s.handshake_timeout;
    s->hs_sent_at = now;
    s->last_rx = now;
    memcpy(s->nonce_peer, f->u.join.nonce, MPT_NONCE_LEN);
    if (binding != NULL) {
        memcpy(s->binding, binding, MPT_SECRET_LEN);
        s->has_binding = 1;
    }
    c->s.rand(c->s.rand_user, s->nonce_local, MPT_NONCE_LEN);
    memset(&r, 0, sizeof r);
    r.type = MPT_FT_JOIN_ACK;
    memcpy(r.u.join_ack.nonce, s->nonce_local, MPT_NONCE_LEN);
    mpt_join_hmac_tls(MPT_JOIN_SERVER, c->key_local, c->key_peer, SECRET(c), BINDING(s),
                      s->nonce_local, s->nonce_peer, s->addr_id, s->join_flags,
                      r.u.join_ack.hmac);
    if (mpt_q_frame(s, &r)) {
        s->state = MPT_SF_CLOSED;
        /* reserving the slot cleared the no-path clock: a connection whose
         * last subflow had already failed would otherwise wait forever */
        mpt_check_nopath(c, now);
        refuse(a, MPT_REASON_RESOURCE, MPT_FT_JOIN);
        return MPT_ENOMEM;
    }
    a->conn = c;
    a->sf = i;
    a->is_new = 0;
    return 0;
}

int mpt_server_preamble(struct mpt_server *srv, const uint8_t *data, size_t len,
                        struct mpt_preamble *p, struct mpt_accept *a)
{
    ssize_t np;

    if (!srv || !a || !p || (!data && len))
        return MPT_EINVAL;
    memset(a, 0, sizeof *a);
    a->sf = -1;
    /* 3.2: a peer that sent no valid preamble may not speak this protocol:
     * close without a word (reply_len stays 0). */
    np = mpt_preamble_decode(data, len, p);
    if (np < 0)
        return (int)np;
    /* Without TLS on offer, refuse at once, in clear, so that the client
     * can tell why instead of waiting for a ServerHello. */
    if ((p->flags & MPT_PREF_TLS) && !srv->s.accept_tls) {
        refuse_text(a, MPT_REASON_PROTOCOL, 0, "TLS not offered by this server");
        return MPT_ETLS;
    }
    if (!(p->flags & MPT_PREF_TLS) && srv->s.tls) {
        refuse_text(a, MPT_REASON_PROTOCOL, 0, "TLS required by this server");
        return MPT_ETLS;
    }
    /* A NEW preamble's Version is only a hint (the HELLO negotiates); a JOIN
     * in a version we do not implement cannot even be parsed. */
    if (p->kind == MPT_PRE_JOIN && p->version != MPT_PROTO_VERSION) {
        refuse(a, MPT_REASON_VERSION, MPT_FT_JOIN);
        return MPT_EVERSION;
    }
    a->consumed = (size_t)np;
    return (int)np;
}

int mpt_server_first_frame(struct mpt_server *srv, const struct mpt_preamble *p,
                           const uint8_t *data, size_t len, uint64_t now, struct mpt_accept *a)
{
    return mpt_server_first_frame_bound(srv, p, NULL, data, len, now, a);
}

int mpt_server_first_frame_bound(struct mpt_server *srv, const struct mpt_preamble *p,
                                 const uint8_t *binding, const uint8_t *data, size_t len,
                                 uint64_t now, struct mpt_accept *a)
{
    struct mpt_frame f;
    ssize_t nf;
    int rc;

    if (!srv || !a || !p || (!data && len))
        return MPT_EINVAL;
    memset(a, 0, sizeof *a);
    a->sf = -1;
    /* Before the handshake no legitimate frame has a body over 260 bytes
     * (4.3): refuse from the header, without buffering the body. */
    nf = mpt_frame_decode(data, len, MPT_FRAME_MAX_CONTROL - MPT_FRAME_HDR_LEN, &f);
    if (nf < 0) {
        if (nf != MPT_EINCOMPLETE)
            refuse(a, MPT_REASON_PROTOCOL, data[0]);
        return (int)nf;
    }
    if (p->kind == MPT_PRE_NEW && f.type == MPT_FT_HELLO)
        rc = accept_new(srv, &f, now, a);
    else if (p->kind == MPT_PRE_JOIN && f.type == MPT_FT_JOIN)
        rc = accept_join(srv, &f, binding, now, a);
    else {
        refuse(a, MPT_REASON_PROTOCOL, f.type);
        return MPT_EPROTO;
    }
    if (rc == 0) {
        a->consumed = (size_t)nf;
        mpt_post(a->conn, now);
    }
    return rc;
}

int mpt_server_accept(struct mpt_server *srv, const uint8_t *data, size_t len, uint64_t now,
                      struct mpt_accept *a)
{
    struct mpt_preamble p;
    int np = mpt_server_preamble(srv, data, len, &p, a), rc;

    if (np < 0)
        return np;
    rc = mpt_server_first_frame(srv, &p, data + np, len - (size_t)np, now, a);
    if (rc == 0)
        a->consumed += (size_t)np;
    return rc;
}

/* A frame on a subflow in its handshake (12.2, 12.3). */
int mpt_hs_on_frame(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now)
{
    struct sf *s = &c->sf[i];

    if (f->type == MPT_FT_HELLO_ACK && !c->is_server && !s->is_join) {
        /* A TLS client knows the secret before it reads anything: without
         * it, joins and ADD_ADDR would silently fall back to the keys alone. */
        if (c->s.tls && !c->has_secret) {
            mpt_sf_fail(c, i, MPT_ETLS, MPT_REASON_PROTOCOL, 1, f->type, now);
            return MPT_ETLS;
        }
        if (f->u.hello_ack.version != MPT_PROTO_VERSION) {
            mpt_sf_fail(c, i, MPT_EVERSION, MPT_REASON_VERSION, 1, f->type, now);
            return MPT_EVERSION;
        }
        memcpy(c->routing_id, f->u.hello_ack.routing_id, MPT_ROUTING_ID_LEN);
        c->features = f->u.hello_ack.features & (MPT_FEAT_SACK | MPT_FEAT_TIERS);
        set_peer_key(c, f->u.hello_ack.key, f->u.hello_ack.window);
        c->state = MPT_CONN_ESTABLISHED;
        mpt_ev_push(c, MPT_EV_ESTABLISHED, -1, 0, 0);
        hs_rtt_sample(s, now);
        mpt_sf_up(c, i, now);
        return 0;
    }
    if (f->type == MPT_FT_JOIN_ACK && !c->is_server && s->is_join) {
        uint8_t mac[MPT_HMAC_LEN];
        struct mpt_frame r;
        if (c->has_secret != s->has_binding) { /* a join over TLS is bound to its session */
            mpt_sf_fail(c, i, MPT_ETLS, MPT_REASON_PROTOCOL, 1, f->type, now);
            return MPT_ETLS;
        }
        mpt_join_hmac_tls(MPT_JOIN_SERVER, c->key_peer, c->key_local, SECRET(c), BINDING(s),
                          f->u.join_ack.nonce, s->nonce_local, s->addr_id, s->join_flags, mac);
        if (!mpt_ct_equal(mac, f->u.join_ack.hmac, MPT_HMAC_LEN)) {
            mpt_sf_fail(c, i, MPT_EAUTH, MPT_REASON_AUTH, 1, f->type, now);
            return MPT_EAUTH;
        }
        memcpy(s->nonce_peer, f->u.join_ack.nonce, MPT_NONCE_LEN);
        memset(&r, 0, sizeof r);
        r.type = MPT_FT_JOIN_CONFIRM;
        mpt_join_hmac_tls(MPT_JOIN_CLIENT, c->key_local, c->key_peer, SECRET(c), BINDING(s),
                          s->nonce_local, s->nonce_peer, s->addr_id, s->join_flags,
                          r.u.join_confirm.hmac);
        mpt_q_frame(s, &r);
        hs_rtt_sample(s, now);
        mpt_sf_up(c, i, now);
        return 0;
    }
    if (f->type == MPT_FT_JOIN_CONFIRM && c->is_server && s->is_join) {
        uint8_t mac[MPT_HMAC_LEN];
        mpt_join_hmac_tls(MPT_JOIN_CLIENT, c->key_peer, c->key_local, SECRET(c), BINDING(s),
                          s->nonce_peer, s->nonce_local, s->addr_id, s->join_flags, mac);
        if (!mpt_ct_equal(mac, f->u.join_confirm.hmac, MPT_HMAC_LEN)) {
            mpt_sf_fail(c, i, MPT_EAUTH, MPT_REASON_AUTH, 1, f->type, now);
            return MPT_EAUTH;
        }
        nonce_remember(c, s->nonce_peer);
        hs_rtt_sample(s, now);
        mpt_sf_up(c, i, now);
        return 0;
    }
    if (f->type & MPT_FT_IGNORABLE)
        return 0;
    mpt_sf_fail(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, 1, f->type, now);
    return MPT_EPROTO;
}

/* The connection leaves the server's token table (mpt_conn_free). */
void mpt_hs_unlink(struct mpt_conn *c)
{
    if (c->srv && c->in_table)
        RB_REMOVE(tok_tree, &c->srv->tokens, c);
    c->in_table = 0;
}

ssize_t mpt_conn_sf_take_preamble(struct mpt_conn *c, int i, uint8_t *out, size_t cap)
{
    struct sf *s;
    struct oitem *it;
    size_t n;

    if (!c || i < 0 || i >= c->nslots || !out)
        return MPT_EINVAL;
    s = &c->sf[i];
    if (!s->preamble_len || !s->q.n)
        return MPT_ESTATE;
    it = mpt_ring_at(&s->q, 0);
    if (it->off != 0 || it->hlen != s->preamble_len)
        return MPT_ESTATE; /* already (partly) written */
    if (cap < it->hlen)
        return MPT_ENOBUFS;
    n = it->hlen;
    memcpy(out, it->hdr, n);
    s->q_bytes -= n;
    s->ctrl_items--;
    s->preamble_len = 0;
    mpt_ring_pop_front(&s->q);
    return (ssize_t)n;
}
