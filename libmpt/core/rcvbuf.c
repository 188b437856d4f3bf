/* Reassembly over a byte ring and a presence bitmap (rcvbuf.h). */
#include "rcvbuf.h"
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "bytering.h"
#include "dsn.h"
#include "frame.h"

#define WBITS 64u

void mpt_rcvbuf_init(struct mpt_rcvbuf *rb, size_t cap, uint64_t dsn0)
{
    memset(rb, 0, sizeof *rb);
    rb->cap = cap ? cap : 1;
    rb->origin = rb->read = rb->nxt = rb->ooo_end = dsn0;
}

void mpt_rcvbuf_free(struct mpt_rcvbuf *rb)
{
    mpt_free(rb->buf);
    mpt_free(rb->bits);
    rb->buf = NULL;
    rb->bits = NULL;
    rb->ooo_bytes = 0;
    rb->nranges = 0;
}

static size_t pos_of(const struct mpt_rcvbuf *rb, uint64_t dsn)
{
    return mpt_bytering_pos(rb->cap, rb->origin, dsn);
}

/* ---- bitmap over ring positions [0, cap) ----------------------------------- */

/* Bits [p, p + n) of word-aligned runs: calls fn on each word with a mask. */
static uint64_t word_mask(size_t lo, size_t hi) /* bits lo..hi-1 of a word, 0 <= lo < hi <= 64 */
{
    uint64_t m = hi == WBITS ? ~0ull : ((1ull << hi) - 1);

    return m & ~((1ull << lo) - 1);
}

/* Popcount without the library call a target lacking POPCNT gets for
 * __builtin_popcountll: the words of a bitmap over a stream are nearly
 * always all clear or all set. */
static size_t word_count(uint64_t x)
{
    if (x == 0)
        return 0;
    if (x == ~0ull)
        return WBITS;
    return (size_t)__builtin_popcountll(x);
}

/* Physical range [p, p + n), no wrap: popcount (op 0), set (1), clear (2).
 * Whole words go without masks (memset for set and clear): a 16 KiB frame
 * is 256 words, and this runs several times per frame. */
static size_t bits_op(uint64_t *bits, size_t p, size_t n, int op)
{
    size_t cnt = 0, lo = p % WBITS;

    if (lo != 0 || n < WBITS) {
        size_t hi = lo + n < WBITS ? lo + n : WBITS;
        uint64_t m = word_mask(lo, hi), *w = &bits[p / WBITS];
        if (op == 0)
            cnt += word_count(*w & m);
        else if (op == 1)
            *w |= m;
        else
            *w &= ~m;
        n -= hi - lo;
        p += hi - lo;
    }
    if (n >= WBITS) {
        size_t w0 = p / WBITS, nw = n / WBITS;
        if (op == 0) {
            for (size_t k = 0; k < nw; k++)
                cnt += word_count(bits[w0 + k]);
        } else {
            memset(&bits[w0], op == 1 ? 0xff : 0, nw * sizeof *bits);
        }
        p += nw * WBITS;
        n -= nw * WBITS;
    }
    if (n > 0) {
        uint64_t m = word_mask(0, n), *w = &bits[p / WBITS];
        if (op == 0)
            cnt += word_count(*w & m);
        else if (op == 1)
            *w |= m;
        else
            *w &= ~m;
    }
    return cnt;
}

/* First position in physical [p, p + n) whose bit equals val, or p + n. */
static size_t bits_find(const uint64_t *bits, size_t p, size_t n, int val)
{
    size_t end = p + n;
    const uint64_t skip = val ? 0 : ~0ull; /* a word with no bit equal to val */

    while (p < end) {
        size_t w = p / WBITS, lo = p % WBITS;
        uint64_t x;
        if (lo == 0) {
            while (p + WBITS <= end && bits[w] == skip) {
                w++;
                p += WBITS;
            }
            if (p >= end)
                break;
        }
        x = val ? bits[w] : ~bits[w];
        x &= ~((1ull << lo) - 1);
        if (x) {
            size_t q = w * WBITS + (size_t)__builtin_ctzll(x);
            return q < end ? q : end;
        }
        p = (w + 1) * WBITS;
    }
    return end;
}

/* The same over the DSN range [dsn, dsn + n), n <= cap, which may wrap the ring. */
static size_t range_op(struct mpt_rcvbuf *rb, uint64_t dsn, size_t n, int op)
{
    size_t p = pos_of(rb, dsn), first = rb->cap - p;

    if (first >= n)
        return bits_op(rb->bits, p, n, op);
    return bits_op(rb->bits, p, first, op) + bits_op(rb->bits, 0, n - first, op);
}

/* Distance from dsn to the first DSN in [dsn, dsn + n) whose bit is val (n if none). */
static size_t range_find(const struct mpt_rcvbuf *rb, uint64_t dsn, size_t n, int val)
{
    size_t p = pos_of(rb, dsn), first = rb->cap - p, q;

    if (first >= n)
        return bits_find(rb->bits, p, n, val) - p;
    q = bits_find(rb->bits, p, first, val) - p;
    if (q < first)
        return q;
    return first + bits_find(rb->bits, 0, n - first, val);
}

/* Runs of present bytes that intersect [a, b). */
static size_t runs_in(const struct mpt_rcvbuf *rb, uint64_t a, uint64_t b)
{
    size_t runs = 0;

    while (mpt_dsn_lt(a, b)) {
        size_t n = (size_t)(b - a), k = range_find(rb, a, n, 1);
        if (k == n)
            break;
        runs++;
        a += k;
        a += range_find(rb, a, (size_t)(b - a), 0);
    }
    return runs;
}

/* Runs that touch [s, e] (one ending at s or starting at e touches it):
 * they merge with a segment [s, e) stored now. */
static size_t runs_touching(const struct mpt_rcvbuf *rb, uint64_t s, uint64_t e)
{
    uint64_t a = mpt_dsn_gt(s, rb->nxt) ? s - 1 : s;
    uint64_t b = mpt_dsn_lt(e, rb->ooo_end) ? e + 1 : rb->ooo_end;

    return runs_in(rb, a, b);
}

static void copy_in(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *src, size_t len)
{
    mpt_bytering_put(rb->buf, rb->cap, pos_of(rb, dsn), src, len);
}

/* nxt has reached the start of held bytes (or not): absorb every run that
 * now begins at nxt, clearing its bits. */
static void advance(struct mpt_rcvbuf *rb)
{
    while (rb->bits && mpt_dsn_lt(rb->nxt, rb->ooo_end)) {
        size_t span = (size_t)(rb->ooo_end - rb->nxt), k = range_find(rb, rb->nxt, span, 0);
        if (k == 0)
            break;
        range_op(rb, rb->nxt, k, 2);
        rb->ooo_bytes -= k;
        rb->nranges--;
        rb->nxt += k;
    }
    if (!mpt_dsn_lt(rb->nxt, rb->ooo_end)) {
        rb->ooo_end = rb->nxt;
        rb->nranges = 0;
    }
}

int mpt_rcvbuf_insert(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *data, size_t len,
                      uint64_t edge, size_t *dup)
{
    uint64_t ahead = dsn - rb->nxt, s = dsn, e = dsn + len;
    size_t held;

    if (len == 0)
        return 0;
    if (ahead >= ((uint64_t)1 << 63)) {
        /* starts behind the cumulative point */
        uint64_t behind = (uint64_t)0 - ahead;
        if (behind > MPT_RCV_MAX_BEHIND)
            return MPT_EPROTO;
        if (behind >= len) {
            *dup += len;
            return 0;
        }
        *dup += (size_t)behind;
        data += behind;
        s = rb->nxt;
    }
    if (mpt_dsn_gt(edge, mpt_rcvbuf_right_edge(rb)))
        edge = mpt_rcvbuf_right_edge(rb);
    if ((uint64_t)(e - rb->nxt) > (uint64_t)(edge - rb->nxt))
        return MPT_EFLOW;
    len = (size_t)(e - s);
    if (!rb->buf && !(rb->buf = mpt_malloc(rb->cap)))
        return MPT_ENOMEM;

    if (s == rb->nxt) {
        /* in order: what it covers of held bytes is duplicate */
        held = rb->bits && mpt_dsn_lt(s, rb->ooo_end) ? range_op(rb, s, len, 0) : 0;
        copy_in(rb, s, data, len);
        if (held) {
            /* Runs inside [s, e) vanish; one crossing e survives (from e on)
             * until advance() absorbs it. */
            size_t crossing = mpt_dsn_lt(e, rb->ooo_end) && range_find(rb, e - 1, 2, 0) == 2;
            rb->nranges -= runs_in(rb, s, e) - crossing;
            range_op(rb, s, len, 2);
            rb->ooo_bytes -= held;
            *dup += held;
        }
        rb->nxt = e;
        advance(rb);
        return 0;
    }

    /* out of order: mark present, merging with the runs it touches */
    if (!rb->bits) {
        rb->bits = mpt_calloc((rb->cap + WBITS - 1) / WBITS, sizeof *rb->bits);
        if (!rb->bits)
            return MPT_ENOMEM;
    }
    {
        size_t touching = mpt_dsn_lt(rb->nxt, rb->ooo_end) ? runs_touching(rb, s, e) : 0;
        held = mpt_dsn_lt(s, rb->ooo_end) ? range_op(rb, s, len, 0) : 0;
        copy_in(rb, s, data, len);
        range_op(rb, s, len, 1);
        rb->nranges = rb->nranges + 1 - touching;
    }
    rb->ooo_bytes += len - held;
    *dup += held;
    if (mpt_dsn_gt(e, rb->ooo_end))
        rb->ooo_end = e;
    return 0;
}

long mpt_rcvbuf_deliver(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *data, size_t len,
                        uint64_t edge, uint8_t *out, size_t room)
{
    size_t k = len < room ? len : room;

    if (k == 0 || dsn != rb->nxt || rb->read != rb->nxt)
        return 0;
    if (mpt_dsn_gt(edge, mpt_rcvbuf_right_edge(rb)))
        edge = mpt_rcvbuf_right_edge(rb);
    if ((uint64_t)len > (uint64_t)(edge - rb->nxt))
        return MPT_EFLOW;
    if (rb->bits && mpt_dsn_lt(dsn, rb->ooo_end)) {
        /* stop short of the first byte held above the cumulative point */
        size_t span = (size_t)(rb->ooo_end - dsn), lim = span < k ? span : k;
        size_t held = range_find(rb, dsn, lim, 1);
        if (held < lim)
            k = held;
        if (k == 0)
            return 0;
    }
    memcpy(out, data, k);
    rb->nxt += k;
    rb->read = rb->nxt;
    advance(rb);
    return (long)k;
}

size_t mpt_rcvbuf_read(struct mpt_rcvbuf *rb, void *out, size_t len)
{
    size_t avail = mpt_rcvbuf_readable(rb);

    if (len > avail)
        len = avail;
    if (len == 0)
        return 0;
    mpt_bytering_get(rb->buf, rb->cap, pos_of(rb, rb->read), out, len);
    rb->read += len;
    return len;
}

int mpt_rcvbuf_sack(const struct mpt_rcvbuf *rb, struct mpt_sack_range *r, int max)
{
    uint64_t a = rb->nxt;
    int k = 0;

    if (!rb->bits)
        return 0;
    while (k < max && mpt_dsn_lt(a, rb->ooo_end)) {
        size_t n = (size_t)(rb->ooo_end - a), f = range_find(rb, a, n, 1);
        if (f == n)
            break;
        a += f;
        r[k].start = a;
        a += range_find(rb, a, (size_t)(rb->ooo_end - a), 0);
        r[k].end = a;
        k++;
    }
    return k;
}
