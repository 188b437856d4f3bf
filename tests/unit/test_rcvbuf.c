/* Reassembly: in order, out of order, duplicates, overlaps, wrap-around of
 * the 64-bit DSN space, the memory bound, single-byte fragments, far-away DSNs
 * and the ring growing and being freed by auto-tuning. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/alloc.h"
#include "core/frame.h"
#include "core/rcvbuf.h"

static uint8_t src[1 << 16];

static void fill(void)
{
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 7 + (i >> 8));
}

/* insert bytes [a, b) of src, positioned at base + a */
static int put(struct mpt_rcvbuf *rb, uint64_t base, size_t a, size_t b, size_t *dup)
{
    return mpt_rcvbuf_insert(rb, base + a, src + a, b - a, mpt_rcvbuf_right_edge(rb), dup);
}

static void check_read(struct mpt_rcvbuf *rb, size_t from, size_t n)
{
    uint8_t out[1 << 16];
    size_t got = mpt_rcvbuf_read(rb, out, n);
    ck_assert_uint_eq(got, n);
    ck_assert_int_eq(memcmp(out, src + from, n), 0);
}

START_TEST(in_order)
{
    struct mpt_rcvbuf rb;
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 4096, 1000);
    ck_assert_int_eq(put(&rb, 1000, 0, 100, &dup), 0);
    ck_assert_int_eq(put(&rb, 1000, 100, 300, &dup), 0);
    ck_assert_uint_eq(rb.nxt, 1300);
    ck_assert_uint_eq(mpt_rcvbuf_readable(&rb), 300);
    ck_assert_uint_eq(mpt_rcvbuf_mem(&rb), 300);
    check_read(&rb, 0, 300);
    ck_assert_uint_eq(dup, 0);
    ck_assert_uint_eq(mpt_rcvbuf_right_edge(&rb), 1300 + 4096);
    mpt_rcvbuf_free(&rb);
}
END_TEST

START_TEST(out_of_order_and_sack)
{
    struct mpt_rcvbuf rb;
    struct mpt_sack_range r[4];
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 8192, 0);
    ck_assert_int_eq(put(&rb, 0, 3000, 4000, &dup), 0);
    ck_assert_int_eq(put(&rb, 0, 1000, 2000, &dup), 0);
    ck_assert_uint_eq(rb.nxt, 0);
    ck_assert_uint_eq(rb.nranges, 2);
    ck_assert_uint_eq(mpt_rcvbuf_mem(&rb), 2000);
    ck_assert_int_eq(mpt_rcvbuf_sack(&rb, r, 4), 2);
    ck_assert_uint_eq(r[0].start, 1000);
    ck_assert_uint_eq(r[0].end, 2000);
    ck_assert_uint_eq(r[1].start, 3000);
    ck_assert_uint_eq(r[1].end, 4000);
    {
        /* in order into the middle of a held run: the run is absorbed, the
         * next one stays */
        struct mpt_rcvbuf r2;
        size_t d2 = 0;
        mpt_rcvbuf_init(&r2, 8192, 0);
        ck_assert_int_eq(put(&r2, 0, 1000, 2000, &d2), 0);
        ck_assert_int_eq(put(&r2, 0, 3000, 4000, &d2), 0);
        ck_assert_int_eq(put(&r2, 0, 0, 1500, &d2), 0);
        ck_assert_uint_eq(r2.nxt, 2000);
        ck_assert_uint_eq(r2.nranges, 1);
        ck_assert_uint_eq(r2.ooo_bytes, 1000);
        ck_assert_uint_eq(d2, 500);
        ck_assert_int_eq(put(&r2, 0, 2000, 3500, &d2), 0);
        ck_assert_uint_eq(r2.nxt, 4000);
        ck_assert_uint_eq(r2.nranges, 0);
        mpt_rcvbuf_free(&r2);
    }
    ck_assert_int_eq(put(&rb, 0, 2000, 3000, &dup), 0); /* joins both ranges */
    ck_assert_uint_eq(rb.nranges, 1);
    ck_assert_int_eq(put(&rb, 0, 0, 1000, &dup), 0);
    ck_assert_uint_eq(rb.nranges, 0);
    ck_assert_uint_eq(rb.nxt, 4000);
    ck_assert_uint_eq(rb.ooo_bytes, 0);
    check_read(&rb, 0, 4000);
    ck_assert_uint_eq(dup, 0);
    mpt_rcvbuf_free(&rb);
}
END_TEST

START_TEST(duplicates_and_overlaps)
{
    struct mpt_rcvbuf rb;
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 1 << 16, 5);
    ck_assert_int_eq(put(&rb, 5, 0, 500, &dup), 0);
    ck_assert_int_eq(put(&rb, 5, 0, 500, &dup), 0); /* exact duplicate, in order */
    ck_assert_uint_eq(dup, 500);
    ck_assert_int_eq(put(&rb, 5, 400, 600, &dup), 0); /* overlaps the left edge */
    ck_assert_uint_eq(dup, 600);
    ck_assert_uint_eq(rb.nxt, 605);
    /* out-of-order range [1000, 2000) then overlaps of every kind */
    ck_assert_int_eq(put(&rb, 5, 1000, 2000, &dup), 0);
    ck_assert_int_eq(put(&rb, 5, 900, 1100, &dup), 0); /* left overlap */
    ck_assert_uint_eq(dup, 700);
    ck_assert_int_eq(put(&rb, 5, 1900, 2100, &dup), 0); /* right overlap */
    ck_assert_uint_eq(dup, 800);
    ck_assert_int_eq(put(&rb, 5, 1200, 1300, &dup), 0); /* inside */
    ck_assert_uint_eq(dup, 900);
    ck_assert_int_eq(put(&rb, 5, 3000, 3100, &dup), 0);
    ck_assert_int_eq(put(&rb, 5, 3200, 3300, &dup), 0);
    ck_assert_uint_eq(rb.nranges, 3);
    ck_assert_int_eq(put(&rb, 5, 2500, 4000, &dup), 0); /* spans two ranges */
    ck_assert_uint_eq(dup, 1100);
    ck_assert_uint_eq(rb.nranges, 2);
    ck_assert_uint_eq(rb.ooo_bytes, (2100 - 900) + (4000 - 2500));
    ck_assert_int_eq(put(&rb, 5, 500, 4100, &dup), 0); /* spans all, fills gaps */
    ck_assert_uint_eq(rb.nranges, 0);
    ck_assert_uint_eq(rb.nxt, 5 + 4100);
    ck_assert_uint_eq(dup, 1100 + 100 + 1200 + 1500);
    check_read(&rb, 0, 4100);
    mpt_rcvbuf_free(&rb);
}
END_TEST

START_TEST(wraparound_dsn)
{
    struct mpt_rcvbuf rb;
    uint64_t base = UINT64_MAX - 1500;
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 3000, base);
    ck_assert_int_eq(put(&rb, base, 1000, 2500, &dup), 0); /* crosses 2^64 */
    ck_assert_int_eq(put(&rb, base, 2000, 2999, &dup), 0);
    ck_assert_uint_eq(rb.nranges, 1);
    ck_assert_int_eq(put(&rb, base, 0, 1000, &dup), 0);
    ck_assert_uint_eq(rb.nxt, base + 2999);
    ck_assert_uint_eq(dup, 500);
    check_read(&rb, 0, 2000);
    /* the ring wraps too */
    ck_assert_int_eq(put(&rb, base, 2999, 4500, &dup), 0);
    check_read(&rb, 2000, 2500);
    mpt_rcvbuf_free(&rb);
}
END_TEST

START_TEST(window_enforced)
{
    struct mpt_rcvbuf rb;
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 1000, 0);
    ck_assert_int_eq(put(&rb, 0, 0, 1000, &dup), 0); /* exactly the window */
    ck_assert_uint_eq(mpt_rcvbuf_mem(&rb), 1000);
    ck_assert_int_eq(put(&rb, 0, 1000, 1001, &dup), MPT_EFLOW);
    check_read(&rb, 0, 500);
    ck_assert_int_eq(put(&rb, 0, 1200, 1500, &dup), 0); /* out of order, inside */
    ck_assert_int_eq(put(&rb, 0, 1400, 1501, &dup), MPT_EFLOW);
    ck_assert_uint_le(mpt_rcvbuf_mem(&rb), 1000);
    mpt_rcvbuf_free(&rb);
}
END_TEST

/* Any pattern the window allows fits: 50,000 single bytes with single-byte
 * holes (the worst case for bookkeeping), then the fill. Nothing is dropped
 * and the stream comes out exact. */
START_TEST(single_byte_fragments)
{
    enum { N = 50000 };
    static uint8_t data[2 * N], out[2 * N];
    struct mpt_rcvbuf rb;
    struct mpt_sack_range r[4];
    uint64_t base = UINT64_MAX - 70000; /* crosses 2^64 on the way */
    size_t dup = 0;

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    mpt_rcvbuf_init(&rb, 1 << 17, base);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(mpt_rcvbuf_insert(&rb, base + 2 * i + 1, data + 2 * i + 1, 1,
                                           mpt_rcvbuf_right_edge(&rb), &dup), 0);
    ck_assert_uint_eq(rb.nranges, N);
    ck_assert_uint_eq(rb.ooo_bytes, N);
    ck_assert_uint_eq(rb.nxt, base);
    ck_assert_int_eq(mpt_rcvbuf_sack(&rb, r, 4), 4);
    ck_assert_uint_eq(r[0].start, base + 1);
    ck_assert_uint_eq(r[0].end, base + 2);
    ck_assert_uint_eq(r[3].start, base + 7);
    /* a duplicate of every fragment */
    for (size_t i = 0; i < N; i++)
        mpt_rcvbuf_insert(&rb, base + 2 * i + 1, data + 2 * i + 1, 1, mpt_rcvbuf_right_edge(&rb),
                          &dup);
    ck_assert_uint_eq(dup, N);
    /* fill the holes from the top down: every fill merges two runs into one */
    for (size_t i = N; i-- > 1;) {
        ck_assert_int_eq(mpt_rcvbuf_insert(&rb, base + 2 * i, data + 2 * i, 1,
                                           mpt_rcvbuf_right_edge(&rb), &dup), 0);
        ck_assert_uint_eq(rb.nranges, i);
    }
    ck_assert_uint_eq(rb.nxt, base);
    ck_assert_int_eq(mpt_rcvbuf_insert(&rb, base, data, 1, mpt_rcvbuf_right_edge(&rb), &dup), 0);
    ck_assert_uint_eq(rb.nxt, base + 2 * N);
    ck_assert_uint_eq(rb.nranges, 0);
    ck_assert_uint_eq(rb.ooo_bytes, 0);
    ck_assert_uint_eq(dup, N);
    ck_assert_uint_eq(mpt_rcvbuf_read(&rb, out, sizeof out), 2 * N);
    ck_assert_int_eq(memcmp(out, data, sizeof out), 0);
    mpt_rcvbuf_free(&rb);
}
END_TEST

/* The DSN position rule: ahead if (dsn - nxt) mod 2^64 < 2^63, else behind;
 * exactly 2^63 away counts as behind, and far behind is not a retransmission. */
START_TEST(far_away_dsns)
{
    struct mpt_rcvbuf rb;
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 4096, 1000);
    ck_assert_int_eq(put(&rb, 1000, 0, 100, &dup), 0);
    ck_assert_int_eq(mpt_rcvbuf_insert(&rb, 1100 + (1ull << 63), src, 10, UINT64_MAX, &dup),
                     MPT_EPROTO);
    ck_assert_int_eq(mpt_rcvbuf_insert(&rb, 1100 + (1ull << 63) - 1, src, 1,
                                       mpt_rcvbuf_right_edge(&rb), &dup),
                     MPT_EFLOW);
    ck_assert_int_eq(mpt_rcvbuf_insert(&rb, 1100 - MPT_RCV_MAX_BEHIND - 1, src, 10,
                                       mpt_rcvbuf_right_edge(&rb), &dup),
                     MPT_EPROTO);
    ck_assert_int_eq(mpt_rcvbuf_insert(&rb, 1100 - MPT_RCV_MAX_BEHIND, src, 10,
                                       mpt_rcvbuf_right_edge(&rb), &dup),
                     0);
    ck_assert_uint_eq(dup, 10);
    /* the advertised edge, not the ring, bounds what is accepted */
    ck_assert_int_eq(mpt_rcvbuf_insert(&rb, 1200, src, 10, 1205, &dup), MPT_EFLOW);
    ck_assert_int_eq(mpt_rcvbuf_insert(&rb, 1195, src, 10, 1205, &dup), 0);
    ck_assert_uint_eq(rb.nxt, 1100);
    mpt_rcvbuf_free(&rb);
}
END_TEST

/* a lent buffer: only while nothing is readable; in-order bytes count as
 * read at once, held bytes move in, bytes beyond it go to the ring */
START_TEST(lend_direct)
{
    struct mpt_rcvbuf rb;
    uint8_t out[4096];
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 4096, 500);
    ck_assert_int_eq(mpt_rcvbuf_lend(&rb, out, 0), MPT_EINVAL);
    ck_assert_int_eq(mpt_rcvbuf_lend(&rb, out, 200), 0);
    ck_assert_int_eq(mpt_rcvbuf_lend(&rb, out, 200), MPT_ESTATE);
    /* in order, partly beyond the loan: 200 bytes in out, 100 in the ring */
    ck_assert_int_eq(put(&rb, 500, 0, 300, &dup), 0);
    ck_assert_uint_eq(mpt_rcvbuf_lent(&rb), 200);
    ck_assert_uint_eq(rb.nxt, 800);
    ck_assert_uint_eq(rb.read, 700);
    ck_assert_uint_eq(mpt_rcvbuf_right_edge(&rb), 700 + 4096);
    ck_assert_uint_eq(mpt_rcvbuf_unlend(&rb), 200);
    ck_assert_int_eq(memcmp(out, src, 200), 0);
    ck_assert_uint_eq(mpt_rcvbuf_lent(&rb), 0);
    /* something readable: no loan */
    ck_assert_int_eq(mpt_rcvbuf_lend(&rb, out, 100), MPT_ESTATE);
    check_read(&rb, 200, 100);
    /* held bytes at [1000, 1100) before the loan move into it; the hole
     * below them filled later completes it */
    ck_assert_int_eq(put(&rb, 500, 500, 600, &dup), 0);
    memset(out, 0, sizeof out);
    ck_assert_int_eq(mpt_rcvbuf_lend(&rb, out, 4096), 0);
    ck_assert_int_eq(memcmp(out + 200, src + 500, 100), 0);
    ck_assert_int_eq(mpt_rcvbuf_lend_waiting(&rb), 1);
    ck_assert_int_eq(put(&rb, 500, 300, 500, &dup), 0);
    ck_assert_uint_eq(rb.nxt, 1100);
    ck_assert_uint_eq(rb.read, 1100);
    ck_assert_uint_eq(rb.ooo_bytes, 0);
    ck_assert_int_eq(mpt_rcvbuf_lend_waiting(&rb), 0);
    /* out of order inside the loan, then the loan ends before its hole
     * fills: the held bytes go to the ring and read back in order */
    ck_assert_int_eq(put(&rb, 500, 700, 900, &dup), 0);
    ck_assert_int_eq(mpt_rcvbuf_lend_waiting(&rb), 1);
    ck_assert_uint_eq(mpt_rcvbuf_unlend(&rb), 300);
    ck_assert_int_eq(memcmp(out, src + 300, 300), 0);
    ck_assert_int_eq(put(&rb, 500, 600, 700, &dup), 0);
    check_read(&rb, 600, 300);
    /* beyond the edge */
    ck_assert_int_eq(mpt_rcvbuf_insert(&rb, 1400, src, 100, 1450, &dup), MPT_EFLOW);
    ck_assert_uint_eq(dup, 0);
    mpt_rcvbuf_free(&rb);
}
END_TEST

/* growing the ring across the 2^64 wrap keeps in-order and out-of-order
 * bytes, the ranges and the holes between them; allocation failure leaves
 * the old ring as it was */
START_TEST(grow_keeps_what_is_held)
{
    struct mpt_rcvbuf rb;
    struct mpt_sack_range r[4];
    uint64_t base = UINT64_MAX - 2500;
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 4096, base);
    ck_assert_int_eq(put(&rb, base, 0, 3000, &dup), 0);
    check_read(&rb, 0, 1000); /* the ring's content now starts mid-buffer */
    ck_assert_int_eq(put(&rb, base, 3500, 4000, &dup), 0);
    ck_assert_int_eq(put(&rb, base, 4500, 5000, &dup), 0);
    ck_assert_uint_eq(mpt_rcvbuf_right_edge(&rb), base + 1000 + 4096);
    mpt_alloc_fail_at(1, 0);
    ck_assert_int_eq(mpt_rcvbuf_grow(&rb, 16384), MPT_ENOMEM);
    mpt_alloc_fail_at(0, 0);
    ck_assert_uint_eq(rb.cap, 4096);
    ck_assert_int_eq(mpt_rcvbuf_grow(&rb, 2048), 0); /* not a shrink */
    ck_assert_uint_eq(rb.cap, 4096);
    ck_assert_int_eq(mpt_rcvbuf_grow(&rb, 16384), 0);
    ck_assert_uint_eq(rb.cap, 16384);
    ck_assert_uint_ge(mpt_rcvbuf_allocated(&rb), 16384);
    ck_assert_uint_eq(mpt_rcvbuf_right_edge(&rb), base + 1000 + 16384);
    ck_assert_uint_eq(mpt_rcvbuf_readable(&rb), 2000);
    ck_assert_uint_eq(rb.ooo_bytes, 1000);
    ck_assert_int_eq(mpt_rcvbuf_sack(&rb, r, 4), 2);
    ck_assert_uint_eq(r[0].start, base + 3500);
    ck_assert_uint_eq(r[0].end, base + 4000);
    ck_assert_uint_eq(r[1].start, base + 4500);
    ck_assert_uint_eq(r[1].end, base + 5000);
    /* the holes fill and beyond the old edge is room now */
    ck_assert_int_eq(put(&rb, base, 3000, 3500, &dup), 0);
    ck_assert_int_eq(put(&rb, base, 4000, 4500, &dup), 0);
    ck_assert_int_eq(put(&rb, base, 5000, 12000, &dup), 0);
    ck_assert_uint_eq(dup, 0);
    ck_assert_uint_eq(rb.ooo_bytes, 0);
    check_read(&rb, 1000, 11000);
    mpt_rcvbuf_free(&rb);
}
END_TEST

/* a lent buffer keeps its bytes through a grow; trim frees only an empty
 * buffer, and the next byte allocates a ring of the trimmed size again */
START_TEST(grow_while_lent_and_trim)
{
    struct mpt_rcvbuf rb;
    uint8_t out[4096];
    size_t dup = 0;

    fill();
    mpt_rcvbuf_init(&rb, 4096, 0);
    ck_assert_int_eq(mpt_rcvbuf_trim(&rb, 4096), 0); /* nothing allocated yet */
    ck_assert_int_eq(mpt_rcvbuf_lend(&rb, out, 1000), 0);
    ck_assert_int_eq(put(&rb, 0, 0, 600, &dup), 0);
    ck_assert_int_eq(put(&rb, 0, 800, 1500, &dup), 0); /* 200 out of order in the loan, 500 beyond */
    ck_assert_int_eq(mpt_rcvbuf_trim(&rb, 4096), 0); /* lent: kept */
    ck_assert_int_eq(mpt_rcvbuf_grow(&rb, 8192), 0);
    ck_assert_int_eq(put(&rb, 0, 600, 800, &dup), 0);
    ck_assert_uint_eq(mpt_rcvbuf_unlend(&rb), 1000);
    ck_assert_int_eq(memcmp(out, src, 1000), 0);
    ck_assert_int_eq(mpt_rcvbuf_trim(&rb, 4096), 0); /* 500 readable: kept */
    check_read(&rb, 1000, 500);
    ck_assert_int_eq(put(&rb, 0, 2000, 2100, &dup), 0);
    ck_assert_int_eq(mpt_rcvbuf_trim(&rb, 4096), 0); /* out of order held: kept */
    ck_assert_int_eq(put(&rb, 0, 1500, 2000, &dup), 0);
    check_read(&rb, 1500, 600);
    ck_assert_int_eq(mpt_rcvbuf_trim(&rb, 4096), 1);
    ck_assert_uint_eq(mpt_rcvbuf_allocated(&rb), 0);
    ck_assert_uint_eq(mpt_rcvbuf_mem(&rb), 0);
    ck_assert_uint_eq(rb.cap, 4096);
    ck_assert_int_eq(mpt_rcvbuf_trim(&rb, 4096), 0); /* already free */
    /* after the trim: in order, then out of order, then read back */
    ck_assert_int_eq(put(&rb, 0, 2100, 3000, &dup), 0);
    ck_assert_int_eq(put(&rb, 0, 3500, 4000, &dup), 0);
    ck_assert_uint_ge(mpt_rcvbuf_allocated(&rb), 4096);
    ck_assert_int_eq(put(&rb, 0, 3000, 3500, &dup), 0);
    check_read(&rb, 2100, 1900);
    ck_assert_uint_eq(dup, 0);
    mpt_rcvbuf_free(&rb);
}
END_TEST

/* random segments against a reference bitmap */
START_TEST(random_against_model)
{
    struct mpt_rcvbuf rb;
    static uint8_t have[1 << 16];
    uint64_t base = UINT64_MAX - 20000, x = 88172645463325252ull;
    size_t dup = 0, exp_dup = 0, readpos = 0;

    fill();
    memset(have, 0, sizeof have);
    mpt_rcvbuf_init(&rb, 8192, base);
    for (int it = 0; it < 20000 && readpos < 60000; it++) {
        size_t a, len, nxt_off;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        nxt_off = (size_t)(rb.nxt - base);
        a = nxt_off + (size_t)(x % 3000) - (x % 3000 > 1500 ? 1500 : 0);
        if (a > nxt_off + 1500)
            a -= 1500;
        len = 1 + (size_t)((x >> 20) % 1200);
        if (a + len > readpos + 8192 || a + len > sizeof src)
            continue;
        if (a < readpos)
            continue; /* keep the model simple: bytes already read are dups */
        for (size_t i = a; i < a + len; i++) {
            exp_dup += have[i];
            have[i] = 1;
        }
        ck_assert_int_eq(
            mpt_rcvbuf_insert(&rb, base + a, src + a, len, mpt_rcvbuf_right_edge(&rb), &dup), 0);
        ck_assert_uint_eq(dup, exp_dup);
        ck_assert_uint_le(mpt_rcvbuf_mem(&rb), 8192);
        if (it % 16 == 0) {
            /* runs above the cumulative point and the SACK ranges, from the model */
            struct mpt_sack_range r[4];
            size_t runs = 0, nx = (size_t)(rb.nxt - base);
            int k = mpt_rcvbuf_sack(&rb, r, 4), j = 0;
            for (size_t i = nx; i < readpos + 8192 && i < sizeof have; i++) {
                if (have[i] && (i == nx || !have[i - 1])) {
                    if (j < k)
                        ck_assert_uint_eq(r[j].start, base + i);
                    j++;
                    runs++;
                }
                if (!have[i] && i > nx && have[i - 1] && j <= k && j > 0)
                    ck_assert_uint_eq(r[j - 1].end, base + i);
            }
            ck_assert_uint_eq(rb.nranges, runs);
            ck_assert_int_eq(k, runs < 4 ? (int)runs : 4);
        }
        if ((x >> 40) % 4 == 0 && mpt_rcvbuf_readable(&rb)) {
            size_t n = mpt_rcvbuf_readable(&rb);
            check_read(&rb, readpos, n);
            readpos += n;
        }
    }
    ck_assert_uint_gt(readpos, 1000);
    mpt_rcvbuf_free(&rb);
}
END_TEST

/* ---- seeded random stream through the lend API ---------------------------- */

#define RS_LEN (6u << 20)

static uint8_t rs_byte(uint64_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull;
    return (uint8_t)(x >> 56 ^ x >> 29);
}

/* buf holds stream bytes [off, off + n) (no check macro per byte: each
 * one costs a system call in a forked test) */
static int rs_same(const uint8_t *buf, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != rs_byte(off + i))
            return 0;
    return 1;
}

static uint64_t rs_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Runs, SACK ranges and held bytes above the cumulative point, against the
 * model (have[] over stream offsets). */
static void rs_check_model(const struct mpt_rcvbuf *rb, uint64_t base, const uint8_t *have)
{
    struct mpt_sack_range r[4], m[4];
    size_t nx = (size_t)(rb->nxt - base), runs = 0, held = 0, end = nx;
    int k = mpt_rcvbuf_sack(rb, r, 4);

    ck_assert(nx == RS_LEN || !have[nx]);
    for (size_t i = nx; i < RS_LEN && i < nx + rb->cap; i++) {
        if (!have[i])
            continue;
        held++;
        end = i + 1;
        if (i == nx || !have[i - 1]) {
            if (runs < 4)
                m[runs].start = base + i;
            runs++;
        }
        if ((i + 1 == RS_LEN || !have[i + 1]) && runs <= 4)
            m[runs - 1].end = base + i + 1;
    }
    ck_assert_int_eq(k, runs < 4 ? (int)runs : 4);
    for (int j = 0; j < k; j++) {
        ck_assert_uint_eq(r[j].start, m[j].start);
        ck_assert_uint_eq(r[j].end, m[j].end);
    }
    ck_assert_uint_eq(rb->nranges, runs);
    ck_assert_uint_eq(rb->ooo_bytes, held);
    ck_assert_uint_eq(rb->ooo_end, base + end);
}

/*
 * A 6 MiB stream in segments of 1 byte to 16 KiB, anywhere in the window
 * (ahead, overlapping, duplicated, behind), through a 256 KiB + 40 ring (the
 * bitmap's summaries span many words, the ring wraps 24 times, the DSNs wrap
 * 2^64), with lent buffers of random sizes (1 byte to more than the ring)
 * lent and returned at random points: every byte reaches the application
 * exactly once and in order, whether it went through the ring or straight
 * into a lent buffer, in order or out of order; duplicates, runs, SACK
 * ranges and the memory bound match the model. Seeded: the same every run.
 */
START_TEST(random_lend_stream)
{
    static uint8_t have[RS_LEN], seg[16384], app[1 << 20];
    const size_t cap = (256u << 10) + 40;
    uint64_t base = UINT64_MAX - 3000000, x = 0x2545f4914f6cdd1dull;
    size_t dup = 0, exp_dup = 0, readpos = 0, lend_len = 0, lends = 0, lent_total = 0;
    struct mpt_rcvbuf rb;
    int lent = 0;

    memset(have, 0, sizeof have);
    mpt_rcvbuf_init(&rb, cap, base);
    for (long it = 0; readpos < RS_LEN; it++) {
        uint64_t r = rs_rand(&x), edge = mpt_rcvbuf_right_edge(&rb);
        size_t nx = (size_t)(rb.nxt - base), room = (size_t)(edge - rb.nxt), a, len;
        ck_assert_int_lt(it, 200000);
        /* a segment: mostly near the cumulative point, some far ahead, a few behind */
        switch (r % 8) {
        case 0:
            a = nx >= 3000 ? nx - (size_t)(r >> 8) % 3000 : nx;
            break;
        case 1:
        case 2:
            a = nx;
            break;
        default:
            a = nx + (size_t)((r >> 8) % (room + 1));
        }
        len = (r >> 40) % 4 == 0 ? 1 + (size_t)(r >> 44) % 64 : 1 + (size_t)(r >> 44) % 16384;
        if (a + len > RS_LEN)
            len = a < RS_LEN ? RS_LEN - a : 0;
        if (a + len > nx + room)
            len = a < nx + room ? nx + room - a : 0;
        if (len > 0) {
            for (size_t i = 0; i < len; i++) {
                seg[i] = rs_byte(a + i);
                exp_dup += have[a + i];
                have[a + i] = 1;
            }
            ck_assert_int_eq(mpt_rcvbuf_insert(&rb, base + a, seg, len, edge, &dup), 0);
            ck_assert_uint_eq(dup, exp_dup);
            ck_assert_uint_le(mpt_rcvbuf_mem(&rb), cap);
        }
        if (it % 8 == 0)
            rs_check_model(&rb, base, have);
        /* the application: lend, return, or read */
        r = rs_rand(&x);
        if (lent && (r % 3 == 0 || mpt_rcvbuf_lent(&rb) == lend_len)) {
            size_t got = mpt_rcvbuf_lent(&rb);
            ck_assert_uint_eq(mpt_rcvbuf_unlend(&rb), got);
            ck_assert(rs_same(app, readpos, got));
            readpos += got;
            lent_total += got;
            lent = 0;
            rs_check_model(&rb, base, have);
        } else if (!lent && mpt_rcvbuf_readable(&rb) > 0) {
            size_t want = 1 + (size_t)(r >> 8) % sizeof app, got = mpt_rcvbuf_read(&rb, app, want);
            ck_assert_uint_gt(got, 0);
            ck_assert(rs_same(app, readpos, got));
            readpos += got;
        } else if (!lent && r % 2 == 0) {
            lend_len = (r >> 8) % 4 == 0 ? 1 + (size_t)(r >> 12) % 64 : 1 + (size_t)(r >> 12) % sizeof app;
            memset(app, 0xa5, lend_len);
            ck_assert_int_eq(mpt_rcvbuf_lend(&rb, app, lend_len), 0);
            ck_assert_uint_eq(mpt_rcvbuf_lent(&rb), 0);
            lent = 1;
            lends++;
        }
        ck_assert_uint_eq(lent ? rb.read - base - mpt_rcvbuf_lent(&rb) : rb.read - base, readpos);
    }
    ck_assert_uint_eq(rb.nxt, base + RS_LEN);
    ck_assert_uint_gt(lends, 100);
    ck_assert_uint_gt(lent_total, RS_LEN / 8); /* the loans did carry data */
    mpt_rcvbuf_free(&rb);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rcvbuf");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, in_order);
    tcase_add_test(tc, out_of_order_and_sack);
    tcase_add_test(tc, duplicates_and_overlaps);
    tcase_add_test(tc, wraparound_dsn);
    tcase_add_test(tc, window_enforced);
    tcase_add_test(tc, single_byte_fragments);
    tcase_add_test(tc, far_away_dsns);
    tcase_add_test(tc, random_against_model);
    tcase_add_test(tc, lend_direct);
    tcase_add_test(tc, random_lend_stream);
    tcase_add_test(tc, grow_keeps_what_is_held);
    tcase_add_test(tc, grow_while_lent_and_trim);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
