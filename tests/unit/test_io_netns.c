/*
 * Two real paths between two network namespaces (veth pairs, policy routing
 * by source address). Mid-transfer one path's link goes down: the transfer
 * goes on over the other path without losing a byte, the dead subflow is
 * reported down; when the link comes back the subflow is re-established and
 * carries traffic again.
 *
 * A second test removes a client address and deletes a client interface at
 * run time: each is reported with its cause (subflow_down, mpt_get_subflows
 * records, traced retries) instead of being retried in silence.
 *
 * Needs root and `ip` (iproute2); skipped (exit 77) otherwise.
 *
 *   client ns C                                   server ns S
 *   c1 10.241.1.1/24 ---------------------------- s1 10.241.1.2/24
 *   c2 10.241.2.1/24 ---------------------------- s2 10.241.2.2/24
 *                                                 lo 10.241.0.1/32 (service)
 * In C, traffic from 10.241.i.1 to the service goes out of ci (ip rule).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mpt/mpt.h>

static char ns_c[32], ns_s[32];

static int sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " >/dev/null 2>&1", sizeof cmd - strlen(cmd) - 1);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void teardown(void)
{
    sh("ip netns del %s", ns_c);
    sh("ip netns del %s", ns_s);
}

/* Killed (a harness timeout, ^C): our namespaces go too. */
static void on_signal(int sig)
{
    teardown();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int setup(void)
{
    const char *C = ns_c, *S = ns_s;

    if (sh("ip netns add %s", C) || sh("ip netns add %s", S))
        return -1;
    if (sh("ip -n %s link add c1 type veth peer name s1 netns %s", C, S) ||
        sh("ip -n %s link add c2 type veth peer name s2 netns %s", C, S))
        return -1;
    if (sh("ip -n %s addr add 10.241.1.1/24 dev c1", C) ||
        sh("ip -n %s addr add 10.241.2.1/24 dev c2", C) ||
        sh("ip -n %s addr add 10.241.1.2/24 dev s1", S) ||
        sh("ip -n %s addr add 10.241.2.2/24 dev s2", S) ||
        sh("ip -n %s addr add 10.241.0.1/32 dev lo", S))
        return -1;
    for (int i = 0; i < 2; i++) {
        const char *ns = i ? S : C;
        const char *p = i ? "s" : "c";
        if (sh("ip -n %s link set lo up", ns) || sh("ip -n %s link set %s1 up", ns, p) ||
            sh("ip -n %s link set %s2 up", ns, p))
            return -1;
        sh("ip netns exec %s sysctl -qw net.ipv4.conf.all.rp_filter=0", ns);
        sh("ip netns exec %s sysctl -qw net.ipv4.conf.default.rp_filter=0", ns);
    }
    if (sh("ip -n %s route add 10.241.0.1/32 via 10.241.1.2 dev c1", C) ||
        sh("ip -n %s route add 10.241.0.1/32 via 10.241.1.2 dev c1 table 101", C) ||
        sh("ip -n %s route add 10.241.0.1/32 via 10.241.2.2 dev c2 table 102", C) ||
        sh("ip -n %s rule add from 10.241.1.1 lookup 101 prio 100", C) ||
        sh("ip -n %s rule add from 10.241.2.1 lookup 102 prio 101", C) ||
        sh("ip -n %s rule add from 10.241.2.1 unreachable prio 102", C))
        return -1;
    return 0;
}

static void enter(const char *ns)
{
    char path[64];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(setns(fd, CLONE_NEWNET), 0);
    close(fd);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define PAT_LEN ((1u << 20) + 7u)
static uint8_t pat[PAT_LEN];
static uint8_t rbuf[256 * 1024];

struct st {
    struct mpt_socket *cli, *srv;
    uint64_t sent, recvd;
    int error, up, down, last_up_id, last_up_path;
};

static void pump_send(struct st *x)
{
    while (x->cli) {
        size_t off = (size_t)(x->sent % PAT_LEN);
        size_t n = PAT_LEN - off < 65536 ? PAT_LEN - off : 65536;
        ssize_t w = mpt_send(x->cli, pat + off, n);
        if (w == MPT_EAGAIN)
            return;
        if (w < 0) {
            x->error = (int)w;
            return;
        }
        x->sent += (uint64_t)w;
    }
}

static void on_writable(struct mpt_socket *s, void *user)
{
    pump_send(user);
}

static void on_connected(struct mpt_socket *s, int status, void *user)
{
    struct st *x = user;
    if (status < 0)
        x->error = status;
    else
        pump_send(x);
}

static void on_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    struct st *x = user;
    x->up++;
    x->last_up_id = sf->id;
    x->last_up_path = sf->path_id;
}

static void on_down(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    ((struct st *)user)->down++;
}

static void on_readable(struct mpt_socket *s, void *user)
{
    struct st *x = user;
    for (;;) {
        ssize_t n = mpt_recv(s, rbuf, sizeof rbuf);
        if (n <= 0) {
            if (n != MPT_EAGAIN)
                x->error = n == 0 ? -999 : (int)n;
            return;
        }
        size_t done = 0;
        while (done < (size_t)n) {
            size_t off = (size_t)((x->recvd + done) % PAT_LEN);
            size_t k = PAT_LEN - off < (size_t)n - done ? PAT_LEN - off : (size_t)n - done;
            if (memcmp(rbuf + done, pat + off, k) != 0) {
                x->error = -1000;
                return;
            }
            done += k;
        }
        x->recvd += (uint64_t)n;
    }
}

static void on_accept(struct mpt_listener *l, void *user)
{
    struct st *x = user;
    struct mpt_callbacks cb = {.readable = on_readable};
    struct mpt_socket *s;
    while (mpt_accept(l, &cb, x, &s) == 0) {
        x->srv = s;
        on_readable(s, x);
    }
}

static void run_until(struct mpt_ctx *ctx, struct st *x, double secs, int (*done)(struct st *))
{
    double t0 = now_s();
    while (x->error == 0 && now_s() - t0 < secs && !(done && done(x)))
        mpt_ctx_run(ctx, 20);
}

static int two_up(struct st *x) { return x->up >= 2 && x->recvd > (8u << 20); }
static int one_down(struct st *x) { return x->down >= 1; }
static int third_up(struct st *x) { return x->up >= 3; }

static uint64_t sf_sent(struct mpt_socket *s, int id)
{
    struct mpt_subflow_info sf[8];
    int n = mpt_get_subflows(s, sf, 8);
    for (int i = 0; i < n && i < 8; i++)
        if (sf[i].id == id)
            return sf[i].bytes_sent;
    return 0;
}

START_TEST(link_down_and_back)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_config cfg;
    struct st x;
    static const char *const service[] = {"10.241.0.1"};
    static const char *const paths[] = {"10.241.1.1", "10.241.2.1"};
    struct mpt_callbacks cb = {0};

    uint64_t v = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < PAT_LEN; i++) {
        v ^= v << 13, v ^= v >> 7, v ^= v << 17;
        pat[i] = (uint8_t)v;
    }
    memset(&x, 0, sizeof x);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.reconnect_min_ms = 200;
    cfg.reconnect_max_ms = 60000; /* only the link-up notification brings it back fast */
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);

    enter(ns_s);
    ck_assert_int_eq(mpt_listen(ctx, service, 1, 0, on_accept, &x, &l), 0);
    enter(ns_c); /* every client socket, and the netlink watcher, live here */
    cb.connected = on_connected;
    cb.writable = on_writable;
    cb.subflow_up = on_up;
    cb.subflow_down = on_down;
    ck_assert_int_eq(mpt_connect(ctx, "10.241.0.1", (uint16_t)mpt_listener_port(l), paths, 2,
                                 &cb, &x, &x.cli),
                     0);

    run_until(ctx, &x, 10, two_up);
    ck_assert_int_eq(x.error, 0);
    ck_assert_int_ge(x.up, 2);

    /* Path 2 goes away. */
    ck_assert_int_eq(sh("ip -n %s link set c2 down", ns_c), 0);
    uint64_t at_down = x.recvd;
    run_until(ctx, &x, 8, one_down);
    ck_assert_int_eq(x.error, 0);
    ck_assert_int_ge(x.down, 1);
    run_until(ctx, &x, 3, NULL); /* let the backoff grow */
    ck_assert_int_eq(x.error, 0);
    ck_assert_int_eq(x.up, 2);
    ck_assert_uint_gt(x.recvd, at_down + (64u << 20)); /* path 1 carried on */

    /* It comes back (the route via c2 went with the link: restore it). */
    double t_up = now_s();
    ck_assert_int_eq(sh("ip -n %s link set c2 up", ns_c), 0);
    ck_assert_int_eq(sh("ip -n %s route replace 10.241.0.1/32 via 10.241.2.2 dev c2 table 102",
                        ns_c),
                     0);
    run_until(ctx, &x, 10, third_up);
    ck_assert_int_eq(x.error, 0);
    ck_assert_int_ge(x.up, 3);
    ck_assert_int_eq(x.last_up_path, 1);
    fprintf(stderr, "netns: path 2 back %.2f s after link up\n", now_s() - t_up);
    ck_assert(now_s() - t_up < 5); /* the netlink trigger, not a 60 s backoff */

    uint64_t before = sf_sent(x.cli, x.last_up_id);
    uint64_t recvd_before = x.recvd;
    run_until(ctx, &x, 1.5, NULL);
    ck_assert_int_eq(x.error, 0);
    uint64_t after = sf_sent(x.cli, x.last_up_id);
    fprintf(stderr, "netns: re-established subflow %d carried %llu bytes in 1.5 s; total %llu MiB\n",
            x.last_up_id, (unsigned long long)(after - before),
            (unsigned long long)(x.recvd >> 20));
    ck_assert_uint_gt(after - before, 1u << 20);
    ck_assert_uint_gt(x.recvd, recvd_before);
    mpt_ctx_free(ctx);
}
END_TEST

/* ---- Paths that fail at run time --------------------------------------------- */

struct pf {
    int up, down, retries;
    struct mpt_subflow_info last_down;
};

static void pf_up(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    ((struct pf *)user)->up++;
}

static void pf_down(struct mpt_socket *s, const struct mpt_subflow_info *sf, void *user)
{
    struct pf *p = user;
    p->down++;
    p->last_down = *sf;
}

static void pf_trace(const char *line, size_t len, void *user)
{
    if (strstr(line, "\"ev\":\"sf_retry_scheduled\"") != NULL)
        ((struct pf *)user)->retries++;
}

/* The record of path_id's slot in mpt_get_subflows, or NULL. */
static const struct mpt_subflow_info *record_of(struct mpt_socket *s, int path_id,
                                                struct mpt_subflow_info *sf, int n)
{
    int k = mpt_get_subflows(s, sf, (size_t)n);
    for (int i = 0; i < k && i < n; i++)
        if (sf[i].path_id == path_id && sf[i].state == MPT_SUBFLOW_FAILED)
            return &sf[i];
    return NULL;
}

static void run_for(struct mpt_ctx *ctx, double secs)
{
    double t0 = now_s();
    while (now_s() - t0 < secs)
        mpt_ctx_run(ctx, 20);
}

START_TEST(runtime_failures_have_causes)
{
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct mpt_config cfg;
    struct pf pf;
    struct mpt_subflow_info sf[8];
    const struct mpt_subflow_info *rec;
    static const char *const service[] = {"10.241.0.1"};
    static const char *const paths[] = {"10.241.1.1", "10.241.2.1"};
    struct mpt_callbacks cb = {.subflow_up = pf_up, .subflow_down = pf_down};
    struct st x;

    memset(&pf, 0, sizeof pf);
    memset(&x, 0, sizeof x);
    MPT_CONFIG_DEFAULT(&cfg);
    cfg.reconnect_min_ms = 100;
    cfg.reconnect_max_ms = 400;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_int_eq(mpt_set_trace_callback(ctx, pf_trace, &pf), 0);
    enter(ns_s);
    ck_assert_int_eq(mpt_listen(ctx, service, 1, 0, on_accept, &x, &l), 0);
    enter(ns_c);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "10.241.0.1", (uint16_t)mpt_listener_port(l), paths,
                                          2, 5000, &s),
                     0);
    ck_assert_int_eq(mpt_set_callbacks(s, &cb, &pf), 0);
    double t0 = now_s();
    while (pf.up < 1 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_int_eq(pf.up, 1); /* the second path joined */

    /* Path 1's address goes away: the subflow fails with that cause, and
     * every retry fails at bind with EADDRNOTAVAIL, traced and reported. */
    ck_assert_int_eq(sh("ip -n %s addr del 10.241.2.1/24 dev c2", ns_c), 0);
    t0 = now_s();
    while (pf.down < 1 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_int_ge(pf.down, 1);
    ck_assert_int_eq(pf.last_down.path_id, 1);
    ck_assert_int_eq(pf.last_down.fail_error, MPT_EADDRNOTAVAIL);
    run_for(ctx, 1.5);
    ck_assert_int_ge(pf.down, 3);
    ck_assert_int_ge(pf.retries, 3);
    ck_assert_int_eq(pf.last_down.sys_errno, EADDRNOTAVAIL);
    ck_assert_ptr_nonnull(rec = record_of(s, 1, sf, 8));
    ck_assert_int_eq(rec->fail_error, MPT_EADDRNOTAVAIL);
    ck_assert_int_eq(rec->sys_errno, EADDRNOTAVAIL);
    ck_assert_uint_ge(rec->failures, 3);
    ck_assert_int_ge(rec->retry_ms, 0);
    ck_assert_int_le(rec->retry_ms, 400); /* the backoff is bounded by reconnect_max_ms */

    /* The address comes back: so does the path. */
    ck_assert_int_eq(sh("ip -n %s addr add 10.241.2.1/24 dev c2", ns_c), 0);
    ck_assert_int_eq(sh("ip -n %s route replace 10.241.0.1/32 via 10.241.2.2 dev c2 table 102",
                        ns_c),
                     0);
    t0 = now_s();
    while (pf.up < 2 && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_int_eq(pf.up, 2);
    ck_assert_ptr_null(record_of(s, 1, sf, 8));

    /* A source address the policy routes nowhere: every attempt fails at
     * connect() with ENETUNREACH. */
    ck_assert_int_eq(sh("ip -n %s addr add 10.241.4.1/32 dev c1", ns_c), 0);
    ck_assert_int_eq(sh("ip -n %s rule add from 10.241.4.1 unreachable prio 99", ns_c), 0);
    int id = mpt_add_path(s, "10.241.4.1");
    ck_assert_int_eq(id, 2);
    t0 = now_s();
    while (((rec = record_of(s, id, sf, 8)) == NULL || rec->failures < 2) && now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(rec->fail_error, MPT_ENETUNREACH);
    ck_assert_int_eq(rec->sys_errno, ENETUNREACH);
    ck_assert_uint_ge(rec->failures, 2);
    ck_assert_int_eq(mpt_remove_path(s, id), 0);
    ck_assert_ptr_null(record_of(s, id, sf, 8)); /* removed: no record, no retry */

    /* An interface path, then the interface is deleted: MPT_ENODEV. */
    ck_assert_int_eq(sh("ip -n %s link add d0 type veth peer name d0p", ns_c), 0);
    ck_assert_int_eq(sh("ip -n %s link set d0p up", ns_c), 0);
    ck_assert_int_eq(sh("ip -n %s link set d0 up", ns_c), 0);
    run_for(ctx, 0.3); /* the netlink news of d0's creation first */
    id = mpt_add_path(s, "d0");
    ck_assert_int_eq(id, 3);
    run_for(ctx, 0.3);
    ck_assert_int_eq(sh("ip -n %s link del d0", ns_c), 0);
    t0 = now_s();
    while (((rec = record_of(s, id, sf, 8)) == NULL || rec->sys_errno != ENODEV) &&
           now_s() - t0 < 5)
        mpt_ctx_run(ctx, 20);
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(rec->fail_error, MPT_ENODEV);
    ck_assert_int_eq(rec->sys_errno, ENODEV);
    ck_assert_str_eq(rec->ifname, "d0");
    /* And the connection never noticed. */
    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(s, &info), 0);
    ck_assert_int_eq(info.state, MPT_STATE_ESTABLISHED);
    ck_assert_uint_eq(info.subflows_established, 2);
    mpt_abort(s);
    mpt_ctx_free(ctx);
}
END_TEST

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_io_netns: needs root; skipped\n");
        return 77;
    }
    snprintf(ns_c, sizeof ns_c, "mptio%dc", (int)getpid());
    snprintf(ns_s, sizeof ns_s, "mptio%ds", (int)getpid());
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    if (setup() < 0) {
        teardown();
        fprintf(stderr, "test_io_netns: cannot build namespaces (ip, veth); skipped\n");
        return 77;
    }
    Suite *su = suite_create("io_netns");
    TCase *tc = tcase_create("veth");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, link_down_and_back);
    tcase_add_test(tc, runtime_failures_have_causes);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    teardown();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
