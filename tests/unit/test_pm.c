/* The sans-I/O path manager (libmpt/core/pm.h): which subflows open, when,
 * and with what backoff. The simulator drives it end to end (test_sim_pm). */
#include <check.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <mpt/error.h>

#include "core/conn.h"
#include "core/pm.h"

#define MS MPT_NS_PER_MS

static int drain(struct mpt_pm *pm, uint64_t now, struct mpt_pm_action *acts, int max)
{
    int n = 0;
    while (n < max && mpt_pm_next(pm, now, &acts[n]))
        n++;
    return n;
}

START_TEST(first_slot_only_until_established)
{
    struct mpt_pm *pm;
    struct mpt_pm_action a[16];

    ck_assert_int_eq(mpt_pm_new(NULL, &pm), 0);
    ck_assert_int_eq(mpt_pm_add_path(pm, 0, 0, 0), 0);
    ck_assert_int_eq(mpt_pm_add_path(pm, 0, 1, 0), 1);
    ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET, 0, 0, NULL), 0);
    ck_assert_int_eq(mpt_pm_nslots(pm), 2);
    ck_assert_int_eq(drain(pm, 0, a, 16), 1);
    ck_assert_int_eq(a[0].slot, 0);
    ck_assert_int_eq(a[0].path, 0);
    ck_assert_int_eq(a[0].addr, 0);
    ck_assert_uint_eq(mpt_pm_next_timeout(pm), MPT_TIME_NEVER); /* the other waits for HELLO */
    mpt_pm_established(pm, 10 * MS);
    ck_assert_int_eq(drain(pm, 10 * MS, a, 16), 1);
    ck_assert_int_eq(a[0].path, 1);
    ck_assert_int_eq(a[0].prio, 1);
    ck_assert_int_eq(drain(pm, 10 * MS, a, 16), 0);
    mpt_pm_free(pm);
}
END_TEST

START_TEST(n_per_path_families_and_advertised_addresses)
{
    struct mpt_pm_settings s;
    struct mpt_pm *pm;
    struct mpt_pm_action a[64];
    int is_new;

    mpt_pm_settings_default(&s);
    s.subflows_per_path = 3;
    ck_assert_int_eq(mpt_pm_new(&s, &pm), 0);
    mpt_pm_add_path(pm, AF_INET, 0, 0);
    mpt_pm_add_path(pm, AF_INET6, 0, 0);
    mpt_pm_add_path(pm, 0, 0, 0);
    ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET, 0, 0, &is_new), 0);
    ck_assert_int_eq(is_new, 1);
    ck_assert_int_eq(mpt_pm_nslots(pm), 6); /* the IPv6 path cannot reach it */
    mpt_pm_established(pm, 0);
    ck_assert_int_eq(drain(pm, 0, a, 64), 6);
    /* the server advertises an IPv6 address: 3 per path that can reach it */
    ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET6, 7, 5 * MS, &is_new), 1);
    ck_assert_int_eq(is_new, 1);
    ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET6, 7, 5 * MS, &is_new), 1); /* again: known */
    ck_assert_int_eq(is_new, 0);
    ck_assert_int_eq(drain(pm, 5 * MS, a, 64), 6);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(a[i].addr, 1);
        ck_assert_int_ne(a[i].path, 0);
    }
    /* REMOVE_ADDR(7): its slots die and are never retried */
    ck_assert_int_eq(mpt_pm_remove_addr(pm, 7), 0);
    ck_assert_int_eq(mpt_pm_remove_addr(pm, 7), MPT_ENOTFOUND);
    for (int i = 0; i < mpt_pm_nslots(pm); i++) {
        struct mpt_pm_slot_info si;
        mpt_pm_slot_info(pm, i, &si);
        if (si.addr == 1) {
            ck_assert_int_eq(si.state, MPT_PM_DEAD);
            mpt_pm_down(pm, i, 10 * MS);
        }
    }
    ck_assert_int_eq(drain(pm, 100000 * MS, a, 64), 0);
    mpt_pm_free(pm);
}
END_TEST

START_TEST(backoff_doubles_to_the_cap_and_resets_when_up)
{
    struct mpt_pm_settings s;
    struct mpt_pm *pm;
    struct mpt_pm_action a;
    uint64_t now = 0, expect = 100 * MS;

    mpt_pm_settings_default(&s);
    s.min_backoff = 100 * MS;
    s.max_backoff = 1000 * MS;
    ck_assert_int_eq(mpt_pm_new(&s, &pm), 0);
    mpt_pm_add_path(pm, 0, 0, 0);
    mpt_pm_add_addr(pm, 0, 0, 0, NULL);
    mpt_pm_established(pm, 0);
    ck_assert_int_eq(mpt_pm_next(pm, now, &a), 1);
    for (int k = 0; k < 8; k++) {
        mpt_pm_down(pm, a.slot, now);
        ck_assert_uint_eq(mpt_pm_next_timeout(pm), now + expect);
        ck_assert_int_eq(mpt_pm_next(pm, now + expect - 1, &a), 0);
        now += expect;
        ck_assert_int_eq(mpt_pm_next(pm, now, &a), 1);
        expect = expect * 2 > 1000 * MS ? 1000 * MS : expect * 2;
    }
    mpt_pm_up(pm, a.slot);
    mpt_pm_down(pm, a.slot, now);
    ck_assert_uint_eq(mpt_pm_next_timeout(pm), now + 100 * MS);
    /* a link change brings a long wait forward */
    for (int k = 0; k < 5; k++) {
        now = mpt_pm_next_timeout(pm);
        ck_assert_int_eq(mpt_pm_next(pm, now, &a), 1);
        mpt_pm_down(pm, a.slot, now);
    }
    ck_assert_uint_gt(mpt_pm_next_timeout(pm), now + 500 * MS);
    mpt_pm_links_changed(pm, now);
    ck_assert_uint_eq(mpt_pm_next_timeout(pm), now + 20 * MS);
    /* stopped: nothing opens any more */
    mpt_pm_stop(pm);
    ck_assert_int_eq(mpt_pm_next(pm, now + 100000 * MS, &a), 0);
    ck_assert_uint_eq(mpt_pm_next_timeout(pm), MPT_TIME_NEVER);
    mpt_pm_free(pm);
}
END_TEST

START_TEST(removed_path_and_limits)
{
    struct mpt_pm *pm;
    struct mpt_pm_action a[8];
    struct mpt_pm_settings s;

    ck_assert_int_eq(mpt_pm_new(NULL, &pm), 0);
    mpt_pm_add_addr(pm, 0, 0, 0, NULL);
    mpt_pm_add_path(pm, 0, 0, 0);
    mpt_pm_add_path(pm, 0, 0, 0);
    mpt_pm_established(pm, 0);
    ck_assert_int_eq(drain(pm, 0, a, 8), 2);
    ck_assert_int_eq(mpt_pm_remove_path(pm, 1), 0);
    ck_assert_int_eq(mpt_pm_remove_path(pm, 1), MPT_ENOTFOUND);
    mpt_pm_down(pm, a[1].slot, 0);
    ck_assert_int_eq(drain(pm, 100000 * MS, a, 8), 0);
    for (int i = 2; i < MPT_PM_MAX_PATHS; i++)
        ck_assert_int_eq(mpt_pm_add_path(pm, 0, 0, 0), i);
    ck_assert_int_eq(mpt_pm_add_path(pm, 0, 0, 0), MPT_ETOOMANY);
    ck_assert_int_eq(mpt_pm_add_addr(pm, 0, 300, 0, NULL), MPT_EINVAL);
    /* Advertised addresses kept (doc/security.md, "Limits"): at most
     * MPT_PM_MAX_ADDRS, the first connected to included; more are refused. */
    for (int i = 1; i < MPT_PM_MAX_ADDRS; i++)
        ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET, i, 0, NULL), i);
    ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET, MPT_PM_MAX_ADDRS, 0, NULL), MPT_ETOOMANY);
    ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET, 200, 0, NULL), MPT_ETOOMANY);
    mpt_pm_free(pm);
    mpt_pm_settings_default(&s);
    s.subflows_per_path = 9;
    ck_assert_int_eq(mpt_pm_new(&s, &pm), MPT_EINVAL);
}
END_TEST

/* Slots beyond MPT_PM_MAX_SLOTS are not made, but the path or address is
 * still added (its index stays that of the caller's table); slot info says
 * whether a dead slot's path or address was removed or the manager stopped. */
START_TEST(slot_limit_and_removed_in_slot_info)
{
    struct mpt_pm_settings s;
    struct mpt_pm *pm;
    struct mpt_pm_slot_info si;
    int is_new;

    mpt_pm_settings_default(&s);
    s.subflows_per_path = 8;
    ck_assert_int_eq(mpt_pm_new(&s, &pm), 0);
    ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET, 0, 0, &is_new), 0);
    for (int p = 0; p < 8; p++)
        ck_assert_int_eq(mpt_pm_add_path(pm, 0, 0, 0), p);
    ck_assert_int_eq(mpt_pm_nslots(pm), 64);
    ck_assert_int_eq(mpt_pm_add_path(pm, 0, 0, 0), 8); /* added, no slot fits */
    ck_assert_int_eq(mpt_pm_add_addr(pm, AF_INET, 3, 0, &is_new), 1);
    ck_assert_int_eq(is_new, 1);
    ck_assert_int_eq(mpt_pm_nslots(pm), 64);
    ck_assert_int_eq(mpt_pm_remove_path(pm, 8), 0);
    ck_assert_int_eq(mpt_pm_remove_path(pm, 1), 0);
    ck_assert_int_eq(mpt_pm_slot_info(pm, 8, &si), 0);
    ck_assert_int_eq(si.path, 1);
    ck_assert_int_eq(si.state, MPT_PM_DEAD);
    ck_assert_int_eq(si.removed, 1);
    ck_assert_int_eq(mpt_pm_slot_info(pm, 0, &si), 0);
    ck_assert_int_eq(si.state, MPT_PM_WAITING);
    ck_assert_int_eq(si.removed, 0);
    mpt_pm_stop(pm);
    ck_assert_int_eq(mpt_pm_slot_info(pm, 0, &si), 0);
    ck_assert_int_eq(si.state, MPT_PM_DEAD);
    ck_assert_int_eq(si.removed, 0);
    mpt_pm_free(pm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pm");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, first_slot_only_until_established);
    tcase_add_test(tc, n_per_path_families_and_advertised_addresses);
    tcase_add_test(tc, backoff_doubles_to_the_cap_and_resets_when_up);
    tcase_add_test(tc, removed_path_and_limits);
    tcase_add_test(tc, slot_limit_and_removed_in_slot_info);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
