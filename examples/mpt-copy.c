/*
 * mpt-copy: files and directory trees over libmpt, verified end to end.
 *
 *   mpt-copy [options] HOST PORT FILE|DIR...          send
 *   mpt-copy [options] -l [ADDR] PORT -o DESTDIR       receive one transfer
 *
 * The sender walks its arguments into a manifest (names, kinds, modes,
 * mtimes, sizes), sends it, and waits for the receiver's answer: the
 * receiver checks every name before it writes anything and, with
 * --resume, offers what it already has of each file with the SHA-256 of
 * that prefix. Then the sender streams each file (skipping a prefix whose
 * hash it could confirm), ending each with the SHA-256 of the whole file,
 * which the receiver recomputes before it renames the file into place.
 * The frame format is in doc/man/mpt-copy.1 (PROTOCOL); the receiver never
 * follows a symbolic link while writing (every directory is opened with
 * O_NOFOLLOW from the destination down).
 *
 * One loop (mpt_ctx_run) drives everything: callbacks only wake it up; the
 * main loop drains the connection both ways, reads or writes files, and
 * redraws the progress line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <mpt/mpt.h>

#include "tool.h"

/* Exit statuses beyond tool.h's 0, 1 and 2. */
enum {
    EXIT_REFUSED = 3,  /* the receiver refused an unsafe name or link */
    EXIT_CHECKSUM = 4, /* a file's SHA-256 did not match */
};

/* ---- the protocol (mpt-copy.1, PROTOCOL) ---------------------------------------- */

#define MAGIC "MPTCOPY"
#define PROTO_VERSION 1
#define FLAG_RESUME 1u
#define HDR 5                       /* type (1) + payload length (4, big-endian) */
#define MAX_PAYLOAD (1u << 20)
#define DATA_CHUNK (64u * 1024)
#define MAX_NAME 4096
#define MAX_ENTRIES 1000000
#define MAX_MANIFEST (256u << 20)  /* receiver memory for names and entries */

enum {
    FR_HELLO = 'H', FR_ENTRY = 'E', FR_MANIFEST_END = 'M', FR_START = 'S', FR_DATA = 'D',
    FR_END = 'F', FR_DONE = 'Z',                             /* sender -> receiver */
    FR_OFFER = 'O', FR_READY = 'R', FR_RESULT = 'K',         /* receiver -> sender */
    FR_ERROR = 'X',                                          /* either way, then close */
};
enum { KIND_FILE = 1, KIND_DIR = 2, KIND_LINK = 3 };

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define sha_starts(c) mbedtls_sha256_starts((c), 0)
#define sha_update(c, p, n) mbedtls_sha256_update((c), (p), (n))
#define sha_finish(c, out) mbedtls_sha256_finish((c), (out))
#else
#define sha_starts(c) mbedtls_sha256_starts_ret((c), 0)
#define sha_update(c, p, n) mbedtls_sha256_update_ret((c), (p), (n))
#define sha_finish(c, out) mbedtls_sha256_finish_ret((c), (out))
#endif

struct entry {
    char *name;                 /* relative, '/'-separated: what the receiver creates */
    char *src;                  /* sender: the local path */
    char *target;               /* symlinks */
    int kind;
    uint32_t mode;
    int64_t mtime_s;
    uint32_t mtime_ns;
    uint64_t size;
    uint64_t have;              /* resume: bytes the receiver offered */
    uint8_t have_hash[32];
    int offered_from_final;     /* receiver: the offer is the final file, not the .part */
    int done;
    mbedtls_sha256_context prefix; /* receiver: the hash of the offered prefix, to go on */
};

static struct entry *entries;
static size_t nentries, capentries;

/* ---- options and state -------------------------------------------------------- */

static struct tool T;
static int listen_mode, resume, quiet;
static const char *host, *listen_addr, *destdir, *log_path;
static uint16_t port;
static uint64_t interval_s = 1;
static char **posv, **sources;
static size_t nsources;

static struct mpt_ctx *ctx;
static struct mpt_socket *sock;
static int ev_connected, ev_connect_status, ev_closed, ev_close_status;
static char peer[300];

struct buf {
    uint8_t *p;
    size_t off, len, cap;
};
static struct buf in, out;
static uint64_t stream_queued; /* bytes mpt_send took */
static int peer_eof;

/* Progress. */
static double t_start, t_data0, t_last_tick, t_last_line, t_last_data;
static double stall_max, stall_at;
static uint64_t data_total, data_done, data_queued, data_skipped;
static uint64_t nfiles_total, nfiles_done;
static struct tool_paths paths;
#define HIST 8
static struct {
    double t;
    uint64_t total;
    uint64_t path[TOOL_MAX_PATHS];
} hist[HIST];
static unsigned nhist;
static FILE *log_file;
static int tty;
static int bar_drawn;

/* ---- small helpers ------------------------------------------------------------------ */

static void die_oom(void)
{
    fprintf(stderr, "%s: out of memory\n", T.name);
    exit(TOOL_EXIT_FAIL);
}

static void *xrealloc(void *p, size_t n)
{
    if ((p = realloc(p, n)) == NULL)
        die_oom();
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        die_oom();
    return d;
}

static void buf_reserve(struct buf *b, size_t more)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + more <= b->cap)
        return;
    if (b->off > 0) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + more > b->cap) {
        size_t c = b->cap ? b->cap : 65536;
        while (c < b->len + more)
            c *= 2;
        b->p = xrealloc(b->p, c);
        b->cap = c;
    }
}

static size_t buf_pending(const struct buf *b) { return b->len - b->off; }

static void put8(struct buf *b, uint8_t v)
{
    buf_reserve(b, 1);
    b->p[b->len++] = v;
}
static void put16(struct buf *b, uint16_t v)
{
    put8(b, (uint8_t)(v >> 8));
    put8(b, (uint8_t)v);
}
static void put32(struct buf *b, uint32_t v)
{
    put16(b, (uint16_t)(v >> 16));
    put16(b, (uint16_t)v);
}
static void put64(struct buf *b, uint64_t v)
{
    put32(b, (uint32_t)(v >> 32));
    put32(b, (uint32_t)v);
}
static void putbytes(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* A frame's header now, its length patched by frame_end. The mark is
 * relative to b->off: buf_reserve may move the pending bytes. */
static size_t frame_begin(struct buf *b, uint8_t type)
{
    size_t at;
    put8(b, type);
    at = b->len - b->off;
    put32(b, 0);
    return at;
}
static void frame_end(struct buf *b, size_t mark)
{
    size_t at = b->off + mark;
    uint32_t n = (uint32_t)(b->len - at - 4);
    b->p[at] = (uint8_t)(n >> 24);
    b->p[at + 1] = (uint8_t)(n >> 16);
    b->p[at + 2] = (uint8_t)(n >> 8);
    b->p[at + 3] = (uint8_t)n;
}

/* Reading a frame's payload; any read past its end sets bad. */
struct rd {
    const uint8_t *p;
    size_t n, off;
    int bad;
};
static uint64_t getn(struct rd *r, int bytes)
{
    uint64_t v = 0;
    if (r->n - r->off < (size_t)bytes) {
        r->bad = 1;
        return 0;
    }
    for (int i = 0; i < bytes; i++)
        v = v << 8 | r->p[r->off++];
    return v;
}
static const uint8_t *getbytes(struct rd *r, size_t n)
{
    if (r->n - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    r->off += n;
    return r->p + r->off - n;
}
/* A length-prefixed string, NUL-terminated into a new allocation. */
static char *getstr(struct rd *r)
{
    size_t n = (size_t)getn(r, 2);
    const uint8_t *p = getbytes(r, n);
    char *s;
    if (p == NULL)
        return NULL;
    s = xrealloc(NULL, n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    if (strlen(s) != n) { /* an embedded NUL */
        free(s);
        r->bad = 1;
        return NULL;
    }
    return s;
}

static void hex(const uint8_t h[32], char out_hex[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out_hex + 2 * i, 3, "%02x", h[i]);
}

static void clear_bar(void)
{
    if (bar_drawn) {
        fputs("\r\033[K", stderr);
        bar_drawn = 0;
    }
}

/* "mpt-copy: WHERE: WHAT: cause" for a failed system call. */
static void err_sys(const char *where, const char *what, int e)
{
    clear_bar();
    tool_error_errno(&T, where, what, e);
}

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
    va_list ap;
    clear_bar();
    fprintf(stderr, "%s: ", T.name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* An error frame to the peer: code (an exit status) and what happened. */
static void send_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_error(int code, const char *fmt, ...)
{
    char m[1024];
    va_list ap;
    size_t at;

    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    at = frame_begin(&out, FR_ERROR);
    put8(&out, (uint8_t)code);
    put16(&out, (uint16_t)strlen(m));
    putbytes(&out, m, strlen(m));
    frame_end(&out, at);
}

/* ---- libmpt glue ------------------------------------------------------------------- */

static void cb_connected(struct mpt_socket *s, int status, void *user)
{
    ev_connected = 1;
    ev_connect_status = status;
    mpt_ctx_break(ctx);
}
static void cb_wake(struct mpt_socket *s, void *user) { mpt_ctx_break(ctx); }
static void cb_subflow(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    if (T.verbose)
        clear_bar();
    tool_subflow_event(&T, sf);
}
static void cb_closed(struct mpt_socket *s, int status, void *user)
{
    ev_closed = 1;
    ev_close_status = status;
    mpt_ctx_break(ctx);
}
static const struct mpt_callbacks callbacks = {
    .connected = cb_connected,
    .readable = cb_wake,
    .writable = cb_wake,
    .subflow_up = cb_subflow,
    .subflow_down = cb_subflow,
    .closed = cb_closed,
};

/* Pushes out what libmpt takes; 1 if anything moved, or the connection's error. */
static int flush_out(void)
{
    int moved = 0;
    while (buf_pending(&out) > 0) {
        ssize_t n = mpt_send(sock, out.p + out.off, buf_pending(&out));
        if (n == MPT_EAGAIN)
            break;
        if (n < 0)
            return (int)n;
        out.off += (size_t)n;
        stream_queued += (uint64_t)n;
        moved = 1;
    }
    return moved;
}

/* Reads what has arrived (up to about 4 MiB ahead of the parser). */
static int fill_in(void)
{
    int moved = 0;
    while (!peer_eof && buf_pending(&in) < (4u << 20)) {
        buf_reserve(&in, 1u << 20);
        ssize_t n = mpt_recv(sock, in.p + in.len, in.cap - in.len);
        if (n == MPT_EAGAIN)
            break;
        if (n < 0)
            return (int)n;
        if (n == 0)
            peer_eof = 1;
        in.len += (size_t)n;
        moved = 1;
    }
    return moved;
}

/* The next complete frame in `in`: 1 (consumed), 0 (incomplete), -1 (too long). */
static int next_frame(uint8_t *type, struct rd *r)
{
    const uint8_t *p = in.p + in.off;
    size_t avail = buf_pending(&in);
    uint32_t n;

    if (avail < HDR)
        return 0;
    n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (n > MAX_PAYLOAD + 64)
        return -1;
    if (avail < HDR + n)
        return 0;
    *type = p[0];
    r->p = p + HDR;
    r->n = n;
    r->off = 0;
    r->bad = 0;
    in.off += HDR + n;
    return 1;
}

/* ---- progress ---------------------------------------------------------------------- */

static double mbit(uint64_t bytes, double secs) { return secs > 0 ? bytes * 8 / secs / 1e6 : 0; }

/* Notes that file data moved now: the longest gap is the longest stall. */
static void data_moved(double now)
{
    if (t_last_data > 0 && now - t_last_data > stall_max) {
        stall_max = now - t_last_data;
        stall_at = t_last_data - t_start;
    }
    t_last_data = now;
    if (t_data0 == 0)
        t_data0 = now;
}

/* The sender's progress is what the receiver has acknowledged; sampled on
 * every pass of the loop, so a stall is timed to the loop's 100 ms. */
static void sender_acked(void)
{
    struct mpt_info info = {.size = sizeof info};

    if (sock != NULL && mpt_get_info(sock, &info) == 0) {
        uint64_t unacked = stream_queued > info.bytes_acked ? stream_queued - info.bytes_acked : 0;
        uint64_t d = data_queued > unacked ? data_queued - unacked : 0;
        if (d > data_done) {
            data_done = d;
            data_moved(tool_now());
        }
    }
}

static void progress_tick(int final)
{
    double now = tool_now();
    char a[32], b[32];

    if (!final && now - t_last_tick < 0.2)
        return;
    t_last_tick = now;
    if (sock != NULL)
        tool_paths_sample(&paths, sock, listen_mode);
    /* Rates over the last second. */
    unsigned slot = nhist % HIST, old = 0;
    hist[slot].t = now;
    hist[slot].total = data_done;
    for (size_t k = 0; k < paths.n; k++)
        hist[slot].path[k] = paths.path[k].bytes;
    nhist++;
    for (unsigned i = 1; i < HIST && i < nhist; i++) {
        old = (nhist - 1 - i) % HIST;
        if (now - hist[old].t >= 1.0)
            break;
    }
    double dt = now - hist[old].t;
    double rate = nhist > 1 ? mbit(data_done - hist[old].total, dt) : 0;

    if (log_file != NULL) {
        fprintf(log_file, "%.3f total %" PRIu64 " %.3f\n", now - t_start, data_done, rate);
        for (size_t k = 0; k < paths.n; k++)
            fprintf(log_file, "%.3f %s %" PRIu64 " %.3f\n", now - t_start, paths.path[k].label,
                    paths.path[k].bytes,
                    nhist > 1 ? mbit(paths.path[k].bytes - hist[old].path[k], dt) : 0.0);
        /* Read while it grows (tests/demo.sh times its outage by it). */
        fflush(log_file);
    }
    if (quiet || final || t_data0 == 0)
        return;

    char line[1024], rest[900];
    int len = 0, rlen = 0;
    double pct = data_total ? 100.0 * (double)data_done / (double)data_total : 100.0;
    if (!tty) {
        if (now - t_last_line < (double)interval_s)
            return;
        t_last_line = now;
    }
    for (size_t k = 0; k < paths.n && rlen < (int)sizeof rest - 100; k++)
        rlen += snprintf(rest + rlen, sizeof rest - rlen, "%s %s %.1f%s%s", tty ? " |" : ";",
                         paths.path[k].label,
                         nhist > 1 ? mbit(paths.path[k].bytes - hist[old].path[k], dt) : 0.0,
                         tty ? "" : " Mbit/s", paths.path[k].up ? "" : " (down)");
    if (!tty) {
        fprintf(stderr, "%s: %.1f s: %.0f%% %s of %s, %.1f Mbit/s%s\n", T.name, now - t_start, pct,
                tool_bytes(data_done, a, sizeof a), tool_bytes(data_total, b, sizeof b), rate, rest);
        fflush(stderr);
        return;
    }
    if (rate > 0 && data_total > data_done) {
        double eta = (double)(data_total - data_done) * 8 / (rate * 1e6);
        snprintf(rest + rlen, sizeof rest - rlen, " | ETA %d:%02d", (int)eta / 60, (int)eta % 60);
    }
    tool_bytes(data_done, a, sizeof a);
    tool_bytes(data_total, b, sizeof b);
    char *ua = strchr(a, ' '), *ub = strchr(b, ' ');
    if (ua != NULL && ub != NULL && strcmp(ua, ub) == 0)
        *ua = '\0'; /* "28.8/64.0 MiB" */
    len = snprintf(line, sizeof line, "%3.0f%% %s/%s %.1f Mbit/s", pct, a, b, rate);
    /* The bar gets what the numbers leave of the terminal's width (up to 20). */
    struct winsize ws;
    int width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
    /* Only ever narrower, so that it does not jitter as the numbers change. */
    static int bar_max = 20;
    int barw = width - 1 - len - (int)strlen(rest) - 3;
    if (barw > bar_max)
        barw = bar_max;
    else if (barw >= 5)
        bar_max = barw;
    char bar[24] = "";
    if (barw >= 5) {
        int fill = (int)(pct * barw / 100);
        bar[0] = ' ';
        bar[1] = '[';
        for (int i = 0; i < barw; i++)
            bar[2 + i] = i < fill ? '#' : '-';
        bar[2 + barw] = ']';
        bar[3 + barw] = '\0';
    }
    char full[2048];
    snprintf(full, sizeof full, "%.4s%s%s%s", line, bar, line + 4, rest);
    /* Never wider than the terminal: a wrapped line cannot be redrawn. */
    if ((int)strlen(full) > width - 1)
        full[width - 1] = '\0';
    fprintf(stderr, "\r%s\033[K", full);
    bar_drawn = 1;
    fflush(stderr);
}

/* The closing lines on standard output: totals, per path, the longest stall. */
static void summary(const char *verb)
{
    double secs = (t_last_data > t_data0 ? t_last_data : tool_now()) - (t_data0 ? t_data0 : t_start);
    uint64_t all = 0;
    char a[32];

    clear_bar();
    if (quiet)
        return;
    printf("%s: %s %" PRIu64 " file%s, %s in %.2f s (%.1f Mbit/s)", T.name, verb, nfiles_done,
           nfiles_done == 1 ? "" : "s", tool_bytes(data_done, a, sizeof a), secs,
           mbit(data_done, secs));
    if (data_skipped)
        printf(", %s already there (--resume)", tool_bytes(data_skipped, a, sizeof a));
    printf(", every file verified (SHA-256)\n");
    for (size_t k = 0; k < paths.n; k++)
        all += paths.path[k].bytes;
    for (size_t k = 0; k < paths.n; k++)
        printf("%s: path %s: %s (%.0f%%)\n", T.name, paths.path[k].label,
               tool_bytes(paths.path[k].bytes, a, sizeof a),
               all ? 100.0 * (double)paths.path[k].bytes / (double)all : 0.0);
    printf("%s: longest stall: %.2f s with no new file data %s", T.name, stall_max,
           listen_mode ? "received" : "acknowledged");
    if (stall_max > 0)
        printf(" (from %.2f s)", stall_at);
    printf("\n");
    fflush(stdout);
}

/* ---- the sender ----------------------------------------------------------------------- */

static struct entry *add_entry(void)
{
    if (nentries == capentries) {
        capentries = capentries ? capentries * 2 : 64;
        entries = xrealloc(entries, capentries * sizeof *entries);
    }
    memset(&entries[nentries], 0, sizeof entries[0]);
    return &entries[nentries++];
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Adds src (under the name `name`) and, for a directory, everything below it.
 * Top-level arguments that are symlinks are followed; links below are sent as
 * links. -1 after printing why not. */
static int walk(const char *src, const char *name, int top)
{
    struct stat st;
    struct entry *e;

    if ((top ? stat(src, &st) : lstat(src, &st)) < 0) {
        err_sys(src, "cannot read", errno);
        return -1;
    }
    if (strlen(name) >= MAX_NAME) {
        msg("%s: the name is longer than %d bytes", src, MAX_NAME - 1);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
        msg("%s: skipped: not a regular file, directory or symbolic link", src);
        return 0;
    }
    if (nentries >= MAX_ENTRIES) {
        msg("%s: more than %d entries", src, MAX_ENTRIES);
        return -1;
    }
    e = add_entry();
    e->name = xstrdup(name);
    e->src = xstrdup(src);
    e->mode = st.st_mode & 07777;
    e->mtime_s = st.st_mtim.tv_sec;
    e->mtime_ns = (uint32_t)st.st_mtim.tv_nsec;
    if (S_ISREG(st.st_mode)) {
        e->kind = KIND_FILE;
        e->size = (uint64_t)st.st_size;
        data_total += e->size;
        nfiles_total++;
        return 0;
    }
    if (S_ISLNK(st.st_mode)) {
        char t[PATH_MAX];
        ssize_t n = readlink(src, t, sizeof t - 1);
        if (n < 0) {
            err_sys(src, "cannot read the symbolic link", errno);
            return -1;
        }
        t[n] = '\0';
        e->kind = KIND_LINK;
        e->target = xstrdup(t);
        return 0;
    }
    e->kind = KIND_DIR;
    struct dirent **list;
    int n = scandir(src, &list, NULL, name_cmp), rc = 0;
    if (n < 0) {
        err_sys(src, "cannot read the directory", errno);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *d = list[i]->d_name;
        if (rc == 0 && strcmp(d, ".") != 0 && strcmp(d, "..") != 0) {
            size_t ls = strlen(src), ln = strlen(name), ld = strlen(d);
            char *cs = xrealloc(NULL, ls + ld + 2), *cn = xrealloc(NULL, ln + ld + 2);
            snprintf(cs, ls + ld + 2, "%s%s%s", src, src[ls - 1] == '/' ? "" : "/", d);
            snprintf(cn, ln + ld + 2, "%s/%s", name, d);
            rc = walk(cs, cn, 0);
            free(cs);
            free(cn);
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

/* The name a command-line argument gets at the receiver: its last component. */
static int top_name(const char *arg, char *name, size_t len)
{
    char *r = realpath(arg, NULL);
    const char *base;

    if (r == NULL) {
        err_sys(arg, "cannot read", errno);
        return -1;
    }
    /* realpath of a symlink is its target; the name the user typed wins. */
    size_t n = strlen(arg);
    while (n > 1 && arg[n - 1] == '/')
        n--;
    const char *p = arg + n;
    while (p > arg && p[-1] != '/')
        p--;
    if ((size_t)(arg + n - p) > 0 && !(arg + n - p == 1 && p[0] == '.') &&
        !(arg + n - p == 2 && p[0] == '.' && p[1] == '.')) {
        snprintf(name, len, "%.*s", (int)(arg + n - p), p);
    } else {
        base = strrchr(r, '/');
        snprintf(name, len, "%s", base ? base + 1 : r);
    }
    free(r);
    if (name[0] == '\0' || strcmp(name, "/") == 0) {
        msg("%s: has no name to copy it under (the root directory?)", arg);
        return -1;
    }
    return 0;
}

/* Sender state. */
enum { S_CONNECTING, S_WAIT_READY, S_DATA, S_WAIT_RESULT, S_OK, S_FAILED };
static int sstate = S_CONNECTING;
static int exit_code = TOOL_EXIT_FAIL;
/* Test hook: MPT_COPY_TEST_STREAM=FILE sends FILE's bytes instead of the
 * sender's own frames (tests/copy-evil.py writes hostile ones). */
static const char *raw_stream;
static size_t cur = 0;            /* the entry being sent */
static int cur_fd = -1;
static uint64_t cur_pos;
static mbedtls_sha256_context cur_sha;

static void queue_manifest(void)
{
    size_t at = frame_begin(&out, FR_HELLO);
    putbytes(&out, MAGIC, 7);
    put8(&out, PROTO_VERSION);
    put32(&out, resume ? FLAG_RESUME : 0);
    frame_end(&out, at);
    for (size_t i = 0; i < nentries; i++) {
        struct entry *e = &entries[i];
        at = frame_begin(&out, FR_ENTRY);
        put32(&out, (uint32_t)i);
        put8(&out, (uint8_t)e->kind);
        put32(&out, e->mode);
        put64(&out, (uint64_t)e->mtime_s);
        put32(&out, e->mtime_ns);
        put64(&out, e->size);
        put16(&out, (uint16_t)strlen(e->name));
        putbytes(&out, e->name, strlen(e->name));
        if (e->kind == KIND_LINK) {
            put16(&out, (uint16_t)strlen(e->target));
            putbytes(&out, e->target, strlen(e->target));
        }
        frame_end(&out, at);
    }
    at = frame_begin(&out, FR_MANIFEST_END);
    put32(&out, (uint32_t)nentries);
    put64(&out, data_total);
    frame_end(&out, at);
}

/* Hashes the first n bytes of fd into sha; 0, or -1 with errno (EIO... or
 * 0 for a file shorter than n). */
static int hash_prefix(int fd, uint64_t n, mbedtls_sha256_context *sha)
{
    static uint8_t b[1u << 20];
    while (n > 0) {
        ssize_t r = read(fd, b, n < sizeof b ? (size_t)n : sizeof b);
        if (r <= 0) {
            if (r == 0)
                errno = 0;
            return -1;
        }
        sha_update(sha, b, (size_t)r);
        n -= (uint64_t)r;
    }
    return 0;
}

/* Opens the next file to send and queues its START frame. 0, 1 when none is
 * left, -1 after an error (reported). */
static int sender_open_next(void)
{
    for (; cur < nentries && entries[cur].kind != KIND_FILE; cur++)
        ;
    if (cur == nentries)
        return 1;
    struct entry *e = &entries[cur];
    struct stat st;
    uint64_t offset = 0;

    if ((cur_fd = open(e->src, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        err_sys(e->src, "cannot open", errno);
        return -1;
    }
    if (fstat(cur_fd, &st) < 0) {
        err_sys(e->src, "cannot read", errno);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        msg("%s: is no longer a regular file", e->src);
        return -1;
    }
    mbedtls_sha256_init(&cur_sha);
    sha_starts(&cur_sha);
    if (e->have > 0) {
        uint8_t h[32];
        errno = 0;
        if (hash_prefix(cur_fd, e->have, &cur_sha) < 0 && errno != 0) {
            err_sys(e->src, "read", errno);
            return -1;
        }
        mbedtls_sha256_context c;
        mbedtls_sha256_init(&c);
        mbedtls_sha256_clone(&c, &cur_sha);
        sha_finish(&c, h);
        mbedtls_sha256_free(&c);
        if (memcmp(h, e->have_hash, 32) == 0) {
            offset = e->have;
            tool_verbose(&T, "%s: resuming at byte %" PRIu64 " (the receiver's prefix matches)",
                         e->name, offset);
        } else {
            tool_verbose(&T, "%s: the receiver's %" PRIu64 " bytes differ: sending it all", e->name,
                         e->have);
            sha_starts(&cur_sha);
        }
        if (lseek(cur_fd, (off_t)offset, SEEK_SET) < 0) {
            err_sys(e->src, "seek", errno);
            return -1;
        }
    }
    data_skipped += offset;
    data_total -= offset;
    cur_pos = offset;
    size_t at = frame_begin(&out, FR_START);
    put32(&out, (uint32_t)cur);
    put64(&out, offset);
    frame_end(&out, at);
    return 0;
}

/* Queues file data while the output buffer is short; 1 if anything was
 * queued, 0 if nothing, -1 after an error (reported). */
static int sender_produce(void)
{
    int moved = 0;
    while (sstate == S_DATA && buf_pending(&out) < (1u << 20)) {
        if (cur_fd < 0) {
            int r = sender_open_next();
            if (r < 0)
                return -1;
            if (r > 0) {
                size_t at = frame_begin(&out, FR_DONE);
                frame_end(&out, at);
                sstate = S_WAIT_RESULT;
                return 1;
            }
            moved = 1;
        }
        struct entry *e = &entries[cur];
        if (cur_pos < e->size) {
            size_t want = e->size - cur_pos < DATA_CHUNK ? (size_t)(e->size - cur_pos) : DATA_CHUNK;
            size_t at = frame_begin(&out, FR_DATA);
            buf_reserve(&out, want);
            ssize_t r = read(cur_fd, out.p + out.len, want);
            if (r <= 0) {
                if (r == 0)
                    msg("%s: the file shrank while being sent (%" PRIu64 " of %" PRIu64 " bytes)",
                        e->src, cur_pos, e->size);
                else
                    err_sys(e->src, "read", errno);
                out.len = out.off + at - 1; /* drop the unfinished frame */
                return -1;
            }
            sha_update(&cur_sha, out.p + out.len, (size_t)r);
            out.len += (size_t)r;
            frame_end(&out, at);
            cur_pos += (uint64_t)r;
            data_queued += (uint64_t)r;
            moved = 1;
            continue;
        }
        uint8_t h[32];
        sha_finish(&cur_sha, h);
        mbedtls_sha256_free(&cur_sha);
        size_t at = frame_begin(&out, FR_END);
        put32(&out, (uint32_t)cur);
        putbytes(&out, h, 32);
        frame_end(&out, at);
        if (T.verbose) {
            char hx[65];
            hex(h, hx);
            tool_verbose(&T, "%s: sent, sha256 %s", e->name, hx);
        }
        close(cur_fd);
        cur_fd = -1;
        nfiles_done++;
        cur++;
        moved = 1;
    }
    return moved;
}

/* The receiver's frames, in the sender. */
static int sender_frames(void)
{
    uint8_t type;
    struct rd r;
    int k;

    while ((k = next_frame(&type, &r)) > 0) {
        if (type == FR_ERROR) {
            int code = (int)getn(&r, 1);
            char *m = getstr(&r);
            msg("%s: the receiver refused or failed: %s", peer, m ? m : "(no reason given)");
            free(m);
            exit_code = code == EXIT_REFUSED || code == EXIT_CHECKSUM ? code : TOOL_EXIT_FAIL;
            return -1;
        }
        if (raw_stream != NULL && (type == FR_OFFER || type == FR_READY)) {
            continue;
        } else if (sstate == S_WAIT_READY && type == FR_OFFER) {
            uint32_t id = (uint32_t)getn(&r, 4);
            uint64_t have = getn(&r, 8);
            const uint8_t *h = getbytes(&r, 32);
            if (r.bad || id >= nentries || entries[id].kind != KIND_FILE || have > entries[id].size)
                goto bad;
            entries[id].have = have;
            memcpy(entries[id].have_hash, h, 32);
        } else if (sstate == S_WAIT_READY && type == FR_READY) {
            sstate = S_DATA;
            tool_verbose(&T, "%s: the receiver accepted the manifest (%zu entries)", peer, nentries);
        } else if (sstate == S_WAIT_RESULT && type == FR_RESULT) {
            sstate = S_OK;
            return 0;
        } else {
            goto bad;
        }
    }
    if (k < 0)
        goto bad;
    return 0;
bad:
    msg("%s: the receiver broke the protocol (frame '%c')", peer, type);
    return -1;
}

static int run_sender(void)
{
    char name[MAX_NAME];

    raw_stream = getenv("MPT_COPY_TEST_STREAM");
    for (size_t i = 0; i < nsources && raw_stream == NULL; i++) {
        size_t first = nentries;
        if (top_name(sources[i], name, sizeof name) < 0 || walk(sources[i], name, 1) < 0)
            return TOOL_EXIT_FAIL;
        for (size_t j = 0; j < first; j++)
            if (first < nentries && strcmp(entries[j].name, entries[first].name) == 0) {
                msg("%s: two arguments are both called '%s' at the receiver", sources[i], name);
                return TOOL_EXIT_USAGE;
            }
    }
    snprintf(peer, sizeof peer, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    if (tool_ctx_new(&T, NULL, &ctx) < 0)
        return TOOL_EXIT_FAIL;
    int rc = mpt_connect(ctx, host, port, T.paths, T.npaths, &callbacks, NULL, &sock);
    if (rc >= 0)
        tool_apply_meters(&T, sock);
    if (rc < 0) {
        tool_error(&T, peer, "connect", rc, 0);
        sock = NULL;
        return TOOL_EXIT_FAIL;
    }
    t_start = tool_now();
    for (;;) {
        int moved = 0, r;
        if (sstate == S_CONNECTING && ev_connected) {
            if (ev_connect_status < 0) {
                clear_bar();
                tool_conn_error(&T, sock, peer, "connect", ev_connect_status);
                return TOOL_EXIT_FAIL;
            }
            tool_verbose(&T, "%s: connected; sending the manifest (%zu entries, %" PRIu64
                         " bytes of file data)", peer, nentries, data_total);
            if (raw_stream != NULL) {
                FILE *f = fopen(raw_stream, "rb");
                size_t n;
                if (f == NULL) {
                    err_sys(raw_stream, "MPT_COPY_TEST_STREAM", errno);
                    return TOOL_EXIT_FAIL;
                }
                do {
                    buf_reserve(&out, 65536);
                    n = fread(out.p + out.len, 1, 65536, f);
                    out.len += n;
                } while (n > 0);
                fclose(f);
                sstate = S_WAIT_RESULT;
            } else {
                queue_manifest();
                sstate = S_WAIT_READY;
            }
        }
        if (sstate != S_CONNECTING) {
            if ((r = fill_in()) < 0) {
                clear_bar();
                tool_conn_error(&T, sock, peer, "connection lost before the receiver confirmed "
                                "every file", r);
                return TOOL_EXIT_FAIL;
            }
            moved |= r;
            if (sender_frames() < 0)
                return exit_code;
            if (sstate == S_OK)
                break;
            if ((r = sender_produce()) < 0) {
                send_error(TOOL_EXIT_FAIL, "the sender could not read %s", entries[cur].name);
                (void)flush_out();
                mpt_set_callbacks(sock, NULL, NULL);
                (void)mpt_blocking_close(sock, 2000);
                sock = NULL;
                return TOOL_EXIT_FAIL;
            }
            moved |= r;
            if ((r = flush_out()) < 0) {
                clear_bar();
                tool_conn_error(&T, sock, peer, "connection lost before the receiver confirmed "
                                "every file", r);
                return TOOL_EXIT_FAIL;
            }
            moved |= r;
            if (peer_eof) {
                msg("%s: the receiver closed the connection before confirming the transfer", peer);
                return TOOL_EXIT_FAIL;
            }
        }
        if (ev_closed && sstate != S_CONNECTING) {
            clear_bar();
            tool_conn_error(&T, sock, peer, "connection lost, transfer incomplete",
                            ev_close_status ? ev_close_status : MPT_ECONNRESET);
            return TOOL_EXIT_FAIL;
        }
        if (sstate == S_DATA || sstate == S_WAIT_RESULT)
            sender_acked();
        progress_tick(0);
        mpt_ctx_run(ctx, moved ? 0 : 100);
    }
    /* The receiver has every file, verified: what remains is politeness. */
    data_done = data_queued;
    progress_tick(1);
    summary("sent");
    if (T.stats)
        tool_print_stats(&T, stderr, sock);
    mpt_set_callbacks(sock, NULL, NULL);
    (void)mpt_blocking_close(sock, 5000);
    sock = NULL;
    return TOOL_EXIT_OK;
}

/* ---- the receiver ------------------------------------------------------------------------ */

static int rootfd = -1;

/* A name the receiver may create: relative, no empty, "." or ".." parts. */
static int name_safe(const char *n)
{
    const char *p = n;
    if (*n == '\0' || *n == '/' || strlen(n) >= MAX_NAME)
        return 0;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 0 || len > 255 || (len == 1 && p[0] == '.') ||
            (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += len;
        if (*p == '/')
            p++;
        else
            break;
        if (*p == '\0')
            return 0; /* a trailing slash */
    }
    return 1;
}

/* A link the receiver recreates: relative, and never above the destination
 * when read from the link's own directory. */
static int link_safe(const char *name, const char *target)
{
    int depth = 0;
    const char *p;

    if (target[0] == '\0' || target[0] == '/')
        return 0;
    for (p = name; *p; p++)
        depth += *p == '/';
    p = target;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0)
                return 0;
        } else if (len > 0 && !(len == 1 && p[0] == '.')) {
            depth++;
        }
        p += len;
        if (*p == '/')
            p++;
    }
    return 1;
}

/* Opens the directory holding name's last part, from the destination down,
 * creating missing directories if create; never follows a symbolic link.
 * Returns the fd and *leaf, or -1 with errno (ELOOP: a link in the way). */
static int open_parent(const char *name, int create, const char **leaf)
{
    char comp[256];
    const char *p = name, *q;
    int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    while (fd >= 0 && (q = strchr(p, '/')) != NULL) {
        size_t len = (size_t)(q - p);
        memcpy(comp, p, len);
        comp[len] = '\0';
        int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST) {
                int e = errno;
                close(fd);
                errno = e;
                return -1;
            }
            nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int e = errno;
        close(fd);
        errno = e;
        fd = nfd;
        p = q + 1;
    }
    *leaf = p;
    return fd;
}

/* "the destination has a symbolic link or a file where a directory belongs". */
static const char *walk_error(int e)
{
    return e == ELOOP || e == ENOTDIR
               ? "a symbolic link or a non-directory is in the way (links are not followed)"
               : strerror(e);
}

enum { R_MANIFEST, R_DATA, R_DONE };
static int rstate = R_MANIFEST;
static int rflags;
static int got_hello;
static struct entry *rcur;       /* the file being written */
static int rcur_fd = -1, rcur_pfd = -1;
static char rcur_part[300];
static uint64_t rcur_pos;
static mbedtls_sha256_context rcur_sha;

static void part_name(const char *leaf, char *buf, size_t len)
{
    snprintf(buf, len, ".%s.mpt-part", leaf);
}

/* A failure of the transfer at the receiver: printed, sent to the sender. */
static int rfail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rfail(int code, const char *fmt, ...)
{
    char m[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    msg("%s", m);
    send_error(code, "%s", m);
    exit_code = code;
    return -1;
}

/* What the receiver has of e (resume): the .part file, else the final file. */
static void offer(struct entry *e)
{
    const char *leaf;
    char part[300];
    int pfd = open_parent(e->name, 0, &leaf), fd = -1;
    struct stat st;

    if (pfd < 0)
        return;
    part_name(leaf, part, sizeof part);
    fd = openat(pfd, part, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        fd = openat(pfd, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        e->offered_from_final = 1;
    }
    close(pfd);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        uint64_t n = (uint64_t)st.st_size < e->size ? (uint64_t)st.st_size : e->size;
        mbedtls_sha256_init(&e->prefix);
        sha_starts(&e->prefix);
        if (hash_prefix(fd, n, &e->prefix) == 0) {
            mbedtls_sha256_context c;
            mbedtls_sha256_init(&c);
            mbedtls_sha256_clone(&c, &e->prefix);
            sha_finish(&c, e->have_hash);
            mbedtls_sha256_free(&c);
            e->have = n;
            size_t at = frame_begin(&out, FR_OFFER);
            put32(&out, (uint32_t)(e - entries));
            put64(&out, n);
            putbytes(&out, e->have_hash, 32);
            frame_end(&out, at);
        }
    }
    close(fd);
}

/* The whole manifest is in: check every name, make the directories, offer
 * what is already there, and say READY. */
static int manifest_done(void)
{
    for (size_t i = 0; i < nentries; i++) {
        struct entry *e = &entries[i];
        if (!name_safe(e->name))
            return rfail(EXIT_REFUSED, "refused: unsafe name '%s' (absolute, empty, '.' or '..' "
                         "parts are not written)", e->name);
        if (e->kind == KIND_LINK && !link_safe(e->name, e->target))
            return rfail(EXIT_REFUSED, "refused: symbolic link '%s' -> '%s' points outside the "
                         "destination", e->name, e->target);
    }
    for (size_t i = 0; i < nentries; i++) {
        struct entry *e = &entries[i];
        const char *leaf;
        int pfd = open_parent(e->name, 1, &leaf);
        if (pfd < 0)
            return rfail(errno == ELOOP || errno == ENOTDIR ? EXIT_REFUSED : TOOL_EXIT_FAIL,
                         "%s/%s: %s", destdir, e->name, walk_error(errno));
        if (e->kind == KIND_DIR) {
            struct stat st;
            if (mkdirat(pfd, leaf, 0700) < 0 && errno != EEXIST) {
                int er = errno;
                close(pfd);
                return rfail(TOOL_EXIT_FAIL, "%s/%s: mkdir: %s", destdir, e->name, strerror(er));
            }
            if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) {
                close(pfd);
                return rfail(S_ISLNK(st.st_mode) ? EXIT_REFUSED : TOOL_EXIT_FAIL,
                             "%s/%s: %s", destdir, e->name, walk_error(ENOTDIR));
            }
        }
        close(pfd);
        if (e->kind == KIND_FILE && (rflags & FLAG_RESUME))
            offer(e);
    }
    size_t at = frame_begin(&out, FR_READY);
    frame_end(&out, at);
    rstate = R_DATA;
    tool_verbose(&T, "%s: manifest of %zu entries (%" PRIu64 " files, %" PRIu64 " bytes) accepted",
                 peer, nentries, nfiles_total, data_total);
    return 0;
}

static int start_file(struct rd *r)
{
    uint32_t id = (uint32_t)getn(r, 4);
    uint64_t offset = getn(r, 8);
    struct entry *e;
    const char *leaf;

    if (r->bad || id >= nentries || entries[id].kind != KIND_FILE || entries[id].done ||
        rcur != NULL || (offset != 0 && offset != entries[id].have))
        return rfail(TOOL_EXIT_FAIL, "%s: protocol error: a bad START frame", peer);
    e = rcur = &entries[id];
    if ((rcur_pfd = open_parent(e->name, 1, &leaf)) < 0)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: %s", destdir, e->name, walk_error(errno));
    part_name(leaf, rcur_part, sizeof rcur_part);
    if (offset > 0 && e->offered_from_final && renameat(rcur_pfd, leaf, rcur_pfd, rcur_part) < 0)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: rename: %s", destdir, e->name, strerror(errno));
    /* A fresh file, never one found under that name: a hard link planted
     * there would otherwise have its other name overwritten. */
    if (offset == 0 && unlinkat(rcur_pfd, rcur_part, 0) < 0 && errno != ENOENT)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: cannot remove the old partial file: %s", destdir,
                     e->name, strerror(errno));
    rcur_fd = openat(rcur_pfd, rcur_part,
                     O_WRONLY | O_NOFOLLOW | O_CLOEXEC | (offset ? 0 : O_CREAT | O_EXCL), 0600);
    if (rcur_fd < 0)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: cannot create: %s", destdir, e->name,
                     strerror(errno));
    struct stat st;
    if (fstat(rcur_fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: the partial file is not a plain file with one "
                     "name: not resumed", destdir, e->name);
    if (offset > 0 && ftruncate(rcur_fd, (off_t)offset) < 0)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: truncate: %s", destdir, e->name, strerror(errno));
    mbedtls_sha256_init(&rcur_sha);
    if (offset > 0)
        mbedtls_sha256_clone(&rcur_sha, &e->prefix);
    else
        sha_starts(&rcur_sha);
    rcur_pos = offset;
    data_skipped += offset;
    data_total -= offset;
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    return n > 0 && p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

static int write_data(struct rd *r)
{
    struct entry *e = rcur;
    size_t n = r->n;
    const uint8_t *p = r->p;

    if (e == NULL || rcur_pos + n > e->size)
        return rfail(TOOL_EXIT_FAIL, "%s: protocol error: data beyond the file's size", peer);
    sha_update(&rcur_sha, p, n);
    if (all_zero(p, n)) {
        /* Left as a hole (end_file sets the size): sparse files stay sparse. */
        rcur_pos += n;
        data_done += n;
        data_moved(tool_now());
        return 0;
    }
    while (n > 0) {
        ssize_t w = pwrite(rcur_fd, p, n, (off_t)rcur_pos);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return rfail(TOOL_EXIT_FAIL, "%s/%s: write: %s", destdir, e->name, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
        rcur_pos += (uint64_t)w;
        data_done += (uint64_t)w;
    }
    data_moved(tool_now());
    return 0;
}

static int end_file(struct rd *r)
{
    uint32_t id = (uint32_t)getn(r, 4);
    const uint8_t *want = getbytes(r, 32);
    struct entry *e = rcur;
    const char *leaf = strrchr(e ? e->name : "", '/');
    uint8_t got[32];
    char hx[65];

    leaf = leaf ? leaf + 1 : e ? e->name : "";
    if (r->bad || e == NULL || id != (uint32_t)(e - entries) || rcur_pos != e->size)
        return rfail(TOOL_EXIT_FAIL, "%s: protocol error: a file ended early", peer);
    sha_finish(&rcur_sha, got);
    mbedtls_sha256_free(&rcur_sha);
    if (memcmp(got, want, 32) != 0) {
        close(rcur_fd);
        rcur_fd = -1;
        (void)unlinkat(rcur_pfd, rcur_part, 0);
        return rfail(EXIT_CHECKSUM, "%s/%s: SHA-256 mismatch: the received bytes are not the "
                     "sender's (the partial file is removed)", destdir, e->name);
    }
    if (ftruncate(rcur_fd, (off_t)e->size) < 0)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: setting the size: %s", destdir, e->name,
                     strerror(errno));
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {e->mtime_s, e->mtime_ns}};
    /* No set-user-ID or set-group-ID bits from the network. */
    if (fchmod(rcur_fd, e->mode & 01777) < 0 || futimens(rcur_fd, ts) < 0)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: setting mode and time: %s", destdir, e->name,
                     strerror(errno));
    if (close(rcur_fd) < 0) {
        rcur_fd = -1;
        return rfail(TOOL_EXIT_FAIL, "%s/%s: write: %s", destdir, e->name, strerror(errno));
    }
    rcur_fd = -1;
    if (renameat(rcur_pfd, rcur_part, rcur_pfd, leaf) < 0)
        return rfail(TOOL_EXIT_FAIL, "%s/%s: rename into place: %s", destdir, e->name,
                     strerror(errno));
    close(rcur_pfd);
    rcur_pfd = -1;
    hex(got, hx);
    if (T.verbose || nfiles_total == 1) {
        clear_bar();
        if (!quiet)
            printf("%s: sha256 %s  %s (verified)\n", T.name, hx, e->name);
    }
    e->done = 1;
    rcur = NULL;
    nfiles_done++;
    return 0;
}

/* Links, then directories' modes and times (deepest first: writing inside a
 * directory changes its mtime). */
static int finish_tree(void)
{
    for (size_t i = 0; i < nentries; i++) {
        struct entry *e = &entries[i];
        if (e->kind == KIND_FILE && !e->done)
            return rfail(TOOL_EXIT_FAIL, "%s: protocol error: %s was never sent", peer, e->name);
        if (e->kind != KIND_LINK)
            continue;
        const char *leaf;
        int pfd = open_parent(e->name, 1, &leaf);
        if (pfd < 0)
            return rfail(TOOL_EXIT_FAIL, "%s/%s: %s", destdir, e->name, walk_error(errno));
        struct stat st;
        if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
            (void)unlinkat(pfd, leaf, 0);
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {e->mtime_s, e->mtime_ns}};
        if (symlinkat(e->target, pfd, leaf) < 0 ||
            utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW) < 0) {
            int er = errno;
            close(pfd);
            return rfail(TOOL_EXIT_FAIL, "%s/%s: symlink: %s", destdir, e->name, strerror(er));
        }
        close(pfd);
    }
    for (size_t i = nentries; i-- > 0;) {
        struct entry *e = &entries[i];
        if (e->kind != KIND_DIR)
            continue;
        const char *leaf;
        int pfd = open_parent(e->name, 0, &leaf), fd = -1;
        if (pfd >= 0)
            fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {e->mtime_s, e->mtime_ns}};
        if (fd < 0 || fchmod(fd, e->mode & 01777) < 0 || futimens(fd, ts) < 0) {
            int er = errno;
            if (fd >= 0)
                close(fd);
            if (pfd >= 0)
                close(pfd);
            return rfail(TOOL_EXIT_FAIL, "%s/%s: setting mode and time: %s", destdir, e->name,
                         strerror(er));
        }
        close(fd);
        close(pfd);
    }
    return 0;
}

static size_t manifest_bytes;

static int parse_entry(struct rd *r)
{
    uint32_t id = (uint32_t)getn(r, 4);
    struct entry *e;

    if (id != nentries || nentries >= MAX_ENTRIES)
        return rfail(TOOL_EXIT_FAIL, "%s: protocol error: entry %u out of order", peer, id);
    e = add_entry();
    e->kind = (int)getn(r, 1);
    e->mode = (uint32_t)getn(r, 4) & 07777;
    e->mtime_s = (int64_t)getn(r, 8);
    e->mtime_ns = (uint32_t)getn(r, 4);
    e->size = getn(r, 8);
    e->name = getstr(r);
    if (e->kind == KIND_LINK)
        e->target = getstr(r);
    if (r->bad || e->name == NULL || e->mtime_ns > 999999999 ||
        (e->kind != KIND_FILE && e->kind != KIND_DIR && e->kind != KIND_LINK)) {
        nentries--;
        free(e->name);
        free(e->target);
        return rfail(TOOL_EXIT_FAIL, "%s: protocol error: a malformed entry", peer);
    }
    if (e->kind == KIND_FILE) {
        data_total += e->size;
        nfiles_total++;
    }
    /* A sender may not make the receiver hold an unbounded manifest. */
    manifest_bytes += sizeof *e + strlen(e->name) + (e->target ? strlen(e->target) : 0);
    if (manifest_bytes > MAX_MANIFEST)
        return rfail(TOOL_EXIT_FAIL, "%s: the manifest exceeds %u MiB", peer, MAX_MANIFEST >> 20);
    return 0;
}

static int receiver_frames(void)
{
    uint8_t type;
    struct rd r;
    int k;

    while ((k = next_frame(&type, &r)) > 0) {
        if (!got_hello) {
            const uint8_t *m = getbytes(&r, 7);
            unsigned v = (unsigned)getn(&r, 1);
            rflags = (int)getn(&r, 4);
            if (type != FR_HELLO || r.bad || memcmp(m, MAGIC, 7) != 0)
                return rfail(TOOL_EXIT_FAIL, "%s: not an mpt-copy sender", peer);
            if (v != PROTO_VERSION)
                return rfail(TOOL_EXIT_FAIL, "%s: protocol version %u (this receiver speaks %u)",
                             peer, v, PROTO_VERSION);
            got_hello = 1;
            continue;
        }
        if (type == FR_ERROR) {
            (void)getn(&r, 1);
            char *m = getstr(&r);
            msg("%s: the sender gave up: %s", peer, m ? m : "(no reason given)");
            free(m);
            exit_code = TOOL_EXIT_FAIL;
            return -1;
        }
        int rc = 0;
        if (rstate == R_MANIFEST && type == FR_ENTRY) {
            rc = parse_entry(&r);
        } else if (rstate == R_MANIFEST && type == FR_MANIFEST_END) {
            uint32_t n = (uint32_t)getn(&r, 4);
            if (r.bad || n != nentries)
                return rfail(TOOL_EXIT_FAIL, "%s: protocol error: manifest count", peer);
            rc = manifest_done();
        } else if (rstate == R_DATA && type == FR_START) {
            rc = start_file(&r);
        } else if (rstate == R_DATA && type == FR_DATA) {
            rc = write_data(&r);
        } else if (rstate == R_DATA && type == FR_END) {
            rc = end_file(&r);
        } else if (rstate == R_DATA && type == FR_DONE) {
            if ((rc = finish_tree()) == 0) {
                size_t at = frame_begin(&out, FR_RESULT);
                put32(&out, (uint32_t)nfiles_done);
                put64(&out, data_done);
                frame_end(&out, at);
                rstate = R_DONE;
            }
        } else {
            return rfail(TOOL_EXIT_FAIL, "%s: protocol error: unexpected frame '%c'", peer, type);
        }
        if (rc < 0)
            return rc;
        if (rstate == R_DONE)
            return 0;
    }
    if (k < 0)
        return rfail(TOOL_EXIT_FAIL, "%s: protocol error: a frame longer than %u bytes", peer,
                     MAX_PAYLOAD);
    return 0;
}

/* One transfer: the first connection is the sender, later ones are turned
 * away at once rather than left waiting. */
static void on_accept(struct mpt_listener *l, void *user)
{
    struct mpt_socket *s;

    while (mpt_accept(l, &callbacks, NULL, &s) == 0) {
        if (sock == NULL) {
            sock = s;
            mpt_ctx_break(ctx);
            continue;
        }
        msg("refusing a second sender: this receiver takes one transfer");
        mpt_abort(s);
    }
}

/* After a failure: tell the sender (the ERROR frame is queued), then go. */
static int receiver_abandon(int code)
{
    if (sock != NULL) {
        (void)flush_out();
        mpt_set_callbacks(sock, NULL, NULL);
        (void)mpt_blocking_close(sock, 2000);
        sock = NULL;
    }
    return code;
}

static int run_receiver(void)
{
    struct mpt_listener *l;
    int rc;

    if ((rootfd = open(destdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 && errno == ENOENT &&
        mkdir(destdir, 0755) == 0)
        rootfd = open(destdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        err_sys(destdir, "the destination directory", errno);
        return TOOL_EXIT_FAIL;
    }
    if (tool_ctx_new(&T, NULL, &ctx) < 0)
        return TOOL_EXIT_FAIL;
    const char *addrs[1] = {listen_addr};
    char where[300];
    snprintf(where, sizeof where, listen_addr && strchr(listen_addr, ':') ? "[%s]:%u" : "%s:%u",
             listen_addr ? listen_addr : "*", port);
    if ((rc = mpt_listen(ctx, listen_addr ? addrs : NULL, listen_addr ? 1 : 0, port, on_accept, NULL,
                         &l)) < 0) {
        tool_error(&T, where, "listen", rc, 0);
        return TOOL_EXIT_FAIL;
    }
    if (tool_listener_setup(&T, l) < 0)
        return TOOL_EXIT_USAGE;
    if (!quiet)
        fprintf(stderr, "%s: listening on %s:%d, writing into %s\n", T.name,
                listen_addr ? listen_addr : "*", mpt_listener_port(l), destdir);
    /* The listener stays open for the sender's other subflows (joins). */
    while (sock == NULL)
        mpt_ctx_run(ctx, 1000);
    {
        struct mpt_subflow_info sf[1];
        char a[80];
        if (mpt_get_subflows(sock, sf, 1) >= 1)
            snprintf(peer, sizeof peer, "%s", tool_addr(&sf[0].remote, a, sizeof a));
        else
            snprintf(peer, sizeof peer, "the sender");
    }
    tool_verbose(&T, "%s: connected", peer);
    t_start = tool_now();
    for (;;) {
        int moved = 0, r;
        if ((r = fill_in()) < 0) {
            clear_bar();
            tool_conn_error(&T, sock, peer, "receive: the transfer is incomplete (partial files "
                            "are kept for --resume)", r);
            return TOOL_EXIT_FAIL;
        }
        moved |= r;
        if (receiver_frames() < 0)
            return receiver_abandon(exit_code);
        if ((r = flush_out()) < 0) {
            clear_bar();
            tool_conn_error(&T, sock, peer, "send", r);
            return TOOL_EXIT_FAIL;
        }
        moved |= r;
        if (rstate == R_DONE && buf_pending(&out) == 0)
            break;
        if (peer_eof && rstate != R_DONE) {
            msg("%s: the sender closed the connection: the transfer is incomplete (partial "
                "files are kept for --resume)", peer);
            return TOOL_EXIT_FAIL;
        }
        if (ev_closed) {
            clear_bar();
            tool_conn_error(&T, sock, peer, "connection lost: the transfer is incomplete "
                            "(partial files are kept for --resume)",
                            ev_close_status ? ev_close_status : MPT_ECONNRESET);
            return TOOL_EXIT_FAIL;
        }
        progress_tick(0);
        mpt_ctx_run(ctx, moved ? 0 : 100);
    }
    progress_tick(1);
    summary("received");
    if (T.stats)
        tool_print_stats(&T, stderr, sock);
    mpt_set_callbacks(sock, NULL, NULL);
    /* Everything is on disk and verified; the close only tells the sender. */
    (void)mpt_blocking_close(sock, 5000);
    sock = NULL;
    return TOOL_EXIT_OK;
}

/* ---- arguments -------------------------------------------------------------------------- */

static void usage_lines(FILE *f)
{
    fprintf(f, "usage: mpt-copy [options] HOST PORT FILE|DIR...\n"
               "       mpt-copy [options] -l [ADDR] PORT -o DESTDIR\n");
}

static void help(void)
{
    usage_lines(stdout);
    fputs("\n"
          "Copies files and directory trees over libmpt (several paths at once), each\n"
          "file verified end to end by SHA-256; modes and modification times are kept.\n"
          "The receiver takes one transfer, writes only inside DESTDIR and exits.\n"
          "\n"
          "Sender:\n"
          "      --resume         continue an interrupted transfer: skip what the receiver\n"
          "                       already has of each file, once its SHA-256 matches\n"
          "Receiver:\n"
          "  -l, --listen         receive: listen on [ADDR] PORT (0: any free port)\n"
          "  -o, --output DIR     the destination directory (created if missing)\n"
          "Both:\n"
          "  -q, --quiet          no progress and no summary (errors only)\n"
          "      --interval SEC   seconds between progress lines when standard error is\n"
          "                       not a terminal (default 1)\n"
          "      --log FILE       throughput samples every 0.2 s: seconds, path (or\n"
          "                       'total'), bytes so far, Mbit/s over the last second\n",
          stdout);
    tool_common_help(stdout);
    fputs("\nExit status: 0 every file copied and verified, 1 connection or I/O error,\n"
          "2 usage error, 3 an unsafe name or link refused, 4 a SHA-256 mismatch.\n"
          "See mpt-copy(1).\n",
          stdout);
}

static int parse_args(int argc, char **argv)
{
    char **pos = posv = xrealloc(NULL, (size_t)argc * sizeof *pos);
    size_t npos = 0;
    int dashdash = 0;

    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        if (dashdash || a[0] != '-' || a[1] == '\0') {
            pos[npos++] = argv[i++];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            dashdash = 1;
            i++;
            continue;
        }
        int rc = tool_common_option(&T, argc, argv, &i);
        if (rc < 0)
            return TOOL_EXIT_USAGE;
        if (rc > 0)
            continue;
        if (strcmp(a, "-l") == 0 || strcmp(a, "--listen") == 0) {
            listen_mode = 1;
        } else if (strcmp(a, "--resume") == 0) {
            resume = 1;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ||
                   strcmp(a, "--interval") == 0 || strcmp(a, "--log") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0') {
                fprintf(stderr, "%s: option %s needs a value (see --help)\n", T.name, a);
                return TOOL_EXIT_USAGE;
            }
            const char *v = argv[++i];
            if (a[1] == 'o' || strcmp(a, "--output") == 0)
                destdir = v;
            else if (strcmp(a, "--log") == 0)
                log_path = v;
            else if (tool_parse_u64(&T, a, v, 1, 3600, &interval_s) < 0)
                return TOOL_EXIT_USAGE;
        } else {
            return tool_usage_error(&T, "unknown option '%s'", a);
        }
        i++;
    }
    if (listen_mode) {
        if (npos < 1 || npos > 2)
            return tool_usage_error(&T, "%s", "-l takes [ADDR] PORT");
        if (npos == 2)
            listen_addr = pos[0];
        if (tool_parse_port(&T, "-l PORT", pos[npos - 1], &port) < 0)
            return TOOL_EXIT_USAGE;
        if (destdir == NULL)
            return tool_usage_error(&T, "%s", "the receiver needs -o DESTDIR");
        if (resume)
            return tool_usage_error(&T, "%s", "--resume is a sender option (the receiver always offers "
                                     "what it has when the sender asks)");
        if (T.npaths || T.all_paths)
            return tool_usage_error(&T, "%s", "--path and --all-paths are sender options");
    } else {
        if (npos < 3)
            return tool_usage_error(&T, "%s", npos == 0 ? "HOST, PORT and at least one FILE or DIR are "
                                                 "needed (or -l to receive)"
                                               : "at least one FILE or DIR to send is needed");
        if (destdir != NULL)
            return tool_usage_error(&T, "%s", "-o is a receiver option (with -l)");
        host = pos[0];
        if (tool_parse_port(&T, "PORT", pos[1], &port) < 0)
            return TOOL_EXIT_USAGE;
        if (port == 0)
            return tool_usage_error(&T, "%s", "port 0 is not a port to connect to");
        sources = pos + 2;
        nsources = npos - 2;
    }
    return TOOL_EXIT_OK;
}

int main(int argc, char **argv)
{
    int rc;

    tool_init(&T, "mpt-copy");
    T.help = help;
    T.usage = usage_lines;
    if ((rc = parse_args(argc, argv)) != TOOL_EXIT_OK)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit is a write error to report, not a signal to die of. */
    signal(SIGXFSZ, SIG_IGN);
    tty = isatty(STDERR_FILENO);
    if (log_path != NULL && (log_file = fopen(log_path, "w")) == NULL) {
        err_sys(log_path, "cannot write the log", errno);
        return TOOL_EXIT_FAIL;
    }
    rc = listen_mode ? run_receiver() : run_sender();
    clear_bar();
    if (sock != NULL)
        mpt_abort(sock);
    mpt_ctx_free(ctx);
    if (log_file != NULL && fclose(log_file) != 0) {
        err_sys(log_path, "write the log", errno);
        if (rc == TOOL_EXIT_OK)
            rc = TOOL_EXIT_FAIL;
    }
    if (rcur_fd >= 0)
        close(rcur_fd);
    if (rcur_pfd >= 0)
        close(rcur_pfd);
    if (rootfd >= 0)
        close(rootfd);
    for (size_t i = 0; i < nentries; i++) {
        if (entries[i].have > 0 && listen_mode)
            mbedtls_sha256_free(&entries[i].prefix);
        free(entries[i].name);
        free(entries[i].src);
        free(entries[i].target);
    }
    free(entries);
    free(in.p);
    free(out.p);
    free(posv);
    return rc;
}
