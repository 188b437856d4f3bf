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

int main(void)
{
    Suite *su = suite_create("io_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, ack_timeout_maps_to_the_engine);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
