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
    rb->bits = rb->any = rb->full = NULL;
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

/* Bit range [p, p + n) of array a, no wrap: popcount (op 0), set (1),
 * clear (2). Whole words go without masks (memset for set and clear): a 16
 * KiB frame is 256 words, and this runs several times per frame. */
static size_t raw_op(uint64_t *a, size_t p, size_t n, int op)
{
    size_t cnt = 0, lo = p % WBITS;

    if (n == 0)
        return 0;
    if (lo != 0 || n < WBITS) {
        size_t hi = lo + n < WBITS ? lo + n : WBITS;
        uint64_t m = word_mask(lo, hi), *w = &a[p / WBITS];
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
                cnt += word_count(a[w0 + k]);
        } else {
            memset(&a[w0], op == 1 ? 0xff : 0, nw * sizeof *a);
        }
        p += nw * WBITS;
        n -= nw * WBITS;
    }
    if (n > 0) {
        uint64_t m = word_mask(0, n), *w = &a[p / WBITS];
        if (op == 0)
            cnt += word_count(*w & m);
        else if (op == 1)
            *w |= m;
        else
            *w &= ~m;
    }
    return cnt;
}

/* First index in [from, to) whose bit in a (inverted if inv) is set, or to. */
static size_t find_set(const uint64_t *a, size_t from, size_t to, int inv)
{
    const uint64_t flip = inv ? ~0ull : 0;

    while (from < to) {
        size_t w = from / WBITS;
        uint64_t x = (a[w] ^ flip) & ~((1ull << (from % WBITS)) - 1);
        if (x) {
            size_t q = w * WBITS + (size_t)__builtin_ctzll(x);
            return q < to ? q : to;
        }
        from = (w + 1) * WBITS;
    }
    return to;
}

/* Summary bit of word w: any (some bit set) and full (every bit set). */
static void sum_fix(struct mpt_rcvbuf *rb, size_t w)
{
    uint64_t b = 1ull << (w % WBITS), x = rb->bits[w];

    if (x)
        rb->any[w / WBITS] |= b;
    else
        rb->any[w / WBITS] &= ~b;
    if (x == ~0ull)
        rb->full[w / WBITS] |= b;
    else
        rb->full[w / WBITS] &= ~b;
}

/* raw_op on the presence bitmap, keeping the summaries exact: the words
 * covered whole become all-set or all-clear, the (at most two) edge words
 * are looked at. */
static size_t bits_op(struct mpt_rcvbuf *rb, size_t p, size_t n, int op)
{
    size_t w0, w1;

    if (n == 0)
        return 0;
    w0 = p / WBITS;
    w1 = (p + n - 1) / WBITS;
    if (op == 0) {
        /* only the words the summary says hold something: an in-order
         * frame over an empty stretch costs a few summary words */
        size_t cnt = 0, w = find_set(rb->any, w0, w1 + 1, 0);
        while (w <= w1) {
            size_t lo = w == w0 ? p % WBITS : 0, hi = w == w1 ? (p + n - 1) % WBITS + 1 : WBITS;
            cnt += word_count(rb->bits[w] & word_mask(lo, hi));
            w = find_set(rb->any, w + 1, w1 + 1, 0);
        }
        return cnt;
    }
    raw_op(rb->bits, p, n, op);
    sum_fix(rb, w0);
    if (w1 != w0)
        sum_fix(rb, w1);
    if (w1 > w0 + 1) {
        raw_op(rb->any, w0 + 1, w1 - w0 - 1, op);
        raw_op(rb->full, w0 + 1, w1 - w0 - 1, op);
    }
    return 0;
}

/* First position in physical [p, p + n) whose bit equals val, or p + n.
 * The word holding p is looked at directly; the words after it are found
 * through the summary (a word with some bit set for val 1, a word not all
 * set for val 0), so a run or hole of any length costs one bit per 64
 * words: SACK building and the cumulative advance scan the whole hole and
 * run on every ack and every in-order frame. */
static size_t bits_find(const struct mpt_rcvbuf *rb, size_t p, size_t n, int val)
{
    size_t end = p + n, w, k;
    uint64_t x;

    if (n == 0)
        return end;
    w = p / WBITS;
    x = val ? rb->bits[w] : ~rb->bits[w];
    x &= ~((1ull << (p % WBITS)) - 1);
    if (x) {
        size_t q = w * WBITS + (size_t)__builtin_ctzll(x);
        return q < end ? q : end;
    }
    k = find_set(val ? rb->any : rb->full, w + 1, (end - 1) / WBITS + 1, !val);
    if (k > (end - 1) / WBITS)
        return end;
    x = val ? rb->bits[k] : ~rb->bits[k];
    {
        size_t q = k * WBITS + (size_t)__builtin_ctzll(x);
        return q < end ? q : end;
    }
}

/* The same over the DSN range [dsn, dsn + n), n <= cap, which may wrap the ring. */
static size_t range_op(struct mpt_rcvbuf *rb, uint64_t dsn, size_t n, int op)
{
    size_t p = pos_of(rb, dsn), first = rb->cap - p;

    if (first >= n)
        return bits_op(rb, p, n, op);
    return bits_op(rb, p, first, op) + bits_op(rb, 0, n - first, op);
}

/* Distance from dsn to the first DSN in [dsn, dsn + n) whose bit is val (n if none). */
static size_t range_find(const struct mpt_rcvbuf *rb, uint64_t dsn, size_t n, int val)
{
    size_t p = pos_of(rb, dsn), first = rb->cap - p, q;

    if (first >= n)
        return bits_find(rb, p, n, val) - p;
    q = bits_find(rb, p, first, val) - p;
    if (q < first)
        return q;
    return first + bits_find(rb, 0, n - first, val);
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

/* Stores [dsn, dsn + len), dsn at or above nxt: into the lent buffer what
 * falls inside it (it starts at or below nxt), the rest into the ring. */
static void copy_in(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *src, size_t len)
{
    if (rb->lend) {
        uint64_t off = dsn - rb->lend_base;
        if (off < rb->lend_len) {
            size_t k = rb->lend_len - (size_t)off < len ? rb->lend_len - (size_t)off : len;
            memcpy(rb->lend + off, src, k);
            dsn += k;
            src += k;
            len -= k;
            if (len == 0)
                return;
        }
    }
    mpt_bytering_put(rb->buf, rb->cap, pos_of(rb, dsn), src, len);
}

/* While lent: in-order bytes in the lent buffer count as read. */
static void lend_follow(struct mpt_rcvbuf *rb)
{
    if (rb->lend)
        rb->read = rb->lend_base + mpt_rcvbuf_lent(rb);
}

/* Copies the held runs in [a, b) between the ring and buf (DSN a at
 * buf[0]): to_ring 1 stores, 0 fetches. */
static void move_held(struct mpt_rcvbuf *rb, uint64_t a, uint64_t b, uint8_t *buf, int to_ring)
{
    uint64_t p = a;

    while (mpt_dsn_lt(p, b)) {
        size_t n = (size_t)(b - p), k = range_find(rb, p, n, 1), run;
        if (k == n)
            break;
        p += k;
        run = range_find(rb, p, (size_t)(b - p), 0);
        if (to_ring)
            mpt_bytering_put(rb->buf, rb->cap, pos_of(rb, p), buf + (p - a), run);
        else
            mpt_bytering_get(rb->buf, rb->cap, pos_of(rb, p), buf + (p - a), run);
        p += run;
    }
}

int mpt_rcvbuf_lend(struct mpt_rcvbuf *rb, uint8_t *out, size_t len)
{
    if (!out || len == 0)
        return MPT_EINVAL;
    if (rb->lend || rb->read != rb->nxt)
        return MPT_ESTATE;
    if (rb->bits && mpt_dsn_lt(rb->nxt, rb->ooo_end)) {
        uint64_t b = rb->ooo_end - rb->nxt < len ? rb->ooo_end : rb->nxt + len;
        move_held(rb, rb->nxt, b, out, 0);
    }
    rb->lend = out;
    rb->lend_base = rb->nxt;
    rb->lend_len = len;
    return 0;
}

int mpt_rcvbuf_lend_waiting(const struct mpt_rcvbuf *rb)
{
    return rb->lend && rb->nxt - rb->lend_base < rb->lend_len && mpt_dsn_lt(rb->nxt, rb->ooo_end);
}

size_t mpt_rcvbuf_unlend(struct mpt_rcvbuf *rb)
{
    size_t got = mpt_rcvbuf_lent(rb);
    uint64_t end = rb->lend_base + rb->lend_len;

    if (!rb->lend)
        return 0;
    if (rb->bits && mpt_dsn_lt(rb->nxt, end) && mpt_dsn_lt(rb->nxt, rb->ooo_end))
        move_held(rb, rb->nxt, mpt_dsn_lt(rb->ooo_end, end) ? rb->ooo_end : end,
                  rb->lend + (rb->nxt - rb->lend_base), 1);
    rb->lend = NULL;
    rb->lend_base = 0;
    rb->lend_len = 0;
    return got;
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
        lend_follow(rb);
        return 0;
    }

    /* out of order: mark present, merging with the runs it touches */
    if (!rb->bits) {
        size_t nw = (rb->cap + WBITS - 1) / WBITS, ns = (nw + WBITS - 1) / WBITS;
        rb->bits = mpt_calloc(nw + 2 * ns, sizeof *rb->bits);
        if (!rb->bits)
            return MPT_ENOMEM;
        rb->any = rb->bits + nw;
        rb->full = rb->any + ns;
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

static size_t bitmap_words(size_t cap, size_t *ns)
{
    size_t nw = (cap + WBITS - 1) / WBITS;

    *ns = (nw + WBITS - 1) / WBITS;
    return nw;
}

size_t mpt_rcvbuf_allocated(const struct mpt_rcvbuf *rb)
{
    size_t ns, nw = bitmap_words(rb->cap, &ns);

    return (rb->buf ? rb->cap : 0) + (rb->bits ? (nw + 2 * ns) * sizeof *rb->bits : 0);
}

int mpt_rcvbuf_grow(struct mpt_rcvbuf *rb, size_t new_cap)
{
    struct mpt_rcvbuf n = *rb;
    uint64_t end = mpt_dsn_gt(rb->ooo_end, rb->nxt) ? rb->ooo_end : rb->nxt;

    if (new_cap <= rb->cap)
        return 0;
    n.cap = new_cap;
    n.origin = rb->read;
    n.buf = NULL;
    n.bits = n.any = n.full = NULL;
    if (rb->buf && !(n.buf = mpt_malloc(new_cap)))
        return MPT_ENOMEM;
    if (rb->bits) {
        size_t ns, nw = bitmap_words(new_cap, &ns);
        if (!(n.bits = mpt_calloc(nw + 2 * ns, sizeof *n.bits))) {
            mpt_free(n.buf);
            return MPT_ENOMEM;
        }
        n.any = n.bits + nw;
        n.full = n.any + ns;
    }
    if (rb->buf && mpt_dsn_lt(rb->read, end)) {
        /* [read, end) is at most the old cap; slots of bytes not held (or
         * held in a lent buffer) carry garbage along, which nothing reads */
        size_t len = (size_t)(end - rb->read), first = rb->cap - pos_of(rb, rb->read);
        mpt_bytering_put(n.buf, n.cap, 0, rb->buf + pos_of(rb, rb->read),
                         first < len ? first : len);
        if (first < len)
            mpt_bytering_put(n.buf, n.cap, first, rb->buf, len - first);
    }
    if (rb->bits) {
        uint64_t a = rb->nxt;
        while (mpt_dsn_lt(a, rb->ooo_end)) {
            size_t k = range_find(rb, a, (size_t)(rb->ooo_end - a), 1), run;
            if (k == (size_t)(rb->ooo_end - a))
                break;
            a += k;
            run = range_find(rb, a, (size_t)(rb->ooo_end - a), 0);
            range_op(&n, a, run, 1);
            a += run;
        }
    }
    mpt_free(rb->buf);
    mpt_free(rb->bits);
    *rb = n;
    return 0;
}

int mpt_rcvbuf_trim(struct mpt_rcvbuf *rb, size_t new_cap)
{
    int freed = rb->buf != NULL || rb->bits != NULL;

    if (rb->lend || rb->read != rb->nxt || rb->ooo_bytes || mpt_dsn_lt(rb->nxt, rb->ooo_end))
        return 0;
    mpt_free(rb->buf);
    mpt_free(rb->bits);
    rb->buf = NULL;
    rb->bits = rb->any = rb->full = NULL;
    rb->cap = new_cap ? new_cap : 1;
    rb->origin = rb->read;
    return freed;
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
