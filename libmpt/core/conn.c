/*
 * The connection engine (conn.h is the contract). Design notes, from which
 * doc/design.md is written:
 *
 * INPUTS / OUTPUTS. Every entry point takes `now`; the engine reads no clock,
 * makes no system call, and draws randomness only from settings.rand. Input
 * frames are decoded in place (mpt_frame_decode lends DATA payloads), output
 * is a per-subflow queue of items turned into iovecs on demand.
 *
 * SEND SIDE.
 *  - sendbuf (sendbuf.c): a byte ring indexed by DSN holding [base, end) where
 *    base = min(snd_una, DSN of any partly written DATA frame). Application
 *    bytes are copied once into it; DATA payloads are sent zero-copy from it.
 *  - snd_una (highest DATA_ACK), snd_nxt (next new byte), snd_edge (highest
 *    right edge ack+window ever seen; new data never goes beyond it).
 *  - Each subflow keeps a FIFO of "records" (dsn, len, time) for the bytes
 *    handed to it and not yet covered by DATA_ACK: its in-flight bytes, what
 *    gets reinjected if it fails/stalls, and the age used by the stall
 *    detector. A DATA_ACK pops/trims the heads of these FIFOs: O(subflows +
 *    records freed).
 *  - The reinjection queue is a FIFO of DSN ranges; it has priority over new
 *    data. Ranges are trimmed against snd_una and the peer's latest SACK
 *    ranges (bytes it already holds) when used.
 *  - Output queue items per subflow: control frames (pre-encoded), DATA
 *    (12-byte header + reference into the sendbuf) and DATA_ACK (encoded
 *    with fresh values each time it is emitted, and moved in front of queued
 *    data that has not started). An item that has not started is
 *    re-validated when emitted: bytes acknowledged meanwhile are trimmed, so
 *    acked send-buffer memory can be reused at once; only a partly written
 *    DATA frame pins send-buffer bytes (at most one per live subflow; a
 *    subflow that fails or closes drops its partly written DATA frame, since
 *    the caller may close the socket without writing another byte).
 *  - DATA_ACK, PING and PONG are inserted ahead of queued DATA that has not
 *    started (never ahead of handshake/control frames, which keep order).
 *  - Scheduling (schedule()) runs at the end of every entry point: while a
 *    chunk is available (reinjection first, then new data within the peer's
 *    window) ask sched->pick among usable subflows, clamp to the subflow's
 *    room, the cc cap (cc->cap, and the penalty cap) and max_frame_payload,
 *    and enqueue a DATA item. O(subflows) per frame, no per-byte work.
 *
 * RECEIVE SIDE (rcvbuf.c). A byte ring of rcvbuf bytes indexed by DSN covers
 * [read, read + rcvbuf) and the right edge advertised is exactly read +
 * rcvbuf (never retreating, since `read` only grows). So out-of-order data is
 * copied once, straight to its final place; a red-black tree of ranges
 * records what is present above the cumulative point. Memory (in-order +
 * out-of-order) can never exceed rcvbuf and acknowledged data is never
 * dropped; a peer exceeding the edge gets ERROR(FLOW) + FASTCLOSE (EFLOW).
 * The ring is malloc'ed (not touched) at establishment, so a large rcvbuf
 * costs resident memory only as it is used. Rule of thumb for rcvbuf: 2 x
 * sum(path bandwidths) x max RTT (the 4 MiB default covers 30 Mbit/s paths
 * with RTTs up to ~500 ms). Under memory pressure the caller lowers the
 * window with mpt_conn_set_rcv_limit(): the edge stops advancing until the
 * application has read past it, so memory shrinks without retreating the
 * edge or dropping anything acknowledged. Which out-of-order bytes are held is
 * a bitmap (rcvbuf / 8 bytes): any in-window pattern fits, nothing inside
 * the window is ever dropped.
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
 * (opaque = send time). No live or connecting subflow for subflow_timeout:
 * abort with MPT_ENOPATH. Data outstanding and the cumulative ack still for
 * ack_timeout while a subflow is established: abort with MPT_ETIMEDOUT.
 * A connection-level retransmission timer covers the bytes at snd_una
 * (una_rtx_at): if the cumulative ack has not moved for max(2*stall_min,
 * 4*rtt+4*rttvar) since their newest copy was sent, they are queued again,
 * with exponential backoff.
 *
 * REINJECTION BOUND. The reinjection queue is a sorted set of disjoint
 * ranges (<= what is in flight), and a range goes only to a subflow that does
 * not hold those bytes (sf_holds): each byte is outstanding at most once per
 * subflow, so a peer that never acknowledges gets each byte at most once per
 * subflow before the ack timeout ends the connection.
 *
 * OPPORTUNISTIC RETRANSMISSION. When new data is blocked by the peer's window
 * (or the send buffer is full and all of it was sent) and the bytes at
 * snd_una were sent on subflow S while a usable subflow F with room has
 * srtt_F < srtt_S / 4 (or S is stalled), those bytes are sent again on F
 * (once per record) and S's in-flight cap is halved (at most once per
 * srtt_S), regrowing by the bytes acked on S.
 *
 * CLOSE. shutdown -> DATA_FIN (dsn = end of data, consumes one DSN) once all
 * data has been sent (re-sent elsewhere if its subflow fails or stalls);
 * half-close works both ways. CLOSE (with a final DATA_ACK) on every
 * established subflow when our DATA_FIN is acked and the peer's is consumed;
 * the peer answers CLOSE; then CLOSED and MPT_EV_CLOSED (subflows CLOSED;
 * the caller drains their output, then closes the sockets). If both
 * DATA_FINs are done and no subflow is left, the connection is CLOSED too
 * (only the CLOSE exchange was lost). close_timeout bounds the wait for the
 * peer's CLOSE (then FASTCLOSE + MPT_ETIMEDOUT). A local abort or fatal
 * error sends FASTCLOSE on every live subflow (no events for a local
 * abort; recv/send then return MPT_ECLOSED); a received FASTCLOSE aborts
 * with MPT_EV_ERROR/MPT_ERESET, except on a join subflow that is not yet
 * authenticated, where it only fails that subflow.
 *
 * JOINS. The server's token table is a red-black tree keyed by token; a
 * join is refused with ERROR(UNKNOWN_TOKEN / TOO_MANY / REPLAY) before any
 * state is created; the last 64 accepted client nonces are remembered per
 * connection. JOIN_ACK / JOIN_CONFIRM HMACs are checked in constant time; a
 * bad one fails the subflow with ERROR(AUTH), the connection carries on.
 *
 * Memory is bounded by settings: sndbuf, rcvbuf (+ rcvbuf / 8 bitmap), the
 * per-subflow output queues (bounded by the room the caller gives plus a few
 * control frames), the records (bounded by the bytes in flight), a 64-entry
 * join replay cache and a fixed event queue (READABLE/WRITABLE coalesced).
 */
#include "conn.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sys/tree.h>

#include <mpt/error.h>

#include "cc.h"
#include "crypto.h"
#include "dsn.h"
#include "frame.h"
#include "rcvbuf.h"
#include "sched.h"
#include "sendbuf.h"

#define EVQ_LEN 256
#define REPLAY_N 64
#define MAX_WINDOW 0xffffffffu

/* ---- a small growable ring of fixed-size elements ------------------------ */

struct ring {
    uint8_t *a;
    uint32_t head, n, cap, esz;
};

static void ring_init(struct ring *r, uint32_t esz)
{
    memset(r, 0, sizeof *r);
    r->esz = esz;
}

static void *ring_at(const struct ring *r, uint32_t i)
{
    return r->a + (size_t)((r->head + i) & (r->cap - 1)) * r->esz;
}

static int ring_grow(struct ring *r)
{
    uint32_t nc = r->cap ? r->cap * 2 : 8;
    uint8_t *na = calloc(1, (size_t)nc * r->esz);

    if (!na)
        return -1;
    for (uint32_t i = 0; i < r->n; i++)
        memcpy(na + (size_t)i * r->esz, ring_at(r, i), r->esz);
    free(r->a);
    r->a = na;
    r->head = 0;
    r->cap = nc;
    return 0;
}

static void *ring_push_back(struct ring *r)
{
    if (r->n == r->cap && ring_grow(r))
        return NULL;
    r->n++;
    return ring_at(r, r->n - 1);
}

static void *ring_push_front(struct ring *r)
{
    if (r->n == r->cap && ring_grow(r))
        return NULL;
    r->head = (r->head - 1) & (r->cap - 1);
    r->n++;
    return ring_at(r, 0);
}

static void ring_pop_front(struct ring *r)
{
    r->head = (r->head + 1) & (r->cap - 1);
    r->n--;
}

static void ring_pop_back(struct ring *r)
{
    r->n--;
}

static void ring_free(struct ring *r)
{
    free(r->a);
    r->a = NULL;
    r->n = r->cap = r->head = 0;
}

/* ---- structures ----------------------------------------------------------- */

enum { IT_CTRL, IT_DATA, IT_ACK, IT_PONG };

struct oitem {
    uint8_t kind;
    uint16_t hlen;   /* header / control bytes in hdr[] */
    uint32_t off;    /* bytes of this item already written */
    uint32_t len;    /* DATA payload */
    uint64_t dsn;    /* DATA: first payload DSN; ACK: ack value */
    uint64_t edge;   /* ACK: right edge advertised */
    uint8_t hdr[MPT_FRAME_MAX_CONTROL];
};

#define REC_OPP 1u   /* already reinjected opportunistically */
#define REC_COPY 2u  /* a reinjection: its ack may be the original's (no RTT sample) */
#define REC_AMBIG 4u /* an original with a copy elsewhere (no RTT sample) */

struct rec {
    uint64_t dsn;
    uint32_t len;
    uint32_t flags;
    uint64_t t;
};

struct rng {
    uint64_t s, e;
};

/* An address we advertised: sent again on another subflow if the one that
 * carried it goes away before the peer echoes it (10.2). */
struct adv {
    uint8_t id, family, echoed;
    int8_t sf;
    uint16_t port;
    uint8_t addr[16];
    uint8_t hmac[MPT_ADDR_HMAC_LEN];
};

struct sf {
    enum mpt_sf_state state;
    int used_ever;
    int backup;
    int stalled;
    int is_join;
    int handshake_sf; /* client: carries HELLO */
    int sc_sent, sc_rcvd;
    int pong_queued;     /* a PONG item not yet started is in q (it takes the newest opaque) */
    uint64_t pong_opaque;
    uint32_t id;      /* stable id (conn->next_sf_id) */
    uint8_t addr_id;
    uint8_t remote_id;
    uint8_t join_flags;
    uint8_t nonce_local[MPT_NONCE_LEN], nonce_peer[MPT_NONCE_LEN];
    size_t room;
    struct ring q; /* struct oitem */
    size_t q_bytes;
    unsigned ctrl_items; /* control items queued (bounds a PING flood) */
    int ack_pending;
    struct ring recs; /* struct rec */
    size_t inflight;
    uint64_t last_rx, last_progress;
    uint64_t srtt, rttvar;           /* from PING/PONG */
    uint64_t e2e_min, e2e_min_t;     /* least end-to-end RTT seen lately, and when */
    unsigned stalls;                 /* stalls since its records last made progress */
    uint64_t hs_sent_at;             /* HELLO / JOIN / JOIN_ACK sent: handshake RTT */
    struct mpt_sf_info info;
    uint64_t ping_sent_at; /* 0: none outstanding */
    uint64_t next_ping;
    uint64_t hs_deadline;
    size_t pen_cap, pen_base;
    uint64_t last_pen;
    uint64_t bytes_sent, bytes_acked, bytes_received;
    uint32_t fail_reason;
    int fail_error;
};

struct mpt_conn {
    struct mpt_core_settings s;
    int is_server;
    enum mpt_conn_state state;
    int error;
    uint64_t now;

    struct mpt_server *srv;
    RB_ENTRY(mpt_conn) tnode;
    int in_table;

    uint8_t key_local[MPT_KEY_LEN], key_peer[MPT_KEY_LEN];
    uint64_t token_local, token_peer, idsn_local, idsn_peer;
    uint8_t routing_id[MPT_ROUTING_ID_LEN];
    uint16_t features;

    struct sf sf[MPT_MAX_SUBFLOWS_LIMIT];
    int nslots; /* highest slot index ever used + 1 */
    uint32_t next_sf_id;

    /* send */
    struct mpt_sendbuf sb;
    uint64_t snd_una, snd_nxt, snd_edge;
    struct ring reinj; /* struct rng */
    struct mpt_sack_range sack[MPT_FRAME_MAX_SACK]; /* peer's latest SACK ranges */
    int nsack;
    /* retransmission timer of the bytes at snd_una (see una_rtx_at) */
    uint64_t una_rtx_dsn, una_rtx_t, una_moved_at;
    unsigned una_backoff;
    int fin_pending, fin_acked, fin_sf, fin_sent;
    uint64_t fin_dsn;

    /* receive */
    struct mpt_rcvbuf rb;
    int rb_ready;
    int rfin_known, rfin_consumed;
    uint64_t rfin_dsn;
    uint64_t adv_edge;                 /* highest right edge advertised */
    size_t rcv_limit;                  /* window cap under memory pressure, 0 = rcvbuf */
    uint64_t ack_written, edge_written; /* values of the last ack written */
    int ack_needed;
    int ack_all; /* duplicates arrived: our acks may be getting lost */
    uint64_t ack_deadline; /* MPT_TIME_NEVER: no stale-ack check armed */

    int close_sent, close_rcvd;
    uint64_t hs_deadline, close_deadline, nopath_since;
    uint64_t ack_timeout;   /* settings.ack_timeout, or its default */
    const char *abort_text; /* FASTCLOSE text of the next local abort, static */

    /* events */
    struct mpt_event evq[EVQ_LEN];
    unsigned ev_head, ev_n;
    int ev_readable, ev_writable, want_writable;
    uint64_t ev_dropped;

    struct ring advs; /* struct adv: our ADD_ADDRs */

    /* join replay cache: nonces of authenticated joins */
    uint8_t nonces[REPLAY_N][MPT_NONCE_LEN];
    unsigned nonce_pos, nonce_n;

    const struct mpt_sched_ops *sched;
    const struct mpt_cc_ops *cc;
    void *sched_state, *cc_state;

    struct mpt_conn_stats st;
    uint64_t addr_bad;
};

static int tok_cmp(const struct mpt_conn *a, const struct mpt_conn *b)
{
    return a->token_local < b->token_local ? -1 : a->token_local > b->token_local;
}
RB_HEAD(tok_tree, mpt_conn);
RB_GENERATE_INTERNAL(tok_tree, mpt_conn, tnode, tok_cmp, __attribute__((unused)) static)

struct mpt_server {
    struct mpt_core_settings s;
    struct tok_tree tokens;
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t u64max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static size_t zmin(size_t a, size_t b)
{
    return a < b ? a : b;
}

static int sf_live(const struct sf *s)
{
    return s->state == MPT_SF_CONNECTING || s->state == MPT_SF_HANDSHAKE ||
           s->state == MPT_SF_ESTABLISHED || s->state == MPT_SF_CLOSING;
}

static int sf_usable(const struct sf *s)
{
    return s->state == MPT_SF_ESTABLISHED && !s->stalled;
}

static uint64_t sf_srtt(const struct sf *s)
{
    return s->info.srtt ? s->info.srtt : s->srtt;
}

static uint64_t sf_rttvar(const struct sf *s)
{
    return s->info.srtt ? s->info.rttvar : s->rttvar;
}

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

static uint64_t sf_e2e_rtt(const struct sf *s)
{
    return u64max(sf_srtt(s), s->e2e_min);
}

/* An end-to-end sample exists (the kernel's srtt alone says nothing about
 * what lies behind a proxy). */
static int sf_e2e_known(const struct sf *s)
{
    return s->e2e_min != 0;
}

static void e2e_sample(struct sf *s, uint64_t rtt, uint64_t now)
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

/* Does subflow s hold DSN a in flight (handed to it, not yet acked)? If so
 * *end is the end of the record holding it; *next is the first DSN after a
 * that starts another record (a + 2^62 if none). O(records). */
static int sf_holds(const struct sf *s, uint64_t a, uint64_t *end, uint64_t *next)
{
    uint64_t nx = a + ((uint64_t)1 << 62);
    int held = 0;

    *end = a;
    for (uint32_t i = 0; i < s->recs.n; i++) {
        const struct rec *r = ring_at(&s->recs, i);
        uint64_t re = r->dsn + r->len;
        if (mpt_dsn_le(r->dsn, a) && mpt_dsn_lt(a, re)) {
            held = 1;
            *end = mpt_dsn_max(*end, re);
        } else if (mpt_dsn_gt(r->dsn, a) && mpt_dsn_lt(r->dsn, nx)) {
            nx = r->dsn;
        }
    }
    *next = nx;
    return held;
}

static int conn_open(const struct mpt_conn *c)
{
    return c->state == MPT_CONN_ESTABLISHED || c->state == MPT_CONN_CLOSING;
}

static int valid_sf(const struct mpt_conn *c, int i)
{
    return c && i >= 0 && i < c->nslots;
}

static int err_of_reason(uint32_t reason)
{
    switch (reason) {
    case MPT_REASON_AUTH: return MPT_EAUTH;
    case MPT_REASON_TOO_MANY: return MPT_ETOOMANY;
    case MPT_REASON_TIMEOUT: return MPT_ETIMEDOUT;
    case MPT_REASON_UNKNOWN_TOKEN: return MPT_ETOKEN;
    case MPT_REASON_VERSION: return MPT_EVERSION;
    case MPT_REASON_REPLAY: return MPT_EREPLAY;
    case MPT_REASON_FLOW: return MPT_EFLOW;
    case MPT_REASON_RESOURCE: return MPT_ENOBUFS;
    case MPT_REASON_PROTOCOL: return MPT_EPROTO;
    default: return MPT_ECLOSED;
    }
}

static uint32_t reason_of_err(int err)
{
    switch (err) {
    case MPT_EAUTH: return MPT_REASON_AUTH;
    case MPT_ETOOMANY: return MPT_REASON_TOO_MANY;
    case MPT_ETIMEDOUT: return MPT_REASON_TIMEOUT;
    case MPT_ETOKEN: return MPT_REASON_UNKNOWN_TOKEN;
    case MPT_EVERSION: return MPT_REASON_VERSION;
    case MPT_EREPLAY: return MPT_REASON_REPLAY;
    case MPT_EFLOW: return MPT_REASON_FLOW;
    case MPT_ENOMEM:
    case MPT_ENOBUFS: return MPT_REASON_RESOURCE;
    default: return MPT_REASON_PROTOCOL;
    }
}

/* ---- events ---------------------------------------------------------------- */

static struct mpt_event *ev_push(struct mpt_conn *c, enum mpt_event_type type, int sf, int err,
                                 uint32_t reason)
{
    struct mpt_event *ev;

    if (type == MPT_EV_READABLE) {
        if (c->ev_readable)
            return NULL;
        c->ev_readable = 1;
    } else if (type == MPT_EV_WRITABLE) {
        if (c->ev_writable)
            return NULL;
        c->ev_writable = 1;
    }
    if (c->ev_n == EVQ_LEN) {
        c->ev_dropped++;
        return NULL;
    }
    ev = &c->evq[(c->ev_head + c->ev_n) % EVQ_LEN];
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ev->sf = sf;
    ev->error = err;
    ev->reason = reason;
    c->ev_n++;
    return ev;
}

int mpt_conn_next_event(struct mpt_conn *c, struct mpt_event *ev)
{
    if (!c || c->ev_n == 0)
        return 0;
    *ev = c->evq[c->ev_head];
    c->ev_head = (c->ev_head + 1) % EVQ_LEN;
    c->ev_n--;
    if (ev->type == MPT_EV_READABLE)
        c->ev_readable = 0;
    else if (ev->type == MPT_EV_WRITABLE)
        c->ev_writable = 0;
    return 1;
}

/* ---- output queue ---------------------------------------------------------- */

static size_t item_total(const struct oitem *it)
{
    return (size_t)it->hlen + (it->kind == IT_DATA ? it->len : 0);
}

static int queue_raw(struct sf *s, const uint8_t *bytes, size_t len)
{
    struct oitem *it;

    if (len > sizeof it->hdr)
        return MPT_EINVAL;
    it = ring_push_back(&s->q);
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
static struct oitem *insert_before_data(struct sf *s)
{
    uint32_t pos = 0;

    while (pos < s->q.n) {
        const struct oitem *q = ring_at(&s->q, pos);
        if (q->off == 0 && q->kind == IT_DATA)
            break;
        pos++;
    }
    /* open a slot at the front and slide the (few) leading items into it */
    if (!ring_push_front(&s->q))
        return NULL;
    for (uint32_t j = 0; j < pos; j++)
        memcpy(ring_at(&s->q, j), ring_at(&s->q, j + 1), sizeof(struct oitem));
    return ring_at(&s->q, pos);
}

static int queue_frame_front(struct sf *s, const struct mpt_frame *f)
{
    uint8_t buf[MPT_FRAME_MAX_CONTROL];
    ssize_t n = mpt_frame_encode(f, buf, sizeof buf);
    struct oitem *it;

    if (n < 0)
        return (int)n;
    it = insert_before_data(s);
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

static int queue_frame(struct sf *s, const struct mpt_frame *f)
{
    uint8_t buf[MPT_FRAME_MAX_CONTROL];
    ssize_t n = mpt_frame_encode(f, buf, sizeof buf);

    if (n < 0)
        return (int)n;
    return queue_raw(s, buf, (size_t)n);
}

static int queue_simple(struct sf *s, uint8_t type, uint8_t flags)
{
    struct mpt_frame f;

    memset(&f, 0, sizeof f);
    f.type = type;
    f.flags = flags;
    return queue_frame(s, &f);
}

static int queue_reason(struct sf *s, uint8_t type, uint32_t reason, uint8_t ftype)
{
    struct mpt_frame f;

    memset(&f, 0, sizeof f);
    f.type = type;
    f.u.close.reason = reason;
    f.u.close.frame_type = ftype;
    return queue_frame(s, &f);
}

static int queue_u64(struct sf *s, uint8_t type, uint64_t v)
{
    struct mpt_frame f;

    memset(&f, 0, sizeof f);
    f.type = type;
    if (type == MPT_FT_DATA_FIN) {
        f.u.data_fin.dsn = v;
        return queue_frame(s, &f);
    }
    f.u.ping.opaque = v;
    return queue_frame_front(s, &f);
}

/* Drops queued output except a partly written head item (which must be
 * completed for the byte stream to stay parseable). */
static void drop_queue(struct sf *s)
{
    while (s->q.n) {
        struct oitem *it = ring_at(&s->q, s->q.n - 1);
        if (s->q.n == 1 && it->off > 0)
            break;
        s->q_bytes -= zmin(s->q_bytes, item_total(it) - it->off);
        if (it->kind == IT_CTRL && s->ctrl_items)
            s->ctrl_items--;
        ring_pop_back(&s->q);
    }
    s->ack_pending = 0;
    s->pong_queued = 0;
}

/* A subflow that is no longer live must not pin send-buffer memory (the
 * caller may close its socket without writing another byte): a partly written
 * DATA frame is dropped with everything behind it (the peer sees a truncated
 * stream on a dead subflow). Returns 1 if that happened. */
static int drop_partial_data(struct sf *s)
{
    const struct oitem *it;

    if (!s->q.n)
        return 0;
    it = ring_at(&s->q, 0);
    if (it->kind != IT_DATA || it->off == 0 || it->len == 0)
        return 0;
    s->q.n = s->q.head = 0;
    s->q_bytes = 0;
    s->ctrl_items = 0;
    s->pong_queued = 0;
    return 1;
}

/* Lowest DSN a partly written DATA frame still needs from the send buffer
 * (live subflows only: see drop_partial_data). */
static uint64_t snd_pin(const struct mpt_conn *c)
{
    uint64_t t = mpt_dsn_min(c->snd_una, c->sb.end);

    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        const struct oitem *it;
        if (!s->q.n || !sf_live(s))
            continue;
        it = ring_at(&s->q, 0);
        if (it->kind == IT_DATA && it->off > 0 && it->len > 0)
            t = mpt_dsn_min(t, it->dsn);
    }
    return t;
}

static void release_sendbuf(struct mpt_conn *c)
{
    mpt_sendbuf_release(&c->sb, snd_pin(c));
    if (c->want_writable && mpt_sendbuf_space(&c->sb) > 0 && conn_open(c) && !c->fin_pending) {
        c->want_writable = 0;
        ev_push(c, MPT_EV_WRITABLE, -1, 0, 0);
    }
}

/* ---- receive-side ack values ----------------------------------------------- */

static uint64_t rcv_ack_value(const struct mpt_conn *c)
{
    return c->rb.nxt + (c->rfin_consumed ? 1 : 0);
}

/* The right edge we would advertise now, before the never-retreat rule. */
static uint64_t rcv_edge_target(const struct mpt_conn *c)
{
    size_t w = c->rb.cap;

    if (c->rcv_limit && c->rcv_limit < w)
        w = c->rcv_limit;
    if (w > MAX_WINDOW)
        w = MAX_WINDOW;
    return c->rb.read + w;
}

static uint64_t rcv_edge(const struct mpt_conn *c)
{
    return mpt_dsn_max(rcv_edge_target(c), c->adv_edge);
}

static void encode_ack(struct mpt_conn *c, struct oitem *it)
{
    struct mpt_frame f;
    uint64_t ack = rcv_ack_value(c), edge = rcv_edge(c);
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
 * least queued output, then lowest srtt. */
static int best_ctrl_sf(const struct mpt_conn *c)
{
    int best = -1;
    uint64_t bq = 0, br = 0;

    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        uint64_t q, r;
        if (s->state != MPT_SF_ESTABLISHED)
            continue;
        q = s->q_bytes + s->info.notsent_bytes + (s->stalled ? (1u << 30) : 0);
        r = sf_srtt(s);
        if (best < 0 || q < bq || (q == bq && r < br)) {
            best = i;
            bq = q;
            br = r;
        }
    }
    return best;
}

static void place_ack(struct mpt_conn *c)
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
    i = best_ctrl_sf(c);
    if (i < 0)
        return;
    c->ack_needed = 0;
    c->sf[i].ack_pending = 1;
}

/* ---- records, reinjection --------------------------------------------------- */

/*
 * The reinjection queue is a set of disjoint, non-adjacent DSN ranges in
 * ascending order, all within [snd_una, snd_nxt): adding a range merges it,
 * so the bytes queued for resending never exceed what is in flight (<=
 * sndbuf) however often a range is queued again. O(ranges).
 */
static void reinj_add(struct mpt_conn *c, uint64_t s, uint64_t e)
{
    uint32_t i = 0, j;
    struct rng *r;

    s = mpt_dsn_max(s, c->snd_una);
    e = mpt_dsn_min(e, c->snd_nxt);
    if (!mpt_dsn_lt(s, e))
        return;
    /* first range that ends at or after s */
    while (i < c->reinj.n && mpt_dsn_lt(((struct rng *)ring_at(&c->reinj, i))->e, s))
        i++;
    /* ranges [i, j) touch [s, e]: merge them into one */
    for (j = i; j < c->reinj.n; j++) {
        r = ring_at(&c->reinj, j);
        if (mpt_dsn_gt(r->s, e))
            break;
        s = mpt_dsn_min(s, r->s);
        e = mpt_dsn_max(e, r->e);
    }
    if (j > i) {
        r = ring_at(&c->reinj, i);
        r->s = s;
        r->e = e;
        /* close the gap left by ranges i+1 .. j-1 */
        for (uint32_t k = i + 1, m = j; m < c->reinj.n; k++, m++)
            memcpy(ring_at(&c->reinj, k), ring_at(&c->reinj, m), sizeof *r);
        c->reinj.n -= j - i - 1;
        return;
    }
    if (!ring_push_back(&c->reinj))
        return; /* out of memory: the data stays on the paths that hold it */
    for (uint32_t k = c->reinj.n - 1; k > i; k--)
        memcpy(ring_at(&c->reinj, k), ring_at(&c->reinj, k - 1), sizeof *r);
    r = ring_at(&c->reinj, i);
    r->s = s;
    r->e = e;
}

/* Queue every unacknowledged byte handed to subflow s for sending elsewhere. */
static void reinject_sf(struct mpt_conn *c, struct sf *s, int drop_records)
{
    int any = 0;

    for (uint32_t i = 0; i < s->recs.n; i++) {
        struct rec *r = ring_at(&s->recs, i);
        uint64_t st = mpt_dsn_max(r->dsn, c->snd_una), en = r->dsn + r->len;
        if (mpt_dsn_lt(st, en)) {
            reinj_add(c, st, en);
            r->flags |= REC_AMBIG;
            any = 1;
        }
    }
    if (any)
        c->st.reinjections++;
    if (drop_records) {
        s->recs.n = 0;
        s->recs.head = 0;
        s->inflight = 0;
    }
    if (c->fin_sf >= 0 && &c->sf[c->fin_sf] == s && !c->fin_acked)
        c->fin_sf = -1;
}

static void finish_close(struct mpt_conn *c);

/* A subflow went away: an ack or window update written on it may be lost,
 * so send a fresh one elsewhere; and note when no path is left. */
static void check_nopath(struct mpt_conn *c, uint64_t now)
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
        finish_close(c);
        return;
    }
    if (!c->nopath_since)
        c->nopath_since = now ? now : 1;
}

static void conn_abort(struct mpt_conn *c, int err, uint32_t reason, int fastclose, int event,
                       int errsf, uint8_t ftype);
static void adv_resend(struct mpt_conn *c, int gone);

static void sf_fail(struct mpt_conn *c, int i, int err, uint32_t reason, int send_error,
                    uint8_t ftype, uint64_t now)
{
    struct sf *s = &c->sf[i];
    int had_ack = s->ack_pending;

    if (!sf_live(s))
        return;
    drop_queue(s);
    if (!drop_partial_data(s) && send_error)
        queue_reason(s, MPT_FT_ERROR, reason, ftype);
    s->state = MPT_SF_FAILED;
    c->st.sf_failed++;
    s->stalled = 0;
    s->fail_reason = reason;
    s->fail_error = err;
    reinject_sf(c, s, 1);
    if (had_ack)
        c->ack_needed = 1;
    ev_push(c, MPT_EV_SF_DOWN, i, err, reason);
    if (c->state == MPT_CONN_HANDSHAKE && s->handshake_sf) {
        conn_abort(c, err, reason, 0, 1, -1, 0);
        return;
    }
    adv_resend(c, i);
    check_nopath(c, now);
}

static void conn_abort(struct mpt_conn *c, int err, uint32_t reason, int fastclose, int event,
                       int errsf, uint8_t ftype)
{
    if (c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED)
        return;
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        if (!sf_live(s))
            continue;
        drop_queue(s);
        if (i == errsf)
            queue_reason(s, MPT_FT_ERROR, reason, ftype);
        if (fastclose && (s->state == MPT_SF_ESTABLISHED || s->state == MPT_SF_CLOSING ||
                          s->state == MPT_SF_HANDSHAKE)) {
            struct mpt_frame f;
            memset(&f, 0, sizeof f);
            f.type = MPT_FT_FASTCLOSE;
            f.u.close.reason = reason;
            if (c->abort_text) {
                f.u.close.text = (const uint8_t *)c->abort_text;
                f.u.close.text_len = strlen(c->abort_text);
            }
            queue_frame(s, &f);
        }
        s->state = MPT_SF_CLOSED;
    }
    c->state = MPT_CONN_ABORTED;
    c->error = err;
    if (event)
        ev_push(c, MPT_EV_ERROR, -1, err, reason);
}

/* Connection-level protocol violation found on subflow i. */
static int proto_violation(struct mpt_conn *c, int i, int err, uint32_t reason, uint8_t ftype,
                           uint64_t now)
{
    (void)now;
    conn_abort(c, err, reason, 1, 1, i, ftype);
    return err;
}

/* ---- scheduling --------------------------------------------------------- */

static size_t cc_room_of(const struct mpt_conn *c, int i, const struct mpt_cc_sf *ccs, int nccs,
                         int which)
{
    const struct sf *s = &c->sf[i];
    size_t cap = s->pen_cap;

    if (c->cc->cap) {
        size_t k = c->cc->cap(c->cc_state, ccs, nccs, which);
        cap = zmin(cap, k);
    }
    return cap > s->inflight ? cap - s->inflight : 0;
}

static int fill_cc(const struct mpt_conn *c, struct mpt_cc_sf *ccs, int *map)
{
    int n = 0;

    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        map[i] = -1;
        if (s->state != MPT_SF_ESTABLISHED)
            continue;
        ccs[n].index = i;
        ccs[n].srtt = sf_srtt(s);
        ccs[n].cwnd_bytes = s->info.cwnd_bytes;
        ccs[n].inflight = s->inflight;
        map[i] = n++;
    }
    return n;
}

static int enqueue_data(struct mpt_conn *c, int i, uint64_t dsn, size_t len, int reinj,
                        uint32_t rflags, uint64_t now)
{
    struct sf *s = &c->sf[i];
    struct oitem *it;
    struct rec *r;

    it = ring_push_back(&s->q);
    if (!it)
        return MPT_ENOMEM;
    r = ring_push_back(&s->recs);
    if (!r) {
        ring_pop_back(&s->q);
        return MPT_ENOMEM;
    }
    it->kind = IT_DATA;
    it->off = 0;
    it->len = (uint32_t)len;
    it->dsn = dsn;
    it->hlen = MPT_DATA_HDR_LEN;
    if (!reinj && !mpt_dsn_lt(c->snd_una, c->snd_nxt) && !(c->fin_sent && !c->fin_acked))
        c->una_moved_at = now; /* the ack timeout counts from the first byte outstanding */
    r->dsn = dsn;
    r->len = (uint32_t)len;
    r->flags = rflags | (reinj ? REC_COPY : 0);
    r->t = now;
    s->inflight += len;
    s->q_bytes += MPT_DATA_HDR_LEN + len;
    s->room -= zmin(s->room, MPT_DATA_HDR_LEN + len);
    s->bytes_sent += len;
    c->st.bytes_sent += len;
    if (reinj)
        c->st.bytes_reinjected += len;
    return 0;
}

static void maybe_send_fin(struct mpt_conn *c, uint64_t now)
{
    int i;

    if (!c->fin_pending || c->fin_acked || c->fin_sf >= 0 || c->snd_nxt != c->sb.end)
        return;
    i = best_ctrl_sf(c);
    if (i < 0)
        return;
    if (queue_u64(&c->sf[i], MPT_FT_DATA_FIN, c->fin_dsn) == 0) {
        if (!c->fin_sent && !mpt_dsn_lt(c->snd_una, c->snd_nxt))
            c->una_moved_at = now; /* the DATA_FIN alone is outstanding */
        c->fin_sent = 1;
        c->fin_sf = i;
    }
}

static void opportunistic(struct mpt_conn *c, uint64_t now, const struct mpt_cc_sf *ccs, int nccs,
                          const int *map);

/*
 * Retransmission timer for the bytes at snd_una. A path can keep delivering
 * (so it never looks stalled) while the receiver dropped one segment (its
 * out-of-order range table was full): the cumulative ack then stops at a
 * hole nobody resends. When snd_una has not moved, and the newest copy of
 * the bytes at snd_una was sent, longer than max(2 * stall_min, 4 * srtt +
 * 4 * rttvar) of its path (doubled per retry while snd_una does not move),
 * they are queued for reinjection. Deep socket queues do not trigger it: the
 * cumulative ack keeps moving there. O(subflows).
 */
static uint64_t una_rtx_at(const struct mpt_conn *c, uint64_t *end)
{
    uint64_t t = 0, rto = 0, e = 0;
    int found = 0;

    if (!conn_open(c) || !mpt_dsn_lt(c->snd_una, c->snd_nxt) || c->reinj.n)
        return MPT_TIME_NEVER;
    for (int i = 0; i < c->nslots; i++) {
        const struct sf *s = &c->sf[i];
        const struct rec *r;
        uint64_t x;
        if (s->state != MPT_SF_ESTABLISHED || !s->recs.n)
            continue;
        r = ring_at(&s->recs, 0);
        if (!(mpt_dsn_le(r->dsn, c->snd_una) && mpt_dsn_lt(c->snd_una, r->dsn + r->len)))
            continue;
        x = u64max(2 * c->s.stall_min, 4 * sf_e2e_rtt(s) + 4 * sf_rttvar(s));
        if (!found || r->t > t) {
            t = r->t;
            e = r->dsn + r->len;
        }
        rto = u64max(rto, x);
        found = 1;
    }
    if (!found)
        return MPT_TIME_NEVER;
    t = u64max(t, c->una_moved_at);
    if (c->una_rtx_dsn == c->snd_una && c->una_backoff) {
        t = u64max(t, c->una_rtx_t);
        rto <<= (c->una_backoff < 6 ? c->una_backoff : 6);
    }
    if (end)
        *end = e;
    return t + rto;
}

static void una_rtx_check(struct mpt_conn *c, uint64_t now)
{
    uint64_t end = 0, at = una_rtx_at(c, &end);

    if (at == MPT_TIME_NEVER || now < at)
        return;
    if (c->una_rtx_dsn != c->snd_una) {
        c->una_rtx_dsn = c->snd_una;
        c->una_backoff = 0;
    }
    c->una_backoff++;
    c->una_rtx_t = now;
    reinj_add(c, c->snd_una, end);
    c->st.reinjections++;
}

static void schedule(struct mpt_conn *c, uint64_t now)
{
    struct mpt_sched_sf ss[MPT_MAX_SUBFLOWS_LIMIT];
    struct mpt_cc_sf ccs[MPT_MAX_SUBFLOWS_LIMIT];
    int map[MPT_MAX_SUBFLOWS_LIMIT];
    int nccs;

    if (!conn_open(c))
        return;
    nccs = fill_cc(c, ccs, map);
    for (;;) {
        uint64_t dsn;
        size_t avail, len;
        int reinj = 0, n = 0, pick, k = -1;
        struct rng *r = NULL;

        while (c->reinj.n) {
            r = ring_at(&c->reinj, 0);
            if (mpt_dsn_lt(r->s, c->snd_una))
                r->s = mpt_dsn_min(c->snd_una, r->e);
            /* skip what the peer already holds (its SACK ranges never shrink
             * except into the cumulative ack) */
            for (int q = 0; q < c->nsack; q++)
                if (mpt_dsn_le(c->sack[q].start, r->s) && mpt_dsn_lt(r->s, c->sack[q].end))
                    r->s = mpt_dsn_min(c->sack[q].end, r->e);
            if (r->s != r->e)
                break;
            ring_pop_front(&c->reinj);
            r = NULL;
        }
        if (r) {
            dsn = r->s;
            avail = (size_t)(r->e - r->s);
            reinj = 1;
        } else {
            uint64_t lim = mpt_dsn_min(c->sb.end, c->snd_edge);
            if (!mpt_dsn_lt(c->snd_nxt, lim))
                break;
            dsn = c->snd_nxt;
            avail = (size_t)(lim - c->snd_nxt);
        }
        len = zmin(avail, c->s.max_frame_payload);

        /* A subflow never carries the same byte twice at once: TCP delivers
         * what it holds, or the subflow fails and its bytes are queued
         * again. Reinjected bytes go only to subflows that do not hold them;
         * bytes every usable subflow holds leave the queue. */
        uint64_t skip_to = 0, clip[MPT_MAX_SUBFLOWS_LIMIT];
        int usable = 0, held = 0;
        for (int i = 0; i < c->nslots; i++) {
            struct sf *s = &c->sf[i];
            uint64_t hend, hnext;
            if (!sf_usable(s))
                continue;
            usable++;
            clip[i] = dsn + len;
            if (reinj) {
                if (sf_holds(s, dsn, &hend, &hnext)) {
                    skip_to = !held++ || mpt_dsn_lt(hend, skip_to) ? hend : skip_to;
                    continue;
                }
                clip[i] = mpt_dsn_min(clip[i], hnext);
            }
            ss[n].index = i;
            ss[n].backup = s->backup;
            ss[n].srtt = sf_srtt(s);
            ss[n].room = s->room > MPT_DATA_HDR_LEN ? s->room - MPT_DATA_HDR_LEN : 0;
            ss[n].cc_room = cc_room_of(c, i, ccs, nccs, map[i]);
            ss[n].queued = s->inflight;
            n++;
        }
        if (n == 0) {
            if (reinj && usable > 0) {
                r->s = mpt_dsn_min(r->e, skip_to); /* held everywhere usable */
                continue;
            }
            break;
        }
        pick = c->sched->pick(ss, n, c->sched_state);
        for (int j = 0; j < n; j++)
            if (ss[j].index == pick)
                k = j;
        if (k < 0 || ss[k].room == 0 || ss[k].cc_room == 0)
            break;
        len = zmin(len, zmin(ss[k].room, ss[k].cc_room));
        len = zmin(len, (size_t)(clip[pick] - dsn));
        if (enqueue_data(c, pick, dsn, len, reinj, 0, now))
            break;
        if (map[pick] >= 0)
            ccs[map[pick]].inflight = c->sf[pick].inflight;
        if (reinj)
            r->s += len;
        else
            c->snd_nxt += len;
    }
    opportunistic(c, now, ccs, nccs, map);
    maybe_send_fin(c, now);
}

/* Opportunistic retransmission of the segment blocking the window. */
static void opportunistic(struct mpt_conn *c, uint64_t now, const struct mpt_cc_sf *ccs, int nccs,
                          const int *map)
{
    int blocked, S = -1, F = -1;
    struct rec *hold = NULL;
    uint64_t sr, end, dsn;

    if (c->reinj.n || !mpt_dsn_lt(c->snd_una, c->snd_nxt))
        return;
    blocked = (c->snd_nxt == c->snd_edge && mpt_dsn_lt(c->snd_nxt, c->sb.end)) ||
              (mpt_sendbuf_space(&c->sb) == 0 && c->snd_nxt == c->sb.end);
    if (!blocked)
        return;
    for (int i = 0; i < c->nslots && !hold; i++) {
        struct sf *s = &c->sf[i];
        struct rec *r;
        if (s->state != MPT_SF_ESTABLISHED || !s->recs.n)
            continue;
        r = ring_at(&s->recs, 0);
        if (mpt_dsn_le(r->dsn, c->snd_una) && mpt_dsn_lt(c->snd_una, r->dsn + r->len)) {
            if (r->flags & REC_OPP)
                return; /* done already */
            hold = r;
            S = i;
        }
    }
    if (!hold)
        return;
    sr = sf_e2e_rtt(&c->sf[S]);
    end = hold->dsn + hold->len;
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        uint64_t fr = sf_e2e_rtt(s), hend, hnext;
        if (i == S || !sf_usable(s) || s->room <= MPT_DATA_HDR_LEN)
            continue;
        if (!c->sf[S].stalled && !(fr && sr && fr * 4 < sr))
            continue;
        if (cc_room_of(c, i, ccs, nccs, map[i]) == 0)
            continue;
        if (sf_holds(s, c->snd_una, &hend, &hnext))
            continue; /* a copy is already on its way there */
        if (F < 0 || fr < sf_e2e_rtt(&c->sf[F])) {
            F = i;
            end = mpt_dsn_min(hold->dsn + hold->len, hnext);
        }
    }
    if (F < 0)
        return;
    hold->flags |= REC_OPP | REC_AMBIG;
    dsn = c->snd_una;
    c->st.reinjections++;
    while (mpt_dsn_lt(dsn, end) && c->sf[F].room > MPT_DATA_HDR_LEN) {
        size_t len = zmin((size_t)(end - dsn),
                          zmin(c->s.max_frame_payload, c->sf[F].room - MPT_DATA_HDR_LEN));
        if (enqueue_data(c, F, dsn, len, 1, REC_OPP, now))
            break;
        dsn += len;
    }
    if (mpt_dsn_lt(dsn, end))
        reinj_add(c, dsn, end);
    /* penalise the slow subflow: halve its in-flight cap once per its RTT */
    {
        struct sf *s = &c->sf[S];
        if (!s->last_pen || now - s->last_pen >= sr) {
            size_t half = s->inflight / 2;
            size_t floor = 2 * (size_t)c->s.max_frame_payload;
            s->pen_cap = half > floor ? half : floor;
            s->pen_base = s->pen_cap;
            s->last_pen = now ? now : 1;
            c->st.penalisations++;
        }
    }
}

/* ---- ack processing --------------------------------------------------------- */

/* Returns 0, or MPT_EPROTO for an Ack of data never sent (9.3). Ack is
 * placed by its distance from snd_una (9.1): ahead if less than 2^63, else
 * behind (stale, however far). */
static int on_data_ack(struct mpt_conn *c, int from, uint64_t ack, uint32_t window,
                       const struct mpt_sack_range *sack, int nsack, uint64_t now)
{
    uint64_t maxack = c->fin_sent ? c->fin_dsn + 1 : c->snd_nxt;
    uint64_t ahead = ack - c->snd_una, edge;

    (void)from;
    if (ahead < ((uint64_t)1 << 63) && ahead > maxack - c->snd_una)
        return MPT_EPROTO;
    if (ahead < ((uint64_t)1 << 63)) {
        /* the newest view of what the peer holds out of order */
        c->nsack = 0;
        for (int k = 0; k < nsack; k++)
            if (mpt_dsn_le(sack[k].end, c->snd_nxt))
                c->sack[c->nsack++] = sack[k];
    }
    if (mpt_dsn_gt(ack, c->snd_una)) {
        uint64_t data_end = mpt_dsn_min(ack, c->sb.end);
        if (mpt_dsn_gt(data_end, c->snd_una))
            c->st.bytes_acked += data_end - c->snd_una;
        c->snd_una = ack;
        c->una_moved_at = now;
        if (mpt_dsn_lt(c->snd_nxt, mpt_dsn_min(ack, c->sb.end)))
            c->snd_nxt = mpt_dsn_min(ack, c->sb.end);
        for (int i = 0; i < c->nslots; i++) {
            struct sf *s = &c->sf[i];
            size_t acked = 0;
            while (s->recs.n) {
                struct rec *r = ring_at(&s->recs, 0);
                uint64_t e = r->dsn + r->len;
                if (mpt_dsn_le(e, ack)) {
                    acked += r->len;
                    if (!(r->flags & (REC_COPY | REC_AMBIG)) && now > r->t)
                        e2e_sample(s, now - r->t, now);
                    ring_pop_front(&s->recs);
                } else {
                    if (mpt_dsn_lt(r->dsn, ack)) {
                        uint32_t cut = (uint32_t)(ack - r->dsn);
                        acked += cut;
                        r->dsn = ack;
                        r->len -= cut;
                    }
                    break;
                }
            }
            if (!acked)
                continue;
            s->inflight -= zmin(s->inflight, acked);
            s->bytes_acked += acked;
            if (!s->stalled) {
                s->last_progress = now; /* a stalled path's bytes were acked via copies */
                s->stalls = 0;
            }
            if (s->pen_cap != SIZE_MAX) {
                s->pen_cap += acked;
                if (s->pen_cap >= 2 * s->pen_base)
                    s->pen_cap = SIZE_MAX;
            }
            if (c->cc->on_ack && s->state == MPT_SF_ESTABLISHED) {
                struct mpt_cc_sf ccs[MPT_MAX_SUBFLOWS_LIMIT];
                int map[MPT_MAX_SUBFLOWS_LIMIT];
                int n = fill_cc(c, ccs, map);
                c->cc->on_ack(c->cc_state, ccs, n, map[i], acked);
            }
        }
        if (c->fin_pending && mpt_dsn_ge(ack, c->fin_dsn + 1))
            c->fin_acked = 1;
        release_sendbuf(c);
    }
    edge = ack + window;
    if (mpt_dsn_gt(edge, c->snd_edge))
        c->snd_edge = edge;
    return 0;
}

/* ---- close ------------------------------------------------------------------ */

static void enter_closing(struct mpt_conn *c, uint64_t now)
{
    (void)now;
    if (c->state == MPT_CONN_ESTABLISHED)
        c->state = MPT_CONN_CLOSING;
}

static void finish_close(struct mpt_conn *c)
{
    c->state = MPT_CONN_CLOSED;
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        if (sf_live(s))
            s->state = MPT_SF_CLOSED;
        s->ack_pending = 0;
    }
    ev_push(c, MPT_EV_CLOSED, -1, 0, 0);
    ev_push(c, MPT_EV_READABLE, -1, 0, 0);
}

/* CLOSE (after a final DATA_ACK) on every established subflow: one of them
 * may be stalled, and the peer ignores duplicates. */
static int send_close_all(struct mpt_conn *c)
{
    int sent = 0;

    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        struct oitem *it;
        if (s->state != MPT_SF_ESTABLISHED)
            continue;
        it = ring_push_back(&s->q);
        if (it) {
            it->kind = IT_ACK;
            it->off = 0;
            it->len = 0;
            encode_ack(c, it);
            s->q_bytes += it->hlen;
            s->ack_pending = 0;
        }
        if (queue_simple(s, MPT_FT_CLOSE, 0) == 0)
            sent = 1;
    }
    if (sent)
        c->ack_needed = 0;
    return sent;
}

static void check_close(struct mpt_conn *c)
{
    if (!conn_open(c))
        return;
    if (!c->close_sent && c->fin_acked && c->rfin_consumed && send_close_all(c)) {
        c->close_sent = 1;
        c->close_deadline = c->now + c->s.close_timeout;
    }
    if (c->close_sent && c->close_rcvd)
        finish_close(c);
}

static void try_consume_fin(struct mpt_conn *c, uint64_t now)
{
    if (c->rfin_known && !c->rfin_consumed && c->rb.nxt == c->rfin_dsn) {
        c->rfin_consumed = 1;
        enter_closing(c, now);
        ev_push(c, MPT_EV_READABLE, -1, 0, 0);
        c->ack_needed = 1;
    }
}

/* ---- common tail of every entry point ------------------------------------- */

static void post(struct mpt_conn *c, uint64_t now)
{
    if (!conn_open(c))
        return;
    release_sendbuf(c); /* pins may have gone with a subflow */
    schedule(c, now);
    place_ack(c);
    check_close(c);
}

/* ---- lifecycle --------------------------------------------------------------- */

static int conn_alloc(const struct mpt_core_settings *s, int is_server, uint64_t now,
                      struct mpt_conn **out)
{
    struct mpt_conn *c;

    if (!s || !s->rand || !out || s->max_frame_payload == 0 || s->sndbuf == 0 || s->rcvbuf == 0)
        return MPT_EINVAL;
    c = calloc(1, sizeof *c);
    if (!c)
        return MPT_ENOMEM;
    c->s = *s;
    if (c->s.max_subflows == 0 || c->s.max_subflows > MPT_MAX_SUBFLOWS_LIMIT)
        c->s.max_subflows = c->s.max_subflows ? MPT_MAX_SUBFLOWS_LIMIT : 1;
    if (c->s.max_frame_payload > MPT_FRAME_MAX_DATA)
        c->s.max_frame_payload = MPT_FRAME_MAX_DATA;
    c->sched = s->sched ? s->sched : &mpt_sched_minrtt;
    c->cc = s->cc ? s->cc : &mpt_cc_passthrough;
    if (c->sched->state_size && !(c->sched_state = calloc(1, c->sched->state_size)))
        goto nomem;
    if (c->cc->state_size && !(c->cc_state = calloc(1, c->cc->state_size)))
        goto nomem;
    c->is_server = is_server;
    c->state = MPT_CONN_HANDSHAKE;
    c->now = now;
    c->fin_sf = -1;
    c->ack_deadline = MPT_TIME_NEVER;
    c->hs_deadline = now + c->s.handshake_timeout;
    c->ack_timeout = c->s.ack_timeout ? c->s.ack_timeout : 4 * c->s.subflow_timeout;
    ring_init(&c->reinj, sizeof(struct rng));
    ring_init(&c->advs, sizeof(struct adv));
    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
        c->sf[i].state = MPT_SF_CLOSED;
        ring_init(&c->sf[i].q, sizeof(struct oitem));
        ring_init(&c->sf[i].recs, sizeof(struct rec));
        c->sf[i].pen_cap = SIZE_MAX;
    }
    *out = c;
    return 0;
nomem:
    free(c->sched_state);
    free(c);
    return MPT_ENOMEM;
}

static void set_local_key(struct mpt_conn *c)
{
    mpt_key_derive(c->key_local, &c->token_local, &c->idsn_local);
    mpt_sendbuf_init(&c->sb, c->s.sndbuf, c->idsn_local);
    c->snd_una = c->snd_nxt = c->snd_edge = c->idsn_local;
}

static void set_peer_key(struct mpt_conn *c, const uint8_t key[MPT_KEY_LEN], uint32_t window)
{
    memcpy(c->key_peer, key, MPT_KEY_LEN);
    mpt_key_derive(c->key_peer, &c->token_peer, &c->idsn_peer);
    mpt_rcvbuf_init(&c->rb, c->s.rcvbuf, c->idsn_peer);
    c->rb_ready = 1;
    c->adv_edge = c->rb.read + zmin(c->rb.cap, MAX_WINDOW);
    c->ack_written = c->idsn_peer;
    c->edge_written = c->adv_edge;
    c->snd_edge = c->idsn_local + window;
}

int mpt_conn_client_new(const struct mpt_core_settings *s, uint64_t now, struct mpt_conn **out)
{
    struct mpt_conn *c;
    int r = conn_alloc(s, 0, now, &c);

    if (r)
        return r;
    c->s.rand(c->s.rand_user, c->key_local, MPT_KEY_LEN);
    set_local_key(c);
    *out = c;
    return 0;
}

void mpt_conn_free(struct mpt_conn *c)
{
    if (!c)
        return;
    if (c->srv && c->in_table)
        RB_REMOVE(tok_tree, &c->srv->tokens, c);
    for (int i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++) {
        ring_free(&c->sf[i].q);
        ring_free(&c->sf[i].recs);
    }
    ring_free(&c->reinj);
    ring_free(&c->advs);
    mpt_sendbuf_free(&c->sb);
    if (c->rb_ready)
        mpt_rcvbuf_free(&c->rb);
    free(c->sched_state);
    free(c->cc_state);
    free(c);
}

enum mpt_conn_state mpt_conn_state(const struct mpt_conn *c)
{
    return c->state;
}

static int live_count(const struct mpt_conn *c)
{
    int n = 0;

    for (int i = 0; i < c->nslots; i++)
        n += sf_live(&c->sf[i]);
    return n;
}

/* A free slot: never-used ones first so indexes are not recycled early. */
static int alloc_slot(struct mpt_conn *c)
{
    int i;

    if (live_count(c) >= (int)c->s.max_subflows)
        return MPT_ETOOMANY;
    for (i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
        if (!c->sf[i].used_ever)
            break;
    if (i == MPT_MAX_SUBFLOWS_LIMIT) {
        for (i = 0; i < MPT_MAX_SUBFLOWS_LIMIT; i++)
            if (!sf_live(&c->sf[i]) && c->sf[i].q.n == 0)
                break;
        if (i == MPT_MAX_SUBFLOWS_LIMIT)
            return MPT_ETOOMANY;
    }
    {
        struct sf *s = &c->sf[i];
        struct ring q = s->q, recs = s->recs;
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

int mpt_conn_add_subflow(struct mpt_conn *c, uint8_t addr_id, int backup, uint64_t now)
{
    int i;

    if (!c)
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
    i = alloc_slot(c);
    if (i < 0)
        return i;
    c->sf[i].addr_id = addr_id;
    c->sf[i].backup = backup ? 1 : 0;
    c->sf[i].is_join = c->state != MPT_CONN_HANDSHAKE;
    c->sf[i].handshake_sf = !c->sf[i].is_join;
    c->sf[i].hs_deadline = now + c->s.handshake_timeout;
    return i;
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
    if (!s->is_join) {
        p.kind = MPT_PRE_NEW;
        f.type = MPT_FT_HELLO;
        f.u.hello.version_min = f.u.hello.version_max = MPT_PROTO_VERSION;
        f.u.hello.features = MPT_FEAT_SACK;
        memcpy(f.u.hello.key, c->key_local, MPT_KEY_LEN);
        f.u.hello.window = (uint32_t)zmin(c->s.rcvbuf, MAX_WINDOW);
    } else {
        if (!conn_open(c))
            return MPT_ESTATE;
        p.kind = MPT_PRE_JOIN;
        memcpy(p.routing_id, c->routing_id, MPT_ROUTING_ID_LEN);
        c->s.rand(c->s.rand_user, s->nonce_local, MPT_NONCE_LEN);
        s->join_flags = s->backup ? MPT_FF_JOIN_BACKUP : 0;
        f.type = MPT_FT_JOIN;
        f.flags = s->join_flags;
        f.u.join.token = c->token_peer;
        memcpy(f.u.join.nonce, s->nonce_local, MPT_NONCE_LEN);
        f.u.join.addr_id = s->addr_id;
    }
    n = mpt_preamble_encode(&p, pre, sizeof pre);
    if (n < 0)
        return (int)n;
    if (queue_raw(s, pre, (size_t)n) || queue_frame(s, &f))
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
        e2e_sample(s, now - s->hs_sent_at, now);
}

static void sf_up(struct mpt_conn *c, int i, uint64_t now)
{
    struct sf *s = &c->sf[i];
    int others = 0;

    for (int k = 0; k < c->nslots; k++)
        others += k != i && c->sf[k].state == MPT_SF_ESTABLISHED;
    if (!others)
        c->una_moved_at = u64max(c->una_moved_at, now); /* the peer could not ack before */
    s->state = MPT_SF_ESTABLISHED;
    c->st.sf_opened++;
    s->last_rx = now;
    s->last_progress = now;
    s->next_ping = now; /* first RTT sample right away */
    c->nopath_since = 0;
    ev_push(c, MPT_EV_SF_UP, i, 0, 0);
}

/* ---- server ------------------------------------------------------------------ */

int mpt_server_new(const struct mpt_core_settings *s, struct mpt_server **out)
{
    struct mpt_server *srv;

    if (!s || !s->rand || !out)
        return MPT_EINVAL;
    srv = calloc(1, sizeof *srv);
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
    free(srv);
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
    rc = conn_alloc(&srv->s, 1, now, &c);
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
    set_local_key(c);
    c->s.rand(c->s.rand_user, c->routing_id, MPT_ROUTING_ID_LEN);
    c->features = f->u.hello.features & MPT_FEAT_SACK;
    set_peer_key(c, f->u.hello.key, f->u.hello.window);
    c->srv = srv;
    RB_INSERT(tok_tree, &srv->tokens, c);
    c->in_table = 1;

    i = alloc_slot(c);
    memset(&r, 0, sizeof r);
    r.type = MPT_FT_HELLO_ACK;
    r.u.hello_ack.version = MPT_PROTO_VERSION;
    r.u.hello_ack.features = c->features;
    memcpy(r.u.hello_ack.key, c->key_local, MPT_KEY_LEN);
    memcpy(r.u.hello_ack.routing_id, c->routing_id, MPT_ROUTING_ID_LEN);
    r.u.hello_ack.window = (uint32_t)zmin(c->s.rcvbuf, MAX_WINDOW);
    if (i < 0 || queue_frame(&c->sf[i], &r)) {
        mpt_conn_free(c);
        refuse(a, MPT_REASON_RESOURCE, MPT_FT_HELLO);
        return MPT_ENOMEM;
    }
    c->state = MPT_CONN_ESTABLISHED;
    ev_push(c, MPT_EV_ESTABLISHED, -1, 0, 0);
    sf_up(c, i, now);
    a->conn = c;
    a->sf = i;
    a->is_new = 1;
    return 0;
}

static int accept_join(struct mpt_server *srv, const struct mpt_frame *f, uint64_t now,
                       struct mpt_accept *a)
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
    if (live_count(c) >= (int)c->s.max_subflows) {
        refuse(a, MPT_REASON_TOO_MANY, MPT_FT_JOIN);
        return MPT_ETOOMANY;
    }
    if (nonce_seen(c, f->u.join.nonce)) {
        refuse(a, MPT_REASON_REPLAY, MPT_FT_JOIN);
        return MPT_EREPLAY;
    }
    i = alloc_slot(c);
    if (i < 0) {
        refuse(a, MPT_REASON_TOO_MANY, MPT_FT_JOIN);
        return MPT_ETOOMANY;
    }
    s = &c->sf[i];
    s->is_join = 1;
    s->state = MPT_SF_HANDSHAKE;
    s->addr_id = f->u.join.addr_id;
    s->join_flags = f->flags;
    s->backup = (f->flags & MPT_FF_JOIN_BACKUP) ? 1 : 0;
    s->hs_deadline = now + c->s.handshake_timeout;
    s->hs_sent_at = now;
    s->last_rx = now;
    memcpy(s->nonce_peer, f->u.join.nonce, MPT_NONCE_LEN);
    c->s.rand(c->s.rand_user, s->nonce_local, MPT_NONCE_LEN);
    memset(&r, 0, sizeof r);
    r.type = MPT_FT_JOIN_ACK;
    memcpy(r.u.join_ack.nonce, s->nonce_local, MPT_NONCE_LEN);
    mpt_join_hmac(MPT_JOIN_SERVER, c->key_local, c->key_peer, s->nonce_local, s->nonce_peer,
                  s->addr_id, s->join_flags, r.u.join_ack.hmac);
    if (queue_frame(s, &r)) {
        s->state = MPT_SF_CLOSED;
        refuse(a, MPT_REASON_RESOURCE, MPT_FT_JOIN);
        return MPT_ENOMEM;
    }
    a->conn = c;
    a->sf = i;
    a->is_new = 0;
    return 0;
}

int mpt_server_accept(struct mpt_server *srv, const uint8_t *data, size_t len, uint64_t now,
                      struct mpt_accept *a)
{
    struct mpt_preamble p;
    struct mpt_frame f;
    ssize_t np, nf;
    int rc;

    if (!srv || !a || (!data && len))
        return MPT_EINVAL;
    memset(a, 0, sizeof *a);
    a->sf = -1;
    /* 3.2: a peer that sent no valid preamble may not speak this protocol:
     * close without a word (reply_len stays 0). */
    np = mpt_preamble_decode(data, len, &p);
    if (np < 0)
        return (int)np;
    /* This engine offers no TLS: refuse at once, in clear, so that the
     * client can tell why instead of waiting for a ServerHello. */
    if (p.flags & MPT_PREF_TLS) {
        refuse_text(a, MPT_REASON_PROTOCOL, 0, "TLS not offered by this server");
        return MPT_ETLS;
    }
    /* A NEW preamble's Version is only a hint (the HELLO negotiates); a JOIN
     * in a version we do not implement cannot even be parsed. */
    if (p.kind == MPT_PRE_JOIN && p.version != MPT_PROTO_VERSION) {
        refuse(a, MPT_REASON_VERSION, MPT_FT_JOIN);
        return MPT_EVERSION;
    }
    /* Before the handshake no legitimate frame has a body over 260 bytes
     * (4.3): refuse from the header, without buffering the body. */
    nf = mpt_frame_decode(data + np, len - (size_t)np, MPT_FRAME_MAX_CONTROL - MPT_FRAME_HDR_LEN,
                          &f);
    if (nf < 0) {
        if (nf != MPT_EINCOMPLETE)
            refuse(a, MPT_REASON_PROTOCOL, data[np]);
        return (int)nf;
    }
    if (p.kind == MPT_PRE_NEW && f.type == MPT_FT_HELLO)
        rc = accept_new(srv, &f, now, a);
    else if (p.kind == MPT_PRE_JOIN && f.type == MPT_FT_JOIN)
        rc = accept_join(srv, &f, now, a);
    else {
        refuse(a, MPT_REASON_PROTOCOL, f.type);
        return MPT_EPROTO;
    }
    if (rc == 0) {
        a->consumed = (size_t)(np + nf);
        post(a->conn, now);
    }
    return rc;
}

/* ---- input -------------------------------------------------------------------- */

static int adv_matches(const struct adv *a, const struct mpt_frame *f)
{
    size_t alen = a->family == 4 ? 4 : 16;

    return a->id == f->u.add_addr.addr_id && a->family == f->u.add_addr.family &&
           a->port == f->u.add_addr.port && memcmp(a->addr, f->u.add_addr.addr, alen) == 0 &&
           mpt_ct_equal(a->hmac, f->u.add_addr.hmac, MPT_ADDR_HMAC_LEN);
}

static int on_add_addr(struct mpt_conn *c, int i, const struct mpt_frame *f)
{
    uint8_t mac[MPT_ADDR_HMAC_LEN];
    struct mpt_event *ev;

    if (f->flags & MPT_FF_ADD_ADDR_ECHO) {
        /* An echo carries the HMAC we computed: match it, all fields
         * equal, against what we advertised; an echo of nothing is ignored. */
        for (uint32_t k = 0; k < c->advs.n; k++) {
            struct adv *a = ring_at(&c->advs, k);
            if (adv_matches(a, f))
                a->echoed = 1;
        }
        return 0;
    }
    mpt_addr_hmac(c->key_peer, c->key_local, f->u.add_addr.addr_id, f->u.add_addr.family,
                  f->u.add_addr.port, f->u.add_addr.addr, mac);
    if (f->u.add_addr.addr_id == 0 || !mpt_ct_equal(mac, f->u.add_addr.hmac, MPT_ADDR_HMAC_LEN)) {
        c->addr_bad++; /* id 0 is the first subflow's and never advertised (10.1) */
        return 0;
    }
    {
        struct mpt_frame e = *f;
        e.flags = MPT_FF_ADD_ADDR_ECHO;
        queue_frame(&c->sf[i], &e);
    }
    ev = ev_push(c, MPT_EV_ADDR_LEARNED, -1, 0, 0);
    if (ev) {
        ev->addr.addr_id = f->u.add_addr.addr_id;
        ev->addr.family = f->u.add_addr.family;
        ev->addr.port = f->u.add_addr.port;
        memcpy(ev->addr.addr, f->u.add_addr.addr, 16);
    }
    return 0;
}

static void sf_closing_done(struct mpt_conn *c, int i, uint32_t reason)
{
    struct sf *s = &c->sf[i];

    s->state = MPT_SF_CLOSED;
    s->fail_reason = reason;
    drop_partial_data(s);
    ev_push(c, MPT_EV_SF_DOWN, i, MPT_ECLOSED, reason);
    adv_resend(c, i);
    check_nopath(c, c->now);
}

/* SUBFLOW_CLOSE(reason) on established subflow i: it sends nothing more,
 * its bytes go elsewhere, and it is gone once the peer closes it (11.2). */
static int sf_begin_close(struct mpt_conn *c, int i, uint32_t reason, uint64_t now)
{
    struct sf *s = &c->sf[i];

    if (queue_reason(s, MPT_FT_SUBFLOW_CLOSE, reason, 0))
        return MPT_ENOMEM;
    s->sc_sent = 1;
    s->state = MPT_SF_CLOSING;
    s->fail_reason = reason;
    s->hs_deadline = now + c->s.handshake_timeout;
    reinject_sf(c, s, 1);
    if (s->ack_pending) {
        s->ack_pending = 0;
        c->ack_needed = 1;
    }
    adv_resend(c, i);
    return 0;
}

static int handle_frame(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now,
                        int *got_data)
{
    struct sf *s = &c->sf[i];
    int est = s->state == MPT_SF_ESTABLISHED || s->state == MPT_SF_CLOSING;

    if (f->type == MPT_FT_ERROR) {
        sf_fail(c, i, err_of_reason(f->u.close.reason), f->u.close.reason, 0, 0, now);
        return 0;
    }
    if (f->type == MPT_FT_FASTCLOSE) {
        /* a join not yet authenticated cannot kill the connection: anyone
         * who saw the token could open one */
        if (s->state == MPT_SF_HANDSHAKE && s->is_join)
            sf_fail(c, i, MPT_ERESET, f->u.close.reason, 0, 0, now);
        else
            conn_abort(c, MPT_ERESET, f->u.close.reason, 0, 1, -1, 0);
        return 0;
    }
    if (s->state == MPT_SF_HANDSHAKE) {
        if (f->type == MPT_FT_HELLO_ACK && !c->is_server && !s->is_join) {
            if (f->u.hello_ack.version != MPT_PROTO_VERSION) {
                sf_fail(c, i, MPT_EVERSION, MPT_REASON_VERSION, 1, f->type, now);
                return MPT_EVERSION;
            }
            memcpy(c->routing_id, f->u.hello_ack.routing_id, MPT_ROUTING_ID_LEN);
            c->features = f->u.hello_ack.features & MPT_FEAT_SACK;
            set_peer_key(c, f->u.hello_ack.key, f->u.hello_ack.window);
            c->state = MPT_CONN_ESTABLISHED;
            ev_push(c, MPT_EV_ESTABLISHED, -1, 0, 0);
            hs_rtt_sample(s, now);
            sf_up(c, i, now);
            return 0;
        }
        if (f->type == MPT_FT_JOIN_ACK && !c->is_server && s->is_join) {
            uint8_t mac[MPT_HMAC_LEN];
            struct mpt_frame r;
            mpt_join_hmac(MPT_JOIN_SERVER, c->key_peer, c->key_local, f->u.join_ack.nonce,
                          s->nonce_local, s->addr_id, s->join_flags, mac);
            if (!mpt_ct_equal(mac, f->u.join_ack.hmac, MPT_HMAC_LEN)) {
                sf_fail(c, i, MPT_EAUTH, MPT_REASON_AUTH, 1, f->type, now);
                return MPT_EAUTH;
            }
            memcpy(s->nonce_peer, f->u.join_ack.nonce, MPT_NONCE_LEN);
            memset(&r, 0, sizeof r);
            r.type = MPT_FT_JOIN_CONFIRM;
            mpt_join_hmac(MPT_JOIN_CLIENT, c->key_local, c->key_peer, s->nonce_local,
                          s->nonce_peer, s->addr_id, s->join_flags, r.u.join_confirm.hmac);
            queue_frame(s, &r);
            hs_rtt_sample(s, now);
            sf_up(c, i, now);
            return 0;
        }
        if (f->type == MPT_FT_JOIN_CONFIRM && c->is_server && s->is_join) {
            uint8_t mac[MPT_HMAC_LEN];
            mpt_join_hmac(MPT_JOIN_CLIENT, c->key_peer, c->key_local, s->nonce_peer,
                          s->nonce_local, s->addr_id, s->join_flags, mac);
            if (!mpt_ct_equal(mac, f->u.join_confirm.hmac, MPT_HMAC_LEN)) {
                sf_fail(c, i, MPT_EAUTH, MPT_REASON_AUTH, 1, f->type, now);
                return MPT_EAUTH;
            }
            nonce_remember(c, s->nonce_peer);
            hs_rtt_sample(s, now);
            sf_up(c, i, now);
            return 0;
        }
        if (f->type & MPT_FT_IGNORABLE)
            return 0;
        sf_fail(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, 1, f->type, now);
        return MPT_EPROTO;
    }
    if (!est)
        return 0;

    switch (f->type) {
    case MPT_FT_DATA: {
        uint64_t old = c->rb.nxt, end = f->u.data.dsn + f->u.data.len;
        size_t dup = 0;
        int r;
        s->bytes_received += f->u.data.len;
        if ((c->rfin_known && mpt_dsn_gt(end, c->rfin_dsn)))
            return proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
        r = mpt_rcvbuf_insert(&c->rb, f->u.data.dsn, f->u.data.payload, f->u.data.len,
                              c->adv_edge, &dup);
        if (r == MPT_EFLOW)
            return proto_violation(c, i, MPT_EFLOW, MPT_REASON_FLOW, f->type, now);
        if (r == MPT_EPROTO)
            return proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
        if (r < 0)
            return proto_violation(c, i, r, MPT_REASON_RESOURCE, f->type, now);
        c->st.dup_bytes_dropped += dup;
        if (dup)
            c->ack_all = 1;
        *got_data = 1;
        if (c->rb.nxt != old) {
            c->st.bytes_received += c->rb.nxt - old;
            ev_push(c, MPT_EV_READABLE, -1, 0, 0);
        }
        {
            size_t m = mpt_rcvbuf_mem(&c->rb);
            if (m > c->st.rcv_mem_peak)
                c->st.rcv_mem_peak = m;
        }
        try_consume_fin(c, now);
        return 0;
    }
    case MPT_FT_DATA_ACK:
        if (on_data_ack(c, i, f->u.data_ack.ack, f->u.data_ack.window, f->u.data_ack.ranges,
                        f->u.data_ack.nranges, now) < 0)
            return proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
        return 0;
    case MPT_FT_DATA_FIN:
        if (c->rfin_known) {
            if (f->u.data_fin.dsn != c->rfin_dsn)
                return proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
        } else {
            /* 9.7: placed by its distance from the cumulative point (9.1);
             * before data already received (in order or not) is a protocol
             * error; beyond the advertised right edge a flow violation; at
             * the right edge it is fine (it needs no buffer space). */
            uint64_t ahead = f->u.data_fin.dsn - c->rb.nxt;
            if (ahead >= ((uint64_t)1 << 63) || mpt_dsn_lt(f->u.data_fin.dsn, c->rb.ooo_end))
                return proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
            if (ahead > c->adv_edge - c->rb.nxt)
                return proto_violation(c, i, MPT_EFLOW, MPT_REASON_FLOW, f->type, now);
            c->rfin_known = 1;
            c->rfin_dsn = f->u.data_fin.dsn;
            enter_closing(c, now);
        }
        *got_data = 1;
        try_consume_fin(c, now);
        return 0;
    case MPT_FT_PING:
        /* 11.4: answer promptly; PINGs that arrive before the answer could
         * be sent are answered by one PONG with the newest opaque, so a
         * flood costs one queued frame. */
        s->pong_opaque = f->u.ping.opaque;
        if (!s->pong_queued) {
            struct oitem *it = insert_before_data(s);
            if (it) {
                memset(it, 0, offsetof(struct oitem, hdr));
                it->kind = IT_PONG;
                it->hlen = MPT_FRAME_HDR_LEN + 8;
                s->q_bytes += it->hlen;
                s->pong_queued = 1;
            }
        }
        return 0;
    case MPT_FT_PONG:
        if (s->ping_sent_at && f->u.ping.opaque == s->ping_sent_at) {
            if (now >= s->ping_sent_at) {
                uint64_t rtt = now - s->ping_sent_at ? now - s->ping_sent_at : 1;
                rtt_update(&s->srtt, &s->rttvar, rtt);
                e2e_sample(s, rtt, now);
            }
            s->ping_sent_at = 0;
        }
        return 0;
    case MPT_FT_PRIO:
        s->backup = (f->flags & MPT_FF_PRIO_BACKUP) ? 1 : 0;
        return 0;
    case MPT_FT_ADD_ADDR:
        return on_add_addr(c, i, f);
    case MPT_FT_REMOVE_ADDR:
        /* 10.3: forget the ids and close the subflows that use them: for a
         * server those whose JOIN named that client address (0: the first
         * subflow's), for a client those it opened to that server address. */
        for (unsigned k = 0; k < f->u.remove_addr.n; k++) {
            uint8_t id = f->u.remove_addr.ids[k];
            struct mpt_event *ev = ev_push(c, MPT_EV_ADDR_REMOVED, -1, 0, 0);
            if (ev)
                ev->addr.addr_id = id;
            for (int j = 0; j < c->nslots; j++)
                if (c->sf[j].state == MPT_SF_ESTABLISHED &&
                    (c->is_server ? c->sf[j].addr_id : c->sf[j].remote_id) == id)
                    sf_begin_close(c, j, MPT_REASON_PATH_REMOVED, now);
        }
        return 0;
    case MPT_FT_CLOSE:
        /* 11.1: valid only once both DATA_FINs are done: our DATA_FIN sent
         * (the CLOSE says it was acknowledged) and the peer's consumed. A
         * CLOSE before that would turn a truncated stream into a clean end. */
        if (c->close_rcvd)
            return 0; /* duplicate */
        if (!c->fin_sent || !c->rfin_consumed)
            return proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
        c->close_rcvd = 1;
        if (!c->fin_acked) {
            c->fin_acked = 1;
            c->snd_una = c->fin_dsn + 1;
            release_sendbuf(c);
        }
        if (!c->close_sent && queue_simple(s, MPT_FT_CLOSE, 0) == 0)
            c->close_sent = 1;
        if (c->close_sent)
            finish_close(c);
        return 0;
    case MPT_FT_SUBFLOW_CLOSE:
        s->sc_rcvd = 1;
        reinject_sf(c, s, 1);
        if (s->ack_pending)
            c->ack_needed = 1;
        drop_queue(s);
        if (!s->sc_sent) {
            queue_reason(s, MPT_FT_SUBFLOW_CLOSE, f->u.close.reason, 0);
            s->sc_sent = 1;
        }
        sf_closing_done(c, i, f->u.close.reason);
        return 0;
    default:
        if (f->type & MPT_FT_IGNORABLE)
            return 0;
        return proto_violation(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, f->type, now);
    }
}

ssize_t mpt_conn_sf_input(struct mpt_conn *c, int i, const uint8_t *data, size_t len, uint64_t now)
{
    struct sf *s;
    size_t off = 0;
    int got_data = 0;
    ssize_t ret = 0;

    if (!valid_sf(c, i) || (!data && len))
        return MPT_EINVAL;
    s = &c->sf[i];
    c->now = now;
    if (c->state == MPT_CONN_ABORTED || !(s->state == MPT_SF_HANDSHAKE ||
                                          s->state == MPT_SF_ESTABLISHED ||
                                          s->state == MPT_SF_CLOSING))
        return (ssize_t)len; /* nothing more is expected: discard */
    if (len) {
        s->last_rx = now;
        s->stalled = 0;
    }
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
                sf_fail(c, i, MPT_EPROTO, MPT_REASON_PROTOCOL, answer, t, now);
            else
                conn_abort(c, MPT_EPROTO, MPT_REASON_PROTOCOL, 1, 1, answer ? i : -1, t);
            ret = r;
            break;
        }
        off += (size_t)r;
        e = handle_frame(c, i, &f, now, &got_data);
        if (e < 0) {
            ret = e;
            break;
        }
        if (c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED ||
            !(s->state == MPT_SF_HANDSHAKE || s->state == MPT_SF_ESTABLISHED ||
              s->state == MPT_SF_CLOSING)) {
            off = len;
            break;
        }
    }
    if (got_data && conn_open(c))
        c->ack_needed = 1;
    if (c->rb_ready)
        c->st.rcv_mem = mpt_rcvbuf_mem(&c->rb);
    post(c, now);
    return ret < 0 ? ret : (ssize_t)off;
}

/* ---- output ----------------------------------------------------------------- */

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
        encode_ack(c, it);
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
            const struct oitem *q = ring_at(&s->q, j);
            if (q->off == 0 && q->kind == IT_ACK) {
                s->ack_pending = 0;
                break;
            }
            if (q->off == 0 && q->kind == IT_DATA)
                break;
        }
        if (s->ack_pending)
            it = insert_before_data(s);
        if (it) {
            it->kind = IT_ACK;
            it->off = 0;
            it->len = 0;
            it->hlen = 0;
            s->ack_pending = 0;
        }
    }
    for (uint32_t j = 0; j < s->q.n && k < n; j++) {
        struct oitem *it = ring_at(&s->q, j);
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
    while (s->q.n) {
        struct oitem *it = ring_at(&s->q, 0);
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
        ring_pop_front(&s->q);
    }
    release_sendbuf(c);
    post(c, now);
}

void mpt_conn_sf_set_room(struct mpt_conn *c, int i, size_t room, uint64_t now)
{
    if (!valid_sf(c, i))
        return;
    c->now = now;
    c->sf[i].room = room;
    post(c, now);
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
    if (c->cc->on_loss && s->state == MPT_SF_ESTABLISHED &&
        info->total_retrans > s->info.total_retrans && s->info.srtt) {
        struct mpt_cc_sf ccs[MPT_MAX_SUBFLOWS_LIMIT];
        int map[MPT_MAX_SUBFLOWS_LIMIT];
        int n;
        s->info = *info;
        n = fill_cc(c, ccs, map);
        c->cc->on_loss(c->cc_state, ccs, n, map[i]);
        return;
    }
    s->info = *info;
}

void mpt_conn_sf_failed(struct mpt_conn *c, int i, int error, uint64_t now)
{
    if (!valid_sf(c, i))
        return;
    c->now = now;
    if (c->sf[i].state == MPT_SF_CLOSING && c->sf[i].sc_sent) {
        /* EOF after our SUBFLOW_CLOSE: a normal end */
        reinject_sf(c, &c->sf[i], 1);
        sf_closing_done(c, i, c->sf[i].fail_reason);
    } else {
        sf_fail(c, i, error ? error : MPT_ECLOSED, reason_of_err(error), 0, 0, now);
    }
    c->sf[i].q.n = 0; /* the socket is gone: nothing more to write */
    c->sf[i].pong_queued = 0;
    c->sf[i].q.head = 0;
    c->sf[i].q_bytes = 0;
    c->sf[i].ctrl_items = 0;
    release_sendbuf(c);
    post(c, now);
}

int mpt_conn_sf_close(struct mpt_conn *c, int i, uint32_t reason, uint64_t now)
{
    int rc;

    if (!valid_sf(c, i))
        return MPT_EINVAL;
    c->now = now;
    if (c->sf[i].state != MPT_SF_ESTABLISHED)
        return MPT_ESTATE;
    if ((rc = sf_begin_close(c, i, reason, now)) < 0)
        return rc;
    post(c, now);
    return 0;
}

int mpt_conn_sf_set_backup(struct mpt_conn *c, int i, int backup, uint64_t now)
{
    struct sf *s;

    if (!valid_sf(c, i))
        return MPT_EINVAL;
    s = &c->sf[i];
    c->now = now;
    if (!sf_live(s))
        return MPT_ESTATE;
    s->backup = backup ? 1 : 0;
    if (s->state == MPT_SF_ESTABLISHED)
        queue_simple(s, MPT_FT_PRIO, backup ? MPT_FF_PRIO_BACKUP : 0);
    post(c, now);
    return 0;
}

int mpt_conn_add_addr(struct mpt_conn *c, uint8_t addr_id, uint8_t family, const uint8_t *addr,
                      uint16_t port, uint64_t now)
{
    struct mpt_frame f;
    struct adv *a;
    int i;

    if (!c || !addr || (family != 4 && family != 6))
        return MPT_EINVAL;
    c->now = now;
    if (!conn_open(c))
        return MPT_ESTATE;
    if (addr_id == 0)
        return MPT_EINVAL; /* id 0 is the first subflow's address (10.1) */
    i = best_ctrl_sf(c);
    if (i < 0)
        return MPT_ENOPATH;
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_ADD_ADDR;
    f.u.add_addr.addr_id = addr_id;
    f.u.add_addr.family = family;
    f.u.add_addr.port = port;
    memcpy(f.u.add_addr.addr, addr, family == 4 ? 4 : 16);
    mpt_addr_hmac(c->key_local, c->key_peer, addr_id, family, port, f.u.add_addr.addr,
                  f.u.add_addr.hmac);
    a = NULL;
    for (uint32_t k = 0; k < c->advs.n; k++) {
        struct adv *x = ring_at(&c->advs, k);
        if (x->id != addr_id)
            continue;
        if (!adv_matches(x, &f))
            return MPT_EINVAL; /* 10.2: remove an id before reusing it */
        a = x;
    }
    if (!a && !(a = ring_push_back(&c->advs)))
        return MPT_ENOMEM;
    memset(a, 0, sizeof *a);
    a->id = addr_id;
    a->family = family;
    a->port = port;
    memcpy(a->addr, f.u.add_addr.addr, 16);
    memcpy(a->hmac, f.u.add_addr.hmac, MPT_ADDR_HMAC_LEN);
    a->sf = (int8_t)i;
    return queue_frame(&c->sf[i], &f);
}

/* The subflow that carried our un-echoed advertisements went away. */
static void adv_resend(struct mpt_conn *c, int gone)
{
    for (uint32_t k = 0; k < c->advs.n; k++) {
        struct adv *a = ring_at(&c->advs, k);
        struct mpt_frame f;
        int i;
        if (a->echoed || a->sf != gone || (i = best_ctrl_sf(c)) < 0)
            continue;
        memset(&f, 0, sizeof f);
        f.type = MPT_FT_ADD_ADDR;
        f.u.add_addr.addr_id = a->id;
        f.u.add_addr.family = a->family;
        f.u.add_addr.port = a->port;
        memcpy(f.u.add_addr.addr, a->addr, 16);
        memcpy(f.u.add_addr.hmac, a->hmac, MPT_ADDR_HMAC_LEN);
        if (queue_frame(&c->sf[i], &f) == 0)
            a->sf = (int8_t)i;
    }
}

int mpt_conn_remove_addr(struct mpt_conn *c, uint8_t addr_id, uint64_t now)
{
    struct mpt_frame f;
    int i;

    if (!c)
        return MPT_EINVAL;
    c->now = now;
    if (!conn_open(c))
        return MPT_ESTATE;
    i = best_ctrl_sf(c);
    if (i < 0)
        return MPT_ENOPATH;
    for (uint32_t k = 0; k < c->advs.n; k++) {
        struct adv *a = ring_at(&c->advs, k);
        if (a->id == addr_id) {
            memcpy(a, ring_at(&c->advs, c->advs.n - 1), sizeof *a);
            ring_pop_back(&c->advs);
            break;
        }
    }
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_REMOVE_ADDR;
    f.u.remove_addr.n = 1;
    f.u.remove_addr.ids[0] = addr_id;
    return queue_frame(&c->sf[i], &f);
}

/* ---- application ------------------------------------------------------------- */

ssize_t mpt_conn_send(struct mpt_conn *c, const void *buf, size_t len, uint64_t now)
{
    long n;

    if (!c || (!buf && len))
        return MPT_EINVAL;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED)
        return c->error;
    if (c->state == MPT_CONN_HANDSHAKE)
        return MPT_ESTATE;
    if (c->fin_pending || c->state == MPT_CONN_CLOSED)
        return MPT_EPIPE;
    if (len == 0)
        return 0;
    n = mpt_sendbuf_write(&c->sb, buf, len);
    if (n < 0)
        return (ssize_t)n;
    if ((size_t)n < len)
        c->want_writable = 1; /* full now (short write): say when space returns */
    if (n == 0)
        return MPT_EAGAIN;
    c->st.snd_mem = mpt_sendbuf_used(&c->sb);
    post(c, now);
    return (ssize_t)n;
}

ssize_t mpt_conn_recv(struct mpt_conn *c, void *buf, size_t len, uint64_t now)
{
    size_t n;

    if (!c || (!buf && len))
        return MPT_EINVAL;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED)
        return c->error;
    if (!c->rb_ready)
        return c->state == MPT_CONN_HANDSHAKE ? MPT_EAGAIN : MPT_ESTATE;
    n = mpt_rcvbuf_read(&c->rb, buf, len);
    if (n > 0) {
        uint64_t edge = rcv_edge_target(c);
        size_t open_by = mpt_dsn_gt(edge, c->adv_edge) ? (size_t)(edge - c->adv_edge) : 0;
        size_t wnd = mpt_dsn_gt(c->adv_edge, c->rb.nxt) ? (size_t)(c->adv_edge - c->rb.nxt) : 0;
        c->st.rcv_mem = mpt_rcvbuf_mem(&c->rb);
        if (open_by && (open_by >= c->rb.cap / 4 || wnd < 2 * (size_t)c->s.max_frame_payload) &&
            !c->rfin_consumed)
            c->ack_needed = 1;
        post(c, now);
        return (ssize_t)n;
    }
    if (len == 0)
        return 0;
    if (c->rfin_consumed)
        return 0;
    return MPT_EAGAIN;
}

int mpt_conn_set_rcv_limit(struct mpt_conn *c, size_t limit)
{
    if (!c)
        return MPT_EINVAL;
    c->rcv_limit = limit;
    return 0;
}

int mpt_conn_shutdown(struct mpt_conn *c, uint64_t now)
{
    if (!c)
        return MPT_EINVAL;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED)
        return c->error;
    if (!conn_open(c))
        return MPT_ESTATE;
    if (c->fin_pending)
        return 0;
    c->fin_pending = 1;
    c->fin_dsn = c->sb.end;
    enter_closing(c, now);
    post(c, now);
    return 0;
}

int mpt_conn_abort(struct mpt_conn *c, uint32_t reason, uint64_t now)
{
    if (!c)
        return MPT_EINVAL;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED)
        return MPT_ESTATE;
    conn_abort(c, MPT_ECLOSED, reason, 1, 0, -1, 0);
    return 0;
}

/* ---- timers ---------------------------------------------------------------- */

/* No progress this long means stalled: the end-to-end RTT (never only the
 * kernel's, see sf_e2e_rtt), doubled for every stall in a row without
 * progress, so a path that keeps stalling is not re-declared every RTT. */
static uint64_t stall_thresh(const struct mpt_conn *c, const struct sf *s)
{
    uint64_t t = u64max(c->s.stall_min, 3 * sf_e2e_rtt(s) + 4 * sf_rttvar(s));

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
    r = ring_at(&s->recs, 0);
    return u64max(r->t, u64max(s->last_rx, s->last_progress)) + stall_thresh(c, s);
}

static uint64_t sf_fail_at(const struct mpt_conn *c, const struct sf *s)
{
    if (!s->recs.n && !s->ping_sent_at)
        return MPT_TIME_NEVER;
    return u64max(s->last_rx, s->last_progress) + c->s.subflow_timeout;
}

static uint64_t tmin(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
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
    t = tmin(t, una_rtx_at(c, NULL));
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

    if (queue_u64(s, MPT_FT_PING, v) == 0)
        s->ping_sent_at = v;
}

void mpt_conn_handle_timeout(struct mpt_conn *c, uint64_t now)
{
    if (!c)
        return;
    c->now = now;
    if (c->state == MPT_CONN_ABORTED || c->state == MPT_CONN_CLOSED)
        return;
    if (c->state == MPT_CONN_HANDSHAKE && now >= c->hs_deadline) {
        conn_abort(c, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 1, 1, -1, 0);
        return;
    }
    if (c->close_sent && now >= c->close_deadline) {
        conn_abort(c, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 1, 1, -1, 0);
        return;
    }
    if (c->nopath_since && now >= c->nopath_since + c->s.subflow_timeout) {
        conn_abort(c, MPT_ENOPATH, MPT_REASON_TIMEOUT, 0, 1, -1, 0);
        return;
    }
    if (now >= ack_timeout_at(c)) {
        c->abort_text = "no DATA_ACK for the data outstanding within the ack timeout";
        conn_abort(c, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 1, 1, -1, 0);
        return;
    }
    for (int i = 0; i < c->nslots; i++) {
        struct sf *s = &c->sf[i];
        switch (s->state) {
        case MPT_SF_CONNECTING:
        case MPT_SF_HANDSHAKE:
            if (now >= s->hs_deadline)
                sf_fail(c, i, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, s->state == MPT_SF_HANDSHAKE, 0,
                        now);
            break;
        case MPT_SF_CLOSING:
            if (now >= s->hs_deadline)
                sf_closing_done(c, i, s->fail_reason);
            break;
        case MPT_SF_ESTABLISHED:
            if (now >= sf_fail_at(c, s)) {
                sf_fail(c, i, MPT_ETIMEDOUT, MPT_REASON_TIMEOUT, 0, 0, now);
                break;
            }
            if (now >= sf_stall_at(c, s)) {
                s->stalled = 1;
                s->stalls++;
                reinject_sf(c, s, 0);
                if (!s->ping_sent_at)
                    send_ping(s, now);
                if (s->ack_pending) {
                    s->ack_pending = 0;
                    c->ack_needed = 1;
                }
            }
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
    una_rtx_check(c, now);
    /* Stale-ack check: an ack written long ago may have died with a path. */
    if (conn_open(c) && c->rb_ready) {
        if (c->ack_deadline != MPT_TIME_NEVER && now >= c->ack_deadline) {
            c->ack_deadline = MPT_TIME_NEVER;
            if (c->ack_written != rcv_ack_value(c) || mpt_dsn_lt(c->edge_written, rcv_edge(c)))
                c->ack_needed = 1;
        }
        if (c->ack_deadline == MPT_TIME_NEVER &&
            (c->ack_written != rcv_ack_value(c) || mpt_dsn_lt(c->edge_written, c->adv_edge)))
            c->ack_deadline = now + c->s.ack_delay + c->s.stall_min;
    }
    post(c, now);
}

/* ---- introspection --------------------------------------------------------- */

enum mpt_sf_state mpt_conn_sf_state(const struct mpt_conn *c, int i)
{
    if (!valid_sf(c, i))
        return MPT_SF_CLOSED;
    return c->sf[i].state;
}

int mpt_conn_sf_count(const struct mpt_conn *c)
{
    return c ? live_count(c) : 0;
}

int mpt_conn_sf_max(const struct mpt_conn *c)
{
    return c ? (int)c->s.max_subflows : 0;
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
}

int mpt_conn_sf_get_stats(const struct mpt_conn *c, int i, struct mpt_sf_stats *st)
{
    const struct sf *s;

    if (!valid_sf(c, i) || !st)
        return MPT_EINVAL;
    s = &c->sf[i];
    memset(st, 0, sizeof *st);
    st->state = s->state;
    st->backup = s->backup;
    st->id = s->id;
    st->addr_id = s->addr_id;
    st->remote_id = s->remote_id;
    st->bytes_received = s->bytes_received;
    st->srtt = sf_srtt(s);
    st->bytes_sent = s->bytes_sent;
    st->bytes_acked = s->bytes_acked;
    st->fail_reason = s->fail_reason;
    st->fail_error = s->fail_error;
    return 0;
}
