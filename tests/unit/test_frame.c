/*
 * Tests for the frame codec (libmpt/core/frame.c) against the contract in
 * libmpt/core/frame.h: round trips at boundary values, exact wire bytes,
 * truncation at every length, one test per invalid field, and streams.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/frame.h"

/* Compares return codes and names both sides on failure. */
#define ck_assert_rc(got, want)                                                                  \
    do {                                                                                         \
        ssize_t g_ = (got), w_ = (want);                                                         \
        ck_assert_msg(g_ == w_, "%s: got %zd (%s), want %zd (%s)", #got, g_,                    \
                      g_ < 0 ? mpt_err_name((int)g_) : "length", w_,                             \
                      w_ < 0 ? mpt_err_name((int)w_) : "length");                                \
    } while (0)

/* Every frame type frame.h defines, with the flags it allows. */
static const struct {
    uint8_t type;
    uint8_t flags;
    const char *name;
} known[] = {
    {MPT_FT_HELLO, 0, "HELLO"},
    {MPT_FT_HELLO_ACK, 0, "HELLO_ACK"},
    {MPT_FT_JOIN, MPT_FF_JOIN_BACKUP, "JOIN"},
    {MPT_FT_JOIN_ACK, 0, "JOIN_ACK"},
    {MPT_FT_JOIN_CONFIRM, 0, "JOIN_CONFIRM"},
    {MPT_FT_DATA, 0, "DATA"},
    {MPT_FT_DATA_ACK, 0, "DATA_ACK"},
    {MPT_FT_DATA_FIN, 0, "DATA_FIN"},
    {MPT_FT_ADD_ADDR, MPT_FF_ADD_ADDR_ECHO, "ADD_ADDR"},
    {MPT_FT_REMOVE_ADDR, 0, "REMOVE_ADDR"},
    {MPT_FT_PRIO, MPT_FF_PRIO_BACKUP | MPT_FF_PRIO_SECONDARY | MPT_FF_PRIO_NEVER, "PRIO"},
    {MPT_FT_PING, 0, "PING"},
    {MPT_FT_PONG, 0, "PONG"},
    {MPT_FT_CLOSE, 0, "CLOSE"},
    {MPT_FT_FASTCLOSE, 0, "FASTCLOSE"},
    {MPT_FT_SUBFLOW_CLOSE, 0, "SUBFLOW_CLOSE"},
    {MPT_FT_ERROR, 0, "ERROR"},
    {MPT_FT_SUBFLOW_FAILED, 0, "SUBFLOW_FAILED"},
};
#define NKNOWN (sizeof known / sizeof known[0])

static int is_known(uint8_t type)
{
    for (size_t i = 0; i < NKNOWN; i++)
        if (known[i].type == type)
            return 1;
    return 0;
}

static uint8_t big_payload[MPT_FRAME_MAX_DATA];
static uint8_t text255[MPT_FRAME_MAX_TEXT];
static const uint8_t one_byte[1] = {0xa5};

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

/*
 * A set of frames covering every type at its boundary values: smallest and
 * largest lengths, all-zero and all-ones integers, every defined flag.
 * Returns how many were written to out.
 */
#define MAX_SAMPLES 40
static size_t samples(struct mpt_frame *out)
{
    struct mpt_frame *f = out;

    memset(out, 0, sizeof *out * MAX_SAMPLES);
    fill(big_payload, sizeof big_payload, 1);
    fill(text255, sizeof text255, 'a');

    f->type = MPT_FT_HELLO;
    f->u.hello.version_min = 0;
    f->u.hello.version_max = 255;
    f->u.hello.features = 0xffff;
    fill(f->u.hello.key, MPT_KEY_LEN, 0);
    f->u.hello.window = UINT32_MAX;
    f++;
    f->type = MPT_FT_HELLO; /* all zero */
    f++;
    f->type = MPT_FT_HELLO_ACK;
    f->u.hello_ack.version = 1;
    f->u.hello_ack.features = MPT_FEAT_SACK | 0x8000;
    memset(f->u.hello_ack.key, 0xff, MPT_KEY_LEN);
    fill(f->u.hello_ack.routing_id, MPT_ROUTING_ID_LEN, 0x30);
    f->u.hello_ack.window = 0;
    f++;
    f->type = MPT_FT_JOIN;
    f->flags = MPT_FF_JOIN_BACKUP;
    f->u.join.token = UINT64_MAX;
    fill(f->u.join.nonce, MPT_NONCE_LEN, 0x40);
    f->u.join.addr_id = 255;
    f++;
    f->type = MPT_FT_JOIN; /* token 0, addr_id 0, no flags */
    f++;
    f->type = MPT_FT_JOIN_ACK;
    fill(f->u.join_ack.nonce, MPT_NONCE_LEN, 0x50);
    fill(f->u.join_ack.hmac, MPT_HMAC_LEN, 0x60);
    f++;
    f->type = MPT_FT_JOIN_CONFIRM;
    memset(f->u.join_confirm.hmac, 0xff, MPT_HMAC_LEN);
    f++;
    f->type = MPT_FT_DATA; /* smallest payload */
    f->u.data.dsn = 0;
    f->u.data.payload = one_byte;
    f->u.data.len = 1;
    f++;
    f->type = MPT_FT_DATA; /* largest payload, largest DSN */
    f->u.data.dsn = UINT64_MAX;
    f->u.data.payload = big_payload;
    f->u.data.len = MPT_FRAME_MAX_DATA;
    f++;
    f->type = MPT_FT_DATA_ACK; /* no ranges */
    f->u.data_ack.ack = UINT64_MAX;
    f->u.data_ack.window = 0;
    f++;
    f->type = MPT_FT_DATA_ACK; /* four ranges, the first two adjacent */
    f->u.data_ack.ack = 1000;
    f->u.data_ack.window = UINT32_MAX;
    f->u.data_ack.nranges = 4;
    f->u.data_ack.ranges[0] = (struct mpt_sack_range){1001, 1002};
    f->u.data_ack.ranges[1] = (struct mpt_sack_range){1002, 2000};
    f->u.data_ack.ranges[2] = (struct mpt_sack_range){3000, 4000};
    f->u.data_ack.ranges[3] = (struct mpt_sack_range){5000, 6000};
    f++;
    f->type = MPT_FT_DATA_ACK; /* DSNs wrap through zero */
    f->u.data_ack.ack = UINT64_MAX - 10;
    f->u.data_ack.window = 65536;
    f->u.data_ack.nranges = 2;
    f->u.data_ack.ranges[0] = (struct mpt_sack_range){UINT64_MAX - 5, 3};
    f->u.data_ack.ranges[1] = (struct mpt_sack_range){10, 20};
    f++;
    f->type = MPT_FT_DATA_ACK; /* one range as far above ack as allowed */
    f->u.data_ack.ack = 0;
    f->u.data_ack.nranges = 1;
    f->u.data_ack.ranges[0] = (struct mpt_sack_range){1, (UINT64_C(1) << 63) - 1};
    f++;
    f->type = MPT_FT_DATA_FIN;
    f->u.data_fin.dsn = UINT64_MAX;
    f++;
    f->type = MPT_FT_DATA_FIN;
    f->u.data_fin.dsn = 0;
    f++;
    f->type = MPT_FT_ADD_ADDR;
    f->flags = MPT_FF_ADD_ADDR_ECHO;
    f->u.add_addr.addr_id = 255;
    f->u.add_addr.family = 4;
    f->u.add_addr.port = 65535;
    memcpy(f->u.add_addr.addr, (uint8_t[]){192, 0, 2, 1}, 4);
    fill(f->u.add_addr.hmac, MPT_ADDR_HMAC_LEN, 0x70);
    f++;
    f->type = MPT_FT_ADD_ADDR;
    f->u.add_addr.addr_id = 0;
    f->u.add_addr.family = 6;
    f->u.add_addr.port = 0;
    fill(f->u.add_addr.addr, 16, 0x20);
    memset(f->u.add_addr.hmac, 0xff, MPT_ADDR_HMAC_LEN);
    f++;
    f->type = MPT_FT_REMOVE_ADDR;
    f->u.remove_addr.n = 1;
    f->u.remove_addr.ids[0] = 0;
    f++;
    f->type = MPT_FT_REMOVE_ADDR;
    f->u.remove_addr.n = MPT_FRAME_MAX_REMOVE;
    fill(f->u.remove_addr.ids, MPT_FRAME_MAX_REMOVE, 0xe0);
    f++;
    f->type = MPT_FT_PRIO;
    f->flags = MPT_FF_PRIO_BACKUP;
    f++;
    f->type = MPT_FT_PRIO;
    f++;
    f->type = MPT_FT_PING;
    f->u.ping.opaque = UINT64_MAX;
    f++;
    f->type = MPT_FT_PONG;
    f->u.ping.opaque = 0;
    f++;
    f->type = MPT_FT_CLOSE;
    f++;
    f->type = MPT_FT_FASTCLOSE; /* no text */
    f->u.close.reason = UINT32_MAX;
    f++;
    f->type = MPT_FT_FASTCLOSE;
    f->u.close.reason = MPT_REASON_APP_ABORT;
    f->u.close.text = text255;
    f->u.close.text_len = MPT_FRAME_MAX_TEXT;
    f++;
    f->type = MPT_FT_SUBFLOW_CLOSE;
    f->u.close.reason = MPT_REASON_PATH_REMOVED;
    f++;
    f->type = MPT_FT_ERROR;
    f->u.close.reason = 0;
    f->u.close.frame_type = 0;
    f++;
    f->type = MPT_FT_ERROR;
    f->u.close.reason = UINT32_MAX;
    f->u.close.frame_type = 0xff;
    f->u.close.text = text255;
    f->u.close.text_len = MPT_FRAME_MAX_TEXT;
    f++;
    f->type = MPT_FT_SUBFLOW_FAILED; /* the first subflow */
    f->u.sf_failed.reason = MPT_REASON_TIMEOUT;
    f++;
    f->type = MPT_FT_SUBFLOW_FAILED;
    f->u.sf_failed.reason = UINT32_MAX;
    fill(f->u.sf_failed.nonce, MPT_NONCE_LEN, 0x5c);
    f++;
    ck_assert_uint_le((size_t)(f - out), MAX_SAMPLES);
    return (size_t)(f - out);
}

/* Field-by-field equality for the fields the frame's type uses. */
static void assert_same(const struct mpt_frame *a, const struct mpt_frame *b)
{
    ck_assert_uint_eq(a->type, b->type);
    ck_assert_uint_eq(a->flags, b->flags);
    switch (a->type) {
    case MPT_FT_HELLO:
        ck_assert_uint_eq(a->u.hello.version_min, b->u.hello.version_min);
        ck_assert_uint_eq(a->u.hello.version_max, b->u.hello.version_max);
        ck_assert_uint_eq(a->u.hello.features, b->u.hello.features);
        ck_assert_mem_eq(a->u.hello.key, b->u.hello.key, MPT_KEY_LEN);
        ck_assert_uint_eq(a->u.hello.window, b->u.hello.window);
        break;
    case MPT_FT_HELLO_ACK:
        ck_assert_uint_eq(a->u.hello_ack.version, b->u.hello_ack.version);
        ck_assert_uint_eq(a->u.hello_ack.features, b->u.hello_ack.features);
        ck_assert_mem_eq(a->u.hello_ack.key, b->u.hello_ack.key, MPT_KEY_LEN);
        ck_assert_mem_eq(a->u.hello_ack.routing_id, b->u.hello_ack.routing_id, MPT_ROUTING_ID_LEN);
        ck_assert_uint_eq(a->u.hello_ack.window, b->u.hello_ack.window);
        break;
    case MPT_FT_JOIN:
        ck_assert_uint_eq(a->u.join.token, b->u.join.token);
        ck_assert_mem_eq(a->u.join.nonce, b->u.join.nonce, MPT_NONCE_LEN);
        ck_assert_uint_eq(a->u.join.addr_id, b->u.join.addr_id);
        break;
    case MPT_FT_JOIN_ACK:
        ck_assert_mem_eq(a->u.join_ack.nonce, b->u.join_ack.nonce, MPT_NONCE_LEN);
        ck_assert_mem_eq(a->u.join_ack.hmac, b->u.join_ack.hmac, MPT_HMAC_LEN);
        break;
    case MPT_FT_JOIN_CONFIRM:
        ck_assert_mem_eq(a->u.join_confirm.hmac, b->u.join_confirm.hmac, MPT_HMAC_LEN);
        break;
    case MPT_FT_DATA:
        ck_assert_uint_eq(a->u.data.dsn, b->u.data.dsn);
        ck_assert_uint_eq(a->u.data.len, b->u.data.len);
        ck_assert(memcmp(a->u.data.payload, b->u.data.payload, a->u.data.len) == 0);
        break;
    case MPT_FT_DATA_ACK:
        ck_assert_uint_eq(a->u.data_ack.ack, b->u.data_ack.ack);
        ck_assert_uint_eq(a->u.data_ack.window, b->u.data_ack.window);
        ck_assert_uint_eq(a->u.data_ack.nranges, b->u.data_ack.nranges);
        for (unsigned i = 0; i < a->u.data_ack.nranges; i++) {
            ck_assert_uint_eq(a->u.data_ack.ranges[i].start, b->u.data_ack.ranges[i].start);
            ck_assert_uint_eq(a->u.data_ack.ranges[i].end, b->u.data_ack.ranges[i].end);
        }
        break;
    case MPT_FT_DATA_FIN:
        ck_assert_uint_eq(a->u.data_fin.dsn, b->u.data_fin.dsn);
        break;
    case MPT_FT_ADD_ADDR:
        ck_assert_uint_eq(a->u.add_addr.addr_id, b->u.add_addr.addr_id);
        ck_assert_uint_eq(a->u.add_addr.family, b->u.add_addr.family);
        ck_assert_uint_eq(a->u.add_addr.port, b->u.add_addr.port);
        ck_assert_mem_eq(a->u.add_addr.addr, b->u.add_addr.addr, a->u.add_addr.family == 4 ? 4 : 16);
        ck_assert_mem_eq(a->u.add_addr.hmac, b->u.add_addr.hmac, MPT_ADDR_HMAC_LEN);
        break;
    case MPT_FT_REMOVE_ADDR:
        ck_assert_uint_eq(a->u.remove_addr.n, b->u.remove_addr.n);
        ck_assert_mem_eq(a->u.remove_addr.ids, b->u.remove_addr.ids, a->u.remove_addr.n);
        break;
    case MPT_FT_PING:
    case MPT_FT_PONG:
        ck_assert_uint_eq(a->u.ping.opaque, b->u.ping.opaque);
        break;
    case MPT_FT_FASTCLOSE:
    case MPT_FT_ERROR:
        ck_assert_uint_eq(a->u.close.text_len, b->u.close.text_len);
        if (a->u.close.text_len)
            ck_assert_mem_eq(a->u.close.text, b->u.close.text, a->u.close.text_len);
        /* fall through */
    case MPT_FT_SUBFLOW_CLOSE:
        ck_assert_uint_eq(a->u.close.reason, b->u.close.reason);
        ck_assert_uint_eq(a->u.close.frame_type, b->u.close.frame_type);
        break;
    case MPT_FT_SUBFLOW_FAILED:
        ck_assert_uint_eq(a->u.sf_failed.reason, b->u.sf_failed.reason);
        ck_assert_mem_eq(a->u.sf_failed.nonce, b->u.sf_failed.nonce, MPT_NONCE_LEN);
        break;
    }
}

/* Encodes f into a fresh exact-size heap buffer, so ASan catches any read
 * past its end when the result is decoded. */
static uint8_t *encode_exact(const struct mpt_frame *f, size_t *n)
{
    ssize_t want = mpt_frame_encoded_len(f);
    uint8_t *buf;

    ck_assert_int_gt(want, 0);
    buf = malloc((size_t)want);
    ck_assert_ptr_nonnull(buf);
    ck_assert_rc(mpt_frame_encode(f, buf, (size_t)want), want);
    *n = (size_t)want;
    return buf;
}

/* Parses "01 00 00 28 ..." (spaces optional) into out; returns the length. */
static size_t hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned v;

    while (*s) {
        if (*s == ' ') {
            s++;
            continue;
        }
        ck_assert_int_eq(sscanf(s, "%2x", &v), 1);
        ck_assert_uint_lt(n, cap);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

/* A complete frame with the given header and a patterned body. */
static size_t raw_frame(uint8_t *out, uint8_t type, uint8_t flags, uint16_t blen)
{
    out[0] = type;
    out[1] = flags;
    out[2] = (uint8_t)(blen >> 8);
    out[3] = (uint8_t)blen;
    fill(out + 4, blen, 0x11);
    return 4u + blen;
}

START_TEST(roundtrip_every_type)
{
    struct mpt_frame in[MAX_SAMPLES], out;
    size_t n = samples(in);
    int seen[256] = {0};

    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *buf = encode_exact(&in[i], &len);

        ck_assert_rc(mpt_frame_decode(buf, len, MPT_FRAME_MAX_BODY, &out), (ssize_t)len);
        assert_same(&in[i], &out);
        free(buf);
        seen[in[i].type] = 1;
    }
    for (size_t i = 0; i < NKNOWN; i++)
        ck_assert_msg(seen[known[i].type], "no sample of %s", known[i].name);
}
END_TEST

/* Bytes after a frame belong to the next one: decode consumes exactly one. */
START_TEST(roundtrip_with_trailing_bytes)
{
    struct mpt_frame in[MAX_SAMPLES], out;
    size_t n = samples(in);
    static uint8_t buf[MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY + 16];

    for (size_t i = 0; i < n; i++) {
        ssize_t len = mpt_frame_encode(&in[i], buf, sizeof buf);

        ck_assert_int_gt(len, 0);
        memset(buf + len, 0xee, 16);
        ck_assert_rc(mpt_frame_decode(buf, (size_t)len + 16, MPT_FRAME_MAX_BODY, &out), len);
        assert_same(&in[i], &out);
    }
}
END_TEST

/* Round trips cannot catch a layout mistake made the same way on both sides;
 * these encodings are written out by hand from frame.h. */
START_TEST(exact_wire_bytes)
{
    struct mpt_frame f;
    uint8_t want[96], got[96];
    size_t n;

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_HELLO;
    f.u.hello.version_min = 1;
    f.u.hello.version_max = 2;
    f.u.hello.features = 0x0102;
    memset(f.u.hello.key, 0xaa, MPT_KEY_LEN);
    f.u.hello.window = 0x01020304;
    n = hex("01 00 0028 01 02 0102"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 01020304",
            want, sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_HELLO_ACK;
    f.u.hello_ack.version = 1;
    f.u.hello_ack.features = 0x0003;
    memset(f.u.hello_ack.key, 0xbb, MPT_KEY_LEN);
    memcpy(f.u.hello_ack.routing_id, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    f.u.hello_ack.window = 0x10000;
    n = hex("02 00 0030 01 00 0003"
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            "0102030405060708 00010000",
            want, sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_JOIN;
    f.flags = MPT_FF_JOIN_BACKUP;
    f.u.join.token = UINT64_C(0x0102030405060708);
    memset(f.u.join.nonce, 0xcc, MPT_NONCE_LEN);
    f.u.join.addr_id = 9;
    n = hex("03 01 001a 0102030405060708 cccccccccccccccccccccccccccccccc 09 00", want,
            sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_DATA;
    f.u.data.dsn = UINT64_C(0x1122334455667788);
    f.u.data.payload = (const uint8_t *)"hi";
    f.u.data.len = 2;
    n = hex("10 00 000a 1122334455667788 6869", want, sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_DATA_ACK;
    f.u.data_ack.ack = 100;
    f.u.data_ack.window = 0xabcdef01;
    f.u.data_ack.nranges = 1;
    f.u.data_ack.ranges[0] = (struct mpt_sack_range){200, 300};
    n = hex("11 00 001c 0000000000000064 abcdef01 00000000000000c8 000000000000012c", want,
            sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_ADD_ADDR;
    f.flags = MPT_FF_ADD_ADDR_ECHO;
    f.u.add_addr.addr_id = 7;
    f.u.add_addr.family = 4;
    f.u.add_addr.port = 443;
    memcpy(f.u.add_addr.addr, "\xc0\x00\x02\x01", 4);
    memset(f.u.add_addr.addr + 4, 0x99, 12); /* ignored for IPv4 */
    memset(f.u.add_addr.hmac, 0xdd, MPT_ADDR_HMAC_LEN);
    n = hex("20 01 0010 07 04 01bb c0000201 dddddddddddddddd", want, sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_ERROR;
    f.u.close.reason = MPT_REASON_PROTOCOL;
    f.u.close.frame_type = MPT_FT_DATA;
    f.u.close.text = (const uint8_t *)"bad";
    f.u.close.text_len = 3;
    n = hex("43 00 0008 00000001 10 626164", want, sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_REMOVE_ADDR;
    f.u.remove_addr.n = 3;
    memcpy(f.u.remove_addr.ids, "\x01\x02\x03", 3);
    n = hex("21 00 0003 010203", want, sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_PRIO;
    f.flags = MPT_FF_PRIO_BACKUP;
    n = hex("22 01 0000", want, sizeof want);
    ck_assert_rc(mpt_frame_encode(&f, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);
}
END_TEST

/* DATA and text are lent out of the input buffer, never copied. */
START_TEST(decode_borrows_payload)
{
    uint8_t buf[64];
    struct mpt_frame f;
    size_t n;

    n = hex("10 00 000b 0000000000000001 414243", buf, sizeof buf);
    ck_assert_rc(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f), (ssize_t)n);
    ck_assert_ptr_eq(f.u.data.payload, buf + MPT_DATA_HDR_LEN);
    ck_assert_uint_eq(f.u.data.len, 3);
    ck_assert_uint_eq(f.u.data.dsn, 1);

    n = hex("41 00 0006 00000006 6f6b", buf, sizeof buf);
    ck_assert_rc(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f), (ssize_t)n);
    ck_assert_ptr_eq(f.u.close.text, buf + 8);
    ck_assert_uint_eq(f.u.close.text_len, 2);

    n = hex("43 00 0007 00000001 21 6f6b", buf, sizeof buf);
    ck_assert_rc(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f), (ssize_t)n);
    ck_assert_ptr_eq(f.u.close.text, buf + 9);
    ck_assert_uint_eq(f.u.close.text_len, 2);
    ck_assert_uint_eq(f.u.close.frame_type, 0x21);
}
END_TEST

/* A valid frame cut anywhere is incomplete, never an error and never a
 * shorter frame. Small frames are copied into exact-size heap buffers so
 * ASan would flag a read past the cut. */
START_TEST(truncated_every_length)
{
    struct mpt_frame in[MAX_SAMPLES], out;
    size_t n = samples(in);

    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *buf = encode_exact(&in[i], &len);

        for (size_t cut = 0; cut < len; cut++) {
            int exact = len <= 1024 || cut < 64 || cut > len - 64;
            uint8_t *p = exact ? malloc(cut ? cut : 1) : buf;

            ck_assert_ptr_nonnull(p);
            if (exact)
                memcpy(p, buf, cut);
            ck_assert_msg(mpt_frame_decode(p, cut, MPT_FRAME_MAX_BODY, &out) == MPT_EINCOMPLETE,
                          "%s (%zu bytes) cut at %zu", mpt_frame_type_name(in[i].type), len, cut);
            if (exact)
                free(p);
        }
        free(buf);
    }
}
END_TEST

START_TEST(truncated_header)
{
    struct mpt_frame f;
    uint8_t b[4] = {MPT_FT_CLOSE, 0, 0, 0};

    ck_assert_rc(mpt_frame_decode(NULL, 0, MPT_FRAME_MAX_BODY, &f), MPT_EINCOMPLETE);
    ck_assert_rc(mpt_frame_decode(b, 0, MPT_FRAME_MAX_BODY, &f), MPT_EINCOMPLETE);
    ck_assert_rc(mpt_frame_decode(b, 3, MPT_FRAME_MAX_BODY, &f), MPT_EINCOMPLETE);
    ck_assert_rc(mpt_frame_decode(b, 4, MPT_FRAME_MAX_BODY, &f), 4);
    ck_assert_rc(mpt_frame_decode(b, 4, MPT_FRAME_MAX_BODY, NULL), MPT_EINVAL);
}
END_TEST

/* Malformed frames, each complete, each wrong in exactly one way. */
static const struct bad {
    const char *what;
    const char *hex;
    int want;
} bad_frames[] = {
    /* unknown mandatory types */
    {"type 0", "00 00 0000", MPT_EFRAME_TYPE},
    {"type 0x06", "06 00 0000", MPT_EFRAME_TYPE},
    {"type 0x13 with body", "13 00 0002 0000", MPT_EFRAME_TYPE},
    {"type 0x7f", "7f ff 0001 00", MPT_EFRAME_TYPE},
    /* reserved fields */
    {"HELLO_ACK reserved byte", "02 00 0030 01 01 0000"
                                "0000000000000000000000000000000000000000000000000000000000000000"
                                "0000000000000000 00000000",
     MPT_EFRAME_RESERVED},
    {"JOIN reserved byte", "03 00 001a 0000000000000000 00000000000000000000000000000000 00 80",
     MPT_EFRAME_RESERVED},
    /* values */
    {"empty DATA", "10 00 0008 0000000000000000", MPT_EFRAME_VALUE},
    {"ADD_ADDR family 0", "20 00 0010 01 00 0050 7f000001 0000000000000000", MPT_EFRAME_VALUE},
    {"ADD_ADDR family 5", "20 00 0010 01 05 0050 7f000001 0000000000000000", MPT_EFRAME_VALUE},
    {"ADD_ADDR family 255",
     "20 00 001c 01 ff 0050 00000000000000000000000000000001 0000000000000000", MPT_EFRAME_VALUE},
    {"ADD_ADDR IPv4 with IPv6 length",
     "20 00 001c 01 04 0050 00000000000000000000000000000001 0000000000000000", MPT_EFRAME_LEN},
    {"ADD_ADDR IPv6 with IPv4 length", "20 00 0010 01 06 0050 7f000001 0000000000000000",
     MPT_EFRAME_LEN},
    {"range start == ack", "11 00 001c 0000000000000064 00000000 0000000000000064 0000000000000070",
     MPT_EFRAME_VALUE},
    {"range start below ack",
     "11 00 001c 0000000000000064 00000000 0000000000000063 0000000000000070", MPT_EFRAME_VALUE},
    {"empty range", "11 00 001c 0000000000000064 00000000 0000000000000070 0000000000000070",
     MPT_EFRAME_VALUE},
    {"reversed range", "11 00 001c 0000000000000064 00000000 0000000000000070 0000000000000068",
     MPT_EFRAME_VALUE},
    {"overlapping ranges",
     "11 00 002c 0000000000000064 00000000 0000000000000070 0000000000000080"
     "000000000000007f 0000000000000090",
     MPT_EFRAME_VALUE},
    {"descending ranges",
     "11 00 002c 0000000000000064 00000000 0000000000000090 00000000000000a0"
     "0000000000000070 0000000000000080",
     MPT_EFRAME_VALUE},
    {"duplicate ranges",
     "11 00 002c 0000000000000064 00000000 0000000000000070 0000000000000080"
     "0000000000000070 0000000000000080",
     MPT_EFRAME_VALUE},
    {"range behind ack across the wrap",
     "11 00 001c 0000000000000005 00000000 fffffffffffffff0 fffffffffffffff8", MPT_EFRAME_VALUE},
    {"range ending 2^63 above ack",
     "11 00 001c 0000000000000000 00000000 0000000000000001 8000000000000000", MPT_EFRAME_VALUE},
    {"ranges reaching past half the DSN space",
     "11 00 003c 0000000000000000 00000000 0000000000000001 4000000000000000"
     "4000000000000000 8000000000000000 8000000000000000 c000000000000000",
     MPT_EFRAME_VALUE},
    {"bad fourth range",
     "11 00 004c 0000000000000000 00000000 0000000000000001 0000000000000002"
     "0000000000000003 0000000000000004 0000000000000005 0000000000000006"
     "0000000000000007 0000000000000007",
     MPT_EFRAME_VALUE},
};

START_TEST(invalid_fields)
{
    struct mpt_frame f;
    uint8_t buf[256];

    for (size_t i = 0; i < sizeof bad_frames / sizeof bad_frames[0]; i++) {
        const struct bad *b = &bad_frames[i];
        size_t n = hex(b->hex, buf, sizeof buf);

        ck_assert_msg((size_t)(buf[2] << 8 | buf[3]) + 4 == n, "%s: table entry length", b->what);
        ck_assert_msg(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f) == b->want,
                      "%s: got %s want %s", b->what,
                      mpt_err_name((int)mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f)),
                      mpt_err_name(b->want));
    }
}
END_TEST

/* Truncating a malformed frame never makes it succeed. None of these has a
 * header that is wrong on its own (bad_lengths covers those), so every cut
 * is merely incomplete: the fault is only reported once the frame is whole. */
START_TEST(invalid_fields_truncated)
{
    struct mpt_frame f;
    uint8_t buf[256];

    for (size_t i = 0; i < sizeof bad_frames / sizeof bad_frames[0]; i++) {
        const struct bad *b = &bad_frames[i];
        size_t n = hex(b->hex, buf, sizeof buf);

        for (size_t cut = 0; cut < n; cut++) {
            uint8_t *p = malloc(cut ? cut : 1);
            ssize_t rc;

            memcpy(p, buf, cut);
            rc = mpt_frame_decode(p, cut, MPT_FRAME_MAX_BODY, &f);
            free(p);
            ck_assert_msg(rc == MPT_EINCOMPLETE, "%s cut at %zu: %s", b->what, cut,
                          mpt_err_name((int)rc));
        }
    }
}
END_TEST

/* Every length outside a type's rule is MPT_EFRAME_LEN, from the header
 * alone (the body need not have arrived) and with the body present. */
START_TEST(bad_lengths)
{
    static const struct {
        uint8_t type;
        uint16_t blen;
    } cases[] = {
        {MPT_FT_HELLO, 0},         {MPT_FT_HELLO, 39},         {MPT_FT_HELLO, 41},
        {MPT_FT_HELLO_ACK, 47},    {MPT_FT_HELLO_ACK, 49},     {MPT_FT_JOIN, 25},
        {MPT_FT_JOIN, 27},         {MPT_FT_JOIN_ACK, 47},      {MPT_FT_JOIN_ACK, 49},
        {MPT_FT_JOIN_CONFIRM, 31}, {MPT_FT_JOIN_CONFIRM, 33},  {MPT_FT_DATA, 0},
        {MPT_FT_DATA, 7},          {MPT_FT_DATA_ACK, 0},       {MPT_FT_DATA_ACK, 11},
        {MPT_FT_DATA_ACK, 13},     {MPT_FT_DATA_ACK, 27},      {MPT_FT_DATA_ACK, 29},
        {MPT_FT_DATA_ACK, 75},     {MPT_FT_DATA_ACK, 12 + 16 * 5}, {MPT_FT_DATA_FIN, 7},
        {MPT_FT_DATA_FIN, 9},      {MPT_FT_ADD_ADDR, 0},       {MPT_FT_ADD_ADDR, 15},
        {MPT_FT_ADD_ADDR, 17},     {MPT_FT_ADD_ADDR, 20},      {MPT_FT_ADD_ADDR, 27},
        {MPT_FT_ADD_ADDR, 29},     {MPT_FT_REMOVE_ADDR, 0},    {MPT_FT_REMOVE_ADDR, 33},
        {MPT_FT_PRIO, 1},          {MPT_FT_PING, 0},           {MPT_FT_PING, 7},
        {MPT_FT_PING, 9},          {MPT_FT_PONG, 7},           {MPT_FT_PONG, 9},
        {MPT_FT_CLOSE, 1},         {MPT_FT_CLOSE, 65535},      {MPT_FT_FASTCLOSE, 0},
        {MPT_FT_FASTCLOSE, 3},     {MPT_FT_FASTCLOSE, 260},    {MPT_FT_SUBFLOW_CLOSE, 3},
        {MPT_FT_SUBFLOW_CLOSE, 5}, {MPT_FT_ERROR, 4},          {MPT_FT_ERROR, 261},
        {MPT_FT_SUBFLOW_FAILED, 19}, {MPT_FT_SUBFLOW_FAILED, 21},
    };
    static uint8_t buf[4 + 65535];
    struct mpt_frame f;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = raw_frame(buf, cases[i].type, 0, cases[i].blen);

        ck_assert_msg(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f) == MPT_EFRAME_LEN,
                      "%s len %u", mpt_frame_type_name(cases[i].type), cases[i].blen);
        ck_assert_msg(mpt_frame_decode(buf, 4, MPT_FRAME_MAX_BODY, &f) == MPT_EFRAME_LEN,
                      "%s len %u, header only", mpt_frame_type_name(cases[i].type),
                      cases[i].blen);
    }
}
END_TEST

/* Flag bits a type does not define are rejected, for every type and bit. */
START_TEST(reserved_flags)
{
    struct mpt_frame in[MAX_SAMPLES], f;
    size_t n = samples(in);

    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *buf = encode_exact(&in[i], &len);
        uint8_t allowed = 0;

        for (size_t k = 0; k < NKNOWN; k++)
            if (known[k].type == in[i].type)
                allowed = known[k].flags;
        for (unsigned bit = 0; bit < 8; bit++) {
            uint8_t saved = buf[1];

            buf[1] |= (uint8_t)(1u << bit);
            if (allowed & (1u << bit))
                ck_assert_rc(mpt_frame_decode(buf, len, MPT_FRAME_MAX_BODY, &f), (ssize_t)len);
            else
                ck_assert_msg(mpt_frame_decode(buf, len, MPT_FRAME_MAX_BODY, &f) ==
                                  MPT_EFRAME_RESERVED,
                              "%s flag bit %u", mpt_frame_type_name(in[i].type), bit);
            buf[1] = saved;
        }
        free(buf);
    }
}
END_TEST

/* Every type byte: known ones decode, unknown ones are an error unless the
 * ignorable bit is set, in which case they are skipped whatever they hold. */
START_TEST(unknown_types)
{
    static uint8_t buf[4 + 300];
    struct mpt_frame f;

    for (unsigned t = 0; t < 256; t++) {
        size_t n;

        if (is_known((uint8_t)t))
            continue;
        ck_assert_str_eq(mpt_frame_type_name((uint8_t)t), "UNKNOWN");
        n = raw_frame(buf, (uint8_t)t, 0, 0);
        ck_assert_rc(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f),
                     t & MPT_FT_IGNORABLE ? 4 : MPT_EFRAME_TYPE);
        n = raw_frame(buf, (uint8_t)t, 0xff, 300);
        memset(&f, 0x5a, sizeof f);
        ck_assert_rc(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f),
                     t & MPT_FT_IGNORABLE ? 304 : MPT_EFRAME_TYPE);
        if (t & MPT_FT_IGNORABLE) {
            ck_assert_uint_eq(f.type, t);
            ck_assert_uint_eq(f.flags, 0);
            /* ...and, like any frame, incomplete until all of it is there. */
            ck_assert_rc(mpt_frame_decode(buf, n - 1, MPT_FRAME_MAX_BODY, &f), MPT_EINCOMPLETE);
        }
    }
}
END_TEST

START_TEST(max_body)
{
    static uint8_t buf[4 + 65535];
    struct mpt_frame f;
    size_t n;

    /* Refused from the header alone, before the body arrives. */
    n = raw_frame(buf, MPT_FT_DATA, 0, 100);
    ck_assert_rc(mpt_frame_decode(buf, 4, 99, &f), MPT_EFRAME_TOOBIG);
    ck_assert_rc(mpt_frame_decode(buf, n, 99, &f), MPT_EFRAME_TOOBIG);
    ck_assert_rc(mpt_frame_decode(buf, 4, 100, &f), MPT_EINCOMPLETE);
    ck_assert_rc(mpt_frame_decode(buf, n, 100, &f), (ssize_t)n);

    /* Applies to frames we would skip and to frames we do not know. */
    n = raw_frame(buf, 0x99, 0, 50);
    ck_assert_rc(mpt_frame_decode(buf, 4, 49, &f), MPT_EFRAME_TOOBIG);
    ck_assert_rc(mpt_frame_decode(buf, n, 50, &f), (ssize_t)n);
    n = raw_frame(buf, 0x19, 0, 50);
    ck_assert_rc(mpt_frame_decode(buf, 4, 49, &f), MPT_EFRAME_TOOBIG);

    /* The limit is checked before the type's length rule. */
    n = raw_frame(buf, MPT_FT_HELLO, 0, 41);
    ck_assert_rc(mpt_frame_decode(buf, n, 40, &f), MPT_EFRAME_TOOBIG);

    /* Zero allows only empty bodies. */
    n = raw_frame(buf, MPT_FT_CLOSE, 0, 0);
    ck_assert_rc(mpt_frame_decode(buf, n, 0, &f), 4);
    n = raw_frame(buf, MPT_FT_PING, 0, 8);
    ck_assert_rc(mpt_frame_decode(buf, 4, 0, &f), MPT_EFRAME_TOOBIG);

    /* The largest frame there is, under the largest limit and beyond it. */
    n = raw_frame(buf, MPT_FT_DATA, 0, 65535);
    ck_assert_rc(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY, &f), (ssize_t)n);
    ck_assert_uint_eq(f.u.data.len, MPT_FRAME_MAX_DATA);
    ck_assert_rc(mpt_frame_decode(buf, n, SIZE_MAX, &f), (ssize_t)n);
    ck_assert_rc(mpt_frame_decode(buf, n, MPT_FRAME_MAX_BODY - 1, &f), MPT_EFRAME_TOOBIG);
}
END_TEST

START_TEST(encode_too_small)
{
    struct mpt_frame in[MAX_SAMPLES];
    size_t n = samples(in);
    static uint8_t buf[4 + 65535];

    for (size_t i = 0; i < n; i++) {
        ssize_t len = mpt_frame_encoded_len(&in[i]);

        ck_assert_int_gt(len, 0);
        ck_assert_rc(mpt_frame_encode(&in[i], buf, 0), MPT_ENOBUFS);
        ck_assert_rc(mpt_frame_encode(&in[i], NULL, 0), MPT_ENOBUFS);
        ck_assert_rc(mpt_frame_encode(&in[i], buf, (size_t)len - 1), MPT_ENOBUFS);
        if (len < 1024) {
            for (ssize_t cap = 0; cap < len; cap++) {
                memset(buf, 0xee, (size_t)len);
                ck_assert_rc(mpt_frame_encode(&in[i], buf, (size_t)cap), MPT_ENOBUFS);
                for (ssize_t k = 0; k < len; k++)
                    ck_assert_uint_eq(buf[k], 0xee);
            }
        }
        ck_assert_rc(mpt_frame_encode(&in[i], buf, (size_t)len), len);
        ck_assert_rc(mpt_frame_encode(&in[i], buf, sizeof buf), len);
    }
}
END_TEST

/* The encoder refuses, with the decoder's error codes, anything the decoder
 * would refuse, so it can never emit an invalid frame. */
START_TEST(encode_invalid)
{
    struct mpt_frame f;
    uint8_t buf[512];
    static const uint8_t payload[1] = {0};

#define EXPECT_BAD(code)                                                                         \
    do {                                                                                         \
        ck_assert_rc(mpt_frame_encoded_len(&f), (code));                                         \
        ck_assert_rc(mpt_frame_encode(&f, buf, sizeof buf), (code));                             \
    } while (0)

    memset(&f, 0, sizeof f);
    f.type = 0x06;
    EXPECT_BAD(MPT_EFRAME_TYPE);
    f.type = 0x80; /* ignorable types have no layout to encode */
    EXPECT_BAD(MPT_EFRAME_TYPE);
    f.type = MPT_FT_CLOSE;
    f.flags = 1;
    EXPECT_BAD(MPT_EFRAME_RESERVED);
    f.type = MPT_FT_JOIN;
    f.flags = 2;
    EXPECT_BAD(MPT_EFRAME_RESERVED);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_DATA;
    f.u.data.payload = payload;
    EXPECT_BAD(MPT_EFRAME_VALUE);
    f.u.data.len = MPT_FRAME_MAX_DATA + 1;
    EXPECT_BAD(MPT_EFRAME_TOOBIG);
    f.u.data.len = 1;
    f.u.data.payload = NULL;
    EXPECT_BAD(MPT_EINVAL);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_DATA_ACK;
    f.u.data_ack.nranges = MPT_FRAME_MAX_SACK + 1;
    for (int i = 0; i < MPT_FRAME_MAX_SACK; i++)
        f.u.data_ack.ranges[i] = (struct mpt_sack_range){2u * i + 1, 2u * i + 2};
    EXPECT_BAD(MPT_EFRAME_LEN);
    f.u.data_ack.nranges = MPT_FRAME_MAX_SACK;
    ck_assert_rc(mpt_frame_encoded_len(&f), 4 + 12 + 16 * MPT_FRAME_MAX_SACK);
    f.u.data_ack.ranges[2].start = 3; /* overlaps range 1 */
    EXPECT_BAD(MPT_EFRAME_VALUE);
    f.u.data_ack.nranges = 1;
    f.u.data_ack.ack = 1; /* range 0 starts at the ack */
    EXPECT_BAD(MPT_EFRAME_VALUE);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_ADD_ADDR;
    f.u.add_addr.family = 5;
    EXPECT_BAD(MPT_EFRAME_VALUE);
    f.u.add_addr.family = 0;
    EXPECT_BAD(MPT_EFRAME_VALUE);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_REMOVE_ADDR;
    EXPECT_BAD(MPT_EFRAME_LEN);
    f.u.remove_addr.n = MPT_FRAME_MAX_REMOVE + 1;
    EXPECT_BAD(MPT_EFRAME_LEN);

    memset(&f, 0, sizeof f);
    f.type = MPT_FT_FASTCLOSE;
    f.u.close.text = text255;
    f.u.close.text_len = MPT_FRAME_MAX_TEXT + 1;
    EXPECT_BAD(MPT_EFRAME_LEN);
    f.type = MPT_FT_ERROR;
    EXPECT_BAD(MPT_EFRAME_LEN);
    f.u.close.text = NULL;
    f.u.close.text_len = 1;
    EXPECT_BAD(MPT_EINVAL);
#undef EXPECT_BAD

    ck_assert_rc(mpt_frame_encoded_len(NULL), MPT_EINVAL);
    ck_assert_rc(mpt_frame_encode(NULL, buf, sizeof buf), MPT_EINVAL);
    memset(&f, 0, sizeof f);
    f.type = MPT_FT_CLOSE;
    ck_assert_rc(mpt_frame_encode(&f, NULL, 64), MPT_EINVAL);
}
END_TEST

START_TEST(data_header)
{
    static uint8_t frame[MPT_DATA_HDR_LEN + MPT_FRAME_MAX_DATA];
    static const size_t lens[] = {1, 2, 1000, MPT_FRAME_MAX_DATA};
    uint8_t hdr[MPT_DATA_HDR_LEN];
    struct mpt_frame f, g;

    fill(big_payload, sizeof big_payload, 3);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint64_t dsn = i % 2 ? UINT64_MAX : 0;

        ck_assert_rc(mpt_frame_data_header(dsn, lens[i], hdr), MPT_DATA_HDR_LEN);
        /* Identical to what mpt_frame_encode() writes for the same frame. */
        memset(&f, 0, sizeof f);
        f.type = MPT_FT_DATA;
        f.u.data.dsn = dsn;
        f.u.data.payload = big_payload;
        f.u.data.len = lens[i];
        ck_assert_rc(mpt_frame_encode(&f, frame, sizeof frame), (ssize_t)(MPT_DATA_HDR_LEN + lens[i]));
        ck_assert_mem_eq(frame, hdr, MPT_DATA_HDR_LEN);
        ck_assert_rc(mpt_frame_decode(frame, MPT_DATA_HDR_LEN + lens[i], MPT_FRAME_MAX_BODY, &g),
                     (ssize_t)(MPT_DATA_HDR_LEN + lens[i]));
        assert_same(&f, &g);
    }
    ck_assert_rc(mpt_frame_data_header(0, 0, hdr), MPT_EINVAL);
    ck_assert_rc(mpt_frame_data_header(0, MPT_FRAME_MAX_DATA + 1, hdr), MPT_EINVAL);
    ck_assert_rc(mpt_frame_data_header(0, 1, NULL), MPT_EINVAL);
}
END_TEST

START_TEST(type_names)
{
    for (size_t i = 0; i < NKNOWN; i++)
        ck_assert_str_eq(mpt_frame_type_name(known[i].type), known[i].name);
    ck_assert_str_eq(mpt_frame_type_name(0), "UNKNOWN");
    ck_assert_str_eq(mpt_frame_type_name(0x80), "UNKNOWN");
    ck_assert_str_eq(mpt_frame_type_name(0xff), "UNKNOWN");
}
END_TEST

/* A preamble then every sample frame, with ignorable frames between, laid
 * end to end as on a subflow. */
static size_t build_stream(uint8_t *out, size_t cap, struct mpt_frame *in, size_t *nframes)
{
    struct mpt_preamble p = {.version = MPT_PROTO_VERSION, .kind = MPT_PRE_JOIN,
                             .flags = MPT_PREF_TLS, .routing_id = {1, 2, 3, 4, 5, 6, 7, 8}};
    size_t off = 0;
    ssize_t r;

    *nframes = samples(in);
    r = mpt_preamble_encode(&p, out, cap);
    ck_assert_rc(r, MPT_PREAMBLE_JOIN_LEN);
    off += (size_t)r;
    for (size_t i = 0; i < *nframes; i++) {
        r = mpt_frame_encode(&in[i], out + off, cap - off);
        ck_assert_int_gt(r, 0);
        off += (size_t)r;
        if (i % 3 == 0) {
            ck_assert_uint_le(off + 4 + i, cap);
            off += raw_frame(out + off, (uint8_t)(0x80 + i), (uint8_t)i, (uint16_t)i);
        }
    }
    return off;
}

START_TEST(stream_in_sequence)
{
    static uint8_t buf[200000];
    struct mpt_frame in[MAX_SAMPLES], f;
    struct mpt_preamble p;
    size_t nframes, total = build_stream(buf, sizeof buf, in, &nframes), off = 0, got = 0;
    ssize_t r;

    r = mpt_preamble_decode(buf, total, &p);
    ck_assert_rc(r, MPT_PREAMBLE_JOIN_LEN);
    ck_assert_uint_eq(p.kind, MPT_PRE_JOIN);
    off = (size_t)r;
    while (off < total) {
        r = mpt_frame_decode(buf + off, total - off, MPT_FRAME_MAX_BODY, &f);
        ck_assert_int_gt(r, 0);
        off += (size_t)r;
        if ((f.type & MPT_FT_IGNORABLE) && !is_known(f.type))
            continue;
        ck_assert_uint_lt(got, nframes);
        assert_same(&in[got], &f);
        got++;
    }
    ck_assert_uint_eq(off, total);
    ck_assert_uint_eq(got, nframes);
}
END_TEST

/* The same stream arriving one byte at a time, as from a slow socket: the
 * decoder says "incomplete" until each frame is whole, then returns it. */
START_TEST(stream_byte_by_byte)
{
    static uint8_t buf[200000];
    struct mpt_frame in[MAX_SAMPLES], f;
    struct mpt_preamble p;
    size_t nframes, total = build_stream(buf, sizeof buf, in, &nframes), off = 0, got = 0;
    size_t avail;
    ssize_t r;

    for (avail = 0;; avail++) {
        r = mpt_preamble_decode(buf, avail, &p);
        if (r != MPT_EINCOMPLETE)
            break;
    }
    ck_assert_rc(r, MPT_PREAMBLE_JOIN_LEN);
    ck_assert_uint_eq(avail, MPT_PREAMBLE_JOIN_LEN);
    off = (size_t)r;
    for (; avail <= total; avail++) {
        r = mpt_frame_decode(buf + off, avail - off, MPT_FRAME_MAX_BODY, &f);
        if (r == MPT_EINCOMPLETE)
            continue;
        ck_assert_rc(r, (ssize_t)(avail - off)); /* exactly when the last byte arrives */
        off += (size_t)r;
        if (!(f.type & MPT_FT_IGNORABLE) || is_known(f.type))
            assert_same(&in[got++], &f);
    }
    ck_assert_uint_eq(off, total);
    ck_assert_uint_eq(got, nframes);
}
END_TEST

/* The byte dumps of doc/protocol.md, Appendix A, decoded and re-encoded. */
START_TEST(protocol_md_examples)
{
    static const char *const streams[] = {
        /* A.1 preamble (NEW) + HELLO */
        "4d50544c01000000 01000028 01 01 0001"
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 00040000",
        /* A.2 HELLO_ACK */
        "02000030 01 00 0001"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "c39a510e7d2248f1 00100000",
        /* A.3 DATA, DATA_ACK, DATA_FIN */
        "1000000d abc1b8581bd710dd 68656c6c6f"
        "1100000c abc1b8581bd710e2 00100000"
        "12000008 abc1b8581bd710e2",
        /* A.4 preamble (JOIN) + JOIN, JOIN_ACK, JOIN_CONFIRM */
        "4d50544c01010000 c39a510e7d2248f1"
        "0300001a 72dbb7336c767800 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf 01 00"
        "04000030 b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "f4f09c3706f5268d60b4a81e183f55a885d9841e485314b7420f43c9ceff9ae9"
        "05000020 8fd2267e1ca6da88b27cee88f7d2c4165d3ba7cae64e1a4bdb41c09f29c9dcfb",
        /* A.5 ADD_ADDR and its echo */
        "20000010 01 04 01bb c0000201 bdf84865a686f90b"
        "20010010 01 04 01bb c0000201 bdf84865a686f90b",
    };
    static const uint8_t types[][4] = {
        {MPT_FT_HELLO},
        {MPT_FT_HELLO_ACK},
        {MPT_FT_DATA, MPT_FT_DATA_ACK, MPT_FT_DATA_FIN},
        {MPT_FT_JOIN, MPT_FT_JOIN_ACK, MPT_FT_JOIN_CONFIRM},
        {MPT_FT_ADD_ADDR, MPT_FT_ADD_ADDR},
    };
    uint8_t buf[256], again[256];
    struct mpt_frame f[4];
    struct mpt_preamble p;

    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        size_t n = hex(streams[i], buf, sizeof buf), off = 0, k = 0;
        ssize_t r;

        if (buf[0] == 'M') {
            r = mpt_preamble_decode(buf, n, &p);
            ck_assert_int_gt(r, 0);
            ck_assert_rc(mpt_preamble_encode(&p, again, sizeof again), r);
            ck_assert_mem_eq(again, buf, (size_t)r);
            off = (size_t)r;
        }
        for (; off < n; off += (size_t)r, k++) {
            ck_assert_uint_lt(k, 4);
            r = mpt_frame_decode(buf + off, n - off, MPT_FRAME_MAX_BODY, &f[k]);
            ck_assert_int_gt(r, 0);
            ck_assert_uint_eq(f[k].type, types[i][k]);
            ck_assert_rc(mpt_frame_encode(&f[k], again, sizeof again), r);
            ck_assert_mem_eq(again, buf + off, (size_t)r);
        }
        ck_assert_uint_eq(off, n);
        switch (i) {
        case 0:
            ck_assert_uint_eq(p.kind, MPT_PRE_NEW);
            ck_assert_uint_eq(p.version, 1);
            ck_assert_uint_eq(f[0].u.hello.version_min, 1);
            ck_assert_uint_eq(f[0].u.hello.version_max, 1);
            ck_assert_uint_eq(f[0].u.hello.features, MPT_FEAT_SACK);
            ck_assert_uint_eq(f[0].u.hello.key[31], 0x1f);
            ck_assert_uint_eq(f[0].u.hello.window, 262144);
            break;
        case 1:
            ck_assert_uint_eq(f[0].u.hello_ack.version, 1);
            ck_assert_uint_eq(f[0].u.hello_ack.features, MPT_FEAT_SACK);
            ck_assert_uint_eq(f[0].u.hello_ack.key[0], 0x20);
            ck_assert_mem_eq(f[0].u.hello_ack.routing_id, "\xc3\x9a\x51\x0e\x7d\x22\x48\xf1", 8);
            ck_assert_uint_eq(f[0].u.hello_ack.window, 1048576);
            break;
        case 2:
            ck_assert_uint_eq(f[0].u.data.dsn, UINT64_C(0xabc1b8581bd710dd));
            ck_assert_uint_eq(f[0].u.data.len, 5);
            ck_assert_mem_eq(f[0].u.data.payload, "hello", 5);
            ck_assert_uint_eq(f[1].u.data_ack.ack, UINT64_C(0xabc1b8581bd710e2));
            ck_assert_uint_eq(f[1].u.data_ack.window, 1048576);
            ck_assert_uint_eq(f[1].u.data_ack.nranges, 0);
            ck_assert_uint_eq(f[2].u.data_fin.dsn, UINT64_C(0xabc1b8581bd710e2));
            break;
        case 3:
            ck_assert_uint_eq(p.kind, MPT_PRE_JOIN);
            ck_assert_mem_eq(p.routing_id, "\xc3\x9a\x51\x0e\x7d\x22\x48\xf1", 8);
            ck_assert_uint_eq(f[0].flags, 0);
            ck_assert_uint_eq(f[0].u.join.token, UINT64_C(0x72dbb7336c767800));
            ck_assert_uint_eq(f[0].u.join.nonce[15], 0xaf);
            ck_assert_uint_eq(f[0].u.join.addr_id, 1);
            ck_assert_uint_eq(f[1].u.join_ack.nonce[0], 0xb0);
            ck_assert_uint_eq(f[1].u.join_ack.hmac[0], 0xf4);
            ck_assert_uint_eq(f[2].u.join_confirm.hmac[31], 0xfb);
            break;
        case 4:
            ck_assert_uint_eq(f[0].flags, 0);
            ck_assert_uint_eq(f[1].flags, MPT_FF_ADD_ADDR_ECHO);
            ck_assert_uint_eq(f[0].u.add_addr.addr_id, 1);
            ck_assert_uint_eq(f[0].u.add_addr.family, 4);
            ck_assert_uint_eq(f[0].u.add_addr.port, 443);
            ck_assert_mem_eq(f[0].u.add_addr.addr, "\xc0\x00\x02\x01", 4);
            ck_assert_mem_eq(f[0].u.add_addr.hmac, "\xbd\xf8\x48\x65\xa6\x86\xf9\x0b", 8);
            break;
        }
    }
}
END_TEST

START_TEST(preamble_roundtrip)
{
    static const struct mpt_preamble cases[] = {
        {.version = 0, .kind = MPT_PRE_NEW, .flags = 0},
        {.version = 255, .kind = MPT_PRE_NEW, .flags = MPT_PREF_TLS},
        {.version = 1, .kind = MPT_PRE_JOIN, .flags = 0, .routing_id = {0}},
        {.version = 1, .kind = MPT_PRE_JOIN, .flags = MPT_PREF_TLS,
         .routing_id = {0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8}},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct mpt_preamble *c = &cases[i];
        size_t need = c->kind == MPT_PRE_JOIN ? MPT_PREAMBLE_JOIN_LEN : MPT_PREAMBLE_NEW_LEN;
        uint8_t buf[MPT_PREAMBLE_MAX_LEN + 4];
        struct mpt_preamble p;

        memset(buf, 0xee, sizeof buf);
        ck_assert_rc(mpt_preamble_encode(c, buf, need - 1), MPT_ENOBUFS);
        ck_assert_rc(mpt_preamble_encode(c, buf, sizeof buf), (ssize_t)need);
        ck_assert_mem_eq(buf, "MPTL", 4);
        ck_assert_uint_eq(buf[7], 0);
        /* Extra bytes after it are the first frame's, not the preamble's. */
        memset(&p, 0x5a, sizeof p);
        ck_assert_rc(mpt_preamble_decode(buf, sizeof buf, &p), (ssize_t)need);
        ck_assert_uint_eq(p.version, c->version);
        ck_assert_uint_eq(p.kind, c->kind);
        ck_assert_uint_eq(p.flags, c->flags);
        ck_assert_mem_eq(p.routing_id, c->routing_id, MPT_ROUTING_ID_LEN);
        for (size_t cut = 0; cut < need; cut++) {
            uint8_t *q = malloc(cut ? cut : 1);

            memcpy(q, buf, cut);
            ck_assert_rc(mpt_preamble_decode(q, cut, &p), MPT_EINCOMPLETE);
            free(q);
        }
    }
}
END_TEST

START_TEST(preamble_exact_bytes)
{
    struct mpt_preamble p = {.version = 1, .kind = MPT_PRE_JOIN, .flags = MPT_PREF_TLS,
                             .routing_id = {1, 2, 3, 4, 5, 6, 7, 8}};
    uint8_t want[16], got[16];
    size_t n = hex("4d50544c 01 01 01 00 0102030405060708", want, sizeof want);

    ck_assert_rc(mpt_preamble_encode(&p, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);
    p.kind = MPT_PRE_NEW;
    n = hex("4d50544c 01 00 01 00", want, sizeof want);
    ck_assert_rc(mpt_preamble_encode(&p, got, sizeof got), (ssize_t)n);
    ck_assert_mem_eq(got, want, n);
}
END_TEST

START_TEST(preamble_invalid)
{
    struct mpt_preamble p;
    uint8_t buf[16];
    size_t n;

    n = hex("4d50544c 01 02 00 00", buf, sizeof buf); /* kind 2 */
    ck_assert_rc(mpt_preamble_decode(buf, n, &p), MPT_EPREAMBLE);
    n = hex("4d50544c 01 ff 00 00", buf, sizeof buf);
    ck_assert_rc(mpt_preamble_decode(buf, n, &p), MPT_EPREAMBLE);
    n = hex("4d50544d 01 00 00 00", buf, sizeof buf); /* "MPTM" */
    ck_assert_rc(mpt_preamble_decode(buf, n, &p), MPT_EPREAMBLE);
    n = hex("4d50544c 01 00 02 00", buf, sizeof buf); /* undefined flag */
    ck_assert_rc(mpt_preamble_decode(buf, n, &p), MPT_EFRAME_RESERVED);
    n = hex("4d50544c 01 00 80 00", buf, sizeof buf);
    ck_assert_rc(mpt_preamble_decode(buf, n, &p), MPT_EFRAME_RESERVED);
    n = hex("4d50544c 01 00 00 01", buf, sizeof buf); /* reserved byte */
    ck_assert_rc(mpt_preamble_decode(buf, n, &p), MPT_EFRAME_RESERVED);
    /* A bad kind is known before the routing id arrives. */
    n = hex("4d50544c 01 07 00 00", buf, sizeof buf);
    ck_assert_rc(mpt_preamble_decode(buf, n, &p), MPT_EPREAMBLE);

    /* Something that is not libmpt at all (here, TLS or HTTP) is refused as
     * soon as the first byte that differs from the magic arrives. */
    n = hex("16 03 01 00 a5", buf, sizeof buf);
    ck_assert_rc(mpt_preamble_decode(buf, 1, &p), MPT_EPREAMBLE);
    ck_assert_rc(mpt_preamble_decode(buf, n, &p), MPT_EPREAMBLE);
    ck_assert_rc(mpt_preamble_decode((const uint8_t *)"MPG", 3, &p), MPT_EPREAMBLE);
    ck_assert_rc(mpt_preamble_decode((const uint8_t *)"MPT", 3, &p), MPT_EINCOMPLETE);
    ck_assert_rc(mpt_preamble_decode(NULL, 0, &p), MPT_EINCOMPLETE);
    ck_assert_rc(mpt_preamble_decode(buf, n, NULL), MPT_EINVAL);

    /* The encoder refuses what the decoder would. */
    memset(&p, 0, sizeof p);
    p.kind = 2;
    ck_assert_rc(mpt_preamble_encode(&p, buf, sizeof buf), MPT_EINVAL);
    p.kind = MPT_PRE_NEW;
    p.flags = 0x02;
    ck_assert_rc(mpt_preamble_encode(&p, buf, sizeof buf), MPT_EINVAL);
    ck_assert_rc(mpt_preamble_encode(NULL, buf, sizeof buf), MPT_EINVAL);
    p.flags = 0;
    ck_assert_rc(mpt_preamble_encode(&p, buf, MPT_PREAMBLE_NEW_LEN), MPT_PREAMBLE_NEW_LEN);
    p.kind = MPT_PRE_JOIN;
    ck_assert_rc(mpt_preamble_encode(&p, buf, MPT_PREAMBLE_JOIN_LEN - 1), MPT_ENOBUFS);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("codec");
    TCase *tp = tcase_create("preamble");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, roundtrip_every_type);
    tcase_add_test(tc, roundtrip_with_trailing_bytes);
    tcase_add_test(tc, exact_wire_bytes);
    tcase_add_test(tc, decode_borrows_payload);
    tcase_add_test(tc, truncated_every_length);
    tcase_add_test(tc, truncated_header);
    tcase_add_test(tc, invalid_fields);
    tcase_add_test(tc, invalid_fields_truncated);
    tcase_add_test(tc, bad_lengths);
    tcase_add_test(tc, reserved_flags);
    tcase_add_test(tc, unknown_types);
    tcase_add_test(tc, max_body);
    tcase_add_test(tc, encode_too_small);
    tcase_add_test(tc, encode_invalid);
    tcase_add_test(tc, data_header);
    tcase_add_test(tc, type_names);
    tcase_add_test(tc, stream_in_sequence);
    tcase_add_test(tc, stream_byte_by_byte);
    /* The whole-frame loops are slow under sanitizers. */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, protocol_md_examples);
    tcase_add_test(tp, preamble_roundtrip);
    tcase_add_test(tp, preamble_exact_bytes);
    tcase_add_test(tp, preamble_invalid);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tp);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
