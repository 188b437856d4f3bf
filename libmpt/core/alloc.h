/*
 * The one allocator of the library: every allocation in libmpt/ and
 * libmpt/core/ goes through these (tests/check-alloc.sh keeps it so), so that
 * tests can make any of them fail and check that each failure surfaces as
 * MPT_ENOMEM, never as a crash or a leak (doc/testing.md).
 *
 * Memory from mpt_malloc / mpt_calloc / mpt_realloc / mpt_strdup is freed
 * with mpt_free. Behind them is the C library's allocator; the hook below is
 * for tests only and is not part of the public API (a process-wide switch
 * would be a global, and the engine has no per-connection allocator to hand
 * it to).
 */
#ifndef MPT_CORE_ALLOC_H
#define MPT_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *mpt_malloc(size_t n);
void *mpt_calloc(size_t n, size_t size);
void *mpt_realloc(void *p, size_t n);
void *mpt_reallocarray(void *p, size_t n, size_t size);
char *mpt_strdup(const char *s);
void mpt_free(void *p);

/*
 * Test hook: counting from now, the nth allocation (1: the next one) fails,
 * and with `sticky` every one after it too; nth 0 turns failures off.
 * Thread-safe (the resolver allocates on its own threads' behalf).
 */
void mpt_alloc_fail_at(uint64_t nth, int sticky);
/* Allocations attempted since the process started, and those made to fail. */
uint64_t mpt_alloc_count(void);
uint64_t mpt_alloc_failures(void);

#endif
