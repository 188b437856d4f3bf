/*
 * Schedulers: which subflow carries the next chunk of new data.
 * A scheduler is a const table with a name, one file per algorithm
 * (sched_minrtt.c, ...), found by name in the registry.
 */
#ifndef MPT_CORE_SCHED_H
#define MPT_CORE_SCHED_H

#include <stddef.h>
#include <stdint.h>

/* What a scheduler may see of one usable subflow (established, not
 * stalled, not closing). */
struct mpt_sched_sf {
    int index;         /* subflow index */
    int backup;
    uint64_t srtt;     /* ns; 0 = unknown */
    size_t room;       /* bytes the socket takes now */
    size_t cc_room;    /* bytes congestion control still allows (SIZE_MAX = no cap) */
    size_t queued;     /* bytes handed to the subflow and not yet connection-acked */
};

struct mpt_sched_ops {
    const char *name;
    /* Returns the subflow index for the next chunk of data, or -1 to send
     * nothing now. Called with the usable subflows only (n >= 1); the engine
     * clamps the chunk to the chosen subflow's room and cc_room. */
    int (*pick)(const struct mpt_sched_sf *sf, int n, void *state);
    size_t state_size; /* per-connection scratch the engine allocates, zeroed */
};

extern const struct mpt_sched_ops mpt_sched_minrtt;
extern const struct mpt_sched_ops mpt_sched_roundrobin;

/* NULL-terminated registry, and lookup by name (NULL if unknown). */
extern const struct mpt_sched_ops *const mpt_sched_registry[];
const struct mpt_sched_ops *mpt_sched_find(const char *name);

#endif
