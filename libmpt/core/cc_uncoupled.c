/* Uncoupled congestion control: no cap; each subflow follows its kernel
 * algorithm alone (what Linux MPTCP does upstream). */
#include "cc.h"

const struct mpt_cc_ops mpt_cc_uncoupled = {
    .name = "uncoupled",
};
