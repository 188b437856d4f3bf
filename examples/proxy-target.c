/* mpt-proxy's targets, stream header and --allow rules (proxy-target.h). */
#include "proxy-target.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *proxy_reply_text(int code)
{
    switch (code) {
    case PROXY_REPLY_OK: return "succeeded";
    case PROXY_REPLY_FAILURE: return "general failure";
    case PROXY_REPLY_NOT_ALLOWED: return "connection not allowed by the server's rules";
    case PROXY_REPLY_NET_UNREACHABLE: return "network unreachable";
    case PROXY_REPLY_HOST_UNREACHABLE: return "host unreachable";
    case PROXY_REPLY_REFUSED: return "connection refused";
    case PROXY_REPLY_TTL_EXPIRED: return "timed out";
    case PROXY_REPLY_BAD_COMMAND: return "command not supported";
    case PROXY_REPLY_BAD_ADDRESS_TYPE: return "address type not supported";
    default: return "unknown reply";
    }
}

int proxy_reply_for_errno(int e)
{
    switch (e) {
    case ECONNREFUSED: return PROXY_REPLY_REFUSED;
    case ENETUNREACH: case ENETDOWN: return PROXY_REPLY_NET_UNREACHABLE;
    case EHOSTUNREACH: case EHOSTDOWN: return PROXY_REPLY_HOST_UNREACHABLE;
    case ETIMEDOUT: return PROXY_REPLY_TTL_EXPIRED;
    default: return PROXY_REPLY_FAILURE;
    }
}

const char *proxy_target_str(const struct proxy_target *t, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];

    switch (t->type) {
    case PROXY_TARGET_IPV4:
        inet_ntop(AF_INET, t->addr, a, sizeof a);
        snprintf(buf, len, "%s:%u", a, t->port);
        break;
    case PROXY_TARGET_IPV6:
        inet_ntop(AF_INET6, t->addr, a, sizeof a);
        snprintf(buf, len, "[%s]:%u", a, t->port);
        break;
    case PROXY_TARGET_NAME:
        snprintf(buf, len, "%s:%u", t->name, t->port);
        break;
    default:
        snprintf(buf, len, "the --forward target");
        break;
    }
    return buf;
}

int proxy_split_hostport(const char *s, int optional_host, char *host, size_t hostlen,
                         const char **port, const char **err)
{
    const char *colon;
    size_t n;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            *err = "an IPv6 address is written [ADDR]:PORT";
            return -1;
        }
        n = (size_t)(close - s - 1);
        colon = close + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            if (!optional_host) {
                *err = "HOST:PORT expected";
                return -1;
            }
            host[0] = '\0';
            *port = s;
            return 0;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            *err = "an IPv6 address is written [ADDR]:PORT";
            return -1;
        }
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hostlen) {
        *err = n == 0 ? "the host is empty" : "the host is too long";
        return -1;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    *port = colon + 1;
    return 0;
}

size_t proxy_header_encode(const struct proxy_target *t, uint8_t *out)
{
    size_t n = 0, alen;

    out[n++] = PROXY_HEADER_VERSION;
    out[n++] = (uint8_t)t->type;
    switch (t->type) {
    case PROXY_TARGET_DEFAULT:
        return n;
    case PROXY_TARGET_IPV4:
        memcpy(out + n, t->addr, 4);
        n += 4;
        break;
    case PROXY_TARGET_IPV6:
        memcpy(out + n, t->addr, 16);
        n += 16;
        break;
    case PROXY_TARGET_NAME:
        alen = strlen(t->name);
        out[n++] = (uint8_t)alen;
        memcpy(out + n, t->name, alen);
        n += alen;
        break;
    }
    out[n++] = (uint8_t)(t->port >> 8);
    out[n++] = (uint8_t)t->port;
    return n;
}

int proxy_header_parse(const uint8_t *buf, size_t len, struct proxy_target *t)
{
    size_t need, alen = 0;

    if (len < 2)
        return 0;
    if (buf[0] != PROXY_HEADER_VERSION)
        return -1;
    memset(t, 0, sizeof *t);
    switch (buf[1]) {
    case PROXY_TARGET_DEFAULT:
        t->type = PROXY_TARGET_DEFAULT;
        return 2;
    case PROXY_TARGET_IPV4:
        need = 2 + 4 + 2;
        break;
    case PROXY_TARGET_IPV6:
        need = 2 + 16 + 2;
        break;
    case PROXY_TARGET_NAME:
        if (len < 3)
            return 0;
        alen = buf[2];
        if (alen == 0)
            return -1;
        need = 3 + alen + 2;
        break;
    default:
        return -1;
    }
    if (len < need)
        return 0;
    t->type = (enum proxy_target_type)buf[1];
    if (t->type == PROXY_TARGET_NAME) {
        memcpy(t->name, buf + 3, alen);
        t->name[alen] = '\0';
        if (strlen(t->name) != alen) /* a NUL inside the name */
            return -1;
    } else {
        memcpy(t->addr, buf + 2, t->type == PROXY_TARGET_IPV4 ? 4 : 16);
    }
    t->port = (uint16_t)(buf[need - 2] << 8 | buf[need - 1]);
    return (int)need;
}

int proxy_allow_parse(const char *s, struct proxy_allow *rule, const char **err)
{
    char host[300], *slash, *end;
    const char *port;
    unsigned long v;

    memset(rule, 0, sizeof *rule);
    if (proxy_split_hostport(s, 0, host, sizeof host, &port, err) < 0)
        return -1;
    if (strcmp(port, "*") == 0) {
        rule->port = -1;
    } else {
        errno = 0;
        v = strtoul(port, &end, 10);
        if (port[0] < '0' || port[0] > '9' || *end != '\0' || errno != 0 || v < 1 || v > 65535) {
            *err = "the port is not a number from 1 to 65535 or '*'";
            return -1;
        }
        rule->port = (int)v;
    }
    slash = strchr(host, '/');
    if (slash != NULL)
        *slash = '\0';
    if (inet_pton(AF_INET, host, rule->addr) == 1) {
        rule->family = AF_INET;
        rule->prefix = 32;
    } else if (inet_pton(AF_INET6, host, rule->addr) == 1) {
        rule->family = AF_INET6;
        rule->prefix = 128;
    } else if (slash != NULL) {
        *err = "ADDR/PREFIX needs a numeric IPv4 or IPv6 address";
        return -1;
    } else {
        if (strlen(host) > 255) {
            *err = "the host name is too long";
            return -1;
        }
        rule->is_name = 1;
        strcpy(rule->name, host);
        return 0;
    }
    if (slash != NULL) {
        const char *p = slash + 1;
        errno = 0;
        v = strtoul(p, &end, 10);
        if (p[0] < '0' || p[0] > '9' || *end != '\0' || errno != 0 || v > rule->prefix) {
            *err = "the prefix length is not a number from 0 to 32 (IPv4) or 128 (IPv6)";
            return -1;
        }
        rule->prefix = (unsigned)v;
    }
    return 0;
}

static int port_matches(const struct proxy_allow *r, uint16_t port)
{
    return r->port < 0 || r->port == port;
}

int proxy_allow_name(const struct proxy_allow *rules, size_t n, const char *name, uint16_t port)
{
    for (size_t i = 0; i < n; i++)
        if (rules[i].is_name && strcasecmp(rules[i].name, name) == 0 &&
            port_matches(&rules[i], port))
            return 1;
    return 0;
}

static int prefix_matches(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int proxy_allow_addr(const struct proxy_allow *rules, size_t n, const struct sockaddr *sa)
{
    uint8_t a[16];
    int family;
    uint16_t port;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        family = AF_INET;
        memcpy(a, &s4->sin_addr, 4);
        port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        port = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) { /* judged as the IPv4 address it is */
            family = AF_INET;
            memcpy(a, s6->sin6_addr.s6_addr + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(a, &s6->sin6_addr, 16);
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!rules[i].is_name && rules[i].family == family && port_matches(&rules[i], port) &&
            prefix_matches(rules[i].addr, a, rules[i].prefix))
            return 1;
    return 0;
}
