/*
 * mpt-scale: many idle connections on loopback.
 *
 *   mpt-scale [-n CONNECTIONS] [--batch B] [--ping-ms MS] [--json]
 *
 * A server process (forked) listens on 127.0.0.1; this process opens
 * CONNECTIONS connections of two subflows each (source addresses 127.0.0.1
 * and 127.0.0.2), B at a time. Reported: the server's resident memory per
 * idle connection (RSS after everything is established and idle, minus RSS
 * before the first connection, over CONNECTIONS), the client's, and the rate
 * at which the server accepted connections (first to last accept).
 * Kernel socket buffers are not part of RSS. Raises RLIMIT_NOFILE as far as
 * it is allowed to. Idle subflows exchange a PING every ping_interval_ms
 * (--ping-ms, default here 15000: an idle server's cost is mostly these).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (fp == NULL)
        return 0;
    if (fscanf(fp, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(fp);
    return rss * sysconf(_SC_PAGESIZE);
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = want;
    if (rl.rlim_max < want)
        rl.rlim_max = want; /* root may raise the hard limit */
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- server (child) -------------------------------------------------------------- */

static int srv_count, srv_target;
static double srv_first, srv_last;

static void srv_accept(struct mpt_listener *l, void *user)
{
    struct mpt_socket *s;
    while (mpt_accept(l, NULL, NULL, &s) == 0) {
        if (srv_count++ == 0)
            srv_first = now_s();
        srv_last = now_s();
    }
}

static struct mpt_config cfg;

static int server(int n, int wfd, int rfd)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    static const char *const addrs[] = {"127.0.0.1"};
    char line[256];

    srv_target = n;
    if (mpt_ctx_new(&ctx, NULL, &cfg) < 0 || mpt_listen(ctx, addrs, 1, 0, srv_accept, NULL, &l) < 0)
        return 1;
    mpt_ctx_run(ctx, 100);
    long rss0 = rss_bytes();
    snprintf(line, sizeof line, "%d\n", mpt_listener_port(l));
    if (write(wfd, line, strlen(line)) < 0)
        return 1;
    /* Serve until the client asks for the measurement ('m'), then until it
     * closes the pipe. */
    for (;;) {
        char c;
        mpt_ctx_run(ctx, 100);
        struct timeval tv = {0, 0};
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(rfd, &fds);
        if (select(rfd + 1, &fds, NULL, NULL, &tv) <= 0)
            continue;
        if (read(rfd, &c, 1) <= 0)
            break;
        mpt_ctx_run(ctx, 2000); /* idle: joins and acks settled */
        long rss1 = rss_bytes();
        double rate = srv_count > 1 ? (srv_count - 1) / (srv_last - srv_first) : 0;
        snprintf(line, sizeof line, "%d %ld %ld %.1f\n", srv_count, rss0, rss1, rate);
        if (write(wfd, line, strlen(line)) < 0)
            return 1;
    }
    mpt_ctx_free(ctx);
    return 0;
}

/* ---- client ------------------------------------------------------------------------ */

static int cli_connected, cli_failed, cli_sf_up;

static int cli_first_error;

static void cli_conn(struct mpt_socket *s, int status, void *user)
{
    if (status == 0) {
        cli_connected++;
    } else {
        if (cli_failed++ == 0)
            cli_first_error = status;
    }
}

static void cli_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    cli_sf_up++;
}

int main(int argc, char **argv)
{
    int n = 1000, batch = 200, json = 0;
    int up[2], down[2];

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.ping_interval_ms = 15000;
    cfg.subflow_timeout_ms = 30000;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ping-ms") == 0 && i + 1 < argc)
            cfg.ping_interval_ms = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "usage: mpt-scale [-n CONNECTIONS] [--batch B] [--ping-ms MS] [--json]\n");
            return 2;
        }
    }
    if (n < 1 || batch < 1 || pipe(up) < 0 || pipe(down) < 0)
        return 2;
    /* Two subflows per connection on each side: one fd each. */
    raise_nofile((rlim_t)n * 2 + 64);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n * 2 + 64 > rl.rlim_cur) {
        n = (int)((rl.rlim_cur - 64) / 2);
        fprintf(stderr, "mpt-scale: RLIMIT_NOFILE %lu allows %d connections\n",
                (unsigned long)rl.rlim_cur, n);
    }
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        _exit(server(n, up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);
    FILE *in = fdopen(up[0], "r");
    int port = 0;
    if (in == NULL || fscanf(in, "%d", &port) != 1) {
        fprintf(stderr, "mpt-scale: server did not start\n");
        return 1;
    }

    struct mpt_ctx *ctx;
    cfg.max_connections = (uint32_t)n + 16;
    /* every client connection comes from loopback: past the per-source and
     * pending limits a server facing the Internet keeps */
    cfg.max_conns_per_addr = (uint32_t)n + 16;
    cfg.max_pending_handshakes = (uint32_t)n + 16;
    if (mpt_ctx_new(&ctx, NULL, &cfg) < 0)
        return 1;
    static const char *const paths[] = {"127.0.0.1", "127.0.0.2"};
    struct mpt_callbacks cb = {.connected = cli_conn, .subflow_up = cli_up};
    long crss0 = rss_bytes();
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        struct mpt_socket *s;
        int rc = mpt_connect(ctx, "127.0.0.1", (uint16_t)port, paths, 2, &cb, NULL, &s);
        if (rc < 0) {
            fprintf(stderr, "mpt-scale: connect %d: %s\n", i, mpt_strerror(rc));
            break;
        }
        if ((i + 1) % batch == 0)
            while (cli_connected + cli_failed < i + 1 - batch / 2 && now_s() - t0 < 600)
                mpt_ctx_run(ctx, 10);
    }
    while ((cli_connected + cli_failed < n || cli_sf_up < 2 * cli_connected) && now_s() - t0 < 600)
        mpt_ctx_run(ctx, 50);
    double t_est = now_s() - t0;
    mpt_ctx_run(ctx, 2000);
    long crss1 = rss_bytes();

    if (write(down[1], "m", 1) != 1)
        return 1;
    int count = 0;
    long rss0 = 0, rss1 = 0;
    double rate = 0;
    /* Keep the client loop running while the server measures. */
    int sfd = up[0];
    for (;;) {
        struct timeval tv = {0, 0};
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(sfd, &fds);
        if (select(sfd + 1, &fds, NULL, NULL, &tv) > 0)
            break;
        mpt_ctx_run(ctx, 100);
    }
    if (fscanf(in, "%d %ld %ld %lf", &count, &rss0, &rss1, &rate) != 4)
        fprintf(stderr, "mpt-scale: no result from the server\n");
    double per_srv = count ? (double)(rss1 - rss0) / count : 0;
    double per_cli = cli_connected ? (double)(crss1 - crss0) / cli_connected : 0;
    if (cli_failed)
        fprintf(stderr, "mpt-scale: %d connections failed, the first with %s\n", cli_failed,
                mpt_strerror(cli_first_error));
    if (json)
        printf("{\"connections\":%d,\"failed\":%d,\"subflows\":%d,\"server_rss_per_conn\":%.0f,"
               "\"client_rss_per_conn\":%.0f,\"accept_per_s\":%.1f,\"establish_s\":%.2f}\n",
               count, cli_failed, cli_sf_up, per_srv, per_cli, rate, t_est);
    else
        printf("%d connections (%d failed, %d subflows up): server RSS %.1f KiB per idle "
               "connection, client %.1f KiB; server accepted %.0f connections/s; all "
               "established in %.2f s\n",
               count, cli_failed, cli_sf_up, per_srv / 1024, per_cli / 1024, rate, t_est);
    close(down[1]);
    mpt_ctx_free(ctx);
    waitpid(pid, NULL, 0);
    return cli_failed != 0;
}
