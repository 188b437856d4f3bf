/*
 * mpt-probe: small measuring tool for the path-emulation harness.
 *
 *   mpt-probe server [-b ADDR] [-p PORT] [-T SEC]
 *       UDP echo and TCP server (echo / sink / source) on one port.
 *   mpt-probe udp  -c ADDR [-p PORT] [-b SRC] [-n COUNT] [-i MS] [-w MS]
 *                  [-s BYTES] [-o FILE] [-T SEC]
 *       Ping-like: COUNT datagrams every MS milliseconds, measures RTT and
 *       loss; prints one summary line of key=value pairs.
 *   mpt-probe tcp  -c ADDR [-p PORT] [-b SRC] [-n COUNT] [-i MS] [-w MS] [-T SEC]
 *       Ping-pong over one TCP connection; exit 3 if it is reset, 4 on
 *       timeout (no answer within -w ms), so outages can be tested.
 *   mpt-probe clock
 *       Print CLOCK_MONOTONIC in ms (the clock of the emulator's timeline).
 *   mpt-probe clocks
 *       Print CLOCK_MONOTONIC in ms and CLOCK_REALTIME in microseconds,
 *       read back to back: the offset between the two clocks, for scripts
 *       that time events on the realtime clock (bash's EPOCHREALTIME).
 *   mpt-probe bulk -c ADDR [-p PORT] [-b SRC] [-t SEC] [-d up|down] [-T SEC]
 *       Bulk TCP transfer for SEC seconds; prints the goodput.
 *
 * Common option -R PRIO: run with SCHED_FIFO priority PRIO.
 *
 * Everything is bounded: counts are capped, and -T (default: derived from
 * the other options, at most 600 s) kills a run that hangs, e.g. when a
 * path is blackholed during connect.
 *
 * Binding the source address (-b) is how a test picks a path: the harness
 * routes by source address.
 *
 * Build: cc -std=c11 -O2 -Wall -Wextra -o mpt-probe mpt-probe.c -lm
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 1000000
#define MAX_CONNS 64
#define MAGIC 0x6d707470u       /* "mptp" */

enum { EXIT_RESET = 3, EXIT_TIMEOUT = 4 };

static const char *opt_addr, *opt_src, *opt_out, *opt_dir = "down";
static const char *opt_port = "7777";
static long opt_count = 100, opt_size = 32;
static double opt_interval = 10, opt_wait = 1000, opt_secs = 5, opt_timeout = 0;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "mpt-probe: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "error=timeout (overall -T limit)\n";
    ssize_t r = write(1, msg, sizeof(msg) - 1);
    (void)r;
    _exit(EXIT_TIMEOUT);
}

static void arm_timeout(double secs)
{
    if (opt_timeout > 0)
        secs = opt_timeout;
    if (secs > 600)
        secs = 600;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)ceil(secs));
}

static struct addrinfo *resolve(const char *host, const char *port, bool passive)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    hints.ai_family = AF_UNSPEC;
    int e = getaddrinfo(host, port, &hints, &res);
    if (e) {
        fprintf(stderr, "mpt-probe: %s: %s\n", host ? host : "(any)", gai_strerror(e));
        exit(2);
    }
    return res;
}

/* Socket to the server, bound to the source address if one was given. */
static int client_socket(int type, struct addrinfo **dst)
{
    if (!opt_addr) {
        fprintf(stderr, "mpt-probe: -c ADDR is required\n");
        exit(2);
    }
    *dst = resolve(opt_addr, opt_port, false);
    int fd = socket((*dst)->ai_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (opt_src) {
        struct addrinfo *src = resolve(opt_src, "0", true);
        if (bind(fd, src->ai_addr, src->ai_addrlen) < 0)
            die("bind source");
        freeaddrinfo(src);
    }
    return fd;
}

/* ---- UDP ping ---- */

struct probe_msg {
    uint32_t magic, seq;
    uint64_t pad[2];
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_udp(void)
{
    struct addrinfo *dst;
    if (opt_count < 1 || opt_count > MAX_COUNT || opt_interval < 0 || opt_size < 16 ||
        opt_size > 1400) {
        fprintf(stderr, "mpt-probe: bad -n/-i/-s\n");
        return 2;
    }
    arm_timeout(opt_count * opt_interval / 1e3 + opt_wait / 1e3 + 5);
    int fd = client_socket(SOCK_DGRAM, &dst);
    /* Not connect()ed: an echo from another local address of the server
     * still counts. */
    /* RTTs use the kernel's receive timestamp (SO_TIMESTAMPNS, realtime
     * clock) so that our own scheduling delay on a busy machine is not
     * measured as path delay. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    double *send_t = calloc((size_t)opt_count, sizeof(double));
    double *send_rt = calloc((size_t)opt_count, sizeof(double));
    double *rtt = calloc((size_t)opt_count, sizeof(double));
    double *sorted = calloc((size_t)opt_count, sizeof(double));
    unsigned char *buf = calloc(1, 2048);
    if (!send_t || !send_rt || !rtt || !sorted || !buf)
        die("calloc");
    for (long i = 0; i < opt_count; i++)
        rtt[i] = -1;

    long sent = 0, received = 0, dup = 0, reordered = 0, max_seq = -1, send_err = 0;
    double t0 = now_ms(), last_send = t0;
    for (;;) {
        double now = now_ms();
        if (sent < opt_count && now >= t0 + sent * opt_interval) {
            struct probe_msg m = { .magic = MAGIC, .seq = (uint32_t)sent };
            memset(buf, 0, (size_t)opt_size);
            memcpy(buf, &m, sizeof(m));
            send_t[sent] = now;
            send_rt[sent] = real_ms();
            if (sendto(fd, buf, (size_t)opt_size, 0, dst->ai_addr, dst->ai_addrlen) < 0)
                send_err++;     /* e.g. ENETUNREACH while a link is down: a loss */
            last_send = now;
            sent++;
            continue;
        }
        if (sent == opt_count && (received == opt_count || now >= last_send + opt_wait))
            break;
        double until = sent < opt_count ? t0 + sent * opt_interval : last_send + opt_wait;
        double wait = until - now;
        if (wait < 0)
            wait = 0;
        struct timespec ts = { (time_t)(wait / 1e3), (long)(fmod(wait, 1e3) * 1e6) };
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = ppoll(&p, 1, &ts, NULL);
        if (r < 0 && errno != EINTR)
            die("ppoll");
        if (r <= 0)
            continue;
        for (;;) {
            char cbuf[128];
            struct iovec iov = { buf, 2048 };
            struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                                 .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
            ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
            if (n < 0)
                break;
            double t = real_ms();
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                    t = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
                }
            struct probe_msg m;
            if (n < (ssize_t)sizeof(m))
                continue;
            memcpy(&m, buf, sizeof(m));
            if (m.magic != MAGIC || m.seq >= (uint32_t)sent)
                continue;
            if (rtt[m.seq] >= 0) {
                dup++;
                continue;
            }
            rtt[m.seq] = t - send_rt[m.seq];
            if ((long)m.seq < max_seq)
                reordered++;
            else
                max_seq = m.seq;
            received++;
        }
    }

    double sum = 0, sq = 0, mn = 0, mx = 0;
    long k = 0;
    for (long i = 0; i < sent; i++)
        if (rtt[i] >= 0)
            sorted[k++] = rtt[i];
    qsort(sorted, (size_t)k, sizeof(double), cmp_double);
    for (long i = 0; i < k; i++) {
        sum += sorted[i];
        sq += sorted[i] * sorted[i];
    }
#define PCT(q) (k ? sorted[(long)((k - 1) * (q) / 100.0 + 0.5)] : 0)
    double avg = k ? sum / k : 0, sd = k > 1 ? sqrt(fmax(0, (sq - k * avg * avg) / (k - 1))) : 0;
    double med = k ? (k % 2 ? sorted[k / 2] : (sorted[k / 2 - 1] + sorted[k / 2]) / 2) : 0;
    if (k) {
        mn = sorted[0];
        mx = sorted[k - 1];
    }
    printf("sent=%ld received=%ld loss_pct=%.3f dup=%ld reordered=%ld send_errors=%ld"
           " rtt_min_ms=%.3f rtt_avg_ms=%.3f rtt_median_ms=%.3f rtt_max_ms=%.3f"
           " rtt_sd_ms=%.3f rtt_p1_ms=%.3f rtt_p5_ms=%.3f rtt_p95_ms=%.3f rtt_p99_ms=%.3f\n",
           sent, received, sent ? 100.0 * (sent - received) / sent : 0, dup, reordered,
           send_err, mn, avg, med, mx, sd, PCT(1), PCT(5), PCT(95), PCT(99));
#undef PCT
    if (opt_out) {
        FILE *f = fopen(opt_out, "w");
        if (!f)
            die(opt_out);
        /* send_mono_ms is CLOCK_MONOTONIC, the emulator's clock too. */
        fprintf(f, "# seq send_ms rtt_ms(-1=lost) send_mono_ms\n");
        for (long i = 0; i < sent; i++)
            fprintf(f, "%ld %.3f %.3f %.3f\n", i, send_t[i] - t0, rtt[i], send_t[i]);
        fclose(f);
    }
    free(send_t);
    free(send_rt);
    free(rtt);
    free(sorted);
    free(buf);
    freeaddrinfo(dst);
    close(fd);
    return 0;
}

/* ---- TCP helpers ---- */

/* connect() with a deadline: a blackholed path must not hang the test. */
static int tcp_connect(double deadline_ms)
{
    struct addrinfo *dst;
    int fd = client_socket(SOCK_STREAM, &dst);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (connect(fd, dst->ai_addr, dst->ai_addrlen) < 0 && errno != EINPROGRESS) {
        printf("error=connect (%s)\n", strerror(errno));
        exit(errno == ECONNREFUSED || errno == ECONNRESET ? EXIT_RESET : 2);
    }
    freeaddrinfo(dst);
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int r = poll(&p, 1, (int)fmax(0, deadline_ms - now_ms()));
    int err = 0;
    socklen_t len = sizeof(err);
    if (r == 0) {
        printf("error=timeout (connect)\n");
        exit(EXIT_TIMEOUT);
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (r < 0 || err) {
        printf("error=connect (%s)\n", strerror(err ? err : errno));
        exit(err == ECONNREFUSED || err == ECONNRESET ? EXIT_RESET : 2);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

static void io_fail(const char *what, int err)
{
    printf("error=%s (%s: %s)\n", err == ECONNRESET || err == EPIPE ? "reset" : "io", what,
           strerror(err));
    exit(err == ECONNRESET || err == EPIPE ? EXIT_RESET : 2);
}

/* ---- TCP ping-pong ---- */

static int run_tcp(void)
{
    if (opt_count < 1 || opt_count > MAX_COUNT || opt_interval < 0) {
        fprintf(stderr, "mpt-probe: bad -n/-i\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    arm_timeout(opt_count * (opt_interval + opt_wait) / 1e3 + 10);
    int fd = tcp_connect(now_ms() + opt_wait + 3000);
    if (write(fd, "E", 1) != 1)
        io_fail("write", errno);
    double sum = 0, mx = 0, t0 = now_ms();
    long done = 0;
    for (long i = 0; i < opt_count; i++) {
        double next = t0 + i * opt_interval, now = now_ms();
        if (next > now)
            usleep((useconds_t)((next - now) * 1e3));
        struct probe_msg m = { .magic = MAGIC, .seq = (uint32_t)i }, back;
        double ts = now_ms();
        if (write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
            io_fail("write", errno);
        size_t got = 0;
        while (got < sizeof(back)) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            int r = poll(&p, 1, (int)fmax(0, ts + opt_wait - now_ms()));
            if (r == 0) {
                printf("error=timeout (no echo for probe %ld within %.0f ms) done=%ld\n", i,
                       opt_wait, done);
                return EXIT_TIMEOUT;
            }
            ssize_t n = read(fd, (char *)&back + got, sizeof(back) - got);
            if (n == 0) {
                printf("error=eof done=%ld\n", done);
                return 2;
            }
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                printf("done=%ld ", done);
                io_fail("read", errno);
            }
            got += (size_t)n;
        }
        double rtt = now_ms() - ts;
        sum += rtt;
        mx = fmax(mx, rtt);
        done++;
    }
    printf("done=%ld rtt_avg_ms=%.3f rtt_max_ms=%.3f\n", done, sum / done, mx);
    close(fd);
    return 0;
}

/* ---- bulk ---- */

static int run_bulk(void)
{
    bool up = !strcmp(opt_dir, "up");
    if (!up && strcmp(opt_dir, "down")) {
        fprintf(stderr, "mpt-probe: -d up|down\n");
        return 2;
    }
    if (!(opt_secs > 0 && opt_secs <= 300)) {
        fprintf(stderr, "mpt-probe: bad -t\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    arm_timeout(opt_secs + 15);
    int fd = tcp_connect(now_ms() + 5000);
    static char buf[65536];
    memset(buf, 'x', sizeof(buf));
    if (write(fd, up ? "S" : "G", 1) != 1)
        io_fail("write", errno);
    double t0 = now_ms(), end = t0 + opt_secs * 1e3, t1;
    uint64_t bytes = 0;
    if (up) {
        while (now_ms() < end) {
            ssize_t n = write(fd, buf, sizeof(buf));
            if (n < 0)
                io_fail("write", errno);
        }
        shutdown(fd, SHUT_WR);
        /* The server answers with what it really received, so queued but
         * undelivered bytes do not count. */
        unsigned char c[8];
        size_t got = 0;
        while (got < 8) {
            ssize_t n = read(fd, c + got, 8 - got);
            if (n <= 0)
                io_fail("read count", n < 0 ? errno : ECONNRESET);
            got += (size_t)n;
        }
        t1 = now_ms();
        for (int i = 0; i < 8; i++)
            bytes = bytes << 8 | c[i];
    } else {
        while ((t1 = now_ms()) < end) {
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0)
                io_fail("read", n < 0 ? errno : ECONNRESET);
            bytes += (uint64_t)n;
        }
    }
    close(fd);
    double secs = (t1 - t0) / 1e3;
    printf("dir=%s bytes=%" PRIu64 " seconds=%.3f mbit=%.3f\n", opt_dir, bytes, secs,
           bytes * 8 / secs / 1e6);
    return 0;
}

/* ---- server ---- */

struct conn {
    int fd;
    char mode;                  /* 0 = not yet known, 'E', 'S', 'G' */
    uint64_t count;
    char pend[4096];
    size_t npend;
};

/* Echo from the address the datagram was sent to: the server has several
 * addresses and the client matches replies per probe, but a reply from the
 * wrong source address could be routed differently. */
static void udp_echo(int fd)
{
    for (int i = 0; i < 64; i++) {
        char buf[2048], cbuf[256];
        struct sockaddr_storage peer;
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr mh = { .msg_name = &peer, .msg_namelen = sizeof(peer),
                             .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
        if (n < 0)
            return;
        iov.iov_len = (size_t)n;
        /* Send the received IP_PKTINFO / IPV6_PKTINFO back unchanged, minus
         * the interface index so routing picks the path by destination. */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(c);
                pi->ipi_ifindex = 0;
                pi->ipi_spec_dst = pi->ipi_addr;
            } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
                ((struct in6_pktinfo *)CMSG_DATA(c))->ipi6_ifindex = 0;
            }
        }
        sendmsg(fd, &mh, MSG_DONTWAIT);
    }
}

static int run_server(void)
{
    double limit = opt_timeout > 0 ? opt_timeout : 600;
    struct addrinfo *a = resolve(opt_src, opt_port, true);
    int one = 1;
    int u = socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int t = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (u < 0 || t < 0)
        die("socket");
    setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a->ai_family == AF_INET6) {
        setsockopt(u, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    } else {
        setsockopt(u, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    }
    if (bind(u, a->ai_addr, a->ai_addrlen) < 0 || bind(t, a->ai_addr, a->ai_addrlen) < 0)
        die("bind");
    if (listen(t, 16) < 0)
        die("listen");
    freeaddrinfo(a);
    signal(SIGPIPE, SIG_IGN);

    static struct conn conns[MAX_CONNS];
    static char buf[65536];
    int nconn = 0;
    memset(buf, 'y', sizeof(buf));
    double end = now_ms() + limit * 1e3;
    printf("listening port=%s\n", opt_port);
    fflush(stdout);
    while (now_ms() < end) {
        struct pollfd p[2 + MAX_CONNS];
        p[0] = (struct pollfd){ .fd = u, .events = POLLIN };
        p[1] = (struct pollfd){ .fd = t, .events = nconn < MAX_CONNS ? POLLIN : 0 };
        for (int i = 0; i < nconn; i++) {
            struct conn *c = &conns[i];
            short ev = (c->mode == 'G' || c->npend) ? POLLOUT : POLLIN;
            p[2 + i] = (struct pollfd){ .fd = c->fd, .events = ev };
        }
        int r = poll(p, (nfds_t)(2 + nconn), 1000);
        if (r < 0 && errno != EINTR)
            die("poll");
        if (r <= 0)
            continue;
        if (p[0].revents & POLLIN)
            udp_echo(u);
        if (p[1].revents & POLLIN) {
            int fd = accept4(t, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                conns[nconn++] = (struct conn){ .fd = fd };
            }
        }
        for (int i = 0; i < nconn; i++) {
            struct conn *c = &conns[i];
            short re = p[2 + i].revents;
            bool close_it = false;
            if (!re)
                continue;
            if (re & POLLOUT && c->npend) {
                ssize_t n = write(c->fd, c->pend, c->npend);
                if (n > 0) {
                    memmove(c->pend, c->pend + n, c->npend - (size_t)n);
                    c->npend -= (size_t)n;
                } else if (n < 0 && errno != EAGAIN) {
                    close_it = true;
                }
            } else if (re & POLLOUT && c->mode == 'G') {
                if (write(c->fd, buf, sizeof(buf)) < 0 && errno != EAGAIN)
                    close_it = true;
            } else if (re & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = read(c->fd, buf, c->mode == 'E' || !c->mode ? sizeof(c->pend) : sizeof(buf));
                if (n == 0 && c->mode == 'S') {
                    unsigned char cnt[8];
                    for (int k = 0; k < 8; k++)
                        cnt[k] = (unsigned char)(c->count >> (56 - 8 * k));
                    memcpy(c->pend, cnt, 8);
                    c->npend = 8;
                    c->mode = 'F';          /* flush count, then close */
                } else if (n <= 0) {
                    if (n == 0 || errno != EAGAIN)
                        close_it = true;
                } else {
                    size_t off = 0;
                    if (!c->mode) {
                        c->mode = buf[0];
                        off = 1;
                    }
                    if (c->mode == 'E') {
                        memcpy(c->pend, buf + off, (size_t)n - off);
                        c->npend = (size_t)n - off;
                    } else if (c->mode == 'S') {
                        c->count += (uint64_t)n - off;
                    } else if (c->mode != 'G') {
                        close_it = true;
                    }
                }
            }
            if (c->mode == 'F' && !c->npend)
                close_it = true;
            if (close_it) {
                close(c->fd);
                conns[i] = conns[--nconn];
                /* The moved connection's revents belong to index nconn;
                 * it is served on the next poll round. */
                p[2 + i].revents = 0;
                i--;
            }
        }
    }
    for (int i = 0; i < nconn; i++)
        close(conns[i].fd);
    close(u);
    close(t);
    return 0;
}

static void usage(void)
{
    fputs("usage: mpt-probe server|udp|tcp|bulk|clock|clocks [-c ADDR] [-p PORT] [-b SRC] [-n COUNT]\n"
          "       [-i MS] [-w MS] [-s BYTES] [-o FILE] [-t SEC] [-d up|down] [-T SEC] [-R PRIO]\n"
          "(see the comment at the top of mpt-probe.c)\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "c:p:b:n:i:w:s:o:t:d:T:R:")) != -1) {
        switch (opt) {
        case 'c': opt_addr = optarg; break;
        case 'p': opt_port = optarg; break;
        case 'b': opt_src = optarg; break;
        case 'n': opt_count = strtol(optarg, NULL, 10); break;
        case 'i': opt_interval = strtod(optarg, NULL); break;
        case 'w': opt_wait = strtod(optarg, NULL); break;
        case 's': opt_size = strtol(optarg, NULL, 10); break;
        case 'o': opt_out = optarg; break;
        case 't': opt_secs = strtod(optarg, NULL); break;
        case 'd': opt_dir = optarg; break;
        case 'T': opt_timeout = strtod(optarg, NULL); break;
        case 'R': {
            /* Real-time priority, so that on a busy machine the probe's
             * own wake-ups do not add to the delay it measures. */
            struct sched_param sp = { .sched_priority = atoi(optarg) };
            if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
                fprintf(stderr, "mpt-probe: SCHED_FIFO: %s (continuing)\n", strerror(errno));
            break;
        }
        default: usage();
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(mode, "clock")) {      /* CLOCK_MONOTONIC in ms, for scripts */
        printf("%.3f\n", now_ms());
        return 0;
    }
    if (!strcmp(mode, "clocks")) {     /* monotonic ms, realtime us */
        struct timespec m, r1, r2;
        clock_gettime(CLOCK_REALTIME, &r1);
        clock_gettime(CLOCK_MONOTONIC, &m);
        clock_gettime(CLOCK_REALTIME, &r2);
        double rt_us = ((double)r1.tv_sec + (double)r2.tv_sec) * 5e5 +
                       ((double)r1.tv_nsec + (double)r2.tv_nsec) / 2e3;
        printf("%.3f %.0f\n", m.tv_sec * 1e3 + m.tv_nsec / 1e6, rt_us);
        return 0;
    }
    if (!strcmp(mode, "server"))
        return run_server();
    if (!strcmp(mode, "udp"))
        return run_udp();
    if (!strcmp(mode, "tcp"))
        return run_tcp();
    if (!strcmp(mode, "bulk"))
        return run_bulk();
    usage();
}
