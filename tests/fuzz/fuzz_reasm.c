/*
 * libFuzzer target for reassembly (core/rcvbuf.c): arbitrary segments of an
 * honest sender's stream (any offset: in order, ahead, behind, overlapping,
 * past the window, more than 2^32 behind, across the 2^64 wrap of the DSN
 * space), interleaved with application reads, on a ring of a size the input
 * chooses. A byte-level model decides every expected result:
 *   - insert returns MPT_EFLOW exactly when a byte lies at or past the edge
 *     (clipped to read + cap), MPT_EPROTO exactly when the segment starts
 *     more than MPT_RCV_MAX_BEHIND behind the cumulative point, else 0, with
 *     the duplicate count equal to the bytes already held or delivered;
 *   - the cumulative point, out-of-order bytes, run count, highest byte held
 *     and the SACK ranges equal the model's;
 *   - receive memory never exceeds the ring;
 *   - what the application reads is exactly the stream, in order, from the
 *     start (delivered bytes are a prefix of what was sent).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "core/frame.h"
#include "core/rcvbuf.h"
#include "input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MODEL (1u << 20) /* stream offsets the model tracks */

static uint8_t present[MODEL]; /* 1: held above nxt or delivered (below nxt) */
static uint8_t seg[65536], out[65536];

static uint64_t model_nxt(uint64_t nxt)
{
    while (nxt < MODEL && present[nxt])
        nxt++;
    return nxt;
}

static void check_state(const struct mpt_rcvbuf *rb, uint64_t dsn0, uint64_t nxt, uint64_t read)
{
    uint64_t ooo = 0, runs = 0, end = nxt;
    struct mpt_sack_range r[MPT_FRAME_MAX_SACK], m[MPT_FRAME_MAX_SACK];
    int nr, nm = 0;

    FZ_CHECK(rb->nxt == dsn0 + nxt);
    FZ_CHECK(rb->read == dsn0 + read);
    FZ_CHECK(mpt_rcvbuf_mem(rb) <= rb->cap);
    FZ_CHECK(mpt_rcvbuf_readable(rb) == nxt - read);
    /* held bytes lie within [nxt, read + cap) */
    for (uint64_t o = nxt; o < read + rb->cap && o < MODEL; o++) {
        if (!present[o])
            continue;
        ooo++;
        if (!present[o - 1] || o == nxt) {
            runs++;
            if (nm < MPT_FRAME_MAX_SACK)
                m[nm].start = dsn0 + o;
        }
        if (o + 1 >= MODEL || !present[o + 1]) {
            if (nm < MPT_FRAME_MAX_SACK)
                m[nm++].end = dsn0 + o + 1;
        }
        end = o + 1;
    }
    FZ_CHECK(rb->ooo_bytes == ooo);
    FZ_CHECK(rb->nranges == runs);
    FZ_CHECK(rb->ooo_end == dsn0 + end);
    nr = mpt_rcvbuf_sack(rb, r, MPT_FRAME_MAX_SACK);
    FZ_CHECK(nr == nm);
    for (int i = 0; i < nr; i++)
        FZ_CHECK(r[i].start == m[i].start && r[i].end == m[i].end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, size, 0};
    struct mpt_rcvbuf rb;
    unsigned capsel = fz_u16(&in);
    size_t cap = (size_t)(capsel % 4096) * 16 + 1 + (capsel >> 12); /* 1 .. ~65 KiB, odd sizes too */
    uint64_t dsn0 = ((uint64_t)fz_u32(&in) << 32 | fz_u32(&in));
    uint64_t nxt = 0, read = 0; /* model, relative to dsn0 */

    memset(present, 0, sizeof present);
    mpt_rcvbuf_init(&rb, cap, dsn0);
    while (fz_more(&in)) {
        unsigned op = fz_u8(&in);

        if (op & 1) { /* the application reads */
            size_t want = fz_u16(&in), got = mpt_rcvbuf_read(&rb, out, want);
            FZ_CHECK(got == (want < nxt - read ? want : nxt - read));
            for (size_t i = 0; i < got; i++)
                FZ_CHECK(out[i] == fz_stream_byte(0, read + i));
            read += got;
        } else { /* a segment arrives */
            int64_t rel = (int32_t)fz_u32(&in);
            size_t len = fz_u16(&in);
            uint64_t start, edge, e, dsn, redge;
            size_t dup = 0, expdup = 0;
            int rc, exp = 0;

            if (op & 2)
                rel = rel % 4096; /* mostly near the cumulative point */
            if (op & 4) /* far behind: more than a u32 window, or across half the space */
                rel = -(int64_t)MPT_RCV_MAX_BEHIND - (op & 8 ? 1 : -1) * (int64_t)(fz_u16(&in));
            edge = (op & 16) ? rb.read + cap : rb.nxt + fz_u16(&in);
            if (op & 32)
                edge = rb.read + cap + fz_u8(&in); /* beyond the ring: clipped */
            dsn = rb.nxt + (uint64_t)rel;
            start = nxt + (uint64_t)rel; /* model offset (may be "negative", i.e. huge) */
            if (len == 0)
                continue;
            e = start + len;
            /* expected verdict from the model */
            redge = read + cap;
            {
                uint64_t ed = edge - dsn0; /* edge as a model offset */
                if ((uint64_t)(edge - rb.nxt) >= ((uint64_t)1 << 63)) /* behind nxt */
                    ed = nxt;
                if (ed - nxt > redge - nxt)
                    ed = redge;
                if (rel < 0 && (uint64_t)(-rel) > MPT_RCV_MAX_BEHIND)
                    exp = MPT_EPROTO;
                else if (rel < 0 && (uint64_t)(-rel) >= len)
                    exp = 0;
                else if (e > ed)
                    exp = MPT_EFLOW;
            }
            if (exp == 0 && e > MODEL)
                break; /* beyond what the model tracks: stop this run */
            for (size_t i = 0; i < len; i++)
                seg[i] = fz_stream_byte(0, start + i);
            rc = mpt_rcvbuf_insert(&rb, dsn, seg, len, edge, &dup);
            FZ_CHECK(rc == exp);
            if (rc == 0) {
                for (size_t i = 0; i < len; i++) {
                    uint64_t o = start + i;
                    if ((int64_t)o < 0 || present[o]) {
                        expdup++;
                    } else {
                        present[o] = 1;
                    }
                }
                FZ_CHECK(dup == expdup);
                nxt = model_nxt(nxt);
            }
        }
        check_state(&rb, dsn0, nxt, read);
    }
    mpt_rcvbuf_free(&rb);
    return 0;
}
