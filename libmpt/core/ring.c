/* A small growable ring of fixed-size elements (ring.h). */
#include "ring.h"
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

void mpt_ring_init(struct mpt_ring *r, uint32_t esz)
{
    memset(r, 0, sizeof *r);
    r->esz = esz;
}

void *mpt_ring_at(const struct mpt_ring *r, uint32_t i)
{
    return r->a + (size_t)((r->head + i) & (r->cap - 1)) * r->esz;
}

static int ring_grow(struct mpt_ring *r)
{
    uint32_t nc = r->cap ? r->cap * 2 : 8;
    uint8_t *na = mpt_calloc(1, (size_t)nc * r->esz);

    if (!na)
        return -1;
    for (uint32_t i = 0; i < r->n; i++)
        memcpy(na + (size_t)i * r->esz, mpt_ring_at(r, i), r->esz);
    mpt_free(r->a);
    r->a = na;
    r->head = 0;
    r->cap = nc;
    return 0;
}

void *mpt_ring_push_back(struct mpt_ring *r)
{
    if (r->n == r->cap && ring_grow(r))
        return NULL;
    r->n++;
    return mpt_ring_at(r, r->n - 1);
}

void *mpt_ring_push_front(struct mpt_ring *r)
{
    if (r->n == r->cap && ring_grow(r))
        return NULL;
    r->head = (r->head - 1) & (r->cap - 1);
    r->n++;
    return mpt_ring_at(r, 0);
}

void mpt_ring_pop_front(struct mpt_ring *r)
{
    r->head = (r->head + 1) & (r->cap - 1);
    r->n--;
}

void mpt_ring_pop_back(struct mpt_ring *r)
{
    r->n--;
}

void mpt_ring_free(struct mpt_ring *r)
{
    mpt_free(r->a);
    r->a = NULL;
    r->n = r->cap = r->head = 0;
}
