/*
 * What every libmpt tool shares (mpt-cat, mpt-copy, mpt-stream, mpt-proxy):
 * strict argument parsing, the common options (paths, scheduler, congestion
 * control, statistics, verbosity), error lines that name where and why,
 * per-subflow statistics, and putting standard input back the way it was.
 * One copy, linked into each tool; a tool's own options stay in its file.
 */
#ifndef MPT_TOOL_H
#define MPT_TOOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <mpt/mpt.h>

/* Exit statuses every tool documents (each may add its own from 3 up). */
enum {
    TOOL_EXIT_OK = 0,     /* the job was done completely */
    TOOL_EXIT_FAIL = 1,   /* it was not: connection, transfer or I/O error */
    TOOL_EXIT_USAGE = 2,  /* bad arguments; nothing was attempted */
};

#define TOOL_MAX_PATHS 16
#define TOOL_MAX_ADDRS 8

struct tool {
    const char *name;                   /* "mpt-cat": prefixes every message */
    const char *paths[TOOL_MAX_PATHS];  /* --path IF | ADDR [/backup] */
    size_t npaths;
    int all_paths;                      /* --all-paths: every local address (fullmesh) */
    const char *sched, *cc, *tcp_cc;    /* --scheduler, --cc, --tcp-cc */
    int mode;                           /* --mode: enum mpt_service_mode */
    const char *trace;                  /* --trace FILE */
    int verbose;                        /* -v: connection and subflow events on stderr */
    int stats;                          /* --stats: per-subflow table at the end */
    uint32_t server_id;                 /* --server-id: routing id prefix (load balancer) */
    const char *advertise[TOOL_MAX_ADDRS]; /* --advertise ADDR[:PORT] instead of our own */
    size_t nadvertise;
    double t0;                          /* tool_now() at start, for -v times */
    /* TLS on every subflow (--tls-*): any of them turns it on */
    int tls;
    const char *tls_ca, *tls_cert, *tls_key, *tls_name, *tls_psk_id;
    uint8_t tls_psk[64];                /* --tls-psk HEX */
    size_t tls_psk_len;
    int tls_insecure;                   /* --tls-insecure */
    uint64_t budget[TOOL_MAX_PATHS];    /* --budget PATH=SIZE, per --path index (0: none) */
    uint64_t rate_cap[TOOL_MAX_PATHS];  /* --rate-cap PATH=RATE, bytes/s (0: none) */
    void (*help)(void);                 /* the tool's --help text on stdout */
    void (*usage)(FILE *f);             /* its usage lines, after a usage error */
};

/* Client, right after mpt_connect(): --budget and --rate-cap on their paths
 * (mpt_set_path_budget(3), mpt_set_path_rate(3)); a refusal is reported. */
void tool_apply_meters(const struct tool *t, struct mpt_socket *s);

/* Initialises t for the tool called name. */
void tool_init(struct tool *t, const char *name);

/*
 * Takes argv[*i] if it is a common option (with its value, argv[*i + 1]);
 * -h/--help (t->help) and --version print on stdout and exit 0 here:
 * returns 1 and advances *i past what it took, 0 if argv[*i] is not a
 * common option, or -1 after printing why it is wrong (the caller exits
 * TOOL_EXIT_USAGE).
 */
int tool_common_option(struct tool *t, int argc, char **argv, int *i);
/* "NAME: " fmt (one %s for arg), then t->usage on stderr; returns
 * TOOL_EXIT_USAGE for the caller to return. */
int tool_usage_error(const struct tool *t, const char *fmt, const char *arg);
/* The common options' lines for a tool's --help. */
void tool_common_help(FILE *f);
/* "NAME (libmpt VERSION)" on stdout, for --version. */
void tool_version(const struct tool *t);

/* Strict numbers: the whole string, in range; -1 after printing why not. */
int tool_parse_port(const struct tool *t, const char *what, const char *s, uint16_t *out);
int tool_parse_u64(const struct tool *t, const char *what, const char *s, uint64_t min,
                   uint64_t max, uint64_t *out);
/* A size with an optional K, M or G suffix (powers of 1024). */
int tool_parse_size(const struct tool *t, const char *what, const char *s, uint64_t *out);

/* After mpt_listen: what --advertise asked for. Prints why and returns the
 * error on failure. */
int tool_listener_setup(const struct tool *t, struct mpt_listener *l);

/* A context configured from the common options (loop: NULL for its own).
 * Prints why and returns the error on failure. */
int tool_ctx_new(const struct tool *t, void *loop, struct mpt_ctx **ctx);

/*
 * "NAME: WHERE: WHAT: MPT_E...: text (errno N: text)" on stderr. where is
 * host:port, a path or a file name; err a negative MPT_E* code; sys_errno
 * the errno behind it or 0.
 */
void tool_error(const struct tool *t, const char *where, const char *what, int err, int sys_errno);
/* The same for a failed system call on a file (errno). */
void tool_error_errno(const struct tool *t, const char *where, const char *what, int e);
/* The same with the errno the connection reported (mpt_get_info). */
void tool_conn_error(const struct tool *t, struct mpt_socket *s, const char *where,
                     const char *what, int err);

/* A message of -v with the time since start: "NAME: +1.234 s: ...". */
void tool_verbose(const struct tool *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "192.0.2.1:443" or "[2001:db8::1]:443" or "?" into buf. */
const char *tool_addr(const struct sockaddr_storage *ss, char *buf, size_t len);
/* The subflow callbacks' -v line: id, path, addresses, state, cause. */
void tool_subflow_event(const struct tool *t, const struct mpt_subflow_info *sf);

/* --stats: one line per subflow (addresses, RTT, bytes, retransmissions,
 * failures) and the connection's totals, to f. */
void tool_print_stats(const struct tool *t, FILE *f, struct mpt_socket *s);

/* Makes fd non-blocking and puts its flags back at exit (also on signals
 * that end the tool), so a terminal is never left non-blocking. */
int tool_nonblock_restored(int fd);

double tool_now(void);

/* mpt-copy */
/*
 * Bytes per path that survive a subflow's failure: mpt_get_subflows() may
 * drop a failed subflow's counters, so each subflow's last count (subflow ids
 * are never reused) is kept and summed into its path. A path is named by the
 * local address (sender: the client's paths) or the remote address (receiver:
 * where the peer's subflows come from), without the port.
 */
#define TOOL_PATHS_MAX_SUBFLOWS 128
struct tool_paths {
    size_t n;                           /* paths seen so far */
    struct {
        char label[64];
        uint64_t bytes;                 /* sum of its subflows' last counts */
        int up;                         /* an established subflow at the last sample */
    } path[TOOL_MAX_PATHS];
    size_t nsf;
    struct {
        int id;
        size_t path;
        uint64_t bytes;
    } sf[TOOL_PATHS_MAX_SUBFLOWS];
};
/* Samples s: bytes sent (by_remote 0) or received (by_remote 1) per path. */
void tool_paths_sample(struct tool_paths *p, struct mpt_socket *s, int by_remote);
/* "1.5 MiB" into buf. */
const char *tool_bytes(uint64_t n, char *buf, size_t len);

#endif

/* mpt-cat / mpt-stream */

/*
 * Makes standard input and standard output non-blocking and puts both
 * back at exit (also on SIGINT, SIGTERM and SIGHUP). Both flags are read
 * before either is changed: a terminal's fds 0 and 1 share one open file
 * description, so setting one sets the other, and the flags saved second
 * would otherwise be the changed ones. Returns -1 (errno) on failure.
 */
int tool_nonblock_stdio(void);

/*
 * Standard output is finished: its flags are put back and fd 1 becomes
 * /dev/null, so that a reader at the other end of a pipe sees its end of
 * file while the tool still runs (mpt-cat -l PORT | sort | ...). Left
 * alone when it is a terminal or the same file as standard input (a
 * socket from inetd), where closing it would end nothing or too much.
 */
void tool_release_stdout(void);
