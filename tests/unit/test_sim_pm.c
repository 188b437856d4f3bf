/*
 * The path manager (libmpt/core/pm.h) driven by the simulator, as the I/O
 * layer drives it over real sockets: N subflows per path on every path,
 * re-creation after a failure with exponential backoff (and at once when the
 * path comes back), joins to addresses the server advertises, subflows
 * closed when it withdraws them, and the subflow limit.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim.h"

static void cfg_paths(struct sim_cfg *c, uint64_t seed, int npaths)
{
    sim_cfg_default(c);
    c->seed = seed;
    c->npaths = npaths;
    c->use_pm = 1;
    for (int p = 0; p < npaths; p++) {
        c->path[p].rate[0] = c->path[p].rate[1] = 10 * SIM_MBPS;
        c->path[p].delay[0] = c->path[p].delay[1] = 10 * SIM_MS;
    }
    c->bytes[SIM_C2S] = c->bytes[SIM_S2C] = 4 * SIM_MIB;
}

/* client subflows that came up on path (opened at or after t) */
static int up_on(struct sim *sim, int path, uint64_t t)
{
    int n = 0;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        n += !si.raw && si.path == path && si.up[SIM_CLIENT] && si.t_open >= t;
    }
    return n;
}

static int opened_on(struct sim *sim, int path, uint64_t from, uint64_t to)
{
    int n = 0;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        n += !si.raw && si.path == path && si.t_open >= from && si.t_open < to;
    }
    return n;
}

START_TEST(n_subflows_per_path_on_every_path)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    cfg_paths(&c, 201, 3);
    c.pm.subflows_per_path = 2;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int p = 0; p < 3; p++)
        ck_assert_int_eq(up_on(sim, p, 0), 2);
    ck_assert_int_eq(sim_result(sim)->side[SIM_CLIENT].sf_up, 6);
    sim_free(sim);
}
END_TEST

/* Path 1 is reset at 1 s and refuses connections until 6 s: retries follow
 * 250 ms << n (0.25, 0.5, 1, 2 s...), and its recovery (a link change) makes
 * the waiting slot retry at once instead of at the end of its backoff. */
START_TEST(recreated_with_backoff_and_at_once_on_recovery)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    struct mpt_pm_slot_info si;
    int tries;

    cfg_paths(&c, 202, 2);
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 12 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_fail(sim, 1 * SIM_S, 1);
    sim_at_recover(sim, 6 * SIM_S, 1);
    ck_assert_int_eq(sim_run_until(sim, 6 * SIM_S - 1), SIM_RUNNING);
    /* attempts during the outage: 1.25, 1.77, 2.79, 4.81 s (each refused
     * after one RTT, 20 ms) */
    tries = opened_on(sim, 1, 1 * SIM_S, 6 * SIM_S);
    ck_assert_int_eq(tries, 4);
    ck_assert_int_eq(opened_on(sim, 1, 1 * SIM_S, 1250 * SIM_MS), 0);
    ck_assert_int_eq(opened_on(sim, 1, 1250 * SIM_MS, 1300 * SIM_MS), 1);
    ck_assert_int_eq(opened_on(sim, 1, 1300 * SIM_MS, 1770 * SIM_MS), 0);
    ck_assert_int_eq(opened_on(sim, 1, 1770 * SIM_MS, 1800 * SIM_MS), 1);
    ck_assert_int_eq(mpt_pm_slot_info(sim_pm(sim), 1, &si), 0);
    ck_assert_int_eq(si.state, MPT_PM_WAITING);
    ck_assert_uint_eq(si.failures, 5); /* the reset, then four refusals */
    ck_assert_uint_gt(si.retry_at, 8 * SIM_S); /* next due at 4.83 + 4 s */
    /* the path comes back: retried within 20 ms, up one RTT later */
    ck_assert_int_eq(sim_run_until(sim, 6 * SIM_S + 100 * SIM_MS), SIM_RUNNING);
    ck_assert_int_eq(up_on(sim, 1, 6 * SIM_S), 1);
    ck_assert_int_eq(opened_on(sim, 1, 6 * SIM_S, 6 * SIM_S + 21 * SIM_MS), 1);
    mpt_pm_slot_info(sim_pm(sim), 1, &si);
    ck_assert_uint_eq(si.failures, 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    sim_free(sim);
}
END_TEST

static void advertise(struct sim *sim, void *arg)
{
    static const uint8_t a4[4] = {192, 0, 2, 5};
    (void)arg;
    ck_assert_int_eq(mpt_conn_add_addr(sim_conn(sim, SIM_SERVER), 5, 4, a4, 443, sim_now(sim)), 0);
}

static void withdraw(struct sim *sim, void *arg)
{
    (void)arg;
    ck_assert_int_eq(mpt_conn_remove_addr(sim_conn(sim, SIM_SERVER), 5, sim_now(sim)), 0);
}

/* An advertised address gets a subflow from every path; withdrawn, those
 * subflows close and are not re-created. */
START_TEST(joins_follow_add_addr_and_remove_addr)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    int closed = 0;

    cfg_paths(&c, 203, 2);
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 8 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_call(sim, 500 * SIM_MS, advertise, NULL);
    sim_at_call(sim, 1500 * SIM_MS, withdraw, NULL);
    ck_assert_int_eq(sim_run_until(sim, 1 * SIM_S), SIM_RUNNING);
    for (int p = 0; p < 2; p++)
        ck_assert_int_eq(up_on(sim, p, 500 * SIM_MS), 1);
    ck_assert_int_eq(mpt_pm_nslots(sim_pm(sim)), 4);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        if (si.t_open >= 500 * SIM_MS && si.down[SIM_CLIENT])
            closed++;
    }
    ck_assert_int_eq(closed, 2);
    /* nothing was opened again to the withdrawn address */
    ck_assert_int_eq(opened_on(sim, 0, 1500 * SIM_MS, UINT64_MAX) +
                         opened_on(sim, 1, 1500 * SIM_MS, UINT64_MAX),
                     0);
    for (int i = 2; i < 4; i++) {
        struct mpt_pm_slot_info si;
        mpt_pm_slot_info(sim_pm(sim), i, &si);
        ck_assert_int_eq(si.state, MPT_PM_DEAD);
    }
    sim_free(sim);
}
END_TEST

/* More slots than the engine allows subflows: the extra one is refused and
 * retried with backoff, the transfer is unaffected. */
START_TEST(subflow_limit)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    struct mpt_pm_slot_info si;
    int waiting = 0;

    cfg_paths(&c, 204, 2);
    c.pm.subflows_per_path = 2;
    c.settings[SIM_CLIENT].max_subflows = 3;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    ck_assert_int_eq(sim_result(sim)->side[SIM_CLIENT].sf_up, 3);
    for (int i = 0; i < mpt_pm_nslots(sim_pm(sim)); i++) {
        mpt_pm_slot_info(sim_pm(sim), i, &si);
        if (si.state == MPT_PM_WAITING) {
            waiting++;
            ck_assert_uint_ge(si.failures, 2);
        }
    }
    ck_assert_int_eq(waiting, 1);
    sim_free(sim);
}
END_TEST

/* The one backoff rule, which the I/O layer's retries use too (paths.c):
 * doubling from the minimum, capped, and capped too when the shift would
 * overflow (so a huge minimum never wraps to a retry at once). */
START_TEST(backoff_doubles_and_is_capped)
{
    const uint64_t ms = MPT_NS_PER_MS;

    ck_assert_uint_eq(mpt_pm_backoff(250 * ms, 30000 * ms, 0), 250 * ms);
    ck_assert_uint_eq(mpt_pm_backoff(250 * ms, 30000 * ms, 1), 500 * ms);
    ck_assert_uint_eq(mpt_pm_backoff(250 * ms, 30000 * ms, 6), 16000 * ms);
    ck_assert_uint_eq(mpt_pm_backoff(250 * ms, 30000 * ms, 7), 30000 * ms);
    ck_assert_uint_eq(mpt_pm_backoff(250 * ms, 30000 * ms, 1000), 30000 * ms);
    ck_assert_uint_eq(mpt_pm_backoff(1, UINT64_MAX, 1000), 1u << 16); /* shift at most 16 */
    ck_assert_uint_eq(mpt_pm_backoff(1ull << 60, UINT64_MAX, 8), UINT64_MAX);
    ck_assert_uint_eq(mpt_pm_backoff(500 * ms, 100 * ms, 0), 100 * ms);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_pm");
    TCase *tc = tcase_create("sim");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, n_subflows_per_path_on_every_path);
    tcase_add_test(tc, recreated_with_backoff_and_at_once_on_recovery);
    tcase_add_test(tc, joins_follow_add_addr_and_remove_addr);
    tcase_add_test(tc, subflow_limit);
    tcase_add_test(tc, backoff_doubles_and_is_capped);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
