/* Reorder-buffer delay per DATA frame (reorder.h). */
#include <stdlib.h>

#include "alloc.h"
#include "dsn.h"
#include "reorder.h"

/* Bin of a delay: 0 for under 1 us, then 4 per power of two. */
static unsigned bin_of(uint64_t ns)
{
    uint64_t us = ns / 1000;
    unsigned msb, frac, b;

    if (us == 0)
        return 0;
    msb = 63u - (unsigned)__builtin_clzll(us);
    frac = msb >= 2 ? (unsigned)((us >> (msb - 2)) & 3u) : (unsigned)((us << (2 - msb)) & 3u);
    b = 1 + msb * 4 + frac;
    return b < MPT_REORDER_BINS ? b : MPT_REORDER_BINS - 1;
}

/* The upper edge of a bin, ns. */
static uint64_t bin_top(unsigned b)
{
    unsigned msb, frac;

    if (b == 0)
        return 0;
    msb = (b - 1) / 4;
    frac = (b - 1) % 4;
    return ((((uint64_t)4 + frac + 1) << msb) >> 2) * 1000;
}

static void sample(struct mpt_reorder *r, uint64_t ns)
{
    r->tab->bins[bin_of(ns)]++;
    if (ns > r->max_ns)
        r->max_ns = ns;
}

void mpt_reorder_on_frame(struct mpt_reorder *r, uint64_t end, uint64_t nxt, uint64_t now)
{
    if (!mpt_dsn_gt(end, nxt)) {
        r->in_order++;
        return;
    }
    if (r->tab == NULL && (r->tab = mpt_calloc(1, sizeof *r->tab)) == NULL) {
        r->unsampled++; /* statistics only: never an error */
        return;
    }
    if (r->tab->n == MPT_REORDER_SLOTS) {
        r->unsampled++;
        return;
    }
    r->tab->ent[r->tab->n].end = end;
    r->tab->ent[r->tab->n].t = now;
    r->tab->n++;
}

void mpt_reorder_on_advance(struct mpt_reorder *r, uint64_t nxt, uint64_t now)
{
    struct mpt_reorder_table *t = r->tab;

    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->n;) {
        if (!mpt_dsn_gt(t->ent[i].end, nxt)) {
            sample(r, now - t->ent[i].t);
            t->ent[i] = t->ent[--t->n];
        } else {
            i++;
        }
    }
}

uint64_t mpt_reorder_samples(const struct mpt_reorder *r)
{
    uint64_t n = r->in_order;

    if (r->tab != NULL)
        for (unsigned b = 0; b < MPT_REORDER_BINS; b++)
            n += r->tab->bins[b];
    return n;
}

uint64_t mpt_reorder_quantile(const struct mpt_reorder *r, unsigned permille)
{
    uint64_t total = mpt_reorder_samples(r), want, seen = r->in_order;

    if (total == 0)
        return 0;
    want = (total * permille + 999) / 1000;
    if (want <= seen || r->tab == NULL)
        return 0;
    for (unsigned b = 0; b < MPT_REORDER_BINS; b++) {
        seen += r->tab->bins[b];
        if (seen >= want) {
            uint64_t top = bin_top(b);
            return top < r->max_ns ? top : r->max_ns;
        }
    }
    return r->max_ns;
}

void mpt_reorder_free(struct mpt_reorder *r)
{
    mpt_free(r->tab);
    r->tab = NULL;
}
