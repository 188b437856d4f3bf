/* Congestion-control registry. */
#include "cc.h"

#include <string.h>

const struct mpt_cc_ops *const mpt_cc_registry[] = {
    &mpt_cc_uncoupled,
    &mpt_cc_lia,
    &mpt_cc_olia,
    &mpt_cc_balia,
    NULL,
};

const struct mpt_cc_ops *mpt_cc_find(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "passthrough") == 0)
        return &mpt_cc_uncoupled;
    for (size_t i = 0; mpt_cc_registry[i]; i++)
        if (strcmp(mpt_cc_registry[i]->name, name) == 0)
            return mpt_cc_registry[i];
    return NULL;
}
