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
 * at most cap + cap / 8 (+ cap / 2048 for the summaries) bytes. In-order
 * data never touches the bitmap. Two summaries with one bit per bitmap word
 * (some bit set; all bits set) let advancing the cumulative point and
 * reporting SACK ranges skip a hole or a run 4 KiB of stream per bit.
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
    uint64_t *any;    /* summary, one bit per bitmap word: some bit set (same block) */
    uint64_t *full;   /* summary, one bit per bitmap word: all bits set (same block) */
    uint8_t *lend;    /* the application's buffer standing in for the ring over */
    uint64_t lend_base; /* [lend_base, lend_base + lend_len) while lent (mpt_rcvbuf_lend) */
    size_t lend_len;
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
 * Lending an application buffer: while nothing is readable, out stands in for
 * the ring over the DSNs [nxt, nxt + len): every byte that arrives there, in
 * order or not, is copied straight to its place in out (one copy per byte
 * instead of two: input to ring, ring to application), and bytes already
 * held there are moved into out now. In-order bytes in out count as read at
 * once (`read` follows `nxt` up to the end of out, so the right edge opens);
 * bytes beyond out go to the ring as usual. Returns 0, MPT_EINVAL (len 0),
 * or MPT_ESTATE (bytes readable, or already lent).
 */
int mpt_rcvbuf_lend(struct mpt_rcvbuf *rb, uint8_t *out, size_t len);
/* In-order bytes in the lent buffer (from out[0]); 0 when not lent. */
static inline size_t mpt_rcvbuf_lent(const struct mpt_rcvbuf *rb)
{
    uint64_t d = rb->nxt - rb->lend_base;

    if (!rb->lend)
        return 0;
    return d < rb->lend_len ? (size_t)d : rb->lend_len;
}
/* 1 while lent, not yet full, with bytes held out of order inside it (what
 * fills the hole below them would complete more of it). */
int mpt_rcvbuf_lend_waiting(const struct mpt_rcvbuf *rb);
/* Ends the loan; returns mpt_rcvbuf_lent() (those bytes are the
 * application's now). Bytes held out of order in it are copied to the ring. */
size_t mpt_rcvbuf_unlend(struct mpt_rcvbuf *rb);
/*
 * Receive-window auto-tuning (recv.c) changes the ring's size:
 * mpt_rcvbuf_grow moves what is held (in order and out of order, bitmap and
 * summaries included; bytes in a lent buffer stay there) into a ring of
 * new_cap > cap bytes: 0, or MPT_ENOMEM with the old ring untouched.
 * mpt_rcvbuf_trim frees the ring and bitmap of an empty buffer (nothing
 * readable, nothing out of order, not lent) and makes its next allocation
 * new_cap bytes; the caller keeps new_cap >= the advertised edge - read.
 * Returns 1 if it freed something, else 0.
 */
int mpt_rcvbuf_grow(struct mpt_rcvbuf *rb, size_t new_cap);
int mpt_rcvbuf_trim(struct mpt_rcvbuf *rb, size_t new_cap);
/* Bytes allocated now (ring + bitmap). */
size_t mpt_rcvbuf_allocated(const struct mpt_rcvbuf *rb);
/* Copies up to len in-order bytes out; returns the count. */
size_t mpt_rcvbuf_read(struct mpt_rcvbuf *rb, void *out, size_t len);
/* The first (lowest) out-of-order ranges, at most max; returns the count. */
int mpt_rcvbuf_sack(const struct mpt_rcvbuf *rb, struct mpt_sack_range *r, int max);

#endif
