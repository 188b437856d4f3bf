#include "rcvbuf.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "dsn.h"
#include "frame.h"

static int range_cmp(const struct mpt_rcv_range *a, const struct mpt_rcv_range *b)
{
    int64_t d = (int64_t)(a->start - b->start);

    return d < 0 ? -1 : d > 0;
}

RB_GENERATE_INTERNAL(mpt_rcv_tree, mpt_rcv_range, node, range_cmp, __attribute__((unused)) static)

void mpt_rcvbuf_init(struct mpt_rcvbuf *rb, size_t cap, uint64_t dsn0)
{
    memset(rb, 0, sizeof *rb);
    rb->cap = cap ? cap : 1;
    rb->origin = rb->read = rb->nxt = dsn0;
    /* Enough ranges for any sane pattern of full frames; a peer sending
     * tiny scattered segments gets them dropped instead of eating memory. */
    rb->max_ranges = rb->cap / 512 + 64;
    RB_INIT(&rb->tree);
}

void mpt_rcvbuf_free(struct mpt_rcvbuf *rb)
{
    struct mpt_rcv_range *r, *nx;

    RB_FOREACH_SAFE(r, mpt_rcv_tree, &rb->tree, nx) {
        RB_REMOVE(mpt_rcv_tree, &rb->tree, r);
        free(r);
    }
    rb->nranges = 0;
    rb->ooo_bytes = 0;
    free(rb->buf);
    rb->buf = NULL;
}

static void copy_in(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *src, size_t len)
{
    size_t pos = (size_t)((dsn - rb->origin) % rb->cap), first = rb->cap - pos;

    if (first > len)
        first = len;
    memcpy(rb->buf + pos, src, first);
    if (len > first)
        memcpy(rb->buf, src + first, len - first);
}

int mpt_rcvbuf_insert(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *data, size_t len,
                      size_t *dup, size_t *dropped)
{
    uint64_t s = dsn, e = dsn + len, cur, mstart, mend;
    struct mpt_rcv_range key, *n, *nx, *keep = NULL;
    size_t held = 0;

    if (len == 0)
        return 0;
    if (mpt_dsn_gt(e, mpt_rcvbuf_right_edge(rb)))
        return MPT_EFLOW;
    if (mpt_dsn_le(e, rb->nxt)) {
        *dup += len;
        return 0;
    }
    if (mpt_dsn_lt(s, rb->nxt)) {
        *dup += (size_t)(rb->nxt - s);
        data += rb->nxt - s;
        s = rb->nxt;
    }
    if (!rb->buf) {
        rb->buf = calloc(1, rb->cap);
        if (!rb->buf)
            return MPT_ENOMEM;
    }

    /* First range that could touch [s, e]: the predecessor of s if it
     * reaches s, else the first range starting at or after s. */
    key.start = s;
    n = RB_NFIND(mpt_rcv_tree, &rb->tree, &key);
    nx = n ? RB_PREV(mpt_rcv_tree, &rb->tree, n) : RB_MAX(mpt_rcv_tree, &rb->tree);
    if (nx && mpt_dsn_ge(nx->end, s))
        n = nx;
    if (s == rb->nxt || !n || mpt_dsn_gt(n->start, e)) {
        /* Touches no range: needs a node of its own unless it is in order. */
        if (s != rb->nxt && rb->nranges >= rb->max_ranges) {
            *dropped += (size_t)(e - s);
            return 0;
        }
    }

    mstart = s;
    mend = e;
    cur = s;
    while (n && mpt_dsn_le(n->start, e)) {
        nx = RB_NEXT(mpt_rcv_tree, &rb->tree, n);
        if (mpt_dsn_gt(n->start, cur))
            copy_in(rb, cur, data + (cur - s), (size_t)(n->start - cur));
        /* overlap of [s, e) with [n->start, n->end) */
        {
            uint64_t os = mpt_dsn_max(s, n->start), oe = mpt_dsn_min(e, n->end);
            if (mpt_dsn_lt(os, oe))
                *dup += (size_t)(oe - os);
        }
        if (mpt_dsn_lt(n->start, mstart))
            mstart = n->start;
        if (mpt_dsn_gt(n->end, mend))
            mend = n->end;
        cur = mpt_dsn_max(cur, n->end);
        held += (size_t)(n->end - n->start);
        RB_REMOVE(mpt_rcv_tree, &rb->tree, n);
        rb->nranges--;
        if (!keep)
            keep = n;
        else
            free(n);
        n = nx;
    }
    if (mpt_dsn_lt(cur, e))
        copy_in(rb, cur, data + (cur - s), (size_t)(e - cur));
    rb->ooo_bytes -= held;

    if (mstart == rb->nxt) {
        /* Contiguous with the in-order data: no range needed. */
        rb->nxt = mend;
        free(keep);
        return 0;
    }
    if (!keep) {
        keep = calloc(1, sizeof *keep);
        if (!keep)
            return MPT_ENOMEM; /* the bytes were copied but are not recorded: harmless */
    }
    keep->start = mstart;
    keep->end = mend;
    RB_INSERT(mpt_rcv_tree, &rb->tree, keep);
    rb->nranges++;
    rb->ooo_bytes += (size_t)(mend - mstart);
    return 0;
}

size_t mpt_rcvbuf_read(struct mpt_rcvbuf *rb, void *out, size_t len)
{
    size_t avail = mpt_rcvbuf_readable(rb), pos, first;

    if (len > avail)
        len = avail;
    if (len == 0)
        return 0;
    pos = (size_t)((rb->read - rb->origin) % rb->cap);
    first = rb->cap - pos;
    if (first > len)
        first = len;
    memcpy(out, rb->buf + pos, first);
    if (len > first)
        memcpy((uint8_t *)out + first, rb->buf, len - first);
    rb->read += len;
    return len;
}

int mpt_rcvbuf_sack(const struct mpt_rcvbuf *rb, struct mpt_sack_range *r, int max)
{
    struct mpt_rcv_range *n;
    int k = 0;

    RB_FOREACH(n, mpt_rcv_tree, (struct mpt_rcv_tree *)&rb->tree) {
        if (k >= max)
            break;
        r[k].start = n->start;
        r[k].end = n->end;
        k++;
    }
    return k;
}
