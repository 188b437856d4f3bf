/* Send buffer: writes up to capacity, acks (full and partial) free from the
 * head, zero-copy peeks across the ring's wrap and the 2^64 DSN wrap,
 * growing and freeing the ring (auto-tuning). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/alloc.h"
#include "core/conn.h"
#include "core/sendbuf.h"

static void gather(const struct mpt_iovec *iov, int n, uint8_t *out)
{
    for (int i = 0; i < n; i++) {
        memcpy(out, iov[i].base, iov[i].len);
        out += iov[i].len;
    }
}

START_TEST(write_ack_peek)
{
    struct mpt_sendbuf sb;
    uint8_t data[1000], out[1000];
    struct mpt_iovec iov[2];
    int n;

    for (int i = 0; i < 1000; i++)
        data[i] = (uint8_t)i;
    mpt_sendbuf_init(&sb, 600, 42);
    ck_assert_uint_eq(mpt_sendbuf_space(&sb), 600);
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data, 1000), 600);
    ck_assert_uint_eq(mpt_sendbuf_space(&sb), 0);
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data, 10), 0);
    n = mpt_sendbuf_peek(&sb, 42 + 100, 200, iov);
    ck_assert_int_eq(n, 1);
    gather(iov, n, out);
    ck_assert_int_eq(memcmp(out, data + 100, 200), 0);
    /* partial ack, then the ring wraps */
    mpt_sendbuf_release(&sb, 42 + 250);
    ck_assert_uint_eq(mpt_sendbuf_space(&sb), 250);
    mpt_sendbuf_release(&sb, 42 + 100); /* old ack: no effect */
    ck_assert_uint_eq(mpt_sendbuf_used(&sb), 350);
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data + 600, 400), 250);
    n = mpt_sendbuf_peek(&sb, 42 + 500, 350, iov);
    ck_assert_int_eq(n, 2);
    gather(iov, n, out);
    ck_assert_int_eq(memcmp(out, data + 500, 350), 0);
    /* full ack; releasing beyond the end clamps */
    mpt_sendbuf_release(&sb, 42 + 5000);
    ck_assert_uint_eq(mpt_sendbuf_used(&sb), 0);
    ck_assert_uint_eq(sb.base, 42 + 850);
    mpt_sendbuf_free(&sb);
}
END_TEST

START_TEST(dsn_wraparound)
{
    struct mpt_sendbuf sb;
    uint8_t data[300], out[300];
    struct mpt_iovec iov[2];
    uint64_t d0 = UINT64_MAX - 99;
    int n;

    for (int i = 0; i < 300; i++)
        data[i] = (uint8_t)(i * 3);
    mpt_sendbuf_init(&sb, 256, d0);
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data, 200), 200);
    n = mpt_sendbuf_peek(&sb, d0 + 50, 150, iov); /* crosses 2^64 */
    gather(iov, n, out);
    ck_assert_int_eq(memcmp(out, data + 50, 150), 0);
    mpt_sendbuf_release(&sb, d0 + 150);
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data + 200, 100), 100);
    n = mpt_sendbuf_peek(&sb, d0 + 150, 150, iov);
    ck_assert_int_eq(n, 2);
    gather(iov, n, out);
    ck_assert_int_eq(memcmp(out, data + 150, 150), 0);
    mpt_sendbuf_free(&sb);
}
END_TEST

/* grow keeps the bytes held across both wraps (or fails cleanly); trim
 * frees only an empty ring, which the next write allocates again */
START_TEST(grow_and_trim)
{
    struct mpt_sendbuf sb;
    uint8_t data[3000], out[3000];
    struct mpt_iovec iov[2];
    uint64_t d0 = UINT64_MAX - 499;
    int n;

    for (int i = 0; i < 3000; i++)
        data[i] = (uint8_t)(i * 13 + 5);
    mpt_sendbuf_init(&sb, 1000, d0);
    ck_assert_int_eq(mpt_sendbuf_trim(&sb, 1000), 0); /* never allocated */
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data, 1000), 1000);
    mpt_sendbuf_release(&sb, d0 + 600);
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data + 1000, 600), 600); /* the ring wraps */
    ck_assert_int_eq(mpt_sendbuf_trim(&sb, 1000), 0);                /* holds 1000 */
    mpt_alloc_fail_at(1, 0);
    ck_assert_int_eq(mpt_sendbuf_grow(&sb, 4000), MPT_ENOMEM);
    mpt_alloc_fail_at(0, 0);
    ck_assert_uint_eq(sb.cap, 1000);
    ck_assert_int_eq(mpt_sendbuf_grow(&sb, 4000), 0);
    ck_assert_uint_eq(sb.cap, 4000);
    ck_assert_uint_eq(mpt_sendbuf_used(&sb), 1000);
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data + 1600, 1400), 1400);
    n = mpt_sendbuf_peek(&sb, d0 + 600, 2400, iov);
    ck_assert_int_ge(n, 1);
    gather(iov, n, out);
    ck_assert_int_eq(memcmp(out, data + 600, 2400), 0);
    mpt_sendbuf_release(&sb, d0 + 3000);
    ck_assert_int_eq(mpt_sendbuf_trim(&sb, 500), 1);
    ck_assert_ptr_null(sb.buf);
    ck_assert_uint_eq(sb.cap, 500);
    ck_assert_int_eq(mpt_sendbuf_write(&sb, data, 800), 500);
    n = mpt_sendbuf_peek(&sb, d0 + 3000, 500, iov);
    gather(iov, n, out);
    ck_assert_int_eq(memcmp(out, data, 500), 0);
    mpt_sendbuf_free(&sb);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sendbuf");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, write_ack_peek);
    tcase_add_test(tc, dsn_wraparound);
    tcase_add_test(tc, grow_and_trim);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
