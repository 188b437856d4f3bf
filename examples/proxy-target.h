/*
 * mpt-proxy's targets: "HOST:PORT" and "[ADDR:]PORT" arguments, the small
 * header a proxy client sends at the start of every libmpt stream to name
 * the target, and the server's --allow rules that keep it from being an
 * open relay.
 *
 * The header (client -> server, first bytes of the libmpt stream):
 *   version (1) | type | address | port (2 bytes, network order)
 * type 0: "the server's --forward target" (no address, no port), 1: IPv4
 * (4 bytes), 3: a host name (1 length byte, then the name), 4: IPv6 (16
 * bytes): the SOCKS5 address types. The server answers with one status
 * byte, a SOCKS5 reply code (0 = connected to the target), before any data.
 */
#ifndef MPT_PROXY_TARGET_H
#define MPT_PROXY_TARGET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_HEADER_VERSION 1
#define PROXY_HEADER_MAX (2 + 1 + 255 + 2)

enum proxy_target_type {
    PROXY_TARGET_DEFAULT = 0, /* the server's --forward target */
    PROXY_TARGET_IPV4 = 1,
    PROXY_TARGET_NAME = 3,
    PROXY_TARGET_IPV6 = 4,
};

/* SOCKS5 reply codes (RFC 1928 section 6), also the server's status byte. */
enum proxy_reply {
    PROXY_REPLY_OK = 0,
    PROXY_REPLY_FAILURE = 1,
    PROXY_REPLY_NOT_ALLOWED = 2,
    PROXY_REPLY_NET_UNREACHABLE = 3,
    PROXY_REPLY_HOST_UNREACHABLE = 4,
    PROXY_REPLY_REFUSED = 5,
    PROXY_REPLY_TTL_EXPIRED = 6,
    PROXY_REPLY_BAD_COMMAND = 7,
    PROXY_REPLY_BAD_ADDRESS_TYPE = 8,
};

struct proxy_target {
    enum proxy_target_type type;
    uint8_t addr[16];  /* IPV4 (4 bytes) or IPV6 */
    char name[256];    /* NAME: NUL-terminated, 1..255 bytes */
    uint16_t port;
};

/* "connection refused" for a reply code; "unknown reply" otherwise. */
const char *proxy_reply_text(int code);
/* The SOCKS5 reply code for a failed connect()'s errno. */
int proxy_reply_for_errno(int e);

/* "name:443", "192.0.2.1:443", "[2001:db8::1]:443", or "the --forward target". */
const char *proxy_target_str(const struct proxy_target *t, char *buf, size_t len);

/*
 * Splits "HOST:PORT", "[V6ADDR]:PORT" into host (copied into host, hostlen
 * bytes) and port string (a pointer into s). With optional_host, a plain
 * "PORT" is accepted too (host ""). Returns 0, or -1 with why in *err.
 */
int proxy_split_hostport(const char *s, int optional_host, char *host, size_t hostlen,
                         const char **port, const char **err);

/* The header for t into out (PROXY_HEADER_MAX bytes); returns its length. */
size_t proxy_header_encode(const struct proxy_target *t, uint8_t *out);
/*
 * Parses a header at the start of buf: returns its length (> 0) and fills
 * t, 0 if more bytes are needed, or -1 if it is not a header this version
 * knows (a wrong version, an unknown type, an empty name).
 */
int proxy_header_parse(const uint8_t *buf, size_t len, struct proxy_target *t);

/* --allow rules: HOST:PORT, ADDR/PREFIX:PORT ([V6ADDR/PREFIX]:PORT), PORT
 * a number or '*'. */
struct proxy_allow {
    int is_name;
    char name[256];
    int family;        /* AF_INET or AF_INET6 for address rules */
    uint8_t addr[16];
    unsigned prefix;   /* bits */
    int port;          /* -1: any */
};

/* Parses one --allow value; -1 with why in *err. */
int proxy_allow_parse(const char *s, struct proxy_allow *rule, const char **err);
/* Whether a rule names this host name and port (case-insensitive). */
int proxy_allow_name(const struct proxy_allow *rules, size_t n, const char *name, uint16_t port);
/* Whether a rule covers this address (AF_INET or AF_INET6 sockaddr). */
int proxy_allow_addr(const struct proxy_allow *rules, size_t n, const struct sockaddr *sa);

#endif
