/* Schedulers and the congestion-control registry, called directly with
 * hand-made views: the default lowest-RTT scheduler, round-robin, the
 * registries. (Backup filtering is the engine's: see test_sim_sched.) */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/cc.h"
#include "core/sched.h"

static struct mpt_path_view mk(int index, int backup, uint64_t srtt, size_t room)
{
    struct mpt_path_view s;

    memset(&s, 0, sizeof s);
    s.index = index;
    s.backup = backup;
    s.srtt = srtt;
    s.room = room;
    s.cc_room = SIZE_MAX;
    return s;
}

static int pick1(const struct mpt_sched_ops *ops, void *st, const struct mpt_path_view *sf, int n)
{
    struct mpt_sched_view v;
    struct mpt_sched_pick p;

    memset(&v, 0, sizeof v);
    v.sf = sf;
    v.n = n;
    v.chunk = 100;
    memset(&p, 0, sizeof p);
    if (ops->pick(st, &v, &p) != 0)
        return -1;
    ck_assert_int_eq(p.n, 1);
    return p.sf[0];
}

START_TEST(minrtt_prefers_lowest_rtt_with_room)
{
    struct mpt_path_view sf[3] = {mk(0, 0, 40, 1000), mk(3, 0, 10, 1000), mk(5, 0, 20, 1000)};

    ck_assert_int_eq(pick1(&mpt_sched_minrtt, NULL, sf, 3), 3);
    sf[1].room = 0; /* fastest is full: the next one keeps the pipe busy */
    ck_assert_int_eq(pick1(&mpt_sched_minrtt, NULL, sf, 3), 5);
    sf[2].cc_room = 0; /* congestion control says no */
    ck_assert_int_eq(pick1(&mpt_sched_minrtt, NULL, sf, 3), 0);
    sf[0].room = 0;
    ck_assert_int_eq(pick1(&mpt_sched_minrtt, NULL, sf, 3), -1);
}
END_TEST

START_TEST(minrtt_unknown_rtt_ties_to_first)
{
    struct mpt_path_view sf[2] = {mk(1, 0, 0, 1000), mk(2, 0, 0, 1000)};

    ck_assert_int_eq(pick1(&mpt_sched_minrtt, NULL, sf, 2), 1);
    sf[1].srtt = 5;
    ck_assert_int_eq(pick1(&mpt_sched_minrtt, NULL, sf, 2), 1);
}
END_TEST

START_TEST(roundrobin_rotates)
{
    struct mpt_path_view sf[3] = {mk(0, 0, 1, 1000), mk(1, 0, 1, 1000), mk(2, 0, 1, 1000)};
    void *st = calloc(1, mpt_sched_roundrobin.state_size);

    ck_assert_int_eq(pick1(&mpt_sched_roundrobin, st, sf, 3), 1);
    ck_assert_int_eq(pick1(&mpt_sched_roundrobin, st, sf, 3), 2);
    ck_assert_int_eq(pick1(&mpt_sched_roundrobin, st, sf, 3), 0);
    sf[1].room = 0;
    ck_assert_int_eq(pick1(&mpt_sched_roundrobin, st, sf, 3), 2);
    free(st);
}
END_TEST

START_TEST(registries)
{
    ck_assert_ptr_eq(mpt_sched_find("minrtt"), &mpt_sched_minrtt);
    ck_assert_ptr_eq(mpt_sched_find("roundrobin"), &mpt_sched_roundrobin);
    ck_assert_ptr_null(mpt_sched_find("nope"));
    ck_assert_ptr_null(mpt_sched_find(NULL));
    ck_assert_ptr_eq(mpt_cc_find("uncoupled"), &mpt_cc_uncoupled);
    ck_assert_ptr_eq(mpt_cc_find("passthrough"), &mpt_cc_uncoupled); /* the old name */
    ck_assert_ptr_null(mpt_cc_find("nope"));
    ck_assert_ptr_null(mpt_cc_uncoupled.cap);
    for (int i = 0; mpt_sched_registry[i]; i++)
        ck_assert_ptr_nonnull(mpt_sched_registry[i]->pick);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn_sched");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, minrtt_prefers_lowest_rtt_with_room);
    tcase_add_test(tc, minrtt_unknown_rtt_ties_to_first);
    tcase_add_test(tc, roundrobin_rotates);
    tcase_add_test(tc, registries);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
