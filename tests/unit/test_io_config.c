/*
 * The context itself: its configuration (struct mpt_config -> the engine's
 * settings) and its timers (the heap behind mpt_ctx_timeout). These tests
 * look inside the context (libmpt/ctx.h), so they link the I/O layer
 * statically like the other test_io_* programs.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi.h"
#include "ctx.h"

START_TEST(ack_timeout_maps_to_the_engine)
{
    struct mpt_config cfg;
    struct mpt_ctx *ctx;

    MPT_CONFIG_DEFAULT(&cfg);
    ck_assert_uint_eq(cfg.ack_timeout_ms, 0); /* 0: 4 x subflow_timeout (the engine's rule) */
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_uint_eq(ctx->core.ack_timeout, 0);
    mpt_ctx_free(ctx);

    cfg.ack_timeout_ms = 12345;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &cfg), 0);
    ck_assert_uint_eq(ctx->core.ack_timeout, 12345 * MPT_NS_PER_MS);
    ck_assert_uint_eq(ctx->cfg.ack_timeout_ms, 12345);
    mpt_ctx_free(ctx);
}
END_TEST

/* mpt_config_default owns the I/O layer's defaults and takes the engine's
 * from mpt_core_settings_default; a 0 field means the same default. */
START_TEST(one_source_of_defaults)
{
    struct mpt_config d, zero;
    struct mpt_core_settings core;
    struct mpt_ctx *ctx;

    MPT_CONFIG_DEFAULT(&d);
    mpt_core_settings_default(&core);
    ck_assert_uint_eq(d.size, sizeof d);
    ck_assert_uint_eq(d.max_subflows, core.max_subflows);
    ck_assert_uint_eq(d.sndbuf, core.sndbuf);
    ck_assert_uint_eq(d.rcvbuf, core.rcvbuf);
    ck_assert_uint_eq((uint64_t)d.handshake_timeout_ms * MPT_NS_PER_MS, core.handshake_timeout);
    ck_assert_uint_eq((uint64_t)d.close_timeout_ms * MPT_NS_PER_MS, core.close_timeout);
    ck_assert_uint_eq((uint64_t)d.subflow_timeout_ms * MPT_NS_PER_MS, core.subflow_timeout);
    ck_assert_uint_eq((uint64_t)d.ping_interval_ms * MPT_NS_PER_MS, core.ping_interval);

    memset(&zero, 0, sizeof zero);
    zero.size = sizeof zero;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &zero), 0);
#define SAME_(f) ck_assert_uint_eq(ctx->cfg.f, d.f)
    SAME_(max_subflows);
    SAME_(sndbuf);
    SAME_(rcvbuf);
    SAME_(connect_timeout_ms);
    SAME_(handshake_timeout_ms);
    SAME_(close_timeout_ms);
    SAME_(user_timeout_ms);
    SAME_(subflow_timeout_ms);
    SAME_(ping_interval_ms);
    SAME_(notsent_lowat);
    SAME_(write_budget);
    SAME_(reconnect_min_ms);
    SAME_(reconnect_max_ms);
    SAME_(subflows_per_path);
    SAME_(listen_backlog);
    SAME_(max_connections);
#undef SAME_
    ck_assert_uint_eq(ctx->core.subflow_timeout, core.subflow_timeout);
    mpt_ctx_free(ctx);
}
END_TEST

/* struct mpt_config from programs built against other versions. */
START_TEST(config_sizes)
{
    struct mpt_ctx *ctx;
    union {
        struct mpt_config c;
        uint8_t b[sizeof(struct mpt_config) + 64];
    } u;
    struct mpt_config_0_1 old;

    /* A newer program: mpt_config_default zeroes what it does not know. */
    memset(&u, 0xa5, sizeof u);
    mpt_config_default(&u.c, sizeof u.b);
    ck_assert_uint_eq(u.c.size, sizeof u.b);
    for (size_t i = sizeof u.c; i < sizeof u.b; i++)
        ck_assert_uint_eq(u.b[i], 0);
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &u.c), 0);
    mpt_ctx_free(ctx);
    /* ... and a setting this library cannot honour is refused. */
    u.b[sizeof u.c + 13] = 1;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &u.c), MPT_EINVAL);
    ck_assert_ptr_null(ctx);
    u.b[sizeof u.c + 13] = 0;
    u.c.reserved0 = 7;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &u.c), MPT_EINVAL);
    u.c.reserved0 = 0;
    u.c.size = sizeof u.c + MPT_CONFIG_MAX_TAIL + 1;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &u.c), MPT_EINVAL);

    /* Too small for any layout, or between two known layouts. */
    mpt_config_default(&u.c, sizeof u.c);
    u.c.size = offsetof(struct mpt_config, max_connections);
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &u.c), MPT_EINVAL);
    u.c.size = sizeof u.c - 4;
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, &u.c), MPT_EINVAL);

    /* A 0.1.0 program: its tail padding (where reserved0 now is) may hold
     * anything and is not read; the newer fields take their defaults. */
    memset(&old, 0, sizeof old);
    mpt_config_default((struct mpt_config *)&old, sizeof old);
    ck_assert_uint_eq(old.size, sizeof old);
    old.max_subflows = 4;
    memset((uint8_t *)&old + offsetof(struct mpt_config, reserved0), 0xff,
           sizeof old - offsetof(struct mpt_config, reserved0));
    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, (struct mpt_config *)&old), 0);
    ck_assert_uint_eq(ctx->cfg.max_subflows, 4);
    ck_assert_uint_eq(ctx->cfg.ack_timeout_ms, 0);
    ck_assert_uint_eq(ctx->core.ack_timeout, 0);
    mpt_ctx_free(ctx);
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* What mpt_ctx_timeout must return, the slow way: every started timer. */
static int brute_timeout(struct mpt_ctx *ctx)
{
    double best = -1;
    ev_now_update(ctx->loop);
    struct mpt_tmr *t;
    LIST_FOREACH(t, &ctx->ws.tmrs, link)
        if (ev_is_active(&t->w)) {
            double r = ev_timer_remaining(ctx->loop, &t->w);
            if (best < 0 || r < best)
                best = r;
        }
    return best < 0 ? -1 : best <= 0 ? 0 : (int)(best * 1000.) + 1;
}

/* mpt_ctx_timeout is the earliest timer's remaining time. The clock moves
 * between two readings (by milliseconds under Valgrind), so the answer is
 * checked between a brute-force reading just before it and one just after:
 * the remaining time only shrinks. */
static void check_earliest(struct mpt_ctx *ctx)
{
    int before = brute_timeout(ctx), got = mpt_ctx_timeout(ctx), after = brute_timeout(ctx);

    ck_assert_msg(after <= got && got <= before,
                  "mpt_ctx_timeout %d, brute force %d before and %d after", got, before, after);
}

static int fired;
static void count_fired(EV_P_ ev_timer *w, int revents)
{
    fired++;
}

/* mpt_ctx_timeout with many timers: always the earliest one, through
 * starts, restarts, stops and timers firing, and cheap enough to ask after
 * every call (it walked every timer of every connection). */
#define NTMR 50000
START_TEST(timeout_is_the_earliest_timer_and_cheap)
{
    struct mpt_ctx *ctx;
    static struct mpt_tmr t[NTMR];
    uint64_t x = 88172645463325252ull;

    ck_assert_int_eq(mpt_ctx_new(&ctx, NULL, NULL), 0);
    ck_assert_int_eq(mpt_ctx_timeout(ctx), -1);
    for (int i = 0; i < NTMR; i++) {
        ck_assert_int_eq(mpt_tmr_init(&ctx->ws, &t[i], count_fired), 0);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        mpt_tmr_start(&t[i], 100. + (double)(x % 100000) / 100.); /* 100 .. 1100 s */
    }
    check_earliest(ctx);
    /* Restart and stop a random half, check after each step of a sample. */
    for (int i = 0; i < NTMR; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = (int)(x % NTMR);
        if (x & 1)
            mpt_tmr_stop(&t[k]);
        else
            mpt_tmr_start(&t[k], 50. + (double)(x % 7919));
        if (i % 997 == 0)
            check_earliest(ctx);
    }
    check_earliest(ctx);

    /* Many calls cost next to nothing (the old walk: NTMR timers each).
     * Measured against one walk of every timer, so that a slow machine or
     * Valgrind slows both alike: NTMR calls must cost less than 1000 walks
     * (the old walk per call: NTMR walks). */
    double t0 = now_s();
    for (int i = 0; i < 5; i++)
        (void)brute_timeout(ctx);
    double walk = (now_s() - t0) / 5;
    t0 = now_s();
    long sum = 0;
    for (int i = 0; i < NTMR; i++)
        sum += mpt_ctx_timeout(ctx);
    ck_assert_int_gt(sum, 0);
    double dt = now_s() - t0;
    ck_assert_msg(dt < 1000 * walk, "%d calls of mpt_ctx_timeout with %d timers took %.3f s, "
                  "one walk of them all %.4f s", NTMR, NTMR, dt, walk);

    /* Timers that fire leave the heap: three short ones, then the rest. */
    fired = 0;
    mpt_tmr_start(&t[1], 0.01);
    mpt_tmr_start(&t[2], 0.02);
    mpt_tmr_start(&t[3], 0.03);
    ck_assert_int_le(mpt_ctx_timeout(ctx), 11);
    while (fired < 3)
        ev_run(ctx->loop, EVRUN_ONCE);
    ck_assert_int_eq(fired, 3);
    check_earliest(ctx);
    ck_assert_int_gt(mpt_ctx_timeout(ctx), 40000);
    for (int i = 0; i < NTMR; i++)
        mpt_tmr_fini(&t[i]);
    ck_assert_uint_eq(ctx->ws.theap_n, 0);
    ck_assert_int_eq(mpt_ctx_timeout(ctx), -1);
    mpt_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("io_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, ack_timeout_maps_to_the_engine);
    tcase_add_test(tc, one_source_of_defaults);
    tcase_add_test(tc, config_sizes);
    tcase_add_test(tc, timeout_is_the_earliest_timer_and_cheap);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
