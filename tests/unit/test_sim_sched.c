/*
 * Each scheduler's defining behaviour in the simulator (issue 10): backup
 * subflows carry nothing while a regular one is usable; redundant survives
 * the loss of either path without a gap; blest and ecf never leave the
 * receiver blocked longer than minrtt on heterogeneous paths, and blest does
 * better with a small window; weighted splits by its weights; schedulers
 * switched live keep the stream byte-exact.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpt/error.h>

#include "core/sched.h"
#include "sim.h"

static void cfg2(struct sim_cfg *c, uint64_t seed, const char *sched)
{
    sim_cfg_default(c);
    c->seed = seed;
    c->npaths = 2;
    for (int s = 0; s < 2; s++)
        c->settings[s].sched = mpt_sched_find(sched);
    ck_assert_ptr_nonnull(c->settings[0].sched);
}

static uint64_t path_bytes(struct sim *sim, int path, int dir, uint64_t from)
{
    uint64_t n = 0;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        if (si.path == path && si.t_open >= from)
            n += si.bytes[dir];
    }
    return n;
}

START_TEST(backup_carries_nothing_while_regular_usable)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    uint64_t before;

    cfg2(&c, 301, "minrtt");
    for (int p = 0; p < 2; p++) {
        c.path[p].rate[0] = c.path[p].rate[1] = 10 * SIM_MBPS;
        c.path[p].delay[0] = c.path[p].delay[1] = 10 * SIM_MS;
    }
    c.path[1].backup = 1;
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 8 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_fail(sim, 3 * SIM_S, 0);
    ck_assert_int_eq(sim_run_until(sim, 3 * SIM_S - 1), SIM_RUNNING);
    /* no data (control frames, such as acks, may use it: 9.6) */
    before = 0;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        struct mpt_sf_stats st;
        sim_sock_info(sim, k, &si);
        if (si.path != 1)
            continue;
        ck_assert_int_eq(mpt_conn_sf_get_stats(sim_conn(sim, SIM_CLIENT), si.client_sf, &st), 0);
        before += st.bytes_sent;
        ck_assert_int_eq(mpt_conn_sf_get_stats(sim_conn(sim, SIM_SERVER), si.server_sf, &st), 0);
        before += st.bytes_sent;
    }
    ck_assert_uint_eq(before, 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    ck_assert_uint_gt(path_bytes(sim, 1, SIM_C2S, 0), 2 * SIM_MIB); /* it took over */
    sim_free(sim);
}
END_TEST

/* Every byte on both paths: losing either one leaves a shorter gap in
 * delivery than minrtt's reinjection (only the lag of the surviving path's
 * copies), and the transfer completes. */
static uint64_t loses(const char *sched, int path)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    const struct sim_result *r;

    cfg2(&c, 302 + (uint64_t)path, sched);
    for (int p = 0; p < 2; p++) {
        c.path[p].rate[0] = c.path[p].rate[1] = 10 * SIM_MBPS;
        c.path[p].delay[0] = c.path[p].delay[1] = (uint64_t)(10 + 5 * p) * SIM_MS;
    }
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 4 * SIM_MIB;
    c.rejoin = 0;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_fail(sim, 1500 * SIM_MS, path);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    r = sim_result(sim);
    uint64_t gap = r->dir[0].max_gap > r->dir[1].max_gap ? r->dir[0].max_gap : r->dir[1].max_gap;
    for (int d = 0; d < 2 && sched[0] == 'r'; d++)
        ck_assert_uint_gt(r->side[d].stats.bytes_redundant, SIM_MIB);
    sim_free(sim);
    return gap;
}

START_TEST(redundant_survives_either_path_alone)
{
    for (int p = 0; p < 2; p++) {
        uint64_t red = loses("redundant", p), min = loses("minrtt", p);
        printf("path %d reset: longest gap redundant %.1f ms, minrtt %.1f ms\n", p,
               (double)red / 1e6, (double)min / 1e6);
        ck_assert_uint_lt(red, min);
    }
}
END_TEST

/* 20 Mbit/s @ 10 ms RTT + 10 Mbit/s @ 100 ms, bulk, a small window. */
static const struct sim_result *hetero(const char *sched, size_t rcvbuf, struct sim **out)
{
    struct sim_cfg c;
    char buf[1024];

    cfg2(&c, 310, sched);
    c.path[0].rate[0] = c.path[0].rate[1] = 20 * SIM_MBPS;
    c.path[0].delay[0] = c.path[0].delay[1] = 5 * SIM_MS;
    c.path[1].rate[0] = c.path[1].rate[1] = 10 * SIM_MBPS;
    c.path[1].delay[0] = c.path[1].delay[1] = 50 * SIM_MS;
    c.bytes[SIM_C2S] = 16 * SIM_MIB;
    c.bytes[SIM_S2C] = 0;
    for (int s = 0; s < 2; s++)
        c.settings[s].rcvbuf = rcvbuf;
    ck_assert_int_eq(sim_new(&c, out), 0);
    sim_run(*out);
    ck_assert_msg(sim_check_complete(*out, buf, sizeof buf), "%s: %s", sched, buf);
    return sim_result(*out);
}

static double goodput(const struct sim_result *r)
{
    return (double)r->dir[0].delivered * 8 /
           ((double)(r->dir[0].t_last_read - r->dir[0].t_first_read) / 1e9) / 1e6;
}

START_TEST(blest_and_ecf_never_block_longer_than_minrtt)
{
    size_t bufs[] = {128 * 1024, 512 * 1024, 4u << 20};

    for (int b = 0; b < 3; b++) {
        struct sim *m, *bl, *ec;
        const struct sim_result *rm = hetero("minrtt", bufs[b], &m);
        const struct sim_result *rb = hetero("blest", bufs[b], &bl);
        const struct sim_result *re = hetero("ecf", bufs[b], &ec);
        printf("rcvbuf %zu KiB: goodput minrtt %.2f blest %.2f ecf %.2f Mbit/s; longest gap "
               "%.1f / %.1f / %.1f ms\n",
               bufs[b] / 1024, goodput(rm), goodput(rb), goodput(re),
               (double)rm->dir[0].max_gap / 1e6, (double)rb->dir[0].max_gap / 1e6,
               (double)re->dir[0].max_gap / 1e6);
        ck_assert_uint_le(rb->dir[0].max_gap, rm->dir[0].max_gap + SIM_MS);
        ck_assert_uint_le(re->dir[0].max_gap, rm->dir[0].max_gap + SIM_MS);
        if (b == 0) /* BLEST's case: the slow path's bytes would hold the window */
            ck_assert_double_gt(goodput(rb), goodput(rm));
        if (b == 2) { /* with the default buffer nothing is lost */
            ck_assert_double_ge(goodput(rb), 0.95 * goodput(rm));
            ck_assert_double_ge(goodput(re), 0.95 * goodput(rm));
        }
        sim_free(m);
        sim_free(bl);
        sim_free(ec);
    }
}
END_TEST

static void weigh(struct sim *sim, void *arg)
{
    struct mpt_conn *c = sim_conn(sim, SIM_CLIENT);
    (void)arg;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        if (!si.raw && si.client_sf >= 0)
            ck_assert_int_eq(mpt_conn_sf_set_weight(c, si.client_sf, si.path == 0 ? 3 : 1), 0);
    }
    ck_assert_int_eq(mpt_conn_sf_set_weight(c, 0, 0), MPT_EINVAL);
}

START_TEST(weighted_splits_by_weights)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    double ratio;

    cfg2(&c, 320, "weighted");
    for (int p = 0; p < 2; p++) {
        c.path[p].rate[0] = c.path[p].rate[1] = 20 * SIM_MBPS;
        c.path[p].delay[0] = c.path[p].delay[1] = 10 * SIM_MS;
    }
    c.bytes[SIM_C2S] = 16 * SIM_MIB;
    c.bytes[SIM_S2C] = 0;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_call(sim, 200 * SIM_MS, weigh, NULL);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    ratio = (double)path_bytes(sim, 0, SIM_C2S, 0) / (double)path_bytes(sim, 1, SIM_C2S, 0);
    printf("weighted 3:1 over equal paths: bytes split %.2f : 1\n", ratio);
    ck_assert_double_ge(ratio, 2.6);
    ck_assert_double_le(ratio, 3.4);
    sim_free(sim);
}
END_TEST

static const char *const live_order[] = {"roundrobin", "blest", "redundant", "ecf", "minrtt"};

static void switch_sched(struct sim *sim, void *arg)
{
    const struct mpt_sched_ops *ops = mpt_sched_find(live_order[(intptr_t)arg]);
    for (int s = 0; s < 2; s++)
        ck_assert_int_eq(mpt_conn_set_sched(sim_conn(sim, s), ops, sim_now(sim)), 0);
}

START_TEST(schedulers_switched_live_keep_the_stream_exact)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    cfg2(&c, 330, "minrtt");
    c.path[0].rate[0] = c.path[0].rate[1] = 20 * SIM_MBPS;
    c.path[0].delay[0] = c.path[0].delay[1] = 5 * SIM_MS;
    c.path[1].rate[0] = c.path[1].rate[1] = 10 * SIM_MBPS;
    c.path[1].delay[0] = c.path[1].delay[1] = 30 * SIM_MS;
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 12 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    for (intptr_t k = 0; k < 5; k++)
        sim_at_call(sim, (uint64_t)(400 + 500 * k) * SIM_MS, switch_sched, (void *)k);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    ck_assert_str_eq(mpt_conn_sched(sim_conn(sim, SIM_CLIENT))->name, "minrtt");
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_sched");
    TCase *tc = tcase_create("sim");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, backup_carries_nothing_while_regular_usable);
    tcase_add_test(tc, redundant_survives_either_path_alone);
    tcase_add_test(tc, blest_and_ecf_never_block_longer_than_minrtt);
    tcase_add_test(tc, weighted_splits_by_weights);
    tcase_add_test(tc, schedulers_switched_live_keep_the_stream_exact);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
