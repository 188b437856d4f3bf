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
    tcase_add_test(tc, unknown_and_zero);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
