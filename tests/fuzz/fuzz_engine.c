/*
 * libFuzzer target: a server engine with an established connection whose
 * peer is the fuzzer. The input is a program of records, each written on one
 * of the raw client's subflows: raw bytes (garbage, truncated and oversized
 * frames, anything), or frames the harness builds with the right DSN base so
 * the search reaches deep states quickly: DATA at a relative offset with
 * bytes from the input, DATA_ACK and DATA_FIN relative to what the server
 * sent, joins with a correct or corrupted HMAC, PING/PONG, ADD_ADDR; and
 * time, application reads and writes, subflow resets.
 *
 * Oracles (abort on breach):
 *   - mpt_conn_sf_input takes every byte or returns a documented error;
 *   - a byte the application reads at stream offset o was carried at o by
 *     a DATA frame the engine accepted (a shadow decoder replays every
 *     subflow's input with the same codec); where only one value was ever
 *     sent at o, it is that value;
 *   - everything the engine writes decodes as valid frames, and its volume
 *     stays proportional to what it received and was asked to send;
 *   - receive and send memory stay within rcvbuf / sndbuf;
 *   - once the peer falls silent the connection ends in bounded time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MODEL (1u << 20)

/* per stream offset: 0 never carried, 1 one value seen, 2 different values */
static uint8_t mstate[MODEL], mval[MODEL];
static size_t mtop; /* offsets below this may be set */

struct shadow {
    uint8_t buf[MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY];
    size_t len;
    int dead; /* the engine failed this subflow: later bytes are never read */
};
static struct shadow sh[FP_MAXSF];
static uint8_t wbuf[MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY];

static void model_data(uint64_t off, const uint8_t *p, size_t n, int uncertain)
{
    for (size_t i = 0; i < n; i++, off++) {
        if (off >= MODEL)
            continue; /* outside the model (before the stream start, or far ahead) */
        if (mstate[off] == 0 && !uncertain) {
            mstate[off] = 1;
            mval[off] = p[i];
        } else if (mstate[off] != 1 || mval[off] != p[i] || uncertain) {
            mstate[off] = 2;
        }
        if (off + 1 > mtop)
            mtop = off + 1;
    }
}

/* Replays the engine's view of subflow k's input; `failed` says the engine
 * refused these bytes: whatever DATA they held may or may not have been
 * taken before the error, so those offsets become uncertain. */
static void shadow_feed(struct fp_world *w, int k, const uint8_t *p, size_t n, int failed)
{
    struct shadow *s = &sh[k];
    while (n && !s->dead) {
        size_t take = sizeof s->buf - s->len < n ? sizeof s->buf - s->len : n, off = 0;
        memcpy(s->buf + s->len, p, take);
        s->len += take;
        p += take;
        n -= take;
        for (;;) {
            struct mpt_frame f;
            ssize_t r = mpt_frame_decode(s->buf + off, s->len - off, MPT_FRAME_MAX_BODY, &f);
            if (r < 0)
                break;
            if (f.type == MPT_FT_DATA)
                model_data(f.u.data.dsn - w->idsn_c, f.u.data.payload, f.u.data.len, failed);
            off += (size_t)r;
        }
        memmove(s->buf, s->buf + off, s->len - off);
        s->len -= off;
    }
    if (failed)
        s->dead = 1;
}

static uint64_t app_read_off;

static void app_read(struct fp_world *w, size_t n)
{
    static uint8_t buf[65536];
    ssize_t r;

    if (!w->c)
        return;
    r = mpt_conn_recv(w->c, buf, n, w->now);
    if (r <= 0) {
        FZ_CHECK(r == 0 || fp_is_error(r));
        return;
    }
    FZ_CHECK((size_t)r <= n);
    for (ssize_t i = 0; i < r; i++) {
        uint64_t o = app_read_off + (uint64_t)i;
        if (o >= MODEL)
            break;
        FZ_CHECK(mstate[o] != 0);
        FZ_CHECK(mstate[o] == 2 || mval[o] == buf[i]);
    }
    app_read_off += (uint64_t)r;
}

static void app_write(struct fp_world *w, size_t n)
{
    ssize_t r;
    if (!w->c)
        return;
    for (size_t i = 0; i < n; i++)
        wbuf[i] = fz_stream_byte(1, w->app_written + i);
    r = mpt_conn_send(w->c, wbuf, n, w->now);
    if (r > 0)
        w->app_written += (uint64_t)r;
    fp_pump(w);
}

/* Writes on raw subflow k, keeping the shadow in step. */
static void put(struct fp_world *w, int k, const uint8_t *b, size_t n)
{
    int was_live = w->s[k].sf >= 0;
    long rc = fp_send(w, k, b, n);
    if (was_live)
        shadow_feed(w, k, b, n, rc < 0);
}

static void join(struct fp_world *w, int k, struct fz_in *in)
{
    uint8_t b[96];
    const uint8_t *p;
    unsigned how = fz_u8(in);
    size_t o, n;

    fp_close(w, k);
    sh[k].len = 0;
    sh[k].dead = 0;
    memset(w->s[k].nonce, 0, MPT_NONCE_LEN);
    n = fz_bytes(in, MPT_NONCE_LEN, &p);
    memcpy(w->s[k].nonce, p, n);
    w->s[k].addr_id = (uint8_t)k;
    w->s[k].flags = how & 1;
    w->s[k].used = 1;
    o = fp_join_bytes(w, b, w->rid, w->token_s, w->s[k].nonce, (uint8_t)k, how & 1);
    if (fp_send(w, k, b, o) < 0 || w->s[k].sf < 0)
        return;
    o = fp_confirm_bytes(w, k, b, (how & 2) ? fz_u16(in) | 1 : 0);
    if (o)
        put(w, k, b, o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fp_world w;
    struct fz_in in = {data, size, 0};
    unsigned cfg = fz_u8(&in);
    uint8_t b[MPT_FRAME_HDR_LEN + MPT_FRAME_MAX_BODY];

    memset(mstate, 0, mtop);
    mtop = 0;
    memset(sh, 0, sizeof sh);
    app_read_off = 0;
    fp_init(&w, (cfg & 1) ? 4096 : 64 * 1024, (cfg & 2) ? 4096 : 64 * 1024, 2 + (cfg >> 6));
    if (cfg & 4)
        w.set.max_frame_payload = 600;
    if (!fp_handshake(&w, (cfg & 8) ? 1000 : 1u << 20)) {
        fp_free(&w);
        return 0;
    }
    if (cfg & 16)
        app_write(&w, 30000);

    for (int steps = 0; fz_more(&in) && steps < 1000; steps++) {
        unsigned op = fz_u8(&in);
        int k = (int)((op >> 4) % FP_MAXSF);
        const uint8_t *p;
        size_t n, o;

        switch (op & 15) {
        case 0: /* raw bytes */
        case 1:
            n = fz_bytes(&in, (op & 1) ? fz_u16(&in) : fz_u8(&in), &p);
            put(&w, k, p, n);
            break;
        case 2: { /* DATA at a relative offset, payload from the input */
            uint64_t rel = (op & 0x80) ? (uint64_t)(int64_t)(int32_t)fz_u32(&in) : fz_u16(&in);
            n = fz_bytes(&in, fz_u16(&in) % 4096, &p);
            o = hdr(b, 0, MPT_FT_DATA, 0, (uint16_t)(8 + n));
            o = put64(b, o, w.idsn_c + rel);
            o = putn(b, o, p, n);
            put(&w, k & 3, b, o);
            break;
        }
        case 3: { /* DATA_ACK relative to what the server sent, with ranges */
            unsigned nr = fz_u8(&in) % 5;
            o = hdr(b, 0, MPT_FT_DATA_ACK, 0, (uint16_t)(12 + 16 * nr));
            o = put64(b, o, w.idsn_s + (uint64_t)(int64_t)(int32_t)fz_u32(&in));
            o = put32(b, o, fz_u32(&in));
            for (unsigned i = 0; i < nr; i++) {
                o = put64(b, o, w.idsn_s + fz_u32(&in));
                o = put64(b, o, w.idsn_s + fz_u32(&in));
            }
            put(&w, k & 3, b, o);
            break;
        }
        case 4: /* DATA_FIN */
            o = hdr(b, 0, MPT_FT_DATA_FIN, 0, 8);
            o = put64(b, o, w.idsn_c + fz_u32(&in));
            put(&w, k & 3, b, o);
            break;
        case 5:
            fp_advance(&w, (uint64_t)fz_u16(&in) * FP_MS / 8 + 1);
            break;
        case 6:
            app_read(&w, (size_t)fz_u16(&in) + 1);
            break;
        case 7:
            app_write(&w, fz_u16(&in) % 20000 + 1);
            break;
        case 8:
            if (k)
                join(&w, k, &in);
            break;
        case 9: /* PING or PONG */
            o = hdr(b, 0, (op & 0x80) ? MPT_FT_PONG : MPT_FT_PING, 0, 8);
            o = put64(b, o, ((uint64_t)fz_u32(&in) << 32) | fz_u32(&in));
            put(&w, k & 3, b, o);
            break;
        case 10: { /* ADD_ADDR with a right or wrong HMAC */
            uint8_t id = (uint8_t)fz_u8(&in), a4[4] = {10, 0, 0, (uint8_t)fz_u8(&in)};
            uint8_t mac[MPT_ADDR_HMAC_LEN];
            mpt_addr_hmac(w.key_c, w.key_s, id, 4, 80, a4, mac);
            if (op & 0x80)
                mac[0] ^= 1;
            o = hdr(b, 0, MPT_FT_ADD_ADDR, 0, 16);
            o = put8(b, o, id);
            o = put8(b, o, 4);
            o = put16(b, o, 80);
            o = putn(b, o, a4, 4);
            o = putn(b, o, mac, sizeof mac);
            put(&w, k & 3, b, o);
            break;
        }
        case 11:
            fp_close(&w, k);
            sh[k].len = 0;
            sh[k].dead = 1;
            break;
        case 12:
            if (w.c)
                (void)mpt_conn_shutdown(w.c, w.now);
            fp_pump(&w);
            break;
        default: /* bare frame types with a body of the input, any length */
            n = fz_bytes(&in, fz_u8(&in), &p);
            o = hdr(b, 0, (uint8_t)fz_u8(&in), (uint8_t)(op >> 4), (uint16_t)n);
            o = putn(b, o, p, n);
            put(&w, k & 3, b, o);
            break;
        }
        /* the engine answers in proportion: no amplification */
        FZ_CHECK(w.out_bytes <= (1u << 20) + 64 * w.in_bytes + 8 * w.app_written +
                                    (w.now / FP_MS) * 64);
    }
    app_read(&w, 65536);
    if (getenv("FZ_DEBUG"))
        fprintf(stderr, "fuzz_engine: read %llu, in %llu out %llu, written %llu, sf %d, state %d\n",
                (unsigned long long)app_read_off, (unsigned long long)w.in_bytes,
                (unsigned long long)w.out_bytes, (unsigned long long)w.app_written,
                w.c ? mpt_conn_sf_count(w.c) : -1, w.c ? (int)mpt_conn_state(w.c) : -1);
    fp_silence(&w);
    fp_free(&w);
    return 0;
}
