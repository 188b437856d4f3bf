/*
 * Congestion-control hook. libmpt cannot raise the kernel's cwnd, only hand a
 * subflow fewer bytes: an algorithm returns a cap on a subflow's bytes in
 * flight (connection-level unacked bytes sent on it). The default passes
 * everything through; coupled algorithms (LIA, OLIA, BALIA) plug in here.
 */
#ifndef MPT_CORE_CC_H
#define MPT_CORE_CC_H

#include <stddef.h>
#include <stdint.h>

struct mpt_cc_sf {
    int index;
    uint64_t srtt;        /* ns */
    uint32_t cwnd_bytes;  /* kernel cwnd (bytes), 0 = unknown */
    size_t inflight;      /* bytes sent on it, not yet acked */
};

struct mpt_cc_ops {
    const char *name;
    size_t state_size;   /* per connection, zeroed */
    /* `bytes` sent on subflow `which` were acknowledged at connection level. */
    void (*on_ack)(void *state, const struct mpt_cc_sf *sf, int n, int which, size_t bytes);
    /* The kernel retransmitted on subflow `which` (its tcpi_total_retrans,
     * fed through mpt_conn_sf_set_info, grew): one call per increase. */
    void (*on_loss)(void *state, const struct mpt_cc_sf *sf, int n, int which);
    /* Cap on subflow `which`'s bytes in flight; SIZE_MAX for none. */
    size_t (*cap)(void *state, const struct mpt_cc_sf *sf, int n, int which);
};

extern const struct mpt_cc_ops mpt_cc_passthrough;
extern const struct mpt_cc_ops *const mpt_cc_registry[];
const struct mpt_cc_ops *mpt_cc_find(const char *name);

#endif
