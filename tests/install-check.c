/* Built by `make installcheck` (and so by `make distcheck`) against the
 * installed headers and library: the public API must be usable as installed. */
#include <mpt/mpt.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    struct mpt_config cfg;

    mpt_config_default(&cfg, sizeof cfg);
    if (strcmp(mpt_err_name(MPT_EAUTH), "MPT_EAUTH") != 0)
        return 1;
    printf("installed libmpt %s works\n", mpt_version());
    return 0;
}
