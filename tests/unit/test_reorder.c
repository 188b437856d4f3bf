/* The reorder-delay meter (libmpt/core/reorder.c) against hand-made arrivals. */
#include <check.h>
#include <stdint.h>

#include "core/reorder.h"

#define MS 1000000ull

START_TEST(in_order_is_zero)
{
    struct mpt_reorder r = {0};
    for (uint64_t i = 1; i <= 100; i++)
        mpt_reorder_on_frame(&r, i * 1000, i * 1000, i * MS);
    ck_assert_uint_eq(mpt_reorder_samples(&r), 100);
    ck_assert_uint_eq(mpt_reorder_quantile(&r, 990), 0);
    ck_assert_ptr_null(r.tab); /* never reordered: nothing allocated */
    mpt_reorder_free(&r);
}
END_TEST

/* 98 frames in order and 2 that wait 40 ms and 100 ms: p50 0, p99 near
 * 40 ms (the 99th of 100), max 100 ms. */
START_TEST(waits_are_measured)
{
    struct mpt_reorder r = {0};
    uint64_t nxt = 0;
    for (int i = 0; i < 98; i++) {
        nxt += 1000;
        mpt_reorder_on_frame(&r, nxt, nxt, (uint64_t)i * MS);
    }
    /* A hole [nxt, nxt+1000): two later frames arrive first. */
    mpt_reorder_on_frame(&r, nxt + 3000, nxt, 200 * MS);
    mpt_reorder_on_advance(&r, nxt, 200 * MS);
    mpt_reorder_on_frame(&r, nxt + 2000, nxt, 260 * MS);
    /* The hole's frame arrives at 300 ms: everything is readable. */
    mpt_reorder_on_frame(&r, nxt + 1000, nxt + 3000, 300 * MS);
    mpt_reorder_on_advance(&r, nxt + 3000, 300 * MS);
    ck_assert_uint_eq(mpt_reorder_samples(&r), 101);
    ck_assert_uint_eq(mpt_reorder_quantile(&r, 500), 0);
    uint64_t p99 = mpt_reorder_quantile(&r, 990);
    ck_assert_uint_ge(p99, 40 * MS);
    ck_assert_uint_le(p99, 40 * MS * 119 / 100);
    ck_assert_uint_eq(mpt_reorder_quantile(&r, 1000), 100 * MS);
    ck_assert_uint_eq(r.max_ns, 100 * MS);
    mpt_reorder_free(&r);
}
END_TEST

/* A full table drops samples, it never grows. */
START_TEST(bounded)
{
    struct mpt_reorder r = {0};
    for (uint64_t i = 0; i < MPT_REORDER_SLOTS + 50; i++)
        mpt_reorder_on_frame(&r, 2000 + i * 1000, 0, i * MS);
    ck_assert_uint_eq(r.unsampled, 50);
    mpt_reorder_on_advance(&r, 10000000, 1000 * MS);
    ck_assert_uint_eq(r.tab->n, 0);
    ck_assert_uint_eq(mpt_reorder_samples(&r), MPT_REORDER_SLOTS);
    ck_assert_uint_eq(r.max_ns, 1000 * MS);
    mpt_reorder_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reorder");
    TCase *tc = tcase_create("reorder");
    tcase_add_test(tc, in_order_is_zero);
    tcase_add_test(tc, waits_are_measured);
    tcase_add_test(tc, bounded);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
