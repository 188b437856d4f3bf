/*
 * What the hostile-peer tests share (test_conn_hostile, test_io_hostile,
 * test_io_peers, test_io_limits): the frame writers of wirebuf.h, a raw
 * loopback TCP connection, the clock and the resident size.
 * Header-only: every function is static inline, so a test takes what it
 * uses.
 */
#ifndef MPT_TESTS_RAWPEER_H
#define MPT_TESTS_RAWPEER_H

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wirebuf.h"

/* A blocking TCP connection to 127.0.0.1:port (the test fails if it cannot). */
static inline int raw_connect(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* This process's resident set, KiB (0 if /proc cannot say). */
static inline long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

#endif
