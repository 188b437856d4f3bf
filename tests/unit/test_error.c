#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

START_TEST(every_code_has_distinct_text_and_name)
{
    static const int codes[] = {
#define X_(name, value, msg) MPT_##name,
        MPT_ERRNO_MAP(X_)
#undef X_
    };
    size_t n = sizeof codes / sizeof codes[0];

    for (size_t i = 0; i < n; i++) {
        ck_assert_int_lt(codes[i], 0);
        ck_assert_str_ne(mpt_strerror(codes[i]), "unknown error");
        ck_assert_ptr_eq(strstr(mpt_err_name(codes[i]), "MPT_E"), mpt_err_name(codes[i]));
        for (size_t j = 0; j < i; j++) {
            ck_assert_int_ne(codes[i], codes[j]);
            ck_assert_str_ne(mpt_strerror(codes[i]), mpt_strerror(codes[j]));
        }
    }
}
END_TEST

/* Codes are ABI: the values never change (append only). */
START_TEST(values_are_stable)
{
    ck_assert_int_eq(MPT_ETLS, -29);
    ck_assert_int_eq(MPT_ECONNREFUSED, -30);
    ck_assert_int_eq(MPT_EADDRINUSE, -31);
    ck_assert_int_eq(MPT_EADDRNOTAVAIL, -32);
    ck_assert_int_eq(MPT_ENODEV, -33);
    ck_assert_int_eq(MPT_ENETUNREACH, -34);
    ck_assert_int_eq(MPT_EHOSTUNREACH, -35);
    ck_assert_int_eq(MPT_EPERM, -36);
    ck_assert_int_eq(MPT_EMFILE, -37);
    ck_assert_int_eq(MPT_ECONNRESET, -38);
    ck_assert_int_eq(MPT_EAFNOSUPPORT, -39);
    ck_assert_str_eq(mpt_err_name(-30), "MPT_ECONNREFUSED");
    ck_assert_str_eq(mpt_strerror(MPT_EADDRINUSE), "address already in use");
    /* The list is dense: every value from -1 down to the last one is used. */
    static const int codes[] = {
#define X_(name, value, msg) MPT_##name,
        MPT_ERRNO_MAP(X_)
#undef X_
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(codes[i], -(int)i - 1);
}
END_TEST

START_TEST(unknown_and_zero)
{
    ck_assert_str_eq(mpt_strerror(0), "success");
    ck_assert_str_eq(mpt_strerror(-9999), "unknown error");
    ck_assert_str_eq(mpt_strerror(5), "unknown error");
    ck_assert_str_eq(mpt_err_name(MPT_EAUTH), "MPT_EAUTH");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, every_code_has_distinct_text_and_name);
    tcase_add_test(tc, values_are_stable);
    tcase_add_test(tc, unknown_and_zero);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
