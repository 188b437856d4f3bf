/*
 * Connection-level send buffer: a byte ring indexed by DSN holding
 * [base, end): every byte the application wrote that the peer has not yet
 * acknowledged (plus bytes still pinned by a partly written frame). The ring
 * memory is allocated on first write with malloc, so untouched pages of a
 * large buffer cost nothing. Reads are zero-copy: up to two iovecs.
 */
#ifndef MPT_CORE_SENDBUF_H
#define MPT_CORE_SENDBUF_H

#include <stddef.h>
#include <stdint.h>

struct mpt_sendbuf {
    uint8_t *buf;
    size_t cap;
    uint64_t origin; /* DSN stored at buf[0] on the first lap */
    uint64_t base;   /* oldest byte held */
    uint64_t end;    /* one past the newest byte */
};

struct mpt_iovec;

void mpt_sendbuf_init(struct mpt_sendbuf *sb, size_t cap, uint64_t dsn0);
void mpt_sendbuf_free(struct mpt_sendbuf *sb);
static inline size_t mpt_sendbuf_used(const struct mpt_sendbuf *sb)
{
    return (size_t)(sb->end - sb->base);
}
static inline size_t mpt_sendbuf_space(const struct mpt_sendbuf *sb)
{
    return sb->cap - mpt_sendbuf_used(sb);
}
/* Copies min(len, space) bytes; returns the count, or MPT_ENOMEM (-2) when
 * the ring could not be allocated. */
long mpt_sendbuf_write(struct mpt_sendbuf *sb, const void *data, size_t len);
/* Send-buffer auto-tuning (send.c): moves what is held into a ring of
 * new_cap > cap bytes (0, or MPT_ENOMEM with the old ring untouched); frees
 * the ring of an empty buffer and makes its next allocation new_cap bytes
 * (returns 1 if it freed it). Either invalidates iovecs from peek. */
int mpt_sendbuf_grow(struct mpt_sendbuf *sb, size_t new_cap);
int mpt_sendbuf_trim(struct mpt_sendbuf *sb, size_t new_cap);
/* Forget every byte before upto (no-op if upto <= base). */
void mpt_sendbuf_release(struct mpt_sendbuf *sb, uint64_t upto);
/* [dsn, dsn+len) must lie within [base, end). Fills 1 or 2 iovecs. */
int mpt_sendbuf_peek(const struct mpt_sendbuf *sb, uint64_t dsn, size_t len,
                     struct mpt_iovec *iov);

#endif
