#include "sendbuf.h"
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>

#include "bytering.h"
#include "dsn.h"

void mpt_sendbuf_init(struct mpt_sendbuf *sb, size_t cap, uint64_t dsn0)
{
    sb->buf = NULL;
    sb->cap = cap ? cap : 1;
    sb->origin = sb->base = sb->end = dsn0;
}

void mpt_sendbuf_free(struct mpt_sendbuf *sb)
{
    mpt_free(sb->buf);
    sb->buf = NULL;
}

static size_t pos_of(const struct mpt_sendbuf *sb, uint64_t dsn)
{
    return mpt_bytering_pos(sb->cap, sb->origin, dsn);
}

long mpt_sendbuf_write(struct mpt_sendbuf *sb, const void *data, size_t len)
{
    size_t space = mpt_sendbuf_space(sb), pos;

    if (len > space)
        len = space;
    if (len == 0)
        return 0;
    if (!sb->buf) {
        sb->buf = mpt_calloc(1, sb->cap);
        if (!sb->buf)
            return MPT_ENOMEM;
    }
    pos = pos_of(sb, sb->end);
    mpt_bytering_put(sb->buf, sb->cap, pos, data, len);
    sb->end += len;
    return (long)len;
}

int mpt_sendbuf_grow(struct mpt_sendbuf *sb, size_t new_cap)
{
    uint8_t *nb;
    size_t used = mpt_sendbuf_used(sb);

    if (new_cap <= sb->cap)
        return 0;
    if (sb->buf) {
        if (!(nb = mpt_malloc(new_cap)))
            return MPT_ENOMEM;
        if (used)
            mpt_bytering_get(sb->buf, sb->cap, pos_of(sb, sb->base), nb, used);
        mpt_free(sb->buf);
        sb->buf = nb;
    }
    sb->cap = new_cap;
    sb->origin = sb->base;
    return 0;
}

int mpt_sendbuf_trim(struct mpt_sendbuf *sb, size_t new_cap)
{
    int freed = sb->buf != NULL;

    if (sb->base != sb->end)
        return 0;
    mpt_free(sb->buf);
    sb->buf = NULL;
    sb->cap = new_cap ? new_cap : 1;
    sb->origin = sb->base;
    return freed;
}

void mpt_sendbuf_release(struct mpt_sendbuf *sb, uint64_t upto)
{
    if (mpt_dsn_gt(upto, sb->end))
        upto = sb->end;
    if (mpt_dsn_gt(upto, sb->base))
        sb->base = upto;
}

int mpt_sendbuf_peek(const struct mpt_sendbuf *sb, uint64_t dsn, size_t len,
                     struct mpt_iovec *iov)
{
    return mpt_bytering_iov(sb->buf, sb->cap, pos_of(sb, dsn), len, iov);
}
