/*
 * Reference contenders for the benchmarks: one plain TCP connection, or one
 * kernel MPTCP connection (IPPROTO_MPTCP), moving N bytes between two
 * processes. It measures what libmpt is compared against, so it does nothing
 * clever: large blocking read()/write() calls, the kernel's defaults.
 *
 *   mpt-tcpbench server [--mptcp] [--bind ADDR] --port P [--send N] [options]
 *   mpt-tcpbench client [--mptcp] --host ADDR [--src ADDR] --port P [--send N | --recv] [options]
 *     --expect N      receiver: N bytes are due (lost_bytes = N - verified)
 *     --stream RATE   stream mode: timestamped BENCH_MSG-byte messages at RATE/s
 *     --reverse N     both sides: while the --send side sends, the other side
 *                     sends it N pattern bytes back (a request stream beside the
 *                     bulk one); the --send side verifies them (reverse_bytes=,
 *                     reverse_verify=); not with TLS
 *     --nodelay       TCP_NODELAY (libmpt sets it on its subflows)
 *     --tcp-cc NAME   TCP_CONGESTION     --timeout SEC  give up (default 300)
 *     --tls-cert F --tls-key F (server), --tls-ca F --tls-name N (client): one
 *                     mbedTLS TLS 1.2 connection over the TCP one, suite
 *                     --tls-suite (default TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256),
 *                     the same mbedTLS configuration as libmpt's subflows
 *
 * The side given --send N writes N bytes (bench-common.c's pattern) then
 * closes; the other side reads to EOF and verifies every byte. Each side
 * prints one line, the same keys as mpt-bench:
 *   role=client bytes=N seconds=S gbps=G cpu_s=C subflows=K reinjected=0 completed=1
 * and the receiver adds max_gap_ms= lost_bytes= verify= (and latencies in
 * stream mode). subflows: the most seen in MPTCP_INFO, else 1. Exit status 0
 * when complete and byte-exact, 3 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef SOL_MPTCP
#define SOL_MPTCP 284
#endif
#ifndef MPTCP_INFO
#define MPTCP_INFO 1
#endif

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "bench-common.h"

static double deadline;

/* ---- TLS: a plain blocking mbedTLS connection, the reference --------------------- */

static struct {
    int on;
    const char *cert, *key, *ca, *name, *suite;
    int suites[2];
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca_crt, crt;
    mbedtls_pk_context pk;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_net_context net;
} T;

static void tls_die(const char *what, int ret)
{
    char e[128];
    mbedtls_strerror(ret, e, sizeof e);
    fprintf(stderr, "mpt-tcpbench: TLS %s: %s\n", what, e);
    exit(1);
}

static void tls_setup(int fd, int server)
{
    int ret;

    mbedtls_entropy_init(&T.entropy);
    mbedtls_ctr_drbg_init(&T.drbg);
    mbedtls_x509_crt_init(&T.ca_crt);
    mbedtls_x509_crt_init(&T.crt);
    mbedtls_pk_init(&T.pk);
    mbedtls_ssl_config_init(&T.conf);
    mbedtls_ssl_init(&T.ssl);
    if ((ret = mbedtls_ctr_drbg_seed(&T.drbg, mbedtls_entropy_func, &T.entropy, NULL, 0)) != 0)
        tls_die("seed", ret);
    if ((ret = mbedtls_ssl_config_defaults(&T.conf, server ? MBEDTLS_SSL_IS_SERVER
                                                           : MBEDTLS_SSL_IS_CLIENT,
                                           MBEDTLS_SSL_TRANSPORT_STREAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
        tls_die("config", ret);
    mbedtls_ssl_conf_rng(&T.conf, mbedtls_ctr_drbg_random, &T.drbg);
    mbedtls_ssl_conf_min_version(&T.conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&T.conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    T.suites[0] = mbedtls_ssl_get_ciphersuite_id(T.suite);
    if (T.suites[0] == 0)
        tls_die("unknown --tls-suite", MBEDTLS_ERR_SSL_BAD_INPUT_DATA);
    mbedtls_ssl_conf_ciphersuites(&T.conf, T.suites);
    if (T.ca != NULL) {
        if ((ret = mbedtls_x509_crt_parse_file(&T.ca_crt, T.ca)) != 0)
            tls_die(T.ca, ret);
        mbedtls_ssl_conf_ca_chain(&T.conf, &T.ca_crt, NULL);
    }
    mbedtls_ssl_conf_authmode(&T.conf, !server && T.ca != NULL ? MBEDTLS_SSL_VERIFY_REQUIRED
                                                               : MBEDTLS_SSL_VERIFY_NONE);
    if (T.cert != NULL) {
        if ((ret = mbedtls_x509_crt_parse_file(&T.crt, T.cert)) != 0)
            tls_die(T.cert, ret);
        if ((ret = mbedtls_pk_parse_keyfile(&T.pk, T.key, NULL)) != 0)
            tls_die(T.key, ret);
        if ((ret = mbedtls_ssl_conf_own_cert(&T.conf, &T.crt, &T.pk)) != 0)
            tls_die("own cert", ret);
    }
    if ((ret = mbedtls_ssl_setup(&T.ssl, &T.conf)) != 0)
        tls_die("setup", ret);
    if (!server && T.name != NULL && (ret = mbedtls_ssl_set_hostname(&T.ssl, T.name)) != 0)
        tls_die("hostname", ret);
    T.net.fd = fd;
    mbedtls_ssl_set_bio(&T.ssl, &T.net, mbedtls_net_send, mbedtls_net_recv, NULL);
    while ((ret = mbedtls_ssl_handshake(&T.ssl)) != 0)
        if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE)
            tls_die("handshake", ret);
}

static ssize_t io_read(int fd, void *buf, size_t n)
{
    if (!T.on)
        return read(fd, buf, n);
    for (;;) {
        int r = mbedtls_ssl_read(&T.ssl, buf, n);
        if (r >= 0)
            return r;
        if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_NET_CONN_RESET)
            return 0;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        errno = EIO;
        return -1;
    }
}

static ssize_t io_write(int fd, const void *buf, size_t n)
{
    if (!T.on)
        return write(fd, buf, n);
    for (;;) {
        int r = mbedtls_ssl_write(&T.ssl, buf, n);
        if (r >= 0)
            return r;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            continue;
        errno = EIO;
        return -1;
    }
}

static void io_shutdown_wr(int fd)
{
    if (T.on)
        (void)mbedtls_ssl_close_notify(&T.ssl);
    shutdown(fd, SHUT_WR);
}

static void die(const char *what)
{
    fprintf(stderr, "mpt-tcpbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Subflow count of an MPTCP socket: struct mptcp_info's first byte is
 * mptcpi_subflows, the number of additional subflows (linux/mptcp.h); read it
 * raw to avoid header skew. */
static int mptcp_subflows(int fd)
{
    uint8_t info[256];
    socklen_t len = sizeof info;

    memset(info, 0, sizeof info);
    if (getsockopt(fd, SOL_MPTCP, MPTCP_INFO, info, &len) < 0 || len < 2)
        return 1;
    return info[0] + 1; /* subflows counts the additional ones */
}

/* Bounded run time: every blocking call gets at most the rest of --timeout. */
static void arm_timeout(int fd)
{
    double r = deadline - bench_now();
    struct timeval tv;
    if (r < 0.001)
        r = 0.001;
    tv.tv_sec = (time_t)r;
    tv.tv_usec = (suseconds_t)((r - (double)tv.tv_sec) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = io_write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void sleep_until(double t)
{
    double now = bench_now();
    if (t <= now)
        return;
    struct timespec ts;
    double d = t - now;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The bulk receiver's side of --reverse: sends what the socket takes now,
 * never blocking (the bulk sender reads only between its writes). */
static int reverse_push(int fd, unsigned long long *off, unsigned long long total)
{
    while (*off < total) {
        size_t k = total - *off < BENCH_IO ? (size_t)(total - *off) : BENCH_IO;
        ssize_t w = send(fd, bench_pat_at(*off), k, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        *off += (unsigned long long)w;
    }
    return 0;
}

/* The bulk sender's side of --reverse: takes what has arrived, never blocking. */
static void reverse_drain(int fd, struct bench_rx *rrx)
{
    static unsigned char rbuf[BENCH_IO];
    ssize_t n;
    while ((n = recv(fd, rbuf, sizeof rbuf, MSG_DONTWAIT)) > 0)
        bench_rx_data(rrx, rbuf, (size_t)n);
}

static int transfer(int fd, const char *role, long long send_bytes, long long expect, double stream_rate,
                    int mptcp, unsigned long long reverse)
{
    static unsigned char buf[BENCH_IO];
    long long moved = 0;
    double t0 = bench_now(), c0 = bench_cpu();
    int subflows = 1, ok = 1, k;
    char line[1024];

    arm_timeout(fd);
    if (send_bytes > 0) {
        struct bench_rx rrx;
        bench_rx_init(&rrx, 0);
        if (stream_rate > 0) {
            unsigned char msg[BENCH_MSG];
            long long msgs = send_bytes / BENCH_MSG;
            for (long long seq = 0; seq < msgs; seq++) {
                sleep_until(t0 + (double)seq / stream_rate);
                bench_msg_fill(msg, (uint64_t)seq);
                if (write_all(fd, msg, BENCH_MSG) < 0) {
                    fprintf(stderr, "mpt-tcpbench: %s: write: %s\n", role, strerror(errno));
                    ok = 0;
                    break;
                }
                moved += BENCH_MSG;
                if (mptcp && (k = mptcp_subflows(fd)) > subflows)
                    subflows = k;
            }
        } else {
            while (moved < send_bytes) {
                size_t want = (size_t)(send_bytes - moved < BENCH_IO ? send_bytes - moved : BENCH_IO);
                if (write_all(fd, bench_pat_at((uint64_t)moved), want) < 0) {
                    fprintf(stderr, "mpt-tcpbench: %s: write: %s\n", role, strerror(errno));
                    ok = 0;
                    break;
                }
                moved += (long long)want;
                if (mptcp && (k = mptcp_subflows(fd)) > subflows)
                    subflows = k;
                if (reverse)
                    reverse_drain(fd, &rrx);
            }
        }
        if (mptcp && (k = mptcp_subflows(fd)) > subflows)
            subflows = k;
        io_shutdown_wr(fd);
        /* Wait for the peer's close so the timing covers delivery, not just
         * the local send buffer. */
        for (;;) {
            ssize_t n = io_read(fd, buf, sizeof buf);
            if (n > 0) {
                if (reverse)
                    bench_rx_data(&rrx, buf, (size_t)n);
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                fprintf(stderr, "mpt-tcpbench: %s: waiting for close: %s\n", role, strerror(errno));
                ok = 0;
            }
            break;
        }
        double secs = bench_now() - t0;
        if (reverse && (rrx.bad || rrx.good != reverse || rrx.bytes != reverse)) {
            fprintf(stderr, "mpt-tcpbench: %s: reverse stream: %llu of %llu bytes verified\n", role,
                    (unsigned long long)rrx.good, reverse);
            ok = 0;
        }
        printf("role=%s bytes=%lld seconds=%.6f gbps=%.6f cpu_s=%.4f subflows=%d reinjected=0 completed=%d",
               role, moved, secs, secs > 0 ? (double)moved * 8 / secs / 1e9 : 0.0, bench_cpu() - c0,
               subflows, ok);
        if (reverse)
            printf(" reverse_bytes=%llu reverse_verify=%s", (unsigned long long)rrx.bytes,
                   rrx.bad || rrx.good != reverse || rrx.bytes != reverse ? "FAIL" : "ok");
        printf("\n");
        free(rrx.lat);
    } else {
        struct bench_rx rx;
        ssize_t n;
        unsigned long long roff = 0;
        int rev_err = 0;
        bench_rx_init(&rx, stream_rate > 0);
        for (;;) {
            if (roff < reverse && !rev_err && reverse_push(fd, &roff, reverse) < 0) {
                fprintf(stderr, "mpt-tcpbench: %s: reverse send: %s\n", role, strerror(errno));
                rev_err = 1;
            }
            n = io_read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            bench_rx_data(&rx, buf, (size_t)n);
            if (mptcp && (subflows < 2 || (rx.bytes & 0xfffff) < (uint64_t)n) &&
                (k = mptcp_subflows(fd)) > subflows)
                subflows = k;
        }
        if (n < 0)
            fprintf(stderr, "mpt-tcpbench: %s: read after %llu bytes: %s\n", role,
                    (unsigned long long)rx.bytes, strerror(errno));
        double secs = (rx.bytes > 0 ? rx.t_last : bench_now()) - t0;
        snprintf(line, sizeof line,
                 "role=%s bytes=%llu seconds=%.6f gbps=%.6f cpu_s=%.4f subflows=%d reinjected=0 completed=%d",
                 role, (unsigned long long)rx.bytes, secs,
                 secs > 0 ? (double)rx.bytes * 8 / secs / 1e9 : 0.0, bench_cpu() - c0, subflows, n == 0);
        /* The bulk sender reads to EOF after its last write: block for the rest. */
        if (n == 0) {
            while (!rev_err && roff < reverse) {
                size_t len = reverse - roff < BENCH_IO ? (size_t)(reverse - roff) : BENCH_IO;
                if (write_all(fd, bench_pat_at(roff), len) < 0) {
                    fprintf(stderr, "mpt-tcpbench: %s: reverse send: %s\n", role, strerror(errno));
                    rev_err = 1;
                }
                roff += len;
            }
        }
        ok = bench_rx_report(&rx, (uint64_t)(expect > 0 ? expect : 0), line, sizeof line) && n == 0 &&
             !rev_err;
        printf("%s\n", line);
        free(rx.lat);
    }
    fflush(stdout);
    close(fd);
    return ok ? 0 : 3;
}

/* ---- scale: the plain TCP contender of tests/bench/scale.sh ----------------------- */

/*
 *   mpt-tcpbench scale-server --bind ADDR --port P --conns N [--timeout SEC]
 *   mpt-tcpbench scale-client --host ADDR --port P --conns N [--src ADDR] [--timeout SEC]
 * N plain TCP connections, each doing one request/response exchange
 * (SCALE_REQ bytes each way) and then held idle, the client keeping at most
 * 256 of them connecting at once (as mpt-bench scale-client does). The server
 * prints the same keys as mpt-bench scale-server (conns, rss_kib_per_conn,
 * accepts_per_s); the client prints conns= failed= (connections that did not
 * complete the exchange within 5 s, like libmpt's handshake timeout).
 */
#define SCALE_REQ 64
#define SCALE_INFLIGHT 256
#define SCALE_TMO 5.0

static int scale_server(const char *bind_addr, int port, long n)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct epoll_event ev, evs[256];
    unsigned char buf[SCALE_REQ];
    long accepted = 0, served = 0;
    double t_first = 0, t_last = 0;
    int one = 1;

    bench_raise_nofile(n + 1024);
    if (inet_pton(AF_INET, bind_addr ? bind_addr : "0.0.0.0", &sa.sin_addr) != 1)
        return 2;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0)
        die("listen");
    int ep = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    long rss0 = bench_rss_kib();
    printf("listening rss_kib=%ld\n", rss0);
    fflush(stdout);
    while (served < n && bench_now() < deadline) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    double t = bench_now();
                    if (accepted++ == 0)
                        t_first = t;
                    t_last = t;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    ev.events = EPOLLIN;
                    ev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r < 0 && errno == EAGAIN)
                continue;
            /* The request (small enough for one segment), the response, then idle. */
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            if (r == SCALE_REQ && write(fd, buf, SCALE_REQ) == SCALE_REQ)
                served++;
            else
                close(fd);
        }
    }
    long rss1 = bench_rss_kib();
    double acc_s = t_last - t_first;
    printf("role=scale-server conns=%ld served=%ld rss0_kib=%ld rss1_kib=%ld rss_kib_per_conn=%.2f "
           "accept_seconds=%.3f accepts_per_s=%.1f completed=%d\n",
           accepted, served, rss0, rss1, served ? (double)(rss1 - rss0) / (double)served : 0.0,
           acc_s, acc_s > 0 ? (double)(accepted - 1) / acc_s : 0.0, served == n);
    fflush(stdout);
    return served == n ? 0 : 3;
}

struct scale_conn {
    int fd;
    int state; /* 0 connecting, 1 request sent, 2 done, 3 failed */
    double t0;
};

static int scale_client(const char *host, const char *src, int port, long n)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in sb = {.sin_family = AF_INET};
    struct scale_conn *cs = calloc((size_t)n, sizeof *cs);
    struct epoll_event ev, evs[256];
    unsigned char buf[SCALE_REQ];
    long started = 0, done = 0, failed = 0, oldest = 0;
    double t0 = bench_now();

    bench_raise_nofile(n + 1024);
    memset(buf, 'q', sizeof buf);
    if (cs == NULL || inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        (src && inet_pton(AF_INET, src, &sb.sin_addr) != 1))
        return 2;
    int ep = epoll_create1(0);
    while (done + failed < n && bench_now() < deadline) {
        while (started < n && started - done - failed < SCALE_INFLIGHT) {
            struct scale_conn *c = &cs[started];
            int one = 1;
            c->t0 = bench_now();
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd >= 0)
                setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (c->fd < 0 || (src && bind(c->fd, (struct sockaddr *)&sb, sizeof sb) < 0) ||
                (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)) {
                if (failed < 5)
                    fprintf(stderr, "mpt-tcpbench: scale-client: connect #%ld: %s\n", started,
                            strerror(errno));
                c->state = 3;
                failed++;
            } else {
                ev.events = EPOLLOUT;
                ev.data.u64 = (uint64_t)started;
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            }
            started++;
        }
        int k = epoll_wait(ep, evs, 256, 10);
        for (int i = 0; i < k; i++) {
            struct scale_conn *c = &cs[evs[i].data.u64];
            int err = 0;
            socklen_t el = sizeof err;
            if (c->state == 0) {
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err == 0 && write(c->fd, buf, SCALE_REQ) == SCALE_REQ) {
                    c->state = 1;
                    ev.events = EPOLLIN;
                    ev.data.u64 = evs[i].data.u64;
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    continue;
                }
            } else if (c->state == 1) {
                unsigned char r[SCALE_REQ];
                ssize_t got = read(c->fd, r, sizeof r);
                if (got < 0 && errno == EAGAIN)
                    continue;
                if (got == SCALE_REQ) {
                    c->state = 2;
                    done++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    continue;
                }
            } else {
                continue;
            }
            if (failed < 5)
                fprintf(stderr, "mpt-tcpbench: scale-client: connection #%ld failed: %s\n",
                        (long)evs[i].data.u64, strerror(err ? err : EPROTO));
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            c->state = 3;
            failed++;
        }
        /* The same 5 s limit as libmpt's handshake timeout. */
        double now = bench_now();
        for (; oldest < started && (cs[oldest].state >= 2 || now - cs[oldest].t0 > SCALE_TMO);
             oldest++) {
            if (cs[oldest].state < 2) {
                epoll_ctl(ep, EPOLL_CTL_DEL, cs[oldest].fd, NULL);
                cs[oldest].state = 3;
                failed++;
            }
        }
    }
    double t_conn = bench_now() - t0;
    printf("role=scale-client conns=%ld failed=%ld connect_seconds=%.3f connects_per_s=%.1f\n", done,
           failed + (n - started), t_conn, t_conn > 0 ? (double)done / t_conn : 0.0);
    fflush(stdout);
    /* Hold the connections until the server has measured and gone. */
    for (long i = 0; i < n && bench_now() < deadline; i++) {
        if (cs[i].state != 2)
            continue;
        struct timeval tv = {.tv_sec = 1};
        setsockopt(cs[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        fcntl(cs[i].fd, F_SETFL, 0);
        while (bench_now() < deadline && read(cs[i].fd, buf, sizeof buf) < 0 && errno == EAGAIN)
            ;
        break; /* one EOF: the server is gone */
    }
    return done == n ? 0 : 3;
}

int main(int argc, char **argv)
{
    const char *host = NULL, *bind_addr = NULL, *src = NULL, *cc = NULL;
    int port = 0, mptcp = 0, server, nodelay = 0;
    long long send_bytes = 0, expect = 0;
    unsigned long long reverse = 0;
    double stream_rate = 0, timeout = 300;

    T.suite = "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256";

    if (argc >= 2 && (!strcmp(argv[1], "scale-server") || !strcmp(argv[1], "scale-client"))) {
        long conns = 0;
        for (int i = 2; i + 1 < argc; i += 2) {
            if (!strcmp(argv[i], "--host"))
                host = argv[i + 1];
            else if (!strcmp(argv[i], "--bind"))
                bind_addr = argv[i + 1];
            else if (!strcmp(argv[i], "--src"))
                src = argv[i + 1];
            else if (!strcmp(argv[i], "--port"))
                port = atoi(argv[i + 1]);
            else if (!strcmp(argv[i], "--conns"))
                conns = atol(argv[i + 1]);
            else if (!strcmp(argv[i], "--timeout"))
                timeout = atof(argv[i + 1]);
            else {
                fprintf(stderr, "mpt-tcpbench: unknown argument %s\n", argv[i]);
                return 2;
            }
        }
        deadline = bench_now() + timeout;
        if (port <= 0 || port > 65535 || conns <= 0 || (argv[1][6] == 'c' && !host))
            return 2;
        return argv[1][6] == 's' ? scale_server(bind_addr, port, conns)
                                 : scale_client(host, src, port, conns);
    }
    if (argc < 2 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
        fprintf(stderr, "usage: %s server|client [--mptcp] [--host A] [--bind A] --port P [--send N]\n",
                argv[0]);
        return 2;
    }
    server = !strcmp(argv[1], "server");
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--mptcp"))
            mptcp = 1;
        else if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--bind") && i + 1 < argc)
            bind_addr = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--send") && i + 1 < argc)
            send_bytes = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--recv"))
            send_bytes = 0;
        else if (!strcmp(argv[i], "--expect") && i + 1 < argc)
            expect = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--stream") && i + 1 < argc)
            stream_rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--src") && i + 1 < argc)
            src = argv[++i];
        else if (!strcmp(argv[i], "--tcp-cc") && i + 1 < argc)
            cc = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tls-cert") && i + 1 < argc)
            T.cert = argv[++i], T.on = 1;
        else if (!strcmp(argv[i], "--tls-key") && i + 1 < argc)
            T.key = argv[++i];
        else if (!strcmp(argv[i], "--tls-ca") && i + 1 < argc)
            T.ca = argv[++i], T.on = 1;
        else if (!strcmp(argv[i], "--tls-name") && i + 1 < argc)
            T.name = argv[++i];
        else if (!strcmp(argv[i], "--tls-suite") && i + 1 < argc)
            T.suite = argv[++i];
        else if (!strcmp(argv[i], "--reverse") && i + 1 < argc)
            reverse = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--nodelay"))
            nodelay = 1;
        else {
            fprintf(stderr, "mpt-tcpbench: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || (!server && !host)) {
        fprintf(stderr, "mpt-tcpbench: need --port (and --host for the client)\n");
        return 2;
    }
    if (reverse && (T.on || stream_rate > 0)) {
        fprintf(stderr, "mpt-tcpbench: --reverse works with plain bulk transfers only (not TLS, not --stream)\n");
        return 2;
    }

    deadline = bench_now() + timeout;
    bench_pat_init();
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    if (server)
        hints.ai_flags |= AI_PASSIVE;
    int rc = getaddrinfo(server ? (bind_addr ? bind_addr : "0.0.0.0") : host, portstr, &hints, &ai);
    if (rc) {
        fprintf(stderr, "mpt-tcpbench: address: %s\n", gai_strerror(rc));
        return 2;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, mptcp ? IPPROTO_MPTCP : IPPROTO_TCP);
    if (fd < 0)
        die(mptcp ? "socket(IPPROTO_MPTCP)" : "socket");
    int one = 1;
    if (nodelay)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cc && setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) < 0)
        die("TCP_CONGESTION");
    if (server) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("bind");
        if (listen(fd, 4) < 0)
            die("listen");
        printf("listening\n");
        fflush(stdout);
        arm_timeout(fd);
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            die("accept");
        /* The listener stays open until the end: kernel MPTCP's MP_JOIN
         * SYNs for the extra subflows arrive through it. */
        if (nodelay)
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (T.on)
            tls_setup(c, 1);
        rc = transfer(c, "server", send_bytes, expect, stream_rate, mptcp, reverse);
        close(fd);
    } else {
        if (src) {
            struct sockaddr_in sa = {.sin_family = AF_INET};
            if (inet_pton(AF_INET, src, &sa.sin_addr) != 1 ||
                bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                die("bind --src");
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("connect");
        if (T.on)
            tls_setup(fd, 0);
        rc = transfer(fd, "client", send_bytes, expect, stream_rate, mptcp, reverse);
    }
    freeaddrinfo(ai);
    return rc;
}
