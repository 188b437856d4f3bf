/*
 * A deterministic discrete-event network simulator for the sans-I/O engine
 * (libmpt/core/conn.h). One client and one server engine are connected
 * through N simulated paths; every subflow is a simulated kernel TCP socket:
 *
 *  - a bounded send buffer (cfg.sndbuf) whose unsent part is kept short
 *    (cfg.notsent_lowat, like TCP_NOTSENT_LOWAT): the room reported to the
 *    engine with mpt_conn_sf_set_room() is min(sndbuf free, lowat - notsent);
 *  - bytes leave the buffer at the path's rate (serialisation in chunks of
 *    about 1 ms, at most 64 KiB), arrive in order after the one-way delay and
 *    are freed from the sender's buffer one reverse delay later (TCP ack);
 *  - scripted events at time T: stall (blackhole: nothing moves in either
 *    direction, connects hang, bytes stay queued), fail (reset: every socket on
 *    the path gets mpt_conn_sf_failed on both ends, connects are refused),
 *    recover (a stalled path resumes and held bytes arrive one delay later; a
 *    failed path accepts connections again and the client re-joins on it),
 *    rate change, delay change, and arbitrary callbacks (abort, shutdown...).
 *
 * Time is virtual (ns). Randomness comes from one seed: same seed, same run.
 * The applications on both ends write deterministic pseudo-random streams
 * (sim_stream_fill) and the readers hash and verify what they read.
 *
 * Nothing here reads a clock except the optional engine-CPU measurement
 * (cfg.measure_engine), which never influences the simulation.
 */
#ifndef MPT_SIM_H
#define MPT_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/conn.h"
#include "core/pm.h"

#define SIM_MAX_PATHS 8
#define SIM_C2S 0 /* direction: client to server */
#define SIM_S2C 1 /* direction: server to client */
#define SIM_CLIENT 0
#define SIM_SERVER 1

#define SIM_MS ((uint64_t)1000000)
#define SIM_S ((uint64_t)1000000000)
#define SIM_MBPS ((uint64_t)1000000)
#define SIM_KIB ((uint64_t)1024)
#define SIM_MIB ((uint64_t)1048576)

struct sim;

/* ---- Small deterministic helpers (also used by the tests) ----------------- */

struct sim_rng {
    uint64_t s[4];
};
void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);          /* xoshiro256** */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n); /* uniform in [0, n), n > 0 */
uint64_t sim_splitmix64(uint64_t *state);

/* Byte `off` of the application stream with key `key` is a pure function of
 * (key, off): fills buf with stream bytes [off, off + len). */
void sim_stream_fill(uint64_t key, uint64_t off, uint8_t *buf, size_t len);

/* A fast 64-bit streaming hash (word-at-a-time multiply/rotate; not
 * cryptographic). Chunk boundaries do not matter. */
struct sim_hash {
    uint64_t h;
    uint64_t carry;
    unsigned ncarry;
    uint64_t len;
};
void sim_hash_init(struct sim_hash *h);
void sim_hash_update(struct sim_hash *h, const void *data, size_t len);
uint64_t sim_hash_final(const struct sim_hash *h);

/* ---- Configuration ---------------------------------------------------------- */

struct sim_path_cfg {
    uint64_t rate[2];  /* bits/s per direction (SIM_C2S, SIM_S2C) */
    uint64_t delay[2]; /* one-way ns per direction */
    int backup;        /* the tier the client opens its subflows with (enum mpt_prio):
                          0 primary, 1 backup, MPT_PRIO_SECONDARY, MPT_PRIO_NEVER */
    uint32_t loss_ppm;  /* random loss: parts per million of packets, both directions (needs
                           tcp_model: a lost packet is sent again one RTT later) */
    int bottleneck;     /* 1-based index into cfg.bottleneck the path feeds, 0: none */
    uint64_t split_rtt; /* non-zero: a TCP-splitting proxy next to each sender acks its
                           bytes after split_rtt (the kernel srtt reported) while they
                           still take `delay` to the receiver (satellite, some cellular) */
};

/* Tamper hook: sees every byte of socket `sock` in direction `dir` as it
 * arrives at the receiver, before the receiving engine does, with its stream
 * offset. It may modify the bytes in place. */
typedef void (*sim_tap_fn)(struct sim *sim, int sock, int dir, uint64_t stream_off, uint8_t *data,
                           size_t len, void *user);

/* A drop-tail bottleneck that several paths (and TCP flows) share, per
 * direction: a queue of `buffer` bytes drained at `rate` bits/s. */
struct sim_bottleneck_cfg {
    uint64_t rate;
    size_t buffer;
};

#define SIM_MAX_BOTTLENECKS 4

struct sim_cfg {
    uint64_t seed;
    int npaths;
    struct sim_path_cfg path[SIM_MAX_PATHS];
    size_t sndbuf;         /* socket send buffer; default 256 KiB */
    size_t notsent_lowat;  /* unsent part bound; default 64 KiB */
    uint32_t mss;          /* default 1448 */
    struct mpt_core_settings settings[2]; /* [SIM_CLIENT], [SIM_SERVER]; rand is set by the sim */
    uint64_t bytes[2];     /* application bytes to send per direction */
    int shutdown[2];       /* per side: shutdown once everything is written (default 1) */
    uint64_t write_start[2]; /* per side: virtual time of its first write (default 0) */
    int auto_join;         /* client opens a subflow on every other path once established (1) */
    int rejoin;            /* on recover, the client re-joins a path without a live subflow (1) */
    int tcp_model;         /* 1: each socket runs a loss-based TCP (slow start, additive increase,
                              halve on loss, at most once per RTT) that reports cwnd and
                              retransmissions; 0 (default): a fixed cwnd from the BDP */
    struct sim_bottleneck_cfg bottleneck[SIM_MAX_BOTTLENECKS];
    int use_pm;            /* the client's subflows come from the path manager (core/pm.h),
                              as in the I/O layer: auto_join and rejoin are then unused */
    struct mpt_pm_settings pm; /* its settings (defaults by sim_cfg_default) */
    uint64_t progress_timeout; /* no progress this long (virtual ns): deadlock; default 60 s */
    uint64_t time_limit;   /* hard virtual-time bound; default 2 h */
    int measure_engine;    /* time engine calls with CLOCK_MONOTONIC (benchmarks) */
    size_t read_chunk;     /* application recv() buffer size; default 64 KiB */
    sim_tap_fn tap;
    void *tap_user;
    FILE *trace;           /* NULL: env SIM_TRACE=1 traces to stderr */
};

void sim_cfg_default(struct sim_cfg *cfg);

/* ---- Life cycle -------------------------------------------------------------- */

int sim_new(const struct sim_cfg *cfg, struct sim **out); /* 0 or -1 */
void sim_free(struct sim *sim);

/* Scripted events. path is an index in cfg.path; dir SIM_C2S / SIM_S2C or -1
 * for both. */
void sim_at_stall(struct sim *sim, uint64_t t, int path);
void sim_at_fail(struct sim *sim, uint64_t t, int path);
void sim_at_recover(struct sim *sim, uint64_t t, int path);
void sim_at_rate(struct sim *sim, uint64_t t, int path, int dir, uint64_t rate);
void sim_at_delay(struct sim *sim, uint64_t t, int path, int dir, uint64_t delay);
/* The application on `side` stops reading for `duration`. */
void sim_at_read_pause(struct sim *sim, uint64_t t, int side, uint64_t duration);
typedef void (*sim_call_fn)(struct sim *sim, void *arg);
void sim_at_call(struct sim *sim, uint64_t t, sim_call_fn fn, void *arg);

enum sim_outcome {
    SIM_RUNNING = 0,
    SIM_FINISHED,  /* both engines reached CLOSED or ABORTED */
    SIM_DEADLOCK,  /* no progress for cfg.progress_timeout, or nothing left to happen */
    SIM_TIMELIMIT, /* cfg.time_limit reached */
    SIM_LIVELOCK,  /* too many events at one instant */
    SIM_INTERNAL,  /* simulator error (allocation) */
};

/* Runs until the outcome is decided. Returns the outcome. */
enum sim_outcome sim_run(struct sim *sim);
/* Runs until virtual time t (or an outcome); returns the outcome so far. */
enum sim_outcome sim_run_until(struct sim *sim, uint64_t t);

/* ---- Inspection and control (valid during callbacks and after the run) ----- */

uint64_t sim_now(const struct sim *sim);
struct mpt_conn *sim_conn(struct sim *sim, int side); /* server: NULL before accept */
const char *sim_outcome_name(enum sim_outcome o);
const char *sim_message(const struct sim *sim); /* diagnostics of a failure */

/* The client opens a subflow on `path` now (mpt_conn_add_subflow + connect).
 * Returns the socket id, or a negative MPT_E* code. */
int sim_open_subflow(struct sim *sim, int path, int backup);
/* Opens a raw TCP connection from the client host on `path` that is not
 * attached to the client engine and writes `data` on it once connected; the
 * server treats it like any other connection. Returns the socket id. */
int sim_open_raw(struct sim *sim, int path, const uint8_t *data, size_t len);
/* A plain TCP flow competing with the connection: bulk from the client host
 * to the server host over `path` (dir SIM_C2S) or back (SIM_S2C), forever.
 * Returns its socket id; its delivered bytes are sim_sock_info().bytes[dir]. */
int sim_add_tcp_flow(struct sim *sim, int path, int dir);

/* The client's path manager (cfg.use_pm), NULL otherwise. */
struct mpt_pm *sim_pm(struct sim *sim);
/* Writes more bytes on a raw socket. */
void sim_raw_write(struct sim *sim, int sock, const uint8_t *data, size_t len);

struct sim_dir_result {
    uint64_t written;     /* bytes the sending application wrote */
    uint64_t delivered;   /* bytes the receiving application read */
    uint64_t hash_sent, hash_recv;
    int eof;              /* the reader saw end of stream */
    int64_t mismatch;     /* first offset where the reader's bytes differ, -1 none */
    uint64_t t_first_write, t_last_write;
    uint64_t t_first_read, t_last_read;
    uint64_t max_gap;     /* longest interval between successive deliveries */
    uint64_t max_gap_at;  /* when that gap ended */
    int write_error;      /* first error mpt_conn_send returned to the writer (not
                             MPT_EAGAIN); the simulated application then stops writing */
};

struct sim_side_result {
    int established;      /* MPT_EV_ESTABLISHED seen */
    int closed;           /* MPT_EV_CLOSED seen */
    int error;            /* MPT_EV_ERROR code, 0 if none */
    uint32_t error_reason;
    enum mpt_conn_state state;
    int sf_up, sf_down;   /* event counts */
    struct mpt_conn_stats stats; /* last snapshot (kept after the conn is freed) */
    size_t rcv_mem_peak;  /* max over the run of stats.rcv_mem_peak */
    size_t snd_mem_peak;
    int mem_violation;    /* rcv_mem > rcvbuf or snd_mem > sndbuf was seen */
    uint64_t t_engine_sf_fail; /* first time the engine itself failed a subflow, 0 never */
    int engine_sf_fails;  /* subflows the engine failed on its own (timeouts, errors) */
    int budget_spent;     /* MPT_EV_BUDGET_SPENT events */
};

struct sim_result {
    enum sim_outcome outcome;
    uint64_t end_time;
    uint64_t events;
    struct sim_dir_result dir[2];
    struct sim_side_result side[2];
    int accept_errors;     /* mpt_server_accept refusals */
    int extra_server_conns; /* server connections beyond the first */
    double engine_ns;      /* time inside engine calls (cfg.measure_engine), minus the
                              calibrated cost of the clock reads around each call */
    uint64_t engine_calls; /* engine calls timed */
    uint64_t trace_hash;   /* hash of every byte the engines wrote and every event they
                              raised, with the virtual time: same engine behaviour, same
                              hash (the golden check of tests/unit/test_sim_golden.c) */
};

const struct sim_result *sim_result(const struct sim *sim);

struct sim_sock_info {
    int path;
    int raw;
    int client_sf, server_sf;   /* engine subflow indexes, -1 if none */
    int accept_error;           /* mpt_server_accept's error, 0 if accepted / not yet */
    int input_error[2];         /* first negative mpt_conn_sf_input result per side */
    int up[2];                  /* MPT_EV_SF_UP seen for it, per side */
    int down[2];                /* detached from the engine (failed / closed), per side */
    int down_error[2];          /* error of the MPT_EV_SF_DOWN event for it, per side */
    int reset;                  /* killed by a path failure or an RST */
    int pm_slot;                /* client path-manager slot it was opened for, or -1 */
    uint64_t t_open;            /* virtual time the connection was opened */
    int eof[2];                 /* EOF delivered to side */
    uint64_t bytes[2];          /* bytes carried per direction */
    const uint8_t *raw_rx;      /* raw socket: bytes received from the server */
    size_t raw_rx_len;
};
int sim_nsocks(const struct sim *sim);
int sim_sock_info(const struct sim *sim, int sock, struct sim_sock_info *info);

/* Checks the result of a run that should have delivered everything: both
 * directions complete, byte-exact, EOF seen, both ends closed gracefully, no
 * memory violation. Returns 1 if so; otherwise 0 and a description in buf. */
int sim_check_complete(const struct sim *sim, char *buf, size_t len);
/* Like sim_check_complete, but a run that ended with a clean error on both
 * ends (MPT_EV_ERROR / ABORTED, not a deadlock) after delivering an exact
 * prefix also passes. */
int sim_check_exact_or_error(const struct sim *sim, char *buf, size_t len);

/* One-line summary for diagnostics. */
void sim_describe(const struct sim *sim, char *buf, size_t len);

#endif
