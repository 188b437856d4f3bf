/* Schedulers and the congestion-control hook: the default lowest-RTT
 * scheduler, round-robin, backup handling, and the registries. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/cc.h"
#include "core/sched.h"

static struct mpt_sched_sf mk(int index, int backup, uint64_t srtt, size_t room)
{
    struct mpt_sched_sf s;

    memset(&s, 0, sizeof s);
    s.index = index;
    s.backup = backup;
    s.srtt = srtt;
    s.room = room;
    s.cc_room = SIZE_MAX;
    return s;
}

START_TEST(minrtt_prefers_lowest_rtt_with_room)
{
    struct mpt_sched_sf sf[3] = {mk(0, 0, 40, 1000), mk(3, 0, 10, 1000), mk(5, 0, 20, 1000)};

    ck_assert_int_eq(mpt_sched_minrtt.pick(sf, 3, NULL), 3);
    sf[1].room = 0; /* fastest is full: the next one keeps the pipe busy */
    ck_assert_int_eq(mpt_sched_minrtt.pick(sf, 3, NULL), 5);
    sf[2].cc_room = 0; /* congestion control says no */
    ck_assert_int_eq(mpt_sched_minrtt.pick(sf, 3, NULL), 0);
    sf[0].room = 0;
    ck_assert_int_eq(mpt_sched_minrtt.pick(sf, 3, NULL), -1);
}
END_TEST

START_TEST(minrtt_unknown_rtt_ties_to_lower_index)
{
    struct mpt_sched_sf sf[2] = {mk(1, 0, 0, 1000), mk(2, 0, 0, 1000)};

    ck_assert_int_eq(mpt_sched_minrtt.pick(sf, 2, NULL), 1);
    sf[1].srtt = 5;
    ck_assert_int_eq(mpt_sched_minrtt.pick(sf, 2, NULL), 1);
}
END_TEST

START_TEST(minrtt_backup_only_without_regular)
{
    struct mpt_sched_sf sf[2] = {mk(0, 0, 50, 0), mk(1, 1, 5, 1000)};

    /* a regular subflow exists but is full: wait, do not spill to the backup */
    ck_assert_int_eq(mpt_sched_minrtt.pick(sf, 2, NULL), -1);
    /* the regular one is not usable (not passed): the backup carries data */
    ck_assert_int_eq(mpt_sched_minrtt.pick(sf + 1, 1, NULL), 1);
}
END_TEST

START_TEST(roundrobin_rotates)
{
    struct mpt_sched_sf sf[3] = {mk(0, 0, 1, 1000), mk(1, 0, 1, 1000), mk(2, 1, 1, 1000)};
    void *st = calloc(1, mpt_sched_roundrobin.state_size);

    ck_assert_int_eq(mpt_sched_roundrobin.pick(sf, 3, st), 1);
    ck_assert_int_eq(mpt_sched_roundrobin.pick(sf, 3, st), 0);
    ck_assert_int_eq(mpt_sched_roundrobin.pick(sf, 3, st), 1);
    ck_assert_int_eq(mpt_sched_roundrobin.pick(sf + 2, 1, st), 2); /* only the backup usable */
    free(st);
}
END_TEST

START_TEST(registries)
{
    ck_assert_ptr_eq(mpt_sched_find("minrtt"), &mpt_sched_minrtt);
    ck_assert_ptr_eq(mpt_sched_find("roundrobin"), &mpt_sched_roundrobin);
    ck_assert_ptr_null(mpt_sched_find("nope"));
    ck_assert_ptr_null(mpt_sched_find(NULL));
    ck_assert_ptr_eq(mpt_cc_find("passthrough"), &mpt_cc_passthrough);
    ck_assert_ptr_null(mpt_cc_find("lia"));
    {
        struct mpt_cc_sf s = {0, 1000, 14600, 500};
        ck_assert_uint_eq(mpt_cc_passthrough.cap(NULL, &s, 1, 0), SIZE_MAX);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn_sched");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, minrtt_prefers_lowest_rtt_with_room);
    tcase_add_test(tc, minrtt_unknown_rtt_ties_to_lower_index);
    tcase_add_test(tc, minrtt_backup_only_without_regular);
    tcase_add_test(tc, roundrobin_rotates);
    tcase_add_test(tc, registries);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
