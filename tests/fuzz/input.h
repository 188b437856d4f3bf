/*
 * Reading a libFuzzer input as a program: small unsigned values taken one
 * after the other, 0 once the input is used up (so every input, even the
 * empty one, is a valid program that ends).
 */
#ifndef MPT_FUZZ_INPUT_H
#define MPT_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct fz_in {
    const uint8_t *p;
    size_t n, off;
};

static inline int fz_more(const struct fz_in *in)
{
    return in->off < in->n;
}
static inline unsigned fz_u8(struct fz_in *in)
{
    return in->off < in->n ? in->p[in->off++] : 0;
}
static inline unsigned fz_u16(struct fz_in *in)
{
    unsigned v = fz_u8(in) << 8;
    return v | fz_u8(in);
}
static inline uint32_t fz_u32(struct fz_in *in)
{
    uint32_t v = (uint32_t)fz_u16(in) << 16;
    return v | fz_u16(in);
}
/* Up to max bytes of the input itself (fewer at its end); returns the count. */
static inline size_t fz_bytes(struct fz_in *in, size_t max, const uint8_t **p)
{
    size_t left = in->n - in->off, n = max < left ? max : left;
    *p = in->p + in->off;
    in->off += n;
    return n;
}

#define FZ_CHECK(cond)                                                                     \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: oracle violated: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* Byte `off` of the application stream sent by side `side`: a pure function
 * of both, so a reader verifies without keeping a copy. */
static inline uint8_t fz_stream_byte(int side, uint64_t off)
{
    uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(side + 1) * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (uint8_t)(x ^ (off >> 8));
}

#endif
