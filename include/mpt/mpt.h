/*
 * libmpt: one application connection over several network paths.
 * This umbrella header declares the whole public API; doc/man/ has one page
 * per function (or per small family of functions).
 *
 * Model
 *  - A struct mpt_ctx owns everything: configuration, listeners, connections,
 *    the optional trace. It runs on a libev loop, either the application's
 *    (passed as a `struct ev_loop *` through a void pointer, so that this
 *    header does not need <ev.h>) or one the context creates. Nothing in
 *    libmpt runs on a thread of its own (name resolution's helper thread
 *    only hands its result to the loop), and callbacks are called only from
 *    the loop, never from inside another libmpt function: mpt_send or
 *    mpt_close never re-enter the application.
 *  - A struct mpt_socket is one multipath connection (several kernel TCP
 *    subflows). Its I/O is non-blocking: mpt_send and mpt_recv return
 *    MPT_EAGAIN, and the `writable` / `readable` callbacks say when to retry.
 *  - Programs without an event loop use the blocking layer (mpt_blocking_*),
 *    which runs the context's loop until the operation completes or times out.
 *  - Programs with another event loop (poll, epoll, asyncio) wait for
 *    mpt_ctx_fd() to become readable or mpt_ctx_timeout() to pass, then call
 *    mpt_ctx_process().
 *
 * Errors: every function returns 0 or a non-negative count on success and a
 * negative MPT_E* code (<mpt/error.h>) on failure; mpt_strerror() explains it.
 *
 * Ownership, in general: libmpt never keeps a pointer to a buffer the
 * application passes in after the call returns (data is copied), and the
 * application never frees memory libmpt returns except through the matching
 * mpt_*_free / mpt_close / mpt_abort call. Strings in struct mpt_config are
 * copied by mpt_ctx_new().
 */
#ifndef MPT_MPT_H
#define MPT_MPT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include <mpt/export.h>
#include <mpt/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, for example "0.1.0". Static; never NULL. */
MPT_EXPORT const char *mpt_version(void);

struct mpt_ctx;      /* a context: loop, configuration, all objects below */
struct mpt_socket;   /* one multipath connection */
struct mpt_listener; /* a server endpoint: one port on one or more addresses */

/* ---- Configuration --------------------------------------------------------- */

/*
 * TLS on every subflow (doc/security.md), pointed to by mpt_config.tls: TLS
 * 1.2 with AEAD suites only (ECDHE with AES-GCM or ChaCha20-Poly1305; with a
 * PSK, PSK and ECDHE-PSK suites). Fill it with zeros and set size =
 * sizeof(struct mpt_tls_config); mpt_ctx_new() loads the files and copies
 * everything (the struct and its strings need not outlive the call).
 * A client verifies the server's certificate against ca_file / ca_path and
 * the name server_name (default: the host given to mpt_connect); a server
 * needs cert_file + key_file or a PSK, and with a CA it also requires and
 * verifies client certificates. Every subflow of a TLS context runs TLS:
 * a server refuses subflows without it, and the reverse.
 */
struct mpt_tls_config {
    size_t size;                  /* sizeof(struct mpt_tls_config) */
    const char *ca_file;          /* PEM file of trusted CAs, or NULL */
    const char *ca_path;          /* or a directory of PEM CA files, or NULL */
    const char *cert_file;        /* own PEM certificate (chain), or NULL */
    const char *key_file;         /* its PEM private key (unencrypted) */
    const char *server_name;      /* client: name the server's certificate must carry, also
                                     sent as SNI; NULL: mpt_connect's host */
    const uint8_t *psk;           /* pre-shared key (both sides), or NULL */
    size_t psk_len;
    const char *psk_identity;     /* required with psk */
    int insecure_skip_verify;     /* client: accept any server certificate. For tests only:
                                     anyone on the path can then read and change everything */
};

/* Loads tls as mpt_ctx_new() would, and says why it cannot (which file, and
 * mbedTLS's reason) in why (NUL-terminated, may be NULL). 0, MPT_EINVAL
 * (settings that do not fit together), MPT_ETLS (a file mbedTLS could not
 * load), MPT_ENOMEM. */
MPT_EXPORT int mpt_tls_config_check(const struct mpt_tls_config *tls, char *why, size_t why_len);

/*
 * Context configuration. Always fill it with mpt_config_default() first (or
 * the MPT_CONFIG_DEFAULT macro), then change fields: the struct grows at its
 * end in later versions and `size` tells the library how much of it the
 * program knows. mpt_ctx_new() refuses (MPT_EINVAL) a size smaller than the
 * 0.1.0 struct, a size between two layouts the library knows, and a larger
 * struct (from a newer libmpt) whose bytes beyond what this library knows
 * are not all zero: a setting it cannot honour is an error, not ignored.
 * Times are in milliseconds; 0 means "the default" for every numeric field.
 */
/*
 * Service modes, in the vocabulary of RFC 9622 (TAPS) (doc/policy.md):
 * which subflows carry data, on top of the priority tiers.
 */
enum mpt_service_mode {
    MPT_MODE_AGGREGATE = 0,   /* throughput first: the scheduler over every usable subflow
                                 of the allowed tiers (the default, unchanged behaviour) */
    MPT_MODE_HANDOVER = 1,    /* one subflow at a time (best tier, lowest address id); the
                                 others idle but kept alive with PINGs; a stalled or failed
                                 one is replaced at once, and gets the data back when it is
                                 usable again */
    MPT_MODE_INTERACTIVE = 2, /* latency first: the lowest-RTT subflow; every send of at
                                 most 2048 bytes also goes on the second-lowest-RTT one */
};

struct mpt_config {
    size_t size;                  /* set by mpt_config_default() */
    uint32_t max_subflows;        /* per connection, incl. the first; default 8, max 32 */
    size_t sndbuf;                /* largest connection send buffer, bytes; default 16 MiB
                                     (it grows to it from sndbuf_initial as needed) */
    size_t rcvbuf;                /* largest receive window = receive memory (+ 1/8 for
                                     out-of-order bookkeeping), bytes; default 16 MiB (the
                                     window grows to it from rcvbuf_initial as needed) */
    uint32_t connect_timeout_ms;  /* per-path TCP connect; default 5000 */
    uint32_t handshake_timeout_ms; /* HELLO / JOIN exchange; default 5000 */
    uint32_t close_timeout_ms;    /* graceful close; default 10000 */
    uint32_t user_timeout_ms;     /* TCP_USER_TIMEOUT on every subflow; default 10000 */
    uint32_t subflow_timeout_ms;  /* engine liveness: silence with data outstanding; default 2000 */
    uint32_t ping_interval_ms;    /* PING on idle subflows; default 1000 */
    uint32_t notsent_lowat;       /* largest TCP_NOTSENT_LOWAT per subflow (each adapts to
                                     ~20 ms of its rate, >= 32 KiB); default 131072 */
    uint32_t write_budget;        /* bytes offered to a subflow per writable wakeup; default 262144 */
    uint32_t reconnect_min_ms;    /* first retry of a failed subflow; default 250 */
    uint32_t reconnect_max_ms;    /* backoff ceiling; default 30000 */
    uint32_t subflows_per_path;   /* subflows opened per (local path, remote address); default 1 */
    uint32_t listen_backlog;      /* default 1024 */
    uint32_t max_connections;     /* per context (both roles); default 65536 */
    const char *scheduler;        /* engine scheduler name; NULL: the default (lowest RTT) */
    const char *congestion;       /* coupled congestion control name; NULL: none */
    const char *tcp_congestion;   /* TCP_CONGESTION per subflow ("cubic"); NULL: system default;
                                     mpt_ctx_new checks the kernel has it */
    int fullmesh;                 /* client with no explicit paths: one path per local
                                     interface that is up (default 0: one unbound path) */
    int include_loopback;         /* fullmesh also uses loopback interfaces; default 0 */
    int advertise_addresses;      /* server: ADD_ADDR its other listening addresses; default 1 */
    /* Added after 0.1.0 (doc/abi.md). New fields start beyond the previous
     * layout's sizeof, its tail padding included, which a size could not tell
     * from a field: */
    uint32_t reserved0;           /* the 0.1.0 struct's tail padding: keep it 0 */
    uint32_t ack_timeout_ms;      /* data outstanding and the peer's cumulative DATA_ACK has
                                     not moved this long: abort with MPT_ETIMEDOUT; default 0
                                     = 4 x subflow_timeout_ms */
    uint32_t server_id;           /* server behind a load balancer: non-zero goes big-endian
                                     into bytes 0-3 of every routing id, which each JOIN
                                     preamble carries in clear, so the balancer can send the
                                     join to this process (doc/loadbalancing.md); default 0:
                                     a random routing id */
    const struct mpt_tls_config *tls; /* TLS on every subflow; NULL (default): plain TCP */
    /* Limits against hostile or runaway peers (doc/security.md, "Limits"): */
    uint32_t max_pending_handshakes; /* server: accepted TCP connections still before their
                                     HELLO / JOIN, per context; default 4096. One more
                                     closes the oldest (mpt_ctx_stats.pending_evicted) */
    uint32_t max_conns_per_addr;  /* server: connections whose first subflow came from one
                                     source (an IPv4 address, an IPv6 /64); default 1024.
                                     A HELLO beyond it: ERROR(RESOURCE), closed
                                     (mpt_ctx_stats.refused_per_addr); joins are not counted */
    uint32_t service_mode;        /* enum mpt_service_mode of every connection (either side);
                                     default 0: MPT_MODE_AGGREGATE (doc/policy.md) */
    /* Buffer auto-tuning (doc/design.md, "Buffer auto-tuning"): */
    size_t rcvbuf_initial;        /* the receive window a connection starts with; it grows
                                     towards rcvbuf with the measured rate x (largest RTT +
                                     reordering delay), and an idle connection's buffers
                                     are freed; default 1 MiB; >= rcvbuf: a fixed window */
    size_t sndbuf_initial;        /* the send buffer a connection starts with; it grows
                                     towards sndbuf (to twice the peer's window) when the
                                     application writes more than it holds; default 256 KiB */
};

/* Fills cfg with safe defaults and sets cfg->size = size, which is
 * sizeof(struct mpt_config) as the caller compiled it: fields this library
 * does not know (up to size) are zeroed, bytes beyond size not touched. */
MPT_EXPORT void mpt_config_default(struct mpt_config *cfg, size_t size);
#define MPT_CONFIG_DEFAULT(cfg) mpt_config_default((cfg), sizeof *(cfg))

/* ---- Context ----------------------------------------------------------------- */

/*
 * Creates a context. ev_loop is a `struct ev_loop *` the context borrows (it
 * must outlive the context), or NULL to create one owned by the context (the
 * epoll backend where available). cfg may be NULL for all defaults; it is
 * copied (strings included). Errors: MPT_EINVAL, MPT_ENOMEM, MPT_ENOTFOUND
 * (unknown scheduler, congestion or tcp_congestion name), MPT_ESYS.
 */
MPT_EXPORT int mpt_ctx_new(struct mpt_ctx **out, void *ev_loop, const struct mpt_config *cfg);

/* Aborts every connection, closes every listener, frees the context (and its
 * loop if it owns it). No callback is called. ctx may be NULL. */
MPT_EXPORT void mpt_ctx_free(struct mpt_ctx *ctx);

/* The `struct ev_loop *` the context runs on. */
MPT_EXPORT void *mpt_ctx_loop(struct mpt_ctx *ctx);

/* Runs the loop: timeout_ms < 0 until there is nothing left to do (or
 * mpt_ctx_break() is called), 0 one non-blocking pass, > 0 at most that
 * long. Returns 0, MPT_EINVAL, or MPT_ESTATE when called from a callback. */
MPT_EXPORT int mpt_ctx_run(struct mpt_ctx *ctx, int timeout_ms);
/* Makes the innermost mpt_ctx_run() return after the current callback. */
MPT_EXPORT void mpt_ctx_break(struct mpt_ctx *ctx);

/*
 * Driving libmpt from another event loop (Linux): mpt_ctx_fd() returns a file
 * descriptor (owned by the context; do not close or read it) that is readable
 * whenever libmpt has I/O to service. Wait for it to be readable or for
 * mpt_ctx_timeout() milliseconds (-1: no timer pending) to pass, then call
 * mpt_ctx_process(). Ask mpt_ctx_timeout() again after every libmpt call.
 * mpt_ctx_fd errors: MPT_ENOTSUP (not Linux), MPT_ESYS.
 */
MPT_EXPORT int mpt_ctx_fd(struct mpt_ctx *ctx);
MPT_EXPORT int mpt_ctx_timeout(struct mpt_ctx *ctx);
MPT_EXPORT int mpt_ctx_process(struct mpt_ctx *ctx);

/*
 * Wakes the context up from any thread (the only libmpt function that may
 * be called off the loop thread, as long as ctx is not being freed): a
 * blocked mpt_ctx_run() returns, mpt_ctx_fd() becomes readable, and
 * mpt_ctx_next_event() reports MPT_EVENT_WAKEUP once. Wake-ups that arrive
 * before the loop ran are coalesced into one. Errors: MPT_EINVAL.
 */
MPT_EXPORT int mpt_ctx_wakeup(struct mpt_ctx *ctx);

/*
 * Counters of what the context's limits did (doc/security.md, "Limits").
 * Set size = sizeof first; the struct grows at its end.
 */
struct mpt_ctx_stats {
    size_t size;
    uint64_t conns;                   /* connections now (both roles) */
    uint64_t pending;                 /* accepted TCP connections before HELLO / JOIN now */
    uint64_t refused_max_connections; /* accepts closed: max_connections reached */
    uint64_t refused_per_addr;        /* HELLOs refused: max_conns_per_addr reached */
    uint64_t pending_evicted;         /* pending closed for a newer: max_pending_handshakes */
    uint64_t pending_timed_out;       /* pending closed at handshake_timeout_ms */
};

/* Fills st (up to st->size). 0 or MPT_EINVAL (NULL, size too small). */
MPT_EXPORT int mpt_ctx_get_stats(struct mpt_ctx *ctx, struct mpt_ctx_stats *st);

/* ---- Events without callbacks ------------------------------------------------ */

/*
 * The pull-style alternative to callbacks, for language bindings and foreign
 * loops: a socket created or accepted with cb == NULL (or given NULL with
 * mpt_set_callbacks) and a listener created with cb == NULL queue their
 * events in the context instead of calling back. After each mpt_ctx_run()
 * or mpt_ctx_process(), call mpt_ctx_next_event() until it returns
 * MPT_EAGAIN. Events of one socket are coalesced: each kind is pending at
 * most once, so the queue never holds more than one entry per socket and
 * listener, and reports them in this order: CONNECTED, SUBFLOWS, READABLE,
 * WRITABLE, CLOSED. Like the callbacks they are edge-triggered hints:
 * READABLE means call mpt_recv() until MPT_EAGAIN; a hint may turn out to
 * have nothing behind it. A socket released with mpt_close()/mpt_abort()
 * loses its pending events.
 */
enum mpt_ctx_event_type {
    MPT_EVENT_ACCEPT = 1,  /* listener: call mpt_accept() until MPT_EAGAIN */
    MPT_EVENT_CONNECTED,   /* client handshake done (status 0) or failed (status < 0) */
    MPT_EVENT_SUBFLOWS,    /* a subflow went up or down, or the peer advertised an
                              address: mpt_get_subflows() tells which */
    MPT_EVENT_READABLE,
    MPT_EVENT_WRITABLE,
    MPT_EVENT_CLOSED,      /* status: 0 after a graceful close, else why it was aborted */
    MPT_EVENT_WAKEUP,      /* mpt_ctx_wakeup() was called */
    MPT_EVENT_BUDGET_SPENT, /* a path's byte budget is spent (mpt_set_path_budget):
                               mpt_get_subflows() tells which (budget_spent); reported
                               after SUBFLOWS, before READABLE */
};

/* Filled by mpt_ctx_next_event(); set size = sizeof first (it grows at its
 * end, like struct mpt_info). */
struct mpt_ctx_event {
    size_t size;
    enum mpt_ctx_event_type type;
    int status;                    /* CONNECTED, CLOSED */
    struct mpt_socket *socket;     /* NULL for ACCEPT and WAKEUP */
    struct mpt_listener *listener; /* ACCEPT */
    void *user;                    /* the socket's or listener's user pointer */
};

/* Takes the next event: 0 (ev filled), MPT_EAGAIN (none), MPT_EINVAL. */
MPT_EXPORT int mpt_ctx_next_event(struct mpt_ctx *ctx, struct mpt_ctx_event *ev);

/* ---- Tracing ------------------------------------------------------------------ */

/*
 * An optional trace of every subflow event, write decision, reinjection and
 * state change as JSON lines ("qlog in spirit"): one object per line with at
 * least "t" (ms since the context started), "conn" (connection number) and
 * "ev" (event name). Off by default; when off it costs one branch per event.
 * mpt_set_trace_file: path is opened for appending (NULL turns the trace
 * off). mpt_set_trace_callback: line is NUL-terminated without the newline,
 * owned by libmpt and valid only during the call (NULL cb turns it off).
 */
typedef void (*mpt_trace_cb)(const char *line, size_t len, void *user);
MPT_EXPORT int mpt_set_trace_file(struct mpt_ctx *ctx, const char *path);
MPT_EXPORT int mpt_set_trace_callback(struct mpt_ctx *ctx, mpt_trace_cb cb, void *user);

/* ---- Callbacks ------------------------------------------------------------------ */

enum mpt_state {
    MPT_STATE_CONNECTING = 0, /* resolving, connecting, handshaking */
    MPT_STATE_ESTABLISHED,    /* send and recv work */
    MPT_STATE_CLOSING,        /* a DATA_FIN was sent or received */
    MPT_STATE_CLOSED,         /* graceful close finished */
    MPT_STATE_ABORTED,        /* error, FASTCLOSE, or every path lost */
};

enum mpt_subflow_state {
    MPT_SUBFLOW_CONNECTING = 0, /* TCP connect in progress */
    MPT_SUBFLOW_HANDSHAKE,      /* HELLO / JOIN exchange */
    MPT_SUBFLOW_ESTABLISHED,    /* carries data */
    MPT_SUBFLOW_CLOSING,        /* SUBFLOW_CLOSE sent or received */
    MPT_SUBFLOW_FAILED,         /* failed (fail_error says why) */
    MPT_SUBFLOW_CLOSED,         /* ended cleanly */
};

/* "connecting", "established", "closing", "closed", "aborted"; "unknown"
 * for any other value. Static strings owned by the library. */
MPT_EXPORT const char *mpt_state_name(enum mpt_state state);
/* "connecting", "handshake", "established", "closing", "failed", "closed";
 * "unknown" for any other value. Static. */
MPT_EXPORT const char *mpt_subflow_state_name(enum mpt_subflow_state state);

/*
 * A path's (client) or subflow's (server) priority tier: which subflows
 * carry data (doc/policy.md). The peer is told (PRIO), so that its data
 * follows the same tiers. PRIMARY and BACKUP have the values of
 * mpt_set_backup's 0 and 1.
 */
enum mpt_priority {
    MPT_PRIORITY_PRIMARY = 0,   /* carries data (the default) */
    MPT_PRIORITY_BACKUP = 1,    /* only while no primary or secondary subflow is usable */
    MPT_PRIORITY_SECONDARY = 2, /* only while every usable primary is full (saturated),
                                   or none is usable */
    MPT_PRIORITY_NEVER = 3,     /* no data at all, only control frames */
};

/* One subflow as seen by mpt_get_subflows() and the subflow callbacks. It
 * grows at its end in later versions: arrays of it are passed with their
 * element size (mpt_get_subflows is a macro that does that), and callbacks
 * may read only the fields their program knows. */
struct mpt_subflow_info {
    int id;                          /* subflow id, stable: never reused within the
                                        connection (the first subflow is 1) */
    int path_id;                     /* local path (mpt_add_path) or -1 (server side) */
    enum mpt_subflow_state state;
    struct sockaddr_storage local;   /* family AF_UNSPEC if unknown */
    struct sockaddr_storage remote;
    char ifname[16];                 /* bound interface, or "" */
    int backup;
    uint64_t rtt_us;                 /* kernel smoothed RTT */
    uint64_t rttvar_us;
    uint32_t cwnd_bytes;             /* kernel cwnd * mss */
    uint32_t total_retrans;          /* kernel */
    uint64_t bytes_sent;             /* payload handed to this subflow */
    uint64_t bytes_acked;            /* of that, acknowledged at connection level */
    int fail_error;                  /* MPT_E* why it failed, or 0 */
    uint32_t fail_reason;            /* wire reason code, or 0 */
    /* Added after 0.1.0 (doc/abi.md): */
    int sys_errno;                   /* the errno behind fail_error (connect, bind,
                                        SO_BINDTODEVICE, read, write...), or 0 */
    uint32_t failures;               /* client: consecutive failed attempts of this
                                        (path, server address) slot; 0 once one is up */
    int retry_ms;                    /* client, record of a failed slot: ms until the next
                                        attempt; -1 if none is scheduled (or a live subflow) */
    uint64_t bytes_received;         /* DATA payload received on it (duplicates included) */
    enum mpt_priority priority;      /* its tier (mpt_set_priority); backup is set for
                                        BACKUP and NEVER */
    uint64_t budget_bytes;           /* mpt_set_path_budget, 0: none */
    uint64_t budget_used;            /* DATA payload bytes counted against it (the path's,
                                        incl. earlier subflows and reinjections) */
    uint64_t rate_cap;               /* mpt_set_path_rate, bytes/s, 0: none */
    int budget_spent;                /* 1 once the budget was reached (tier BACKUP) */
};

/* Connection totals, mpt_get_info(). */
struct mpt_info {
    size_t size;                 /* set by the caller to sizeof(struct mpt_info) */
    enum mpt_state state;
    int error;                   /* MPT_E* once aborted, else 0 */
    uint64_t bytes_sent;         /* payload handed to subflows, incl. reinjections */
    uint64_t bytes_acked;        /* acknowledged by the peer (DATA_ACK) */
    uint64_t bytes_received;     /* in order, delivered to the receive buffer */
    uint64_t bytes_reinjected;
    uint64_t reinjections;
    size_t snd_buffered;         /* bytes in the send buffer */
    size_t rcv_buffered;         /* receive memory in use */
    uint32_t subflows;           /* subflows that exist (any state but closed) */
    uint32_t subflows_established;
    /* Added after 0.1.0 (doc/abi.md): */
    int sys_errno;               /* the errno behind `error` when a system call's
                                    failure ended the connection, else 0 */
    uint64_t unacked_bytes;      /* written by the application, not yet acknowledged by the
                                    peer (+1 for an unacknowledged end of stream): 0 means
                                    everything sent has arrived */
    uint64_t subflows_opened;    /* subflows that were ever established ... */
    uint64_t subflows_failed;    /* ... and that failed (not closed cleanly), ever */
    const char *scheduler;       /* the scheduler now in use ("minrtt", ...) and the ... */
    const char *congestion;      /* ... congestion control ("uncoupled", "lia", ...):
                                    static strings the library owns, never freed */
    /* Receive side: how long DATA frames waited in the reorder buffer for
     * earlier bytes (0 for a frame that arrived in order), microseconds,
     * over reorder_frames frames; percentiles within about 19%. */
    uint64_t reorder_frames;
    uint64_t reorder_p50_us, reorder_p99_us, reorder_max_us;
    const char *peer_text;       /* what the peer said when it refused or ended the
                                    connection (the text of its last ERROR or FASTCLOSE,
                                    e.g. "TLS required by this server"), printable ASCII,
                                    or NULL; owned by the socket, valid until the next
                                    libmpt call on it or mpt_close() / mpt_abort() */
    /* Buffer auto-tuning (mpt_config.rcvbuf_initial): */
    size_t rcv_window;           /* the receive window the connection may open now */
    size_t rcv_allocated;        /* receive memory allocated now (ring + bookkeeping);
                                    0 while idle */
    size_t snd_allocated;        /* send buffer memory allocated now; 0 while idle */
};

/*
 * TLS on a connection's subflows (mpt_config.tls), from mpt_get_tls_info().
 * Set size = sizeof(struct mpt_tls_info) first; it grows like mpt_info.
 */
struct mpt_tls_info {
    size_t size;
    uint32_t full_handshakes;    /* handshakes completed in full (certificate or PSK key
                                    exchange): 1 per connection ... */
    uint32_t resumed_handshakes; /* ... and resumed from the first subflow's session
                                    ticket: every join (one round trip) */
    const char *suite;           /* the first subflow's cipher suite, or "" (static string) */
    const char *error;           /* why the last failed TLS handshake failed (e.g. the
                                    certificate's verification result), or NULL; valid
                                    until mpt_close() or mpt_abort() */
};

/* Fills info (size set by the caller). 0, or MPT_EINVAL. A connection
 * without TLS reports zeros, "" and NULL. */
MPT_EXPORT int mpt_get_tls_info(struct mpt_socket *s, struct mpt_tls_info *info);

/*
 * Per-connection callbacks; any may be NULL. `user` is the pointer given with
 * them. The subflow_info and sockaddr pointers are valid only during the call.
 * A callback may call any libmpt function on its socket, including
 * mpt_close() and mpt_abort() (no callback for that socket follows then),
 * but not mpt_ctx_free() nor the blocking layer.
 *  connected   the multipath handshake finished (client) — status 0 — or
 *              failed — status < 0, and `closed` follows.
 *  readable    data or end of stream can be read: call mpt_recv until it
 *              returns MPT_EAGAIN (edge-triggered).
 *  writable    send-buffer space is available again after MPT_EAGAIN.
 *  closed      the connection is over: status 0 after a graceful close,
 *              else why it was aborted. The handle stays valid until the
 *              application calls mpt_close() or mpt_abort().
 */
struct mpt_callbacks {
    void (*connected)(struct mpt_socket *s, int status, void *user);
    void (*readable)(struct mpt_socket *s, void *user);
    void (*writable)(struct mpt_socket *s, void *user);
    void (*subflow_up)(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user);
    void (*subflow_down)(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user);
    void (*addr_learned)(struct mpt_socket *s, const struct sockaddr *addr, socklen_t len,
                         int addr_id, void *user);
    void (*closed)(struct mpt_socket *s, int status, void *user);
    /* Added after 0.1.0 (doc/abi.md): a path's byte budget (mpt_set_path_budget)
     * is spent; the path is BACKUP now. Once per budget set. */
    void (*budget_spent)(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user);
};

/*
 * Replaces a socket's callbacks (copied) and user pointer. cb may be NULL:
 * the socket then reports its events through mpt_ctx_next_event() instead.
 * struct mpt_callbacks grows at its end in later versions: the
 * mpt_set_callbacks(), mpt_connect() and mpt_accept() macros pass the
 * caller's sizeof(struct mpt_callbacks) to the _sized functions, which take
 * the members both sides know (members only this library knows stay NULL)
 * and refuse (MPT_EINVAL) a size below the 0.1.0 struct or a larger struct
 * with a non-NULL member this library cannot call. The unsized symbols stay
 * for binaries built against 0.1.0.
 */
MPT_EXPORT int mpt_set_callbacks_sized(struct mpt_socket *s, const struct mpt_callbacks *cb,
                                       size_t cb_size, void *user);
MPT_EXPORT int mpt_set_callbacks(struct mpt_socket *s, const struct mpt_callbacks *cb, void *user);
#define mpt_set_callbacks(s, cb, user)                                                       \
    mpt_set_callbacks_sized((s), (cb), sizeof(struct mpt_callbacks), (user))
MPT_EXPORT void *mpt_get_user(const struct mpt_socket *s);

/* ---- Client --------------------------------------------------------------------- */

/*
 * Starts a connection to host (a name or a numeric IPv4/IPv6 address) and
 * port. paths lists the local paths, each an interface name ("eth1", bound
 * with SO_BINDTODEVICE) or a source address ("192.0.2.7", "2001:db8::7"),
 * optionally followed by its tier: "/primary" (the default), "/secondary",
 * "/backup" or "/never" (enum mpt_priority). An interface that does not exist
 * is MPT_ENODEV and a source address that is not local MPT_EADDRNOTAVAIL, at
 * once. With npaths == 0 the context's
 * configuration decides (one unbound path, or fullmesh). The first path
 * carries the handshake; the others join once it is done, and every path
 * also joins every address the server advertises. Failed subflows are
 * reported (subflow_down, with the cause), traced, and re-established with
 * exponential backoff while the connection lives; mpt_get_subflows() shows
 * each waiting slot's last error and when it retries.
 * Name resolution never blocks the loop, and a pending lookup keeps it
 * running (ev_run / mpt_ctx_run(ctx, -1) do not return before the result is
 * delivered). The strings are copied.
 * Returns 0 and *out (owned by the application until mpt_close/mpt_abort);
 * the result arrives in the `connected` callback. Errors: MPT_EINVAL (NULL
 * ctx/host/out, port 0, empty or unparsable path), MPT_ENODEV (no such
 * interface), MPT_EADDRNOTAVAIL (source address not local), MPT_ENOBUFS (too
 * many connections), MPT_ENOMEM, MPT_ERESOLVE (numeric host invalid),
 * MPT_EMFILE, MPT_ESYS.
 */
MPT_EXPORT int mpt_connect(struct mpt_ctx *ctx, const char *host, uint16_t port,
                           const char *const *paths, size_t npaths,
                           const struct mpt_callbacks *cb, void *user, struct mpt_socket **out);
MPT_EXPORT int mpt_connect_sized(struct mpt_ctx *ctx, const char *host, uint16_t port,
                                 const char *const *paths, size_t npaths,
                                 const struct mpt_callbacks *cb, size_t cb_size, void *user,
                                 struct mpt_socket **out);
#define mpt_connect(ctx, host, port, paths, npaths, cb, user, out)                           \
    mpt_connect_sized((ctx), (host), (port), (paths), (npaths), (cb),                        \
                      sizeof(struct mpt_callbacks), (user), (out))

/* ---- Server ------------------------------------------------------------------------- */

/* Called when mpt_accept() has a connection to return (edge-triggered: accept
 * until MPT_EAGAIN). */
typedef void (*mpt_accept_cb)(struct mpt_listener *l, void *user);

/*
 * Listens on port (0: an ephemeral port, the same on every address) at each
 * of addrs (numeric; NULL or naddrs == 0: the IPv6 and IPv4 wildcard). The
 * other addresses are advertised to clients (ADD_ADDR) so that they join
 * them. Errors: MPT_EINVAL, MPT_ENOMEM, MPT_ERESOLVE (not a numeric
 * address), MPT_ESYS (bind/listen failed, e.g. port in use).
 */
MPT_EXPORT int mpt_listen(struct mpt_ctx *ctx, const char *const *addrs, size_t naddrs,
                          uint16_t port, mpt_accept_cb cb, void *user,
                          struct mpt_listener **out);
/* The bound port. */
MPT_EXPORT int mpt_listener_port(const struct mpt_listener *l);
/*
 * Replaces the addresses the listener advertises (ADD_ADDR) to connections
 * it accepts from now on: by default its other listening addresses, which
 * behind a load balancer are the wrong ones (advertise the balancer's).
 * Each is numeric, "ADDR", "V4:PORT" or "[V6]:PORT" (without a port: the
 * listener's); naddrs 0 advertises nothing; at most 8. Copied. Errors:
 * MPT_EINVAL, MPT_ERESOLVE (not numeric, or a bad port).
 */
MPT_EXPORT int mpt_listener_set_advertised(struct mpt_listener *l, const char *const *addrs,
                                           size_t naddrs);
/* Stops listening; connections already accepted are not affected, pending
 * ones are aborted. l may be NULL. */
MPT_EXPORT void mpt_listener_close(struct mpt_listener *l);

/*
 * Returns an established connection (0 and *out) or MPT_EAGAIN. cb/user are
 * installed before any callback can fire (cb NULL: events through
 * mpt_ctx_next_event, which reports READABLE and WRITABLE at once). Data may already be readable: call
 * mpt_recv once after accepting. Errors: MPT_EINVAL, MPT_EAGAIN.
 */
MPT_EXPORT int mpt_accept(struct mpt_listener *l, const struct mpt_callbacks *cb, void *user,
                          struct mpt_socket **out);
MPT_EXPORT int mpt_accept_sized(struct mpt_listener *l, const struct mpt_callbacks *cb,
                                size_t cb_size, void *user, struct mpt_socket **out);
#define mpt_accept(l, cb, user, out)                                                         \
    mpt_accept_sized((l), (cb), sizeof(struct mpt_callbacks), (user), (out))

/* ---- Data ----------------------------------------------------------------------------- */

/*
 * Copies up to len bytes into the connection's send buffer; the caller's
 * buffer is free again when it returns. Returns the count (> 0), MPT_EAGAIN
 * (buffer full: wait for `writable`), MPT_ESTATE (not yet established),
 * MPT_EPIPE (after mpt_shutdown), MPT_EINVAL, or the connection's error.
 */
MPT_EXPORT ssize_t mpt_send(struct mpt_socket *s, const void *buf, size_t len);

/* Per-message policy of mpt_send_msg (doc/policy.md). Size-versioned: set
 * size = sizeof(struct mpt_send_opts) and zero what you do not use. */
struct mpt_send_opts {
    size_t size;
    uint32_t redundant_below; /* len < this: the bytes go on two subflows at once */
    uint32_t deadline_ms;     /* non-zero: wanted at the peer's engine this long after the
                                 call; the scheduler copies the bytes to a second subflow
                                 when its estimate says the first would be late (or is
                                 lossy and one retransmission would be). Never a drop: the
                                 stream stays reliable and in order, late bytes still
                                 arrive */
    uint32_t flags;           /* 0: none defined yet (others: MPT_EINVAL) */
};

/*
 * mpt_send with a per-message policy for the bytes this call accepts (o may
 * be NULL: like mpt_send). Same returns as mpt_send, and MPT_EINVAL for a
 * bad o (size too small, unknown flags, non-zero bytes beyond what this
 * library knows).
 */
MPT_EXPORT ssize_t mpt_send_msg(struct mpt_socket *s, const void *buf, size_t len,
                                const struct mpt_send_opts *o);

/*
 * Copies up to len received bytes into buf. Returns the count (> 0), 0 at the
 * end of the stream, MPT_EAGAIN (wait for `readable`), MPT_ESTATE (not yet
 * established), MPT_EINVAL, or the connection's error.
 */
MPT_EXPORT ssize_t mpt_recv(struct mpt_socket *s, void *buf, size_t len);

/* No more data will be sent; the peer reads end of stream after the last
 * byte. Errors: MPT_EINVAL, MPT_ESTATE, MPT_EPIPE (already shut down). */
MPT_EXPORT int mpt_shutdown(struct mpt_socket *s);

/* Releases the handle: sends what is buffered, closes gracefully in the
 * background, then frees everything. No callback is called afterwards and
 * received data is discarded. Returns 0 or MPT_EINVAL. */
MPT_EXPORT int mpt_close(struct mpt_socket *s);

/* Releases the handle at once: FASTCLOSE to the peer, buffered data dropped,
 * every subflow closed. Returns 0 or MPT_EINVAL. */
MPT_EXPORT int mpt_abort(struct mpt_socket *s);

/* ---- Paths ------------------------------------------------------------------------------ */

/*
 * Client: adds a local path while connected (same syntax as mpt_connect's
 * paths); subflows to every known server address follow. Returns the path id
 * (>= 0) or MPT_EINVAL, MPT_ENODEV, MPT_EADDRNOTAVAIL (as mpt_connect),
 * MPT_ETOOMANY, MPT_ESTATE (server side or closed).
 */
MPT_EXPORT int mpt_add_path(struct mpt_socket *s, const char *path);
/* Closes the path's subflows and stops re-creating them. MPT_ENOTFOUND. */
MPT_EXPORT int mpt_remove_path(struct mpt_socket *s, int path_id);
/* Marks a path's subflows (client: path_id) backup (1) or regular (0). On
 * the server side path_id is a subflow's id (struct mpt_subflow_info.id).
 * The same as mpt_set_priority() with MPT_PRIORITY_BACKUP or _PRIMARY. */
MPT_EXPORT int mpt_set_backup(struct mpt_socket *s, int path_id, int backup);
/* Sets the tier of a path (client: path_id; its subflows now and later) or
 * of one subflow (server: its id), at any time while the connection is
 * open; the peer is told with PRIO (an older peer learns BACKUP for BACKUP
 * and NEVER, regular for the others). Errors: MPT_EINVAL (bad prio),
 * MPT_ENOTFOUND (no such path or subflow), MPT_ESTATE (ended). */
MPT_EXPORT int mpt_set_priority(struct mpt_socket *s, int path_id, enum mpt_priority prio);
/*
 * Metered paths (doc/policy.md). A byte budget for a path (client: path_id,
 * its subflows now and later, counted together; server: a subflow's id):
 * DATA payload bytes handed to it, reinjections included, count; a frame is
 * cut to what is left, so the path carries at most `bytes` while it is above
 * BACKUP. Reached: the path drops to BACKUP (the peer is told with PRIO) and
 * budget_spent is called (or MPT_EVENT_BUDGET_SPENT queued) once. Setting a
 * budget again restarts the count from 0 (the tier stays: restore it with
 * mpt_set_priority); 0 = unlimited. A rate cap: at most bytes_per_s of DATA handed to the path
 * (a token bucket, 50 ms of burst); 0 = unlimited. At any time while the
 * connection is open (a client: from mpt_connect() on). Errors: MPT_EINVAL (rate above 2^34), MPT_ENOTFOUND
 * (no such path or subflow), MPT_ESTATE (ended).
 */
MPT_EXPORT int mpt_set_path_budget(struct mpt_socket *s, int path_id, uint64_t bytes);
MPT_EXPORT int mpt_set_path_rate(struct mpt_socket *s, int path_id, uint64_t bytes_per_s);
/* Chooses the connection's scheduler by name: "minrtt" (the default),
 * "roundrobin", "redundant", "blest", "ecf", "weighted" (doc/design.md).
 * Works on either side and at any time while the connection is open: the
 * next byte is scheduled by the new one, nothing queued is lost or sent
 * twice. The context-wide default is mpt_config.scheduler. Errors:
 * MPT_EINVAL, MPT_ENOTFOUND (unknown name), MPT_ESTATE (the connection has
 * ended). */
MPT_EXPORT int mpt_set_scheduler(struct mpt_socket *s, const char *name);
/* Sets the connection's service mode (enum mpt_service_mode), either side,
 * at any time while it is open; the context-wide default is
 * mpt_config.service_mode. Errors: MPT_EINVAL, MPT_ESTATE (ended). */
MPT_EXPORT int mpt_set_mode(struct mpt_socket *s, enum mpt_service_mode mode);
/* Chooses the connection-level congestion control by name: "uncoupled"
 * (each subflow's own TCP window, the default), "lia" (RFC 6356), "olia",
 * "balia". Like mpt_set_scheduler: either side, any time while open, and
 * the same errors; the context-wide default is mpt_config.congestion.
 * Coupling caps what libmpt offers each subflow; the kernel's own TCP
 * congestion control (mpt_config.tcp_congestion) still runs below it. */
MPT_EXPORT int mpt_set_cc(struct mpt_socket *s, const char *name);

/* ---- Introspection ------------------------------------------------------------------- */

/* Fills info (set info->size = sizeof *info first): the fields both sides
 * know, zeros for fields beyond them; info->size becomes the bytes filled.
 * MPT_EINVAL. */
MPT_EXPORT int mpt_get_info(struct mpt_socket *s, struct mpt_info *info);
/* Fills up to n entries of sf (caller's array) with the subflows that exist,
 * then (client) one record per (path, server address) slot whose last
 * subflow failed and that has none now: state MPT_SUBFLOW_FAILED (or
 * _CLOSED if it ended without an error), the failed subflow's id and
 * counters, fail_error / sys_errno, failures and retry_ms. Returns how many
 * entries there are (may exceed n). sf may be NULL when n == 0.
 * The array's elements are elem_size bytes apart: the caller's
 * sizeof(struct mpt_subflow_info), which the mpt_get_subflows() macro
 * passes; fields the library does not know are zeroed. elem_size below the
 * 0.1.0 layout is MPT_EINVAL. */
MPT_EXPORT int mpt_get_subflows_sized(struct mpt_socket *s, struct mpt_subflow_info *sf, size_t n,
                                      size_t elem_size);
/* The 0.1.0 entry point (entries of the 0.1.0 layout), kept for binaries
 * built against it; programs compiled now call mpt_get_subflows_sized. */
MPT_EXPORT int mpt_get_subflows(struct mpt_socket *s, struct mpt_subflow_info *sf, size_t n);
#define mpt_get_subflows(s, sf, n)                                                           \
    mpt_get_subflows_sized((s), (sf), (n), sizeof(struct mpt_subflow_info))

/* ---- Blocking layer -------------------------------------------------------------------- */

/*
 * For simple programs and language bindings: each call runs the context's
 * loop until it completes or timeout_ms passes (< 0: no limit), then returns.
 * Never call them from a callback (MPT_ESTATE). On timeout they return
 * MPT_ETIMEDOUT; mpt_blocking_send_all then may have queued part of the data.
 */
MPT_EXPORT int mpt_blocking_connect(struct mpt_ctx *ctx, const char *host, uint16_t port,
                                    const char *const *paths, size_t npaths, int timeout_ms,
                                    struct mpt_socket **out);
MPT_EXPORT int mpt_blocking_accept(struct mpt_listener *l, int timeout_ms,
                                   struct mpt_socket **out);
/* Returns len, or an error (how much was queued is lost to the caller). */
MPT_EXPORT ssize_t mpt_blocking_send_all(struct mpt_socket *s, const void *buf, size_t len,
                                         int timeout_ms);
/* Returns > 0 bytes, 0 at end of stream, or an error. */
MPT_EXPORT ssize_t mpt_blocking_recv(struct mpt_socket *s, void *buf, size_t len,
                                     int timeout_ms);
/* Shuts down, waits until the connection is closed (peer's end of stream
 * included; data still arriving is discarded), then releases the handle as
 * mpt_close() does. If timeout_ms passes first, the connection is aborted
 * instead, as mpt_abort() does (FASTCLOSE to the peer, unsent and
 * unacknowledged data dropped): a bounded close does not go on in the
 * background. The handle is released in every case. Returns 0,
 * MPT_ETIMEDOUT (then aborted), MPT_EINVAL, MPT_ESTATE, or the error that
 * ended the connection. */
MPT_EXPORT int mpt_blocking_close(struct mpt_socket *s, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
