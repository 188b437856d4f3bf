/* A small growable ring of fixed-size elements: the engine's queues and FIFOs
 * (output items, records, reinjection ranges, advertisements). Capacity is a
 * power of two; it doubles when full. */
#ifndef MPT_CORE_RING_H
#define MPT_CORE_RING_H

#include <stdint.h>

struct mpt_ring {
    uint8_t *a;
    uint32_t head, n, cap, esz;
};

void mpt_ring_init(struct mpt_ring *r, uint32_t esz);
void *mpt_ring_at(const struct mpt_ring *r, uint32_t i);
void *mpt_ring_push_back(struct mpt_ring *r);
void *mpt_ring_push_front(struct mpt_ring *r);
void mpt_ring_pop_front(struct mpt_ring *r);
void mpt_ring_pop_back(struct mpt_ring *r);
void mpt_ring_free(struct mpt_ring *r);

#endif
