/* Small helpers every file of the I/O layer may use: the clock, the one
 * errno -> MPT_E* map, numeric address parsing. */
#include "config.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpt/mpt.h>

#include "util.h"

uint64_t mpt_io_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The one place that turns a system errno into an MPT_E* code: every
 * syscall failure site uses it, so the same cause has the same code
 * everywhere. Never MPT_EAGAIN or MPT_EINVAL, which mean something else to
 * the application (would block; bad argument to libmpt). */
int mpt_errno_to_mpt(int e)
{
    switch (e) {
    case ENOMEM:
    case ENOBUFS:
        return MPT_ENOMEM;
    case ETIMEDOUT:
        return MPT_ETIMEDOUT;
    case ECONNREFUSED:
        return MPT_ECONNREFUSED;
    case ECONNRESET:
    case ECONNABORTED:
        return MPT_ECONNRESET;
    case EPIPE:
        return MPT_ECLOSED;
    case EADDRINUSE:
        return MPT_EADDRINUSE;
    case EADDRNOTAVAIL:
        return MPT_EADDRNOTAVAIL;
    case ENODEV:
    case ENXIO:
        return MPT_ENODEV;
    case ENETUNREACH:
    case ENETDOWN:
        return MPT_ENETUNREACH;
    case EHOSTUNREACH:
    case EHOSTDOWN:
        return MPT_EHOSTUNREACH;
    case EACCES:
    case EPERM:
        return MPT_EPERM;
    case EMFILE:
    case ENFILE:
        return MPT_EMFILE;
    case EAFNOSUPPORT:
    case EPROTONOSUPPORT:
        return MPT_EAFNOSUPPORT;
    case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP:
#endif
        return MPT_ENOTSUP;
    default:
        return MPT_ESYS;
    }
}

int mpt_parse_addr(const char *str, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, str, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, str, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof *a6;
        return 0;
    }
    return MPT_ERESOLVE;
}

int mpt_parse_addr_port(const char *str, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon = strrchr(str, ':'), *end;

    /* "ADDR" (IPv4 or IPv6), "V4:PORT" or "[V6]:PORT" */
    if (str[0] == '[') {
        end = strchr(str, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return MPT_ERESOLVE;
        colon = end[1] == ':' ? end + 1 : NULL;
        str++;
    } else if (colon != NULL && strchr(str, ':') == colon) {
        end = colon;
    } else {
        return mpt_parse_addr(str, port, ss, len);
    }
    if ((size_t)(end - str) >= sizeof host)
        return MPT_ERESOLVE;
    memcpy(host, str, (size_t)(end - str));
    host[end - str] = '\0';
    if (colon != NULL) {
        char *stop;
        unsigned long p;
        errno = 0;
        p = strtoul(colon + 1, &stop, 10);
        if (colon[1] < '0' || colon[1] > '9' || *stop != '\0' || errno != 0 || p == 0 ||
            p > 65535)
            return MPT_ERESOLVE;
        port = (uint16_t)p;
    }
    return mpt_parse_addr(host, port, ss, len);
}
