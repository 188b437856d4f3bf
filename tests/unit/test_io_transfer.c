/*
 * I/O layer integration tests on loopback: byte-exact bulk transfers over 2
 * and 4 subflows in both directions (127.0.0.1 and 127.0.0.2 as paths and as
 * server addresses), and a subflow killed mid-transfer with no byte lost.
 * Client and server share one context and one loop in the test process.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <mpt/mpt.h>

/* Internal, test-only: the kernel socket of subflow sf (libmpt/subflow.h). */
struct mpt_socket;
int mpt_io_test_subflow_fd(struct mpt_socket *s, int sf);

#define PAT_LEN ((1u << 20) + 7u) /* prime-ish, so shifts and reorders show */
#define MIB (1024ull * 1024ull)

static uint8_t pat[PAT_LEN];
static uint8_t rbuf[256 * 1024];

static void pat_init(void)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < PAT_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pat[i] = (uint8_t)x;
    }
}

struct xfer {
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *cli, *srv;
    int server_sends;
    uint64_t total, sent, recvd;
    int eof, error, shut;
    int closed_cli, closed_srv;
    int sf_up_cli, sf_down_cli;
    uint64_t kill_at;
    int killed;
    struct mpt_socket *kill_sock;
};

static struct mpt_socket *sender(struct xfer *x)
{
    return x->server_sends ? x->srv : x->cli;
}

static void pump_send(struct xfer *x)
{
    struct mpt_socket *s = sender(x);

    if (s == NULL || x->shut)
        return;
    while (x->sent < x->total) {
        size_t off = (size_t)(x->sent % PAT_LEN);
        size_t n = PAT_LEN - off;
        if (n > 256 * 1024)
            n = 256 * 1024;
        if (n > x->total - x->sent)
            n = (size_t)(x->total - x->sent);
        ssize_t w = mpt_send(s, pat + off, n);
        if (w == MPT_EAGAIN)
            return;
        if (w <= 0) {
            x->error = (int)w;
            return;
        }
        x->sent += (uint64_t)w;
    }
    ck_assert_int_eq(mpt_shutdown(s), 0);
    ck_assert_int_eq(mpt_send(s, "x", 1), MPT_EPIPE);
    x->shut = 1;
}

static void maybe_kill(struct xfer *x)
{
    if (x->kill_at == 0 || x->killed || x->recvd < x->kill_at)
        return;
    /* Kill the client's last live subflow: shutdown(2) of its kernel socket. */
    for (int i = 31; i >= 0; i--) {
        int fd = mpt_io_test_subflow_fd(x->cli, i);
        if (fd >= 0) {
            shutdown(fd, SHUT_RDWR);
            x->killed = 1;
            return;
        }
    }
}

static void on_readable(struct mpt_socket *s, void *user)
{
    struct xfer *x = user;

    for (;;) {
        ssize_t n = mpt_recv(s, rbuf, sizeof rbuf);
        if (n == MPT_EAGAIN)
            return;
        if (n < 0) {
            x->error = (int)n;
            return;
        }
        if (n == 0) {
            x->eof = 1;
            /* Our side is done too: finish the graceful close. */
            mpt_shutdown(s);
            return;
        }
        size_t done = 0;
        while (done < (size_t)n) {
            size_t off = (size_t)((x->recvd + done) % PAT_LEN);
            size_t k = PAT_LEN - off;
            if (k > (size_t)n - done)
                k = (size_t)n - done;
            if (memcmp(rbuf + done, pat + off, k) != 0) {
                fprintf(stderr, "mismatch at byte %llu\n",
                        (unsigned long long)(x->recvd + done));
                x->error = -1000;
                return;
            }
            done += k;
        }
        x->recvd += (uint64_t)n;
        maybe_kill(x);
    }
}

static void on_writable(struct mpt_socket *s, void *user)
{
    pump_send(user);
}

static void on_connected(struct mpt_socket *s, int status, void *user)
{
    struct xfer *x = user;

    if (status < 0) {
        x->error = status;
        return;
    }
    pump_send(x);
}

static void on_closed_cli(struct mpt_socket *s, int status, void *user)
{
    struct xfer *x = user;
    x->closed_cli = status == 0 ? 1 : -1;
}

static void on_closed_srv(struct mpt_socket *s, int status, void *user)
{
    struct xfer *x = user;
    x->closed_srv = status == 0 ? 1 : -1;
}

static void on_sf_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    ((struct xfer *)user)->sf_up_cli++;
}

static void on_sf_down(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    ((struct xfer *)user)->sf_down_cli++;
}

static void on_accept(struct mpt_listener *l, void *user)
{
    struct xfer *x = user;
    struct mpt_callbacks cb = {0};
    struct mpt_socket *s;

    cb.readable = on_readable;
    cb.writable = on_writable;
    cb.closed = on_closed_srv;
    while (mpt_accept(l, &cb, x, &s) == 0) {
        ck_assert_ptr_null(x->srv);
        x->srv = s;
        if (x->server_sends)
            pump_send(x);
        else
            on_readable(s, x);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs one transfer; nsrv server addresses, npaths client paths. */
static void run_transfer(int server_sends, int nsrv, int npaths, uint64_t total,
                         uint64_t kill_at, int expect_subflows)
{
    static const char *const srv_addrs[] = {"127.0.0.1", "127.0.0.2"};
    static const char *const cli_paths[] = {"127.0.0.1", "127.0.0.2"};
    struct xfer x;
    struct mpt_config cfg;
    struct mpt_callbacks cb = {0};

    pat_init();
    memset(&x, 0, sizeof x);
    x.server_sends = server_sends;
    x.total = total;
    x.kill_at = kill_at;
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.reconnect_min_ms = 10; /* the killed subflow comes back during the transfer */
    ck_assert_int_eq(mpt_ctx_new(&x.ctx, NULL, &cfg), 0);
    if (getenv("MPT_TEST_TRACE"))
        mpt_set_trace_file(x.ctx, getenv("MPT_TEST_TRACE"));
    ck_assert_int_eq(mpt_listen(x.ctx, srv_addrs, (size_t)nsrv, 0, on_accept, &x, &x.l), 0);
    int port = mpt_listener_port(x.l);
    ck_assert_int_gt(port, 0);

    cb.connected = on_connected;
    cb.readable = on_readable;
    cb.writable = on_writable;
    cb.closed = on_closed_cli;
    cb.subflow_up = on_sf_up;
    cb.subflow_down = on_sf_down;
    ck_assert_int_eq(mpt_connect(x.ctx, "127.0.0.1", (uint16_t)port, cli_paths,
                                 (size_t)npaths, &cb, &x, &x.cli), 0);

    double t0 = now_s();
    while (x.error == 0 && !(x.eof && x.closed_cli && x.closed_srv) && now_s() - t0 < 100)
        mpt_ctx_run(x.ctx, 100);
    double dt = now_s() - t0;

    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(x.cli, &info), 0);
    fprintf(stderr,
            "transfer %s nsrv=%d npaths=%d kill=%d: %llu MiB in %.2f s (%.0f Mbit/s), "
            "client subflows up %d down %d, sent %llu reinjected %llu\n",
            server_sends ? "server->client" : "client->server", nsrv, npaths, x.killed,
            (unsigned long long)(x.recvd / MIB), dt, x.recvd * 8 / dt / 1e6, x.sf_up_cli,
            x.sf_down_cli, (unsigned long long)info.bytes_sent,
            (unsigned long long)info.bytes_reinjected);
    ck_assert_int_eq(x.error, 0);
    ck_assert(x.eof);
    ck_assert_uint_eq(x.recvd, total);
    ck_assert_uint_eq(x.sent, total);
    ck_assert_int_ge(x.sf_up_cli, expect_subflows);
    if (kill_at) {
        ck_assert(x.killed);
        ck_assert_int_ge(x.sf_down_cli, 1);
        ck_assert_int_ge(x.sf_up_cli, expect_subflows + 1); /* re-established */
    } else {
        ck_assert_int_eq(x.sf_down_cli, 0); /* a graceful close is not a failure */
    }
    ck_assert_int_eq(x.closed_cli, 1);
    ck_assert_int_eq(x.closed_srv, 1);
    ck_assert_int_eq(mpt_close(x.cli), 0);
    ck_assert_int_eq(mpt_close(x.srv), 0);
    mpt_listener_close(x.l);
    mpt_ctx_free(x.ctx);
}

START_TEST(two_subflows_client_to_server)
{
    run_transfer(0, 1, 2, 256 * MIB, 0, 2);
}
END_TEST

START_TEST(two_subflows_server_to_client)
{
    run_transfer(1, 1, 2, 256 * MIB, 0, 2);
}
END_TEST

START_TEST(four_subflows_client_to_server)
{
    run_transfer(0, 2, 2, 256 * MIB, 0, 4);
}
END_TEST

START_TEST(four_subflows_server_to_client)
{
    run_transfer(1, 2, 2, 256 * MIB, 0, 4);
}
END_TEST

START_TEST(subflow_killed_client_to_server)
{
    run_transfer(0, 1, 2, 128 * MIB, 16 * MIB, 2);
}
END_TEST

START_TEST(subflow_killed_server_to_client)
{
    run_transfer(1, 1, 2, 128 * MIB, 16 * MIB, 2);
}
END_TEST

START_TEST(ipv6_single_path)
{
    /* ::1 only: one path, one subflow (skipped if the host has no IPv6). */
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    static const char *const a6[] = {"::1"};
    struct mpt_socket *c, *s;
    char buf[16];

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    if (mpt_listen(ctx, a6, 1, 0, NULL, NULL, &l) < 0) {
        mpt_ctx_free(ctx);
        return;
    }
    ck_assert_int_eq(mpt_blocking_connect(ctx, "::1", (uint16_t)mpt_listener_port(l), a6, 1,
                                          5000, &c),
                     0);
    ck_assert_int_eq(mpt_blocking_accept(l, 5000, &s), 0);
    ck_assert_int_eq(mpt_blocking_send_all(c, "hello6", 6, 5000), 6);
    ssize_t n = mpt_blocking_recv(s, buf, sizeof buf, 5000);
    ck_assert_int_eq(n, 6);
    ck_assert(memcmp(buf, "hello6", 6) == 0);
    mpt_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("io_transfer");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, two_subflows_client_to_server);
    tcase_add_test(tc, two_subflows_server_to_client);
    tcase_add_test(tc, four_subflows_client_to_server);
    tcase_add_test(tc, four_subflows_server_to_client);
    tcase_add_test(tc, subflow_killed_client_to_server);
    tcase_add_test(tc, subflow_killed_server_to_client);
    tcase_add_test(tc, ipv6_single_path);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
