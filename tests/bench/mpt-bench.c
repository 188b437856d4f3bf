/*
 * The libmpt contender of the benchmarks (the scripts in tests/bench): moves data
 * between two processes over one libmpt connection, measured exactly like
 * mpt-tcpbench measures plain TCP and kernel MPTCP (bench-common.c).
 *
 *   mpt-bench server [--bind ADDR]... --port P [options]
 *   mpt-bench client --host ADDR --port P [--path ADDR]... [options]
 *     --send N        this side sends N bytes (the pattern), then closes;
 *                     without it this side receives to end of stream
 *     --expect N      receiver: N bytes are due (lost_bytes = N - verified)
 *     --stream RATE   stream mode: BENCH_MSG-byte timestamped messages at
 *                     RATE per second (N / BENCH_MSG of them)
 *     --sched NAME    libmpt scheduler     --cc NAME   coupled congestion
 *     --tcp-cc NAME   TCP_CONGESTION of every subflow
 *     --rcvbuf BYTES  connection receive memory (mpt_config.rcvbuf)
 *     --reverse N     both sides: while the --send side sends, the other side
 *                     sends it N pattern bytes back (a request stream beside the
 *                     bulk one); the --send side verifies them (reverse_bytes=,
 *                     reverse_verify=); not with --stream
 *     --budget WHO=N  a byte budget (mpt_set_path_budget): client, the --path WHO;
 *                     server, the subflows from remote address WHO; the sender's
 *                     line then has metered_bytes=
 *     --timeout SEC   give up after SEC seconds (default 300)
 *
 *   mpt-bench scale-server --bind ADDR --port P --conns N [--timeout SEC]
 *   mpt-bench scale-client --host ADDR --port P --path A --path B --conns N
 *     The server holds N idle connections; once all of them have 2 subflows
 *     it prints its resident memory per connection and the accept rate.
 *
 * Output: one line per side,
 *   role=R bytes=N seconds=S gbps=G cpu_s=C subflows=K reinjected=B completed=0|1
 * and on the receiver also reorder_p50_ms= reorder_p99_ms= reorder_max_ms= (how
 * long DATA frames waited for earlier bytes, mpt_info) max_gap_ms= lost_bytes= verify=ok|FAIL (stream
 * mode: messages= latency_p50_ms= latency_p99_ms= latency_max_ms=).
 * subflows is the largest number of established subflows seen. Exit status:
 * 0 complete and byte-exact, 3 otherwise, 2 usage, 1 setup error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#include "bench-common.h"

struct opts {
    int server;
    const char *host;
    const char *bind[8];
    size_t nbind;
    const char *paths[8];
    size_t npaths;
    int port;
    unsigned long long send, expect;
    double stream_rate;
    unsigned long long rcvbuf;   /* connection receive memory; 0: the default */
    unsigned long long reverse;  /* bytes from the receiving side to the sending one */
    const char *sched, *cc, *tcp_cc;
    double timeout;
    long conns;
    const char *tls_cert, *tls_key, *tls_ca, *tls_name; /* TLS on every subflow */
};

static double deadline;
static unsigned max_subflows;

/* --budget WHO=BYTES (issue 16, tests/bench/metered.sh): the client meters
 * the --path WHO; the server meters the subflows whose remote address is
 * WHO, as they appear (their total, counting what they carried before the
 * server saw them). metered_bytes: the most DATA payload handed to them. */
static const char *meter_who;
static unsigned long long meter_budget;
static int meter_client_path = -1;
static struct { int id; unsigned long long sent; } meter_sf[64];
static int meter_nsf;
static unsigned long long metered_bytes;

static void meter_poll(struct mpt_socket *s)
{
    struct mpt_subflow_info sf[16];
    int n;

    if (meter_who == NULL)
        return;
    n = mpt_get_subflows(s, sf, 16);
    for (int i = 0; i < n && i < 16; i++) {
        char host[64] = "";
        int k, mine;
        if (meter_client_path >= 0) {
            mine = sf[i].path_id == meter_client_path;
        } else {
            const struct sockaddr_storage *r = &sf[i].remote;
            if (r->ss_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)r)->sin_addr, host, sizeof host);
            else if (r->ss_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)r)->sin6_addr, host, sizeof host);
            mine = strcmp(host, meter_who) == 0;
        }
        if (!mine || sf[i].id <= 0)
            continue;
        for (k = 0; k < meter_nsf && meter_sf[k].id != sf[i].id; k++)
            ;
        if (k == meter_nsf) {
            if (meter_nsf == 64)
                continue;
            meter_sf[meter_nsf++].id = sf[i].id;
            if (meter_client_path < 0 && sf[i].state == MPT_SUBFLOW_ESTABLISHED) {
                unsigned long long left =
                    sf[i].bytes_sent < meter_budget ? meter_budget - sf[i].bytes_sent : 1;
                int rc = mpt_set_path_budget(s, sf[i].id, left);
                if (rc < 0)
                    fprintf(stderr, "mpt-bench: budget on subflow %d: %s\n", sf[i].id,
                            mpt_strerror(rc));
            }
        }
        if (sf[i].bytes_sent > meter_sf[k].sent) {
            metered_bytes += sf[i].bytes_sent - meter_sf[k].sent;
            meter_sf[k].sent = sf[i].bytes_sent;
        }
    }
}

static int remaining_ms(void)
{
    double r = deadline - bench_now();
    return r <= 0 ? 0 : (int)(r * 1000) + 1;
}

static void note_subflows(struct mpt_socket *s, struct mpt_info *info)
{
    meter_poll(s);
    info->size = sizeof *info;
    if (mpt_get_info(s, info) == 0 && info->subflows_established > max_subflows)
        max_subflows = info->subflows_established;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mpt-bench server [--bind ADDR]... --port P [--send N] [--expect N] [--stream RATE]\n"
            "       mpt-bench client --host ADDR --port P [--path ADDR]... [same options]\n"
            "       options: --sched NAME --cc NAME --tcp-cc NAME --rcvbuf BYTES --timeout SEC\n"
            "                --budget PATH=BYTES (client) / REMOTE-ADDR=BYTES (server)\n"
            "       TLS: --tls-cert F --tls-key F (server), --tls-ca F --tls-name N (client)\n"
            "       mpt-bench scale-server --bind ADDR --port P --conns N\n"
            "       mpt-bench scale-client --host ADDR --port P --path A --path B --conns N\n");
    exit(2);
}

static struct mpt_ctx *make_ctx(const struct opts *o)
{
    struct mpt_config cfg;
    struct mpt_ctx *ctx;
    int rc;

    static struct mpt_tls_config tls;

    MPT_CONFIG_DEFAULT(&cfg);
    if (o->tls_cert != NULL || o->tls_ca != NULL) {
        char why[256];
        memset(&tls, 0, sizeof tls);
        tls.size = sizeof tls;
        tls.cert_file = o->tls_cert;
        tls.key_file = o->tls_key;
        tls.ca_file = o->tls_ca;
        tls.server_name = o->tls_name;
        if ((rc = mpt_tls_config_check(&tls, why, sizeof why)) < 0) {
            fprintf(stderr, "mpt-bench: TLS: %s\n", why);
            exit(1);
        }
        cfg.tls = &tls;
    }
    cfg.scheduler = o->sched;
    cfg.congestion = o->cc;
    cfg.tcp_congestion = o->tcp_cc;
    if (o->rcvbuf > 0)
        cfg.rcvbuf = (size_t)o->rcvbuf;
    if (o->conns > 0) {
        cfg.max_connections = (uint32_t)(o->conns + 16);
        cfg.max_conns_per_addr = (uint32_t)(o->conns + 16); /* all from loopback */
        cfg.max_pending_handshakes = (uint32_t)(o->conns + 16);
        cfg.listen_backlog = 4096;
    }
    if ((rc = mpt_ctx_new(&ctx, NULL, &cfg)) < 0) {
        fprintf(stderr, "mpt-bench: mpt_ctx_new: %s\n", mpt_strerror(rc));
        exit(1);
    }
    /* MPT_BENCH_TRACE=PREFIX: each process traces to PREFIX.server / PREFIX.client */
    const char *trace = getenv("MPT_BENCH_TRACE");
    if (trace && *trace) {
        char tp[4096];
        snprintf(tp, sizeof tp, "%s.%s", trace, o->server ? "server" : "client");
        mpt_set_trace_file(ctx, tp);
    }
    return ctx;
}

/* ---- transfer ---------------------------------------------------------------------------- */

static struct mpt_ctx *ctx;

/* Runs the loop until `due` (CLOCK_MONOTONIC seconds). */
static void run_until(double due)
{
    double now;
    while ((now = bench_now()) < due) {
        int ms = (int)((due - now) * 1000);
        mpt_ctx_run(ctx, ms > 0 ? ms : 0);
    }
}

/* The bulk sender's side of --reverse: takes what has arrived, never blocking. */
static void reverse_drain(struct mpt_socket *s, struct bench_rx *rrx)
{
    static unsigned char rbuf[BENCH_IO];
    ssize_t n;
    while ((n = mpt_recv(s, rbuf, sizeof rbuf)) > 0)
        bench_rx_data(rrx, rbuf, (size_t)n);
}

static int do_send(const struct opts *o, struct mpt_socket *s, const char *role)
{
    static unsigned char rbuf[BENCH_IO];
    unsigned char msg[BENCH_MSG];
    struct bench_rx rrx;
    struct mpt_info info;
    unsigned long long off = 0, reinj = 0;
    double t0 = bench_now(), c0 = bench_cpu();
    ssize_t w = 0;
    int rc, ok = 1, rev_ok = 1;

    bench_rx_init(&rrx, 0);
    if (o->stream_rate > 0) {
        unsigned long long msgs = o->send / BENCH_MSG;
        for (unsigned long long seq = 0; seq < msgs && w >= 0; seq++) {
            run_until(t0 + (double)seq / o->stream_rate);
            bench_msg_fill(msg, seq);
            w = mpt_blocking_send_all(s, msg, BENCH_MSG, remaining_ms());
            if (w > 0)
                off += (unsigned long long)w;
            note_subflows(s, &info);
        }
    } else {
        while (off < o->send) {
            size_t k = o->send - off < BENCH_IO ? (size_t)(o->send - off) : BENCH_IO;
            w = mpt_blocking_send_all(s, bench_pat_at(off), k, remaining_ms());
            if (w < 0)
                break;
            off += k;
            note_subflows(s, &info);
            if (o->reverse)
                reverse_drain(s, &rrx);
        }
    }
    if (w < 0) {
        fprintf(stderr, "mpt-bench: %s: send: %s\n", role, mpt_strerror((int)w));
        ok = 0;
    }
    note_subflows(s, &info);
    reinj = info.bytes_reinjected;
    if (o->reverse && ok) {
        /* Our end of the stream first, then the rest of the reverse bytes
         * until the peer's end. */
        ssize_t n;
        if ((rc = mpt_shutdown(s)) < 0) {
            fprintf(stderr, "mpt-bench: %s: shutdown: %s\n", role, mpt_strerror(rc));
            ok = 0;
        }
        while (ok && (n = mpt_blocking_recv(s, rbuf, sizeof rbuf, remaining_ms())) != 0) {
            if (n < 0) {
                fprintf(stderr, "mpt-bench: %s: reverse recv after %llu bytes: %s\n", role,
                        (unsigned long long)rrx.bytes, mpt_strerror((int)n));
                ok = 0;
                break;
            }
            bench_rx_data(&rrx, rbuf, (size_t)n);
        }
        rev_ok = !rrx.bad && rrx.good == o->reverse && rrx.bytes == o->reverse;
        if (!rev_ok) {
            fprintf(stderr, "mpt-bench: %s: reverse stream: %llu of %llu bytes verified\n", role,
                    (unsigned long long)rrx.good, o->reverse);
            ok = 0;
        }
    }
    /* Until the peer has everything and has closed: the timing covers delivery. */
    rc = mpt_blocking_close(s, remaining_ms());
    if (rc < 0) {
        fprintf(stderr, "mpt-bench: %s: close: %s\n", role, mpt_strerror(rc));
        ok = 0;
    }
    double secs = bench_now() - t0;
    printf("role=%s bytes=%llu seconds=%.6f gbps=%.6f cpu_s=%.4f subflows=%u reinjected=%llu completed=%d",
           role, off, secs, secs > 0 ? (double)off * 8 / secs / 1e9 : 0.0, bench_cpu() - c0,
           max_subflows, reinj, ok);
    if (meter_who)
        printf(" metered_bytes=%llu", metered_bytes);
    if (o->reverse)
        printf(" reverse_bytes=%llu reverse_verify=%s", (unsigned long long)rrx.bytes,
               rev_ok ? "ok" : "FAIL");
    printf("\n");
    fflush(stdout);
    free(rrx.lat);
    return ok ? 0 : 3;
}

static int do_recv(const struct opts *o, struct mpt_socket *s, const char *role)
{
    static unsigned char buf[BENCH_IO];
    struct bench_rx rx;
    struct mpt_info info;
    double t0 = bench_now(), c0 = bench_cpu();
    ssize_t n;
    char line[1024];
    unsigned long long roff = 0;
    int ok, rev_err = 0;

    bench_rx_init(&rx, o->stream_rate > 0);
    for (;;) {
        /* --reverse: what the send buffer takes now, never blocking. */
        while (roff < o->reverse && !rev_err) {
            size_t k = o->reverse - roff < BENCH_IO ? (size_t)(o->reverse - roff) : BENCH_IO;
            ssize_t w = mpt_send(s, bench_pat_at(roff), k);
            if (w == MPT_EAGAIN)
                break;
            if (w < 0) {
                fprintf(stderr, "mpt-bench: %s: reverse send: %s\n", role, mpt_strerror((int)w));
                rev_err = 1;
                break;
            }
            roff += (unsigned long long)w;
        }
        if ((n = mpt_blocking_recv(s, buf, sizeof buf, remaining_ms())) <= 0)
            break;
        bench_rx_data(&rx, buf, (size_t)n);
        if (max_subflows < 2 || (rx.bytes & 0xfffff) < (uint64_t)n)
            note_subflows(s, &info);
    }
    double t_end = rx.bytes > 0 ? rx.t_last : bench_now();
    double cpu = bench_cpu() - c0;
    note_subflows(s, &info);
    if (n < 0)
        fprintf(stderr, "mpt-bench: %s: recv after %llu bytes: %s\n", role,
                (unsigned long long)rx.bytes, mpt_strerror((int)n));
    double secs = t_end - t0;
    snprintf(line, sizeof line, "role=%s bytes=%llu seconds=%.6f gbps=%.6f cpu_s=%.4f subflows=%u reinjected=%llu completed=%d reorder_p50_ms=%.3f reorder_p99_ms=%.3f reorder_max_ms=%.3f",
             role, (unsigned long long)rx.bytes, secs,
             secs > 0 ? (double)rx.bytes * 8 / secs / 1e9 : 0.0, cpu, max_subflows,
             (unsigned long long)info.bytes_reinjected, n == 0, info.reorder_p50_us / 1e3,
             info.reorder_p99_us / 1e3, info.reorder_max_us / 1e3);
    /* The bulk sender reads to our end after its last write: block for the rest. */
    if (n == 0 && roff < o->reverse && !rev_err) {
        size_t k = (size_t)(o->reverse - roff);
        for (unsigned long long done = 0; done < k && !rev_err;) {
            size_t part = k - done < BENCH_IO ? (size_t)(k - done) : BENCH_IO;
            ssize_t w = mpt_blocking_send_all(s, bench_pat_at(roff + done), part, remaining_ms());
            if (w < 0) {
                fprintf(stderr, "mpt-bench: %s: reverse send: %s\n", role, mpt_strerror((int)w));
                rev_err = 1;
            }
            done += part;
        }
    }
    ok = bench_rx_report(&rx, o->expect, line, sizeof line) && n == 0 && !rev_err;
    printf("%s\n", line);
    fflush(stdout);
    mpt_blocking_close(s, 5000);
    free(rx.lat);
    return ok ? 0 : 3;
}

/* ---- scale ------------------------------------------------------------------------------- */

static struct mpt_socket **socks;
static long nsocks, nconnected, nclosed, nfailed;
static double t_first_accept, t_last_accept;

static void accept_cb(struct mpt_listener *l, void *user)
{
    struct mpt_socket *s;
    (void)user;
    while (mpt_accept(l, NULL, NULL, &s) == 0) {
        double t = bench_now();
        if (nsocks == 0)
            t_first_accept = t;
        t_last_accept = t;
        socks[nsocks++] = s;
    }
}

static long total_established(void)
{
    long total = 0;
    for (long i = 0; i < nsocks; i++) {
        struct mpt_info info = {.size = sizeof info};
        if (mpt_get_info(socks[i], &info) == 0)
            total += info.subflows_established;
    }
    return total;
}

static int scale_server(const struct opts *o)
{
    struct mpt_listener *l;
    int rc;

    bench_raise_nofile(o->conns * 2 + 1024);
    socks = calloc((size_t)o->conns + 16, sizeof *socks);
    ctx = make_ctx(o);
    if ((rc = mpt_listen(ctx, o->nbind ? o->bind : NULL, o->nbind, (uint16_t)o->port, accept_cb,
                         NULL, &l)) < 0) {
        fprintf(stderr, "mpt-bench: listen: %s\n", mpt_strerror(rc));
        return 1;
    }
    long rss0 = bench_rss_kib();
    printf("listening rss_kib=%ld\n", rss0);
    fflush(stdout);
    long est = 0;
    double next_check = 0, next_progress = bench_now() + 1, t0 = bench_now();
    struct mpt_ctx_stats cst = {.size = sizeof cst};
    while (bench_now() < deadline) {
        mpt_ctx_run(ctx, 50);
        if (bench_now() >= next_progress) {
            /* Progress on stderr, once a second (the log of a slow run). */
            mpt_ctx_get_stats(ctx, &cst);
            fprintf(stderr, "t=%.0f accepted=%ld pending=%llu pending_timed_out=%llu pending_evicted=%llu\n",
                    bench_now() - t0, nsocks, (unsigned long long)cst.pending,
                    (unsigned long long)cst.pending_timed_out,
                    (unsigned long long)cst.pending_evicted);
            next_progress += 1;
        }
        if (nsocks >= o->conns && bench_now() >= next_check) {
            est = total_established();
            if (est >= 2 * o->conns)
                break;
            next_check = bench_now() + 0.2;
        }
    }
    /* Let the last joins settle, then measure. */
    run_until(bench_now() + 1.0);
    est = total_established();
    long rss1 = bench_rss_kib();
    double acc_s = t_last_accept - t_first_accept;
    mpt_ctx_get_stats(ctx, &cst);
    printf("role=scale-server conns=%ld subflows=%ld rss0_kib=%ld rss1_kib=%ld rss_kib_per_conn=%.2f "
           "accept_seconds=%.3f accepts_per_s=%.1f pending_timed_out=%llu pending_evicted=%llu "
           "refused=%llu completed=%d\n",
           nsocks, est, rss0, rss1, nsocks ? (double)(rss1 - rss0) / (double)nsocks : 0.0, acc_s,
           acc_s > 0 ? (double)(nsocks - 1) / acc_s : 0.0,
           (unsigned long long)cst.pending_timed_out, (unsigned long long)cst.pending_evicted,
           (unsigned long long)(cst.refused_max_connections + cst.refused_per_addr),
           nsocks == o->conns && est >= 2 * o->conns);
    fflush(stdout);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
    free(socks);
    return nsocks == o->conns && est >= 2 * o->conns ? 0 : 3;
}

static void sc_connected(struct mpt_socket *s, int status, void *user)
{
    (void)s;
    (void)user;
    if (status == 0) {
        nconnected++;
    } else {
        /* The first few reasons, with the time since the start. */
        if (nfailed < 5)
            fprintf(stderr, "mpt-bench: scale-client: connection failed after %ld connected: %s\n",
                    nconnected, mpt_strerror(status));
        nfailed++;
    }
}

static void sc_closed(struct mpt_socket *s, int status, void *user)
{
    (void)s;
    (void)status;
    (void)user;
    nclosed++;
}

static int scale_client(const struct opts *o)
{
    struct mpt_callbacks cb = {.connected = sc_connected, .closed = sc_closed};
    long started = 0;
    int rc;
    double t0 = bench_now(), next_progress = t0 + 1;

    bench_raise_nofile(o->conns * 2 + 1024);
    socks = calloc((size_t)o->conns + 16, sizeof *socks);
    ctx = make_ctx(o);
    while (bench_now() < deadline && nconnected + nfailed < o->conns) {
        /* At most 256 handshakes in flight. */
        while (started < o->conns && started - nconnected - nfailed < 256) {
            rc = mpt_connect(ctx, o->host, (uint16_t)o->port, o->paths, o->npaths, &cb, NULL,
                             &socks[started]);
            if (rc < 0) {
                fprintf(stderr, "mpt-bench: connect #%ld: %s\n", started, mpt_strerror(rc));
                nfailed++;
            }
            started++;
        }
        mpt_ctx_run(ctx, 10);
        if (bench_now() >= next_progress) {
            fprintf(stderr, "t=%.0f started=%ld connected=%ld failed=%ld\n", bench_now() - t0,
                    started, nconnected, nfailed);
            next_progress += 1;
        }
    }
    nsocks = started;
    double t_conn = bench_now() - t0;
    long est = 0;
    while (bench_now() < deadline) {
        run_until(bench_now() + 0.2);
        est = total_established();
        if (est >= 2 * o->conns || nclosed > 0)
            break;
    }
    /* failed: every connection that did not come up (its handshake failed
     * or timed out, or it never started before the deadline). */
    printf("role=scale-client conns=%ld failed=%ld subflows=%ld connect_seconds=%.3f connects_per_s=%.1f\n",
           nconnected, o->conns - nconnected, est, t_conn, t_conn > 0 ? (double)nconnected / t_conn : 0.0);
    fflush(stdout);
    /* Hold the connections until the server has measured and gone. */
    while (bench_now() < deadline && nclosed < nconnected)
        mpt_ctx_run(ctx, 100);
    mpt_ctx_free(ctx);
    free(socks);
    return nconnected == o->conns ? 0 : 3;
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct opts o = {.timeout = 300};
    const char *mode;
    int rc;

    if (argc < 2)
        usage();
    mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--host"))
            o.host = v;
        else if (!strcmp(a, "--bind") && o.nbind < 8)
            o.bind[o.nbind++] = v;
        else if (!strcmp(a, "--path") && o.npaths < 8)
            o.paths[o.npaths++] = v;
        else if (!strcmp(a, "--port"))
            o.port = atoi(v);
        else if (!strcmp(a, "--send"))
            o.send = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--expect"))
            o.expect = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--stream"))
            o.stream_rate = atof(v);
        else if (!strcmp(a, "--sched"))
            o.sched = v;
        else if (!strcmp(a, "--cc"))
            o.cc = v;
        else if (!strcmp(a, "--tcp-cc"))
            o.tcp_cc = v;
        else if (!strcmp(a, "--rcvbuf"))
            o.rcvbuf = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--reverse"))
            o.reverse = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--timeout"))
            o.timeout = atof(v);
        else if (!strcmp(a, "--conns"))
            o.conns = atol(v);
        else if (!strcmp(a, "--tls-cert"))
            o.tls_cert = v;
        else if (!strcmp(a, "--tls-key"))
            o.tls_key = v;
        else if (!strcmp(a, "--tls-ca"))
            o.tls_ca = v;
        else if (!strcmp(a, "--tls-name"))
            o.tls_name = v;
        else if (!strcmp(a, "--budget") && strchr(v, '=')) {
            static char who[64];
            size_t n = (size_t)(strchr(v, '=') - v);
            snprintf(who, sizeof who, "%.*s", (int)n, v);
            meter_who = who;
            meter_budget = strtoull(strchr(v, '=') + 1, NULL, 0);
        } else
            usage();
    }
    if (o.port <= 0 || o.port > 65535 || (o.reverse && o.stream_rate > 0))
        usage();
    deadline = bench_now() + o.timeout;
    bench_pat_init();
    if (!strcmp(mode, "scale-server") && o.conns > 0)
        return scale_server(&o);
    if (!strcmp(mode, "scale-client") && o.conns > 0 && o.host)
        return scale_client(&o);
    if (!strcmp(mode, "server"))
        o.server = 1;
    else if (strcmp(mode, "client") || !o.host)
        usage();

    ctx = make_ctx(&o);
    struct mpt_socket *s;
    struct mpt_listener *l = NULL;
    const char *role = o.server ? "server" : "client";
    if (o.server) {
        if ((rc = mpt_listen(ctx, o.nbind ? o.bind : NULL, o.nbind, (uint16_t)o.port, NULL, NULL,
                             &l)) < 0) {
            fprintf(stderr, "mpt-bench: listen: %s\n", mpt_strerror(rc));
            return 1;
        }
        printf("listening\n");
        fflush(stdout);
        if ((rc = mpt_blocking_accept(l, remaining_ms(), &s)) < 0) {
            fprintf(stderr, "mpt-bench: accept: %s\n", mpt_strerror(rc));
            return 3;
        }
        /* The listener stays open: the client's other paths join through it. */
    } else {
        if ((rc = mpt_blocking_connect(ctx, o.host, (uint16_t)o.port, o.paths, o.npaths, 10000, &s)) <
            0) {
            fprintf(stderr, "mpt-bench: connect: %s\n", mpt_strerror(rc));
            return 3;
        }
        for (size_t k = 0; meter_who && k < o.npaths; k++)
            if (!strcmp(o.paths[k], meter_who))
                meter_client_path = (int)k;
        if (meter_who && (meter_client_path < 0 ||
                          (rc = mpt_set_path_budget(s, meter_client_path, meter_budget)) < 0)) {
            fprintf(stderr, "mpt-bench: --budget %s: %s\n", meter_who,
                    meter_client_path < 0 ? "not a --path" : mpt_strerror(rc));
            return 2;
        }
    }
    rc = o.send > 0 ? do_send(&o, s, role) : do_recv(&o, s, role);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
    return rc;
}
