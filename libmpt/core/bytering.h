/*
 * The wrap-around copies of a byte ring indexed by DSN, shared by the send
 * buffer (sendbuf.c) and the receive buffer (rcvbuf.c): the byte with DSN d
 * lives at (d - origin) mod cap.
 */
#ifndef MPT_CORE_BYTERING_H
#define MPT_CORE_BYTERING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conn.h" /* struct mpt_iovec */

static inline size_t mpt_bytering_pos(size_t cap, uint64_t origin, uint64_t dsn)
{
    return (size_t)((dsn - origin) % cap);
}

/* Copies len <= cap bytes into the ring starting at position pos. */
static inline void mpt_bytering_put(uint8_t *buf, size_t cap, size_t pos, const void *src,
                                    size_t len)
{
    size_t first = cap - pos < len ? cap - pos : len;

    memcpy(buf + pos, src, first);
    if (len > first)
        memcpy(buf, (const uint8_t *)src + first, len - first);
}

/* Copies len <= cap bytes out of the ring starting at position pos. */
static inline void mpt_bytering_get(const uint8_t *buf, size_t cap, size_t pos, void *dst,
                                    size_t len)
{
    size_t first = cap - pos < len ? cap - pos : len;

    memcpy(dst, buf + pos, first);
    if (len > first)
        memcpy((uint8_t *)dst + first, buf, len - first);
}

/* Lends len <= cap bytes from position pos as 1 or 2 iovecs; returns the count. */
static inline int mpt_bytering_iov(const uint8_t *buf, size_t cap, size_t pos, size_t len,
                                   struct mpt_iovec *iov)
{
    size_t first = cap - pos;

    iov[0].base = buf + pos;
    if (first >= len) {
        iov[0].len = len;
        return 1;
    }
    iov[0].len = first;
    iov[1].base = buf;
    iov[1].len = len - first;
    return 2;
}

#endif
