/*
 * libFuzzer target for the subflow decoder: an optional preamble (when the
 * input starts with 'M') and then a stream of frames, decoded under the
 * largest and under a small max_body.
 *
 * Beyond "no crash, no out-of-bounds read" (ASan, and libFuzzer's exact-size
 * input buffer) it checks the codec's contract, aborting on any breach:
 *   - results are a frame length that fits the input, or a documented error;
 *   - every accepted known frame re-encodes to exactly the bytes it was
 *     decoded from (the format has one encoding per frame) and decodes again
 *     to the same fields;
 *   - the same frame minus its last byte is incomplete, never an error or a
 *     shorter frame, and the bytes after a frame do not change its decoding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

static int same_frame(const struct mpt_frame *a, const struct mpt_frame *b)
{
    if (a->type != b->type || a->flags != b->flags)
        return 0;
    switch (a->type) {
    case MPT_FT_HELLO:
        return a->u.hello.version_min == b->u.hello.version_min &&
               a->u.hello.version_max == b->u.hello.version_max &&
               a->u.hello.features == b->u.hello.features &&
               !memcmp(a->u.hello.key, b->u.hello.key, MPT_KEY_LEN) &&
               a->u.hello.window == b->u.hello.window;
    case MPT_FT_HELLO_ACK:
        return a->u.hello_ack.version == b->u.hello_ack.version &&
               a->u.hello_ack.features == b->u.hello_ack.features &&
               !memcmp(a->u.hello_ack.key, b->u.hello_ack.key, MPT_KEY_LEN) &&
               !memcmp(a->u.hello_ack.routing_id, b->u.hello_ack.routing_id, MPT_ROUTING_ID_LEN) &&
               a->u.hello_ack.window == b->u.hello_ack.window;
    case MPT_FT_JOIN:
        return a->u.join.token == b->u.join.token &&
               !memcmp(a->u.join.nonce, b->u.join.nonce, MPT_NONCE_LEN) &&
               a->u.join.addr_id == b->u.join.addr_id;
    case MPT_FT_JOIN_ACK:
        return !memcmp(a->u.join_ack.nonce, b->u.join_ack.nonce, MPT_NONCE_LEN) &&
               !memcmp(a->u.join_ack.hmac, b->u.join_ack.hmac, MPT_HMAC_LEN);
    case MPT_FT_JOIN_CONFIRM:
        return !memcmp(a->u.join_confirm.hmac, b->u.join_confirm.hmac, MPT_HMAC_LEN);
    case MPT_FT_DATA:
        return a->u.data.dsn == b->u.data.dsn && a->u.data.len == b->u.data.len &&
               !memcmp(a->u.data.payload, b->u.data.payload, a->u.data.len);
    case MPT_FT_DATA_ACK:
        if (a->u.data_ack.ack != b->u.data_ack.ack || a->u.data_ack.window != b->u.data_ack.window ||
            a->u.data_ack.nranges != b->u.data_ack.nranges)
            return 0;
        for (unsigned i = 0; i < a->u.data_ack.nranges; i++)
            if (a->u.data_ack.ranges[i].start != b->u.data_ack.ranges[i].start ||
                a->u.data_ack.ranges[i].end != b->u.data_ack.ranges[i].end)
                return 0;
        return 1;
    case MPT_FT_DATA_FIN:
        return a->u.data_fin.dsn == b->u.data_fin.dsn;
    case MPT_FT_ADD_ADDR:
        return a->u.add_addr.addr_id == b->u.add_addr.addr_id &&
               a->u.add_addr.family == b->u.add_addr.family &&
               a->u.add_addr.port == b->u.add_addr.port &&
               !memcmp(a->u.add_addr.addr, b->u.add_addr.addr, a->u.add_addr.family == 4 ? 4 : 16) &&
               !memcmp(a->u.add_addr.hmac, b->u.add_addr.hmac, MPT_ADDR_HMAC_LEN);
    case MPT_FT_REMOVE_ADDR:
        return a->u.remove_addr.n == b->u.remove_addr.n &&
               !memcmp(a->u.remove_addr.ids, b->u.remove_addr.ids, a->u.remove_addr.n);
    case MPT_FT_PING:
    case MPT_FT_PONG:
        return a->u.ping.opaque == b->u.ping.opaque;
    case MPT_FT_FASTCLOSE:
    case MPT_FT_SUBFLOW_CLOSE:
    case MPT_FT_ERROR:
        return a->u.close.reason == b->u.close.reason &&
               a->u.close.frame_type == b->u.close.frame_type &&
               a->u.close.text_len == b->u.close.text_len &&
               (!a->u.close.text_len || !memcmp(a->u.close.text, b->u.close.text, a->u.close.text_len));
    }
    return 1; /* PRIO, CLOSE: type and flags are everything */
}

static int is_decode_error(ssize_t r)
{
    return r == MPT_EINCOMPLETE || r == MPT_EFRAME_TOOBIG || r == MPT_EFRAME_LEN ||
           r == MPT_EFRAME_RESERVED || r == MPT_EFRAME_TYPE || r == MPT_EFRAME_VALUE;
}

/* Re-encodings go to their own buffer: writing over the input would make
 * the byte comparison compare the input with itself. */
static uint8_t reenc[MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY];

static void check_frame(const uint8_t *p, size_t avail, size_t max_body, ssize_t r,
                        const struct mpt_frame *f)
{
    struct mpt_frame g;
    size_t n = (size_t)r;

    CHECK(n >= MPT_FRAME_HDR_LEN && n <= avail && n - MPT_FRAME_HDR_LEN <= max_body);
    CHECK(f->type == p[0]);
    /* Trailing bytes belong to the next frame. */
    CHECK(mpt_frame_decode(p, n, max_body, &g) == r && same_frame(f, &g));
    CHECK(mpt_frame_decode(p, n - 1, max_body, &g) == MPT_EINCOMPLETE);

    if (strcmp(mpt_frame_type_name(f->type), "UNKNOWN") == 0) {
        CHECK(f->type & MPT_FT_IGNORABLE);
        CHECK(mpt_frame_encoded_len(f) == MPT_EFRAME_TYPE);
        return;
    }
    if (f->type == MPT_FT_DATA)
        CHECK(f->u.data.payload == p + MPT_DATA_HDR_LEN && f->u.data.len == n - MPT_DATA_HDR_LEN);
    CHECK(mpt_frame_encoded_len(f) == r);
    CHECK(mpt_frame_encode(f, reenc, n - 1) == MPT_ENOBUFS);
    CHECK(mpt_frame_encode(f, reenc, sizeof reenc) == r);
    CHECK(memcmp(reenc, p, n) == 0);
    CHECK(mpt_frame_decode(reenc, n, MPT_FRAME_MAX_BODY, &g) == r);
    CHECK(same_frame(f, &g));
    if (f->type == MPT_FT_DATA) {
        uint8_t hdr[MPT_DATA_HDR_LEN];

        CHECK(mpt_frame_data_header(f->u.data.dsn, f->u.data.len, hdr) == MPT_DATA_HDR_LEN);
        CHECK(memcmp(hdr, p, MPT_DATA_HDR_LEN) == 0);
    }
}

static void run(const uint8_t *data, size_t size, size_t max_body)
{
    size_t off = 0;
    ssize_t r;

    if (size && data[0] == 'M') {
        struct mpt_preamble pre, again;
        uint8_t out[MPT_PREAMBLE_MAX_LEN];

        r = mpt_preamble_decode(data, size, &pre);
        if (r < 0) {
            CHECK(r == MPT_EINCOMPLETE || r == MPT_EPREAMBLE || r == MPT_EFRAME_RESERVED);
            return;
        }
        CHECK((size_t)r <= size);
        CHECK(r == (pre.kind == MPT_PRE_JOIN ? MPT_PREAMBLE_JOIN_LEN : MPT_PREAMBLE_NEW_LEN));
        CHECK(mpt_preamble_decode(data, (size_t)r - 1, &again) == MPT_EINCOMPLETE);
        CHECK(mpt_preamble_encode(&pre, out, sizeof out) == r);
        CHECK(memcmp(out, data, (size_t)r) == 0);
        off = (size_t)r;
    }
    while (off < size) {
        struct mpt_frame f;

        r = mpt_frame_decode(data + off, size - off, max_body, &f);
        if (r < 0) {
            CHECK(is_decode_error(r));
            return;
        }
        check_frame(data + off, size - off, max_body, r, &f);
        off += (size_t)r;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, MPT_FRAME_MAX_BODY);
    run(data, size, 64);
    return 0;
}
