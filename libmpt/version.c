#include "config.h"

#include <mpt/mpt.h>

const char *mpt_version(void)
{
    return PACKAGE_VERSION;
}
