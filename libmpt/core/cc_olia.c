/*
 * OLIA (Khalili, Gast, Popovic, Le Boudec; CoNEXT 2012), in packets of
 * mss_r: per acked packet on path r in congestion avoidance
 *     w_r += (w_r / rtt_r^2) / (sum_p w_p / rtt_p)^2 + alpha_r / w_r,
 * alpha_r = 1 / (n |B \ M|) for r in B \ M, -1 / (n |M|) for r in M when
 * B \ M is not empty, else 0; M are the paths with the largest window, B the
 * best paths by l_r^2 / rtt_r, where l_r is the larger of the bytes acked
 * since the last loss and between the two losses before. Halving on loss as
 * TCP. Optimal in pooling and responsive, unlike LIA's linked increase.
 */
#include "cc_util.h"

static double quality(const struct mpt_cc_env *e, int i)
{
    const struct cc_win *s = cc_win(e, i);
    double l = s->l1 > s->l2 ? s->l1 : s->l2, r = cc_rtt(&e->sf[i]);
    return l * l / r;
}

double mpt_cc_olia_alpha(const struct mpt_cc_env *e, int which)
{
    double wmax = 0, qmax = 0;
    int nm = 0, nbm = 0, in_m = 0, in_bm = 0;

    for (int i = 0; i < e->n; i++) {
        if (cc_win(e, i)->w > wmax)
            wmax = cc_win(e, i)->w;
        if (quality(e, i) > qmax)
            qmax = quality(e, i);
    }
    for (int i = 0; i < e->n; i++) {
        int m = cc_win(e, i)->w >= wmax, b = quality(e, i) >= qmax;
        nm += m;
        nbm += b && !m;
        if (i == which) {
            in_m = m;
            in_bm = b && !m;
        }
    }
    if (nbm == 0)
        return 0;
    if (in_bm)
        return 1.0 / ((double)e->n * nbm);
    if (in_m)
        return -1.0 / ((double)e->n * nm);
    return 0;
}

static void olia_ack(const struct mpt_cc_env *e, int which, size_t bytes, uint64_t now)
{
    struct cc_win *s = cc_win(e, which);
    double mss = cc_mss(&e->sf[which]), r = cc_rtt(&e->sf[which]), sum = 0, wr, inc;

    (void)now;
    s->l1 += (double)bytes;
    cc_validate(s, &e->sf[which]);
    if (cc_slow_start(s, bytes))
        return;
    for (int i = 0; i < e->n; i++)
        sum += cc_win(e, i)->w / cc_mss(&e->sf[i]) / cc_rtt(&e->sf[i]);
    wr = s->w / mss;
    inc = (wr / (r * r)) / (sum * sum) + mpt_cc_olia_alpha(e, which) / wr;
    s->w += inc * (double)bytes; /* bytes / mss packets, each worth inc x mss bytes */
    cc_floor(s, &e->sf[which]);
}

static void olia_loss(const struct mpt_cc_env *e, int which, uint64_t now)
{
    struct cc_win *s = cc_win(e, which);

    if (!cc_new_loss(e, which, now))
        return;
    s->l2 = s->l1;
    s->l1 = 0;
    s->w /= 2;
    cc_floor(s, &e->sf[which]);
    s->ssthresh = s->w;
}

const struct mpt_cc_ops mpt_cc_olia = {
    .name = "olia",
    .sf_state_size = sizeof(struct cc_win),
    .sf_up = cc_win_up,
    .on_ack = olia_ack,
    .on_loss = olia_loss,
    .cap = cc_cap,
};
