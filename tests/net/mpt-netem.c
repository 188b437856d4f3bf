/*
 * mpt-netem: a small path emulator (one-way delay, jitter, random loss,
 * blackhole, TCP reset) for kernels without sch_netem.
 *
 * It runs in the router namespace of the test topology (see topo.sh).  For
 * every emulated path there are two persistent TUN devices, one per
 * direction.  Policy routing in the router sends every packet that arrives
 * from the client on path i into tun "up" i, and every packet that comes
 * back from the server towards a client address of path i into tun "down" i.
 * We read each packet, hold it for the configured one-way delay, and write
 * it back into the SAME tun device: the kernel then sees it as received on
 * that tun, and a second policy rule (iif <tun>) forwards it on towards its
 * destination.  So nothing is forwarded without passing through us, and the
 * kernel still does all the routing, neighbour resolution and shaping
 * (rate is left to tbf/htb on the router's egress interfaces).
 *
 * Design choices:
 *  - One process, one thread, ppoll() with nanosecond timeouts and a timer
 *    slack of 1 ns: delays are accurate to a few tens of microseconds, which
 *    is what lets the test check delay within 1 ms.
 *  - Per direction a binary min-heap of delayed packets keyed by (due time,
 *    arrival number).  Without "reorder on", a packet's due time is clamped
 *    to be no earlier than its predecessor's, so jitter never reorders
 *    (like a real serial link); the heap then degenerates to a FIFO.
 *  - Packets live in fixed 2 KiB slots from a per-direction free list that
 *    grows lazily up to the queue limit: memory is bounded by
 *    limit * 2 KiB per direction, and no allocation happens in steady
 *    state.  Arrivals beyond the limit are dropped (drop-tail, counted).
 *  - Loss uses a per-direction xoshiro256** generator seeded from -s, so a
 *    given packet sequence sees the same losses run after run.
 *  - Configuration changes arrive as text commands: from -e at start-up,
 *    from a control FIFO at run time, and from a timeline file whose lines
 *    carry a time offset.  All three share one grammar (see usage()).
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -o mpt-netem mpt-netem.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PATHS 16
#define SLOT_SIZE 2048          /* tun MTU must fit; checked at attach */
#define DEFAULT_LIMIT 4096      /* packets per direction */
#define MAX_LIMIT (1u << 20)
#define MAX_EVENTS 100000       /* timeline lines */
#define READ_BATCH 64           /* packets read per fd per loop: fairness */
#define CTL_LINE_MAX 1024

enum mode { MODE_PASS, MODE_BLACKHOLE, MODE_RESET };
static const char *const mode_name[] = { "pass", "blackhole", "reset" };

struct pkt {
    uint64_t due_ns;
    uint64_t seq;               /* arrival order: heap tie-break */
    uint32_t len;
    struct pkt *next_free;
    unsigned char data[SLOT_SIZE];
};

struct dir {
    int path_id;
    const char *name;           /* "up" or "down" */
    char tun[IFNAMSIZ];
    int fd;
    struct dir *peer;           /* other direction: where generated RSTs go */

    uint64_t delay_ns, jitter_ns;
    double loss;                /* probability 0..1 */
    enum mode mode;
    bool reorder;
    uint32_t limit;

    struct pkt **heap;
    uint32_t n, cap;
    struct pkt *free_list;
    uint32_t allocated;
    uint64_t last_due, seq;
    uint64_t rng[4];

    uint64_t rx, rx_bytes, tx, tx_bytes;
    uint64_t drop_loss, drop_blackhole, drop_reset, drop_queue;
    uint64_t drop_oversize, drop_write, rst_sent;
};

struct event {
    uint64_t at_ns;             /* offset from timeline start */
    unsigned line;
    char *cmd;
};

static struct dir dirs[2 * MAX_PATHS];
static int ndirs;
static int ctl_fd = -1;
static char ctl_buf[CTL_LINE_MAX];
static size_t ctl_len;
static bool ctl_overflow;
static struct event *events;
static size_t nevents, next_event;
static uint64_t timeline_t0;
static volatile sig_atomic_t stop_flag;
static bool quiet;
/* Control-channel errors since the last "sync", reported by it, so that
 * the shell's mpt_netem can fail when a command was rejected. */
static unsigned ctl_errors;
static char ctl_last_error[256];

static void logmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mpt-netem: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- PRNG: splitmix64 to seed xoshiro256** ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}

static double rng_unit(uint64_t s[4])   /* uniform in [0,1) */
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static void rng_seed(struct dir *d, uint64_t seed)
{
    /* Distinct stream per direction so that changing the loss of one
     * direction does not shift the losses seen by another. */
    uint64_t x = seed ^ ((uint64_t)(d - dirs) * 0xd1b54a32d192ed03u);
    for (int i = 0; i < 4; i++)
        d->rng[i] = splitmix64(&x);
}

/* ---- delayed-packet heap ---- */

static bool pkt_before(const struct pkt *a, const struct pkt *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void heap_push(struct dir *d, struct pkt *p)
{
    uint32_t i = d->n++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!pkt_before(p, d->heap[parent]))
            break;
        d->heap[i] = d->heap[parent];
        i = parent;
    }
    d->heap[i] = p;
}

static struct pkt *heap_pop(struct dir *d)
{
    struct pkt *top = d->heap[0], *last = d->heap[--d->n];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= d->n)
            break;
        if (c + 1 < d->n && pkt_before(d->heap[c + 1], d->heap[c]))
            c++;
        if (!pkt_before(d->heap[c], last))
            break;
        d->heap[i] = d->heap[c];
        i = c;
    }
    if (d->n > 0)
        d->heap[i] = last;
    return top;
}

/* Grow the heap array when the limit is raised; never shrinks (bounded by
 * the largest limit ever configured). */
static int dir_set_limit(struct dir *d, uint32_t limit)
{
    if (limit < 1 || limit > MAX_LIMIT)
        return -1;
    if (limit > d->cap) {
        struct pkt **h = realloc(d->heap, limit * sizeof(*h));
        if (!h)
            return -1;
        d->heap = h;
        d->cap = limit;
    }
    d->limit = limit;
    return 0;
}

static struct pkt *pkt_get(struct dir *d)
{
    struct pkt *p = d->free_list;
    if (p) {
        d->free_list = p->next_free;
        return p;
    }
    if (d->allocated >= d->cap)
        return NULL;
    p = malloc(sizeof(*p));
    if (p)
        d->allocated++;
    return p;
}

static void pkt_put(struct dir *d, struct pkt *p)
{
    p->next_free = d->free_list;
    d->free_list = p;
}

/* ---- TCP reset generation ---- */

static uint32_t csum_add(uint32_t sum, const void *buf, size_t len)
{
    const unsigned char *b = buf;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (len & 1)
        sum += (uint32_t)b[len - 1] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(unsigned char *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}

/*
 * Answer a TCP segment with a RST as a middlebox would (RFC 9293 3.10.7.1:
 * if the segment has ACK, RST.seq = SEG.ack; otherwise seq 0 and
 * ACK = SEG.seq + SEG.len).  The RST is written into the opposite
 * direction's tun, so the router forwards it back to the sender without
 * delay: it is generated at the failure point, not at the far end.
 * Returns true if a RST was sent.
 */
static bool send_rst(struct dir *d, const unsigned char *p, size_t len)
{
    unsigned char out[60];
    const unsigned char *tcp;
    size_t iplen, tcplen, payload, hl;
    int v = len ? p[0] >> 4 : 0;

    memset(out, 0, sizeof(out));
    if (v == 4) {
        hl = (size_t)(p[0] & 15) * 4;
        if (len < 20 || hl < 20 || len < hl + 20 || p[9] != 6)
            return false;
        if ((p[6] & 0x1f) || p[7])     /* not the first fragment */
            return false;
        iplen = (size_t)p[2] << 8 | p[3];
        if (iplen > len || iplen < hl + 20)
            return false;
        tcp = p + hl;
        tcplen = iplen - hl;
    } else if (v == 6) {
        hl = 40;
        if (len < 60 || p[6] != 6)     /* no extension headers handled */
            return false;
        iplen = 40 + ((size_t)p[4] << 8 | p[5]);
        if (iplen > len)
            return false;
        tcp = p + hl;
        tcplen = iplen - hl;
    } else {
        return false;
    }
    size_t doff = (size_t)(tcp[12] >> 4) * 4;
    uint8_t flags = tcp[13];
    if (doff < 20 || doff > tcplen || (flags & 0x04))  /* never answer a RST */
        return false;
    payload = tcplen - doff;

    unsigned char *ot;
    size_t olen;
    uint32_t sum = 0;
    if (v == 4) {
        olen = 40;
        out[0] = 0x45;
        put16(out + 2, 40);
        out[6] = 0x40;                 /* DF */
        out[8] = 64;
        out[9] = 6;
        memcpy(out + 12, p + 16, 4);   /* swap addresses */
        memcpy(out + 16, p + 12, 4);
        put16(out + 10, csum_fold(csum_add(0, out, 20)));
        ot = out + 20;
        sum = csum_add(sum, out + 12, 8);
        sum += 6 + 20;
    } else {
        olen = 60;
        out[0] = 0x60;
        put16(out + 4, 20);
        out[6] = 6;
        out[7] = 64;
        memcpy(out + 8, p + 24, 16);
        memcpy(out + 24, p + 8, 16);
        ot = out + 40;
        sum = csum_add(sum, out + 8, 32);
        sum += 6 + 20;
    }
    memcpy(ot, tcp + 2, 2);            /* swap ports */
    memcpy(ot + 2, tcp, 2);
    if (flags & 0x10) {                /* ACK set */
        memcpy(ot + 4, tcp + 8, 4);
        ot[13] = 0x04;
    } else {
        uint32_t ack = get32(tcp + 4) + (uint32_t)payload
                       + ((flags & 0x02) ? 1 : 0) + ((flags & 0x01) ? 1 : 0);
        put32(ot + 8, ack);
        ot[13] = 0x14;
    }
    ot[12] = 5 << 4;
    put16(ot + 16, csum_fold(csum_add(sum, ot, 20)));
    if (write(d->peer->fd, out, olen) != (ssize_t)olen)
        return false;
    d->rst_sent++;
    return true;
}

/* ---- packet path ---- */

static int64_t jitter_sample(struct dir *d)
{
    if (!d->jitter_ns)
        return 0;
    /* Uniform in [-jitter, +jitter]. */
    double u = rng_unit(d->rng) * 2.0 - 1.0;
    return (int64_t)(u * (double)d->jitter_ns);
}

static bool is_tcp(const unsigned char *p, size_t len)
{
    if (len >= 20 && p[0] >> 4 == 4)
        return p[9] == 6;
    if (len >= 40 && p[0] >> 4 == 6)
        return p[6] == 6;
    return false;
}

static void on_packet(struct dir *d, struct pkt *p, uint64_t now)
{
    d->rx++;
    d->rx_bytes += p->len;
    if (d->mode == MODE_BLACKHOLE) {
        d->drop_blackhole++;
        goto drop;
    }
    if (d->mode == MODE_RESET) {
        if (is_tcp(p->data, p->len))
            send_rst(d, p->data, p->len);
        d->drop_reset++;
        goto drop;
    }
    if (d->loss > 0 && rng_unit(d->rng) < d->loss) {
        d->drop_loss++;
        goto drop;
    }
    if (d->n >= d->limit) {
        d->drop_queue++;
        goto drop;
    }
    int64_t due = (int64_t)(now + d->delay_ns) + jitter_sample(d);
    if (due < (int64_t)now)
        due = (int64_t)now;
    if (!d->reorder && (uint64_t)due < d->last_due)
        due = (int64_t)d->last_due;
    d->last_due = (uint64_t)due;
    p->due_ns = (uint64_t)due;
    p->seq = d->seq++;
    heap_push(d, p);
    return;
drop:
    pkt_put(d, p);
}

static void read_tun(struct dir *d)
{
    for (int i = 0; i < READ_BATCH; i++) {
        struct pkt *p = pkt_get(d);
        unsigned char scratch[SLOT_SIZE];
        unsigned char *buf = p ? p->data : scratch;
        ssize_t r = read(d->fd, buf, SLOT_SIZE);
        if (r <= 0) {
            if (p)
                pkt_put(d, p);
            if (r < 0 && errno != EAGAIN && errno != EINTR)
                logmsg("read %s: %s", d->tun, strerror(errno));
            return;
        }
        if (!p) {
            /* Pool exhausted means the queue is at its limit: a
             * drop-tail loss, but still counted as received. */
            d->rx++;
            d->rx_bytes += (uint64_t)r;
            d->drop_queue++;
            continue;
        }
        if (r >= SLOT_SIZE) {          /* possibly truncated */
            d->rx++;
            d->drop_oversize++;
            pkt_put(d, p);
            continue;
        }
        p->len = (uint32_t)r;
        on_packet(d, p, now_ns());
    }
}

static void release_due(struct dir *d, uint64_t now)
{
    while (d->n > 0 && d->heap[0]->due_ns <= now) {
        struct pkt *p = heap_pop(d);
        ssize_t w = write(d->fd, p->data, p->len);
        if (w == (ssize_t)p->len) {
            d->tx++;
            d->tx_bytes += p->len;
        } else {
            d->drop_write++;
        }
        pkt_put(d, p);
    }
}

/* ---- commands ---- */

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int start_timeline(const char *file, char *err, size_t errlen);

static void write_stats(const char *file)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", file) >= (int)sizeof(tmp))
        return;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        logmsg("stats %s: %s", tmp, strerror(errno));
        return;
    }
    for (int i = 0; i < ndirs; i++) {
        struct dir *d = &dirs[i];
        fprintf(f, "path %d dir %s tun %s mode %s delay_ms %.3f jitter_ms %.3f"
                " loss_pct %.3f limit %" PRIu32 " queued %" PRIu32
                " rx %" PRIu64 " rx_bytes %" PRIu64 " tx %" PRIu64
                " tx_bytes %" PRIu64 " drop_loss %" PRIu64
                " drop_blackhole %" PRIu64 " drop_reset %" PRIu64
                " drop_queue %" PRIu64 " drop_oversize %" PRIu64
                " drop_write %" PRIu64 " rst_sent %" PRIu64 "\n",
                d->path_id, d->name, d->tun, mode_name[d->mode],
                d->delay_ns / 1e6, d->jitter_ns / 1e6, d->loss * 100.0,
                d->limit, d->n, d->rx, d->rx_bytes, d->tx, d->tx_bytes,
                d->drop_loss, d->drop_blackhole, d->drop_reset, d->drop_queue,
                d->drop_oversize, d->drop_write, d->rst_sent);
    }
    if (fclose(f) != 0 || rename(tmp, file) != 0)
        logmsg("stats %s: %s", file, strerror(errno));
}

/* "sync FILE": FILE appears once every earlier command has been applied.
 * It carries our clock (CLOCK_MONOTONIC, shared by all namespaces) and the
 * running timeline's start, so a test can line up its own timestamps with
 * the timeline's without guessing process start-up delays. */
static void write_sync(const char *file)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", file) >= (int)sizeof(tmp))
        return;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        logmsg("sync %s: %s", tmp, strerror(errno));
        return;
    }
    fprintf(f, "now_ns %" PRIu64 " timeline_start_ns %" PRIu64 " errors %u last_error %s\n",
            now_ns(), nevents ? timeline_t0 : 0, ctl_errors, ctl_errors ? ctl_last_error : "-");
    ctl_errors = 0;
    if (fclose(f) != 0 || rename(tmp, file) != 0)
        logmsg("sync %s: %s", file, strerror(errno));
}

/*
 * Execute one command line (already stripped of any timeline time).
 * Grammar: see usage().  With apply false, only validate (used to check a
 * whole timeline before starting it).  Returns 0, or -1 with a message.
 */
static int run_command(char *line, bool apply, char *err, size_t errlen)
{
    char *tok[16];
    int nt = 0;
    for (char *s = strtok(line, " \t\r\n"); s && nt < 16; s = strtok(NULL, " \t\r\n"))
        tok[nt++] = s;
    if (nt == 0 || tok[0][0] == '#')
        return 0;

    if (!strcmp(tok[0], "quit")) {
        if (apply)
            stop_flag = 1;
        return 0;
    }
    if (!strcmp(tok[0], "stats") || !strcmp(tok[0], "sync") || !strcmp(tok[0], "timeline")) {
        if (nt != 2) {
            snprintf(err, errlen, "%s needs one file argument", tok[0]);
            return -1;
        }
        if (!apply)
            return 0;
        if (tok[0][1] == 't')
            write_stats(tok[1]);
        else if (tok[0][1] == 'y')
            write_sync(tok[1]);
        else
            return start_timeline(tok[1], err, errlen);
        return 0;
    }

    /* TARGET [DIR] ACTION [ARGS] */
    int path = -1;                      /* -1: all */
    if (strcmp(tok[0], "all")) {
        char *end;
        long v = strtol(tok[0], &end, 10);
        if (*end || v < 0 || v > INT_MAX) {
            snprintf(err, errlen, "bad target '%s' (path id or 'all')", tok[0]);
            return -1;
        }
        path = (int)v;
    }
    int i = 1, want_up = 1, want_down = 1;
    if (i < nt && !strcmp(tok[i], "up")) { want_down = 0; i++; }
    else if (i < nt && !strcmp(tok[i], "down")) { want_up = 0; i++; }
    else if (i < nt && !strcmp(tok[i], "both")) { i++; }
    if (i >= nt) {
        snprintf(err, errlen, "missing action");
        return -1;
    }
    const char *act = tok[i++];
    int nargs = nt - i;
    char **args = tok + i;

    /* Link state is the shell's job (ip link); timelines may mention it so
     * one file can drive both. */
    if (!strcmp(act, "linkdown") || !strcmp(act, "linkup"))
        return 0;

    double a = 0, b = 0;
    enum { A_DELAY, A_JITTER, A_LOSS, A_LIMIT, A_MODE, A_REORDER } kind;
    enum mode m = MODE_PASS;
    bool reorder = false;
    if (!strcmp(act, "delay") && (nargs == 1 || nargs == 2)) {
        kind = A_DELAY;
        if (parse_double(args[0], 0, 3600e3, &a) ||
            (nargs == 2 && parse_double(args[1], 0, 3600e3, &b)))
            goto badarg;
    } else if (!strcmp(act, "jitter") && nargs == 1) {
        kind = A_JITTER;
        if (parse_double(args[0], 0, 3600e3, &b))
            goto badarg;
    } else if (!strcmp(act, "loss") && nargs == 1) {
        kind = A_LOSS;
        if (parse_double(args[0], 0, 100, &a))
            goto badarg;
    } else if (!strcmp(act, "limit") && nargs == 1) {
        kind = A_LIMIT;
        if (parse_double(args[0], 1, MAX_LIMIT, &a))
            goto badarg;
    } else if (!strcmp(act, "reorder") && nargs == 1 &&
               (!strcmp(args[0], "on") || !strcmp(args[0], "off"))) {
        kind = A_REORDER;
        reorder = !strcmp(args[0], "on");
    } else if (nargs == 0 && (!strcmp(act, "blackhole") || !strcmp(act, "reset") ||
                              !strcmp(act, "restore") || !strcmp(act, "pass"))) {
        kind = A_MODE;
        m = act[0] == 'b' ? MODE_BLACKHOLE : act[0] == 'r' && act[2] == 's' && act[3] == 'e'
            ? MODE_RESET : MODE_PASS;
    } else {
        snprintf(err, errlen, "unknown action or wrong arguments: '%s'", act);
        return -1;
    }

    int matched = 0;
    for (int k = 0; k < ndirs; k++) {
        struct dir *d = &dirs[k];
        bool up = !strcmp(d->name, "up");
        if ((path >= 0 && d->path_id != path) || (up ? !want_up : !want_down))
            continue;
        matched++;
        if (!apply)
            continue;
        switch (kind) {
        case A_DELAY:
            d->delay_ns = (uint64_t)(a * 1e6);
            if (nargs == 2)
                d->jitter_ns = (uint64_t)(b * 1e6);
            break;
        case A_JITTER: d->jitter_ns = (uint64_t)(b * 1e6); break;
        case A_LOSS: d->loss = a / 100.0; break;
        case A_LIMIT:
            if (dir_set_limit(d, (uint32_t)a)) {
                snprintf(err, errlen, "cannot set limit %.0f", a);
                return -1;
            }
            break;
        case A_MODE: d->mode = m; break;
        case A_REORDER: d->reorder = reorder; break;
        }
    }
    if (!matched) {
        snprintf(err, errlen, "no such path '%s'", tok[0]);
        return -1;
    }
    return 0;
badarg:
    snprintf(err, errlen, "bad argument for '%s'", act);
    return -1;
}

static void free_events(void)
{
    for (size_t i = 0; i < nevents; i++)
        free(events[i].cmd);
    free(events);
    events = NULL;
    nevents = next_event = 0;
}

static int event_cmp(const void *pa, const void *pb)
{
    const struct event *a = pa, *b = pb;
    if (a->at_ns != b->at_ns)
        return a->at_ns < b->at_ns ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;   /* stable */
}

/*
 * Load a timeline ("SECONDS COMMAND..." per line) and start it now,
 * replacing any running timeline.  Every command is validated first,
 * so a typo fails loudly at load time rather than
 * silently in the middle of an experiment.
 */
static int start_timeline(const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "timeline %s: %s", file, strerror(errno));
        return -1;
    }
    struct event *ev = NULL;
    size_t n = 0, cap = 0;
    char line[CTL_LINE_MAX];
    unsigned lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = line + strspn(line, " \t");
        if (*s == '#' || *s == '\n' || *s == '\0')
            continue;
        char *end;
        double t = strtod(s, &end);
        if (end == s || !(t >= 0 && t < 1e6) || (*end != ' ' && *end != '\t')) {
            snprintf(err, errlen, "%s:%u: expected 'SECONDS COMMAND'", file, lineno);
            rc = -1;
            break;
        }
        char *cmd = end + strspn(end, " \t");
        cmd[strcspn(cmd, "\r\n")] = '\0';
        /* A timeline may not nest timelines or stop the emulator. */
        char check[CTL_LINE_MAX];
        snprintf(check, sizeof(check), "%s", cmd);
        char *first = strtok(check, " \t");
        if (!first || !strcmp(first, "quit") || !strcmp(first, "timeline")) {
            snprintf(err, errlen, "%s:%u: command not allowed in a timeline", file, lineno);
            rc = -1;
            break;
        }
        if (n == MAX_EVENTS) {
            snprintf(err, errlen, "%s: more than %d events", file, MAX_EVENTS);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct event *ne = realloc(ev, cap * sizeof(*ne));
            if (!ne) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            ev = ne;
        }
        ev[n].at_ns = (uint64_t)(t * 1e9);
        ev[n].line = lineno;
        ev[n].cmd = strdup(cmd);
        if (!ev[n].cmd) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        n++;
    }
    fclose(f);
    for (size_t k = 0; k < n && rc == 0; k++) {
        char copy[CTL_LINE_MAX], e2[160];
        snprintf(copy, sizeof(copy), "%s", ev[k].cmd);
        if (run_command(copy, false, e2, sizeof(e2))) {
            snprintf(err, errlen, "%s:%u: %s", file, ev[k].line, e2);
            rc = -1;
        }
    }
    if (rc) {
        for (size_t k = 0; k < n; k++)
            free(ev[k].cmd);
        free(ev);
        return -1;
    }
    qsort(ev, n, sizeof(*ev), event_cmp);
    free_events();
    events = ev;
    nevents = n;
    timeline_t0 = now_ns();
    if (!quiet)
        logmsg("timeline %s started: %zu events", file, n);
    return 0;
}

static void run_due_events(uint64_t now)
{
    while (next_event < nevents && timeline_t0 + events[next_event].at_ns <= now) {
        struct event *e = &events[next_event++];
        char copy[CTL_LINE_MAX], err[256];
        snprintf(copy, sizeof(copy), "%s", e->cmd);
        if (run_command(copy, true, err, sizeof(err)))
            logmsg("timeline line %u: %s", e->line, err);
        else if (!quiet)
            logmsg("t=%.3f %s", (now - timeline_t0) / 1e9, e->cmd);
    }
}

static void read_ctl(void)
{
    char buf[4096];
    ssize_t r;
    while ((r = read(ctl_fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            char c = buf[i];
            if (c != '\n') {
                if (ctl_len + 1 < sizeof(ctl_buf))
                    ctl_buf[ctl_len++] = c;
                else
                    ctl_overflow = true;
                continue;
            }
            ctl_buf[ctl_len] = '\0';
            if (ctl_overflow) {
                logmsg("control line too long, ignored");
            } else {
                char err[256];
                if (!quiet)
                    logmsg("ctl: %s", ctl_buf);
                if (run_command(ctl_buf, true, err, sizeof(err))) {
                    logmsg("ctl: %s", err);
                    ctl_errors++;
                    snprintf(ctl_last_error, sizeof(ctl_last_error), "%s", err);
                }
            }
            ctl_len = 0;
            ctl_overflow = false;
        }
    }
}

/* ---- setup ---- */

static int tun_attach(const char *name)
{
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        logmsg("/dev/net/tun: %s", strerror(errno));
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        logmsg("TUNSETIFF %s: %s", name, strerror(errno));
        close(fd);
        return -1;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) {
        struct ifreq q;
        memset(&q, 0, sizeof(q));
        snprintf(q.ifr_name, IFNAMSIZ, "%s", name);
        if (ioctl(s, SIOCGIFMTU, &q) == 0 && q.ifr_mtu > SLOT_SIZE) {
            logmsg("%s: MTU %d exceeds %d, lower it", name, q.ifr_mtu, SLOT_SIZE);
            close(s);
            close(fd);
            return -1;
        }
        close(s);
    }
    return fd;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fputs(
"usage: mpt-netem [options] ID:UPTUN:DOWNTUN [ID:UPTUN:DOWNTUN ...]\n"
"  Forwards packets read from each tun back into the same tun after the\n"
"  configured one-way delay.  ID is a path number (0..N), UPTUN carries\n"
"  client->server packets, DOWNTUN server->client packets.\n"
"options:\n"
"  -e CMD     run a command before forwarding starts (repeatable)\n"
"  -c FIFO    read commands (one per line) from this FIFO (created if absent)\n"
"  -t FILE    start this timeline at start-up\n"
"  -s SEED    PRNG seed for loss and jitter (default 1)\n"
"  -l N       queue limit per direction, packets (default 4096)\n"
"  -r FILE    write our PID to FILE once all tuns are attached\n"
"  -R PRIO    run with SCHED_FIFO priority PRIO (accurate delays under load)\n"
"  -q         quiet: log errors only\n"
"commands:\n"
"  TARGET [up|down|both] delay MS [JITTER_MS]   one-way delay (+/- uniform jitter)\n"
"  TARGET [up|down|both] jitter MS\n"
"  TARGET [up|down|both] loss PCT               random loss, percent\n"
"  TARGET [up|down|both] limit PKTS             queue limit (drop-tail)\n"
"  TARGET [up|down|both] reorder on|off         allow jitter to reorder\n"
"  TARGET [up|down|both] blackhole              drop everything silently\n"
"  TARGET [up|down|both] reset                  drop; answer TCP with RST\n"
"  TARGET [up|down|both] restore                back to normal forwarding\n"
"  TARGET [up|down|both] linkdown|linkup        ignored (handled by the shell)\n"
"  stats FILE      write counters to FILE (atomically)\n"
"  sync FILE       create FILE once all earlier commands are applied; it holds\n"
"                  'now_ns T timeline_start_ns T0 errors N last_error MSG'\n"
"                  (CLOCK_MONOTONIC; N = rejected commands since the last sync)\n"
"  timeline FILE   start FILE now; lines are 'SECONDS COMMAND'\n"
"  quit\n"
"  TARGET is a path ID or 'all'; the default direction is both.\n", f);
}

int main(int argc, char **argv)
{
    const char *ctl_path = NULL, *timeline = NULL, *ready = NULL;
    char *cmds[64];
    int ncmds = 0, opt;
    uint64_t seed = 1;
    unsigned long limit = DEFAULT_LIMIT;

    int rtprio = 0;
    while ((opt = getopt(argc, argv, "e:c:t:s:l:r:R:qh")) != -1) {
        switch (opt) {
        case 'e':
            if (ncmds == 64) {
                logmsg("too many -e");
                return 2;
            }
            cmds[ncmds++] = optarg;
            break;
        case 'c': ctl_path = optarg; break;
        case 't': timeline = optarg; break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'l':
            limit = strtoul(optarg, NULL, 0);
            if (limit < 1 || limit > MAX_LIMIT) {
                logmsg("bad -l");
                return 2;
            }
            break;
        case 'r': ready = optarg; break;
        case 'R': rtprio = atoi(optarg); break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }

    int rc = 1;
    for (int a = optind; a < argc; a++) {
        char spec[64], *up, *down;
        snprintf(spec, sizeof(spec), "%s", argv[a]);
        up = strchr(spec, ':');
        down = up ? strchr(up + 1, ':') : NULL;
        if (!up || !down || ndirs + 2 > 2 * MAX_PATHS) {
            logmsg("bad path spec '%s' (ID:UPTUN:DOWNTUN, at most %d)", argv[a], MAX_PATHS);
            goto out;
        }
        *up++ = '\0';
        *down++ = '\0';
        char *end;
        long id = strtol(spec, &end, 10);
        if (*end || id < 0 || id > 1000) {
            logmsg("bad path id '%s'", spec);
            goto out;
        }
        for (int k = 0; k < 2; k++) {
            struct dir *d = &dirs[ndirs++];
            d->path_id = (int)id;
            d->name = k ? "down" : "up";
            snprintf(d->tun, sizeof(d->tun), "%s", k ? down : up);
            d->fd = -1;
            rng_seed(d, seed);
            if (dir_set_limit(d, (uint32_t)limit)) {
                logmsg("out of memory");
                goto out;
            }
        }
        dirs[ndirs - 2].peer = &dirs[ndirs - 1];
        dirs[ndirs - 1].peer = &dirs[ndirs - 2];
    }
    for (int i = 0; i < ncmds; i++) {
        char line[CTL_LINE_MAX], err[256];
        snprintf(line, sizeof(line), "%s", cmds[i]);
        if (run_command(line, true, err, sizeof(err))) {
            logmsg("-e '%s': %s", cmds[i], err);
            goto out;
        }
    }
    for (int i = 0; i < ndirs; i++)
        if ((dirs[i].fd = tun_attach(dirs[i].tun)) < 0)
            goto out;
    if (ctl_path) {
        if (mkfifo(ctl_path, 0600) < 0 && errno != EEXIST) {
            logmsg("mkfifo %s: %s", ctl_path, strerror(errno));
            goto out;
        }
        /* O_RDWR: we hold a writer ourselves, so the FIFO never reports
         * EOF when a shell's echo closes it. */
        ctl_fd = open(ctl_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (ctl_fd < 0) {
            logmsg("open %s: %s", ctl_path, strerror(errno));
            goto out;
        }
    }
    if (timeline) {
        char err[256];
        if (start_timeline(timeline, err, sizeof(err))) {
            logmsg("%s", err);
            goto out;
        }
    }

    /* Delay accuracy: without this, every timed wake-up may be late by
     * the default 50 us slack. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* On a busy machine an ordinary thread is woken milliseconds late
     * now and then, which shows up as delay the experiment did not ask
     * for.  We sleep between packets, so SCHED_FIFO costs the rest of the
     * system little (and the kernel's RT throttling bounds it). */
    if (rtprio > 0) {
        struct sched_param sp = { .sched_priority = rtprio };
        if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
            logmsg("SCHED_FIFO %d: %s (continuing)", rtprio, strerror(errno));
    }

    sigset_t block, orig;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &orig);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (ready) {
        /* Written last and with our PID: the shell waits for this file and
         * uses the PID to stop exactly this process later. */
        char tmp[PATH_MAX];
        FILE *f;
        if (snprintf(tmp, sizeof(tmp), "%s.tmp", ready) >= (int)sizeof(tmp) ||
            !(f = fopen(tmp, "w"))) {
            logmsg("cannot write %s", ready);
            goto out;
        }
        fprintf(f, "%ld\n", (long)getpid());
        if (fclose(f) != 0 || rename(tmp, ready) != 0) {
            logmsg("cannot write %s", ready);
            goto out;
        }
    }
    if (!quiet)
        logmsg("forwarding %d paths", ndirs / 2);

    struct pollfd pfd[2 * MAX_PATHS + 1];
    int npfd = 0;
    for (int i = 0; i < ndirs; i++)
        pfd[npfd++] = (struct pollfd){ .fd = dirs[i].fd, .events = POLLIN };
    if (ctl_fd >= 0)
        pfd[npfd++] = (struct pollfd){ .fd = ctl_fd, .events = POLLIN };

    while (!stop_flag) {
        uint64_t now = now_ns();
        run_due_events(now);
        uint64_t next = UINT64_MAX;
        for (int i = 0; i < ndirs; i++) {
            release_due(&dirs[i], now);
            if (dirs[i].n > 0 && dirs[i].heap[0]->due_ns < next)
                next = dirs[i].heap[0]->due_ns;
        }
        if (next_event < nevents && timeline_t0 + events[next_event].at_ns < next)
            next = timeline_t0 + events[next_event].at_ns;

        struct timespec ts, *tsp = NULL;
        if (next != UINT64_MAX) {
            uint64_t t = now_ns();
            uint64_t wait = next > t ? next - t : 0;
            ts.tv_sec = (time_t)(wait / 1000000000u);
            ts.tv_nsec = (long)(wait % 1000000000u);
            tsp = &ts;
        }
        int r = ppoll(pfd, (nfds_t)npfd, tsp, &orig);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            logmsg("ppoll: %s", strerror(errno));
            goto out;
        }
        for (int i = 0; i < ndirs && r > 0; i++)
            if (pfd[i].revents & POLLIN)
                read_tun(&dirs[i]);
        if (ctl_fd >= 0 && (pfd[npfd - 1].revents & POLLIN))
            read_ctl();
    }
    rc = 0;
    if (!quiet)
        for (int i = 0; i < ndirs; i++)
            logmsg("path %d %s: rx %" PRIu64 " tx %" PRIu64 " loss %" PRIu64
                   " blackhole %" PRIu64 " reset %" PRIu64 " qdrop %" PRIu64,
                   dirs[i].path_id, dirs[i].name, dirs[i].rx, dirs[i].tx,
                   dirs[i].drop_loss, dirs[i].drop_blackhole,
                   dirs[i].drop_reset, dirs[i].drop_queue);
out:
    for (int i = 0; i < ndirs; i++) {
        struct dir *d = &dirs[i];
        while (d->n > 0)
            pkt_put(d, heap_pop(d));
        for (struct pkt *p = d->free_list, *nx; p; p = nx) {
            nx = p->next_free;
            free(p);
        }
        free(d->heap);
        if (d->fd >= 0)
            close(d->fd);
    }
    free_events();
    if (ctl_fd >= 0)
        close(ctl_fd);
    return rc;
}
