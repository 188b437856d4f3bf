/* Scheduler registry. */
#include "sched.h"

#include <string.h>

const struct mpt_sched_ops *const mpt_sched_registry[] = {
    &mpt_sched_minrtt,
    &mpt_sched_roundrobin,
    &mpt_sched_redundant,
    &mpt_sched_blest,
    &mpt_sched_ecf,
    &mpt_sched_weighted,
    NULL,
};

const struct mpt_sched_ops *mpt_sched_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; mpt_sched_registry[i]; i++)
        if (strcmp(mpt_sched_registry[i]->name, name) == 0)
            return mpt_sched_registry[i];
    return NULL;
}
