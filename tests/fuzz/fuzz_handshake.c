/*
 * libFuzzer target: the server side of handshakes and joins. One honest
 * connection exists (its keys are the harness's, so it can compute the
 * HMACs an honest client would send); the input then opens raw connections
 * and writes on them: arbitrary first bytes (preambles, HELLOs, JOINs,
 * anything, split anywhere), joins to the real connection with the right or
 * a wrong routing id, token, HMAC, address id or flags, replays of an
 * earlier connection's exact bytes on a new connection, closes, and time.
 *
 * Oracles (abort on breach):
 *   - mpt_server_accept returns 0, MPT_EINCOMPLETE (only while the input is
 *     shorter than a preamble plus the largest control frame) or a
 *     documented error, with a refusal reply that is empty or one ERROR;
 *   - a join reaches ESTABLISHED only on a connection where the harness sent
 *     the right token and a JOIN_CONFIRM with the right HMAC for a nonce
 *     never used before (forged and replayed joins never get in; the
 *     routing id is a hint only and may be wrong);
 *   - the connection never holds more than max_subflows subflows, its memory
 *     stays within its limits, everything the engine writes is valid frames;
 *   - connections other HELLOs made, and the real one, end in bounded time
 *     once the peer is silent; nothing leaks (LSan).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NREC 8

/* every byte written on each raw connection, for replays */
static uint8_t hist[FP_MAXSF][512];
static size_t histlen[FP_MAXSF];
static uint8_t used_nonces[64][MPT_NONCE_LEN];
static int nused;

static void rec(int k, const uint8_t *b, size_t n)
{
    if (histlen[k] + n <= sizeof hist[k]) {
        memcpy(hist[k] + histlen[k], b, n);
        histlen[k] += n;
    }
}

static void wr(struct fp_world *w, int k, const uint8_t *b, size_t n)
{
    rec(k, b, n);
    (void)fp_send(w, k, b, n);
}

static int nonce_fresh(const uint8_t *n)
{
    for (int i = 0; i < nused; i++)
        if (!memcmp(used_nonces[i], n, MPT_NONCE_LEN))
            return 0;
    return 1;
}

static void check_joins(struct fp_world *w)
{
    for (int k = 1; k < FP_MAXSF; k++)
        if (w->s[k].used && w->s[k].sf >= 0 && w->c)
            FZ_CHECK(mpt_conn_sf_state(w->c, w->s[k].sf) != MPT_SF_ESTABLISHED || w->s[k].legit);
}

static void fresh(struct fp_world *w, int k)
{
    fp_close(w, k);
    histlen[k] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fp_world w;
    struct fz_in in = {data, size, 0};
    unsigned cfg = fz_u8(&in);
    uint8_t b[600];

    memset(histlen, 0, sizeof histlen);
    nused = 0;
    fp_init(&w, 16384, 16384, 2 + (cfg & 3));
    if (cfg & 4)
        w.set.handshake_timeout = 300 * FP_MS;
    if (!fp_handshake(&w, 1u << 20))
        abort(); /* the honest HELLO must be accepted */

    for (int steps = 0; fz_more(&in) && steps < 500; steps++) {
        unsigned op = fz_u8(&in);
        int k = 1 + (int)((op >> 4) % (FP_MAXSF - 1));
        const uint8_t *p;
        size_t n, o;

        switch (op & 7) {
        case 0: /* arbitrary bytes on connection k (a new one if k was closed) */
        case 1:
            n = fz_bytes(&in, fz_u8(&in) % 300, &p);
            wr(&w, k, p, n);
            break;
        case 2: { /* a join to the real connection, fields right or wrong */
            unsigned how = fz_u8(&in);
            uint8_t rid[MPT_ROUTING_ID_LEN], nonce[MPT_NONCE_LEN] = {0};
            uint64_t token = w.token_s;
            int good = 1;

            fresh(&w, k);
            memcpy(rid, w.rid, sizeof rid);
            if (how & 1) /* a routing hint only (protocol.md 4): the token decides */
                rid[fz_u8(&in) % sizeof rid] ^= (uint8_t)(fz_u8(&in) | 1);
            if (how & 2) {
                token ^= (uint64_t)(fz_u8(&in) | 1) << (8 * (fz_u8(&in) % 8));
                good = 0;
            }
            n = fz_bytes(&in, MPT_NONCE_LEN, &p);
            memcpy(nonce, p, n);
            w.s[k].used = 1;
            w.s[k].sf = -1;
            memcpy(w.s[k].nonce, nonce, MPT_NONCE_LEN);
            w.s[k].addr_id = (uint8_t)fz_u8(&in);
            w.s[k].flags = (how >> 2) & 1;
            o = fp_join_bytes(&w, b, rid, token, nonce, w.s[k].addr_id, w.s[k].flags);
            if (how & 8) /* split the first bytes */
                n = fz_u8(&in) % o;
            else
                n = o;
            wr(&w, k, b, n);
            if (n < o)
                wr(&w, k, b + n, o - n);
            if (how & 16)
                break; /* never confirmed: a half-open join */
            {
                unsigned corrupt = (how & 32) ? (fz_u16(&in) | 1) : 0;
                size_t m = fp_confirm_bytes(&w, k, b, corrupt);
                if (!m)
                    break;
                if (good && !corrupt && nonce_fresh(nonce)) {
                    w.s[k].legit = 1;
                    if (nused < 64)
                        memcpy(used_nonces[nused++], nonce, MPT_NONCE_LEN);
                }
                wr(&w, k, b, m);
            }
            break;
        }
        case 3: { /* replay connection j's bytes on a new connection k */
            int j = 1 + (int)(fz_u8(&in) % (FP_MAXSF - 1));
            static uint8_t copy[512];
            size_t len = histlen[j];
            if (j == k || !len)
                break;
            memcpy(copy, hist[j], len);
            fresh(&w, k);
            wr(&w, k, copy, len);
            break;
        }
        case 4:
            fresh(&w, k);
            break;
        case 5:
            fp_advance(&w, (uint64_t)fz_u16(&in) * FP_MS / 16 + 1);
            break;
        case 6: { /* a HELLO from someone else: a new connection */
            uint8_t key[MPT_KEY_LEN];
            fresh(&w, k);
            n = fz_bytes(&in, MPT_KEY_LEN, &p);
            memset(key, 0x11, sizeof key);
            memcpy(key, p, n);
            o = fp_preamble(b, 0, 0, NULL);
            o = hdr(b, o, MPT_FT_HELLO, 0, 40);
            o = put8(b, o, 1);
            o = put8(b, o, (uint8_t)(1 + (op >> 7)));
            o = put16(b, o, MPT_FEAT_SACK);
            o = putn(b, o, key, MPT_KEY_LEN);
            o = put32(b, o, fz_u32(&in));
            wr(&w, k, b, o);
            break;
        }
        default: /* more bytes on an accepted join: in-band garbage */
            n = fz_bytes(&in, fz_u8(&in) % 64, &p);
            wr(&w, k, p, n);
            break;
        }
        check_joins(&w);
    }
    if (getenv("FZ_DEBUG"))
        fprintf(stderr, "fuzz_handshake: subflows %d, other connections %d, legit joins %d\n",
                w.c ? mpt_conn_sf_count(w.c) : -1, w.nothers, nused);
    fp_silence(&w);
    for (int i = 0; i < w.nothers; i++) {
        uint64_t limit = w.now + 300 * 1000 * FP_MS;
        enum mpt_conn_state st;
        /* their raw connections are gone: the engine is told, and gives up */
        while ((st = mpt_conn_state(w.others[i])) != MPT_CONN_CLOSED && st != MPT_CONN_ABORTED) {
            uint64_t t = mpt_conn_next_timeout(w.others[i]);
            for (int sf = 0; sf < MPT_MAX_SUBFLOWS_LIMIT; sf++)
                if (mpt_conn_sf_state(w.others[i], sf) != MPT_SF_CLOSED &&
                    mpt_conn_sf_state(w.others[i], sf) != MPT_SF_FAILED)
                    mpt_conn_sf_failed(w.others[i], sf, MPT_ECLOSED, w.now);
            if (t == MPT_TIME_NEVER)
                break;
            FZ_CHECK(t < limit);
            w.now = t > w.now ? t : w.now + 1;
            mpt_conn_handle_timeout(w.others[i], w.now);
        }
    }
    fp_free(&w);
    return 0;
}
