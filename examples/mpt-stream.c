/*
 * mpt-stream: timestamped messages over libmpt, and their one-way latency.
 *
 *   mpt-stream [options] HOST PORT [--rate BITS] [--size BYTES] [--duration S]
 *   mpt-stream [options] HOST PORT --stdin [--size BYTES]
 *   mpt-stream [options] -l [ADDR]... PORT [--stall MS] [--interval S]
 *
 * The source sends messages at a constant bitrate (or one per chunk read
 * from standard input), each stamped with CLOCK_REALTIME when it is handed
 * to mpt_send(); the sink (-l) stamps each on arrival and prints, every
 * interval, the latency percentiles, stalls, the delivered rate and each
 * subflow's share, then a summary. The wire format is below; doc/man/
 * mpt-stream.1 is the user's documentation.
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#include "tool.h"

#define EXIT_LOCAL_IO 3

/*
 * Every message starts with this header, big-endian:
 *   0  u16 magic 0x4d53 ("MS")   2  u8 version (1)   3  u8 type
 *   4  u32 length of the whole message, header included
 *   8  u64 sequence number (DATA: from 0; END: the number of DATA messages)
 *   16 u64 CLOCK_REALTIME in ns when the source handed it to mpt_send
 * HELLO (first) carries "key=value ..." text describing the source; DATA the
 * payload; END nothing more.
 */
#define HDR 24
#define MAGIC 0x4d53
#define VERSION 1
enum { MSG_HELLO = 0, MSG_DATA = 1, MSG_END = 2 };
#define MAX_MSG (1u << 20)

static struct tool T;
static struct ev_loop *loop;
static struct mpt_ctx *ctx;
static struct mpt_listener *listener;
static struct mpt_socket *sock;
static char where[400];
static int exit_code = TOOL_EXIT_OK;
static int reported, closed_seen, close_status;

/* ---- options ------------------------------------------------------------------ */

static int listening, from_stdin;
static const char *host;
static uint16_t port;
static const char *laddrs[TOOL_MAX_ADDRS];
static size_t nladdrs;
static double rate = 1e6;        /* bit/s */
static uint64_t msg_size = 1024; /* bytes, header included */
static double duration = 10.0;   /* s; 0: until SIGINT or SIGTERM */
static double stall_ms = -1.0;   /* sink: < 0: max(100 ms, 3 message intervals) */
static double report_s = 1.0;

static double realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

static void fail(const char *what, int err)
{
    if (!reported)
        tool_conn_error(&T, sock, where, what, err);
    reported = 1;
    if (exit_code == TOOL_EXIT_OK)
        exit_code = TOOL_EXIT_FAIL;
}

/* --stats once: at the end of the stream, while the subflows still exist
 * (they are gone once the close completes), or at the end of a failure. */
static void stats_once(void)
{
    static int done;

    if (T.stats && sock != NULL && !done) {
        done = 1;
        tool_print_stats(&T, stderr, sock);
    }
}

static void on_subflow(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    tool_subflow_event(&T, sf);
}

/* ================================ source ===================================== */

static ev_timer tick_w;
static ev_io in_w;
static uint8_t *msg;            /* the message being handed to libmpt */
static size_t msg_len, msg_off; /* its length and how much libmpt took */
static uint64_t seq, data_bytes, late;
static double t_start, interval, max_behind;
static int hello_done, end_queued, shut, src_in_eof, stopping_src;

static void src_finish_stream(void);

static void build(uint8_t type, uint64_t n, const void *payload, size_t plen, size_t total)
{
    put16(msg, MAGIC);
    msg[2] = VERSION;
    msg[3] = type;
    put32(msg + 4, (uint32_t)total);
    put64(msg + 8, n);
    put64(msg + 16, realtime_ns());
    if (payload != NULL)
        memcpy(msg + HDR, payload, plen);
    else
        memset(msg + HDR, 0, total - HDR);
    msg_len = total;
    msg_off = 0;
}

/* Hands the current message to libmpt; 1 when all of it was taken, 0 when
 * libmpt is full (`writable` resumes), -1 after a failure. */
static int push(void)
{
    while (msg_off < msg_len) {
        ssize_t n = mpt_send(sock, msg + msg_off, msg_len - msg_off);
        if (n == MPT_EAGAIN)
            return 0;
        if (n < 0) {
            fail("send", (int)n);
            return -1;
        }
        msg_off += (size_t)n;
    }
    msg_len = msg_off = 0;
    return 1;
}

/* Sends the messages that are due; with a backlog (libmpt full) the
 * rest waits for `writable`. */
static void src_pump(void)
{
    int rc;

    if (sock == NULL || closed_seen || shut)
        return;
    if ((rc = push()) <= 0)
        return;
    if (!hello_done) {
        char text[300];
        struct mpt_info info = {.size = sizeof info};
        (void)mpt_get_info(sock, &info);
        int n = snprintf(text, sizeof text, "mode=%s rate_bps=%.0f size=%" PRIu64
                         " interval_ms=%.3f scheduler=%s cc=%s",
                         from_stdin ? "stdin" : "cbr", from_stdin ? 0.0 : rate, msg_size,
                         from_stdin ? 0.0 : interval * 1e3, info.scheduler ? info.scheduler : "?",
                         info.congestion ? info.congestion : "?");
        build(MSG_HELLO, 0, text, (size_t)n, HDR + (size_t)n);
        hello_done = 1;
        t_start = tool_now();
        if ((rc = push()) <= 0)
            return;
    }
    if (!from_stdin && !end_queued) {
        double now = tool_now(), el = now - t_start;
        uint64_t due = (uint64_t)(el / interval) + 1;
        if (duration > 0) {
            uint64_t all = (uint64_t)(duration / interval);
            if (due > all)
                due = all;
            if (el >= duration)
                stopping_src = 1;
        }
        while (seq < due) {
            double behind = now - (t_start + (double)seq * interval);
            if (behind > interval + 0.001) {
                late++;
                if (behind > max_behind)
                    max_behind = behind;
            }
            build(MSG_DATA, seq++, NULL, 0, (size_t)msg_size);
            data_bytes += msg_size;
            if ((rc = push()) <= 0)
                return;
        }
    }
    if ((stopping_src || src_in_eof) && !end_queued) {
        build(MSG_END, seq, NULL, 0, HDR);
        end_queued = 1;
        if ((rc = push()) <= 0)
            return;
    }
    if (end_queued && msg_len == 0)
        src_finish_stream();
    else if (from_stdin && !src_in_eof)
        ev_io_start(loop, &in_w);
}

static void src_finish_stream(void)
{
    int rc;

    if (shut)
        return;
    shut = 1;
    ev_timer_stop(loop, &tick_w);
    ev_io_stop(loop, &in_w);
    stats_once();
    if ((rc = mpt_shutdown(sock)) < 0)
        fail("end of stream", rc);
    tool_verbose(&T, "%s: %" PRIu64 " messages sent, end of stream", where, seq);
}

static void tick_cb(EV_P_ ev_timer *w, int revents)
{
    src_pump();
}

static void src_stdin_cb(EV_P_ ev_io *w, int revents)
{
    static uint8_t chunk[MAX_MSG];
    ssize_t n;

    if (msg_len != 0) { /* libmpt has not taken the last one yet */
        ev_io_stop(EV_A_ w);
        return;
    }
    n = read(STDIN_FILENO, chunk, (size_t)msg_size - HDR);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        tool_error_errno(&T, "standard input", "read", errno);
        exit_code = EXIT_LOCAL_IO;
        reported = 1;
        mpt_abort(sock);
        sock = NULL;
        ev_break(EV_A_ EVBREAK_ALL);
        return;
    }
    if (n == 0) {
        src_in_eof = 1;
        ev_io_stop(EV_A_ w);
    } else {
        build(MSG_DATA, seq++, chunk, (size_t)n, HDR + (size_t)n);
        data_bytes += HDR + (uint64_t)n;
        if (push() == 0)
            ev_io_stop(EV_A_ w); /* `writable` resumes */
    }
    src_pump();
}

static void src_connected(struct mpt_socket *s, int status, void *user)
{
    if (status < 0) {
        char what[400] = "connect";
        int n = (int)strlen(what);
        for (size_t i = 0; i < T.npaths && n < (int)sizeof what; i++)
            n += snprintf(what + n, sizeof what - (size_t)n, "%s%s", i ? "," : " over paths ",
                          T.paths[i]);
        fail(what, status);
        return;
    }
    tool_verbose(&T, "connected to %s", where);
    if (!from_stdin) {
        double tick = interval < 0.001 ? 0.001 : interval;
        ev_timer_init(&tick_w, tick_cb, 0.0, tick);
        ev_timer_start(loop, &tick_w);
    }
    src_pump();
}

static void src_readable(struct mpt_socket *s, void *user)
{
    uint8_t buf[4096];

    for (;;) {
        ssize_t n = mpt_recv(s, buf, sizeof buf);
        if (n == MPT_EAGAIN)
            return;
        if (n < 0) {
            fail("receive", (int)n);
            return;
        }
        if (n == 0)
            return; /* the sink's end: `closed` follows */
        /* The sink sends nothing; anything it does is ignored. */
    }
}

static void src_writable(struct mpt_socket *s, void *user)
{
    src_pump();
}

static void src_closed(struct mpt_socket *s, int status, void *user)
{
    closed_seen = 1;
    close_status = status;
    if (status < 0)
        fail("the connection was aborted", status);
    else if (!shut)
        fail("the sink ended the stream early", MPT_ECLOSED);
    ev_break(loop, EVBREAK_ALL);
}

static const struct mpt_callbacks src_cbs = {
    .connected = src_connected,
    .readable = src_readable,
    .writable = src_writable,
    .subflow_up = on_subflow,
    .subflow_down = on_subflow,
    .closed = src_closed,
};

static void src_report(void)
{
    double el = hello_done ? tool_now() - t_start : 0.0;
    double secs = from_stdin || duration <= 0 || el < duration ? el : duration;

    printf("sent msgs=%" PRIu64 " bytes=%" PRIu64 " duration_s=%.3f rate_mbps=%.3f "
           "target_mbps=%.3f late=%" PRIu64 " max_behind_ms=%.3f\n",
           seq, data_bytes, secs, secs > 0 ? (double)data_bytes * 8 / secs / 1e6 : 0.0,
           from_stdin ? 0.0 : rate / 1e6, late, max_behind * 1e3);
    fflush(stdout);
}

/* ================================= sink ====================================== */

static ev_timer report_w;
static uint8_t *rbuf;
static size_t rlen;
static int got_hello, got_end, sink_eof;
static double t_sink0; /* tool_now() at accept: the reports' t= */
static uint64_t end_count, msgs_total, bytes_total, expect_seq, negative, stalls_total;
static double first_arrival, last_arrival, t_report, longest_gap, stall_thr;
static double src_interval_ms;
/* This interval's latencies (s), exact percentiles. */
static double *lat;
static size_t nlat, caplat;
static uint64_t iv_bytes, iv_stalls;
static double iv_max_gap;
/* The whole stream's latencies: buckets 1% wide from 1 us. */
#define NBUCKETS 2200
static uint64_t hist[NBUCKETS];
static double lat_max_total;
static struct { int id; uint64_t bytes; } sfprev[32];
static int nsfprev;

static int bucket(double s)
{
    double us = s * 1e6;
    if (us <= 1.0)
        return 0;
    int b = (int)(log(us) / log(1.01)) + 1;
    return b >= NBUCKETS ? NBUCKETS - 1 : b;
}

static double hist_pct(double p)
{
    uint64_t want = (uint64_t)ceil(p * (double)msgs_total), seen = 0;

    for (int b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen >= want && seen > 0) {
            /* The bucket's upper edge, which for the top bucket may lie
             * above the largest latency itself. */
            double edge = b == 0 ? 1e-6 : pow(1.01, b) * 1e-6;
            return edge < lat_max_total ? edge : lat_max_total;
        }
    }
    return 0.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    size_t i = (size_t)ceil(p * (double)n);
    return v[i == 0 ? 0 : i - 1];
}

/* "1:4.012,2:3.990": each subflow's received Mbit/s since the last report. */
static void subflow_shares(char *out, size_t len, double secs)
{
    struct mpt_subflow_info sf[32];
    int n = sock ? mpt_get_subflows(sock, sf, 32) : 0, k = 0, nprev = nsfprev;

    out[0] = '\0';
    if (n > 32)
        n = 32;
    nsfprev = 0;
    for (int i = 0; i < n; i++) {
        uint64_t before = 0;
        for (int j = 0; j < nprev; j++)
            if (sfprev[j].id == sf[i].id)
                before = sfprev[j].bytes;
        if (sf[i].state == MPT_SUBFLOW_ESTABLISHED || sf[i].bytes_received > before)
            k += snprintf(out + k, len - (size_t)k, "%s%d:%.3f", k ? "," : "", sf[i].id,
                          secs > 0 ? (double)(sf[i].bytes_received - before) * 8 / secs / 1e6 : 0.0);
        sfprev[nsfprev].id = sf[i].id;
        sfprev[nsfprev++].bytes = sf[i].bytes_received;
        if (k >= (int)len)
            break;
    }
    if (k == 0)
        snprintf(out, len, "-");
}

static void sink_report(int final)
{
    double now = tool_now(), secs = now - t_report;
    char sfs[400];
    double gap = last_arrival > 0 ? now - last_arrival : 0.0;

    if (!final && gap > iv_max_gap)
        iv_max_gap = gap; /* a gap still going on counts as one so far */
    subflow_shares(sfs, sizeof sfs, secs);
    qsort(lat, nlat, sizeof *lat, cmp_double);
    if (nlat > 0)
        printf("t=%.2f dt=%.2f msgs=%zu rate_mbps=%.3f lat_p50_ms=%.3f lat_p99_ms=%.3f lat_max_ms=%.3f "
               "stalls=%" PRIu64 " max_gap_ms=%.1f subflows_mbps=%s\n",
               now - t_sink0, secs, nlat, secs > 0 ? (double)iv_bytes * 8 / secs / 1e6 : 0.0,
               pct(lat, nlat, 0.50) * 1e3, pct(lat, nlat, 0.99) * 1e3, lat[nlat - 1] * 1e3,
               iv_stalls, iv_max_gap * 1e3, sfs);
    else
        printf("t=%.2f dt=%.2f msgs=0 rate_mbps=0.000 lat_p50_ms=- lat_p99_ms=- lat_max_ms=- "
               "stalls=%" PRIu64 " max_gap_ms=%.1f subflows_mbps=%s\n",
               now - t_sink0, secs, iv_stalls, iv_max_gap * 1e3, sfs);
    fflush(stdout);
    nlat = 0;
    iv_bytes = iv_stalls = 0;
    iv_max_gap = 0.0;
    t_report = now;
}

static void sink_summary(void)
{
    double span = last_arrival - first_arrival;
    const char *state = got_end && end_count == msgs_total && closed_seen && close_status == 0
                            ? "complete" : "incomplete";

    if (msgs_total == 0) {
        printf("summary state=%s msgs=0 sent=%" PRIu64 "\n", state, end_count);
    } else {
        printf("summary state=%s msgs=%" PRIu64 " sent=%" PRIu64 " bytes=%" PRIu64
               " duration_s=%.3f rate_mbps=%.3f lat_p50_ms=%.3f lat_p99_ms=%.3f lat_max_ms=%.3f "
               "stalls=%" PRIu64 " longest_gap_ms=%.1f stall_ms=%.1f clock_behind=%" PRIu64 "\n",
               state, msgs_total, got_end ? end_count : 0, bytes_total, span,
               span > 0 ? (double)bytes_total * 8 / span / 1e6 : 0.0, hist_pct(0.50) * 1e3,
               hist_pct(0.99) * 1e3, lat_max_total * 1e3, stalls_total, longest_gap * 1e3,
               stall_thr * 1e3, negative);
    }
    fflush(stdout);
}

static void bad_stream(const char *why)
{
    if (!reported)
        fprintf(stderr, "%s: %s: not an mpt-stream source: %s (after %" PRIu64 " messages)\n",
                T.name, where, why, msgs_total);
    reported = 1;
    exit_code = TOOL_EXIT_FAIL;
    mpt_abort(sock);
    sock = NULL;
    ev_break(loop, EVBREAK_ALL);
}

/* One complete message at p (len bytes), arrived at `now` (realtime). */
static int sink_message(const uint8_t *p, size_t len, double now, double mono)
{
    uint8_t type = p[3];
    uint64_t n = get64(p + 8), t_ns = get64(p + 16);

    if (!got_hello && type != MSG_HELLO) {
        bad_stream("the first message is not a HELLO");
        return -1;
    }
    if (type == MSG_HELLO) {
        char text[400];
        size_t tl = len - HDR < sizeof text - 1 ? len - HDR : sizeof text - 1;
        memcpy(text, p + HDR, tl);
        text[tl] = '\0';
        got_hello = 1;
        const char *iv = strstr(text, "interval_ms=");
        src_interval_ms = iv ? strtod(iv + 12, NULL) : 0.0;
        stall_thr = stall_ms >= 0 ? stall_ms / 1e3 : fmax(0.1, 3 * src_interval_ms / 1e3);
        printf("stream at %s: %s stall_ms=%.1f\n", where, text, stall_thr * 1e3);
        fflush(stdout);
        return 0;
    }
    if (type == MSG_END) {
        got_end = 1;
        end_count = n;
        stats_once();
        tool_verbose(&T, "%s: end message: the source sent %" PRIu64 " messages", where, n);
        return 0;
    }
    if (type != MSG_DATA || got_end) {
        bad_stream(type != MSG_DATA ? "unknown message type" : "data after the END message");
        return -1;
    }
    if (n != expect_seq) {
        bad_stream("a sequence number out of order");
        return -1;
    }
    expect_seq++;
    double l = now - (double)t_ns / 1e9;
    if (l < 0) {
        negative++; /* the source's clock is ahead of ours */
        l = 0;
    }
    if (nlat == caplat) {
        size_t nc = caplat ? caplat * 2 : 4096;
        double *nl = realloc(lat, nc * sizeof *nl);
        if (nl == NULL) {
            fprintf(stderr, "%s: out of memory\n", T.name);
            exit(TOOL_EXIT_FAIL);
        }
        lat = nl;
        caplat = nc;
    }
    lat[nlat++] = l;
    hist[bucket(l)]++;
    if (l > lat_max_total)
        lat_max_total = l;
    if (msgs_total > 0) {
        double gap = mono - last_arrival;
        if (gap > iv_max_gap)
            iv_max_gap = gap;
        if (gap > longest_gap)
            longest_gap = gap;
        if (gap > stall_thr) {
            iv_stalls++;
            stalls_total++;
            tool_verbose(&T, "stall: %.1f ms without a message (after message %" PRIu64 ")",
                         gap * 1e3, n);
        }
    } else {
        first_arrival = mono;
    }
    last_arrival = mono;
    msgs_total++;
    bytes_total += len;
    iv_bytes += len;
    return 0;
}

static void sink_readable(struct mpt_socket *s, void *user)
{
    for (;;) {
        ssize_t n = mpt_recv(s, rbuf + rlen, MAX_MSG + 65536 - rlen);
        if (n == MPT_EAGAIN)
            return;
        if (n < 0) {
            fail("receive", (int)n);
            return;
        }
        if (n == 0) {
            int rc;
            if (sink_eof)
                return;
            sink_eof = 1;
            if (rlen != 0)
                fprintf(stderr, "%s: %s: the stream ends inside a message (%zu bytes)\n", T.name,
                        where, rlen);
            if ((rc = mpt_shutdown(s)) < 0 && rc != MPT_EPIPE)
                fail("end of stream", rc);
            return;
        }
        rlen += (size_t)n;
        double now = realtime(), mono = tool_now();
        size_t off = 0;
        /* The magic is checked as soon as it is there: a stray client's few
         * bytes are refused at once, not taken for a partial message. */
        if (rlen >= 3 && (get16(rbuf) != MAGIC || rbuf[2] != VERSION)) {
            bad_stream("bad magic or version");
            return;
        }
        while (rlen - off >= HDR) {
            const uint8_t *p = rbuf + off;
            uint32_t len = get32(p + 4);
            if (get16(p) != MAGIC || p[2] != VERSION) {
                bad_stream("bad magic or version");
                return;
            }
            if (len < HDR || len > MAX_MSG) {
                bad_stream("bad message length");
                return;
            }
            if (rlen - off < len)
                break;
            if (sink_message(p, len, now, mono) < 0)
                return;
            off += len;
        }
        memmove(rbuf, rbuf + off, rlen - off);
        rlen -= off;
    }
}

static void report_cb(EV_P_ ev_timer *w, int revents)
{
    if (got_hello)
        sink_report(0);
    if (duration > 0 && tool_now() - t_sink0 >= duration) {
        tool_verbose(&T, "--duration %.3f s reached", duration);
        exit_code = TOOL_EXIT_FAIL; /* the stream did not end by itself */
        ev_break(EV_A_ EVBREAK_ALL);
    }
}

static void sink_closed(struct mpt_socket *s, int status, void *user)
{
    closed_seen = 1;
    close_status = status;
    if (status < 0)
        fail("the connection was aborted", status);
    sink_readable(s, user); /* what arrived before the close */
    ev_break(loop, EVBREAK_ALL);
}

static const struct mpt_callbacks sink_cbs = {
    .readable = sink_readable,
    .subflow_up = on_subflow,
    .subflow_down = on_subflow,
    .closed = sink_closed,
};

static void sink_accept(struct mpt_listener *l, void *user)
{
    struct mpt_socket *s;
    struct mpt_subflow_info sf[4];
    char who[80] = "?";

    while (mpt_accept(l, &sink_cbs, NULL, &s) == 0) {
        if (mpt_get_subflows(s, sf, 4) > 0)
            tool_addr(&sf[0].remote, who, sizeof who);
        if (sock != NULL || closed_seen) {
            fprintf(stderr, "%s: %s: refused a source from %s: one stream at a time\n", T.name,
                    where, who);
            mpt_abort(s);
            continue;
        }
        sock = s;
        snprintf(where + strlen(where), sizeof where - strlen(where), " from %s", who);
        tool_verbose(&T, "accepted a source from %s", who);
        t_sink0 = t_report = tool_now();
        ev_timer_init(&report_w, report_cb, report_s, report_s);
        ev_timer_start(loop, &report_w);
        sink_readable(s, NULL);
    }
}

/* ================================= main ====================================== */

static void usage_lines(FILE *f)
{
    fprintf(f, "usage: mpt-stream [options] HOST PORT [--rate BITS] [--size BYTES] [--duration S]\n"
               "       mpt-stream [options] HOST PORT --stdin [--size BYTES]\n"
               "       mpt-stream [options] -l [ADDR]... PORT [--stall MS] [--interval S]\n");
}

static void help(void)
{
    usage_lines(stdout);
    fputs("\n"
          "A source of timestamped messages over libmpt and a sink (-l) that prints, every\n"
          "second, their one-way latency (p50, p99, max), stalls, the delivered rate and\n"
          "each subflow's share, then a summary. Latency uses CLOCK_REALTIME on both ends:\n"
          "one machine, or clocks kept in step (NTP, PTP).\n"
          "\n"
          "Source:\n"
          "      --rate BITS      bit/s, with k, M or G (powers of 1000); default 1M\n"
          "      --size BYTES     bytes per message, its 24-byte header included; with K\n"
          "                       or M (powers of 1024); default 1024, at most 1M\n"
          "      --duration S     seconds to send (0: until SIGINT or SIGTERM); default 10\n"
          "      --stdin          a message per read of standard input (at most --size\n"
          "                       bytes) until its end, instead of a constant rate\n"
          "Sink:\n"
          "  -l, --listen         wait for one source on PORT (0: any free port, shown by\n"
          "                       -v), at each numeric ADDR or at every address\n"
          "      --stall MS       a gap between two messages longer than this is a stall;\n"
          "                       default the larger of 100 ms and 3 message intervals\n"
          "      --interval S     seconds between reports; default 1\n"
          "      --duration S     stop after this many seconds even if the stream goes on\n",
          stdout);
    tool_common_help(stdout);
    fputs("\nExit status: 0 when the whole stream was sent or received and closed\n"
          "gracefully, 1 when a connection failed or the stream was incomplete, 2 for a\n"
          "usage error, 3 when reading standard input failed. See mpt-stream(1).\n",
          stdout);
}

/* A positive decimal number with an optional k/M/G (x1000) suffix when si. */
static int parse_number(const char *opt, const char *s, int si, double min, double max, double *out)
{
    char *end;
    double v, mul = 1.0;

    errno = 0;
    v = (s[0] >= '0' && s[0] <= '9') || s[0] == '.' ? strtod(s, &end) : NAN;
    if (!isnan(v) && si && *end != '\0' && end[1] == '\0') {
        switch (*end) {
        case 'k': case 'K': mul = 1e3; end++; break;
        case 'm': case 'M': mul = 1e6; end++; break;
        case 'g': case 'G': mul = 1e9; end++; break;
        default: break;
        }
    }
    if (isnan(v) || *end != '\0' || errno == ERANGE || v * mul < min || v * mul > max) {
        fprintf(stderr, "%s: %s: '%s' is not a number from %g to %g%s\n", T.name, opt, s, min, max,
                si ? " (k, M, G: powers of 1000)" : "");
        return -1;
    }
    *out = v * mul;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    const char *pos[TOOL_MAX_ADDRS + 1];
    size_t npos = 0;
    int have_rate = 0, have_size = 0, have_dur = 0, have_stall = 0, have_iv = 0;

    for (int i = 1; i < argc;) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (npos == sizeof pos / sizeof pos[0])
                return tool_usage_error(&T, "unexpected argument '%s'", a);
            pos[npos++] = a;
            i++;
            continue;
        }
        int rc = tool_common_option(&T, argc, argv, &i);
        if (rc < 0)
            return TOOL_EXIT_USAGE;
        if (rc > 0)
            continue;
        if (strcmp(a, "-l") == 0 || strcmp(a, "--listen") == 0 || strcmp(a, "--stdin") == 0) {
            *(a[2] == 's' ? &from_stdin : &listening) = 1;
            i++;
            continue;
        }
        static const char *const with_value[] = {"--rate", "--size", "--duration", "--stall",
                                                 "--interval"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            known |= strcmp(a, with_value[k]) == 0;
        if (!known)
            return tool_usage_error(&T, "unknown option '%s'", a);
        if (i + 1 >= argc || argv[i + 1][0] == '\0') {
            fprintf(stderr, "%s: option %s needs a value (see --help)\n", T.name, a);
            return TOOL_EXIT_USAGE;
        }
        const char *v = argv[i + 1];
        i += 2;
        if (strcmp(a, "--rate") == 0) {
            if (parse_number(a, v, 1, 1e3, 1e11, &rate) < 0)
                return TOOL_EXIT_USAGE;
            have_rate = 1;
        } else if (strcmp(a, "--size") == 0) {
            if (tool_parse_size(&T, a, v, &msg_size) < 0)
                return TOOL_EXIT_USAGE;
            if (msg_size < HDR + 1 || msg_size > MAX_MSG) {
                fprintf(stderr, "%s: --size: %s is not from %d to %u bytes\n", T.name, v, HDR + 1,
                        MAX_MSG);
                return TOOL_EXIT_USAGE;
            }
            have_size = 1;
        } else if (strcmp(a, "--duration") == 0) {
            if (parse_number(a, v, 0, 0, 1e7, &duration) < 0)
                return TOOL_EXIT_USAGE;
            have_dur = 1;
        } else if (strcmp(a, "--stall") == 0) {
            if (parse_number(a, v, 0, 0.001, 1e7, &stall_ms) < 0)
                return TOOL_EXIT_USAGE;
            have_stall = 1;
        } else {
            if (parse_number(a, v, 0, 0.01, 3600, &report_s) < 0)
                return TOOL_EXIT_USAGE;
            have_iv = 1;
        }
    }

    if (listening) {
        if (from_stdin || have_rate || have_size)
            return tool_usage_error(&T, "%s", "--rate, --size and --stdin are source options, not with -l");
        if (T.npaths || T.all_paths)
            return tool_usage_error(&T, "%s", "--path and --all-paths are source options, not with -l");
        if (npos == 0)
            return tool_usage_error(&T, "%s", "-l needs a PORT");
        if (tool_parse_port(&T, "PORT", pos[npos - 1], &port) < 0)
            return TOOL_EXIT_USAGE;
        nladdrs = npos - 1;
        for (size_t i = 0; i < nladdrs; i++)
            laddrs[i] = pos[i];
        if (!have_dur)
            duration = 0; /* the sink follows the stream */
        return TOOL_EXIT_OK;
    }
    if (have_stall || have_iv)
        return tool_usage_error(&T, "%s", "--stall and --interval are sink options (with -l)");
    if (from_stdin && (have_rate || have_dur))
        return tool_usage_error(&T, "%s", "--stdin sends at the input's pace: no --rate or --duration");
    if (npos != 2)
        return tool_usage_error(&T, "%s", npos < 2 ? "HOST and PORT are needed (or -l [ADDR] PORT)"
                                          : "too many arguments: HOST PORT");
    host = pos[0];
    if (tool_parse_port(&T, "PORT", pos[1], &port) < 0)
        return TOOL_EXIT_USAGE;
    if (port == 0)
        return tool_usage_error(&T, "%s", "PORT: port 0 is not a port to connect to");
    interval = (double)msg_size * 8 / rate;
    if (!from_stdin && duration > 0 && duration < interval) {
        fprintf(stderr, "%s: --duration %g s is shorter than one message's interval at this "
                        "--rate and --size (%g s): nothing would be sent\n", T.name, duration,
                interval);
        return TOOL_EXIT_USAGE;
    }
    snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    return TOOL_EXIT_OK;
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
    if (!listening && sock != NULL && !shut && hello_done) {
        /* The source ends its stream cleanly; the sink then sees it complete. */
        tool_verbose(&T, "signal %d: ending the stream", w->signum);
        stopping_src = 1;
        src_in_eof = 1;
        src_pump();
        return;
    }
    if (!reported)
        fprintf(stderr, "%s: %s: interrupted (signal %d)\n", T.name, where, w->signum);
    reported = 1;
    exit_code = TOOL_EXIT_FAIL;
    ev_break(EV_A_ EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    ev_signal sigint_w, sigterm_w;
    int rc;

    tool_init(&T, "mpt-stream");
    T.help = help;
    T.usage = usage_lines;
    if ((rc = parse_args(argc, argv)) != TOOL_EXIT_OK)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    if (from_stdin && tool_nonblock_restored(STDIN_FILENO) < 0) {
        tool_error_errno(&T, "standard input", "cannot make it non-blocking", errno);
        return EXIT_LOCAL_IO;
    }
    loop = EV_DEFAULT;
    if (tool_ctx_new(&T, loop, &ctx) < 0)
        return TOOL_EXIT_FAIL;
    ev_signal_init(&sigint_w, on_signal, SIGINT);
    ev_signal_start(loop, &sigint_w);
    ev_signal_init(&sigterm_w, on_signal, SIGTERM);
    ev_signal_start(loop, &sigterm_w);
    /* The signal watchers alone do not keep the loop running. */
    ev_unref(loop);
    ev_unref(loop);

    if (listening) {
        if ((rbuf = malloc(MAX_MSG + 65536)) == NULL)
            return TOOL_EXIT_FAIL;
        rc = mpt_listen(ctx, nladdrs ? laddrs : NULL, nladdrs, port, sink_accept, NULL, &listener);
        snprintf(where, sizeof where, strchr(nladdrs ? laddrs[0] : "", ':') ? "[%s]:%u" : "%s:%u",
                 nladdrs ? laddrs[0] : "*", rc < 0 ? port : (unsigned)mpt_listener_port(listener));
        if (rc < 0) {
            tool_error(&T, where, "listen", rc, 0);
            mpt_ctx_free(ctx);
            return TOOL_EXIT_FAIL;
        }
        if (tool_listener_setup(&T, listener) < 0) {
            mpt_ctx_free(ctx);
            return TOOL_EXIT_USAGE;
        }
        tool_verbose(&T, "listening on %s", where);
        ev_run(loop, 0);
        stats_once();
        if (got_hello)
            sink_report(1);
        sink_summary();
        if (exit_code == TOOL_EXIT_OK && !(got_end && end_count == msgs_total && closed_seen &&
                                           close_status == 0 && sink_eof)) {
            if (!reported)
                fprintf(stderr, "%s: %s: the stream is incomplete: %" PRIu64 " messages of %s\n",
                        T.name, where, msgs_total, got_end ? "those the END message counts" : "an unknown number (no END message)");
            exit_code = TOOL_EXIT_FAIL;
        }
    } else {
        if ((msg = malloc(MAX_MSG)) == NULL)
            return TOOL_EXIT_FAIL;
        if (from_stdin)
            ev_io_init(&in_w, src_stdin_cb, STDIN_FILENO, EV_READ);
        tool_verbose(&T, "connecting to %s", where);
        rc = mpt_connect(ctx, host, port, T.paths, T.npaths, &src_cbs, NULL, &sock);
        if (rc >= 0)
            tool_apply_meters(&T, sock);
        if (rc < 0) {
            char what[400] = "connect";
            int n = (int)strlen(what);
            for (size_t i = 0; i < T.npaths && n < (int)sizeof what; i++)
                n += snprintf(what + n, sizeof what - (size_t)n, "%s%s", i ? "," : " over paths ",
                              T.paths[i]);
            sock = NULL;
            tool_error(&T, where, what, rc, 0);
            mpt_ctx_free(ctx);
            return TOOL_EXIT_FAIL;
        }
        ev_run(loop, 0);
        stats_once();
        if (hello_done)
            src_report();
        if (exit_code == TOOL_EXIT_OK && !(closed_seen && close_status == 0 && shut)) {
            if (!reported)
                fprintf(stderr, "%s: %s: the stream did not finish\n", T.name, where);
            exit_code = TOOL_EXIT_FAIL;
        }
    }
    if (sock != NULL)
        mpt_abort(sock);
    mpt_listener_close(listener);
    mpt_ctx_free(ctx);
    free(rbuf);
    free(msg);
    free(lat);
    return exit_code;
}
