/* Coupled congestion control (libmpt/core/cc_*.c) against hand-computed
 * values: RFC 6356's alpha and increase, OLIA's path sets, BALIA's factors,
 * slow start and one reaction per loss episode. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/cc.h"
#include "core/cc_util.h"

#define MS 1000000ull

struct env2 {
    struct mpt_path_view v[3];
    struct cc_win w[3];
    void *st[3];
    struct mpt_cc_env e;
};

/* n subflows with windows in segments and RTTs in ms; mss 1448 */
static void env_make(struct env2 *x, int n, const double *segs, const double *rtt_ms)
{
    memset(x, 0, sizeof *x);
    for (int i = 0; i < n; i++) {
        x->v[i].index = i;
        x->v[i].mss = 1448;
        x->v[i].e2e_rtt = x->v[i].srtt = (uint64_t)(rtt_ms[i] * MS);
        x->w[i].w = segs[i] * 1448;
        x->w[i].ssthresh = 0; /* congestion avoidance */
        x->st[i] = &x->w[i];
    }
    x->e.sf = x->v;
    x->e.sf_state = x->st;
    x->e.n = n;
}

START_TEST(lia_alpha_and_increase_as_rfc6356)
{
    struct env2 x;
    const double segs[2] = {10, 20}, rtt[2] = {100, 200};

    /* alpha = w_total max(w_i/rtt_i^2) / (sum w_i/rtt_i)^2
     *       = 43440 x 1448000 / 289600^2 = 0.75 */
    env_make(&x, 2, segs, rtt);
    ck_assert_double_eq_tol(mpt_cc_lia_alpha(&x.e), 0.75, 1e-9);
    /* one segment acked on subflow 0: min(0.75 x 1448 x 1448 / 43440, 1448 x 1448 / 14480)
     *   = min(36.2, 144.8) = 36.2 bytes */
    mpt_cc_lia.on_ack(&x.e, 0, 1448, 0);
    ck_assert_double_eq_tol(x.w[0].w, 14480 + 36.2, 1e-6);
    /* equal paths: alpha = 1/n, each grows by 1/n of a TCP (here n = 2: 72.4 bytes) */
    {
        const double s2[2] = {10, 10}, r2[2] = {50, 50};
        env_make(&x, 2, s2, r2);
        ck_assert_double_eq_tol(mpt_cc_lia_alpha(&x.e), 0.5, 1e-9);
        mpt_cc_lia.on_ack(&x.e, 1, 1448, 0);
        ck_assert_double_eq_tol(x.w[1].w, 14480 + 0.5 * 1448 * 1448 / 28960, 1e-6);
    }
    /* one subflow alone is TCP: alpha = 1, +mss^2/w */
    {
        const double s1[1] = {10}, r1[1] = {30};
        env_make(&x, 1, s1, r1);
        ck_assert_double_eq_tol(mpt_cc_lia_alpha(&x.e), 1.0, 1e-9);
        mpt_cc_lia.on_ack(&x.e, 0, 1448, 0);
        ck_assert_double_eq_tol(x.w[0].w, 14480 + 144.8, 1e-6);
    }
}
END_TEST

START_TEST(loss_halves_once_per_rtt_and_slow_start)
{
    struct env2 x;
    const double segs[2] = {40, 10}, rtt[2] = {100, 100};

    env_make(&x, 2, segs, rtt);
    mpt_cc_lia.on_loss(&x.e, 0, 1000 * MS);
    ck_assert_double_eq_tol(x.w[0].w, 20 * 1448, 1e-9);
    ck_assert_double_eq_tol(x.w[0].ssthresh, 20 * 1448, 1e-9);
    mpt_cc_lia.on_loss(&x.e, 0, 1050 * MS); /* same episode: within one RTT */
    ck_assert_double_eq_tol(x.w[0].w, 20 * 1448, 1e-9);
    mpt_cc_lia.on_loss(&x.e, 0, 1100 * MS); /* a new one */
    ck_assert_double_eq_tol(x.w[0].w, 10 * 1448, 1e-9);
    for (int k = 0; k < 10; k++)
        mpt_cc_lia.on_loss(&x.e, 1, (2000 + 200 * (uint64_t)k) * MS);
    ck_assert_double_eq_tol(x.w[1].w, 2 * 1448, 1e-9); /* never below two segments */
    /* below ssthresh: slow start, a byte per byte acked */
    mpt_cc_lia.sf_up(&x.e, 1, 0);
    ck_assert_double_eq_tol(x.w[1].w, 10 * 1448, 1e-9);
    mpt_cc_lia.on_ack(&x.e, 1, 5000, 0);
    ck_assert_double_eq_tol(x.w[1].w, 10 * 1448 + 5000, 1e-9);
    ck_assert_uint_eq(mpt_cc_lia.cap(&x.e, 1), (size_t)(10 * 1448 + 5000));
}
END_TEST

START_TEST(olia_path_sets)
{
    struct env2 x;
    const double segs[3] = {30, 10, 10}, rtt[3] = {100, 100, 100};

    env_make(&x, 3, segs, rtt);
    /* path 1 is the best (most bytes between losses), path 0 has the largest window */
    x.w[0].l1 = 1000;
    x.w[1].l1 = 5000;
    x.w[2].l1 = 2000;
    ck_assert_double_eq_tol(mpt_cc_olia_alpha(&x.e, 1), 1.0 / 3, 1e-12);  /* B \ M: 1/(n |B\M|) */
    ck_assert_double_eq_tol(mpt_cc_olia_alpha(&x.e, 0), -1.0 / 3, 1e-12); /* M: -1/(n |M|) */
    ck_assert_double_eq_tol(mpt_cc_olia_alpha(&x.e, 2), 0, 1e-12);
    /* the best path has the largest window too: B \ M empty, all zero */
    x.w[0].l1 = 9000;
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq_tol(mpt_cc_olia_alpha(&x.e, i), 0, 1e-12);
    /* a loss remembers the bytes acked since the previous one */
    mpt_cc_olia.on_loss(&x.e, 1, 500 * MS);
    ck_assert_double_eq_tol(x.w[1].l2, 5000, 1e-9);
    ck_assert_double_eq_tol(x.w[1].l1, 0, 1e-9);
    /* increase: (w_r/rtt^2)/(sum w/rtt)^2 + alpha/w_r per packet, with equal
     * RTTs and alpha 0: w_r / (sum w)^2 packets */
    {
        const double s2[2] = {10, 10}, r2[2] = {100, 100};
        env_make(&x, 2, s2, r2);
        x.w[0].l1 = x.w[1].l1 = 100; /* B = M = both: alpha 0 */
        mpt_cc_olia.on_ack(&x.e, 0, 1448, 0);
        /* (w_r/rtt^2)/(sum w/rtt)^2 = (10/0.01)/(200^2) = 0.025 packets */
        ck_assert_double_eq_tol(x.w[0].w, 14480 + 0.025 * 1448, 1e-6);
    }
}
END_TEST

START_TEST(balia_factors)
{
    struct env2 x;
    const double segs[2] = {20, 10}, rtt[2] = {100, 100};

    env_make(&x, 2, segs, rtt);
    /* x = w / rtt: 200 and 100 packets/s; alpha_r = max x / x_r */
    ck_assert_double_eq_tol(mpt_cc_balia_alpha(&x.e, 0), 1.0, 1e-12);
    ck_assert_double_eq_tol(mpt_cc_balia_alpha(&x.e, 1), 2.0, 1e-12);
    /* increase on path 1 per packet: x/(rtt (sum x)^2) (1+a)/2 (4+a)/5
     *   = 100 / (0.1 x 300^2) x 1.5 x 1.2 = 0.02 packets */
    mpt_cc_balia.on_ack(&x.e, 1, 1448, 0);
    ck_assert_double_eq_tol(x.w[1].w, 14480 + 0.02 * 1448, 1e-6);
    /* decrease: w -= w/2 min(alpha, 1.5): path 1 loses 75 %, path 0 half */
    mpt_cc_balia.on_loss(&x.e, 0, 1000 * MS);
    ck_assert_double_eq_tol(x.w[0].w, 10 * 1448, 1e-6);
    env_make(&x, 2, segs, rtt);
    mpt_cc_balia.on_loss(&x.e, 1, 1000 * MS);
    ck_assert_double_eq_tol(x.w[1].w, 10 * 1448 * 0.25, 1e-6);
}
END_TEST

START_TEST(registry)
{
    ck_assert_ptr_eq(mpt_cc_find("lia"), &mpt_cc_lia);
    ck_assert_ptr_eq(mpt_cc_find("olia"), &mpt_cc_olia);
    ck_assert_ptr_eq(mpt_cc_find("balia"), &mpt_cc_balia);
    for (int i = 0; mpt_cc_registry[i]; i++)
        ck_assert_ptr_nonnull(mpt_cc_registry[i]->name);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cc");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, lia_alpha_and_increase_as_rfc6356);
    tcase_add_test(tc, loss_halves_once_per_rtt_and_slow_start);
    tcase_add_test(tc, olia_path_sets);
    tcase_add_test(tc, balia_factors);
    tcase_add_test(tc, registry);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
