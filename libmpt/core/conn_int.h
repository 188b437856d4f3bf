/*
 * The engine's private header: the connection and subflow structs shared by
 * its modules, and the functions they call in one another. Nothing here is
 * part of conn.h's contract.
 *
 * Module map (one concern per file):
 *   conn.c       entry points, lifecycle, subflow slots, input dispatch
 *   handshake.c  HELLO / JOIN exchanges, the server's token table, replay cache
 *   outq.c       per-subflow output queues, DATA materialised from the send buffer
 *   send.c       records, reinjection, scheduling, retransmission timer, DATA_ACK in
 *   recv.c       DATA / DATA_FIN in, the values acks carry, mpt_conn_recv
 *   close.c      DATA_FIN / CLOSE, abort, FASTCLOSE, reason codes
 *   liveness.c   end-to-end RTT, stalls, failures, PING / PONG, timers
 *   addr.c       ADD_ADDR, REMOVE_ADDR, PRIO
 *   evq.c        the event queue
 *   ring.c       the small ring container; bytering.h the byte ring of
 *                sendbuf.c and rcvbuf.c
 *
 * Memory is bounded by settings: sndbuf, rcvbuf (+ rcvbuf / 8 bitmap), the
 * per-subflow output queues (bounded by the room the caller gives plus a few
 * control frames), the records (bounded by the bytes in flight), a 64-entry
 * join replay cache and a fixed event queue (READABLE/WRITABLE coalesced).
 */
#ifndef MPT_CORE_CONN_INT_H
#define MPT_CORE_CONN_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sys/tree.h>

#include "conn.h"
#include "dsn.h"
#include "frame.h"
#include "rcvbuf.h"
#include "reorder.h"
#include "ring.h"
#include "sendbuf.h"

struct mpt_sched_ops;
struct mpt_cc_ops;
struct mpt_cc_env;
struct mpt_path_view;

#define EVQ_LEN 256
#define EVQ_INLINE 8 /* events held inside struct mpt_conn */

#define REPLAY_N 64

#define MAX_WINDOW 0xffffffffu

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
    int prio;            /* enum mpt_prio */
    int stalled;
    int is_join;
    int handshake_sf; /* client: carries HELLO */
    int sc_sent, sc_rcvd;
    uint8_t *pend;       /* the incomplete frame read last (mpt_conn_sf_input), or NULL */
    size_t pend_len;
    uint32_t weight;     /* mpt_conn_sf_set_weight (0: 1) */
    uint64_t red_next;   /* MPT_SCHED_REDUNDANT: next DSN to copy onto it */
    void *cc_sf;         /* congestion control's state for it (while cc_up) */
    int cc_up;           /* congestion control was told it is up */
    uint8_t preamble_len; /* client: the preamble heading q (until written or taken) */
    int pong_queued;     /* a PONG item not yet started is in q (it takes the newest opaque) */
    uint64_t pong_opaque;
    uint32_t id;      /* stable id (conn->next_sf_id) */
    uint8_t addr_id;
    uint8_t remote_id;
    uint8_t join_flags;
    uint8_t nonce_local[MPT_NONCE_LEN], nonce_peer[MPT_NONCE_LEN];
    uint8_t binding[MPT_SECRET_LEN]; /* join over TLS: its session's exporter (6.5) */
    int has_binding;
    size_t room;
    struct mpt_ring q; /* struct oitem */
    size_t q_bytes;
    unsigned ctrl_items; /* control items queued (bounds a PING flood) */
    int ack_pending;
    struct mpt_ring recs; /* struct rec */
    size_t inflight;
    uint64_t last_rx, last_progress;
    uint64_t srtt, rttvar;           /* from PING/PONG */
    uint64_t e2e_min, e2e_min_t;     /* least end-to-end RTT seen lately, and when */
    unsigned stalls;                 /* stalls since its records last made progress */
    uint64_t hs_sent_at;             /* HELLO / JOIN / JOIN_ACK sent: handshake RTT */
    struct mpt_sf_info info;
    uint64_t bh_next;      /* blackhole check: not again before (liveness.c) */
    uint64_t ping_sent_at; /* 0: none outstanding */
    uint64_t next_ping;
    uint64_t hs_deadline;
    size_t pen_cap, pen_base;
    uint64_t last_pen;
    uint64_t bytes_sent, bytes_acked, bytes_received;
    uint64_t rx_next;                  /* one past the last DATA received here (rx_seen) */
    int rx_seen;
    uint32_t fail_reason;
    int fail_error;
    /* metering (mpt_conn_sf_set_budget / _set_rate): DATA payload handed
     * to it counts against the budget; the token bucket caps its rate */
    uint64_t budget;        /* 0: none */
    uint64_t budget_used;   /* payload bytes since the budget was set (all kinds) */
    int budget_spent;       /* reached: dropped to BACKUP, event raised once */
    uint64_t rate;          /* bytes/s, 0: none */
    uint64_t tokens;        /* bytes it may take now */
    uint64_t tokens_t;      /* when tokens were last refilled */
    uint64_t tokens_frac;   /* refill remainder (bytes * 1e9 not yet whole) */
};

/* The policy of DSN range [s, e) (mpt_conn_send_msg, interactive mode). */
struct msgpol {
    uint64_t s, e;
    uint64_t deadline; /* absolute ns, 0 none */
    int redundant;
};
/* Payload bytes the meter lets subflow s take now (SIZE_MAX: unmetered). */
size_t mpt_meter_left(const struct sf *s);
/* Refills s's token bucket up to now. */
void mpt_meter_refill(const struct mpt_conn *c, struct sf *s, uint64_t now);
/* When s's bucket holds enough for one frame again (MPT_TIME_NEVER: n/a). */
uint64_t mpt_meter_wake_at(const struct mpt_conn *c, const struct sf *s);
/* Spends subflow i's budget if reached (tier, PRIO, event). */
void mpt_meter_check(struct mpt_conn *c, int i);

struct mpt_conn {
    struct mpt_core_settings s;
    int is_server;
    enum mpt_conn_state state;
    int error;
    uint64_t now;

    struct mpt_server *srv;
    void *user;         /* the caller's pointer (mpt_conn_set_user) */
    RB_ENTRY(mpt_conn) tnode;
    int in_table;

    uint8_t key_local[MPT_KEY_LEN], key_peer[MPT_KEY_LEN];
    uint8_t secret[MPT_SECRET_LEN]; /* TLS: the first subflow's exporter (6.5) */
    int has_secret;
    uint64_t token_local, token_peer, idsn_local, idsn_peer;
    uint8_t routing_id[MPT_ROUTING_ID_LEN];
    uint16_t features;

    /* Slots [0, sf_cap): allocated as they are first needed (2 at first,
     * then doubling up to MPT_MAX_SUBFLOWS_LIMIT), so an idle connection of
     * two subflows does not carry 32 (issue 15). Only mpt_alloc_slot grows
     * it: no struct sf pointer is held across a call to it. */
    struct sf *sf;
    int sf_cap;
    int nslots; /* highest slot index ever used + 1 (<= sf_cap) */
    uint32_t next_sf_id;
    int failing_on_notice;             /* mpt_sf_fail called for the peer's SUBFLOW_FAILED */

    /* send */
    struct mpt_sendbuf sb;
    uint64_t snd_una, snd_nxt, snd_edge;
    struct mpt_ring reinj; /* struct rng */
    struct mpt_ring msgs;  /* struct msgpol: per-message policy of bytes not yet sent */
    int mode;              /* enum mpt_mode */
    int ho_active;         /* handover: slot carrying data, -1 none yet */
    uint64_t ho_switches;
    struct mpt_sack_range sack[MPT_FRAME_MAX_SACK]; /* peer's latest SACK ranges */
    int nsack;
    /* retransmission timer of the bytes at snd_una (see una_rtx_at) */
    uint64_t una_rtx_dsn, una_rtx_t, una_moved_at;
    unsigned una_backoff;
    /* reinjection credit (REINJECTION CREDIT in send.c): bytes that may still
     * be sent again; when it is 0, a grant of one frame at reinj_blocked_at +
     * (2 * stall_min << reinj_grants); reinj_grant_dsn: snd_nxt at the last
     * grant (the backoff resets once the peer acknowledges up to it) */
    uint64_t reinj_credit, reinj_blocked_at, reinj_grant_dsn;
    unsigned reinj_grants;
    int fin_pending, fin_acked, fin_sf, fin_sent;
    uint64_t fin_dsn;

    /* receive */
    struct mpt_rcvbuf rb;
    int rb_ready;
    struct mpt_reorder reorder;        /* how long frames wait for the cumulative point */
    int rfin_known, rfin_consumed;
    uint64_t rfin_dsn;
    uint64_t adv_edge;                 /* highest right edge advertised */
    size_t rcv_limit;                  /* window cap under memory pressure, 0 = rcvbuf */
    /* receive-window auto-tuning (recv.c): the window the connection may
     * open now, from rcvbuf_initial up to rcvbuf; the interval of the rate
     * measurement started at rwin_t0 with rb.read at rwin_read0 */
    size_t rcv_win;
    int rwin_started;
    uint64_t rwin_t0, rwin_read0;
    uint64_t rwin_prev;                /* bytes consumed per horizon in the last interval */
    uint64_t buf_active_at;            /* last data in or out: idle buffers are freed */
    uint8_t *lend_buf;                 /* the application's buffer lent (mpt_conn_recv_lend) */
    size_t lend_len;                   /* its size (the ring buffer counts what it holds) */
    uint64_t ack_written, edge_written; /* values of the last ack written */
    int ack_needed;
    int ack_all; /* duplicates arrived: our acks may be getting lost */
    uint64_t ack_deadline; /* MPT_TIME_NEVER: no stale-ack check armed */

    int close_sent, close_rcvd;
    uint64_t hs_deadline, close_deadline, nopath_since;
    uint64_t ack_timeout;   /* settings.ack_timeout, or its default */
    const char *abort_text; /* FASTCLOSE text of the next local abort, static */
    char *peer_text;        /* the peer's last ERROR / FASTCLOSE text, sanitized, NUL-
                               terminated (mpt_malloc'd when one arrives), or NULL */

    /* events */
    /* A ring of ev_cap: ev_inline at first (no allocation can lose an
     * event there), moved to the heap and doubled as it fills, up to EVQ_LEN. */
    struct mpt_event ev_inline[EVQ_INLINE];
    struct mpt_event *evq;
    unsigned ev_cap, ev_head, ev_n;
    int ev_readable, ev_writable, want_writable;
    uint64_t ev_dropped;

    struct mpt_ring advs; /* struct adv: our ADD_ADDRs */

    /* join replay cache: nonces of authenticated joins */
    uint8_t nonces[REPLAY_N][MPT_NONCE_LEN];
    unsigned nonce_pos, nonce_n;

    const struct mpt_sched_ops *sched;
    const struct mpt_cc_ops *cc;
    void *sched_state, *cc_state;

    struct mpt_conn_stats st;
    uint64_t addr_bad;
};

RB_HEAD(tok_tree, mpt_conn);

struct mpt_server {
    struct mpt_core_settings s;
    struct tok_tree tokens;
};

static inline uint64_t u64max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static inline uint64_t u64min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline size_t zmin(size_t a, size_t b)
{
    return a < b ? a : b;
}

static inline int sf_live(const struct sf *s)
{
    return s->state == MPT_SF_CONNECTING || s->state == MPT_SF_HANDSHAKE ||
           s->state == MPT_SF_ESTABLISHED || s->state == MPT_SF_CLOSING;
}

static inline int sf_usable(const struct sf *s)
{
    return s->state == MPT_SF_ESTABLISHED && !s->stalled;
}

static inline uint64_t sf_srtt(const struct sf *s)
{
    return s->info.srtt ? s->info.srtt : s->srtt;
}

static inline uint64_t sf_rttvar(const struct sf *s)
{
    return s->info.srtt ? s->info.rttvar : s->rttvar;
}

static inline int conn_open(const struct mpt_conn *c)
{
    return c->state == MPT_CONN_ESTABLISHED || c->state == MPT_CONN_CLOSING;
}

static inline int valid_sf(const struct mpt_conn *c, int i)
{
    return c && i >= 0 && i < c->nslots;
}

static inline uint64_t tmin(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- entry points, lifecycle, subflow slots and state (conn.c) ------------- */
void mpt_post(struct mpt_conn *c, uint64_t now);
int mpt_conn_alloc(const struct mpt_core_settings *s, int is_server, uint64_t now,
                      struct mpt_conn **out);
int mpt_live_count(const struct mpt_conn *c);
int mpt_alloc_slot(struct mpt_conn *c);
void mpt_sf_up(struct mpt_conn *c, int i, uint64_t now);
void mpt_check_nopath(struct mpt_conn *c, uint64_t now);
void mpt_sf_fail(struct mpt_conn *c, int i, int err, uint32_t reason, int send_error,
                    uint8_t ftype, uint64_t now);
void mpt_sf_closing_done(struct mpt_conn *c, int i, uint32_t reason);
int mpt_sf_begin_close(struct mpt_conn *c, int i, uint32_t reason, uint64_t now);

/* ---- the event queue (evq.c) ----------------------------------------------- */
struct mpt_event *mpt_ev_push(struct mpt_conn *c, enum mpt_event_type type, int sf, int err,
                                 uint32_t reason);

/* ---- per-subflow output queues (outq.c) ------------------------------------ */
int mpt_q_raw(struct sf *s, const uint8_t *bytes, size_t len);
struct oitem *mpt_q_insert_before_data(struct sf *s);
int mpt_q_frame(struct sf *s, const struct mpt_frame *f);
/* The same ahead of DATA not yet started (mpt_q_insert_before_data). */
int mpt_q_frame_front(struct sf *s, const struct mpt_frame *f);
int mpt_q_simple(struct sf *s, uint8_t type, uint8_t flags);
int mpt_q_reason(struct sf *s, uint8_t type, uint32_t reason, uint8_t ftype);
int mpt_q_u64(struct sf *s, uint8_t type, uint64_t v);
void mpt_q_drop(struct sf *s);
int mpt_q_drop_partial_data(struct sf *s);
void mpt_q_encode_ack(struct mpt_conn *c, struct oitem *it);
int mpt_best_ctrl_sf(const struct mpt_conn *c);
/* Its kernel has heard no ACK for the quiet threshold with something
 * unacknowledged (liveness.c, QUIET). */
int mpt_sf_ack_silent(const struct sf *s, uint64_t now);
void mpt_place_ack(struct mpt_conn *c);

/* ---- the send side (send.c) ------------------------------------------------ */
void mpt_snd_release(struct mpt_conn *c);
void mpt_snd_reinj_add(struct mpt_conn *c, uint64_t s, uint64_t e);
void mpt_snd_reinject_sf(struct mpt_conn *c, struct sf *s, int drop_records);
/* When the reinjection credit grant is due (MPT_TIME_NEVER: not blocked), and
 * the grant itself at that time (send.c, REINJECTION CREDIT). */
uint64_t mpt_snd_reinj_grant_at(const struct mpt_conn *c);
void mpt_snd_reinj_grant_check(struct mpt_conn *c, uint64_t now);
uint64_t mpt_snd_una_rtx_at(const struct mpt_conn *c, uint64_t *end);
void mpt_snd_una_rtx_check(struct mpt_conn *c, uint64_t now);
void mpt_snd_schedule(struct mpt_conn *c, uint64_t now);
int mpt_snd_on_data_ack(struct mpt_conn *c, int from, uint64_t ack, uint32_t window,
                       const struct mpt_sack_range *sack, int nsack, uint64_t now);

/* ---- the receive side (recv.c) --------------------------------------------- */
uint64_t mpt_rcv_ack_value(const struct mpt_conn *c);
uint64_t mpt_rcv_edge_target(const struct mpt_conn *c);
uint64_t mpt_rcv_edge(const struct mpt_conn *c);
int mpt_rcv_on_data(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now,
                    int *got_data);
int mpt_rcv_on_data_fin(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now,
                        int *got_data);

/* ---- close, abort and reason codes (close.c) ------------------------------- */
int mpt_err_of_reason(uint32_t reason);
uint32_t mpt_reason_of_err(int err);
void mpt_abort_conn(struct mpt_conn *c, int err, uint32_t reason, int fastclose, int event,
                       int errsf, uint8_t ftype);
int mpt_proto_violation(struct mpt_conn *c, int i, int err, uint32_t reason, uint8_t ftype,
                           uint64_t now);
void mpt_enter_closing(struct mpt_conn *c, uint64_t now);
void mpt_finish_close(struct mpt_conn *c);
void mpt_check_close(struct mpt_conn *c);
int mpt_close_on_error(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now);
int mpt_close_on_fastclose(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now);
int mpt_close_on_close(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now);
void mpt_close_on_subflow_close(struct mpt_conn *c, int i, const struct mpt_frame *f);

/* ---- handshake and joins (handshake.c) ------------------------------------- */
void mpt_hs_set_local_key(struct mpt_conn *c);
int mpt_hs_on_frame(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now);
void mpt_hs_unlink(struct mpt_conn *c);

/* ---- timers and liveness (liveness.c) -------------------------------------- */
uint64_t mpt_sf_e2e_rtt(const struct sf *s);

/* autotune.c: receive window and send buffer sizes */
#define MPT_BUF_IDLE_CHECK (1000 * MPT_NS_PER_MS) /* idle this long: buffers freed */
size_t mpt_rwin_initial(const struct mpt_conn *c);
size_t mpt_sbuf_initial(const struct mpt_conn *c);
void mpt_rwin_on_read(struct mpt_conn *c, uint64_t now); /* the application consumed bytes */
void mpt_sbuf_want(struct mpt_conn *c);                  /* the send buffer is full */
void mpt_bufs_idle(struct mpt_conn *c, uint64_t now);    /* frees idle buffers */
void mpt_e2e_sample(struct sf *s, uint64_t rtt, uint64_t now);
void mpt_live_sf_up(struct mpt_conn *c, int i, uint64_t now);
void mpt_live_on_ping(struct mpt_conn *c, int i, const struct mpt_frame *f);
void mpt_live_on_pong(struct mpt_conn *c, int i, const struct mpt_frame *f, uint64_t now);

/* ---- addresses and priorities (addr.c) ------------------------------------- */
int mpt_addr_on_add_addr(struct mpt_conn *c, int i, const struct mpt_frame *f);
void mpt_addr_resend(struct mpt_conn *c, int gone);
void mpt_addr_on_prio(struct mpt_conn *c, int i, const struct mpt_frame *f);
/* PRIO's flags for a tier, as far as the features in force can say it. */
uint8_t mpt_prio_flags(const struct mpt_conn *c, int prio);
static inline int mpt_prio_is_backup(int prio)
{
    return prio == MPT_PRIO_BACKUP || prio == MPT_PRIO_NEVER;
}
void mpt_addr_on_remove_addr(struct mpt_conn *c, const struct mpt_frame *f, uint64_t now);

/* ---- schedulers and congestion control (algo.c) -------------------------------- */
void mpt_algo_view(const struct mpt_conn *c, int i, struct mpt_path_view *v);
int mpt_cc_env_fill(const struct mpt_conn *c, struct mpt_cc_env *e, struct mpt_path_view *views,
                    void **states, int *map);
size_t mpt_cc_room(const struct mpt_conn *c, int i, const struct mpt_cc_env *e, const int *map);
void mpt_cc_sf_up(struct mpt_conn *c, int i, uint64_t now);
void mpt_cc_sf_down(struct mpt_conn *c, int i, uint64_t now);
void mpt_cc_on_ack(struct mpt_conn *c, int i, size_t bytes, uint64_t now);
void mpt_cc_on_loss(struct mpt_conn *c, int i, uint64_t now);
void mpt_cc_on_rtt(struct mpt_conn *c, int i, uint64_t rtt, uint64_t now);
int mpt_algo_init(struct mpt_conn *c, const struct mpt_sched_ops *sched,
                  const struct mpt_cc_ops *cc);
void mpt_algo_fini(struct mpt_conn *c);

#endif
