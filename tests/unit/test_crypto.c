/*
 * Known-answer tests for libmpt/core/crypto.c. The expected values were not
 * produced by libmpt: they were computed once with Python's hashlib/hmac,
 * building the messages by hand from the formulas in crypto.h:
 *
 *   import hashlib, hmac, struct
 *   ka = bytes(range(32)); kb = bytes(range(32, 64))
 *   na = bytes(range(0xa0, 0xb0)); nb = bytes(range(0xb0, 0xc0))
 *   hashlib.sha256(bytes(32)).digest()            # key_derive, zero key
 *   hashlib.sha256(ka).digest()                   # key_derive, ka
 *   hmac.new(ka + kb, b"MPTL-JOIN-S" + na + nb + bytes([5, 1]), hashlib.sha256).digest()
 *   hmac.new(kb + ka, b"MPTL-JOIN-C" + nb + na + bytes([5, 1]), hashlib.sha256).digest()
 *   hmac.new(ka + kb, bytes([3, 4]) + struct.pack(">H", 8080) + bytes([192, 0, 2, 1]),
 *            hashlib.sha256).digest()[:8]
 *   hmac.new(ka + kb, bytes([3, 6]) + struct.pack(">H", 443)
 *            + bytes.fromhex("20010db8000000000000000000000001"), hashlib.sha256).digest()[:8]
 *
 * SHA-256 of 32 zero bytes is also a widely published value
 * (66687aad...0d5f2925), a cross-check on the first vector.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"

static uint8_t key_a[MPT_KEY_LEN], key_b[MPT_KEY_LEN];
static uint8_t nonce_a[MPT_NONCE_LEN], nonce_b[MPT_NONCE_LEN];

static void setup(void)
{
    for (int i = 0; i < MPT_KEY_LEN; i++) {
        key_a[i] = (uint8_t)i;
        key_b[i] = (uint8_t)(32 + i);
    }
    for (int i = 0; i < MPT_NONCE_LEN; i++) {
        nonce_a[i] = (uint8_t)(0xa0 + i);
        nonce_b[i] = (uint8_t)(0xb0 + i);
    }
}

START_TEST(key_derive_zero_key)
{
    uint8_t zero[MPT_KEY_LEN] = {0};
    uint64_t token = 0, idsn = 0;

    mpt_key_derive(zero, &token, &idsn);
    ck_assert_uint_eq(token, UINT64_C(0x66687aadf862bd77));
    ck_assert_uint_eq(idsn, UINT64_C(0x902a591d0d5f2925));
}
END_TEST

START_TEST(key_derive_counting_key)
{
    uint64_t token = 0, idsn = 0;

    mpt_key_derive(key_a, &token, &idsn);
    ck_assert_uint_eq(token, UINT64_C(0x630dcd2966c43366));
    ck_assert_uint_eq(idsn, UINT64_C(0xabc1b8581bd710dd));
    /* Either output may be skipped. */
    token = idsn = 0;
    mpt_key_derive(key_a, &token, NULL);
    ck_assert_uint_eq(token, UINT64_C(0x630dcd2966c43366));
    mpt_key_derive(key_a, NULL, &idsn);
    ck_assert_uint_eq(idsn, UINT64_C(0xabc1b8581bd710dd));
}
END_TEST

START_TEST(join_hmac_server)
{
    static const uint8_t want[MPT_HMAC_LEN] = {
        0xc4, 0x97, 0x3c, 0x3d, 0x31, 0x70, 0x30, 0xdc, 0xb5, 0x2d, 0x58, 0x6f, 0x8a, 0xd7, 0x4c, 0xbd,
        0x85, 0x0c, 0x86, 0x09, 0xdd, 0x0a, 0x1d, 0xae, 0x76, 0xd6, 0x75, 0x6d, 0x51, 0x23, 0x57, 0x21,
    };
    uint8_t out[MPT_HMAC_LEN];

    mpt_join_hmac(MPT_JOIN_SERVER, key_a, key_b, nonce_a, nonce_b, 5, 1, out);
    ck_assert_mem_eq(out, want, sizeof want);
}
END_TEST

START_TEST(join_hmac_client)
{
    static const uint8_t want[MPT_HMAC_LEN] = {
        0x92, 0x7c, 0x0d, 0x14, 0xea, 0xd7, 0xbc, 0x0b, 0x62, 0x41, 0xf6, 0x7c, 0x0b, 0x6a, 0xb7, 0x2b,
        0x14, 0x5b, 0x42, 0x6d, 0xff, 0x31, 0x2d, 0xab, 0xa1, 0x57, 0x88, 0x45, 0xe0, 0x77, 0x06, 0x78,
    };
    uint8_t out[MPT_HMAC_LEN];

    mpt_join_hmac(MPT_JOIN_CLIENT, key_b, key_a, nonce_b, nonce_a, 5, 1, out);
    ck_assert_mem_eq(out, want, sizeof want);
}
END_TEST

/* Every input is bound into the MAC: changing any one changes the output. */
START_TEST(join_hmac_binds_every_input)
{
    uint8_t base[MPT_HMAC_LEN], other[MPT_HMAC_LEN];

    mpt_join_hmac(MPT_JOIN_SERVER, key_a, key_b, nonce_a, nonce_b, 5, 1, base);

    mpt_join_hmac(MPT_JOIN_CLIENT, key_a, key_b, nonce_a, nonce_b, 5, 1, other);
    ck_assert(memcmp(base, other, sizeof base) != 0);
    mpt_join_hmac(MPT_JOIN_SERVER, key_b, key_a, nonce_a, nonce_b, 5, 1, other);
    ck_assert(memcmp(base, other, sizeof base) != 0);
    mpt_join_hmac(MPT_JOIN_SERVER, key_a, key_b, nonce_b, nonce_a, 5, 1, other);
    ck_assert(memcmp(base, other, sizeof base) != 0);
    mpt_join_hmac(MPT_JOIN_SERVER, key_a, key_b, nonce_a, nonce_b, 6, 1, other);
    ck_assert(memcmp(base, other, sizeof base) != 0);
    mpt_join_hmac(MPT_JOIN_SERVER, key_a, key_b, nonce_a, nonce_b, 5, 0, other);
    ck_assert(memcmp(base, other, sizeof base) != 0);
    mpt_join_hmac(MPT_JOIN_SERVER, key_a, key_b, nonce_a, nonce_b, 5, 1, other);
    ck_assert_mem_eq(base, other, sizeof base);
}
END_TEST

START_TEST(addr_hmac_ipv4)
{
    static const uint8_t addr[4] = {192, 0, 2, 1};
    static const uint8_t want[MPT_ADDR_HMAC_LEN] = {0x46, 0x14, 0x9a, 0xc0, 0x0f, 0xfe, 0x91, 0x07};
    uint8_t out[MPT_ADDR_HMAC_LEN];

    mpt_addr_hmac(key_a, key_b, 3, 4, 8080, addr, out);
    ck_assert_mem_eq(out, want, sizeof want);
}
END_TEST

START_TEST(addr_hmac_ipv6)
{
    static const uint8_t addr[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t want[MPT_ADDR_HMAC_LEN] = {0x6f, 0x83, 0xd6, 0x9c, 0xbb, 0x56, 0x10, 0x8d};
    uint8_t out[MPT_ADDR_HMAC_LEN];

    mpt_addr_hmac(key_a, key_b, 3, 6, 443, addr, out);
    ck_assert_mem_eq(out, want, sizeof want);
}
END_TEST

/* The worked example of doc/protocol.md, Appendix A (key_C = ka, key_S = kb,
 * N_C = na, N_S = nb, address ID 1, no flags); its values were checked
 * against Python's hashlib/hmac as above. */
START_TEST(protocol_md_appendix_a)
{
    static const uint8_t hmac_s[MPT_HMAC_LEN] = {
        0xf4, 0xf0, 0x9c, 0x37, 0x06, 0xf5, 0x26, 0x8d, 0x60, 0xb4, 0xa8, 0x1e, 0x18, 0x3f, 0x55, 0xa8,
        0x85, 0xd9, 0x84, 0x1e, 0x48, 0x53, 0x14, 0xb7, 0x42, 0x0f, 0x43, 0xc9, 0xce, 0xff, 0x9a, 0xe9,
    };
    static const uint8_t hmac_c[MPT_HMAC_LEN] = {
        0x8f, 0xd2, 0x26, 0x7e, 0x1c, 0xa6, 0xda, 0x88, 0xb2, 0x7c, 0xee, 0x88, 0xf7, 0xd2, 0xc4, 0x16,
        0x5d, 0x3b, 0xa7, 0xca, 0xe6, 0x4e, 0x1a, 0x4b, 0xdb, 0x41, 0xc0, 0x9f, 0x29, 0xc9, 0xdc, 0xfb,
    };
    static const uint8_t hmac_a[MPT_ADDR_HMAC_LEN] = {0xbd, 0xf8, 0x48, 0x65, 0xa6, 0x86, 0xf9, 0x0b};
    static const uint8_t addr[4] = {192, 0, 2, 1};
    uint8_t out[MPT_HMAC_LEN];
    uint64_t token, idsn;

    mpt_key_derive(key_b, &token, &idsn);
    ck_assert_uint_eq(token, UINT64_C(0x72dbb7336c767800));
    ck_assert_uint_eq(idsn, UINT64_C(0x97917790c1229084));
    mpt_join_hmac(MPT_JOIN_SERVER, key_b, key_a, nonce_b, nonce_a, 1, 0, out);
    ck_assert_mem_eq(out, hmac_s, MPT_HMAC_LEN);
    mpt_join_hmac(MPT_JOIN_CLIENT, key_a, key_b, nonce_a, nonce_b, 1, 0, out);
    ck_assert_mem_eq(out, hmac_c, MPT_HMAC_LEN);
    mpt_addr_hmac(key_b, key_a, 1, 4, 443, addr, out);
    ck_assert_mem_eq(out, hmac_a, MPT_ADDR_HMAC_LEN);
}
END_TEST

START_TEST(ct_equal)
{
    uint8_t a[MPT_HMAC_LEN], b[MPT_HMAC_LEN];

    memset(a, 0x5a, sizeof a);
    memcpy(b, a, sizeof b);
    ck_assert_int_eq(mpt_ct_equal(a, b, sizeof a), 1);
    ck_assert_int_eq(mpt_ct_equal(a, b, 0), 1);
    for (size_t i = 0; i < sizeof a; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            ck_assert_int_eq(mpt_ct_equal(a, b, sizeof a), 0);
            /* A difference outside the compared prefix is not seen. */
            ck_assert_int_eq(mpt_ct_equal(a, b, i), 1);
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, key_derive_zero_key);
    tcase_add_test(tc, key_derive_counting_key);
    tcase_add_test(tc, join_hmac_server);
    tcase_add_test(tc, join_hmac_client);
    tcase_add_test(tc, join_hmac_binds_every_input);
    tcase_add_test(tc, addr_hmac_ipv4);
    tcase_add_test(tc, addr_hmac_ipv6);
    tcase_add_test(tc, protocol_md_appendix_a);
    tcase_add_test(tc, ct_equal);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
