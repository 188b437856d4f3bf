/*
 * Hostile peers over real loopback sockets (issue 15), against one echo
 * server built on the public API that serves a well-behaved libmpt
 * connection the whole time: each case is a raw peer that builds every
 * preamble and frame byte itself from doc/protocol.md (the codec only reads
 * what the server says). Each case asserts its documented reaction (a clear
 * error, or bounded behaviour), the well-behaved connection's echo stays
 * byte-exact throughout, and the server's memory stays bounded. The table
 * of cases and results in doc/security.md ("Hostile peers") comes from the
 * lines this test prints ("case: ..."); PEERS_TRACE=1 prints every frame
 * the raw peers receive.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#include "core/crypto.h"
#include "core/frame.h"
#include "rawpeer.h"

#define RCVBUF (256 * 1024)

static uint8_t sbyte(uint64_t off)
{
    uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull;
    return (uint8_t)(x >> 29 ^ off >> 9);
}

/* ---- the server: an echo with bounded memory per connection -------------------- */

struct echo {
    struct mpt_socket *s;
    uint8_t buf[16384];
    size_t len, off;
    int eof, closed, status;
    struct echo *next;
};

static struct mpt_ctx *ctx;
static struct mpt_listener *lst;
static int port;
static struct echo *conns;
static long rss0, rss_peak;

static void echo_pump(struct mpt_socket *s, void *user)
{
    struct echo *e = user;
    for (;;) {
        ssize_t n;
        if (e->off < e->len) {
            n = mpt_send(s, e->buf + e->off, e->len - e->off);
            if (n <= 0)
                return; /* full: the writable callback resumes (nothing more is read) */
            e->off += (size_t)n;
            continue;
        }
        if (e->eof)
            return;
        n = mpt_recv(s, e->buf, sizeof e->buf);
        if (n > 0) {
            e->len = (size_t)n;
            e->off = 0;
        } else {
            if (n == 0) {
                e->eof = 1;
                (void)mpt_shutdown(s);
            }
            return;
        }
    }
}

static void echo_closed(struct mpt_socket *s, int status, void *user)
{
    struct echo *e = user;
    e->closed = 1;
    e->status = status;
    mpt_close(s);
}

static void srv_accept(struct mpt_listener *l, void *user)
{
    struct mpt_callbacks cb;
    struct echo *e = calloc(1, sizeof *e);
    (void)user;

    memset(&cb, 0, sizeof cb);
    cb.readable = echo_pump;
    cb.writable = echo_pump;
    cb.closed = echo_closed;
    ck_assert_ptr_nonnull(e);
    if (mpt_accept(l, &cb, e, &e->s) != 0) {
        free(e);
        return;
    }
    e->next = conns;
    conns = e;
    echo_pump(e->s, e);
}

/* ---- the well-behaved client, on the same loop ---------------------------------- */

static struct good {
    struct mpt_socket *s;
    int up, closed, status, eof, shut;
    uint64_t written, readn;
    int64_t mismatch;
} good = {.mismatch = -1};

static void good_connected(struct mpt_socket *s, int status, void *user)
{
    (void)s;
    (void)user;
    good.up = status == 0;
}

static void good_readable(struct mpt_socket *s, void *user)
{
    uint8_t buf[16384];
    ssize_t n;
    (void)user;
    while ((n = mpt_recv(s, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (good.mismatch < 0 && buf[i] != sbyte(good.readn + (uint64_t)i))
                good.mismatch = (int64_t)(good.readn + (uint64_t)i);
        good.readn += (uint64_t)n;
    }
    if (n == 0)
        good.eof = 1;
}

static void good_closed(struct mpt_socket *s, int status, void *user)
{
    (void)user;
    good.closed = 1;
    good.status = status;
    mpt_close(s);
}

/* A little more of the well-behaved stream, paced so it lasts the suite. */
static void good_tick(void)
{
    uint8_t buf[4096];
    if (!good.up || good.shut || good.closed || good.written - good.readn > 128 * 1024)
        return;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = sbyte(good.written + i);
    ssize_t n = mpt_send(good.s, buf, sizeof buf);
    if (n > 0)
        good.written += (uint64_t)n;
}

static void spin(double secs)
{
    double t0 = now_s();
    do {
        mpt_ctx_run(ctx, 2);
        good_tick();
        long r = rss_kib();
        if (r > rss_peak)
            rss_peak = r;
    } while (now_s() - t0 < secs);
}

/* ---- the raw peer ------------------------------------------------------------------ */

struct raw {
    int fd, eof, reset;
    uint8_t *in;
    size_t len, off;
    uint8_t key_c[MPT_KEY_LEN], key_s[MPT_KEY_LEN], rid[MPT_ROUTING_ID_LEN];
    uint64_t idsn_c, idsn_s, token;
    int n_error, n_fastclose, n_pong, n_join_ack;
    uint32_t error_reason, fastclose_reason;
    uint8_t echo[4096];
    size_t echo_len;
    uint8_t snonce[MPT_NONCE_LEN];
};

static void raw_open(struct raw *r, uint8_t keyb)
{
    struct sockaddr_in a;

    memset(r, 0, sizeof *r);
    r->in = malloc(1 << 20);
    ck_assert_ptr_nonnull(r->in);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(r->fd, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(r->fd, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < MPT_KEY_LEN; i++)
        r->key_c[i] = (uint8_t)(keyb + 3 * i);
    mpt_key_derive(r->key_c, NULL, &r->idsn_c);
}

static uint64_t idsn_for(uint8_t keyb)
{
    uint8_t key[MPT_KEY_LEN];
    uint64_t idsn;
    for (int i = 0; i < MPT_KEY_LEN; i++)
        key[i] = (uint8_t)(keyb + 3 * i);
    mpt_key_derive(key, NULL, &idsn);
    return idsn;
}

static void raw_free(struct raw *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->in);
    r->fd = -1;
    r->in = NULL;
}

/* Reads what arrived and looks at every frame after the first `skip` bytes. */
static void raw_poll(struct raw *r)
{
    for (;;) {
        if (r->len == (1 << 20)) { /* keep the tail only */
            memmove(r->in, r->in + r->off, r->len - r->off);
            r->len -= r->off;
            r->off = 0;
            if (r->len == (1 << 20))
                r->len = r->off = 0;
        }
        ssize_t n = read(r->fd, r->in + r->len, (1 << 20) - r->len);
        if (n > 0) {
            r->len += (size_t)n;
            continue;
        }
        if (n == 0)
            r->eof = 1;
        else if (errno == ECONNRESET)
            r->eof = r->reset = 1;
        break;
    }
    for (;;) {
        struct mpt_frame f;
        ssize_t n = mpt_frame_decode(r->in + r->off, r->len - r->off, MPT_FRAME_MAX_BODY, &f);
        if (n <= 0)
            break;
        r->off += (size_t)n;
        if (getenv("PEERS_TRACE"))
            fprintf(stderr, "peer fd %d <- %s (%zd bytes)\n", r->fd, mpt_frame_type_name(f.type), n);
        switch (f.type) {
        case MPT_FT_HELLO_ACK:
            memcpy(r->key_s, f.u.hello_ack.key, MPT_KEY_LEN);
            memcpy(r->rid, f.u.hello_ack.routing_id, MPT_ROUTING_ID_LEN);
            mpt_key_derive(r->key_s, &r->token, &r->idsn_s);
            break;
        case MPT_FT_JOIN_ACK:
            memcpy(r->snonce, f.u.join_ack.nonce, MPT_NONCE_LEN);
            r->n_join_ack++;
            break;
        case MPT_FT_ERROR:
            r->n_error++;
            r->error_reason = f.u.close.reason;
            break;
        case MPT_FT_FASTCLOSE:
            r->n_fastclose++;
            r->fastclose_reason = f.u.close.reason;
            break;
        case MPT_FT_PONG:
            r->n_pong++;
            break;
        case MPT_FT_DATA:
            if (r->echo_len + f.u.data.len <= sizeof r->echo) {
                memcpy(r->echo + r->echo_len, f.u.data.payload, f.u.data.len);
                r->echo_len += f.u.data.len;
            }
            break;
        default:
            break;
        }
    }
}

/* Writes everything (the loop runs while the socket is full), at most `secs`;
 * returns the bytes written. */
static size_t raw_write_for(struct raw *r, const void *b, size_t n, double secs)
{
    size_t done = 0;
    double t0 = now_s();
    while (done < n && now_s() - t0 < secs) {
        ssize_t w = send(r->fd, (const uint8_t *)b + done, n - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            break;
        spin(0.001);
    }
    return done;
}

static void raw_write(struct raw *r, const void *b, size_t n)
{
    raw_write_for(r, b, n, 5.0);
}

/* Runs the loop up to secs, until the server closed the raw connection;
 * returns 1 if it did. */
static int raw_wait_close(struct raw *r, double secs)
{
    double t0 = now_s();
    while (now_s() - t0 < secs) {
        spin(0.002);
        raw_poll(r);
        if (r->eof)
            return 1;
    }
    return 0;
}

static size_t hello_bytes(struct raw *r, uint8_t *b, uint16_t blen_delta)
{
    size_t o = 0;
    memcpy(b, "MPTL\x01\x00\x00\x00", 8);
    o = hdr(b, 8, MPT_FT_HELLO, 0, (uint16_t)(40 + blen_delta));
    b[o++] = 1;
    b[o++] = 1;
    o = put16(b, o, MPT_FEAT_SACK);
    memcpy(b + o, r->key_c, MPT_KEY_LEN);
    o += MPT_KEY_LEN;
    return put32(b, o, 1u << 20);
}

/* Preamble + HELLO; waits for the HELLO_ACK. */
static void raw_hello(struct raw *r, uint8_t keyb)
{
    uint8_t b[64];
    double t0 = now_s();

    raw_open(r, keyb);
    raw_write(r, b, hello_bytes(r, b, 0));
    while (!r->token && now_s() - t0 < 3) {
        spin(0.002);
        raw_poll(r);
    }
    ck_assert_msg(r->token != 0, "no HELLO_ACK");
}

/* Is the raw connection still served? A PING must come back as a PONG. */
static int raw_alive(struct raw *r)
{
    uint8_t b[12];
    int before = r->n_pong;
    double t0 = now_s();
    size_t o = hdr(b, 0, MPT_FT_PING, 0, 8);
    put64(b, o, 0x1234);
    raw_write(r, b, sizeof b);
    /* returns at the first PONG; the bound only matters when there is none
     * (under Valgrind, a flood's 20,000 HMACs take many seconds) */
    while (now_s() - t0 < 30) {
        spin(0.002);
        raw_poll(r);
        if (r->n_pong > before)
            return 1;
        if (r->eof)
            return 0;
    }
    return 0;
}

static size_t data_bytes(uint8_t *b, uint64_t dsn, const void *p, size_t n)
{
    size_t o = hdr(b, 0, MPT_FT_DATA, 0, (uint16_t)(8 + n));
    o = put64(b, o, dsn);
    memcpy(b + o, p, n);
    return o + n;
}

static size_t join_bytes(const struct raw *r, uint8_t *b, uint64_t token, const uint8_t *nonce)
{
    size_t o = 0;
    memcpy(b, "MPTL\x01\x01\x00\x00", 8);
    memcpy(b + 8, r->rid, MPT_ROUTING_ID_LEN);
    o = hdr(b, 16, MPT_FT_JOIN, 0, 26);
    o = put64(b, o, token);
    memcpy(b + o, nonce, MPT_NONCE_LEN);
    o += MPT_NONCE_LEN;
    b[o++] = 1; /* addr id */
    b[o++] = 0;
    return o;
}

static void report(const char *name, const char *result)
{
    printf("case: %s: %s\n", name, result);
    fflush(stdout);
}

/* What the server said before closing: its ERROR and FASTCLOSE reasons. */
static void describe(const struct raw *r, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    if (r->n_error)
        o += (size_t)snprintf(buf + o, len - o, "ERROR(%u)", r->error_reason);
    if (r->n_fastclose)
        o += (size_t)snprintf(buf + o, len - o, "%sFASTCLOSE(%u)", o ? " + " : "",
                              r->fastclose_reason);
    if (!o)
        snprintf(buf, len, "no frame");
}

/* A raw connection that sends `bad` after the handshake must be closed by
 * the server with ERROR and/or FASTCLOSE (it was the only subflow: the
 * connection is aborted). */
static void expect_error_close(const char *name, const uint8_t *bad, size_t n)
{
    struct raw r;
    char res[160];
    double t0;

    raw_hello(&r, 0x10);
    t0 = now_s();
    raw_write(&r, bad, n);
    ck_assert_msg(raw_wait_close(&r, 4.0), "%s: the server did not close", name);
    ck_assert_msg(r.n_error + r.n_fastclose >= 1, "%s: no ERROR or FASTCLOSE (%zu bytes read)",
                  name, r.len);
    describe(&r, res, sizeof res);
    snprintf(res + strlen(res), sizeof res - strlen(res), ", closed after %.0f ms",
             (now_s() - t0) * 1000);
    report(name, res);
    raw_free(&r);
}

/* ---- the cases ------------------------------------------------------------------------ */

static void case_garbage(void)
{
    struct raw r;
    double t0;
    char res[160];
    static const uint8_t junk[64] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    uint8_t b[200];

    raw_open(&r, 1);
    t0 = now_s();
    raw_write(&r, junk, sizeof junk);
    ck_assert(raw_wait_close(&r, 3.0));
    ck_assert_int_eq(r.len, 0);
    snprintf(res, sizeof res, "closed without a reply after %.0f ms", (now_s() - t0) * 1000);
    report("garbage before the handshake (not MPTL)", res);
    raw_free(&r);

    /* a valid preamble, then garbage in place of HELLO */
    raw_open(&r, 1);
    memcpy(b, "MPTL\x01\x00\x00\x00", 8);
    memset(b + 8, 0xee, 64);
    t0 = now_s();
    raw_write(&r, b, 72);
    ck_assert(raw_wait_close(&r, 3.0));
    snprintf(res, sizeof res, "%s, closed after %.0f ms",
             r.n_error ? "ERROR frame" : "no reply", (now_s() - t0) * 1000);
    report("garbage after the preamble, before HELLO", res);
    raw_free(&r);

    /* 0x7e...: an unknown mandatory type announcing a 32382-byte body */
    raw_hello(&r, 0x12);
    memset(b, 0x7e, 64);
    t0 = now_s();
    raw_write(&r, b, 64);
    ck_assert(raw_wait_close(&r, 6.0));
    describe(&r, res, sizeof res);
    snprintf(res + strlen(res), sizeof res - strlen(res), ", closed after %.1f s",
             now_s() - t0);
    report("garbage after the handshake (64 x 0x7e: unknown type, 32382-byte body announced)",
           res);
    raw_free(&r);
    hdr(b, 0, 0x7e, 0, 4);
    expect_error_close("an unknown mandatory frame type (0x7e, complete)", b, 8);

    /* 0xff...: an ignorable type (high bit) announcing a 65535-byte body: the
     * server waits for it; the peer answers no PING, so the subflow times out */
    raw_hello(&r, 0x11);
    memset(b, 0xff, 64);
    t0 = now_s();
    raw_write(&r, b, 64);
    ck_assert(raw_wait_close(&r, 6.0));
    snprintf(res, sizeof res, "waits for the announced body; closed after %.1f s (subflow "
             "timeout, PING unanswered)%s", now_s() - t0, r.n_error ? ", ERROR" : "");
    report("garbage after the handshake (64 x 0xff: ignorable type, 65535-byte body)", res);
    raw_free(&r);
}

static void case_frames(void)
{
    static const uint8_t types[] = {
        MPT_FT_HELLO,     MPT_FT_HELLO_ACK, MPT_FT_JOIN,      MPT_FT_JOIN_ACK,
        MPT_FT_JOIN_CONFIRM, MPT_FT_DATA,   MPT_FT_DATA_ACK,  MPT_FT_DATA_FIN,
        MPT_FT_ADD_ADDR,  MPT_FT_REMOVE_ADDR, MPT_FT_PRIO,    MPT_FT_PING,
        MPT_FT_PONG,      MPT_FT_CLOSE,     MPT_FT_FASTCLOSE, MPT_FT_SUBFLOW_CLOSE,
        MPT_FT_ERROR};
    static uint8_t b[4 + 65535];
    char name[96], res[200];

    for (size_t i = 0; i < sizeof types; i++) {
        struct raw r;
        const char *tn = mpt_frame_type_name(types[i]);
        int closed;
        for (int big = 0; big < 2; big++) {
            /* truncated: a 1-byte body (no frame type has a valid 1-byte body but
             * REMOVE_ADDR, which is exempt below); oversized: a 65535-byte body */
            uint16_t blen = big ? 65535 : 1;
            if (!big && types[i] == MPT_FT_REMOVE_ADDR)
                blen = 0; /* REMOVE_ADDR needs at least one id */
            if (big && types[i] == MPT_FT_REMOVE_ADDR)
                blen = 300; /* at most 255 ids */
            memset(b, 0, sizeof b);
            hdr(b, 0, types[i], 0, blen);
            raw_hello(&r, (uint8_t)(0x20 + i));
            raw_write(&r, b, 4 + (size_t)blen);
            closed = raw_wait_close(&r, 3.0);
            snprintf(name, sizeof name, "%s %s (body %u bytes)", tn, big ? "oversized" : "truncated",
                     blen);
            describe(&r, res, sizeof res);
            strcat(res, closed ? ", closed" : ", NOT closed");
            report(name, res);
            ck_assert_msg(closed && r.n_error + r.n_fastclose >= 1, "%s: %s", name, res);
            raw_free(&r);
        }
    }
    {
        /* a frame cut off on the wire, then silence: the server's PING goes
         * unanswered and the subflow times out */
        struct raw r;
        double t0;
        raw_hello(&r, 0x40);
        hdr(b, 0, MPT_FT_DATA, 0, 1000);
        t0 = now_s();
        raw_write(&r, b, 4 + 500);
        ck_assert(raw_wait_close(&r, 8.0));
        snprintf(res, sizeof res, "closed after %.1f s (subflow timeout: PING unanswered)",
                 now_s() - t0);
        report("DATA cut off mid-frame, then silence", res);
        raw_free(&r);
    }
}

static void case_data(void)
{
    static uint8_t b[4 + 8 + 1024];
    struct raw r;
    char res[200];
    uint8_t p[100];

    memset(p, 'x', sizeof p);
    /* expect_error_close's raw peer uses key byte 0x10 */
    expect_error_close("DATA beyond the window (rcvbuf + 1 KiB ahead)", b,
                       data_bytes(b, idsn_for(0x10) + RCVBUF + 1024, p, sizeof p));
    expect_error_close("DATA far outside the window (2^62 ahead)", b,
                       data_bytes(b, idsn_for(0x10) + (1ull << 62), p, sizeof p));
    expect_error_close("DATA far behind (2^40 behind)", b,
                       data_bytes(b, idsn_for(0x10) - (1ull << 40), p, sizeof p));

    /* duplicate DATA with different bytes: the first copy is what is delivered */
    raw_hello(&r, 0x52);
    raw_write(&r, b, data_bytes(b, r.idsn_c, "AAAA", 4));
    raw_write(&r, b, data_bytes(b, r.idsn_c, "BBBB", 4));
    raw_write(&r, b, data_bytes(b, r.idsn_c + 2, "CCCC", 4));
    for (int i = 0; i < 200 && r.echo_len < 6; i++) {
        spin(0.005);
        raw_poll(&r);
    }
    ck_assert_int_eq(r.echo_len, 6);
    ck_assert(memcmp(r.echo, "AAAACC", 6) == 0);
    ck_assert(raw_alive(&r));
    report("duplicate DATA with different bytes (AAAA, BBBB at 0, CCCC at 2)",
           "echo is AAAACC: bytes already held are kept, duplicates dropped; connection goes on");
    raw_free(&r);

    /* DATA_ACK for data never sent, and moving backwards */
    {
        int closed;
        raw_hello(&r, 0x53);
        raw_write(&r, b, data_bytes(b, r.idsn_c, "hello", 5));
        for (int i = 0; i < 200 && r.echo_len < 5; i++) {
            spin(0.005);
            raw_poll(&r);
        }
        size_t o = hdr(b, 0, MPT_FT_DATA_ACK, 0, 12);
        o = put64(b, o, r.idsn_s + 5);
        o = put32(b, o, 1 << 20);
        raw_write(&r, b, o);
        o = hdr(b, 0, MPT_FT_DATA_ACK, 0, 12);
        o = put64(b, o, r.idsn_s + 2);
        o = put32(b, o, 1 << 20);
        raw_write(&r, b, o);
        ck_assert(raw_alive(&r));
        report("DATA_ACK moving backwards (5, then 2)", "ignored (stale); connection goes on");
        o = hdr(b, 0, MPT_FT_DATA_ACK, 0, 12);
        o = put64(b, o, r.idsn_s + 1000000);
        o = put32(b, o, 1 << 20);
        raw_write(&r, b, o);
        closed = raw_wait_close(&r, 3.0);
        describe(&r, res, sizeof res);
        strcat(res, closed ? ", connection aborted" : ", NOT closed");
        report("DATA_ACK for data never sent (1,000,000 ahead)", res);
        ck_assert(closed && r.n_error + r.n_fastclose >= 1);
        raw_free(&r);
    }
}

static void case_joins(void)
{
    struct raw r, j, k;
    uint8_t b[128], nonce[MPT_NONCE_LEN], mac[MPT_HMAC_LEN];
    char res[200];
    size_t n, o;

    raw_hello(&r, 0x60);
    memset(nonce, 0x5a, sizeof nonce);

    /* forged: a token nobody has */
    raw_open(&j, 0x61);
    memcpy(j.rid, r.rid, sizeof j.rid);
    raw_write(&j, b, join_bytes(&j, b, r.token ^ 0x8000000000000001ull, nonce));
    ck_assert(raw_wait_close(&j, 3.0));
    snprintf(res, sizeof res, "ERROR(reason %u), closed", j.error_reason);
    report("forged JOIN (unknown token)", res);
    ck_assert(j.n_error == 1 && j.error_reason == MPT_REASON_UNKNOWN_TOKEN);
    raw_free(&j);

    /* right token, wrong HMAC in JOIN_CONFIRM */
    raw_open(&j, 0x60);
    memcpy(j.rid, r.rid, sizeof j.rid);
    raw_write(&j, b, join_bytes(&j, b, r.token, nonce));
    for (int i = 0; i < 300 && !j.n_join_ack; i++) {
        spin(0.005);
        raw_poll(&j);
    }
    ck_assert(j.n_join_ack);
    o = hdr(b, 0, MPT_FT_JOIN_CONFIRM, 0, MPT_HMAC_LEN);
    memset(b + o, 0x42, MPT_HMAC_LEN);
    raw_write(&j, b, o + MPT_HMAC_LEN);
    ck_assert(raw_wait_close(&j, 3.0));
    snprintf(res, sizeof res, "ERROR(reason %u), join closed; first subflow still served",
             j.error_reason);
    ck_assert(j.n_error == 1 && j.error_reason == MPT_REASON_AUTH);
    ck_assert(raw_alive(&r));
    report("JOIN_CONFIRM with a forged HMAC", res);
    raw_free(&j);

    /* an honest join, then its exact bytes replayed on a new connection */
    memset(nonce, 0x77, sizeof nonce);
    raw_open(&j, 0x60);
    memcpy(j.rid, r.rid, sizeof j.rid);
    memcpy(j.key_s, r.key_s, sizeof j.key_s);
    n = join_bytes(&j, b, r.token, nonce);
    raw_write(&j, b, n);
    for (int i = 0; i < 300 && !j.n_join_ack; i++) {
        spin(0.005);
        raw_poll(&j);
    }
    ck_assert(j.n_join_ack);
    mpt_join_hmac(MPT_JOIN_CLIENT, r.key_c, r.key_s, nonce, j.snonce, 1, 0, mac);
    o = hdr(b + n, 0, MPT_FT_JOIN_CONFIRM, 0, MPT_HMAC_LEN);
    memcpy(b + n + o, mac, MPT_HMAC_LEN);
    raw_write(&j, b + n, o + MPT_HMAC_LEN);
    ck_assert(raw_alive(&j)); /* the join is established */
    raw_open(&k, 0x60);
    raw_write(&k, b, n + o + MPT_HMAC_LEN);
    ck_assert(raw_wait_close(&k, 3.0));
    snprintf(res, sizeof res, "ERROR(reason %u), closed; the honest join still served",
             k.error_reason);
    ck_assert(k.n_error == 1 && k.error_reason == MPT_REASON_REPLAY);
    ck_assert(raw_alive(&j));
    report("replayed JOIN (an honest join's exact bytes again)", res);
    raw_free(&k);

    /* FASTCLOSE on a joined subflow whose JOIN_CONFIRM never came (it proved
     * no key): only that subflow goes */
    memset(nonce, 0x99, sizeof nonce);
    raw_open(&k, 0x60);
    memcpy(k.rid, r.rid, sizeof k.rid);
    raw_write(&k, b, join_bytes(&k, b, r.token, nonce));
    for (int i = 0; i < 300 && !k.n_join_ack; i++) {
        spin(0.005);
        raw_poll(&k);
    }
    o = hdr(b, 0, MPT_FT_FASTCLOSE, 0, 4);
    o = put32(b, o, MPT_REASON_APP_ABORT);
    raw_write(&k, b, o);
    ck_assert(raw_wait_close(&k, 3.0));
    ck_assert(raw_alive(&r));
    ck_assert(raw_alive(&j));
    report("FASTCLOSE from a joined subflow that never authenticated (forged key)",
           "only that subflow is closed; the connection and its other subflows go on");
    raw_free(&k);
    raw_free(&j);
    raw_free(&r);
}

static void case_floods(void)
{
    static uint8_t b[20000 * 20];
    struct raw r;
    char res[200];
    size_t o = 0;
    long before;

    /* ADD_ADDR flood: 20,000 advertisements with bad HMACs and all ids */
    raw_hello(&r, 0x70);
    before = rss_kib();
    for (int i = 0; i < 20000; i++) {
        o = hdr(b, o, MPT_FT_ADD_ADDR, 0, 16);
        b[o++] = (uint8_t)(i % 255 + 1);
        b[o++] = 4;
        o = put16(b, o, 80);
        o = put32(b, o, 0x0a000000u + (uint32_t)i);
        o = put64(b, o, (uint64_t)i);
    }
    raw_write(&r, b, o);
    spin(0.2);
    ck_assert(raw_alive(&r));
    snprintf(res, sizeof res, "all ignored (bad HMAC), connection goes on, RSS +%ld KiB",
             rss_kib() - before);
    report("ADD_ADDR flood (20,000, bad HMACs)", res);
    raw_free(&r);

    /* PING flood: 20,000 PINGs at once */
    raw_hello(&r, 0x71);
    o = 0;
    for (int i = 0; i < 20000; i++) {
        o = hdr(b, o, MPT_FT_PING, 0, 8);
        o = put64(b, o, (uint64_t)i + 1);
    }
    before = rss_kib();
    raw_write(&r, b, o);
    spin(0.3);
    raw_poll(&r);
    ck_assert(!r.eof);
    ck_assert_int_le(r.n_pong, 20000);
    snprintf(res, sizeof res, "%d PONGs for 20,000 PINGs (the newest answered per batch), "
             "connection goes on, RSS +%ld KiB", r.n_pong, rss_kib() - before);
    report("PING flood (20,000 in one burst)", res);
    raw_free(&r);
}

static void case_slow_and_deaf(void)
{
    static uint8_t b[4 + 8 + 16384];
    struct raw r;
    char res[200];
    double t0;
    uint8_t p[16384];

    /* one byte at a time: the handshake and a DATA frame, each byte its own write */
    raw_open(&r, 0x80);
    {
        uint8_t h[64];
        size_t n = hello_bytes(&r, h, 0);
        for (size_t i = 0; i < n; i++) {
            raw_write(&r, h + i, 1);
            spin(0.001);
        }
        for (int i = 0; i < 300 && !r.token; i++) {
            spin(0.005);
            raw_poll(&r);
        }
        ck_assert(r.token);
        n = data_bytes(b, r.idsn_c, "one byte at a time", 18);
        for (size_t i = 0; i < n; i++) {
            raw_write(&r, b + i, 1);
            spin(0.001);
        }
        for (int i = 0; i < 300 && r.echo_len < 18; i++) {
            spin(0.005);
            raw_poll(&r);
        }
        ck_assert_int_eq(r.echo_len, 18);
        ck_assert(memcmp(r.echo, "one byte at a time", 18) == 0);
        report("a peer that sends one byte at a time (handshake and DATA)",
               "served normally: the echo is exact");
    }
    raw_free(&r);

    /* never reads: sends a window's worth, reads nothing, acknowledges nothing */
    raw_hello(&r, 0x81);
    memset(p, 'z', sizeof p);
    t0 = now_s();
    for (uint64_t off = 0; off + sizeof p <= RCVBUF; off += sizeof p)
        raw_write_for(&r, b, data_bytes(b, r.idsn_c + off, p, sizeof p), 0.5);
    {
        double t1 = now_s();
        int closed = 0;
        long before = rss_kib();
        /* wait without reading: the server must give up on its own */
        while (now_s() - t1 < 10 && !closed) {
            spin(0.01);
            char c;
            ssize_t n = recv(r.fd, &c, 1, MSG_PEEK);
            closed = n == 0 || (n < 0 && errno == ECONNRESET);
            if (!closed) {
                /* still open: see whether the server closed its end (peek cannot
                 * see a FIN behind unread data), via the echo state */
                struct echo *e = conns; /* the newest connection is this one */
                closed = e && e->closed;
            }
        }
        snprintf(res, sizeof res, "%s after %.1f s (%s), RSS +%ld KiB while it lasted",
                 closed ? "aborted" : "NOT aborted", now_s() - t0,
                 conns && conns->closed ? mpt_err_name(conns->status) : "-", rss_kib() - before);
        report("a peer that never reads (and so never acknowledges)", res);
        ck_assert(closed);
        /* its PINGs unanswered, the subflow fails (subflow timeout) and then the
         * connection (no path); a peer that reads but never acknowledges gets
         * MPT_ETIMEDOUT from the ack timeout instead (test_io_hostile) */
        ck_assert(conns->status == MPT_ENOPATH || conns->status == MPT_ETIMEDOUT);
    }
    raw_free(&r);
}

/* Thousands of half-open handshakes: as many as the descriptor limit allows
 * (both ends are in this process), at most HALF_OPEN_MAX. */
enum { HALF_OPEN_MAX = 3000 };

static int half_open_count(void)
{
    struct rlimit rl;
    long n;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return HALF_OPEN_MAX;
    n = ((long)rl.rlim_cur - 256) / 2;
    return n > HALF_OPEN_MAX ? HALF_OPEN_MAX : n < 100 ? 100 : (int)n;
}

static void case_half_open(void)
{
    static int fds[HALF_OPEN_MAX];
    const int n_open = half_open_count();
    struct sockaddr_in a;
    char what[100], res[200];
    int closed = 0;
    double t0 = now_s();
    long before = rss_kib();

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n_open; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ge(fds[i], 0);
        ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        ck_assert_int_eq(write(fds[i], "MPTL\x01", 5), 5); /* and nothing more */
        if (i % 50 == 0)
            spin(0.001);
    }
    /* the well-behaved connection keeps going meanwhile; the pending ones
     * are closed at the handshake timeout (2 s here) */
    while (now_s() - t0 < 8 && closed < n_open) {
        spin(0.02);
        closed = 0;
        for (int i = 0; i < n_open; i++) {
            char c;
            ssize_t n = read(fds[i], &c, 1);
            closed += n == 0 || (n < 0 && errno != EAGAIN);
        }
    }
    snprintf(res, sizeof res, "%d of %d closed by the server after %.1f s (handshake timeout "
             "2 s), RSS +%ld KiB", closed, n_open, now_s() - t0, rss_kib() - before);
    snprintf(what, sizeof what, "%d half-open handshakes (a partial preamble, then nothing)",
             n_open);
    report(what, res);
    for (int i = 0; i < n_open; i++)
        close(fds[i]);
    ck_assert_int_eq(closed, n_open);
}

START_TEST(hostile_peers_beside_a_good_connection)
{
    struct mpt_config cfg;
    struct mpt_callbacks cb;
    static const char *const lo[] = {"127.0.0.1"};
    double t0;

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.rcvbuf = RCVBUF;
    cfg.sndbuf = RCVBUF;
    cfg.ack_timeout_ms = 3000;
    cfg.handshake_timeout_ms = 2000;
    cfg.advertise_addresses = 0;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(ctx, lo, 1, 0, srv_accept, NULL, &lst), 0);
    port = mpt_listener_port(lst);
    memset(&cb, 0, sizeof cb);
    cb.connected = good_connected;
    cb.readable = good_readable;
    cb.closed = good_closed;
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)port, NULL, 0, &cb, NULL, &good.s), 0);
    t0 = now_s();
    while (!good.up && now_s() - t0 < 3)
        spin(0.01);
    ck_assert(good.up);
    rss0 = rss_peak = rss_kib();

    case_garbage();
    case_frames();
    case_data();
    case_joins();
    case_floods();
    case_slow_and_deaf();
    case_half_open();

    /* the well-behaved connection: everything echoed, byte-exact, clean close */
    good.shut = 1;
    ck_assert_int_eq(mpt_shutdown(good.s), 0);
    t0 = now_s();
    while (!good.closed && now_s() - t0 < 10)
        spin(0.01);
    printf("good connection: %llu bytes written, %llu echoed back, first mismatch %lld, closed "
           "with %s; server RSS peak +%ld KiB over the suite\n",
           (unsigned long long)good.written, (unsigned long long)good.readn,
           (long long)good.mismatch, mpt_err_name(good.status), rss_peak - rss0);
    ck_assert(good.closed);
    ck_assert_int_eq(good.status, 0);
    ck_assert(good.eof);
    ck_assert_int_eq(good.mismatch, -1);
    ck_assert_uint_eq(good.readn, good.written);
    ck_assert_uint_gt(good.written, 1024 * 1024);
    ck_assert_int_lt(rss_peak - rss0, 64 * 1024);

    mpt_listener_close(lst);
    mpt_ctx_free(ctx);
    while (conns) {
        struct echo *e = conns;
        conns = e->next;
        free(e);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io_peers");
    TCase *tc = tcase_create("io");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, hostile_peers_beside_a_good_connection);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
