/*
 * The sans-I/O connection engine: everything libmpt does above TCP, as a
 * deterministic state machine. doc/design.md explains the model; in short:
 *
 *  - The engine performs no system call and reads no clock. Every entry point
 *    that may change state takes `now` (nanoseconds, any epoch, never going
 *    backwards). mpt_conn_next_timeout() says when to come back.
 *  - Randomness (keys, nonces, the routing id) comes from settings.rand.
 *  - A subflow is a small integer index chosen by the engine. The caller (the
 *    I/O layer, or the simulator in tests/sim/) owns the actual byte stream.
 *  - Input: bytes read from subflow i (mpt_conn_sf_input), how many more bytes
 *    subflow i will take (mpt_conn_sf_set_room), subflow connected / failed /
 *    closed, path measurements (mpt_conn_sf_set_info), application send /
 *    recv / shutdown / abort, and timer expiry.
 *  - Output: bytes to write on subflow i (mpt_conn_sf_output + _sent), the
 *    next timer deadline, and events for the application (mpt_conn_next_event).
 *
 * After any input, the caller drains output on every subflow
 * (mpt_conn_sf_output until it returns 0 or the socket is full), drains events,
 * and re-arms its timer from mpt_conn_next_timeout().
 *
 * Ownership: the engine copies application data on mpt_conn_send and copies
 * into the caller's buffer on mpt_conn_recv. Buffers passed to
 * mpt_conn_sf_input are only read during the call. iovecs returned by
 * mpt_conn_sf_output point into engine memory and stay valid until the next
 * call into the engine for this connection.
 */
#ifndef MPT_CORE_CONN_H
#define MPT_CORE_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

#define MPT_MAX_SUBFLOWS_LIMIT 32 /* hard upper bound of settings.max_subflows */
#define MPT_TIME_NEVER UINT64_MAX
#define MPT_NS_PER_MS 1000000ull

struct mpt_conn;
struct mpt_server;
struct mpt_sched_ops;
struct mpt_cc_ops;

/* Fills buf with len random bytes (a CSPRNG in the I/O layer, a seeded PRNG
 * in the simulator). Must not fail. */
typedef void (*mpt_rand_fn)(void *user, uint8_t *buf, size_t len);

struct mpt_core_settings {
    uint32_t max_subflows;        /* per connection, incl. the first; default 8 */
    uint32_t max_frame_payload;   /* DATA payload per frame; default 16384 */
    size_t sndbuf;                /* largest connection-level send buffer; default 16 MiB */
    size_t rcvbuf;                /* largest receive window (memory: in-order + out-of-order,
                                     + 1/8 for the bitmap); default 16 MiB */
    size_t sndbuf_initial;        /* where auto-tuning starts (autotune.c): the send buffer */
    size_t rcvbuf_initial;        /* and receive window grow from these to sndbuf and rcvbuf
                                     as the measured rate x RTT needs; default 256 KiB and
                                     1 MiB; 0 or >= the maximum: a fixed size */
    uint64_t ack_delay;           /* DATA_ACKs go out at once, one per input batch; this is
                                     the slack added to stall_min before an ack that may
                                     have died with its subflow is repeated; default 2 ms */
    uint64_t ping_interval;       /* PING on an idle established subflow; default 1 s */
    uint64_t stall_min;           /* floor of the stall detector; default 250 ms */
    uint64_t subflow_timeout;     /* nothing received this long with data or a
                                     PING outstanding: subflow failed; default 2 s */
    uint64_t handshake_timeout;   /* HELLO/JOIN exchange; default 5 s */
    uint64_t close_timeout;       /* graceful close; default 10 s */
    int accept_tls;               /* server: the caller runs TLS on subflows whose preamble
                                     asks for it; 0 (default): such preambles are refused */
    int tls;                      /* client: every preamble asks for TLS (the caller runs it);
                                     server: a preamble without TLS is refused (TLS required) */
    uint64_t ack_timeout;         /* data outstanding and the cumulative DATA_ACK has not
                                     moved this long: abort with MPT_ETIMEDOUT; default 0
                                     = 4 x subflow_timeout */
    uint32_t server_id;           /* server: non-zero is written big-endian into bytes 0-3
                                     of every routing id (the rest stays random), so a
                                     load balancer can send joins to this server; 0
                                     (default): all 8 bytes random */
    const struct mpt_sched_ops *sched; /* NULL: lowest-RTT */
    const struct mpt_cc_ops *cc;       /* NULL: uncoupled */
    mpt_rand_fn rand;             /* required */
    void *rand_user;
    int service_mode;             /* enum mpt_mode (doc/policy.md); default aggregate */
};

/* Safe defaults; rand is left NULL and must be set by the caller. */
void mpt_core_settings_default(struct mpt_core_settings *s);

/* Measurements about a subflow's kernel TCP socket (TCP_INFO), or the
 * simulator's model of one. 0 means unknown. */
struct mpt_sf_info {
    uint64_t srtt;        /* ns */
    uint64_t rttvar;      /* ns */
    uint32_t cwnd_bytes;  /* kernel cwnd * mss */
    uint32_t mss;
    uint32_t unacked_bytes;  /* written, not yet TCP-acked */
    uint32_t notsent_bytes;  /* written, not yet sent */
    uint64_t delivery_rate;  /* bytes/s */
    uint32_t total_retrans;
    /* blackhole detection (liveness.c): */
    uint64_t last_ack_at;    /* when the kernel last received an ACK on it, in the
                                caller's clock (tcpi_last_ack_recv before the sample) */
    uint32_t retransmits;    /* unrecovered retransmission timeouts (tcpi_retransmits) */
    uint32_t backoff;        /* RTO backoff exponent (tcpi_backoff) */
};

enum mpt_sf_state {
    MPT_SF_CONNECTING,  /* TCP connect in progress (client) */
    MPT_SF_HANDSHAKE,   /* HELLO / JOIN exchange in progress */
    MPT_SF_ESTABLISHED, /* carries data */
    MPT_SF_CLOSING,     /* SUBFLOW_CLOSE sent or received */
    MPT_SF_FAILED,      /* dead; the caller should close its socket */
    MPT_SF_CLOSED,      /* slot unused */
};

enum mpt_conn_state {
    MPT_CONN_HANDSHAKE,
    MPT_CONN_ESTABLISHED,
    MPT_CONN_CLOSING,   /* a DATA_FIN was sent or received; not both finished */
    MPT_CONN_CLOSED,    /* graceful close finished */
    MPT_CONN_ABORTED,   /* FASTCLOSE, fatal error, or every path gone */
};

enum mpt_event_type {
    MPT_EV_ESTABLISHED = 1, /* handshake done: send/recv may be used */
    MPT_EV_READABLE,        /* in-order data (or EOF) can be read */
    MPT_EV_WRITABLE,        /* send-buffer space became available */
    MPT_EV_SF_UP,           /* subflow sf established */
    MPT_EV_SF_DOWN,         /* subflow sf failed or closed (reason in ev.reason) */
    MPT_EV_ADDR_LEARNED,    /* peer advertised an address (ev.addr) */
    MPT_EV_ADDR_REMOVED,    /* peer withdrew address id ev.addr.addr_id */
    MPT_EV_CLOSED,          /* connection closed gracefully */
    MPT_EV_ERROR,           /* connection aborted: ev.error, ev.reason */
    MPT_EV_BUDGET_SPENT,    /* subflow sf's byte budget is spent: it is BACKUP now */
};

struct mpt_event {
    enum mpt_event_type type;
    int sf;         /* subflow index or -1 */
    uint32_t sf_id; /* that subflow's stable id (mpt_sf_stats.id), 0 if none: an index
                       may already belong to a newer subflow when the event is read */
    int error;      /* MPT_E* for MPT_EV_ERROR / MPT_EV_SF_DOWN */
    uint32_t reason; /* wire reason code (enum mpt_reason) where one applies */
    struct {
        uint8_t addr_id, family;
        uint16_t port;
        uint8_t addr[16];
    } addr;
};

struct mpt_iovec {
    const void *base;
    size_t len;
};

struct mpt_conn_stats {
    uint64_t bytes_sent;       /* payload bytes handed to subflows, incl. reinjections */
    uint64_t bytes_acked;      /* connection-level (DATA_ACK) */
    uint64_t bytes_received;   /* in-order payload bytes delivered into the receive buffer */
    uint64_t bytes_reinjected; /* payload bytes sent again on another subflow */
    uint64_t reinjections;     /* reinjection events */
    uint64_t dup_bytes_dropped; /* duplicate payload received and discarded */
    uint64_t acks_sent;
    uint64_t penalisations;    /* slow subflow windows halved */
    size_t rcv_mem;            /* current receive memory (in-order + out-of-order) */
    size_t rcv_mem_peak;
    size_t snd_mem;            /* current send buffer bytes */
    uint64_t addr_rejected;    /* ADD_ADDR frames ignored for a bad HMAC or id 0 */
    uint64_t events_dropped;   /* events lost to a full event queue */
    uint64_t bytes_redundant;  /* payload bytes sent as extra copies by a redundant scheduler */
    uint64_t snd_unacked;      /* bytes written by the application and not yet
                                  acknowledged by the peer (0: everything arrived) */
    uint64_t sf_opened;        /* subflows that reached ESTABLISHED, ever */
    uint64_t sf_failed;        /* subflows that failed (not closed cleanly), ever */
    /* DATA frames with new bytes, and how long they waited for the
     * cumulative point (0 when they arrived in order), ns (reorder.h) */
    uint64_t reorder_samples, reorder_p50, reorder_p99, reorder_max;
    uint64_t sf_blackholes;    /* of sf_failed: failed by the blackhole rule (liveness.c) */
    uint64_t reinj_throttled;  /* times reinjection waited for credit (send.c) */
    /* buffer auto-tuning (autotune.c) */
    uint64_t rwin_grown;       /* times the receive window grew */
    uint64_t bufs_freed;       /* idle buffers freed */
    uint64_t buf_grow_failed;  /* growths refused by the allocator (the old size stays) */
    size_t rcv_window;         /* the receive window the connection may open now */
    size_t rcv_allocated;      /* receive ring + bitmap bytes allocated */
    size_t snd_allocated;      /* send ring bytes allocated */
    uint64_t sf_fail_notices;  /* of sf_failed: failed on the peer's SUBFLOW_FAILED */
    uint64_t sf_quiet_stalls;  /* subflows stalled by the quiet rule (liveness.c) */
};

/* A subflow's priority tier (9.6). The values of PRIMARY and BACKUP are the
 * old backup flag's 0 and 1. */
enum mpt_prio {
    MPT_PRIO_PRIMARY = 0,   /* carries data */
    MPT_PRIO_BACKUP = 1,    /* only while no primary or secondary subflow is usable */
    MPT_PRIO_SECONDARY = 2, /* only while every usable primary is full, or none is usable */
    MPT_PRIO_NEVER = 3,     /* no data at all (control frames only) */
};

/* Service modes (RFC 9622 vocabulary; doc/policy.md). The values are those
 * of the public enum mpt_service_mode. */
enum mpt_mode {
    MPT_SM_AGGREGATE = 0,   /* throughput first: the scheduler over the tiers (default) */
    MPT_SM_HANDOVER = 1,    /* one subflow at a time: the first usable one of the best tier */
    MPT_SM_INTERACTIVE = 2, /* lowest RTT; every send of <= MPT_INTERACTIVE_SMALL bytes
                                 goes on the two lowest-RTT subflows */
};
#define MPT_INTERACTIVE_SMALL 2048u

/* Per-message policy (mpt_conn_send_msg). */
struct mpt_msg_policy {
    uint32_t redundant_below; /* len < this: the message's bytes on two subflows */
    uint32_t deadline_ms;     /* 0 none: else arrival wanted this long after the call */
};

struct mpt_sf_stats {
    uint32_t id;              /* stable: never reused within the connection (slot
                                 indexes are); the first subflow is 1 */
    enum mpt_sf_state state;
    int backup;               /* prio is BACKUP or NEVER */
    int prio;                 /* enum mpt_prio */
    uint8_t addr_id;          /* client: local address id; server: the JOIN's */
    uint8_t remote_id;        /* client: server address id (mpt_conn_sf_set_remote_id) */
    uint64_t srtt;            /* engine's estimate (PING/PONG or sf_info), ns */
    uint64_t bytes_sent;      /* payload */
    uint64_t bytes_acked;     /* payload of segments first sent here, acked at connection level */
    uint64_t bytes_received;  /* DATA payload received here (duplicates included) */
    uint32_t fail_reason;
    int fail_error;
    uint64_t budget;          /* mpt_conn_sf_set_budget; 0: none */
    uint64_t budget_used;     /* payload bytes handed to it since (incl. reinjections) */
    int budget_spent;
    uint64_t rate;            /* mpt_conn_sf_set_rate, bytes/s; 0: none */
    size_t queued;            /* bytes in its output queue, not yet written (diagnostics) */
    uint64_t inflight;        /* payload handed to it and not yet acknowledged */
    int stalled;              /* the stall detector holds it (liveness.c) */
};

/* ---- Client side ---------------------------------------------------------- */

/* Creates a client connection (state HANDSHAKE, no subflow yet). */
int mpt_conn_client_new(const struct mpt_core_settings *s, uint64_t now, struct mpt_conn **out);

/*
 * Client: reserve a subflow slot for a TCP connection the caller is about to
 * open. The first one carries the handshake; later ones join (allowed once
 * the connection is established). Returns the subflow index >= 0, or
 * MPT_ETOOMANY, MPT_ESTATE. Call mpt_conn_sf_connected() when the TCP
 * connection is up, or mpt_conn_sf_failed() if it could not be made.
 */
/* prio: enum mpt_prio (0 primary, 1 backup: the old backup flag). */
int mpt_conn_add_subflow(struct mpt_conn *c, uint8_t addr_id, int prio, uint64_t now);

/* ---- Server side ---------------------------------------------------------- */

/* A server endpoint: owns the token table that routes joins to connections. */
int mpt_server_new(const struct mpt_core_settings *s, struct mpt_server **out);
/* Frees the server; connections it created must have been freed first. */
void mpt_server_free(struct mpt_server *srv);

struct mpt_accept {
    struct mpt_conn *conn; /* the connection the subflow now belongs to */
    int sf;                /* its index in conn */
    int is_new;            /* 1: a new connection (HELLO), 0: a join */
    size_t consumed;       /* bytes of the input used (preamble + first frame) */
    /* On refusal: the bytes to write on the raw socket before closing it
     * (an ERROR frame); reply_len may be 0. */
    uint8_t reply[MPT_FRAME_MAX_CONTROL];
    size_t reply_len;
};

/*
 * Server: the first bytes read from a freshly accepted TCP connection.
 * Returns 0 with *a filled (more input then goes to mpt_conn_sf_input on
 * a->conn, a->sf, starting at data + a->consumed), MPT_EINCOMPLETE (call again
 * with more bytes), or a negative error (MPT_EPREAMBLE, MPT_EVERSION,
 * MPT_ETOKEN, MPT_ETOOMANY, MPT_EREPLAY, MPT_EFRAME_*): write a->reply and
 * close the socket. A connection created here is owned by the caller, who
 * frees it with mpt_conn_free().
 */
int mpt_server_accept(struct mpt_server *srv, const uint8_t *data, size_t len, uint64_t now,
                      struct mpt_accept *a);

/*
 * The same in two steps, for a caller that runs TLS between the preamble
 * (always in clear) and the first frame. mpt_server_preamble: returns the
 * preamble's length (8 or 16) with *p filled, MPT_EINCOMPLETE, or an error
 * (write a->reply, which may be empty: close silently). A preamble with the
 * TLS flag is refused (MPT_ETLS) unless settings.accept_tls is set.
 * mpt_server_first_frame: the bytes after the preamble (after TLS, if any);
 * returns as mpt_server_accept, with a->consumed counting only them.
 */
int mpt_server_preamble(struct mpt_server *srv, const uint8_t *data, size_t len,
                        struct mpt_preamble *p, struct mpt_accept *a);
int mpt_server_first_frame(struct mpt_server *srv, const struct mpt_preamble *p,
                           const uint8_t *data, size_t len, uint64_t now, struct mpt_accept *a);

/*
 * mpt_server_first_frame for a subflow that ran TLS: `binding` is the
 * MPT_SECRET_LEN-byte exporter of this subflow's own TLS session (doc/
 * protocol.md 6.5), which a JOIN's HMACs then cover; NULL is the same as
 * mpt_server_first_frame. A JOIN to a connection keyed by TLS
 * (mpt_conn_set_secret) without a binding, or the reverse, is refused with
 * ERROR(PROTOCOL) and MPT_ETLS.
 */
int mpt_server_first_frame_bound(struct mpt_server *srv, const struct mpt_preamble *p,
                                 const uint8_t *binding, const uint8_t *data, size_t len,
                                 uint64_t now, struct mpt_accept *a);

/*
 * The caller's own limit refuses a new connection that the engine accepted
 * (a->is_new): frees a->conn and fills a->reply with ERROR(RESOURCE) for
 * the HELLO, saying `why` (may be NULL). Returns MPT_ENOBUFS, the error the
 * refused client sees.
 */
int mpt_server_refuse_new(struct mpt_accept *a, const char *why);

/* ---- Both sides ------------------------------------------------------------ */

/*
 * TLS keying (doc/protocol.md 6.5): the MPT_SECRET_LEN-byte exporter of the
 * first subflow's TLS session, given by each side as soon as its handshake
 * is over (client: before any frame is read; server: right after
 * mpt_server_first_frame accepted the HELLO). From then on every join and
 * ADD_ADDR HMAC, sent and checked, is keyed by it too. Once only: 0,
 * MPT_EINVAL, MPT_ESTATE (already set).
 */
int mpt_conn_set_secret(struct mpt_conn *c, const uint8_t secret[MPT_SECRET_LEN]);
/* Client: the exporter of join subflow sf's own TLS session, before its
 * JOIN_ACK is read. 0, MPT_EINVAL, MPT_ESTATE (not a join in its handshake). */
int mpt_conn_sf_set_binding(struct mpt_conn *c, int sf, const uint8_t binding[MPT_SECRET_LEN]);

/* Frees the connection and everything it holds (unlinks it from its server). */
void mpt_conn_free(struct mpt_conn *c);

/*
 * Switch the scheduler or congestion control of a live connection (either
 * side). Takes effect for the next byte scheduled; the new algorithm starts
 * from its initial state (a congestion controller is told of every
 * established subflow). Returns 0, MPT_EINVAL or MPT_ENOMEM.
 */
int mpt_conn_set_sched(struct mpt_conn *c, const struct mpt_sched_ops *ops, uint64_t now);
int mpt_conn_set_cc(struct mpt_conn *c, const struct mpt_cc_ops *ops, uint64_t now);
const struct mpt_sched_ops *mpt_conn_sched(const struct mpt_conn *c);
const struct mpt_cc_ops *mpt_conn_cc(const struct mpt_conn *c);

/* A pointer of the caller's, kept with the connection (NULL at first). */
void mpt_conn_set_user(struct mpt_conn *c, void *user);
void *mpt_conn_get_user(const struct mpt_conn *c);

enum mpt_conn_state mpt_conn_state(const struct mpt_conn *c);

/* The TCP connection of subflow sf is up (client side). */
int mpt_conn_sf_connected(struct mpt_conn *c, int sf, uint64_t now);

/*
 * Client: takes the subflow's preamble out of its output (after
 * mpt_conn_sf_connected, before anything was written), for a caller that
 * writes it in clear and runs TLS for the frames that follow. Returns its
 * length (8 or 16), MPT_ESTATE (none pending, or writing began),
 * MPT_ENOBUFS (cap < 16) or MPT_EINVAL.
 */
ssize_t mpt_conn_sf_take_preamble(struct mpt_conn *c, int sf, uint8_t *out, size_t cap);

/*
 * Bytes read from subflow sf, in any chunks. Returns len: the engine takes
 * every byte, handling the complete frames and keeping an incomplete one
 * itself until the rest arrives (at most one frame per subflow), so the
 * caller never keeps leftovers. Or a negative error if the subflow broke the
 * protocol (the engine has then marked it failed and queued ERROR/FASTCLOSE
 * as needed). Because the peer never exceeds the advertised window, the
 * engine can always consume every frame: the caller never needs to stop
 * reading.
 */
ssize_t mpt_conn_sf_input(struct mpt_conn *c, int sf, const uint8_t *data, size_t len,
                          uint64_t now);

/* Subflow sf's socket will take `room` more bytes now (beyond what
 * mpt_conn_sf_output already returned and the caller has not yet written). */
void mpt_conn_sf_set_room(struct mpt_conn *c, int sf, size_t room, uint64_t now);

/* Client: the server address id subflow sf connects to (0, the default, is
 * the address of the first subflow; others come from ADD_ADDR). A
 * REMOVE_ADDR naming it closes the subflow. */
int mpt_conn_sf_set_remote_id(struct mpt_conn *c, int sf, uint8_t remote_id);

/* Latest kernel measurements for subflow sf. */
void mpt_conn_sf_set_info(struct mpt_conn *c, int sf, const struct mpt_sf_info *info);

/*
 * What to write on subflow sf now: fills at most n iovecs (in order) and
 * returns their count, 0 when nothing is pending. Scheduling happens here and
 * in every other entry point: bytes appear in a subflow's output only within
 * the room it was given (control frames excepted).
 */
int mpt_conn_sf_output(struct mpt_conn *c, int sf, struct mpt_iovec *iov, int n, uint64_t now);

/* The caller wrote `n` bytes of what mpt_conn_sf_output returned. */
void mpt_conn_sf_sent(struct mpt_conn *c, int sf, size_t n, uint64_t now);

/* The subflow's TCP connection failed (reset, connect error, timeout) or the
 * peer closed it (EOF). Its unacknowledged data is reinjected elsewhere. */
void mpt_conn_sf_failed(struct mpt_conn *c, int sf, int error, uint64_t now);

/* The caller closed the socket of a subflow the engine is done with (FAILED
 * or CLOSED): what was still queued for it is dropped and its slot may be
 * reused. Without this call a slot whose last frames could not be written
 * is never reused. Returns 0, MPT_EINVAL or MPT_ESTATE (still live). */
int mpt_conn_sf_release(struct mpt_conn *c, int sf);

/* Ask the engine to close subflow sf (SUBFLOW_CLOSE with reason). */
int mpt_conn_sf_close(struct mpt_conn *c, int sf, uint32_t reason, uint64_t now);

/* The weighted scheduler's share of subflow sf (1..1000; default 1). Local:
 * nothing goes on the wire. Returns 0, MPT_EINVAL. */
int mpt_conn_sf_set_weight(struct mpt_conn *c, int sf, uint32_t weight);

/* Mark subflow sf backup (1) or regular (0); tells the peer with PRIO. */
int mpt_conn_sf_set_backup(struct mpt_conn *c, int sf, int backup, uint64_t now);
/* Sets subflow sf's tier (enum mpt_prio) here and tells the peer with PRIO:
 * SECONDARY and NEVER as such if TIERS is in force, else as regular and
 * backup. MPT_EINVAL, MPT_ESTATE (the subflow is gone). */
int mpt_conn_sf_set_prio(struct mpt_conn *c, int sf, int prio, uint64_t now);

/*
 * Metered paths. A byte budget: every DATA payload byte handed to subflow sf
 * (new data, reinjections, redundant copies) counts; a frame is cut to what
 * is left, so the subflow carries at most `bytes` while its tier is above
 * BACKUP. When it is reached the subflow drops to BACKUP (PRIO to the peer,
 * as mpt_conn_sf_set_prio) and MPT_EV_BUDGET_SPENT is raised, once; as a
 * backup it may still carry data when nothing else is usable (counted on).
 * Setting a budget (again) restarts the count; 0 removes it. `used` is
 * bytes already counted elsewhere (a path's earlier subflows), 0 usually.
 * A rate cap: a token bucket (burst 50 ms of rate, at least one frame)
 * refilled from `now`; 0 removes it. 0, MPT_EINVAL, MPT_ESTATE (gone).
 */
int mpt_conn_sf_set_budget(struct mpt_conn *c, int sf, uint64_t bytes, uint64_t used,
                           uint64_t now);
int mpt_conn_sf_set_rate(struct mpt_conn *c, int sf, uint64_t bytes_per_s, uint64_t now);

/* Server: advertise an additional address (ADD_ADDR). */
int mpt_conn_add_addr(struct mpt_conn *c, uint8_t addr_id, uint8_t family, const uint8_t *addr,
                      uint16_t port, uint64_t now);
int mpt_conn_remove_addr(struct mpt_conn *c, uint8_t addr_id, uint64_t now);

/* Application data. send copies up to len bytes into the send buffer and
 * returns how many (> 0), or MPT_EAGAIN when it is full, MPT_EPIPE after
 * shutdown, MPT_ESTATE before establishment, or the connection's error. */
ssize_t mpt_conn_send(struct mpt_conn *c, const void *buf, size_t len, uint64_t now);
/* Like mpt_conn_send, with a per-message policy (NULL: none). The policy
 * covers the bytes accepted by this call. */
ssize_t mpt_conn_send_msg(struct mpt_conn *c, const void *buf, size_t len,
                          const struct mpt_msg_policy *pol, uint64_t now);
/* The service mode (enum mpt_mode) of a live connection: MPT_EINVAL. */
int mpt_conn_set_mode(struct mpt_conn *c, int mode, uint64_t now);
int mpt_conn_mode(const struct mpt_conn *c);
/* Handover: the subflow carrying data now (-1 none / other modes), and how
 * often it changed. */
int mpt_conn_active_sf(const struct mpt_conn *c);
uint64_t mpt_conn_handovers(const struct mpt_conn *c);

/* Copies up to len in-order bytes; returns the count (> 0), 0 at end of
 * stream (the peer's DATA_FIN), MPT_EAGAIN when nothing is ready, or the
 * connection's error. */
ssize_t mpt_conn_recv(struct mpt_conn *c, void *buf, size_t len, uint64_t now);

/*
 * Lending the application's buffer to skip the receive ring. While buf is
 * lent and nothing is readable, it stands in for the ring over the next len
 * bytes of the stream: DATA that falls there, in order or out of order, is
 * copied straight to its place in buf (one copy per byte instead of two:
 * input buffer to ring, ring to application; mpt_rcvbuf_lend);
 * mpt_conn_recv returns MPT_EAGAIN meanwhile once the loan holds in-order
 * bytes, so the stream order cannot be broken by a second reader.
 * mpt_conn_recv_unlend ends the loan and returns how many in-order bytes it
 * holds (from buf[0]); they count as read (the window opens as for
 * mpt_conn_recv); out-of-order bytes in it are copied to the ring then.
 * lend returns MPT_EINVAL, or MPT_ESTATE if a loan is active.
 */
int mpt_conn_recv_lend(struct mpt_conn *c, void *buf, size_t len);
size_t mpt_conn_recv_unlend(struct mpt_conn *c, uint64_t now);
/* 1 while a lent buffer is full: what the caller reads now would go to the
 * ring, so it may leave it in the kernel until the application is back. */
int mpt_conn_recv_lend_full(const struct mpt_conn *c);
/* 1 while the loan is not full and holds bytes out of order: reading what
 * is ready on the other subflows may complete more of it before unlending
 * (which copies those bytes to the ring). */
int mpt_conn_recv_lend_waiting(const struct mpt_conn *c);
/* While a loan waits for more: a subflow whose last DATA ended at the
 * cumulative point, so its next bytes are likely the ones the loan waits
 * for (a scheduler sends runs of consecutive bytes on one subflow), or -1.
 * Reading it first puts them in the loan in order instead of the ring. */
int mpt_conn_recv_next_sf(const struct mpt_conn *c);
/* How much the caller should read from subflow i's socket now (0: no
 * limit): while a loan waits and subflow i's bytes go on inside it, up to
 * its end (more would go through the ring; the rest waits in the socket for
 * the next loan). */
size_t mpt_conn_recv_read_hint(const struct mpt_conn *c, int i);
/* In-order bytes the loan holds now (what unlend would return). */
size_t mpt_conn_recv_lent(const struct mpt_conn *c);

/*
 * Memory pressure: advertise at most `limit` bytes beyond what the
 * application has read (0 restores settings.rcvbuf; values above rcvbuf are
 * capped to it). The advertised right edge never retreats, so receive memory
 * shrinks towards `limit` as the application reads; nothing acknowledged is
 * ever dropped. Returns 0 or MPT_EINVAL.
 */
int mpt_conn_set_rcv_limit(struct mpt_conn *c, size_t limit);

/* No more data will be sent: a DATA_FIN follows the last byte. */
int mpt_conn_shutdown(struct mpt_conn *c, uint64_t now);

/* Abort: FASTCLOSE with reason on every live subflow; pending data dropped. */
int mpt_conn_abort(struct mpt_conn *c, uint32_t reason, uint64_t now);

uint64_t mpt_conn_next_timeout(const struct mpt_conn *c);
void mpt_conn_handle_timeout(struct mpt_conn *c, uint64_t now);

/* Pops the next event; returns 1 if *ev was filled, 0 if none. */
int mpt_conn_next_event(struct mpt_conn *c, struct mpt_event *ev);

enum mpt_sf_state mpt_conn_sf_state(const struct mpt_conn *c, int sf);
int mpt_conn_sf_count(const struct mpt_conn *c); /* slots in use or reserved */
int mpt_conn_sf_max(const struct mpt_conn *c);   /* settings.max_subflows */
void mpt_conn_get_stats(const struct mpt_conn *c, struct mpt_conn_stats *st);
/* The text of the last ERROR or FASTCLOSE the peer sent with one (a joined
 * subflow's only once it authenticated), printable ASCII, or NULL. Owned by
 * the connection, valid until the next frame is processed or it is freed. */
const char *mpt_conn_peer_text(const struct mpt_conn *c);
int mpt_conn_sf_get_stats(const struct mpt_conn *c, int sf, struct mpt_sf_stats *st);

/* Client: the server's advertised addresses so far are delivered as
 * MPT_EV_ADDR_LEARNED events; the routing id to put in JOIN preambles is
 * handled inside the engine. */

#endif
