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
