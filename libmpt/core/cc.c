/* Congestion-control registry. */
#include "cc.h"

#include <string.h>

const struct mpt_cc_ops *const mpt_cc_registry[] = {
    &mpt_cc_passthrough,
    NULL,
};

const struct mpt_cc_ops *mpt_cc_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; mpt_cc_registry[i]; i++)
        if (strcmp(mpt_cc_registry[i]->name, name) == 0)
            return mpt_cc_registry[i];
    return NULL;
}
