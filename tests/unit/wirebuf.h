/*
 * Big-endian writers that build preambles and frames from doc/protocol.md
 * byte by byte, for tests and fuzz targets that play a raw peer (each
 * returns the offset after what it wrote; the caller sizes the buffer).
 * Header-only, no dependency beyond libc.
 */
#ifndef MPT_TESTS_WIREBUF_H
#define MPT_TESTS_WIREBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline size_t put8(uint8_t *b, size_t o, uint8_t v)
{
    b[o] = v;
    return o + 1;
}

static inline size_t put16(uint8_t *b, size_t o, uint16_t v)
{
    b[o] = (uint8_t)(v >> 8);
    b[o + 1] = (uint8_t)v;
    return o + 2;
}

static inline size_t put32(uint8_t *b, size_t o, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[o + i] = (uint8_t)(v >> (24 - 8 * i));
    return o + 4;
}

static inline size_t put64(uint8_t *b, size_t o, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[o + i] = (uint8_t)(v >> (56 - 8 * i));
    return o + 8;
}

static inline size_t putn(uint8_t *b, size_t o, const void *p, size_t n)
{
    memcpy(b + o, p, n);
    return o + n;
}

/* A frame header (protocol.md 5): type, flags, body length. */
static inline size_t hdr(uint8_t *b, size_t o, uint8_t type, uint8_t flags, uint16_t blen)
{
    o = put8(b, o, type);
    o = put8(b, o, flags);
    return put16(b, o, blen);
}

#endif
