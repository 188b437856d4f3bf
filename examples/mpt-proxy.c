/*
 * mpt-proxy: ordinary TCP connections carried over libmpt between two
 * proxies, so that unmodified applications use several paths.
 *
 *   mpt-proxy client [options] --listen [ADDR:]PORT --to HOST:PORT
 *   mpt-proxy client [options] --socks5 [ADDR:]PORT --to HOST:PORT
 *   mpt-proxy server [options] --listen [ADDR:]PORT [--forward HOST:PORT]
 *                    [--allow RULE]... [--allow-any]
 *
 * Each TCP connection the client accepts becomes one libmpt connection to
 * the server, which opens one TCP connection to the target: the --forward
 * target, or the one a SOCKS5 client asked for (proxy-target.h describes
 * the header that names it). Everything runs on one libev loop; the bytes
 * are pumped by proxy-relay.c, SOCKS5 is parsed by proxy-socks5.c.
 * doc/man/mpt-proxy.1 is the user's documentation.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mpt/mpt.h>

#include "proxy-relay.h"
#include "proxy-socks5.h"
#include "proxy-target.h"
#include "tool.h"

/* How long a SOCKS5 client may take to say what it wants, a proxy client to
 * send its header, and the server to connect to a target. */
#define HANDSHAKE_TIMEOUT_S 10.0
#define TARGET_CONNECT_TIMEOUT_S 10.0
#define MAX_TARGET_ADDRS 16
#define MAX_ALLOW 64

static struct tool T;
static struct ev_loop *loop;
static struct mpt_ctx *ctx;

/* ---- options ------------------------------------------------------------- */

enum mode { MODE_CLIENT, MODE_SERVER };
static enum mode mode;
static char listen_host[256], socks_host[256], to_host[256], forward_host[256];
static uint16_t listen_port, socks_port, to_port, forward_port;
static int have_listen, have_socks, have_to, have_forward, allow_any;
static struct proxy_allow allow_rules[MAX_ALLOW];
static size_t nallow;
static uint64_t max_conns = 1024;

/* ---- connections ------------------------------------------------------------ */

enum phase {
    PHASE_SOCKS_GREETING,  /* client, SOCKS5: waiting for the method greeting */
    PHASE_SOCKS_REQUEST,   /* client, SOCKS5: waiting for the CONNECT request */
    PHASE_MPT_CONNECTING,  /* client: libmpt handshake with the server */
    PHASE_HEADER,          /* server: waiting for the client's header */
    PHASE_RESOLVING,       /* server: looking the target's name up */
    PHASE_TARGET_CONNECTING, /* server: TCP connect to the target */
    PHASE_RELAY,           /* both sides up: proxy-relay.c pumps */
};

struct lookup;

struct conn {
    struct conn *prev, *next;
    unsigned id;
    int socks;                 /* client: accepted on the SOCKS5 port */
    enum phase phase;
    int fd;                    /* the TCP side: accepted (client) or to the target (server) */
    struct mpt_socket *sock;
    char peer[80];             /* the TCP peer (client) or the libmpt peer (server) */
    char target_str[300];
    struct proxy_target target;
    uint8_t hs[600];           /* SOCKS5 messages (client) or the header (server) */
    size_t hs_len;
    ev_io hs_io;               /* client: SOCKS5 reads; server: connect completion */
    ev_timer timer;
    struct lookup *lookup;
    struct sockaddr_storage addrs[MAX_TARGET_ADDRS];
    size_t naddrs, next_addr;
    int last_errno;
    double t_start;
    struct proxy_relay relay;
};

static struct conn *conns;
static unsigned next_id = 1;
static uint64_t nactive, ntotal, total_to_mpt, total_to_tcp;

static void conn_free(struct conn *c, int reset_tcp, int abort_mpt, const char *how);
static void server_refuse(struct conn *c, int code, const char *why);

/* ---- small helpers ----------------------------------------------------------- */

static void set_nodelay(int fd)
{
    int one = 1;
    /* Interactive protocols through the proxy would otherwise wait for Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Closes fd with an RST, so that the application sees the failure as one. */
static void close_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* A small message to a fresh socket whose send buffer is empty: it fits. */
static int write_small(int fd, const void *buf, size_t len)
{
    return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static const char *server_str(void)
{
    static char buf[300];
    snprintf(buf, sizeof buf, strchr(to_host, ':') ? "[%s]:%u" : "%s:%u", to_host, to_port);
    return buf;
}

static void conn_msg(const struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failure of one connection: always printed, one line, with where and why. */
static void conn_msg(const struct conn *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: conn %u (%s): ", T.name, c->id, c->peer);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- libmpt callbacks ------------------------------------------------------------ */

static void start_client_relay(struct conn *c);
static void server_read_header(struct conn *c);

static void on_connected(struct mpt_socket *s, int status, void *user)
{
    struct conn *c = user;

    if (status < 0) {
        char where[400];
        snprintf(where, sizeof where, "conn %u (%s): %s", c->id, c->peer, server_str());
        tool_conn_error(&T, s, where, "connect to the proxy server", status);
        if (c->socks) {
            uint8_t r[10];
            (void)write_small(c->fd, r, socks5_reply(PROXY_REPLY_FAILURE, r));
            conn_free(c, 0, 1, "the proxy server is unreachable");
        } else {
            conn_free(c, 1, 1, "the proxy server is unreachable");
        }
        return;
    }
    tool_verbose(&T, "conn %u: libmpt connection to %s established", c->id, server_str());
    start_client_relay(c);
}

static void on_readable(struct mpt_socket *s, void *user)
{
    struct conn *c = user;

    if (c->phase == PHASE_RELAY)
        proxy_relay_mpt_readable(&c->relay);
    else if (c->phase == PHASE_HEADER)
        server_read_header(c);
    /* Otherwise the data waits in libmpt until the relay starts. */
}

static void on_writable(struct mpt_socket *s, void *user)
{
    struct conn *c = user;

    if (c->phase == PHASE_RELAY)
        proxy_relay_mpt_writable(&c->relay);
}

static void on_closed(struct mpt_socket *s, int status, void *user)
{
    struct conn *c = user;

    if (c->phase == PHASE_RELAY) {
        proxy_relay_mpt_closed(&c->relay, status);
        return;
    }
    if (c->phase == PHASE_MPT_CONNECTING)
        return; /* `connected` reported it */
    if (status < 0) {
        char where[300];
        snprintf(where, sizeof where, "conn %u (%s)", c->id, c->peer);
        tool_conn_error(&T, s, where, "the libmpt connection failed", status);
    }
    conn_free(c, 1, 1, status < 0 ? "the libmpt connection failed" : "closed before it was set up");
}

static void on_subflow(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    tool_subflow_event(&T, sf);
}

static const struct mpt_callbacks mpt_cbs = {
    .connected = on_connected,
    .readable = on_readable,
    .writable = on_writable,
    .subflow_up = on_subflow,
    .subflow_down = on_subflow,
    .closed = on_closed,
};

/* ---- the relay's reports ------------------------------------------------------------ */

static int relay_status(struct proxy_relay *r, int code, void *user)
{
    struct conn *c = user;

    if (c->socks) {
        uint8_t reply[10];
        if (write_small(c->fd, reply, socks5_reply((uint8_t)code, reply)) < 0)
            return -1;
    }
    if (code != PROXY_REPLY_OK) {
        conn_msg(c, "%s via %s: the proxy server answered: %s (SOCKS5 reply %d)", c->target_str,
                 server_str(), proxy_reply_text(code), code);
        return -1;
    }
    tool_verbose(&T, "conn %u: the proxy server connected to %s", c->id, c->target_str);
    return 0;
}

static void relay_ended(struct proxy_relay *r, enum proxy_relay_end why, void *user)
{
    struct conn *c = user;
    char where[300];

    snprintf(where, sizeof where, "conn %u (%s)", c->id, c->peer);
    switch (why) {
    case PROXY_RELAY_DONE:
        conn_free(c, 0, 0, "done");
        break;
    case PROXY_RELAY_TCP_ERROR:
        if (T.verbose)
            tool_error_errno(&T, where, mode == MODE_CLIENT ? "the application's TCP connection"
                                                             : "the target's TCP connection",
                             r->tcp_errno);
        conn_free(c, 1, 1, "TCP error");
        break;
    case PROXY_RELAY_MPT_ERROR:
        tool_conn_error(&T, c->sock, where, "the libmpt connection failed", r->mpt_error);
        conn_free(c, 1, 1, "libmpt error");
        break;
    case PROXY_RELAY_STATUS:
        /* SOCKS5 clients got the reply and a clean close; a port forward's
         * application sees a reset, as if the target had refused it. */
        conn_free(c, !c->socks, 0, "refused by the proxy server");
        break;
    }
}

static const struct proxy_relay_ops relay_ops = {
    .status = relay_status,
    .ended = relay_ended,
};

/* ---- connection life ------------------------------------------------------------ */

static void conn_timeout(EV_P_ ev_timer *w, int revents);

static struct conn *conn_alloc(void)
{
    struct conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->fd = -1;
    c->t_start = tool_now();
    ev_timer_init(&c->timer, conn_timeout, HANDSHAKE_TIMEOUT_S, 0.0);
    c->timer.data = c;
    return c;
}

/* Counts c as open; conn_free undoes it. */
static void conn_register(struct conn *c)
{
    c->id = next_id++;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    nactive++;
    ntotal++;
}

struct lookup {
    struct gaicb gcb;
    struct addrinfo hints;
    char name[256], port[8];
    int allow_all;  /* every address it resolves to, else only those --allow covers */
    struct conn *c; /* NULL once the connection is gone (loop thread only) */
    struct lookup *next;
};

/* Releases everything of c. reset_tcp: close the TCP side with an RST;
 * abort_mpt: FASTCLOSE the libmpt side instead of closing it gracefully. */
static void conn_free(struct conn *c, int reset_tcp, int abort_mpt, const char *how)
{
    if (c->phase == PHASE_RELAY) {
        proxy_relay_stop(&c->relay);
        total_to_mpt += c->relay.bytes_to_mpt;
        total_to_tcp += c->relay.bytes_to_tcp;
    }
    nactive--;
    tool_verbose(&T,
                 "conn %u closed (%s): %s, %s: tcp->mpt %llu B, mpt->tcp %llu B, %.3f s; "
                 "%llu open, %llu in total, tcp->mpt %llu B, mpt->tcp %llu B",
                 c->id, how, c->peer, c->target_str[0] ? c->target_str : "-",
                 (unsigned long long)c->relay.bytes_to_mpt,
                 (unsigned long long)c->relay.bytes_to_tcp, tool_now() - c->t_start,
                 (unsigned long long)nactive, (unsigned long long)ntotal,
                 (unsigned long long)total_to_mpt, (unsigned long long)total_to_tcp);
    if (T.stats && c->sock != NULL) {
        fprintf(stderr, "%s: conn %u statistics:\n", T.name, c->id);
        tool_print_stats(&T, stderr, c->sock);
    }
    ev_io_stop(loop, &c->hs_io);
    ev_timer_stop(loop, &c->timer);
    if (c->lookup != NULL)
        c->lookup->c = NULL; /* its result is dropped when it arrives */
    if (c->fd >= 0) {
        if (reset_tcp)
            close_reset(c->fd);
        else
            close(c->fd);
    }
    if (c->sock != NULL) {
        if (abort_mpt)
            mpt_abort(c->sock);
        else
            mpt_close(c->sock);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void conn_timeout(EV_P_ ev_timer *w, int revents)
{
    struct conn *c = w->data;

    if (c->phase == PHASE_TARGET_CONNECTING || c->phase == PHASE_RESOLVING) {
        server_refuse(c, PROXY_REPLY_TTL_EXPIRED, "timed out");
        return;
    }
    conn_msg(c, "no complete %s within %.0f s", c->phase == PHASE_HEADER ? "header" : "SOCKS5 request",
             HANDSHAKE_TIMEOUT_S);
    conn_free(c, 1, 1, "handshake timeout");
}

/* ---- client ------------------------------------------------------------------------ */

static void client_connect(struct conn *c)
{
    int rc;

    c->phase = PHASE_MPT_CONNECTING;
    ev_timer_stop(loop, &c->timer); /* libmpt has its own connect and handshake timeouts */
    rc = mpt_connect(ctx, to_host, to_port, T.paths, T.npaths, &mpt_cbs, c, &c->sock);
    if (rc >= 0)
        tool_apply_meters(&T, c->sock);
    if (rc < 0) {
        char where[400];
        int n = snprintf(where, sizeof where, "conn %u (%s): %s", c->id, c->peer, server_str());
        for (size_t i = 0; i < T.npaths && n < (int)sizeof where; i++)
            n += snprintf(where + n, sizeof where - (size_t)n, "%s%s", i ? "," : " over paths ",
                          T.paths[i]);
        tool_error(&T, where, "connect to the proxy server", rc, 0);
        c->sock = NULL;
        if (c->socks) {
            uint8_t r[10];
            (void)write_small(c->fd, r, socks5_reply(PROXY_REPLY_FAILURE, r));
        }
        conn_free(c, !c->socks, 0, "cannot connect");
    }
}

static void start_client_relay(struct conn *c)
{
    uint8_t header[PROXY_HEADER_MAX];
    size_t n = proxy_header_encode(&c->target, header);

    c->phase = PHASE_RELAY;
    proxy_relay_init(&c->relay, loop, c->fd, c->sock, &relay_ops, c);
    c->relay.expect_status = 1;
    /* The header first, then whatever the SOCKS5 client sent after its
     * request (at most sizeof hs, so it fits). */
    (void)proxy_relay_preload_mpt(&c->relay, header, n);
    (void)proxy_relay_preload_mpt(&c->relay, c->hs, c->hs_len);
    c->relay.bytes_to_mpt = c->hs_len;
    proxy_relay_start(&c->relay);
}

static void socks_refuse(struct conn *c, uint8_t code, const char *why)
{
    uint8_t r[10];

    (void)write_small(c->fd, r, socks5_reply(code, r));
    conn_msg(c, "SOCKS5 request refused: %s (reply %u)", why, code);
    shutdown(c->fd, SHUT_WR);
    conn_free(c, 0, 0, "SOCKS5 request refused");
}

/* Consumes SOCKS5 messages from c->hs; returns once it needs more bytes or
 * the connection is handed on or freed. */
static void socks_advance(struct conn *c)
{
    size_t used = 0;
    uint8_t out[2];

    if (c->phase == PHASE_SOCKS_GREETING) {
        switch (socks5_parse_greeting(c->hs, c->hs_len, &used)) {
        case SOCKS5_NEED_MORE:
            return;
        case SOCKS5_BAD:
            conn_msg(c, "not a SOCKS5 client (version %u)", c->hs[0]);
            conn_free(c, 1, 0, "not SOCKS5");
            return;
        case SOCKS5_REFUSE:
            socks5_method_reply(SOCKS5_METHOD_UNACCEPTABLE, out);
            (void)write_small(c->fd, out, 2);
            conn_msg(c, "SOCKS5 client offers no method without authentication; refused");
            shutdown(c->fd, SHUT_WR);
            conn_free(c, 0, 0, "no acceptable SOCKS5 method");
            return;
        case SOCKS5_DONE:
            socks5_method_reply(SOCKS5_METHOD_NONE, out);
            if (write_small(c->fd, out, 2) < 0) {
                conn_free(c, 1, 0, "write failed");
                return;
            }
            memmove(c->hs, c->hs + used, c->hs_len - used);
            c->hs_len -= used;
            c->phase = PHASE_SOCKS_REQUEST;
            break;
        }
    }
    uint8_t code = 0;
    switch (socks5_parse_request(c->hs, c->hs_len, &used, &c->target, &code)) {
    case SOCKS5_NEED_MORE:
        return;
    case SOCKS5_BAD:
        conn_msg(c, "not a SOCKS5 request (version %u)", c->hs[0]);
        conn_free(c, 1, 0, "not SOCKS5");
        return;
    case SOCKS5_REFUSE:
        socks_refuse(c, code, proxy_reply_text(code));
        return;
    case SOCKS5_DONE:
        break;
    }
    memmove(c->hs, c->hs + used, c->hs_len - used);
    c->hs_len -= used;
    ev_io_stop(loop, &c->hs_io);
    proxy_target_str(&c->target, c->target_str, sizeof c->target_str);
    tool_verbose(&T, "conn %u: SOCKS5 CONNECT %s via %s", c->id, c->target_str, server_str());
    client_connect(c);
}

static void socks_read_cb(EV_P_ ev_io *w, int revents)
{
    struct conn *c = w->data;
    ssize_t n = read(c->fd, c->hs + c->hs_len, sizeof c->hs - c->hs_len);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (n < 0)
            conn_msg(c, "reading the SOCKS5 request: %s", strerror(errno));
        conn_free(c, 1, 0, n == 0 ? "the SOCKS5 client left" : "read error");
        return;
    }
    c->hs_len += (size_t)n;
    socks_advance(c);
    /* c may be freed here; a full buffer without a complete message cannot
     * happen (the longest message is 262 bytes, the buffer 600). */
}

struct tcp_listener {
    int fd;
    int socks;
    ev_io w;
};
static struct tcp_listener listeners[2];
static size_t nlisteners;

static void tcp_accept_cb(EV_P_ ev_io *w, int revents)
{
    struct tcp_listener *l = w->data;

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                fprintf(stderr, "%s: accept: %s\n", T.name, strerror(errno));
            return;
        }
        char peer[80];
        tool_addr(&ss, peer, sizeof peer);
        if (nactive >= max_conns) {
            fprintf(stderr, "%s: %s: refused: %llu connections open (--max-conns)\n", T.name,
                    peer, (unsigned long long)nactive);
            close_reset(fd);
            continue;
        }
        struct conn *c = conn_alloc();
        if (c == NULL) {
            fprintf(stderr, "%s: %s: out of memory\n", T.name, peer);
            close_reset(fd);
            continue;
        }
        conn_register(c);
        c->fd = fd;
        c->socks = l->socks;
        snprintf(c->peer, sizeof c->peer, "%s", peer);
        set_nodelay(fd);
        tool_verbose(&T, "conn %u from %s (%s), %llu open", c->id, peer,
                     l->socks ? "SOCKS5" : "port forward", (unsigned long long)nactive);
        if (l->socks) {
            c->phase = PHASE_SOCKS_GREETING;
            ev_io_init(&c->hs_io, socks_read_cb, fd, EV_READ);
            c->hs_io.data = c;
            ev_io_start(loop, &c->hs_io);
            ev_timer_start(loop, &c->timer);
        } else {
            c->target.type = PROXY_TARGET_DEFAULT;
            snprintf(c->target_str, sizeof c->target_str, "the server's --forward target");
            client_connect(c);
        }
    }
}

/* ---- server ------------------------------------------------------------------------ */

static void server_refuse(struct conn *c, int code, const char *why)
{
    uint8_t status = (uint8_t)code;

    conn_msg(c, "%s: refused: %s (SOCKS5 reply %d)", c->target_str[0] ? c->target_str : "?", why,
             code);
    /* The status byte, then a graceful close: the client learns why. */
    if (mpt_send(c->sock, &status, 1) != 1) {
        conn_free(c, 1, 1, "refused");
        return;
    }
    conn_free(c, 1, 0, "refused");
}

static void start_server_relay(struct conn *c)
{
    uint8_t ok = PROXY_REPLY_OK;

    ev_io_stop(loop, &c->hs_io);
    ev_timer_stop(loop, &c->timer);
    set_nodelay(c->fd);
    c->phase = PHASE_RELAY;
    proxy_relay_init(&c->relay, loop, c->fd, c->sock, &relay_ops, c);
    (void)proxy_relay_preload_mpt(&c->relay, &ok, 1);
    /* Data the client sent after its header (fits: sizeof hs < the buffer). */
    (void)proxy_relay_preload_tcp(&c->relay, c->hs, c->hs_len);
    tool_verbose(&T, "conn %u: connected to %s", c->id, c->target_str);
    proxy_relay_start(&c->relay);
}

static void connect_next(struct conn *c);

static void target_connect_cb(EV_P_ ev_io *w, int revents)
{
    struct conn *c = w->data;
    int err = 0;
    socklen_t len = sizeof err;

    ev_io_stop(loop, &c->hs_io);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        start_server_relay(c);
        return;
    }
    char a[80];
    tool_verbose(&T, "conn %u: connect to %s: %s", c->id,
                 tool_addr(&c->addrs[c->next_addr - 1], a, sizeof a), strerror(err));
    c->last_errno = err;
    close(c->fd);
    c->fd = -1;
    connect_next(c);
}

/* Tries the target's addresses in order until one connects. */
static void connect_next(struct conn *c)
{
    c->phase = PHASE_TARGET_CONNECTING;
    while (c->next_addr < c->naddrs) {
        struct sockaddr_storage *ss = &c->addrs[c->next_addr++];
        socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6);
        int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            c->last_errno = errno;
            continue;
        }
        if (connect(fd, (struct sockaddr *)ss, len) == 0 || errno == EINPROGRESS) {
            c->fd = fd;
            ev_io_init(&c->hs_io, target_connect_cb, fd, EV_WRITE);
            c->hs_io.data = c;
            ev_io_start(loop, &c->hs_io);
            return;
        }
        c->last_errno = errno;
        close(fd);
    }
    char why[200];
    snprintf(why, sizeof why, "connect: %s", strerror(c->last_errno ? c->last_errno : EHOSTUNREACH));
    server_refuse(c, proxy_reply_for_errno(c->last_errno), why);
}

/* Keeps the addresses the rules allow (all of them when allow_all). */
static void take_addrs(struct conn *c, const struct addrinfo *ai, int allow_all)
{
    c->naddrs = 0;
    for (; ai != NULL && c->naddrs < MAX_TARGET_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof c->addrs[0])
            continue;
        if (!allow_all && !proxy_allow_addr(allow_rules, nallow, ai->ai_addr))
            continue;
        memcpy(&c->addrs[c->naddrs++], ai->ai_addr, ai->ai_addrlen);
    }
}

/* Name lookups run on getaddrinfo_a's threads; their results come back to
 * the loop through an ev_async, in a list guarded by a mutex. */
static pthread_mutex_t lookups_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lookup *lookups_done;
static ev_async lookups_async;

static void lookup_notify(union sigval sv)
{
    struct lookup *l = sv.sival_ptr;

    pthread_mutex_lock(&lookups_mu);
    l->next = lookups_done;
    lookups_done = l;
    pthread_mutex_unlock(&lookups_mu);
    ev_async_send(loop, &lookups_async);
}

static void lookup_finished(struct conn *c, int rc, const struct addrinfo *res, int allow_all)
{
    c->lookup = NULL;
    if (rc != 0) {
        char why[300];
        snprintf(why, sizeof why, "name lookup: %s", gai_strerror(rc));
        server_refuse(c, PROXY_REPLY_HOST_UNREACHABLE, why);
        return;
    }
    take_addrs(c, res, allow_all);
    if (c->naddrs == 0) {
        server_refuse(c, allow_all ? PROXY_REPLY_HOST_UNREACHABLE : PROXY_REPLY_NOT_ALLOWED,
                      allow_all ? "no IPv4 or IPv6 address"
                                : "not allowed by --allow (no rule covers its addresses)");
        return;
    }
    connect_next(c);
}

static void lookups_cb(EV_P_ ev_async *w, int revents)
{
    struct lookup *l;

    pthread_mutex_lock(&lookups_mu);
    l = lookups_done;
    lookups_done = NULL;
    pthread_mutex_unlock(&lookups_mu);
    while (l != NULL) {
        struct lookup *next = l->next;
        if (l->c != NULL)
            lookup_finished(l->c, gai_error(&l->gcb), l->gcb.ar_result, l->allow_all);
        if (l->gcb.ar_result)
            freeaddrinfo(l->gcb.ar_result);
        free(l);
        l = next;
    }
}

/* Resolves host:port for c (numeric at once, names on a helper thread);
 * allow_all: every address it has, else only those --allow covers. */
static void resolve_target(struct conn *c, const char *host, uint16_t port, int allow_all)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    char ports[8];
    int rc;

    snprintf(ports, sizeof ports, "%u", port);
    c->phase = PHASE_RESOLVING;
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, TARGET_CONNECT_TIMEOUT_S, 0.0);
    ev_timer_start(loop, &c->timer);
    if ((rc = getaddrinfo(host, ports, &hints, &res)) == 0) {
        lookup_finished(c, 0, res, allow_all);
        freeaddrinfo(res);
        return;
    }
    struct lookup *l = calloc(1, sizeof *l);
    if (l == NULL) {
        server_refuse(c, PROXY_REPLY_FAILURE, "out of memory");
        return;
    }
    snprintf(l->name, sizeof l->name, "%s", host);
    snprintf(l->port, sizeof l->port, "%s", ports);
    l->hints.ai_socktype = SOCK_STREAM;
    l->allow_all = allow_all;
    l->gcb.ar_name = l->name;
    l->gcb.ar_service = l->port;
    l->gcb.ar_request = &l->hints;
    l->c = c;
    struct gaicb *list[1] = {&l->gcb};
    struct sigevent sev = {.sigev_notify = SIGEV_THREAD,
                           .sigev_notify_function = lookup_notify,
                           .sigev_value.sival_ptr = l};
    if ((rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev)) != 0) {
        free(l);
        char why[300];
        snprintf(why, sizeof why, "name lookup: %s", gai_strerror(rc));
        server_refuse(c, PROXY_REPLY_FAILURE, why);
        return;
    }
    c->lookup = l;
}

/* Decides where the header says to go, and whether that is allowed. */
static void server_route(struct conn *c)
{
    char a[INET6_ADDRSTRLEN];

    proxy_target_str(&c->target, c->target_str, sizeof c->target_str);
    switch (c->target.type) {
    case PROXY_TARGET_DEFAULT:
        if (!have_forward) {
            server_refuse(c, PROXY_REPLY_NOT_ALLOWED, "this server has no --forward target");
            return;
        }
        snprintf(c->target_str, sizeof c->target_str,
                 strchr(forward_host, ':') ? "[%s]:%u" : "%s:%u", forward_host, forward_port);
        resolve_target(c, forward_host, forward_port, 1); /* the operator's own choice */
        return;
    case PROXY_TARGET_IPV4:
    case PROXY_TARGET_IPV6:
        inet_ntop(c->target.type == PROXY_TARGET_IPV4 ? AF_INET : AF_INET6, c->target.addr, a,
                  sizeof a);
        resolve_target(c, a, c->target.port, allow_any);
        return;
    case PROXY_TARGET_NAME:
        if (allow_any || proxy_allow_name(allow_rules, nallow, c->target.name, c->target.port)) {
            resolve_target(c, c->target.name, c->target.port, 1);
            return;
        }
        /* Address rules may still cover what the name resolves to. */
        for (size_t i = 0; i < nallow; i++)
            if (!allow_rules[i].is_name) {
                resolve_target(c, c->target.name, c->target.port, 0);
                return;
            }
        server_refuse(c, PROXY_REPLY_NOT_ALLOWED, "not allowed by --allow");
        return;
    }
}

static void server_read_header(struct conn *c)
{
    for (;;) {
        ssize_t n = mpt_recv(c->sock, c->hs + c->hs_len, sizeof c->hs - c->hs_len);
        if (n == MPT_EAGAIN)
            return;
        if (n == 0) {
            tool_verbose(&T, "conn %u: the client ended the stream before its header", c->id);
            conn_free(c, 0, 0, "no header");
            return;
        }
        if (n < 0) {
            char where[300];
            snprintf(where, sizeof where, "conn %u (%s)", c->id, c->peer);
            tool_conn_error(&T, c->sock, where, "reading the header", (int)n);
            conn_free(c, 0, 1, "libmpt error");
            return;
        }
        c->hs_len += (size_t)n;
        int used = proxy_header_parse(c->hs, c->hs_len, &c->target);
        if (used < 0) {
            conn_msg(c, "not an mpt-proxy client (bad header)");
            conn_free(c, 0, 1, "bad header");
            return;
        }
        if (used > 0) {
            memmove(c->hs, c->hs + used, c->hs_len - (size_t)used);
            c->hs_len -= (size_t)used;
            server_route(c);
            return;
        }
        if (c->hs_len == sizeof c->hs) { /* cannot happen: a header is shorter */
            conn_free(c, 0, 1, "bad header");
            return;
        }
    }
}

static void on_mpt_accept(struct mpt_listener *l, void *user)
{
    for (;;) {
        struct conn *c = conn_alloc();
        if (c == NULL)
            return;
        if (mpt_accept(l, &mpt_cbs, c, &c->sock) < 0) {
            free(c);
            return;
        }
        conn_register(c);
        struct mpt_subflow_info sf[1];
        if (mpt_get_subflows(c->sock, sf, 1) >= 1)
            tool_addr(&sf[0].remote, c->peer, sizeof c->peer);
        else
            snprintf(c->peer, sizeof c->peer, "?");
        if (nactive > max_conns) {
            fprintf(stderr, "%s: %s: refused: %llu connections open (--max-conns)\n", T.name,
                    c->peer, (unsigned long long)(nactive - 1));
            conn_free(c, 0, 1, "too many connections");
            continue;
        }
        tool_verbose(&T, "conn %u from %s (libmpt), %llu open", c->id, c->peer,
                     (unsigned long long)nactive);
        c->phase = PHASE_HEADER;
        ev_timer_start(loop, &c->timer);
        server_read_header(c); /* data may be there already */
    }
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage_lines(FILE *f)
{
    fprintf(f,
            "usage: mpt-proxy client [options] --listen [ADDR:]PORT --to HOST:PORT\n"
            "       mpt-proxy client [options] --socks5 [ADDR:]PORT --to HOST:PORT\n"
            "       mpt-proxy server [options] --listen [ADDR:]PORT [--forward HOST:PORT]\n"
            "                        [--allow RULE]... [--allow-any]\n");
}

static void help(void)
{
    usage_lines(stdout);
    fputs("\n"
          "Carries ordinary TCP connections over libmpt: each TCP connection the client\n"
          "accepts becomes one multipath connection to the server, which connects to the\n"
          "target. Runs until SIGINT or SIGTERM.\n"
          "\n"
          "Client:\n"
          "  -l, --listen [ADDR:]PORT  port forward: TCP connections here go to the\n"
          "                            server's --forward target (ADDR default 127.0.0.1)\n"
          "      --socks5 [ADDR:]PORT  a SOCKS5 server here (no authentication, CONNECT);\n"
          "                            the server connects to the target the SOCKS5\n"
          "                            client names (ADDR default 127.0.0.1)\n"
          "  -t, --to HOST:PORT        the mpt-proxy server\n"
          "Server:\n"
          "  -l, --listen [ADDR:]PORT  accept libmpt connections here (ADDR default: all)\n"
          "      --forward HOST:PORT   the target of port-forwarded connections\n"
          "      --allow RULE          SOCKS5 targets this server connects to: HOST:PORT,\n"
          "                            ADDR/PREFIX:PORT or [V6ADDR/PREFIX]:PORT, PORT a\n"
          "                            number or '*'; repeat for several\n"
          "      --allow-any           any SOCKS5 target (an open relay: only on trusted\n"
          "                            networks)\n"
          "Both:\n"
          "      --max-conns N         connections at once; more are refused (default 1024)\n",
          stdout);
    tool_common_help(stdout);
    fputs("\nExit status: 0 after SIGINT or SIGTERM, 1 if it cannot listen or start,\n"
          "2 for a usage error. See mpt-proxy(1).\n",
          stdout);
}

/* [ADDR:]PORT or HOST:PORT into host/port; -1 after printing why not. */
static int parse_endpoint(const char *opt, const char *s, int optional_host, char *host,
                          size_t hostlen, uint16_t *port, int allow_zero)
{
    const char *ps, *err;

    if (proxy_split_hostport(s, optional_host, host, hostlen, &ps, &err) < 0) {
        fprintf(stderr, "%s: %s '%s': %s\n", T.name, opt, s, err);
        return -1;
    }
    if (tool_parse_port(&T, opt, ps, port) < 0)
        return -1;
    if (*port == 0 && !allow_zero) {
        fprintf(stderr, "%s: %s '%s': port 0 is not a port to connect to\n", T.name, opt, s);
        return -1;
    }
    return 0;
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
    tool_verbose(&T, "signal %d: stopping (%llu connections open, %llu in total)", w->signum,
                 (unsigned long long)nactive, (unsigned long long)ntotal);
    ev_break(EV_A_ EVBREAK_ALL);
}

/* A TCP listening socket on host:port; -1 after printing why not. */
static int tcp_listen(const char *host, uint16_t port, int socks)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char ports[8], where[300];
    int rc, fd = -1, e = 0;

    snprintf(ports, sizeof ports, "%u", port);
    snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    if ((rc = getaddrinfo(host, ports, &hints, &res)) != 0) {
        fprintf(stderr, "%s: %s: listen: %s\n", T.name, where, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            e = errno;
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        tool_error_errno(&T, where, "listen", e);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char bound[80];
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    tool_verbose(&T, "listening on %s for %s via %s", tool_addr(&ss, bound, sizeof bound),
                 socks ? "SOCKS5" : "port forwarding", server_str());
    struct tcp_listener *l = &listeners[nlisteners++];
    l->fd = fd;
    l->socks = socks;
    ev_io_init(&l->w, tcp_accept_cb, fd, EV_READ);
    l->w.data = l;
    ev_io_start(loop, &l->w);
    return 0;
}

static int parse_args(int argc, char **argv)
{
    const char *err;

    if (argc < 2)
        return tool_usage_error(&T, "%s", "a mode is needed: client or server (see --help)");
    if (argv[1][0] == '-') { /* --help or --version before a mode */
        int i = 1;
        if (tool_common_option(&T, argc, argv, &i) < 0)
            return TOOL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "client") == 0)
        mode = MODE_CLIENT;
    else if (strcmp(argv[1], "server") == 0)
        mode = MODE_SERVER;
    else
        return tool_usage_error(&T, "unknown mode '%s' (client or server)", argv[1]);

    for (int i = 2; i < argc;) {
        const char *a = argv[i];
        int rc = tool_common_option(&T, argc, argv, &i);
        if (rc < 0)
            return TOOL_EXIT_USAGE;
        if (rc > 0)
            continue;
        if (strcmp(a, "--allow-any") == 0) {
            allow_any = 1;
            i++;
            continue;
        }
        static const char *const with_value[] = {"-l", "--listen", "--socks5", "-t", "--to",
                                                 "--forward", "--allow", "--max-conns"};
        int known = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            known |= strcmp(a, with_value[k]) == 0;
        if (!known)
            return tool_usage_error(&T, a[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'", a);
        if (i + 1 >= argc || argv[i + 1][0] == '\0') {
            fprintf(stderr, "%s: option %s needs a value (see --help)\n", T.name, a);
            return TOOL_EXIT_USAGE;
        }
        const char *v = argv[i + 1];
        i += 2;
        if (strcmp(a, "-l") == 0 || strcmp(a, "--listen") == 0) {
            if (parse_endpoint(a, v, 1, listen_host, sizeof listen_host, &listen_port, 1) < 0)
                return TOOL_EXIT_USAGE;
            have_listen = 1;
        } else if (strcmp(a, "--socks5") == 0) {
            if (parse_endpoint(a, v, 1, socks_host, sizeof socks_host, &socks_port, 1) < 0)
                return TOOL_EXIT_USAGE;
            have_socks = 1;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--to") == 0) {
            if (parse_endpoint(a, v, 0, to_host, sizeof to_host, &to_port, 0) < 0)
                return TOOL_EXIT_USAGE;
            have_to = 1;
        } else if (strcmp(a, "--forward") == 0) {
            if (parse_endpoint(a, v, 0, forward_host, sizeof forward_host, &forward_port, 0) < 0)
                return TOOL_EXIT_USAGE;
            have_forward = 1;
        } else if (strcmp(a, "--allow") == 0) {
            if (nallow == MAX_ALLOW) {
                fprintf(stderr, "%s: at most %d --allow rules\n", T.name, MAX_ALLOW);
                return TOOL_EXIT_USAGE;
            }
            if (proxy_allow_parse(v, &allow_rules[nallow], &err) < 0) {
                fprintf(stderr, "%s: --allow '%s': %s\n", T.name, v, err);
                return TOOL_EXIT_USAGE;
            }
            nallow++;
        } else if (strcmp(a, "--max-conns") == 0) {
            if (tool_parse_u64(&T, a, v, 1, 1000000, &max_conns) < 0)
                return TOOL_EXIT_USAGE;
        }
    }

    if (mode == MODE_CLIENT) {
        if (!have_listen && !have_socks)
            return tool_usage_error(&T, "%s", "client: --listen or --socks5 is needed");
        if (!have_to)
            return tool_usage_error(&T, "%s", "client: --to HOST:PORT (the mpt-proxy server) is needed");
        if (have_forward || nallow || allow_any)
            return tool_usage_error(&T, "%s", "client: --forward, --allow and --allow-any are server options");
        if (listen_host[0] == '\0')
            strcpy(listen_host, "127.0.0.1");
        if (socks_host[0] == '\0')
            strcpy(socks_host, "127.0.0.1");
    } else {
        if (!have_listen)
            return tool_usage_error(&T, "%s", "server: --listen [ADDR:]PORT is needed");
        if (have_socks || have_to)
            return tool_usage_error(&T, "%s", "server: --socks5 and --to are client options");
        if (T.npaths || T.all_paths)
            return tool_usage_error(&T, "%s", "server: --path and --all-paths are client options");
        if (!have_forward && !nallow && !allow_any)
            return tool_usage_error(&T, "%s", "server: nothing to forward to: give --forward, --allow or "
                                     "--allow-any");
    }
    return TOOL_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct mpt_listener *ml = NULL;
    ev_signal sigint_w, sigterm_w;
    int rc;

    tool_init(&T, "mpt-proxy");
    T.help = help;
    T.usage = usage_lines;
    if ((rc = parse_args(argc, argv)) != TOOL_EXIT_OK)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    loop = EV_DEFAULT;
    if (tool_ctx_new(&T, loop, &ctx) < 0)
        return TOOL_EXIT_FAIL;
    ev_async_init(&lookups_async, lookups_cb);
    ev_async_start(loop, &lookups_async);

    if (mode == MODE_CLIENT) {
        if ((have_listen && tcp_listen(listen_host, listen_port, 0) < 0) ||
            (have_socks && tcp_listen(socks_host, socks_port, 1) < 0)) {
            mpt_ctx_free(ctx);
            return TOOL_EXIT_FAIL;
        }
    } else {
        const char *addrs[1] = {listen_host};
        size_t naddrs = listen_host[0] ? 1 : 0;
        char where[300];
        snprintf(where, sizeof where, strchr(listen_host, ':') ? "[%s]:%u" : "%s:%u",
                 naddrs ? listen_host : "*", listen_port);
        rc = mpt_listen(ctx, naddrs ? addrs : NULL, naddrs, listen_port, on_mpt_accept, NULL, &ml);
        if (rc < 0) {
            tool_error(&T, where, "listen", rc, 0);
            mpt_ctx_free(ctx);
            return TOOL_EXIT_FAIL;
        }
        if (tool_listener_setup(&T, ml) < 0) {
            mpt_ctx_free(ctx);
            return TOOL_EXIT_USAGE;
        }
        char fwd[300] = "";
        if (have_forward)
            snprintf(fwd, sizeof fwd, strchr(forward_host, ':') ? "[%s]:%u" : "%s:%u",
                     forward_host, forward_port);
        tool_verbose(&T, "listening on %s:%d for libmpt; forward target %s; SOCKS5 targets: %s",
                     naddrs ? listen_host : "*", mpt_listener_port(ml), have_forward ? fwd : "none",
                     allow_any ? "any (--allow-any)" : nallow ? "--allow rules" : "none");
    }

    ev_signal_init(&sigint_w, on_signal, SIGINT);
    ev_signal_start(loop, &sigint_w);
    ev_signal_init(&sigterm_w, on_signal, SIGTERM);
    ev_signal_start(loop, &sigterm_w);
    ev_run(loop, 0);

    while (conns != NULL)
        conn_free(conns, 1, 1, "stopping");
    for (size_t i = 0; i < nlisteners; i++) {
        ev_io_stop(loop, &listeners[i].w);
        close(listeners[i].fd);
    }
    mpt_listener_close(ml);
    mpt_ctx_free(ctx);
    return TOOL_EXIT_OK;
}
