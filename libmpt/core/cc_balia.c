/*
 * BALIA (Peng, Walid, Hwang, Low; IEEE/ACM ToN 2016), in packets of mss_r
 * with x_k = w_k / rtt_k and alpha_r = max_k x_k / x_r: per acked packet on
 * path r in congestion avoidance
 *     w_r += x_r / (rtt_r (sum_k x_k)^2) * (1 + alpha_r) / 2 * (4 + alpha_r) / 5,
 * and on loss w_r -= w_r / 2 * min(alpha_r, 1.5). It balances LIA's
 * friendliness and OLIA's responsiveness.
 */
#include "cc_util.h"

static double rate(const struct mpt_cc_env *e, int i)
{
    return cc_win(e, i)->w / cc_mss(&e->sf[i]) / cc_rtt(&e->sf[i]);
}

double mpt_cc_balia_alpha(const struct mpt_cc_env *e, int which)
{
    double xmax = 0, xr = rate(e, which);

    for (int i = 0; i < e->n; i++)
        if (rate(e, i) > xmax)
            xmax = rate(e, i);
    return xr > 0 ? xmax / xr : 1;
}

static void balia_ack(const struct mpt_cc_env *e, int which, size_t bytes, uint64_t now)
{
    struct cc_win *s = cc_win(e, which);
    double sum = 0, xr = rate(e, which), r = cc_rtt(&e->sf[which]), a, inc;

    (void)now;
    cc_validate(s, &e->sf[which]);
    if (cc_slow_start(s, bytes))
        return;
    for (int i = 0; i < e->n; i++)
        sum += rate(e, i);
    a = mpt_cc_balia_alpha(e, which);
    inc = xr / (r * sum * sum) * (1 + a) / 2 * (4 + a) / 5;
    s->w += inc * (double)bytes;
}

static void balia_loss(const struct mpt_cc_env *e, int which, uint64_t now)
{
    struct cc_win *s = cc_win(e, which);
    double a;

    if (!cc_new_loss(e, which, now))
        return;
    a = mpt_cc_balia_alpha(e, which);
    s->w -= s->w / 2 * (a < 1.5 ? a : 1.5);
    cc_floor(s, &e->sf[which]);
    s->ssthresh = s->w;
}

const struct mpt_cc_ops mpt_cc_balia = {
    .name = "balia",
    .sf_state_size = sizeof(struct cc_win),
    .sf_up = cc_win_up,
    .on_ack = balia_ack,
    .on_loss = balia_loss,
    .cap = cc_cap,
};
