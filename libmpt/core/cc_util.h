/*
 * What the coupled algorithms (lia, olia, balia) share: a window per
 * subflow in bytes kept as a double (deterministic IEEE arithmetic, no libm),
 * TCP's slow start, and a loss reaction at most once per RTT of the subflow
 * (the kernel may report several retransmissions of one loss episode).
 */
#ifndef MPT_CORE_CC_UTIL_H
#define MPT_CORE_CC_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "cc.h"

struct cc_win {
    double w;          /* coupled window, bytes */
    double ssthresh;   /* bytes */
    uint64_t loss_at;  /* last loss reaction */
    double l1, l2;     /* bytes acked since the last loss, and between the two before (olia) */
};

#define CC_INIT_SEGS 10
#define CC_MIN_SEGS 2

static inline double cc_mss(const struct mpt_path_view *p)
{
    return p->mss ? (double)p->mss : 1448.0;
}

/* RTT in seconds for the ratios the algorithms take (100 ms if unknown). */
static inline double cc_rtt(const struct mpt_path_view *p)
{
    uint64_t r = p->e2e_rtt ? p->e2e_rtt : p->srtt;
    return r ? (double)r / 1e9 : 0.1;
}

static inline struct cc_win *cc_win(const struct mpt_cc_env *e, int i)
{
    return (struct cc_win *)e->sf_state[i];
}

static inline void cc_win_up(const struct mpt_cc_env *e, int which, uint64_t now)
{
    struct cc_win *s = cc_win(e, which);

    (void)now;
    s->w = CC_INIT_SEGS * cc_mss(&e->sf[which]);
    s->ssthresh = 1e300;
    s->loss_at = 0;
}

/* Slow start: returns 1 if it took the ack (below ssthresh). */
static inline int cc_slow_start(struct cc_win *s, size_t bytes)
{
    if (s->w >= s->ssthresh)
        return 0;
    s->w += (double)bytes;
    if (s->w > s->ssthresh)
        s->w = s->ssthresh;
    return 1;
}

/* Whether a loss starts a new episode (one reaction per RTT). */
static inline int cc_new_loss(const struct mpt_cc_env *e, int which, uint64_t now)
{
    struct cc_win *s = cc_win(e, which);
    uint64_t rtt = e->sf[which].e2e_rtt ? e->sf[which].e2e_rtt : e->sf[which].srtt;

    if (s->loss_at && now < s->loss_at + rtt)
        return 0;
    s->loss_at = now ? now : 1;
    return 1;
}

/*
 * The coupled window only caps what the kernel's own window allows. Left to
 * grow while the kernel's window is the smaller one (slow start after a
 * timeout, a path the kernel holds back), it would run far ahead, stop
 * binding, and a halving on loss would still leave it above the kernel's:
 * coupling would then do nothing. So it never exceeds the kernel's cwnd by
 * more than two segments (RFC 7661's rule, applied to the cap).
 */
static inline void cc_validate(struct cc_win *s, const struct mpt_path_view *p)
{
    double limit = (double)p->cwnd_bytes + 2 * cc_mss(p);

    if (p->cwnd_bytes > 0 && s->w > limit)
        s->w = limit;
}

static inline void cc_floor(struct cc_win *s, const struct mpt_path_view *p)
{
    if (s->w < CC_MIN_SEGS * cc_mss(p))
        s->w = CC_MIN_SEGS * cc_mss(p);
}

static inline size_t cc_cap(const struct mpt_cc_env *e, int which)
{
    double w = cc_win(e, which)->w;
    return w >= (double)SIZE_MAX ? SIZE_MAX : (size_t)w;
}

#endif
