/*
 * Connection-level receive buffer and reassembly.
 *
 * One byte ring of `cap` bytes indexed by DSN covers [read, read + cap): the
 * bytes the application has not read yet. Because the advertised right edge
 * is read + cap, every byte the peer may legally send has a fixed slot in the
 * ring, so out-of-order data is copied straight to its final place (exactly
 * one copy per byte, duplicates are never copied twice). A red-black tree of
 * disjoint, non-adjacent ranges [start, end) above `nxt` records which
 * out-of-order bytes are present: O(log n) per segment plus O(k) for the k
 * ranges a segment merges (amortised O(log n)). Memory (in-order unread +
 * out-of-order) can never exceed cap; the number of ranges is capped too.
 */
#ifndef MPT_CORE_RCVBUF_H
#define MPT_CORE_RCVBUF_H

#include <stddef.h>
#include <stdint.h>

#include <sys/tree.h>

struct mpt_rcv_range {
    RB_ENTRY(mpt_rcv_range) node;
    uint64_t start, end;
};
RB_HEAD(mpt_rcv_tree, mpt_rcv_range);

struct mpt_rcvbuf {
    uint8_t *buf;
    size_t cap;
    uint64_t origin;  /* DSN stored at buf[0] on the first lap */
    uint64_t read;    /* next DSN the application reads */
    uint64_t nxt;     /* next in-order DSN expected (cumulative ack) */
    size_t ooo_bytes; /* bytes held above nxt */
    size_t nranges, max_ranges;
    struct mpt_rcv_tree tree;
};

struct mpt_sack_range;

void mpt_rcvbuf_init(struct mpt_rcvbuf *rb, size_t cap, uint64_t dsn0);
void mpt_rcvbuf_free(struct mpt_rcvbuf *rb);

/*
 * Stores segment [dsn, dsn+len). Returns 0 and adds to *dup the payload bytes
 * already held (or already delivered), or MPT_EFLOW if any byte lies at or
 * beyond read + cap (the peer ignored the window), or MPT_ENOMEM. A segment
 * that would need a new range beyond max_ranges is dropped whole (counted in
 * *dropped, not in *dup): it was never acknowledged, the sender resends it.
 */
int mpt_rcvbuf_insert(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *data, size_t len,
                      size_t *dup, size_t *dropped);

static inline size_t mpt_rcvbuf_readable(const struct mpt_rcvbuf *rb)
{
    return (size_t)(rb->nxt - rb->read);
}
static inline size_t mpt_rcvbuf_mem(const struct mpt_rcvbuf *rb)
{
    return (size_t)(rb->nxt - rb->read) + rb->ooo_bytes;
}
static inline uint64_t mpt_rcvbuf_right_edge(const struct mpt_rcvbuf *rb)
{
    return rb->read + rb->cap;
}
/* Copies up to len in-order bytes out; returns the count. */
size_t mpt_rcvbuf_read(struct mpt_rcvbuf *rb, void *out, size_t len);
/* The first (lowest) out-of-order ranges, at most max; returns the count. */
int mpt_rcvbuf_sack(const struct mpt_rcvbuf *rb, struct mpt_sack_range *r, int max);

#endif
