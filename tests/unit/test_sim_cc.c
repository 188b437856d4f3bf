/*
 * Coupled congestion control in the simulator with a loss-based TCP model
 * (issue 10): two subflows and one plain TCP flow through one shared 20
 * Mbit/s drop-tail bottleneck. Uncoupled subflows take about two thirds;
 * lia and olia bring libmpt's mean share to 0.45-0.56 (RFC 6356 goal 2), while
 * over two separate bottlenecks every algorithm still gets at least the TCP
 * flow's goodput (goal 1). And a transfer whose scheduler and congestion
 * control change three times mid-stream stays byte-exact.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/cc.h"
#include "core/sched.h"
#include "sim.h"

struct mark {
    int tcp;
    uint64_t mpt0, tcp0;
};

static void mark_now(struct sim *sim, void *arg)
{
    struct mark *m = arg;
    struct sim_sock_info si;
    sim_sock_info(sim, m->tcp, &si);
    m->tcp0 = si.bytes[SIM_C2S];
    m->mpt0 = sim_result(sim)->dir[SIM_C2S].delivered;
}

/* libmpt's share of the bottleneck(s) from 5 s to 25 s; *mpt_mbps, *tcp_mbps.
 * skew_us lengthens every path's delay by that many microseconds. */
static double share(const char *cc, int separate, uint64_t skew_us, double *mpt_mbps,
                    double *tcp_mbps)
{
    struct sim_cfg c;
    struct sim *sim;
    struct mark m;
    struct sim_sock_info si;
    uint64_t mb, tb;

    sim_cfg_default(&c);
    c.seed = 401;
    c.npaths = 2;
    c.tcp_model = 1;
    for (int b = 0; b < 2; b++) {
        c.bottleneck[b].rate = 20 * SIM_MBPS;
        c.bottleneck[b].buffer = 100 * 1024;
    }
    for (int p = 0; p < 2; p++) {
        c.path[p].rate[0] = c.path[p].rate[1] = 100 * SIM_MBPS;
        c.path[p].delay[0] = c.path[p].delay[1] = 10 * SIM_MS + skew_us * 1000;
        c.path[p].bottleneck = separate ? 1 + p : 1;
    }
    for (int s = 0; s < 2; s++)
        c.settings[s].cc = mpt_cc_find(cc);
    ck_assert_ptr_nonnull(c.settings[0].cc);
    c.bytes[SIM_C2S] = 256 * SIM_MIB;
    c.bytes[SIM_S2C] = 0;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    m.tcp = sim_add_tcp_flow(sim, 0, SIM_C2S);
    ck_assert_int_ge(m.tcp, 0);
    sim_at_call(sim, 5 * SIM_S, mark_now, &m);
    ck_assert_int_eq(sim_run_until(sim, 25 * SIM_S), SIM_RUNNING);
    sim_sock_info(sim, m.tcp, &si);
    mb = sim_result(sim)->dir[SIM_C2S].delivered - m.mpt0;
    tb = si.bytes[SIM_C2S] - m.tcp0;
    *mpt_mbps = (double)mb * 8 / 20e6;
    *tcp_mbps = (double)tb * 8 / 20e6;
    sim_free(sim);
    return (double)mb / (double)(mb + tb);
}

/*
 * Through one drop-tail queue without random loss, which flow loses a packet
 * depends on the flows' phase: moving both paths' delay by 37 us moves one
 * run's share by up to 0.07 either way (0.52 to 0.59 for lia). So the share
 * is the mean over several such skews, each printed, not one run's, which
 * any change to when a frame is sent would move by chance.
 */
static const uint64_t skews_us[] = {0, 37, 100, 150, 211, 270, 333, 500};
#define NSKEWS (sizeof skews_us / sizeof skews_us[0])

START_TEST(shared_bottleneck_shares)
{
    const char *algs[] = {"uncoupled", "lia", "olia", "balia"};

    for (int a = 0; a < 4; a++) {
        double sh = 0, lo = 1, hi = 0;
        for (size_t k = 0; k < NSKEWS; k++) {
            double mpt, tcp, one = share(algs[a], 0, skews_us[k], &mpt, &tcp);
            printf("shared 20 Mbit/s bottleneck, %s, +%" PRIu64 " us: libmpt %.2f Mbit/s, "
                   "TCP %.2f Mbit/s, share %.2f\n",
                   algs[a], skews_us[k], mpt, tcp, one);
            ck_assert_double_ge(mpt + tcp, 19.0); /* the bottleneck stays full */
            sh += one / NSKEWS;
            lo = one < lo ? one : lo;
            hi = one > hi ? one : hi;
        }
        printf("shared 20 Mbit/s bottleneck, %s: mean share %.3f (%.2f-%.2f)\n", algs[a], sh,
               lo, hi);
        if (a == 0) {
            ck_assert_double_ge(sh, 0.60); /* two flows against one */
            ck_assert_double_le(sh, 0.72);
        } else if (a < 3) {
            /* RFC 6356 goal 2 is 0.5; olia's mean is 0.55 (lia's 0.53) */
            ck_assert_double_ge(sh, 0.45);
            ck_assert_double_le(sh, 0.56);
        } else {
            ck_assert_double_le(sh, 0.60); /* balia trades a little friendliness */
        }
    }
}
END_TEST

START_TEST(separate_bottlenecks_at_least_tcp)
{
    const char *algs[] = {"uncoupled", "lia", "olia", "balia"};

    for (int a = 0; a < 4; a++) {
        double mpt, tcp;
        share(algs[a], 1, 0, &mpt, &tcp);
        printf("separate bottlenecks, %s: libmpt %.2f Mbit/s, TCP %.2f Mbit/s\n", algs[a], mpt,
               tcp);
        ck_assert_double_ge(mpt, tcp);
        ck_assert_double_ge(mpt, 25.0); /* the free path and a share of the other */
    }
}
END_TEST

static const char *const scheds[] = {"ecf", "redundant", "minrtt"};
static const char *const ccs[] = {"lia", "balia", "olia"};

static void switch_both(struct sim *sim, void *arg)
{
    intptr_t k = (intptr_t)arg;
    for (int s = 0; s < 2; s++) {
        ck_assert_int_eq(mpt_conn_set_sched(sim_conn(sim, s), mpt_sched_find(scheds[k]),
                                            sim_now(sim)), 0);
        ck_assert_int_eq(mpt_conn_set_cc(sim_conn(sim, s), mpt_cc_find(ccs[k]), sim_now(sim)), 0);
    }
}

START_TEST(scheduler_and_cc_switched_three_times_byte_exact)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    sim_cfg_default(&c);
    c.seed = 402;
    c.npaths = 2;
    c.tcp_model = 1;
    c.bottleneck[0].rate = 30 * SIM_MBPS;
    c.bottleneck[0].buffer = 64 * 1024;
    c.path[0].rate[0] = c.path[0].rate[1] = 20 * SIM_MBPS;
    c.path[0].delay[0] = c.path[0].delay[1] = 5 * SIM_MS;
    c.path[0].loss_ppm = 500;
    c.path[1].rate[0] = c.path[1].rate[1] = 20 * SIM_MBPS;
    c.path[1].delay[0] = c.path[1].delay[1] = 25 * SIM_MS;
    c.path[1].bottleneck = 1;
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 16 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    for (intptr_t k = 0; k < 3; k++)
        sim_at_call(sim, (uint64_t)(700 + 900 * k) * SIM_MS, switch_both, (void *)k);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    ck_assert_str_eq(mpt_cc_find("olia")->name, "olia");
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_cc");
    TCase *tc = tcase_create("sim");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, shared_bottleneck_shares);
    tcase_add_test(tc, separate_bottlenecks_at_least_tcp);
    tcase_add_test(tc, scheduler_and_cc_switched_three_times_byte_exact);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
