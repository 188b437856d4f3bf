/*
 * The explicit limits of a server context (issue 15, doc/security.md
 * "Limits") over real loopback sockets: connections per source address,
 * pending handshakes, connections per context, the handshake timeout of a
 * pending connection. Each test sets a small limit, goes past it, and
 * checks the documented reaction (who is refused, with what) and the
 * counters of mpt_ctx_get_stats(). The server and the clients are two
 * contexts on one loop.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

#include "rawpeer.h"

static struct mpt_ctx *srv, *cli;
static struct mpt_listener *lst;
static int port;
static int accepted;

static void srv_closed(struct mpt_socket *s, int status, void *user)
{
    (void)status;
    (void)user;
    mpt_close(s);
}

static void srv_accept(struct mpt_listener *l, void *user)
{
    struct mpt_callbacks cb;
    struct mpt_socket *s;
    (void)user;

    memset(&cb, 0, sizeof cb);
    cb.closed = srv_closed;
    while (mpt_accept(l, &cb, NULL, &s) == 0)
        accepted++;
}

static void setup_with(uint32_t per_addr, uint32_t pending, uint32_t maxconns, uint32_t hs_ms)
{
    struct mpt_config cfg;

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.max_conns_per_addr = per_addr;
    cfg.max_pending_handshakes = pending;
    cfg.max_connections = maxconns;
    cfg.handshake_timeout_ms = hs_ms;
    ck_assert_int_eq(mpt_ctx_new(&srv, NULL, &cfg), 0);
    MPT_CONFIG_DEFAULT(&cfg);
    ck_assert_int_eq(mpt_ctx_new(&cli, mpt_ctx_loop(srv), &cfg), 0);
    const char *addrs[] = {"127.0.0.1"};
    ck_assert_int_eq(mpt_listen(srv, addrs, 1, 0, srv_accept, NULL, &lst), 0);
    port = mpt_listener_port(lst);
    ck_assert_int_gt(port, 0);
    accepted = 0;
}

static void teardown(void)
{
    mpt_ctx_free(cli);
    mpt_ctx_free(srv);
    cli = srv = NULL;
}

static struct mpt_ctx_stats stats(void)
{
    struct mpt_ctx_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    ck_assert_int_eq(mpt_ctx_get_stats(srv, &st), 0);
    return st;
}

/* Runs the shared loop until *flag is set or limit seconds pass. */
static void run_until(const int *flag, double limit)
{
    double end = now_s() + limit;
    while (!*flag && now_s() < end)
        mpt_ctx_run(srv, 20);
}

/* ---- clients ---------------------------------------------------------------------- */

struct client {
    struct mpt_socket *s;
    int done, status;
};

static void cli_connected(struct mpt_socket *s, int status, void *user)
{
    struct client *c = user;
    (void)s;
    c->done = 1;
    c->status = status;
}

static void cli_closed(struct mpt_socket *s, int status, void *user)
{
    struct client *c = user;
    (void)s;
    if (!c->done) {
        c->done = 1;
        c->status = status < 0 ? status : MPT_ECLOSED;
    }
}

/* Connects from local address `from` and waits for the handshake's outcome. */
static int connect_from(struct client *c, const char *from)
{
    struct mpt_callbacks cb;
    const char *paths[] = {from};

    memset(&cb, 0, sizeof cb);
    memset(c, 0, sizeof *c);
    cb.connected = cli_connected;
    cb.closed = cli_closed;
    ck_assert_int_eq(mpt_connect(cli, "127.0.0.1", (uint16_t)port, paths, 1, &cb, c, &c->s), 0);
    run_until(&c->done, 10);
    ck_assert_msg(c->done, "no handshake outcome from %s", from);
    return c->status;
}

/* ---- connections per source address --------------------------------------------- */

START_TEST(per_addr_limit)
{
    struct client c[5];

    setup_with(2, 0, 0, 0);
    ck_assert_int_eq(connect_from(&c[0], "127.0.0.1"), 0);
    ck_assert_int_eq(connect_from(&c[1], "127.0.0.1"), 0);
    /* The third from the same address is refused, with a reason. */
    int rc = connect_from(&c[2], "127.0.0.1");
    ck_assert_int_lt(rc, 0);
    printf("case: third connection from 127.0.0.1 with max_conns_per_addr 2: %s\n",
           mpt_err_name(rc));
    struct mpt_ctx_stats st = stats();
    ck_assert_uint_eq(st.refused_per_addr, 1);
    ck_assert_uint_eq(st.conns, 2);
    /* Another source is not affected. */
    ck_assert_int_eq(connect_from(&c[3], "127.0.0.2"), 0);
    ck_assert_uint_eq(stats().conns, 3);
    /* A connection that ends gives its place back. */
    mpt_abort(c[0].s);
    mpt_close(c[2].s);
    double end = now_s() + 10;
    while (stats().conns > 2 && now_s() < end)
        mpt_ctx_run(srv, 20);
    ck_assert_uint_eq(stats().conns, 2);
    ck_assert_int_eq(connect_from(&c[4], "127.0.0.1"), 0);
    ck_assert_uint_eq(stats().refused_per_addr, 1);
    ck_assert_int_eq(accepted, 4);
    teardown();
}
END_TEST

/* ---- pending handshakes ------------------------------------------------------------ */

/* 1: the server closed fd (EOF or reset), 0: still open. */
static int raw_closed(int fd)
{
    uint8_t b;
    ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

START_TEST(pending_limit_evicts_oldest)
{
    enum { MAXP = 8, FLOOD = 20 };
    int fds[FLOOD];

    setup_with(0, MAXP, 0, 30000);
    /* Half-open handshakes, one at a time so that their order is known. */
    for (int i = 0; i < FLOOD; i++) {
        fds[i] = raw_connect(port);
        double end = now_s() + 5;
        while (stats().pending + stats().pending_evicted < (uint64_t)i + 1 && now_s() < end)
            mpt_ctx_run(srv, 5);
    }
    struct mpt_ctx_stats st = stats();
    ck_assert_uint_eq(st.pending, MAXP);
    ck_assert_uint_eq(st.pending_evicted, FLOOD - MAXP);
    /* The oldest were closed, the newest are still waiting. */
    mpt_ctx_run(srv, 50);
    for (int i = 0; i < FLOOD; i++)
        ck_assert_msg(raw_closed(fds[i]) == (i < FLOOD - MAXP), "half-open %d: closed %d", i,
                      raw_closed(fds[i]));
    /* An honest client still gets in during the flood (it pushes out one more). */
    struct client c;
    ck_assert_int_eq(connect_from(&c, "127.0.0.1"), 0);
    st = stats();
    ck_assert_uint_eq(st.pending_evicted, FLOOD - MAXP + 1);
    ck_assert_uint_eq(st.pending, MAXP - 1);
    printf("case: %d half-open handshakes with max_pending_handshakes %d: %llu evicted, "
           "an honest client connected\n",
           FLOOD, MAXP, (unsigned long long)st.pending_evicted);
    for (int i = 0; i < FLOOD; i++)
        close(fds[i]);
    teardown();
}
END_TEST

START_TEST(pending_timeout_counted)
{
    int fds[3];

    setup_with(0, 0, 0, 200);
    for (int i = 0; i < 3; i++)
        fds[i] = raw_connect(port);
    double end = now_s() + 10;
    while (stats().pending_timed_out < 3 && now_s() < end)
        mpt_ctx_run(srv, 20);
    struct mpt_ctx_stats st = stats();
    ck_assert_uint_eq(st.pending_timed_out, 3);
    ck_assert_uint_eq(st.pending, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert(raw_closed(fds[i]));
        close(fds[i]);
    }
    teardown();
}
END_TEST

/* ---- a late timer reads first (issue 15) --------------------------------------------- */

/* A busy client whose loop comes back only after its handshake deadline has
 * passed, with the server's HELLO_ACK waiting in its socket: the late timer
 * reads it first, and the connection comes up instead of timing out. The
 * client has its own loop, which the test does not run for 2 timeouts. */
START_TEST(late_timer_reads_first)
{
    struct mpt_config cfg;
    struct mpt_callbacks cb;
    struct client c;
    const char *paths[] = {"127.0.0.1"};

    setup_with(0, 0, 0, 0);
    mpt_ctx_free(cli);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.handshake_timeout_ms = 300;
    ck_assert_int_eq(mpt_ctx_new(&cli, NULL, &cfg), 0);
    memset(&cb, 0, sizeof cb);
    memset(&c, 0, sizeof c);
    cb.connected = cli_connected;
    cb.closed = cli_closed;
    ck_assert_int_eq(mpt_connect(cli, "127.0.0.1", (uint16_t)port, paths, 1, &cb, &c, &c.s), 0);
    double end = now_s() + 10;
    while (accepted == 0 && now_s() < end) {
        mpt_ctx_run(cli, 0);
        mpt_ctx_run(srv, 10);
    }
    ck_assert_int_eq(accepted, 1); /* the server has sent its HELLO_ACK */
    ck_assert_int_eq(c.done, 0);
    usleep(600 * 1000);
    end = now_s() + 10;
    while (!c.done && now_s() < end)
        mpt_ctx_run(cli, 20);
    ck_assert_int_eq(c.done, 1);
    ck_assert_int_eq(c.status, 0);
    teardown();
}
END_TEST

/* ---- connections per context -------------------------------------------------------- */

START_TEST(max_connections_refused)
{
    struct client c[3];

    setup_with(0, 0, 2, 0);
    ck_assert_int_eq(connect_from(&c[0], "127.0.0.1"), 0);
    ck_assert_int_eq(connect_from(&c[1], "127.0.0.1"), 0);
    int rc = connect_from(&c[2], "127.0.0.1");
    ck_assert_int_lt(rc, 0);
    printf("case: third connection with max_connections 2: %s\n", mpt_err_name(rc));
    struct mpt_ctx_stats st = stats();
    ck_assert_uint_ge(st.refused_max_connections, 1);
    ck_assert_uint_eq(st.conns, 2);
    ck_assert_int_eq(accepted, 2);
    teardown();
}
END_TEST

START_TEST(stats_and_config_checks)
{
    struct mpt_config cfg;
    struct mpt_ctx_stats st;

    ck_assert_int_eq(mpt_ctx_get_stats(NULL, &st), MPT_EINVAL);
    MPT_CONFIG_DEFAULT(&cfg);
    ck_assert_uint_eq(cfg.max_pending_handshakes, 4096);
    ck_assert_uint_eq(cfg.max_conns_per_addr, 1024);
    /* A layout that ended at tls (before the limits) is still taken. */
    cfg.size = offsetof(struct mpt_config, max_pending_handshakes);
    ck_assert_int_eq(mpt_ctx_new(&srv, NULL, &cfg), 0);
    memset(&st, 0, sizeof st);
    st.size = sizeof(size_t);
    ck_assert_int_eq(mpt_ctx_get_stats(srv, &st), MPT_EINVAL);
    /* A short struct gets only what it has room for. */
    st.size = offsetof(struct mpt_ctx_stats, pending);
    st.pending = 77;
    ck_assert_int_eq(mpt_ctx_get_stats(srv, &st), 0);
    ck_assert_uint_eq(st.conns, 0);
    ck_assert_uint_eq(st.pending, 77);
    mpt_ctx_free(srv);
    srv = NULL;
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io_limits");
    TCase *tc = tcase_create("limits");
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stats_and_config_checks);
    tcase_add_test(tc, per_addr_limit);
    tcase_add_test(tc, pending_limit_evicts_oldest);
    tcase_add_test(tc, pending_timeout_counted);
    tcase_add_test(tc, max_connections_refused);
    tcase_add_test(tc, late_timer_reads_first);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
