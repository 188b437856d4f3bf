/*
 * Close semantics in the simulator: graceful close in every order (client
 * first, server first, both at the same instant, with and without data in
 * flight) and aborts (either side, both at once, during a transfer, with the
 * paths blackholed so FASTCLOSE cannot arrive). Every run must end without
 * deadlock; graceful runs byte-exact with both ends CLOSED; aborted runs with
 * an exact prefix delivered and a clean error on the peer.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpt/error.h>

#include "sim.h"

static void base(struct sim_cfg *cfg, uint64_t seed)
{
    sim_cfg_default(cfg);
    cfg->seed = seed;
    cfg->npaths = 2;
    cfg->path[0].rate[0] = cfg->path[0].rate[1] = 20 * SIM_MBPS;
    cfg->path[0].delay[0] = cfg->path[0].delay[1] = 10 * SIM_MS;
    cfg->path[1].rate[0] = cfg->path[1].rate[1] = 10 * SIM_MBPS;
    cfg->path[1].delay[0] = cfg->path[1].delay[1] = 40 * SIM_MS;
}

static void run_complete(struct sim_cfg *cfg, void (*script)(struct sim *))
{
    struct sim *sim;
    char buf[1024];
    ck_assert_int_eq(sim_new(cfg, &sim), 0);
    if (script)
        script(sim);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int d = 0; d < 2; d++)
        ck_assert_msg(sim_result(sim)->dir[d].eof, "direction %d: no end of stream", d);
    sim_free(sim);
}

START_TEST(client_closes_first)
{
    struct sim_cfg cfg;
    base(&cfg, 201);
    cfg.bytes[SIM_C2S] = 64 * 1024;
    cfg.bytes[SIM_S2C] = 6 * SIM_MIB;
    run_complete(&cfg, NULL);
}
END_TEST

START_TEST(server_closes_first)
{
    struct sim_cfg cfg;
    base(&cfg, 202);
    cfg.bytes[SIM_C2S] = 6 * SIM_MIB;
    cfg.bytes[SIM_S2C] = 64 * 1024;
    run_complete(&cfg, NULL);
}
END_TEST

START_TEST(no_data_at_all)
{
    struct sim_cfg cfg;
    base(&cfg, 203);
    run_complete(&cfg, NULL);
}
END_TEST

static void shutdown_both(struct sim *sim, void *arg)
{
    const struct sim_cfg *cfg = arg;
    const struct sim_result *r = sim_result(sim);
    for (int s = 0; s < 2; s++) {
        int d = s == SIM_CLIENT ? SIM_C2S : SIM_S2C;
        ck_assert_ptr_nonnull(sim_conn(sim, s));
        ck_assert_uint_eq(r->dir[d].written, cfg->bytes[d]); /* everything written */
        ck_assert_int_eq(mpt_conn_shutdown(sim_conn(sim, s), sim_now(sim)), 0);
    }
}

static struct sim_cfg shut_cfg;

static void at_1s_shutdown_both(struct sim *sim)
{
    sim_at_call(sim, 1 * SIM_S, shutdown_both, &shut_cfg);
}

START_TEST(both_close_at_once_idle)
{
    struct sim_cfg cfg;
    base(&cfg, 204);
    cfg.shutdown[0] = cfg.shutdown[1] = 0;
    shut_cfg = cfg;
    run_complete(&cfg, at_1s_shutdown_both);
}
END_TEST

START_TEST(both_close_at_once_with_data_in_flight)
{
    struct sim_cfg cfg;
    base(&cfg, 205);
    /* fits the 4 MiB send buffers: all written long before t = 1 s, most
     * still in flight when both shut down at the same instant */
    cfg.bytes[0] = cfg.bytes[1] = 3 * SIM_MIB;
    cfg.shutdown[0] = cfg.shutdown[1] = 0;
    shut_cfg = cfg;
    run_complete(&cfg, at_1s_shutdown_both);
}
END_TEST

START_TEST(both_close_by_themselves_symmetric)
{
    struct sim_cfg cfg;
    base(&cfg, 206);
    cfg.npaths = 1;
    cfg.bytes[0] = cfg.bytes[1] = 2 * SIM_MIB;
    run_complete(&cfg, NULL);
}
END_TEST

START_TEST(close_while_a_path_is_down)
{
    struct sim_cfg cfg;
    base(&cfg, 207);
    cfg.bytes[0] = cfg.bytes[1] = 2 * SIM_MIB;
    cfg.rejoin = 0;
    {
        struct sim *sim;
        char buf[1024];
        ck_assert_int_eq(sim_new(&cfg, &sim), 0);
        sim_at_stall(sim, 300 * SIM_MS, 1);
        sim_run(sim);
        ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
        sim_free(sim);
    }
}
END_TEST

/* ---- Aborts ----------------------------------------------------------------- */

static int abort_mask; /* bit 0: client aborts, bit 1: server aborts */

static void do_abort(struct sim *sim, void *arg)
{
    (void)arg;
    for (int s = 0; s < 2; s++) {
        if (abort_mask & (1 << s)) {
            ck_assert_ptr_nonnull(sim_conn(sim, s));
            ck_assert_int_eq(mpt_conn_abort(sim_conn(sim, s), MPT_REASON_APP_ABORT, sim_now(sim)), 0);
        }
    }
}

static void run_abort(uint64_t seed, int mask, int blackhole)
{
    struct sim_cfg cfg;
    struct sim *sim;
    const struct sim_result *r;
    char d[512];
    base(&cfg, seed);
    cfg.bytes[0] = cfg.bytes[1] = 32 * SIM_MIB;
    abort_mask = mask;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    if (blackhole) {
        sim_at_stall(sim, 990 * SIM_MS, 0);
        sim_at_stall(sim, 990 * SIM_MS, 1);
    }
    sim_at_call(sim, 1 * SIM_S, do_abort, NULL);
    sim_run(sim);
    r = sim_result(sim);
    sim_describe(sim, d, sizeof d);
    ck_assert_msg(r->outcome == SIM_FINISHED, "%s", sim_message(sim));
    for (int dir = 0; dir < 2; dir++) {
        ck_assert_msg(r->dir[dir].mismatch < 0, "direction %d corrupted at %" PRId64, dir,
                      r->dir[dir].mismatch);
        ck_assert_uint_le(r->dir[dir].delivered, r->dir[dir].written);
        ck_assert_uint_lt(r->dir[dir].delivered, cfg.bytes[dir]);
    }
    for (int s = 0; s < 2; s++) {
        ck_assert_msg(r->side[s].state == MPT_CONN_ABORTED, "%s not aborted: %s",
                      s ? "server" : "client", d);
        ck_assert_msg(!r->side[s].closed, "%s reported a graceful close after an abort",
                      s ? "server" : "client");
        if (!(mask & (1 << s))) {
            /* the peer learns: FASTCLOSE (ERESET), or its own timeouts when blackholed */
            if (blackhole)
                ck_assert_msg(r->side[s].error == MPT_ETIMEDOUT || r->side[s].error == MPT_ENOPATH ||
                                  r->side[s].error == MPT_ERESET,
                              "%s: error %s after a blackholed abort: %s", s ? "server" : "client",
                              mpt_err_name(r->side[s].error), d);
            else
                ck_assert_msg(r->side[s].error == MPT_ERESET, "%s: error %s, expected MPT_ERESET: %s",
                              s ? "server" : "client", mpt_err_name(r->side[s].error), d);
        }
    }
    sim_free(sim);
}

START_TEST(client_aborts_during_transfer)
{
    run_abort(301, 1, 0);
}
END_TEST

START_TEST(server_aborts_during_transfer)
{
    run_abort(302, 2, 0);
}
END_TEST

START_TEST(both_abort_at_once)
{
    run_abort(303, 3, 0);
}
END_TEST

START_TEST(abort_while_blackholed)
{
    run_abort(304, 1, 1);
}
END_TEST

static void shutdown_then_abort(struct sim *sim, void *arg)
{
    (void)arg;
    ck_assert_int_eq(mpt_conn_shutdown(sim_conn(sim, SIM_CLIENT), sim_now(sim)), 0);
    ck_assert_int_eq(mpt_conn_abort(sim_conn(sim, SIM_CLIENT), MPT_REASON_APP_ABORT, sim_now(sim)), 0);
}

START_TEST(abort_after_shutdown)
{
    struct sim_cfg cfg;
    struct sim *sim;
    const struct sim_result *r;
    base(&cfg, 305);
    cfg.bytes[0] = 0;
    cfg.bytes[1] = 32 * SIM_MIB;
    cfg.shutdown[SIM_CLIENT] = 0;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_call(sim, 1 * SIM_S, shutdown_then_abort, NULL);
    sim_run(sim);
    r = sim_result(sim);
    ck_assert_msg(r->outcome == SIM_FINISHED, "%s", sim_message(sim));
    ck_assert_int_eq(r->side[SIM_CLIENT].state, MPT_CONN_ABORTED);
    ck_assert_int_eq(r->side[SIM_SERVER].state, MPT_CONN_ABORTED);
    ck_assert_int_eq(r->side[SIM_SERVER].error, MPT_ERESET);
    ck_assert_int_lt(r->dir[SIM_S2C].mismatch, 0);
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_close");
    TCase *tg = tcase_create("graceful"), *ta = tcase_create("abort");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tg, 300);
    tcase_set_timeout(ta, 300);
    tcase_add_test(tg, client_closes_first);
    tcase_add_test(tg, server_closes_first);
    tcase_add_test(tg, no_data_at_all);
    tcase_add_test(tg, both_close_at_once_idle);
    tcase_add_test(tg, both_close_at_once_with_data_in_flight);
    tcase_add_test(tg, both_close_by_themselves_symmetric);
    tcase_add_test(tg, close_while_a_path_is_down);
    tcase_add_test(ta, client_aborts_during_transfer);
    tcase_add_test(ta, server_aborts_during_transfer);
    tcase_add_test(ta, both_abort_at_once);
    tcase_add_test(ta, abort_while_blackholed);
    tcase_add_test(ta, abort_after_shutdown);
    suite_add_tcase(s, tg);
    suite_add_tcase(s, ta);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
