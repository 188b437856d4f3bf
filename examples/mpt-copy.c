/*
 * mpt-copy: bulk transfer with throughput and CPU cost, using the blocking
 * layer.
 *
 *   mpt-copy -l PORT [--listen-addr ADDR]... [-o FILE]     receive one stream
 *   mpt-copy HOST PORT [--path P]... [-f FILE | -n BYTES]  send a file or N bytes
 *
 * Both ends print bytes, seconds, Mbit/s and CPU seconds per GiB; --json
 * prints one JSON object instead (tests/bench uses it). For measurements the
 * environment variables MPT_COPY_SNDBUF, MPT_COPY_RCVBUF, MPT_COPY_LOWAT,
 * MPT_COPY_BUDGET and MPT_COPY_SCHED override the configuration, and
 * MPT_TRACE=file writes the trace.
 *
 * Exit status: 0 only if the transfer completed (the receiver read the whole
 * stream up to its end; the sender's graceful close finished, so the peer
 * acknowledged everything); 1 otherwise, with a message naming the peer and
 * the cause; 2 for a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#define CHUNK (1u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void report(const char *role, unsigned long long bytes, double secs, double cpu,
                   struct mpt_socket *s, int json)
{
    struct mpt_info info = {.size = sizeof info};
    struct mpt_subflow_info sf[32];
    int nsf = mpt_get_subflows(s, sf, 32);
    double gib = (double)bytes / (1024.0 * 1024.0 * 1024.0);

    mpt_get_info(s, &info);
    if (json) {
        printf("{\"role\":\"%s\",\"bytes\":%llu,\"seconds\":%.3f,\"mbit_s\":%.1f,"
               "\"cpu_s\":%.3f,\"cpu_s_per_gib\":%.3f,\"subflows\":%d,\"reinjected\":%llu}\n",
               role, bytes, secs, bytes * 8 / secs / 1e6, cpu, gib > 0 ? cpu / gib : 0., nsf,
               (unsigned long long)info.bytes_reinjected);
    } else {
        printf("%s: %llu bytes in %.3f s = %.1f Mbit/s, CPU %.2f s (%.2f s/GiB), %d subflows, "
               "%llu bytes reinjected\n",
               role, bytes, secs, bytes * 8 / secs / 1e6, cpu, gib > 0 ? cpu / gib : 0., nsf,
               (unsigned long long)info.bytes_reinjected);
    }
}

/* "mpt-copy: peer: what: MPT_E...: text (errno N: text)"; s, if still held,
 * says which errno was behind err. */
static void fail(const char *peer, const char *what, int err, struct mpt_socket *s)
{
    struct mpt_info info = {.size = sizeof info};
    int e = 0;

    if (s != NULL && mpt_get_info(s, &info) == 0 && info.error == err)
        e = info.sys_errno;
    if (e != 0)
        fprintf(stderr, "mpt-copy: %s: %s: %s: %s (errno %d: %s)\n", peer, what,
                mpt_err_name(err), mpt_strerror(err), e, strerror(e));
    else
        fprintf(stderr, "mpt-copy: %s: %s: %s: %s\n", peer, what, mpt_err_name(err),
                mpt_strerror(err));
}

struct cwait {
    int done, status;
};

static void cw_connected(struct mpt_socket *s, int status, void *user)
{
    struct cwait *w = user;
    w->done = 1;
    w->status = status;
}

/* mpt_blocking_connect, except that a socket that failed is kept until its
 * cause (mpt_info's sys_errno) has been reported. */
static int connect_or_report(struct mpt_ctx *ctx, const char *host, uint16_t port,
                             const char *const *paths, size_t npaths, const char *peer,
                             struct mpt_socket **out)
{
    struct mpt_callbacks cb = {.connected = cw_connected};
    struct cwait w = {0, 0};
    int rc = mpt_connect(ctx, host, port, paths, npaths, &cb, &w, out);

    if (rc < 0) {
        fail(peer, "connect", rc, NULL);
        return rc;
    }
    double t0 = now_s();
    while (!w.done && now_s() - t0 < 10)
        mpt_ctx_run(ctx, 100);
    if (!w.done)
        w.status = MPT_ETIMEDOUT;
    if (w.status < 0) {
        fail(peer, "connect", w.status, *out);
        mpt_abort(*out);
        *out = NULL;
        return w.status;
    }
    mpt_set_callbacks(*out, NULL, NULL);
    return 0;
}

/* Exit status 1 after a failure, with everything released (so that leak
 * checkers judge the library, not the exit path). */
static int fail_exit(struct mpt_ctx *ctx)
{
    mpt_ctx_free(ctx);
    return 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: mpt-copy [--json] -l PORT [--listen-addr ADDR]... [-o FILE]\n"
                    "       mpt-copy [--json] HOST PORT [--path P]... [-f FILE | -n BYTES]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *paths[16], *laddrs[8], *pos[2], *file = NULL, *out = NULL, *trace = NULL;
    size_t npaths = 0, nladdrs = 0, npos = 0;
    unsigned long long nbytes = 1ull << 30;
    int listen_port = -1, json = 0, rc;
    struct mpt_ctx *ctx;
    struct mpt_socket *s;
    static char buf[CHUNK];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-l") == 0 && i + 1 < argc)
            listen_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc && npaths < 16)
            paths[npaths++] = argv[++i];
        else if (strcmp(argv[i], "--listen-addr") == 0 && i + 1 < argc && nladdrs < 8)
            laddrs[nladdrs++] = argv[++i];
        else if (strcmp(argv[i], "-f") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            nbytes = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc)
            trace = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] != '-' && npos < 2)
            pos[npos++] = argv[i];
        else
            usage();
    }
    if ((listen_port < 0 && npos != 2) || (listen_port >= 0 && npos != 0))
        usage();
    struct mpt_config cfg;
    MPT_CONFIG_DEFAULT(&cfg);
    /* Tuning knobs for measurements: MPT_COPY_<FIELD>=value. */
    const char *e;
    if ((e = getenv("MPT_COPY_SNDBUF")))
        cfg.sndbuf = strtoull(e, NULL, 0);
    if ((e = getenv("MPT_COPY_RCVBUF")))
        cfg.rcvbuf = strtoull(e, NULL, 0);
    if ((e = getenv("MPT_COPY_LOWAT")))
        cfg.notsent_lowat = (uint32_t)strtoul(e, NULL, 0);
    if ((e = getenv("MPT_COPY_BUDGET")))
        cfg.write_budget = (uint32_t)strtoul(e, NULL, 0);
    if ((e = getenv("MPT_COPY_SCHED")))
        cfg.scheduler = e;
    if ((rc = mpt_ctx_new(&ctx, NULL, &cfg)) < 0) {
        fprintf(stderr, "mpt-copy: %s\n", mpt_strerror(rc));
        return 1;
    }
    if (trace)
        mpt_set_trace_file(ctx, trace);

    char peer[300];
    if (listen_port >= 0) {
        struct mpt_listener *l;
        int fd = -1;
        snprintf(peer, sizeof peer, "%s:%d", nladdrs ? laddrs[0] : "", listen_port);
        if ((rc = mpt_listen(ctx, nladdrs ? laddrs : NULL, nladdrs, (uint16_t)listen_port, NULL,
                             NULL, &l)) < 0) {
            fail(peer, "listen", rc, NULL);
            return fail_exit(ctx);
        }
        if ((rc = mpt_blocking_accept(l, -1, &s)) < 0) {
            fail(peer, "accept", rc, NULL);
            return fail_exit(ctx);
        }
        if (out && (fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0) {
            perror(out);
            return fail_exit(ctx);
        }
        unsigned long long got = 0;
        double t0 = now_s(), c0 = cpu_s();
        ssize_t n;
        while ((n = mpt_blocking_recv(s, buf, CHUNK, 30000)) > 0) {
            got += (unsigned long long)n;
            if (fd >= 0 && write(fd, buf, (size_t)n) != n) {
                perror(out);
                return fail_exit(ctx);
            }
        }
        double dt = now_s() - t0, dc = cpu_s() - c0;
        if (n < 0)
            fail(peer, "recv (the stream is incomplete)", (int)n, s);
        report("receiver", got, dt, dc, s, json);
        /* The whole stream arrived: a close that fails now loses nothing. */
        if ((rc = mpt_blocking_close(s, 5000)) < 0 && n == 0)
            fail(peer, "close (all data was received)", rc, NULL);
        if (fd >= 0)
            close(fd);
        mpt_listener_close(l);
        mpt_ctx_free(ctx);
        return n < 0;
    }

    int fd = -1;
    if (file && (fd = open(file, O_RDONLY)) < 0) {
        perror(file);
        return fail_exit(ctx);
    }
    snprintf(peer, sizeof peer, "%s:%s", pos[0], pos[1]);
    if (connect_or_report(ctx, pos[0], (uint16_t)atoi(pos[1]), paths, npaths, peer, &s) < 0)
        return fail_exit(ctx);
    memset(buf, 'm', CHUNK);
    unsigned long long sent = 0;
    double t0 = now_s(), c0 = cpu_s();
    for (;;) {
        size_t n = CHUNK;
        if (fd >= 0) {
            ssize_t r = read(fd, buf, CHUNK);
            if (r < 0) {
                fprintf(stderr, "mpt-copy: %s: %s\n", file, strerror(errno));
                return fail_exit(ctx);
            }
            if (r == 0)
                break;
            n = (size_t)r;
        } else {
            if (sent >= nbytes)
                break;
            if (nbytes - sent < n)
                n = (size_t)(nbytes - sent);
        }
        ssize_t w = mpt_blocking_send_all(s, buf, n, 30000);
        if (w < 0) {
            fail(peer, "send", (int)w, s);
            return fail_exit(ctx);
        }
        sent += n;
    }
    /* Until the peer has everything: the graceful close waits for its ack. */
    rc = mpt_blocking_close(s, 60000);
    double dt = now_s() - t0, dc = cpu_s() - c0;
    if (rc < 0)
        fail(peer, "close (the peer may not have everything)", rc, NULL);
    /* s is released; report from what we measured. */
    if (json)
        printf("{\"role\":\"sender\",\"bytes\":%llu,\"seconds\":%.3f,\"mbit_s\":%.1f,"
               "\"cpu_s\":%.3f,\"cpu_s_per_gib\":%.3f}\n",
               sent, dt, sent * 8 / dt / 1e6, dc, dc / ((double)sent / (1u << 30)));
    else
        printf("sender: %llu bytes in %.3f s = %.1f Mbit/s, CPU %.2f s (%.2f s/GiB)\n", sent, dt,
               sent * 8 / dt / 1e6, dc, dc / ((double)sent / (1u << 30)));
    mpt_ctx_free(ctx);
    return rc < 0;
}
