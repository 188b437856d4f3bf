/*
 * Byte-exact bulk transfer through the simulator: 100 MiB in each direction
 * at once over 1, 2 and 4 simulated paths with different rates and delays.
 * Both readers hash what they read and compare with the writers' hashes.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim.h"

#define BYTES (100 * SIM_MIB)

static void set_path(struct sim_cfg *cfg, int p, uint64_t up_mbps, uint64_t down_mbps,
                     uint64_t up_ms, uint64_t down_ms)
{
    cfg->path[p].rate[SIM_C2S] = up_mbps * SIM_MBPS;
    cfg->path[p].rate[SIM_S2C] = down_mbps * SIM_MBPS;
    cfg->path[p].delay[SIM_C2S] = up_ms * SIM_MS;
    cfg->path[p].delay[SIM_S2C] = down_ms * SIM_MS;
}

static void run_transfer(struct sim_cfg *cfg)
{
    struct sim *sim;
    const struct sim_result *r;
    char buf[1024];
    uint64_t per_path[SIM_MAX_PATHS][2] = { { 0 } };

    cfg->bytes[SIM_C2S] = BYTES;
    cfg->bytes[SIM_S2C] = BYTES;
    ck_assert_int_eq(sim_new(cfg, &sim), 0);
    sim_run(sim);
    r = sim_result(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%d paths: %s", cfg->npaths, buf);
    ck_assert_uint_eq(r->dir[SIM_C2S].hash_sent, r->dir[SIM_C2S].hash_recv);
    ck_assert_uint_eq(r->dir[SIM_S2C].hash_sent, r->dir[SIM_S2C].hash_recv);
    ck_assert_uint_eq(r->dir[SIM_C2S].delivered, BYTES);
    ck_assert_uint_eq(r->dir[SIM_S2C].delivered, BYTES);
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        ck_assert_int_eq(sim_sock_info(sim, k, &si), 0);
        per_path[si.path][0] += si.bytes[0];
        per_path[si.path][1] += si.bytes[1];
    }
    /* every path carries a share of each direction */
    for (int p = 0; p < cfg->npaths; p++) {
        for (int d = 0; d < 2; d++)
            ck_assert_msg(per_path[p][d] > BYTES / 100,
                          "%d paths: path %d carried only %" PRIu64 " bytes in direction %d",
                          cfg->npaths, p, per_path[p][d], d);
    }
    /* engine memory stays within its settings */
    for (int s = 0; s < 2; s++)
        ck_assert_uint_le(r->side[s].rcv_mem_peak, cfg->settings[s].rcvbuf);
    sim_free(sim);
}

START_TEST(one_path)
{
    struct sim_cfg cfg;
    sim_cfg_default(&cfg);
    cfg.seed = 101;
    cfg.npaths = 1;
    set_path(&cfg, 0, 100, 80, 10, 12);
    run_transfer(&cfg);
}
END_TEST

START_TEST(two_paths)
{
    struct sim_cfg cfg;
    sim_cfg_default(&cfg);
    cfg.seed = 102;
    cfg.npaths = 2;
    set_path(&cfg, 0, 50, 40, 5, 5);
    set_path(&cfg, 1, 20, 30, 30, 25);
    run_transfer(&cfg);
}
END_TEST

START_TEST(four_paths)
{
    struct sim_cfg cfg;
    sim_cfg_default(&cfg);
    cfg.seed = 104;
    cfg.npaths = 4;
    set_path(&cfg, 0, 40, 30, 10, 10);
    set_path(&cfg, 1, 20, 25, 25, 20);
    set_path(&cfg, 2, 10, 10, 50, 60);
    set_path(&cfg, 3, 30, 45, 3, 4);
    run_transfer(&cfg);
}
END_TEST

/* Sockets that take only a few dozen bytes at a time make the engine send
 * tiny DATA frames; over six paths with very different delays the receiver's
 * out-of-order ranges pile up. Whatever the receiver does with them (keep or
 * drop), the transfer must complete. */
START_TEST(tiny_frames_over_six_paths)
{
    struct sim_cfg cfg;
    struct sim *sim;
    char buf[1024];
    sim_cfg_default(&cfg);
    cfg.seed = 106;
    cfg.npaths = 6;
    for (int p = 0; p < 6; p++)
        set_path(&cfg, p, 10 + 8 * (uint64_t)p, 20, 10 + 50 * (uint64_t)p, 20);
    cfg.notsent_lowat = 64;
    cfg.bytes[SIM_C2S] = 1 * SIM_MIB;
    cfg.settings[SIM_SERVER].rcvbuf = 16 * 1024;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_transfer");
    TCase *tc = tcase_create("bulk");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, one_path);
    tcase_add_test(tc, two_paths);
    tcase_add_test(tc, four_paths);
    tcase_add_test(tc, tiny_frames_over_six_paths);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
