/*
 * Connection-level receive buffer and reassembly.
 *
 * One byte ring of `cap` bytes indexed by DSN covers [read, read + cap): the
 * bytes the application has not read yet. Because the advertised right edge
 * is never beyond read + cap, every byte the peer may legally send has a
 * fixed slot in the ring, so out-of-order data is copied straight to its
 * final place (one copy per byte; duplicates only rewrite the same slot).
 *
 * Which out-of-order bytes are present is a bitmap with one bit per ring
 * slot (cap / 8 bytes, allocated on the first out-of-order segment). Any
 * pattern the window allows fits, down to single bytes with single-byte
 * holes, so data inside the window is never dropped and memory is fixed:
 * at most cap + cap / 8 bytes. In-order data never touches the bitmap.
 * Advancing the cumulative point and reporting SACK ranges scan it a word
 * (64 bytes of stream) at a time.
 */
#ifndef MPT_CORE_RCVBUF_H
#define MPT_CORE_RCVBUF_H

#include <stddef.h>
#include <stdint.h>

struct mpt_rcvbuf {
    uint8_t *buf;
    size_t cap;
    uint64_t origin;  /* DSN stored at buf[0] on the first lap */
    uint64_t read;    /* next DSN the application reads */
    uint64_t nxt;     /* next in-order DSN expected (cumulative ack) */
    size_t ooo_bytes; /* bytes held above nxt */
    size_t nranges;   /* disjoint runs of bytes held above nxt */
    uint64_t ooo_end; /* one past the highest byte held above nxt (nxt if none) */
    uint64_t *bits;   /* presence bitmap, one bit per ring slot; NULL until needed */
};

struct mpt_sack_range;

/* How far behind the cumulative point a DATA frame may start and still be a
 * retransmission: no sender has more than a u32 window unacknowledged. */
#define MPT_RCV_MAX_BEHIND ((uint64_t)1 << 32)

void mpt_rcvbuf_init(struct mpt_rcvbuf *rb, size_t cap, uint64_t dsn0);
void mpt_rcvbuf_free(struct mpt_rcvbuf *rb);

/*
 * Stores segment [dsn, dsn+len) with len <= 65535. The position of a DSN is
 * its distance d = (dsn - nxt) mod 2^64 from the cumulative point: ahead if
 * d < 2^63, else behind by 2^64 - d. Returns 0 and adds to *dup the payload
 * bytes already held or already delivered; MPT_EFLOW if any byte lies at or
 * beyond `edge` (the highest right edge advertised, which must not exceed
 * read + cap); MPT_EPROTO if dsn is more than MPT_RCV_MAX_BEHIND behind nxt
 * (it cannot be a retransmission); MPT_ENOMEM. Nothing is ever dropped.
 */
int mpt_rcvbuf_insert(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *data, size_t len,
                      uint64_t edge, size_t *dup);

static inline size_t mpt_rcvbuf_readable(const struct mpt_rcvbuf *rb)
{
    return (size_t)(rb->nxt - rb->read);
}
static inline size_t mpt_rcvbuf_mem(const struct mpt_rcvbuf *rb)
{
    return (size_t)(rb->nxt - rb->read) + rb->ooo_bytes;
}
/* The furthest right edge the ring can honour. */
static inline uint64_t mpt_rcvbuf_right_edge(const struct mpt_rcvbuf *rb)
{
    return rb->read + rb->cap;
}
/*
 * Direct delivery: when nothing is readable and segment [dsn, dsn+len)
 * starts at the cumulative point, copies its first bytes (up to room, and
 * short of any byte already held above the cumulative point) straight to
 * out, as if stored and read at once: one copy instead of two. Returns the
 * count taken (0 if the segment does not qualify; the caller stores the
 * rest with mpt_rcvbuf_insert), or MPT_EFLOW like mpt_rcvbuf_insert.
 */
long mpt_rcvbuf_deliver(struct mpt_rcvbuf *rb, uint64_t dsn, const uint8_t *data, size_t len,
                        uint64_t edge, uint8_t *out, size_t room);
/* Copies up to len in-order bytes out; returns the count. */
size_t mpt_rcvbuf_read(struct mpt_rcvbuf *rb, void *out, size_t len);
/* The first (lowest) out-of-order ranges, at most max; returns the count. */
int mpt_rcvbuf_sack(const struct mpt_rcvbuf *rb, struct mpt_sack_range *r, int max);

#endif
