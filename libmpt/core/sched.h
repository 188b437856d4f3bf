/*
 * Schedulers: which subflows carry the next chunk of data, and how much of
 * it. A scheduler is a const table with a name, one file per algorithm
 * (sched_minrtt.c, ...), found by name in the registry, and switchable on a
 * live connection (mpt_conn_set_sched).
 *
 * The engine does what every scheduler would otherwise repeat: it passes
 * only usable subflows (established, not stalled, not closing; for a
 * reinjection, not already holding the bytes) of the tiers that may carry
 * data now (9.6): the primaries, plus the secondaries while no primary has
 * room; the secondaries if no primary is usable; the backups if neither is;
 * never a NEVER subflow. Opportunistic retransmission with penalisation of the
 * slow subflow is a piece a scheduler opts into (MPT_SCHED_OPPORTUNISTIC).
 */
#ifndef MPT_CORE_SCHED_H
#define MPT_CORE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h" /* MPT_MAX_SUBFLOWS_LIMIT */

/* One subflow as schedulers and congestion control see it. */
struct mpt_path_view {
    int index;              /* subflow index in the connection */
    uint32_t id;            /* stable subflow id */
    int backup;             /* prio is BACKUP or NEVER */
    int prio;               /* enum mpt_prio, as this side and the peer agreed last */
    uint32_t weight;        /* mpt_conn_sf_set_weight, default 1 (the weighted scheduler) */
    uint64_t srtt, rttvar;  /* the kernel's (else PING's) smoothed RTT, ns; 0 unknown */
    uint64_t e2e_rtt;       /* end-to-end RTT as the connection sees it (>= srtt) */
    uint32_t cwnd_bytes;    /* the kernel's cwnd x mss, 0 unknown */
    uint32_t mss;
    uint64_t delivery_rate; /* bytes/s, 0 unknown */
    size_t tcp_inflight;    /* written or queued on it, not yet TCP-acked */
    size_t inflight;        /* handed to it, not yet acked at connection level */
    uint64_t sent;          /* payload bytes handed to it so far (copies included) */
    size_t room;            /* payload bytes its socket takes now */
    size_t cc_room;         /* payload bytes congestion control allows now (SIZE_MAX: no cap) */
};

/* What a scheduler decides on. */
struct mpt_sched_view {
    uint64_t now;
    const struct mpt_path_view *sf; /* usable subflows, regular ones only while any is usable */
    int n;                          /* >= 1 */
    size_t chunk;                   /* bytes offered, at most the frame payload */
    int reinjection;                /* the chunk was sent before on a subflow that failed or stalled */
    size_t backlog;                 /* new bytes waiting to be sent (this chunk included) */
    size_t window;                  /* bytes the peer's window allows beyond what was sent */
};

/* The decision: the subflows that carry the chunk (several: redundant
 * copies, the first to arrive wins) and how much of it (0: all). The engine
 * clamps the length to every chosen subflow's room and cc_room. */
struct mpt_sched_pick {
    int n;
    int sf[MPT_MAX_SUBFLOWS_LIMIT]; /* mpt_path_view.index values */
    size_t len;
};

#define MPT_SCHED_OPPORTUNISTIC 0x1u /* opportunistic retransmission + penalisation */
#define MPT_SCHED_REDUNDANT 0x2u     /* the engine copies every byte sent to every other
                                        usable subflow, as its room allows */

struct mpt_sched_ops {
    const char *name;
    size_t state_size;   /* per connection, zeroed before init */
    unsigned flags;
    void (*init)(void *state);  /* optional */
    void (*fini)(void *state);  /* optional */
    /* 0 with *p filled, or MPT_EAGAIN to send nothing now (the engine asks
     * again at its next event). */
    int (*pick)(void *state, const struct mpt_sched_view *v, struct mpt_sched_pick *p);
};

extern const struct mpt_sched_ops mpt_sched_minrtt;
extern const struct mpt_sched_ops mpt_sched_roundrobin;
extern const struct mpt_sched_ops mpt_sched_redundant;
extern const struct mpt_sched_ops mpt_sched_blest;
extern const struct mpt_sched_ops mpt_sched_ecf;
extern const struct mpt_sched_ops mpt_sched_weighted;

/* NULL-terminated registry, and lookup by name (NULL if unknown). */
extern const struct mpt_sched_ops *const mpt_sched_registry[];
const struct mpt_sched_ops *mpt_sched_find(const char *name);

/* A subflow with room for some payload in both its socket and its cc cap. */
static inline int mpt_path_has_room(const struct mpt_path_view *p)
{
    return p->room > 0 && p->cc_room > 0;
}

#endif
