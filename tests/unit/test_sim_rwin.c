/*
 * Buffer auto-tuning in the simulator (core/autotune.c, doc/design.md): the
 * receive window grows from rcvbuf_initial to what a long fat path needs
 * and beats a fixed window of the starting size; it does not grow on a slow
 * path or for an application that does not read; an idle connection frees
 * its buffers and carries on byte-exact when data comes again.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpt/error.h>

#include "core/conn.h"
#include "sim.h"

#define MIB ((size_t)1 << 20)

static void cfg1(struct sim_cfg *c, uint64_t seed, uint64_t rate, uint64_t delay)
{
    sim_cfg_default(c);
    c->seed = seed;
    c->npaths = 1;
    c->path[0].rate[0] = c->path[0].rate[1] = rate;
    c->path[0].delay[0] = c->path[0].delay[1] = delay;
}

static struct mpt_conn_stats stats(struct sim *sim, int side)
{
    struct mpt_conn_stats st;
    mpt_conn_get_stats(sim_conn(sim, side), &st);
    return st;
}

/* Mbit/s the client -> server direction got from first write to last read. */
static double c2s_mbps(const struct sim *sim)
{
    const struct sim_dir_result *d = &sim_result(sim)->dir[SIM_C2S];
    return (double)d->delivered * 8 / ((double)(d->t_last_read - d->t_first_write) / 1e3);
}

/* One 200 Mbit/s path with 40 ms each way: the bandwidth-delay product is
 * 2 MB, so a fixed 1 MiB window caps the connection at about 1 MiB per
 * 80 ms (~105 Mbit/s); auto-tuning grows past it. 48 MiB one way. */
static double long_fat(size_t rcvbuf, size_t initial, struct mpt_conn_stats *srv)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    double mbps;

    cfg1(&c, 401, 200 * SIM_MBPS, 40 * SIM_MS);
    c.sndbuf = 8 * MIB; /* the simulated sockets must not be the limit */
    c.bytes[SIM_C2S] = 48 * MIB;
    c.bytes[SIM_S2C] = 64 * 1024;
    for (int s = 0; s < 2; s++) {
        c.settings[s].rcvbuf = rcvbuf;
        c.settings[s].rcvbuf_initial = initial;
    }
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    ck_assert_int_eq(sim_result(sim)->side[SIM_SERVER].mem_violation, 0);
    *srv = sim_result(sim)->side[SIM_SERVER].stats;
    mbps = c2s_mbps(sim);
    sim_free(sim);
    return mbps;
}

START_TEST(window_grows_on_a_long_fat_path)
{
    struct mpt_conn_stats fixed, tuned;
    double f = long_fat(1 * MIB, 0, &fixed), t = long_fat(16 * MIB, 1 * MIB, &tuned);

    fprintf(stderr, "long fat path: fixed 1 MiB %.1f Mbit/s (window %zu), auto-tuned %.1f Mbit/s "
                    "(window %zu, grown %" PRIu64 " times, peak memory %zu)\n",
            f, fixed.rcv_window, t, tuned.rcv_window, tuned.rwin_grown, tuned.rcv_mem_peak);
    ck_assert_uint_eq(fixed.rwin_grown, 0);
    ck_assert_uint_eq(fixed.rcv_window, 1 * MIB);
    ck_assert_uint_ge(tuned.rwin_grown, 1);
    ck_assert_uint_gt(tuned.rcv_window, 2 * MIB);
    ck_assert_uint_le(tuned.rcv_window, 16 * MIB);
    ck_assert_msg(t > 1.2 * f, "auto-tuned %.1f Mbit/s is not ahead of fixed %.1f", t, f);
    ck_assert_msg(t > 0.75 * 200, "auto-tuned %.1f Mbit/s of 200", t);
}
END_TEST

/* 4 Mbit/s at 10 ms: 2 x rate x RTT is a few KiB, the window stays where it started. */
START_TEST(window_stays_small_on_a_slow_path)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    struct mpt_conn_stats st;

    cfg1(&c, 402, 4 * SIM_MBPS, 5 * SIM_MS);
    c.bytes[SIM_C2S] = 4 * MIB;
    c.bytes[SIM_S2C] = 4 * MIB;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int s = 0; s < 2; s++) {
        st = sim_result(sim)->side[s].stats;
        ck_assert_uint_eq(st.rwin_grown, 0);
        ck_assert_uint_eq(st.rcv_window, 1 * MIB); /* the default start */
        ck_assert_uint_le(st.rcv_mem_peak, 1 * MIB);
    }
    sim_free(sim);
}
END_TEST

/* The server application stops reading from 300 ms to 5.3 s: the window is
 * full but nothing is consumed, so it does not grow, and memory stays there. */
static struct mpt_conn_stats g_at[2];
static void snap1(struct sim *sim, void *arg)
{
    (void)arg;
    g_at[0] = stats(sim, SIM_SERVER);
}
static void snap2(struct sim *sim, void *arg)
{
    (void)arg;
    g_at[1] = stats(sim, SIM_SERVER);
}

START_TEST(window_does_not_grow_for_a_reader_that_does_not_read)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    cfg1(&c, 403, 50 * SIM_MBPS, 10 * SIM_MS);
    c.bytes[SIM_C2S] = 32 * MIB;
    c.bytes[SIM_S2C] = 64 * 1024;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_read_pause(sim, 300 * SIM_MS, SIM_SERVER, 5 * SIM_S);
    sim_at_call(sim, 1 * SIM_S, snap1, NULL);
    sim_at_call(sim, 5 * SIM_S, snap2, NULL);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    ck_assert_uint_eq(g_at[1].rwin_grown, g_at[0].rwin_grown);
    ck_assert_uint_eq(g_at[1].rcv_window, g_at[0].rcv_window);
    ck_assert_uint_le(g_at[1].rcv_mem, g_at[1].rcv_window);
    ck_assert_uint_gt(g_at[1].rcv_mem, 0); /* the window is full: the sender did not stop early */
    sim_free(sim);
}
END_TEST

/* Messages of 3 MiB every 3 s each way: between them the connection is idle
 * for over a second, so both ends free both buffers; each next message
 * allocates them again and arrives byte-exact (sim_check_complete). */
static struct mpt_conn_stats g_idle[2][2]; /* [snapshot][side] */
static void idle_snap(struct sim *sim, void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int s = 0; s < 2; s++)
        g_idle[k][s] = stats(sim, s);
}

START_TEST(idle_connection_frees_its_buffers)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];

    cfg1(&c, 404, 40 * SIM_MBPS, 10 * SIM_MS);
    for (int d = 0; d < 2; d++) {
        c.bytes[d] = 9 * MIB;
        c.msg_size[d] = 3 * MIB;
        c.msg_interval[d] = 3 * SIM_S;
        c.msg_plain[d] = 1;
    }
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_call(sim, 2900 * SIM_MS, idle_snap, (void *)(intptr_t)0);
    sim_at_call(sim, 5900 * SIM_MS, idle_snap, (void *)(intptr_t)1);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    for (int k = 0; k < 2; k++) {
        for (int s = 0; s < 2; s++) {
            const struct mpt_conn_stats *st = &g_idle[k][s];
            ck_assert_msg(st->rcv_allocated == 0 && st->snd_allocated == 0,
                          "snapshot %d side %d: %zu receive, %zu send bytes still allocated", k,
                          s, st->rcv_allocated, st->snd_allocated);
            ck_assert_uint_eq(st->rcv_mem, 0);
        }
    }
    for (int s = 0; s < 2; s++) {
        /* at least the receive and send buffer after each of the first two messages */
        ck_assert_uint_ge(sim_result(sim)->side[s].stats.bufs_freed, 4);
        ck_assert_uint_ge(g_idle[1][s].bufs_freed, g_idle[0][s].bufs_freed + 2);
    }
    sim_free(sim);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sim_rwin");
    TCase *t = tcase_create("sim");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, window_grows_on_a_long_fat_path);
    tcase_add_test(t, window_stays_small_on_a_slow_path);
    tcase_add_test(t, window_does_not_grow_for_a_reader_that_does_not_read);
    tcase_add_test(t, idle_connection_frees_its_buffers);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int nf;
    srunner_run_all(sr, CK_NORMAL);
    nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
