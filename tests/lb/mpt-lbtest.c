/*
 * The two ends of the load-balancer test (tests/test-haproxy.sh, issue 17).
 *
 *   mpt-lbtest server --bind ADDR --port P --server-id N [--advertise A:P]...
 *     An echo server: each connection first gets 4 bytes, the server id
 *     (big-endian), then everything it sends comes back. Runs until SIGTERM,
 *     then prints
 *       role=server id=N conns=C subflows_up=S joins_refused_token=T
 *     (T counts joins refused because no connection of this process has their
 *     token: a balancer that sends a join to the wrong process shows here).
 *
 *   mpt-lbtest client --host H --port P --path A [--path B]... --conns N
 *                     --bytes B [--subflows K] [--pause FILE] [--killed ID]
 *     N connections, each over every --path; waits until each has its banner
 *     and K established subflows, sends half of B bytes (a pattern of the
 *     connection's index), and once they came back prints READY; with
 *     --pause it then waits until FILE exists. Then the other half, a
 *     half-close, and the echo is checked byte for byte. --killed ID: the
 *     connections held by server ID are expected to fail (that process was
 *     killed at the pause), with an error, and all the others to complete.
 *     Prints one line per failed connection and
 *       role=client conns=N ok=K failed=F failed_killed=X per_server=ID:n,...
 *       connect_p50_ms=.. connect_max_ms=.. connects_per_s=..
 *     --subflow-timeout MS (both modes): mpt_config.subflow_timeout_ms.
 *     --serial: one handshake at a time (connect_p50_ms is then the latency of
 *     a handshake alone). failed_after_max_s: the longest time from the end of
 *     the pause to a connection's failure.
 *     Exit 0 if every connection did what it had to, 3 otherwise, 2 usage,
 *     1 setup error.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#define MAXPATHS 8
#define CHUNK 65536

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t pat(unsigned idx, uint64_t off)
{
    uint64_t x = off * 0x9e3779b97f4a7c15ull + idx * 0x632be59bd9b4e019ull;
    return (uint8_t)(x >> 56 ^ off);
}

/* --subflow-timeout: the liveness timeout of both ends (mpt_config). */
static uint32_t sf_timeout_ms;

static int usage(void)
{
    fprintf(stderr, "usage: mpt-lbtest server --bind ADDR --port P --server-id N [--advertise A]...\n"
                    "       mpt-lbtest client --host H --port P --path A... --conns N --bytes B\n"
                    "                         [--subflows K] [--pause FILE] [--killed ID] [--serial]\n");
    return 2;
}

/* ---- server ------------------------------------------------------------------------ */

struct sconn {
    uint8_t buf[CHUNK];
    size_t off, len; /* unsent echo bytes */
    int eof;
};

static long s_conns, s_subflows_up, s_refused_token;

static void s_trace(const char *line, size_t len, void *user)
{
    (void)user;
    (void)len;
    if (strstr(line, "\"subflow_refused\"") && strstr(line, "ETOKEN"))
        s_refused_token++;
}

static void s_drain(struct mpt_socket *s, struct sconn *c)
{
    for (;;) {
        while (c->off < c->len) {
            ssize_t n = mpt_send(s, c->buf + c->off, c->len - c->off);
            if (n == MPT_EAGAIN)
                return; /* writable comes back here */
            if (n < 0) {
                mpt_abort(s);
                free(c);
                return;
            }
            c->off += (size_t)n;
        }
        c->off = c->len = 0;
        if (c->eof) {
            mpt_shutdown(s);
            mpt_close(s);
            free(c);
            return;
        }
        ssize_t n = mpt_recv(s, c->buf, sizeof c->buf);
        if (n == MPT_EAGAIN)
            return;
        if (n == 0) {
            c->eof = 1;
            continue;
        }
        if (n < 0) {
            mpt_abort(s); /* the peer failed; nothing to report to anyone */
            free(c);
            return;
        }
        c->len = (size_t)n;
    }
}

static void s_io(struct mpt_socket *s, void *user)
{
    s_drain(s, user);
}

static void s_sf_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    (void)s, (void)sf, (void)user;
    s_subflows_up++;
}

static void s_closed(struct mpt_socket *s, int status, void *user)
{
    (void)status;
    free(user);
    mpt_close(s);
}

static const struct mpt_callbacks s_cb = {
    .readable = s_io, .writable = s_io, .subflow_up = s_sf_up, .closed = s_closed};

static uint32_t s_id;

static void s_accept(struct mpt_listener *l, void *user)
{
    struct mpt_socket *s;
    (void)user;
    while (mpt_accept(l, &s_cb, NULL, &s) == 0) {
        struct sconn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            mpt_abort(s);
            continue;
        }
        s_conns++; /* subflow_up reports the subflows that came up before, too */
        c->buf[0] = (uint8_t)(s_id >> 24), c->buf[1] = (uint8_t)(s_id >> 16);
        c->buf[2] = (uint8_t)(s_id >> 8), c->buf[3] = (uint8_t)s_id;
        c->len = 4;
        mpt_set_callbacks(s, &s_cb, c);
        s_drain(s, c);
    }
}

static int server(const char *bind, uint16_t port, uint32_t id, const char **adv, size_t nadv)
{
    struct mpt_config cfg;
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    const char *addrs[1] = {bind};
    int rc;

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.server_id = id;
    cfg.subflow_timeout_ms = sf_timeout_ms;
    s_id = id;
    if ((rc = mpt_ctx_new(&ctx, NULL, &cfg)) < 0 ||
        (rc = mpt_set_trace_callback(ctx, s_trace, NULL)) < 0 ||
        (rc = mpt_listen(ctx, addrs, 1, port, s_accept, NULL, &l)) < 0 ||
        (nadv > 0 && (rc = mpt_listener_set_advertised(l, adv, nadv)) < 0)) {
        fprintf(stderr, "mpt-lbtest: server %u: %s:%u: %s: %s\n", id, bind, port,
                mpt_err_name(rc), mpt_strerror(rc));
        return 1;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    while (!stop)
        mpt_ctx_run(ctx, 100);
    printf("role=server id=%u conns=%ld subflows_up=%ld joins_refused_token=%ld\n", id, s_conns,
           s_subflows_up, s_refused_token);
    fflush(stdout);
    mpt_ctx_free(ctx);
    return 0;
}

/* ---- client ------------------------------------------------------------------------ */

struct cconn {
    struct mpt_socket *s;
    unsigned idx;
    uint8_t banner[4];
    size_t bgot;
    uint32_t server;
    uint64_t sent, rcvd, limit; /* limit: what may be sent in this phase */
    int sf, max_sf;
    int done, err, eof, bad;
    double t0, t_conn, t_done;
};

static struct cconn *cc;
static long c_n;
static uint64_t c_bytes;

static void c_fail(struct cconn *c, int err)
{
    if (c->done)
        return;
    c->done = 1;
    c->t_done = now_s();
    c->err = err ? err : MPT_ECLOSED;
    mpt_abort(c->s);
    c->s = NULL;
}

static void c_readable(struct mpt_socket *s, void *user)
{
    struct cconn *c = user;
    uint8_t buf[CHUNK];
    ssize_t n;

    while (!c->done && (n = mpt_recv(s, buf, sizeof buf)) != MPT_EAGAIN) {
        if (n < 0) {
            c_fail(c, (int)n);
            return;
        }
        if (n == 0) {
            c->eof = 1;
            c->done = 1;
            mpt_close(s);
            c->s = NULL;
            return;
        }
        size_t i = 0;
        while (c->bgot < 4 && i < (size_t)n)
            c->banner[c->bgot++] = buf[i++];
        if (c->bgot == 4 && c->server == 0)
            c->server = (uint32_t)c->banner[0] << 24 | (uint32_t)c->banner[1] << 16 |
                        (uint32_t)c->banner[2] << 8 | c->banner[3];
        for (; i < (size_t)n; i++, c->rcvd++)
            if (buf[i] != pat(c->idx, c->rcvd))
                c->bad = 1;
    }
}

static void c_writable(struct mpt_socket *s, void *user)
{
    struct cconn *c = user;
    uint8_t buf[CHUNK];

    while (!c->done && c->sent < c->limit) {
        size_t k = c->limit - c->sent < sizeof buf ? (size_t)(c->limit - c->sent) : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = pat(c->idx, c->sent + i);
        ssize_t n = mpt_send(s, buf, k);
        if (n == MPT_EAGAIN)
            return;
        if (n < 0) {
            c_fail(c, (int)n);
            return;
        }
        c->sent += (uint64_t)n;
        if (c->sent == c_bytes)
            mpt_shutdown(s);
    }
}

static void c_connected(struct mpt_socket *s, int status, void *user)
{
    struct cconn *c = user;
    if (status < 0) {
        c_fail(c, status);
        return;
    }
    c->t_conn = now_s();
    c_writable(s, c);
}

static void c_sf_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    struct cconn *c = user;
    (void)s, (void)sf;
    if (++c->sf > c->max_sf)
        c->max_sf = c->sf;
}

static void c_sf_down(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    struct cconn *c = user;
    (void)s, (void)sf;
    c->sf--;
}

static void c_closed(struct mpt_socket *s, int status, void *user)
{
    struct cconn *c = user;
    (void)s;
    if (!c->done) {
        c->done = 1;
        c->t_done = now_s();
        c->err = status < 0 ? status : MPT_ECLOSED;
        mpt_close(s);
        c->s = NULL;
    }
}

static const struct mpt_callbacks c_cb = {.connected = c_connected,
                                          .readable = c_readable,
                                          .writable = c_writable,
                                          .subflow_up = c_sf_up,
                                          .subflow_down = c_sf_down,
                                          .closed = c_closed};

/* Runs the loop until pred() holds for every live connection or deadline. */
static int wait_all(struct mpt_ctx *ctx, int (*pred)(const struct cconn *), double deadline)
{
    for (;;) {
        long pending = 0;
        for (long i = 0; i < c_n; i++)
            pending += !cc[i].done && !pred(&cc[i]);
        if (pending == 0)
            return 0;
        if (now_s() > deadline)
            return -1;
        mpt_ctx_run(ctx, 20);
    }
}

static int want_subflows;
static int ready(const struct cconn *c)
{
    return c->server != 0 && c->t_conn > 0 && c->sf >= want_subflows;
}
static int half_back(const struct cconn *c)
{
    return c->rcvd >= c->limit;
}
static int finished(const struct cconn *c)
{
    (void)c;
    return 0; /* until done */
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int client(const char *host, uint16_t port, const char **paths, size_t npaths, long n,
                  uint64_t bytes, int subflows, const char *pause, uint32_t killed, int timeout,
                  int serial)
{
    struct mpt_ctx *ctx;
    struct mpt_config cfg;
    double t_start = now_s(), deadline = t_start + timeout;
    int rc;

    c_n = n;
    c_bytes = bytes;
    want_subflows = subflows;
    if ((cc = calloc((size_t)n, sizeof *cc)) == NULL)
        return 1;
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.subflow_timeout_ms = sf_timeout_ms;
    if ((rc = mpt_ctx_new(&ctx, NULL, &cfg)) < 0) {
        fprintf(stderr, "mpt-lbtest: client: %s\n", mpt_strerror(rc));
        return 1;
    }
    for (long i = 0; i < n; i++) {
        cc[i].idx = (unsigned)i;
        cc[i].limit = 0;
        cc[i].t0 = now_s();
        if ((rc = mpt_connect(ctx, host, port, paths, npaths, &c_cb, &cc[i], &cc[i].s)) < 0) {
            fprintf(stderr, "mpt-lbtest: %s:%u: connect: %s\n", host, port, mpt_strerror(rc));
            return 1;
        }
        /* --serial: one handshake at a time, for its latency alone */
        while (serial && cc[i].t_conn == 0 && !cc[i].done && now_s() < deadline)
            mpt_ctx_run(ctx, 1);
    }
    if (wait_all(ctx, ready, deadline) < 0)
        fprintf(stderr, "mpt-lbtest: not every connection got its banner and %d subflows\n",
                subflows);
    double t_ready = now_s();
    for (long i = 0; i < n; i++) {
        cc[i].limit = bytes / 2;
        if (cc[i].s && !cc[i].done)
            c_writable(cc[i].s, &cc[i]);
    }
    if (wait_all(ctx, half_back, deadline) < 0)
        fprintf(stderr, "mpt-lbtest: the first half did not come back on every connection\n");
    printf("READY\n");
    fflush(stdout);
    while (pause != NULL && access(pause, F_OK) != 0 && now_s() < deadline)
        mpt_ctx_run(ctx, 20);
    double t_resume = now_s(), fail_max = 0;
    for (long i = 0; i < n; i++) {
        cc[i].limit = bytes;
        if (cc[i].s && !cc[i].done)
            c_writable(cc[i].s, &cc[i]);
    }
    if (wait_all(ctx, finished, deadline) < 0)
        fprintf(stderr, "mpt-lbtest: timed out after %d s\n", timeout);

    long ok = 0, failed = 0, failed_killed = 0, bad = 0;
    long per[16] = {0};
    double *lat = calloc((size_t)n, sizeof *lat);
    size_t nlat = 0;
    for (long i = 0; i < n; i++) {
        struct cconn *c = &cc[i];
        int good = c->done && c->eof && !c->bad && c->rcvd == bytes && c->sent == bytes &&
                   c->max_sf >= subflows;
        if (c->server < 16)
            per[c->server]++;
        if (c->t_conn > 0 && lat)
            lat[nlat++] = (c->t_conn - c->t0) * 1e3;
        if (good) {
            ok++;
            continue;
        }
        failed++;
        if (c->t_done > t_resume && c->t_done - t_resume > fail_max)
            fail_max = c->t_done - t_resume;
        if (killed != 0 && c->server == killed && c->err < 0)
            failed_killed++;
        else
            bad++;
        fprintf(stderr,
                "mpt-lbtest: connection %ld (server %u): %s%s: sent %llu, echoed %llu of %llu, "
                "subflows max %d\n",
                i, c->server, !c->done ? "not finished" : c->err < 0 ? mpt_err_name(c->err) : "",
                c->bad ? " (echo differs)" : "", (unsigned long long)c->sent,
                (unsigned long long)c->rcvd, (unsigned long long)bytes, c->max_sf);
        if (c->s)
            mpt_abort(c->s);
    }
    qsort(lat, nlat, sizeof *lat, cmp_d);
    printf("role=client conns=%ld ok=%ld failed=%ld failed_killed=%ld per_server=", n, ok, failed,
           failed_killed);
    for (int k = 1, first = 1; k < 16; k++)
        if (per[k]) {
            printf("%s%d:%ld", first ? "" : ",", k, per[k]);
            first = 0;
        }
    printf(" connect_p50_ms=%.2f connect_max_ms=%.2f connects_per_s=%.1f failed_after_max_s=%.2f\n",
           nlat ? lat[nlat / 2] : -1.0, nlat ? lat[nlat - 1] : -1.0,
           t_ready > t_start ? (double)nlat / (t_ready - t_start) : 0.0, fail_max);
    free(lat);
    mpt_ctx_free(ctx);
    /* Connections on the killed server must fail, the others complete. */
    if (killed != 0) {
        for (long i = 0; i < n; i++)
            if (cc[i].server == killed && cc[i].err == 0 && cc[i].eof && cc[i].rcvd == bytes)
                bad++; /* it survived its server's death: the kill came too late */
    }
    free(cc);
    return bad == 0 ? 0 : 3;
}

int main(int argc, char **argv)
{
    const char *bind = NULL, *host = NULL, *pause = NULL, *paths[MAXPATHS], *adv[8];
    size_t npaths = 0, nadv = 0;
    long port = -1, conns = 0, id = 0, subflows = 1, killed = 0, timeout = 120;
    int serial = 0;
    unsigned long long bytes = 0;

    if (argc < 2)
        return usage();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--serial")) {
            serial = 1;
            continue;
        }
        if (v == NULL)
            return usage();
        if (!strcmp(a, "--bind"))
            bind = v;
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = strtol(v, NULL, 10);
        else if (!strcmp(a, "--server-id"))
            id = strtol(v, NULL, 10);
        else if (!strcmp(a, "--advertise") && nadv < 8)
            adv[nadv++] = v;
        else if (!strcmp(a, "--path") && npaths < MAXPATHS)
            paths[npaths++] = v;
        else if (!strcmp(a, "--conns"))
            conns = strtol(v, NULL, 10);
        else if (!strcmp(a, "--bytes"))
            bytes = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--subflows"))
            subflows = strtol(v, NULL, 10);
        else if (!strcmp(a, "--pause"))
            pause = v;
        else if (!strcmp(a, "--killed"))
            killed = strtol(v, NULL, 10);
        else if (!strcmp(a, "--subflow-timeout"))
            sf_timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--timeout"))
            timeout = strtol(v, NULL, 10);
        else
            return usage();
        i++;
    }
    if (port <= 0 || port > 65535)
        return usage();
    if (!strcmp(argv[1], "server") && bind && id > 0 && id < 16)
        return server(bind, (uint16_t)port, (uint32_t)id, adv, nadv);
    if (!strcmp(argv[1], "client") && host && conns > 0 && bytes >= 2 && subflows > 0)
        return client(host, (uint16_t)port, paths, npaths, conns, bytes, (int)subflows, pause,
                      (uint32_t)killed, (int)timeout, serial);
    return usage();
}
