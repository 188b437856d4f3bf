/*
 * Metered paths in the simulator (issue 16, doc/policy.md): a byte budget
 * spent moves the path to BACKUP (the peer learns it from PRIO) and raises
 * MPT_EV_BUDGET_SPENT exactly once; the path carries at most its budget; the
 * transfer completes byte-exact; a budget set again at run time counts anew;
 * a rate cap holds within 5% over 10 s of simulated time.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpt/error.h>

#include "core/conn.h"
#include "sim.h"

/* path 0: free, 10 Mbit/s; path 1: metered, 20 Mbit/s; both 20 ms RTT */
static void cfg2(struct sim_cfg *c, uint64_t seed)
{
    sim_cfg_default(c);
    c->seed = seed;
    c->npaths = 2;
    for (int p = 0; p < 2; p++) {
        c->path[p].rate[0] = c->path[p].rate[1] = (p ? 20 : 10) * SIM_MBPS;
        c->path[p].delay[0] = c->path[p].delay[1] = 10 * SIM_MS;
    }
}

/* side's engine subflow on path (the live one, else the last one), or -1 */
static int sf_on(struct sim *sim, int side, int path)
{
    int last = -1;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        int sf;
        sim_sock_info(sim, k, &si);
        sf = side == SIM_CLIENT ? si.client_sf : si.server_sf;
        if (si.path != path || si.raw || sf < 0)
            continue;
        if (!si.down[side])
            return sf;
        last = sf;
    }
    return last;
}

static struct mpt_sf_stats stats_on(struct sim *sim, int side, int path)
{
    struct mpt_sf_stats st;
    int sf = sf_on(sim, side, path);
    ck_assert_int_ge(sf, 0);
    ck_assert_int_eq(mpt_conn_sf_get_stats(sim_conn(sim, side), sf, &st), 0);
    return st;
}

static uint64_t g_budget, g_sent_at_set[2];
static int g_sides; /* bit per side that gets the budget */

static void set_budget(struct sim *sim, void *arg)
{
    (void)arg;
    for (int side = 0; side < 2; side++) {
        int sf = sf_on(sim, side, 1);
        if (!(g_sides & (1 << side)))
            continue;
        ck_assert_int_ge(sf, 0);
        g_sent_at_set[side] = stats_on(sim, side, 1).bytes_sent;
        ck_assert_int_eq(mpt_conn_sf_set_budget(sim_conn(sim, side), sf, g_budget, 0, sim_now(sim)),
                         0);
    }
}

/* The client meters path 1 (4 MiB) at 500 ms while 24 MiB go each way: it
 * hands path 1 at most 4 MiB more, raises the event once, the server learns
 * BACKUP from PRIO (and so stops using it too), and everything arrives. */
START_TEST(budget_spent_moves_path_to_backup)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    struct mpt_sf_stats st;

    cfg2(&c, 1651);
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 24 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    g_budget = 4 * SIM_MIB;
    g_sides = 1 << SIM_CLIENT;
    sim_at_call(sim, 500 * SIM_MS, set_budget, NULL);
    ck_assert_int_eq(sim_run_until(sim, 6 * SIM_S), SIM_RUNNING);
    st = stats_on(sim, SIM_CLIENT, 1);
    ck_assert_int_eq(st.budget_spent, 1);
    ck_assert_int_eq(st.prio, MPT_PRIO_BACKUP);
    ck_assert_uint_eq(st.budget, 4 * SIM_MIB);
    ck_assert_int_eq(stats_on(sim, SIM_SERVER, 1).prio, MPT_PRIO_BACKUP); /* PRIO arrived */
    uint64_t srv_at = stats_on(sim, SIM_SERVER, 1).bytes_sent;
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    /* the subflows are closed now, but their stats stay readable */
    st = stats_on(sim, SIM_CLIENT, 1);
    printf("metered path: %" PRIu64 " bytes after the budget was set (budget %" PRIu64 ")\n",
           st.bytes_sent - g_sent_at_set[SIM_CLIENT], g_budget);
    ck_assert_uint_le(st.bytes_sent - g_sent_at_set[SIM_CLIENT], g_budget);
    ck_assert_uint_eq(st.budget_used, st.bytes_sent - g_sent_at_set[SIM_CLIENT]);
    ck_assert_uint_ge(st.budget_used, g_budget); /* it was spent, not just approached */
    ck_assert_uint_eq(stats_on(sim, SIM_SERVER, 1).bytes_sent, srv_at);
    ck_assert_int_eq(sim_result(sim)->side[SIM_CLIENT].budget_spent, 1);
    ck_assert_int_eq(sim_result(sim)->side[SIM_SERVER].budget_spent, 0);
    sim_free(sim);
}
END_TEST

/* The server meters its subflow on path 1 for the download: the same bound
 * on that side; the client's data may use both paths (it has no budget). */
START_TEST(server_budget_bounds_the_download)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    struct mpt_sf_stats st;

    cfg2(&c, 1652);
    c.bytes[SIM_C2S] = SIM_MIB;
    c.bytes[SIM_S2C] = 24 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    g_budget = 3 * SIM_MIB + 12345;
    g_sides = 1 << SIM_SERVER;
    sim_at_call(sim, 500 * SIM_MS, set_budget, NULL);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    st = stats_on(sim, SIM_SERVER, 1);
    ck_assert_int_eq(st.budget_spent, 1);
    ck_assert_uint_le(st.bytes_sent - g_sent_at_set[SIM_SERVER], g_budget);
    ck_assert_uint_ge(st.bytes_sent - g_sent_at_set[SIM_SERVER], g_budget);
    ck_assert_int_eq(sim_result(sim)->side[SIM_SERVER].budget_spent, 1);
    sim_free(sim);
}
END_TEST

/* Run time: after the first 2 MiB budget is spent, the application grants
 * 3 MiB more and makes the path primary again: it carries data again, at
 * most 3 MiB, and the event comes once more (twice in all). */
static uint64_t g_sent_at_regrant;
static void regrant(struct sim *sim, void *arg)
{
    int sf = sf_on(sim, SIM_CLIENT, 1);
    struct mpt_conn *cc = sim_conn(sim, SIM_CLIENT);
    (void)arg;
    ck_assert_int_ge(sf, 0);
    ck_assert_int_eq(sim_result(sim)->side[SIM_CLIENT].budget_spent, 1);
    g_sent_at_regrant = stats_on(sim, SIM_CLIENT, 1).bytes_sent;
    ck_assert_int_eq(mpt_conn_sf_set_budget(cc, sf, 3 * SIM_MIB, 0, sim_now(sim)), 0);
    ck_assert_int_eq(mpt_conn_sf_set_prio(cc, sf, MPT_PRIO_PRIMARY, sim_now(sim)), 0);
}

START_TEST(budget_changed_at_run_time)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    struct mpt_sf_stats st;

    cfg2(&c, 1653);
    c.bytes[SIM_C2S] = 32 * SIM_MIB;
    c.bytes[SIM_S2C] = SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    g_budget = 2 * SIM_MIB;
    g_sides = 1 << SIM_CLIENT;
    sim_at_call(sim, 500 * SIM_MS, set_budget, NULL);
    sim_at_call(sim, 4 * SIM_S, regrant, NULL);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    st = stats_on(sim, SIM_CLIENT, 1);
    ck_assert_uint_le(g_sent_at_regrant - g_sent_at_set[SIM_CLIENT], 2 * SIM_MIB);
    ck_assert_uint_le(st.bytes_sent - g_sent_at_regrant, 3 * SIM_MIB);
    ck_assert_uint_ge(st.bytes_sent - g_sent_at_regrant, 3 * SIM_MIB); /* used again */
    ck_assert_int_eq(sim_result(sim)->side[SIM_CLIENT].budget_spent, 2);
    /* bad input */
    ck_assert_int_eq(mpt_conn_sf_set_budget(sim_conn(sim, SIM_CLIENT), 99, 1, 0, sim_now(sim)),
                     MPT_EINVAL);
    ck_assert_int_eq(mpt_conn_sf_set_rate(sim_conn(sim, SIM_CLIENT), -1, 1, sim_now(sim)),
                     MPT_EINVAL);
    sim_free(sim);
}
END_TEST

/* A 1 MB/s cap on the 20 Mbit/s path (which could carry 2.5 MB/s) during a
 * bulk upload: over the 10 s from 1 s to 11 s it carries 10 MB +-5%. */
static void set_rate(struct sim *sim, void *arg)
{
    int sf = sf_on(sim, SIM_CLIENT, 1);
    (void)arg;
    ck_assert_int_ge(sf, 0);
    ck_assert_int_eq(mpt_conn_sf_set_rate(sim_conn(sim, SIM_CLIENT), sf, 1000000, sim_now(sim)), 0);
}

START_TEST(rate_cap_holds)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    uint64_t a, b;

    cfg2(&c, 1654);
    c.bytes[SIM_C2S] = 40 * SIM_MIB;
    c.bytes[SIM_S2C] = SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_call(sim, 500 * SIM_MS, set_rate, NULL);
    ck_assert_int_eq(sim_run_until(sim, SIM_S), SIM_RUNNING);
    a = stats_on(sim, SIM_CLIENT, 1).bytes_sent;
    ck_assert_int_eq(sim_run_until(sim, 11 * SIM_S), SIM_RUNNING);
    b = stats_on(sim, SIM_CLIENT, 1).bytes_sent;
    printf("rate cap 1000000 B/s: %.4f MB/s over 10 s\n", (double)(b - a) / 10e6);
    ck_assert_uint_le(b - a, 10500000);
    ck_assert_uint_ge(b - a, 9500000);
    ck_assert_uint_eq(stats_on(sim, SIM_CLIENT, 1).rate, 1000000);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_budget");
    TCase *tc = tcase_create("metered");
    int nf;
    SRunner *sr;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, budget_spent_moves_path_to_backup);
    tcase_add_test(tc, server_budget_bounds_the_download);
    tcase_add_test(tc, budget_changed_at_run_time);
    tcase_add_test(tc, rate_cap_holds);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
