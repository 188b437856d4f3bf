/*
 * Scheduler and congestion control through the public API on loopback:
 * switched while data flows, on both sides, every byte arrives once and in
 * order; mpt_get_info names what is in use; names are checked up front,
 * including the kernel's TCP congestion control, which every subflow socket
 * then carries.
 */
#include <check.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <mpt/mpt.h>

/* Internal (libmpt/subflow.h): the kernel socket of subflow index sf. */
int mpt_io_test_subflow_fd(struct mpt_socket *s, int sf);

static const char *const lo1[] = {"127.0.0.1"};
static const char *const two_paths[] = {"127.0.0.1", "127.0.0.2"};

static const char *const scheds[] = {"roundrobin", "redundant", "blest", "ecf", "weighted",
                                     "minrtt"};
static const char *const ccs[] = {"lia", "olia", "balia", "uncoupled"};
#define NSCHED (sizeof scheds / sizeof scheds[0])
#define NCC (sizeof ccs / sizeof ccs[0])

static uint8_t pattern(uint64_t off)
{
    return (uint8_t)((off * 2654435761u) >> 13);
}

/* The receiving server: checks every byte against the pattern and switches
 * its own side's algorithms every `every` bytes. */
struct sink {
    struct mpt_socket *s;
    uint64_t got, every, next_switch;
    int bad, eof, switches, switch_err, closed;
    const char *first_sched;
};

static void sink_readable(struct mpt_socket *s, void *user)
{
    struct sink *k = user;
    uint8_t buf[65536];

    for (;;) {
        ssize_t n = mpt_recv(s, buf, sizeof buf);
        if (n == 0) {
            k->eof = 1;
            mpt_shutdown(s);
            return;
        }
        if (n < 0)
            return;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(k->got + (uint64_t)i))
                k->bad++;
        k->got += (uint64_t)n;
        if (k->got >= k->next_switch) {
            int j = k->switches++;
            if (mpt_set_scheduler(s, scheds[(size_t)(j + 3) % NSCHED]) != 0 ||
                mpt_set_cc(s, ccs[(size_t)(j + 1) % NCC]) != 0)
                k->switch_err++;
            k->next_switch += k->every;
        }
    }
}

static void sink_closed(struct mpt_socket *s, int status, void *user)
{
    struct sink *k = user;
    k->closed = status == 0 ? 1 : status;
}

static void sink_accept(struct mpt_listener *l, void *user)
{
    struct sink *k = user;
    struct mpt_callbacks cb = {.readable = sink_readable, .closed = sink_closed};
    struct mpt_socket *s;
    struct mpt_info info = {.size = sizeof info};

    while (mpt_accept(l, &cb, k, &s) == 0) {
        k->s = s;
        /* The server chooses per connection, before any data. */
        ck_assert_int_eq(mpt_set_scheduler(s, "roundrobin"), 0);
        ck_assert_int_eq(mpt_get_info(s, &info), 0);
        k->first_sched = info.scheduler;
        sink_readable(s, k);
    }
}

START_TEST(switch_while_sending_both_sides)
{
    struct mpt_config cfg;
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *c;
    struct sink k = {0};
    const uint64_t total = 16u << 20;
    uint8_t chunk[32768];
    uint64_t sent = 0, next_switch = 0;
    int client_switches = 0;

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.congestion = "lia";
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    k.every = 1u << 20;
    k.next_switch = k.every / 2;
    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, sink_accept, &k, &l), 0);
    ck_assert_int_eq(mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l),
                                          two_paths, 2, 5000, &c),
                     0);
    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(c, &info), 0);
    ck_assert_str_eq(info.scheduler, "minrtt");
    ck_assert_str_eq(info.congestion, "lia"); /* the context's default */

    for (int spins = 0; sent < total && spins < 200000; spins++) {
        size_t n = sizeof chunk;
        if (n > total - sent)
            n = (size_t)(total - sent);
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(sent + i);
        ssize_t w = mpt_send(c, chunk, n);
        if (w > 0)
            sent += (uint64_t)w;
        else
            ck_assert_int_eq(w, MPT_EAGAIN);
        if (sent >= next_switch) {
            const char *sn = scheds[(size_t)client_switches % NSCHED];
            const char *cn = ccs[(size_t)client_switches % NCC];
            ck_assert_int_eq(mpt_set_scheduler(c, sn), 0);
            ck_assert_int_eq(mpt_set_cc(c, cn), 0);
            ck_assert_int_eq(mpt_get_info(c, &info), 0);
            ck_assert_str_eq(info.scheduler, sn);
            ck_assert_str_eq(info.congestion, cn);
            client_switches++;
            next_switch += 1u << 20;
        }
        mpt_ctx_run(ctx, w > 0 ? 0 : 5);
    }
    ck_assert_uint_eq(sent, total);
    ck_assert_int_eq(mpt_shutdown(c), 0);
    for (int i = 0; i < 2000 && !k.eof; i++)
        mpt_ctx_run(ctx, 5);
    ck_assert_int_eq(k.eof, 1);
    ck_assert_uint_eq(k.got, total);
    ck_assert_int_eq(k.bad, 0);
    fprintf(stderr, "switches client %d server %d\n", client_switches, k.switches);
    ck_assert_int_ge(client_switches, 15);
    ck_assert_int_ge(k.switches, 15);
    ck_assert_int_eq(k.switch_err, 0);
    ck_assert_str_eq(k.first_sched, "roundrobin");
    ck_assert_int_eq(mpt_get_info(c, &info), 0);
    ck_assert_uint_eq(info.bytes_acked, total);
    ck_assert_int_eq(mpt_blocking_close(c, 5000), 0);
    for (int i = 0; i < 200 && !k.closed; i++)
        mpt_ctx_run(ctx, 5);
    ck_assert_int_eq(k.closed, 1);
    /* A connection that has ended takes no new algorithm. */
    ck_assert_int_eq(mpt_set_scheduler(k.s, "minrtt"), MPT_ESTATE);
    ck_assert_int_eq(mpt_set_cc(k.s, "lia"), MPT_ESTATE);
    mpt_close(k.s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

START_TEST(names_checked_and_tcp_congestion_applied)
{
    struct mpt_config cfg;
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *c;
    struct sink k = {.every = UINT64_MAX, .next_switch = UINT64_MAX};
    char name[32];
    socklen_t len = sizeof name;

    MPT_CONFIG_DEFAULT(&cfg);
    cfg.tcp_congestion = "no-such-cc";
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), MPT_ENOTFOUND);
    cfg.tcp_congestion = NULL;
    cfg.congestion = "no-such-cc";
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), MPT_ENOTFOUND);
    cfg.congestion = NULL;
    cfg.scheduler = "no-such-sched";
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), MPT_ENOTFOUND);
    cfg.scheduler = "ecf";
    cfg.congestion = "olia";
    cfg.tcp_congestion = "cubic";
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);

    ck_assert_int_eq(mpt_listen(ctx, lo1, 1, 0, sink_accept, &k, &l), 0);
    ck_assert_int_eq(mpt_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), lo1, 1,
                                 NULL, NULL, &c),
                     0);
    /* Before the engine exists the choice waits in the handle. */
    ck_assert_int_eq(mpt_set_scheduler(c, "nope"), MPT_ENOTFOUND);
    ck_assert_int_eq(mpt_set_cc(c, "nope"), MPT_ENOTFOUND);
    ck_assert_int_eq(mpt_set_cc(NULL, "lia"), MPT_EINVAL);
    ck_assert_int_eq(mpt_set_cc(c, NULL), MPT_EINVAL);
    struct mpt_info info = {.size = sizeof info};
    ck_assert_int_eq(mpt_get_info(c, &info), 0);
    ck_assert_str_eq(info.scheduler, "ecf");
    ck_assert_str_eq(info.congestion, "olia");
    ck_assert_int_eq(mpt_set_cc(c, "balia"), 0);
    for (int i = 0; i < 400 && k.s == NULL; i++)
        mpt_ctx_run(ctx, 5);
    ck_assert_ptr_nonnull(k.s);
    ck_assert_int_eq(mpt_get_info(c, &info), 0);
    ck_assert_str_eq(info.congestion, "balia");
    ck_assert_int_eq(mpt_get_info(k.s, &info), 0);
    ck_assert_str_eq(info.congestion, "olia"); /* the server's context default */
    ck_assert_str_eq(info.scheduler, "roundrobin");

    int fd = mpt_io_test_subflow_fd(c, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len), 0);
    ck_assert_str_eq(name, "cubic");
    mpt_abort(c);
    mpt_close(k.s);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io_algo");
    TCase *tc = tcase_create("io_algo");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, switch_while_sending_both_sides);
    tcase_add_test(tc, names_checked_and_tcp_congestion_applied);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
