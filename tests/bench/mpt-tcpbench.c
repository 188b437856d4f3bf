/*
 * Reference contenders for the benchmarks: one plain TCP connection, or one
 * kernel MPTCP connection (IPPROTO_MPTCP), moving N bytes between two
 * processes. It measures what libmpt is compared against, so it does nothing
 * clever: large blocking read()/write() calls, the kernel's defaults.
 *
 *   mpt-tcpbench server [--mptcp] [--bind ADDR] --port P [--send N]
 *   mpt-tcpbench client [--mptcp] --host ADDR --port P [--send N | --recv]
 *
 * The side given --send N writes N bytes then closes; the other side reads to
 * EOF. Each side prints one line:
 *   role=client bytes=N seconds=S gbps=G cpu_s=C subflows=K
 * (subflows: from MPTCP_INFO where available, else 1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define BUF_SIZE (256 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
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

static void transfer(int fd, const char *role, long long send_bytes, int mptcp)
{
    static char buf[BUF_SIZE];
    long long moved = 0;
    double t0 = now_s(), c0 = cpu_s();
    int subflows = 1;

    memset(buf, 0x5a, sizeof buf);
    if (send_bytes > 0) {
        while (moved < send_bytes) {
            size_t want = (size_t)(send_bytes - moved < BUF_SIZE ? send_bytes - moved : BUF_SIZE);
            ssize_t n = write(fd, buf, want);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die("write");
            }
            moved += n;
        }
        if (mptcp)
            subflows = mptcp_subflows(fd);
        shutdown(fd, SHUT_WR);
        /* Wait for the peer's close so the timing covers delivery, not just
         * the local send buffer. */
        while (read(fd, buf, sizeof buf) > 0)
            ;
    } else {
        for (;;) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                die("read");
            }
            if (n == 0)
                break;
            moved += n;
            if (mptcp && subflows == 1 && moved > (1 << 20))
                subflows = mptcp_subflows(fd);
        }
    }
    double secs = now_s() - t0;
    printf("role=%s bytes=%lld seconds=%.6f gbps=%.4f cpu_s=%.4f subflows=%d\n", role, moved, secs,
           secs > 0 ? (double)moved * 8 / secs / 1e9 : 0.0, cpu_s() - c0, subflows);
    fflush(stdout);
    close(fd);
}

int main(int argc, char **argv)
{
    const char *host = NULL, *bind_addr = NULL;
    int port = 0, mptcp = 0, server;
    long long send_bytes = 0;

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
        else {
            fprintf(stderr, "mpt-tcpbench: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || (!server && !host)) {
        fprintf(stderr, "mpt-tcpbench: need --port (and --host for the client)\n");
        return 2;
    }

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
    if (server) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("bind");
        if (listen(fd, 4) < 0)
            die("listen");
        printf("listening\n");
        fflush(stdout);
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            die("accept");
        close(fd);
        transfer(c, "server", send_bytes, mptcp);
    } else {
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            die("connect");
        transfer(fd, "client", send_bytes, mptcp);
    }
    freeaddrinfo(ai);
    return 0;
}
