/*
 * The context's configuration (struct mpt_config -> the engine's settings).
 * These tests look inside the context (libmpt/io.h), so they link the I/O
 * layer statically like the other test_io_* programs.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

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

int main(void)
{
    Suite *su = suite_create("io_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, ack_timeout_maps_to_the_engine);
    tcase_add_test(tc, one_source_of_defaults);
    tcase_add_test(tc, config_sizes);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
