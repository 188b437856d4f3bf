/*
 * The engine's randomness (settings.rand: keys, nonces, routing ids) for
 * one context, drawn from the kernel's CSPRNG in batches (random.c).
 * Loop thread only, like the rest of the context.
 */
#ifndef MPT_RANDOM_H
#define MPT_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#define MPT_RANDOM_BATCH 2048u

struct mpt_random {
    uint8_t buf[MPT_RANDOM_BATCH];
    size_t pos;                      /* next unread byte; MPT_RANDOM_BATCH: empty */
    unsigned gen;                    /* fork generation the batch was drawn in */
    unsigned draws;                  /* batches drawn (tests) */
};

void mpt_random_init(struct mpt_random *r);
/* n bytes into out; never fails (a kernel without getrandom: arc4random). */
void mpt_random_fill(struct mpt_random *r, uint8_t *out, size_t n);
/* Forget (and wipe) what was drawn but not handed out. */
void mpt_random_wipe(struct mpt_random *r);

#endif
