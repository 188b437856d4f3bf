/* Data sequence numbers: 64-bit serial arithmetic (RFC 1982 style). Two DSNs
 * are only ever compared when they lie within 2^63 of each other. */
#ifndef MPT_CORE_DSN_H
#define MPT_CORE_DSN_H

#include <stdint.h>

static inline int mpt_dsn_lt(uint64_t a, uint64_t b)
{
    return (int64_t)(a - b) < 0;
}
static inline int mpt_dsn_le(uint64_t a, uint64_t b)
{
    return (int64_t)(a - b) <= 0;
}
static inline int mpt_dsn_gt(uint64_t a, uint64_t b)
{
    return (int64_t)(a - b) > 0;
}
static inline int mpt_dsn_ge(uint64_t a, uint64_t b)
{
    return (int64_t)(a - b) >= 0;
}
static inline uint64_t mpt_dsn_max(uint64_t a, uint64_t b)
{
    return mpt_dsn_lt(a, b) ? b : a;
}
static inline uint64_t mpt_dsn_min(uint64_t a, uint64_t b)
{
    return mpt_dsn_lt(a, b) ? a : b;
}

#endif
