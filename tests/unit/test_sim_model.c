/*
 * The simulator itself (tests/sim/): its helpers, its determinism and its
 * path model, so that failures in the other test_sim_* programs can be
 * trusted to be the engine's.
 */
#include <check.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

START_TEST(stream_is_random_access)
{
    static uint8_t whole[10000], part[10000];
    sim_stream_fill(42, 3, whole, sizeof whole);
    for (size_t off = 0; off < sizeof part;) {
        size_t n = 1 + (off * 7919) % 613;
        if (n > sizeof part - off)
            n = sizeof part - off;
        sim_stream_fill(42, 3 + off, part + off, n);
        off += n;
    }
    ck_assert_mem_eq(whole, part, sizeof whole);
    sim_stream_fill(43, 3, part, sizeof part);
    ck_assert_int_ne(memcmp(whole, part, sizeof whole), 0);
}
END_TEST

START_TEST(hash_ignores_chunking_but_not_order)
{
    static uint8_t buf[5000];
    struct sim_hash a, b;
    sim_stream_fill(1, 0, buf, sizeof buf);
    sim_hash_init(&a);
    sim_hash_update(&a, buf, sizeof buf);
    sim_hash_init(&b);
    for (size_t off = 0; off < sizeof buf;) {
        size_t n = 1 + off % 13;
        if (n > sizeof buf - off)
            n = sizeof buf - off;
        sim_hash_update(&b, buf + off, n);
        off += n;
    }
    ck_assert_uint_eq(sim_hash_final(&a), sim_hash_final(&b));
    /* swapping two 8-byte words changes the hash */
    {
        uint8_t t[8];
        memcpy(t, buf + 800, 8);
        memcpy(buf + 800, buf + 1600, 8);
        memcpy(buf + 1600, t, 8);
    }
    sim_hash_init(&b);
    sim_hash_update(&b, buf, sizeof buf);
    ck_assert_uint_ne(sim_hash_final(&a), sim_hash_final(&b));
    /* one byte more changes it too */
    sim_hash_update(&b, buf, 1);
    ck_assert_uint_ne(sim_hash_final(&a), sim_hash_final(&b));
}
END_TEST

START_TEST(rng_is_seeded)
{
    struct sim_rng a, b, c;
    sim_rng_seed(&a, 7);
    sim_rng_seed(&b, 7);
    sim_rng_seed(&c, 8);
    for (int i = 0; i < 100; i++) {
        uint64_t x = sim_rng_next(&a);
        ck_assert_uint_eq(x, sim_rng_next(&b));
        ck_assert_uint_ne(x, sim_rng_next(&c));
        ck_assert_uint_lt(sim_rng_below(&a, 10), 10);
        (void)sim_rng_below(&b, 10);
    }
}
END_TEST

static void one_run(uint64_t seed, struct sim_result *out)
{
    struct sim_cfg cfg;
    struct sim *sim;
    sim_cfg_default(&cfg);
    cfg.seed = seed;
    cfg.npaths = 2;
    cfg.path[1].rate[0] = 7 * SIM_MBPS;
    cfg.path[1].delay[1] = 33 * SIM_MS;
    cfg.bytes[0] = cfg.bytes[1] = 2 * SIM_MIB;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_stall(sim, 700 * SIM_MS, 1);
    sim_at_recover(sim, 1200 * SIM_MS, 1);
    sim_run(sim);
    *out = *sim_result(sim);
    sim_free(sim);
}

START_TEST(same_seed_same_run)
{
    struct sim_result a, b, c;
    one_run(9, &a);
    one_run(9, &b);
    one_run(10, &c);
    ck_assert_int_eq(a.outcome, SIM_FINISHED);
    ck_assert_uint_eq(a.end_time, b.end_time);
    ck_assert_uint_eq(a.events, b.events);
    ck_assert_uint_eq(a.dir[0].hash_recv, b.dir[0].hash_recv);
    ck_assert_uint_eq(a.dir[1].max_gap, b.dir[1].max_gap);
    ck_assert_uint_eq(a.side[0].stats.acks_sent, b.side[0].stats.acks_sent);
    /* another seed: other keys, other stream contents */
    ck_assert_uint_ne(a.dir[0].hash_recv, c.dir[0].hash_recv);
}
END_TEST

/* One path, one direction: the transfer takes bytes * 8 / rate plus the
 * handshake, within the frame overhead and one round trip. */
START_TEST(path_rate_and_delay)
{
    struct sim_cfg cfg;
    struct sim *sim;
    const struct sim_dir_result *d;
    double ideal, took;
    sim_cfg_default(&cfg);
    cfg.path[0].rate[0] = 8 * SIM_MBPS;
    cfg.path[0].delay[0] = cfg.path[0].delay[1] = 25 * SIM_MS;
    cfg.bytes[0] = 4 * SIM_MIB;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_run(sim);
    d = &sim_result(sim)->dir[0];
    ck_assert_uint_eq(d->delivered, cfg.bytes[0]);
    ideal = (double)cfg.bytes[0] * 8 / 8e6;
    took = (double)(d->t_last_read - d->t_first_write) / 1e9;
    ck_assert_msg(took >= ideal && took <= ideal * 1.01 + 0.1,
                  "4 MiB at 8 Mbit/s took %.3f s (ideal %.3f s)", took, ideal);
    /* the first byte needs the TCP connect (1 RTT), HELLO / HELLO_ACK (1 RTT)
     * and one more one-way delay */
    ck_assert_uint_ge(d->t_first_read, 125 * SIM_MS);
    ck_assert_uint_le(d->t_first_read, 125 * SIM_MS + 20 * SIM_MS);
    sim_free(sim);
}
END_TEST

START_TEST(deadlock_is_detected)
{
    /* every path blackholed for good right after the handshake: the engines
     * must give up (clean error) - the simulator must not hang either way */
    struct sim_cfg cfg;
    struct sim *sim;
    char buf[1024];
    sim_cfg_default(&cfg);
    cfg.bytes[0] = cfg.bytes[1] = 8 * SIM_MIB;
    ck_assert_int_eq(sim_new(&cfg, &sim), 0);
    sim_at_stall(sim, 300 * SIM_MS, 0);
    sim_run(sim);
    ck_assert_msg(sim_check_exact_or_error(sim, buf, sizeof buf), "%s", buf);
    ck_assert_int_eq(sim_result(sim)->side[0].state, MPT_CONN_ABORTED);
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_model");
    TCase *tc = tcase_create("model");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stream_is_random_access);
    tcase_add_test(tc, hash_ignores_chunking_but_not_order);
    tcase_add_test(tc, rng_is_seeded);
    tcase_add_test(tc, same_seed_same_run);
    tcase_add_test(tc, path_rate_and_delay);
    tcase_add_test(tc, deadlock_is_detected);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
