/*
 * Priority tiers in the simulator (issue 16, doc/policy.md): a secondary
 * path carries nothing while the primary has room and takes over when it is
 * saturated or fails; a NEVER path carries nothing at all; a backup carries
 * nothing while a primary or secondary is usable; tiers set at run time take
 * effect on both sides (the peer learns them from PRIO).
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpt/error.h>

#include "core/conn.h"
#include "sim.h"

static void cfgn(struct sim_cfg *c, uint64_t seed, int npaths, uint64_t mbps)
{
    sim_cfg_default(c);
    c->seed = seed;
    c->npaths = npaths;
    for (int p = 0; p < npaths; p++) {
        c->path[p].rate[0] = c->path[p].rate[1] = mbps * SIM_MBPS;
        c->path[p].delay[0] = c->path[p].delay[1] = 10 * SIM_MS;
    }
}

/* DATA payload handed to the subflows on `path` so far by both engines
 * (subflows still attached: call it before any of them fails). */
static uint64_t payload_on(struct sim *sim, int path)
{
    uint64_t n = 0;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        struct mpt_sf_stats st;
        sim_sock_info(sim, k, &si);
        if (si.path != path || si.raw)
            continue;
        if (si.client_sf >= 0 &&
            mpt_conn_sf_get_stats(sim_conn(sim, SIM_CLIENT), si.client_sf, &st) == 0)
            n += st.bytes_sent;
        if (si.server_sf >= 0 &&
            mpt_conn_sf_get_stats(sim_conn(sim, SIM_SERVER), si.server_sf, &st) == 0)
            n += st.bytes_sent;
    }
    return n;
}

/* Wire bytes on `path` in direction dir (control frames included). */
static uint64_t wire_on(struct sim *sim, int path, int dir)
{
    uint64_t n = 0;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        if (si.path == path)
            n += si.bytes[dir];
    }
    return n;
}

/* The server's view of its subflows on `path`: all have tier prio. */
static void server_tier_is(struct sim *sim, int path, int prio)
{
    int seen = 0;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        struct mpt_sf_stats st;
        sim_sock_info(sim, k, &si);
        if (si.path != path || si.server_sf < 0 || si.down[SIM_SERVER])
            continue;
        ck_assert_int_eq(mpt_conn_sf_get_stats(sim_conn(sim, SIM_SERVER), si.server_sf, &st), 0);
        ck_assert_int_eq(st.prio, prio);
        seen++;
    }
    ck_assert_int_gt(seen, 0);
}

/* A 64 KiB receive window keeps the 20 Mbit/s primary below its capacity:
 * it always has room, so the secondary carries no data either way, and the
 * server knows the tier (PRIO after the JOIN). When the primary fails, the
 * secondary carries the rest. */
START_TEST(secondary_idle_while_primary_has_room)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    cfgn(&c, 1601, 2, 20);
    c.path[1].backup = MPT_PRIO_SECONDARY;
    for (int s = 0; s < 2; s++)
        c.settings[s].rcvbuf = 64 * 1024;
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 16 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_fail(sim, 2 * SIM_S, 0);
    ck_assert_int_eq(sim_run_until(sim, 2 * SIM_S - 1), SIM_RUNNING);
    server_tier_is(sim, 1, MPT_PRIO_SECONDARY);
    ck_assert_uint_eq(payload_on(sim, 1), 0);
    ck_assert_uint_gt(payload_on(sim, 0), SIM_MIB); /* the primary did carry data */
    uint64_t w1[2] = {wire_on(sim, 1, SIM_C2S), wire_on(sim, 1, SIM_S2C)};
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int d = 0; d < 2; d++) /* it took over after the failure */
        ck_assert_uint_gt(wire_on(sim, 1, d) - w1[d], SIM_MIB / 2);
    sim_free(sim);
}
END_TEST

/* Bulk over two equal paths with a large window: the primary is saturated
 * (its socket full), so the secondary carries a good share, both ways. */
START_TEST(secondary_helps_a_saturated_primary)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    cfgn(&c, 1602, 2, 10);
    c.path[1].backup = MPT_PRIO_SECONDARY;
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 8 * SIM_MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int d = 0; d < 2; d++) {
        uint64_t a = wire_on(sim, 0, d), b = wire_on(sim, 1, d);
        printf("secondary share, dir %d: %.0f%%\n", d, 100.0 * (double)b / (double)(a + b));
        ck_assert_uint_gt(b * 4, a + b); /* more than a quarter */
    }
    sim_free(sim);
}
END_TEST

/* NEVER: not a byte of data, even with the primary saturated, in either
 * direction; the transfer completes on the primary. */
START_TEST(never_carries_nothing)
{
    struct sim_cfg c;
    struct sim *sim;

    cfgn(&c, 1603, 2, 10);
    c.path[1].backup = MPT_PRIO_NEVER;
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 4 * SIM_MIB;
    c.shutdown[SIM_CLIENT] = c.shutdown[SIM_SERVER] = 0; /* keep the subflows for the check */
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    ck_assert_int_eq(sim_run_until(sim, 8 * SIM_S), SIM_RUNNING);
    server_tier_is(sim, 1, MPT_PRIO_NEVER);
    ck_assert_uint_eq(payload_on(sim, 1), 0);
    ck_assert_uint_ge(payload_on(sim, 0), 8 * SIM_MIB);
    sim_free(sim);
}
END_TEST

/* Primary, secondary, backup: the backup carries nothing while either of the
 * others is usable, and everything once both have failed. */
START_TEST(backup_only_when_nothing_else)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    cfgn(&c, 1604, 3, 10);
    c.path[1].backup = MPT_PRIO_SECONDARY;
    c.path[2].backup = MPT_PRIO_BACKUP;
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 8 * SIM_MIB;
    c.rejoin = 0;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_fail(sim, 1500 * SIM_MS, 0);
    ck_assert_int_eq(sim_run_until(sim, 1500 * SIM_MS - 1), SIM_RUNNING);
    ck_assert_uint_gt(payload_on(sim, 1), 0); /* saturated primary: secondary helps */
    ck_assert_uint_eq(payload_on(sim, 2), 0);
    sim_at_fail(sim, 2500 * SIM_MS, 1);
    ck_assert_int_eq(sim_run_until(sim, 2500 * SIM_MS - 1), SIM_RUNNING);
    ck_assert_uint_eq(payload_on(sim, 2), 0); /* the secondary alone still carries it all */
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int d = 0; d < 2; d++)
        ck_assert_uint_gt(wire_on(sim, 2, d), SIM_MIB);
    sim_free(sim);
}
END_TEST

/* A tier set on a live connection by the client applies on both sides:
 * after path 1 becomes NEVER (at 1 s) neither engine hands it more data. */
static void make_path1_never(struct sim *sim, void *arg)
{
    (void)arg;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        if (si.path == 1 && si.client_sf >= 0 && !si.down[SIM_CLIENT])
            ck_assert_int_eq(mpt_conn_sf_set_prio(sim_conn(sim, SIM_CLIENT), si.client_sf,
                                                  MPT_PRIO_NEVER, sim_now(sim)),
                             0);
    }
}

START_TEST(tier_changed_at_run_time)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    cfgn(&c, 1605, 2, 10);
    c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 8 * SIM_MIB;
    c.shutdown[SIM_CLIENT] = c.shutdown[SIM_SERVER] = 0;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_call(sim, SIM_S, make_path1_never, NULL);
    ck_assert_int_eq(sim_run_until(sim, 1200 * SIM_MS), SIM_RUNNING); /* PRIO arrived */
    server_tier_is(sim, 1, MPT_PRIO_NEVER);
    uint64_t at = payload_on(sim, 1);
    ck_assert_uint_gt(at, 0); /* it was used before */
    ck_assert_int_eq(sim_run_until(sim, 12 * SIM_S), SIM_RUNNING);
    ck_assert_uint_eq(payload_on(sim, 1), at);
    ck_assert_uint_ge(payload_on(sim, 0) + at, 16 * SIM_MIB);
    (void)buf;
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_policy");
    TCase *tc = tcase_create("tiers");
    int nf;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, secondary_idle_while_primary_has_room);
    tcase_add_test(tc, secondary_helps_a_saturated_primary);
    tcase_add_test(tc, never_carries_nothing);
    tcase_add_test(tc, backup_only_when_nothing_else);
    tcase_add_test(tc, tier_changed_at_run_time);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
