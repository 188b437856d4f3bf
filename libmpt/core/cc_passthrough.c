/* Pass-through congestion control: no cap; the kernel's own cwnd rules. */
#include "cc.h"

static size_t pt_cap(void *state, const struct mpt_cc_sf *sf, int n, int which)
{
    (void)state;
    (void)sf;
    (void)n;
    (void)which;
    return SIZE_MAX;
}

const struct mpt_cc_ops mpt_cc_passthrough = {
    .name = "passthrough",
    .state_size = 0,
    .on_ack = NULL,
    .on_loss = NULL,
    .cap = pt_cap,
};
