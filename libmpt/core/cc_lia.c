/*
 * LIA, the linked-increases algorithm of RFC 6356. Per subflow i, on an ack
 * of `bytes` in congestion avoidance:
 *     w_i += min(alpha * bytes * mss_i / w_total, bytes * mss_i / w_i),
 *     alpha = w_total * max_i(w_i / rtt_i^2) / (sum_i w_i / rtt_i)^2;
 * slow start and the halving on loss as TCP. The window caps the subflow's
 * bytes in flight (cc.h): together the subflows take no more than one TCP on
 * their best path (RFC 6356 goals 1 and 2).
 */
#include "cc_util.h"

double mpt_cc_lia_alpha(const struct mpt_cc_env *e)
{
    double total = 0, best = 0, sum = 0;

    for (int i = 0; i < e->n; i++) {
        double w = cc_win(e, i)->w, r = cc_rtt(&e->sf[i]);
        total += w;
        if (w / (r * r) > best)
            best = w / (r * r);
        sum += w / r;
    }
    return sum > 0 ? total * best / (sum * sum) : 1;
}

static void lia_ack(const struct mpt_cc_env *e, int which, size_t bytes, uint64_t now)
{
    struct cc_win *s = cc_win(e, which);
    double total = 0, mss = cc_mss(&e->sf[which]), coupled, own;

    (void)now;
    cc_validate(s, &e->sf[which]);
    if (cc_slow_start(s, bytes))
        return;
    for (int i = 0; i < e->n; i++)
        total += cc_win(e, i)->w;
    coupled = mpt_cc_lia_alpha(e) * (double)bytes * mss / total;
    own = (double)bytes * mss / s->w;
    s->w += coupled < own ? coupled : own;
}

static void lia_loss(const struct mpt_cc_env *e, int which, uint64_t now)
{
    struct cc_win *s = cc_win(e, which);

    if (!cc_new_loss(e, which, now))
        return;
    s->w /= 2;
    cc_floor(s, &e->sf[which]);
    s->ssthresh = s->w;
}

const struct mpt_cc_ops mpt_cc_lia = {
    .name = "lia",
    .sf_state_size = sizeof(struct cc_win),
    .sf_up = cc_win_up,
    .on_ack = lia_ack,
    .on_loss = lia_loss,
    .cap = cc_cap,
};
