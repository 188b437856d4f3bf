/*
 * Reinjection in the simulator: when a subflow fails (reset) or goes silent
 * (blackhole), the data it had taken but the peer had not acknowledged at
 * connection level is sent again on another subflow, counted in the stats,
 * and the transfer completes byte-exact.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpt/error.h>

#include "core/conn.h"
#include "sim.h"

#define BYTES (8 * SIM_MIB)

static void two_paths(struct sim_cfg *cfg)
{
    sim_cfg_default(cfg);
    cfg->npaths = 2;
    cfg->path[0].rate[0] = cfg->path[0].rate[1] = 20 * SIM_MBPS;
    cfg->path[0].delay[0] = cfg->path[0].delay[1] = 10 * SIM_MS;
    cfg->path[1].rate[0] = cfg->path[1].rate[1] = 10 * SIM_MBPS;
    cfg->path[1].delay[0] = cfg->path[1].delay[1] = 40 * SIM_MS;
    cfg->bytes[SIM_C2S] = BYTES;
    cfg->bytes[SIM_S2C] = BYTES;
}

/* Bytes the sockets on `path` carried in direction dir so far. */
static uint64_t path_bytes(struct sim *sim, int path, int dir)
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

static void assert_reinjected(struct sim *sim)
{
    const struct sim_result *r = sim_result(sim);
    char buf[1024];
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int s = 0; s < 2; s++) {
        ck_assert_msg(r->side[s].stats.reinjections > 0 && r->side[s].stats.bytes_reinjected > 0,
                      "%s: no reinjection counted (reinjections %" PRIu64 ", bytes %" PRIu64 ")",
                      s ? "server" : "client", r->side[s].stats.reinjections,
                      r->side[s].stats.bytes_reinjected);
        ck_assert_uint_ge(r->side[s].stats.bytes_sent,
                          BYTES + r->side[s].stats.bytes_reinjected);
    }
}

START_TEST(reset_of_slow_path)
{
    struct sim_cfg cfg;
    struct sim *sim;
    uint64_t before[2];
    two_paths(&cfg);
    cfg.seed = 11;
    cfg.rejoin = 0;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_fail(sim, 1 * SIM_S, 1);
    ck_assert_int_eq(sim_run_until(sim, 1 * SIM_S + 1), SIM_RUNNING);
    before[0] = path_bytes(sim, 1, SIM_C2S);
    before[1] = path_bytes(sim, 1, SIM_S2C);
    ck_assert_uint_gt(before[0], 0);
    ck_assert_uint_gt(before[1], 0);
    sim_run(sim);
    assert_reinjected(sim);
    /* nothing more crossed the failed path: the rest came over path 0 */
    ck_assert_uint_eq(path_bytes(sim, 1, SIM_C2S), before[0]);
    ck_assert_uint_eq(path_bytes(sim, 1, SIM_S2C), before[1]);
    ck_assert_uint_ge(path_bytes(sim, 0, SIM_C2S), BYTES - before[0]);
    sim_free(sim);
}
END_TEST

START_TEST(reset_of_fast_path)
{
    struct sim_cfg cfg;
    struct sim *sim;
    two_paths(&cfg);
    cfg.seed = 12;
    cfg.rejoin = 0;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_fail(sim, 1500 * SIM_MS, 0);
    sim_run(sim);
    assert_reinjected(sim);
    sim_free(sim);
}
END_TEST

START_TEST(blackhole_detected_and_reinjected)
{
    struct sim_cfg cfg;
    struct sim *sim;
    const struct sim_result *r;
    uint64_t limit;
    two_paths(&cfg);
    cfg.seed = 13;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_stall(sim, 1 * SIM_S, 0); /* never recovers */
    sim_run(sim);
    r = sim_result(sim);
    assert_reinjected(sim);
    for (int s = 0; s < 2; s++) {
        ck_assert_msg(r->side[s].engine_sf_fails > 0, "%s never gave the silent subflow up",
                      s ? "server" : "client");
        ck_assert_uint_le(r->side[s].t_engine_sf_fail,
                          1 * SIM_S + cfg.settings[s].subflow_timeout + 500 * SIM_MS);
    }
    /* the readers waited at most for detection plus a few round trips */
    limit = cfg.settings[0].subflow_timeout + 1 * SIM_S;
    for (int d = 0; d < 2; d++)
        ck_assert_msg(r->dir[d].max_gap <= limit, "direction %d: gap of %.3f s (limit %.3f s)", d,
                      (double)r->dir[d].max_gap / 1e9, (double)limit / 1e9);
    sim_free(sim);
}
END_TEST

/* With the kernel's view reported (rto_info, as TCP_INFO gives the I/O
 * layer) a blackhole is failed by both senders within about a second of
 * the outage although their subflow_timeout is 10 s (liveness.c's
 * blackhole rule), and neither reader waits longer than that. */
START_TEST(blackhole_failed_from_rto_info)
{
    struct sim_cfg cfg;
    struct sim *sim;
    const struct sim_result *r;
    char buf[1024];
    two_paths(&cfg);
    cfg.seed = 17;
    cfg.rto_info = 1;
    for (int s = 0; s < 2; s++)
        cfg.settings[s].subflow_timeout = 10 * SIM_S;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_stall(sim, 1 * SIM_S, 0); /* never recovers */
    sim_run(sim);
    r = sim_result(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int s = 0; s < 2; s++) {
        ck_assert_msg(r->side[s].engine_sf_fails > 0, "%s never gave the silent subflow up",
                      s ? "server" : "client");
        ck_assert_msg(r->side[s].t_engine_sf_fail <= 2 * SIM_S, "%s failed it at %.3f s",
                      s ? "server" : "client", (double)r->side[s].t_engine_sf_fail / 1e9);
        ck_assert_uint_ge(r->side[s].stats.sf_blackholes, 1);
    }
    printf("blackhole (rto_info): engine failed it at %.3f / %.3f s (outage at 1 s), "
           "longest read gaps %.3f / %.3f s\n", (double)r->side[0].t_engine_sf_fail / 1e9,
           (double)r->side[1].t_engine_sf_fail / 1e9, (double)r->dir[0].max_gap / 1e9,
           (double)r->dir[1].max_gap / 1e9);
    for (int d = 0; d < 2; d++)
        ck_assert_msg(r->dir[d].max_gap <= 1500 * SIM_MS, "direction %d: gap of %.3f s", d,
                      (double)r->dir[d].max_gap / 1e9);
    sim_free(sim);
}
END_TEST

/* Not a blackhole: a slow path (1 Mbit/s) with a big queue in its socket
 * (512 KiB unsent: 4 s) keeps receiving ACKs although its records are
 * seconds old: with rto_info it is never failed. */
START_TEST(slow_path_with_big_queue_not_failed)
{
    struct sim_cfg cfg;
    struct sim *sim;
    const struct sim_result *r;
    char buf[1024];
    two_paths(&cfg);
    cfg.seed = 19;
    cfg.rto_info = 1;
    cfg.path[1].rate[0] = cfg.path[1].rate[1] = 1 * SIM_MBPS;
    cfg.sndbuf = 1024 * 1024;
    cfg.notsent_lowat = 512 * 1024;
    for (int s = 0; s < 2; s++)
        cfg.settings[s].subflow_timeout = 10 * SIM_S;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_run(sim);
    r = sim_result(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int s = 0; s < 2; s++) {
        ck_assert_msg(r->side[s].engine_sf_fails == 0, "%s failed the slow path",
                      s ? "server" : "client");
        ck_assert_uint_eq(r->side[s].stats.sf_blackholes, 0);
        ck_assert_uint_eq(r->side[s].stats.sf_failed, 0);
        ck_assert_uint_eq(r->side[s].stats.sf_quiet_stalls, 0); /* its ACKs keep coming */
    }
    sim_free(sim);
}
END_TEST

/* The client alone sees path 0 go (a link down reported by rtnetlink):
 * it fails its subflow there while the path swallows everything, RST
 * included. */
static void client_sees_link_down(struct sim *sim, void *arg)
{
    (void)arg;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        sim_sock_info(sim, k, &si);
        if (si.path == 0 && !si.raw && si.client_sf >= 0 && !si.down[SIM_CLIENT])
            mpt_conn_sf_failed(sim_conn(sim, SIM_CLIENT), si.client_sf, MPT_ENETUNREACH,
                               sim_now(sim));
    }
}

/* protocol.md 5.18: the client tells the server on path 1 (SUBFLOW_FAILED),
 * so the server gives path 0 up one path-1 trip later instead of after its
 * own subflow_timeout (2 s), and its data to the client is not held up. */
START_TEST(one_sided_failure_told_to_the_peer)
{
    struct sim_cfg cfg;
    struct sim *sim;
    const struct sim_result *r;
    two_paths(&cfg);
    cfg.seed = 17;
    cfg.rejoin = 0;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_stall(sim, 1 * SIM_S, 0);
    sim_at_call(sim, 1 * SIM_S, client_sees_link_down, NULL);
    sim_run(sim);
    r = sim_result(sim);
    assert_reinjected(sim);
    ck_assert_msg(r->side[SIM_SERVER].engine_sf_fails > 0, "the server never gave path 0 up");
    ck_assert_msg(r->side[SIM_SERVER].t_engine_sf_fail <= 1 * SIM_S + 150 * SIM_MS,
                  "the server gave path 0 up at %.3f s (the failure was at 1 s)",
                  (double)r->side[SIM_SERVER].t_engine_sf_fail / 1e9);
    ck_assert_msg(r->dir[SIM_S2C].max_gap <= 300 * SIM_MS, "server to client: gap of %.3f s",
                  (double)r->dir[SIM_S2C].max_gap / 1e9);
    sim_free(sim);
}
END_TEST

START_TEST(rejoined_path_carries_data_again)
{
    struct sim_cfg cfg;
    struct sim *sim;
    uint64_t before;
    two_paths(&cfg);
    cfg.seed = 14;
    cfg.bytes[0] = cfg.bytes[1] = 16 * SIM_MIB;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_fail(sim, 1 * SIM_S, 1);
    sim_at_recover(sim, 2 * SIM_S, 1);
    ck_assert_int_eq(sim_run_until(sim, 2 * SIM_S - 1), SIM_RUNNING);
    before = path_bytes(sim, 1, SIM_C2S);
    sim_run(sim);
    {
        char buf[1024];
        ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    }
    ck_assert_msg(path_bytes(sim, 1, SIM_C2S) > before + SIM_MIB,
                  "the re-joined subflow carried only %" PRIu64 " bytes",
                  path_bytes(sim, 1, SIM_C2S) - before);
    {
        int rejoined = 0;
        for (int k = 2; k < sim_nsocks(sim); k++) {
            struct sim_sock_info si;
            sim_sock_info(sim, k, &si);
            rejoined |= si.path == 1 && si.up[SIM_CLIENT] && si.up[SIM_SERVER];
        }
        ck_assert_msg(rejoined, "no new subflow was established on the recovered path");
    }
    sim_free(sim);
}
END_TEST

/* The receiver's window update travels on the fast subflow, whose path then
 * blackholes: the update is lost with the subflow. The sender, blocked by
 * the old window, must still learn the new one (the ack re-sent elsewhere,
 * or a probe) instead of waiting forever. */
START_TEST(window_update_lost_with_failed_subflow)
{
    struct sim_cfg cfg;
    struct sim *sim;
    char buf[1024];
    sim_cfg_default(&cfg);
    cfg.seed = 15;
    cfg.npaths = 2;
    cfg.path[0].rate[0] = cfg.path[0].rate[1] = 20 * SIM_MBPS;
    cfg.path[0].delay[0] = cfg.path[0].delay[1] = 30 * SIM_MS;
    cfg.path[1].rate[0] = cfg.path[1].rate[1] = 20 * SIM_MBPS;
    cfg.path[1].delay[0] = cfg.path[1].delay[1] = 5 * SIM_MS;
    cfg.bytes[SIM_C2S] = 4 * SIM_MIB;
    cfg.settings[SIM_SERVER].rcvbuf = 256 * 1024;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_read_pause(sim, 0, SIM_SERVER, 2 * SIM_S);
    sim_at_stall(sim, 2 * SIM_S - 5 * SIM_MS, 1); /* for good */
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    sim_free(sim);
}
END_TEST

/*
 * A TCP-splitting proxy on every path (300 ms each way end to end, 5 ms to
 * the proxy, which is all the kernel's srtt sees): DATA to DATA_ACK takes
 * 600 ms, so stall and reinjection decisions must use the end-to-end RTT.
 * With no loss, at most 1.05x the payload may cross the paths each way.
 */
static void long_rtt_split(int npaths, uint64_t seed, int both_ways)
{
    struct sim_cfg cfg;
    struct sim *sim;
    const uint64_t bytes = 1 * SIM_MIB;
    char buf[1024];

    sim_cfg_default(&cfg);
    cfg.seed = seed;
    cfg.npaths = npaths;
    for (int p = 0; p < npaths; p++) {
        cfg.path[p].rate[0] = cfg.path[p].rate[1] = 20 * SIM_MBPS;
        cfg.path[p].delay[0] = cfg.path[p].delay[1] = 300 * SIM_MS;
        cfg.path[p].split_rtt = 5 * SIM_MS;
    }
    cfg.bytes[SIM_C2S] = both_ways ? bytes : 0;
    cfg.bytes[SIM_S2C] = bytes;
    /* a response once every subflow is up: all of it meets the long RTT */
    cfg.write_start[SIM_SERVER] = cfg.write_start[SIM_CLIENT] = 3 * SIM_S;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int dir = both_ways ? 0 : 1; dir < 2; dir++) {
        uint64_t wire = 0;
        for (int p = 0; p < npaths; p++)
            wire += path_bytes(sim, p, dir);
        /* the wire also carries frame headers, acks and pings: count payload */
        const struct sim_side_result *sd = &sim_result(sim)->side[dir == SIM_C2S ? 0 : 1];
        ck_assert_msg(sd->stats.bytes_sent * 100 <= bytes * 105,
                      "%d paths, %s: %" PRIu64 " payload bytes sent for %" PRIu64
                      " (%.2fx; %" PRIu64 " reinjected; %" PRIu64 " bytes on the wire)",
                      npaths, dir == SIM_C2S ? "client->server" : "server->client",
                      sd->stats.bytes_sent, bytes, (double)sd->stats.bytes_sent / (double)bytes,
                      sd->stats.bytes_reinjected, wire);
    }
    sim_free(sim);
}

START_TEST(long_rtt_behind_proxy_one_path)
{
    long_rtt_split(1, 41, 0);
    long_rtt_split(1, 43, 1);
}
END_TEST

START_TEST(long_rtt_behind_proxy_two_paths)
{
    long_rtt_split(2, 42, 0);
    long_rtt_split(2, 44, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_reinject");
    TCase *tc = tcase_create("reinject");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, reset_of_slow_path);
    tcase_add_test(tc, reset_of_fast_path);
    tcase_add_test(tc, blackhole_detected_and_reinjected);
    tcase_add_test(tc, blackhole_failed_from_rto_info);
    tcase_add_test(tc, slow_path_with_big_queue_not_failed);
    tcase_add_test(tc, rejoined_path_carries_data_again);
    tcase_add_test(tc, one_sided_failure_told_to_the_peer);
    tcase_add_test(tc, window_update_lost_with_failed_subflow);
    tcase_add_test(tc, long_rtt_behind_proxy_one_path);
    tcase_add_test(tc, long_rtt_behind_proxy_two_paths);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
