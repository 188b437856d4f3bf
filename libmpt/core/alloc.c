/* The library's allocator and its failure-injection hook (alloc.h). */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic uint64_t n_allocs, n_failed, fail_from; /* fail_from 0: never */
static _Atomic int fail_sticky;

static int inject(void)
{
    uint64_t n = atomic_fetch_add(&n_allocs, 1) + 1, at = atomic_load(&fail_from);

    if (at == 0 || n < at || (n > at && !atomic_load(&fail_sticky)))
        return 0;
    atomic_fetch_add(&n_failed, 1);
    return 1;
}

void mpt_alloc_fail_at(uint64_t nth, int sticky)
{
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_from, nth ? atomic_load(&n_allocs) + nth : 0);
}

uint64_t mpt_alloc_count(void)
{
    return atomic_load(&n_allocs);
}

uint64_t mpt_alloc_failures(void)
{
    return atomic_load(&n_failed);
}

void *mpt_malloc(size_t n)
{
    return inject() ? NULL : malloc(n);
}

void *mpt_calloc(size_t n, size_t size)
{
    return inject() ? NULL : calloc(n, size);
}

void *mpt_realloc(void *p, size_t n)
{
    return inject() ? NULL : realloc(p, n);
}

void *mpt_reallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return mpt_realloc(p, n * size);
}

char *mpt_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mpt_malloc(n);

    if (d)
        memcpy(d, s, n);
    return d;
}

void mpt_free(void *p)
{
    free(p);
}
