/*
 * A raw peer over real loopback sockets against a server built on the
 * public API (issue 8): it builds every preamble and frame byte itself from
 * doc/protocol.md. The retransmission storm (a peer that reads everything
 * and answers PINGs but never acknowledges) must cost bounded wire bytes and
 * memory and end with MPT_ETIMEDOUT; a TLS preamble to a server without TLS
 * is refused at once; a peer that speaks another protocol is closed without
 * a word.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#include "core/frame.h"
#include "rawpeer.h"

/* The raw peers here read and write without blocking. */
static int raw_connect_nb(int port)
{
    int fd = raw_connect(port);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void put_hdr(uint8_t *b, uint8_t type, uint16_t blen)
{
    b[0] = type;
    b[1] = 0;
    b[2] = (uint8_t)(blen >> 8);
    b[3] = (uint8_t)blen;
}

static void put64_at(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* ---- the server: accepts, sends 64 KiB, records how it ended -------------------- */

struct srv {
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    int closed, status;
    double closed_at;
};

static uint8_t payload[64 * 1024];

static void srv_closed(struct mpt_socket *s, int status, void *user)
{
    struct srv *sv = user;
    sv->closed = 1;
    sv->status = status;
    sv->closed_at = now_s();
    mpt_close(s);
}

static void srv_accept(struct mpt_listener *l, void *user)
{
    struct mpt_callbacks cb;
    struct mpt_socket *s;

    memset(&cb, 0, sizeof cb);
    cb.closed = srv_closed;
    while (mpt_accept(l, &cb, user, &s) == 0)
        ck_assert_int_eq(mpt_send(s, payload, sizeof payload), (long)sizeof payload);
}

static void srv_start(struct srv *sv, uint32_t ack_timeout_ms)
{
    struct mpt_config cfg;
    const char *lo[] = {"127.0.0.1"};

    memset(sv, 0, sizeof *sv);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.ack_timeout_ms = ack_timeout_ms;
    ck_assert_int_eq(mpt_ctx_new(&sv->ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_listen(sv->ctx, lo, 1, 0, srv_accept, sv, &sv->l), 0);
}

static void srv_stop(struct srv *sv)
{
    mpt_listener_close(sv->l);
    mpt_ctx_free(sv->ctx);
}

/* Reads what is there; returns bytes read, -1 at EOF. */
static long drain(int fd, uint8_t *buf, size_t *len, size_t cap)
{
    long got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + *len, cap - *len);
        if (n > 0) {
            *len += (size_t)n;
            got += n;
            if (*len == cap)
                return got;
            continue;
        }
        if (n == 0)
            return -1;
        return got;
    }
}

START_TEST(storm_bounded_over_real_sockets)
{
    struct srv sv;
    static uint8_t in[1 << 20];
    size_t len = 0, off = 0;
    uint64_t data = 0, wire = 0;
    long rss0, rss_peak;
    int fd, eof = 0;
    double t0, t_end;
    uint8_t b[64];

    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 13);
    srv_start(&sv, 3000);
    fd = raw_connect_nb(mpt_listener_port(sv.l));
    /* preamble NEW v1 + HELLO (any key: the raw peer never needs the HMACs) */
    memcpy(b, "MPTL\x01\x00\x00\x00", 8);
    put_hdr(b + 8, MPT_FT_HELLO, 40);
    b[12] = 1;
    b[13] = 1;
    b[14] = 0;
    b[15] = 0;
    for (int i = 0; i < 32; i++)
        b[16 + i] = (uint8_t)(0x77 + i);
    b[48] = 0;
    b[49] = 0x10;
    b[50] = 0;
    b[51] = 0; /* window 1 MiB */
    ck_assert_int_eq(write(fd, b, 52), 52);
    rss0 = rss_peak = rss_kib();
    t0 = now_s();
    while (!sv.closed && now_s() - t0 < 20) {
        long r;
        mpt_ctx_run(sv.ctx, 5);
        r = eof ? 0 : drain(fd, in, &len, sizeof in);
        if (r < 0)
            eof = 1;
        else
            wire += (uint64_t)r;
        /* frames: count DATA payload, answer PINGs, never DATA_ACK */
        for (;;) {
            struct mpt_frame f;
            ssize_t n = mpt_frame_decode(in + off, len - off, MPT_FRAME_MAX_BODY, &f);
            if (n <= 0)
                break;
            off += (size_t)n;
            if (f.type == MPT_FT_DATA)
                data += f.u.data.len;
            if (f.type == MPT_FT_PING) {
                uint8_t pong[12];
                put_hdr(pong, MPT_FT_PONG, 8);
                put64_at(pong + 4, f.u.ping.opaque);
                (void)!write(fd, pong, sizeof pong);
            }
        }
        if (off > (1u << 19)) {
            memmove(in, in + off, len - off);
            len -= off;
            off = 0;
        }
        long r2 = rss_kib();
        if (r2 > rss_peak)
            rss_peak = r2;
    }
    t_end = sv.closed ? sv.closed_at : now_s();
    printf("storm over loopback: %llu bytes on the wire (%llu of DATA payload) for %zu bytes "
           "written, server RSS growth %ld KiB, ended after %.2f s with %s\n",
           (unsigned long long)wire, (unsigned long long)data, sizeof payload,
           rss_peak - rss0, t_end - t0, sv.closed ? mpt_err_name(sv.status) : "nothing");
    ck_assert(sv.closed);
    ck_assert_int_eq(sv.status, MPT_ETIMEDOUT);
    ck_assert_uint_le(data, sizeof payload);
    ck_assert_uint_le(wire, sizeof payload + 16 * 1024);
    ck_assert_int_lt(rss_peak - rss0, 8 * 1024);
    ck_assert_double_ge(t_end - t0, 2.5);
    ck_assert_double_le(t_end - t0, 6.0);
    close(fd);
    srv_stop(&sv);
}
END_TEST

/* Waits up to `secs` for the server to answer or close; returns bytes read
 * (into buf) once the peer closed, or -1 if it did not close in time. */
static long until_closed(struct srv *sv, int fd, uint8_t *buf, size_t cap, double secs)
{
    size_t len = 0;
    double t0 = now_s();

    while (now_s() - t0 < secs) {
        mpt_ctx_run(sv->ctx, 5);
        if (drain(fd, buf, &len, cap) < 0)
            return (long)len;
    }
    return -1;
}

START_TEST(tls_preamble_refused_at_once)
{
    struct srv sv;
    uint8_t buf[512];
    struct mpt_frame f;
    double t0;
    long n;
    int fd;

    srv_start(&sv, 0);
    fd = raw_connect_nb(mpt_listener_port(sv.l));
    t0 = now_s();
    ck_assert_int_eq(write(fd, "MPTL\x01\x00\x01\x00", 8), 8);
    n = until_closed(&sv, fd, buf, sizeof buf, 3.0);
    ck_assert_int_gt(n, 0);
    ck_assert_double_lt(now_s() - t0, 1.0); /* not the 5 s handshake timeout */
    ck_assert_int_gt(mpt_frame_decode(buf, (size_t)n, 300, &f), 0);
    ck_assert_int_eq(f.type, MPT_FT_ERROR);
    ck_assert_uint_eq(f.u.close.reason, MPT_REASON_PROTOCOL);
    close(fd);
    srv_stop(&sv);
}
END_TEST

START_TEST(other_protocol_closed_silently)
{
    struct srv sv;
    uint8_t buf[512];
    int fd;

    srv_start(&sv, 0);
    fd = raw_connect_nb(mpt_listener_port(sv.l));
    ck_assert_int_eq(write(fd, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    ck_assert_int_eq(until_closed(&sv, fd, buf, sizeof buf, 3.0), 0);
    close(fd);
    srv_stop(&sv);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io_hostile");
    TCase *tc = tcase_create("io");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, storm_bounded_over_real_sockets);
    tcase_add_test(tc, tls_preamble_refused_at_once);
    tcase_add_test(tc, other_protocol_closed_silently);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
