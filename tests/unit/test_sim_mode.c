/*
 * Service modes and per-message policy in the simulator (issue 16,
 * doc/policy.md): handover moves data to the other path within one stall
 * detection time of the primary's failure and back once it is healthy;
 * interactive sends small messages on two paths; messages with a deadline
 * over a fast and a slow lossy path arrive by their deadline.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpt/error.h>

#include "core/conn.h"
#include "sim.h"

/* DATA payload the client handed to its subflows on `path` (live ones),
 * and (acked) of that, what the peer acknowledged. */
static uint64_t client_bytes_on(struct sim *sim, int path, int acked)
{
    uint64_t n = 0;
    for (int k = 0; k < sim_nsocks(sim); k++) {
        struct sim_sock_info si;
        struct mpt_sf_stats st;
        sim_sock_info(sim, k, &si);
        if (si.path != path || si.raw || si.client_sf < 0 || si.down[SIM_CLIENT])
            continue;
        if (mpt_conn_sf_get_stats(sim_conn(sim, SIM_CLIENT), si.client_sf, &st) == 0)
            n += acked ? st.bytes_acked : st.bytes_sent;
    }
    return n;
}

static uint64_t client_payload_on(struct sim *sim, int path)
{
    return client_bytes_on(sim, path, 0);
}

/* ---- Handover ---------------------------------------------------------------- */

#define HO_TICK (5 * SIM_MS)
#define HO_TICKS 2400 /* 12 s */

struct ho_trace {
    uint64_t on[2][HO_TICKS]; /* client payload per path at each tick */
    uint64_t acked0[HO_TICKS]; /* of path 0's, acknowledged by the peer */
    int n;
    uint64_t last_ho;
};

static void ho_sample(struct sim *sim, void *arg)
{
    struct ho_trace *t = arg;
    if (t->n >= HO_TICKS)
        return;
    if (getenv("HO_DEBUG") && t->n % 40 == 0)
        for (int k = 0; k < sim_nsocks(sim); k++) {
            struct sim_sock_info si;
            struct mpt_sf_stats st;
            sim_sock_info(sim, k, &si);
            if (si.client_sf >= 0 && !si.down[SIM_CLIENT] &&
                mpt_conn_sf_get_stats(sim_conn(sim, SIM_CLIENT), si.client_sf, &st) == 0)
                printf("  t=%d path %d sf %d srtt %.1f ms\n", t->n * 5, si.path, si.client_sf,
                       (double)st.srtt / 1e6);
        }
    if (getenv("HO_DEBUG") && t->n > 395 && t->n < 480) {
        struct mpt_conn_stats cs;
        mpt_conn_get_stats(sim_conn(sim, SIM_CLIENT), &cs);
        printf("  %d ms reinj %" PRIu64 " p0 %" PRIu64 "\n", (t->n + 1) * 5, cs.reinjections,
               client_payload_on(sim, 0));
    }
    if (getenv("HO_DEBUG") && mpt_conn_handovers(sim_conn(sim, SIM_CLIENT)) != t->last_ho) {
        t->last_ho = mpt_conn_handovers(sim_conn(sim, SIM_CLIENT));
        printf("  handover %d at %d ms -> sf %d\n", (int)t->last_ho, (t->n + 1) * 5,
               mpt_conn_active_sf(sim_conn(sim, SIM_CLIENT)));
    }
    t->on[0][t->n] = client_payload_on(sim, 0);
    t->on[1][t->n] = client_payload_on(sim, 1);
    t->acked0[t->n] = client_bytes_on(sim, 0, 1);
    t->n++;
    sim_at_call(sim, sim_now(sim) + HO_TICK, ho_sample, t);
}

/* First tick at or after `from` where path p carried new data, -1 none. */
static int first_growth(const struct ho_trace *t, int p, int from)
{
    for (int i = from + 1; i < t->n; i++)
        if (t->on[p][i] > t->on[p][i - 1])
            return i;
    return -1;
}

static void ho_cfg(struct sim_cfg *c, uint64_t seed)
{
    sim_cfg_default(c);
    c->seed = seed;
    c->npaths = 2;
    for (int p = 0; p < 2; p++) {
        c->path[p].rate[0] = c->path[p].rate[1] = 10 * SIM_MBPS;
        c->path[p].delay[0] = c->path[p].delay[1] = 10 * SIM_MS;
    }
    for (int s = 0; s < 2; s++)
        c->settings[s].service_mode = getenv("HO_AGG") ? 0 : MPT_SM_HANDOVER;
    /* 8 KiB every 10 ms (6.5 Mbit/s): the path has room, RTTs stay short */
    c->msg_size[SIM_CLIENT] = 8192;
    c->msg_interval[SIM_CLIENT] = 10 * SIM_MS;
    c->msg_plain[SIM_CLIENT] = 1;
    c->bytes[SIM_C2S] = 8192 * 1200; /* 12 s */
    c->shutdown[SIM_CLIENT] = c->shutdown[SIM_SERVER] = 0;
}

/* Path 0 goes dark (blackhole) at 2 s and returns at 5 s. Path 1 carries
 * nothing before, everything from at most one stall-detection time
 * (stall_min, 250 ms, as 3 RTT + 4 rttvar is less here) after the failure,
 * and nothing again once path 0 is back. */
static void handover_run(int fail)
{
    struct sim_cfg c;
    struct sim *sim;
    static struct ho_trace t;
    const int t_fail = (int)(2 * SIM_S / HO_TICK), t_back = (int)(5 * SIM_S / HO_TICK);
    uint64_t stall = 250 * SIM_MS;
    int sw, back;

    ho_cfg(&c, fail ? 1612 : 1611);
    t.n = 0;
    t.last_ho = 0;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_at_call(sim, HO_TICK, ho_sample, &t);
    if (fail)
        sim_at_fail(sim, 2 * SIM_S, 0);
    else
        sim_at_stall(sim, 2 * SIM_S, 0);
    sim_at_recover(sim, 5 * SIM_S, 0);
    ck_assert_int_eq(sim_run_until(sim, 12 * SIM_S), SIM_RUNNING);
    ck_assert_int_eq(t.n, HO_TICKS);
    if (getenv("HO_DEBUG"))
        for (int i = 0; i < t.n; i += 20)
            printf("%5d ms: %" PRIu64 " %" PRIu64 "\n", (int)(i * 5), t.on[0][i], t.on[1][i]);
    /* sample i is taken at (i + 1) ticks: t_fail - 2 is just before the failure */
    ck_assert_uint_gt(t.on[0][t_fail - 2], SIM_MIB); /* path 0 carried the data... */
    ck_assert_uint_eq(t.on[1][t_fail - 2], 0);      /* ...and path 1 nothing */
    sw = first_growth(&t, 1, t_fail - 1);
    ck_assert_int_ge(sw, 0);
    printf("handover (%s): path 1 takes over %.0f ms after the failure (stall_min %.0f ms)\n",
           fail ? "reset" : "blackhole", (double)((uint64_t)(sw + 1 - t_fail) * HO_TICK) / 1e6,
           (double)stall / 1e6);
    /* The stall detector counts from the path's last progress: the last
     * time the peer acknowledged data sent on it. A blackhole stops new
     * packets, but what the path had queued still arrives and is acked
     * for a while after the failure; from that last ack, the switch comes
     * within one stall-detection time (stall_min) plus a tick. A reset is
     * seen at once. */
    if (fail) {
        ck_assert_uint_le((uint64_t)(sw + 1 - t_fail) * HO_TICK, 2 * HO_TICK);
    } else {
        int last_ack = sw;
        while (last_ack > 0 && t.acked0[last_ack] == t.acked0[last_ack - 1])
            last_ack--;
        printf("handover (blackhole): path 0 last acknowledged data %.0f ms after the "
               "failure, path 1 took over %.0f ms after that\n",
               (double)((uint64_t)(last_ack - t_fail + 1) * HO_TICK) / 1e6,
               (double)((uint64_t)(sw - last_ack) * HO_TICK) / 1e6);
        ck_assert_int_ge(last_ack, t_fail - 1);
        ck_assert_uint_le((uint64_t)(sw - last_ack) * HO_TICK, stall + 2 * HO_TICK);
        ck_assert_uint_le((uint64_t)(sw + 1 - t_fail) * HO_TICK, 2 * stall);
    }
    back = first_growth(&t, 0, t_back);
    ck_assert_int_ge(back, 0);
    printf("handover (%s): path 0 carries data again %.0f ms after it returned\n",
           fail ? "reset" : "blackhole", (double)((uint64_t)(back + 1 - t_back) * HO_TICK) / 1e6);
    ck_assert_uint_le((uint64_t)(back - t_back) * HO_TICK, 2 * SIM_S);
    /* one second after the return, path 1 carries nothing new */
    {
        int settle = back + (int)(SIM_S / HO_TICK);
        ck_assert_int_lt(settle, t.n);
        ck_assert_uint_eq(t.on[1][t.n - 1], t.on[1][settle]);
        ck_assert_uint_gt(t.on[0][t.n - 1], t.on[0][settle]);
    }
    ck_assert_int_ge(mpt_conn_handovers(sim_conn(sim, SIM_CLIENT)), 2);
    sim_free(sim);
}

START_TEST(handover_switches_on_stall_and_back)
{
    handover_run(0);
}
END_TEST

START_TEST(handover_switches_on_reset_and_back)
{
    handover_run(1);
}
END_TEST

/* ---- Message runs -------------------------------------------------------------- */

/* 20 Mbit/s @ 10 ms and 10 Mbit/s @ 100 ms one way, loss_ppm on both. */
static void msg_cfg(struct sim_cfg *c, uint64_t seed, uint32_t loss_ppm, size_t msg,
                    uint64_t interval, uint64_t count)
{
    sim_cfg_default(c);
    c->seed = seed;
    c->npaths = 2;
    c->tcp_model = 1;
    c->path[0].rate[0] = c->path[0].rate[1] = 20 * SIM_MBPS;
    c->path[0].delay[0] = c->path[0].delay[1] = 10 * SIM_MS;
    c->path[1].rate[0] = c->path[1].rate[1] = 10 * SIM_MBPS;
    c->path[1].delay[0] = c->path[1].delay[1] = 100 * SIM_MS;
    c->path[0].loss_ppm = c->path[1].loss_ppm = loss_ppm;
    c->msg_size[SIM_CLIENT] = msg;
    c->msg_interval[SIM_CLIENT] = interval;
    c->bytes[SIM_C2S] = msg * count;
    c->write_start[SIM_CLIENT] = SIM_S; /* both subflows are up */
}

/* Share of messages with latency <= limit. */
static double share_within(struct sim *sim, uint64_t limit, uint64_t *worst)
{
    const uint64_t *lat;
    size_t n = sim_msg_latency(sim, SIM_C2S, &lat), ok = 0;
    *worst = 0;
    for (size_t k = 0; k < n; k++) {
        if (lat[k] <= limit)
            ok++;
        if (lat[k] > *worst)
            *worst = lat[k];
    }
    return n ? (double)ok / (double)n : 0;
}

/* Interactive: 200-byte messages go on both paths (bytes_redundant is
 * about the payload); 8 KiB messages and aggregate mode are not copied. */
static uint64_t interactive_run(int mode, size_t msg, uint64_t *payload)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    uint64_t red;

    msg_cfg(&c, 1613, 0, msg, 10 * SIM_MS, 300);
    c.msg_plain[SIM_CLIENT] = 1;
    for (int s = 0; s < 2; s++)
        c.settings[s].service_mode = mode;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    red = sim_result(sim)->side[SIM_CLIENT].stats.bytes_redundant;
    *payload = c.bytes[SIM_C2S];
    sim_free(sim);
    return red;
}

START_TEST(interactive_copies_small_messages)
{
    uint64_t p, red;

    red = interactive_run(MPT_SM_INTERACTIVE, 200, &p);
    printf("interactive, 200 B messages: %" PRIu64 " of %" PRIu64 " bytes sent twice\n", red, p);
    ck_assert_uint_ge(red, p * 99 / 100);
    red = interactive_run(MPT_SM_AGGREGATE, 200, &p);
    ck_assert_uint_eq(red, 0);
    red = interactive_run(MPT_SM_INTERACTIVE, 8192, &p);
    ck_assert_uint_eq(red, 0);
}
END_TEST

/* ---- Deadlines ------------------------------------------------------------------ */

#define DL_MSG (getenv("DL_MSG") ? (size_t)atoi(getenv("DL_MSG")) : 1024)
#define DL_INTERVAL (10 * SIM_MS)
#define DL_COUNT 6000 /* 60 s */
#define DL_DEADLINE_MS (getenv("DL_MS") ? atoi(getenv("DL_MS")) : 150)

static double deadline_run(int policy, uint64_t *worst, uint64_t *red)
{
    struct sim_cfg c;
    struct sim *sim;
    char buf[1024];
    double share;

    msg_cfg(&c, 1614, 10000, DL_MSG, DL_INTERVAL, DL_COUNT);
    c.msg_plain[SIM_CLIENT] = !policy;
    c.msg_policy[SIM_CLIENT].deadline_ms = DL_DEADLINE_MS;
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    sim_run(sim);
    ck_assert_msg(sim_check_complete(sim, buf, sizeof buf), "%s", buf);
    share = share_within(sim, DL_DEADLINE_MS * SIM_MS, worst);
    *red = sim_result(sim)->side[SIM_CLIENT].stats.bytes_redundant;
    if (getenv("SIM_DL_HIST")) {
        const uint64_t *lat;
        size_t n = sim_msg_latency(sim, SIM_C2S, &lat);
        for (uint64_t l = 20; l <= 400; l += 10) {
            size_t ok = 0;
            for (size_t k = 0; k < n; k++)
                ok += lat[k] <= l * SIM_MS;
            printf("  %s <= %3" PRIu64 " ms: %.4f\n", policy ? "policy" : "minrtt", l,
                   (double)ok / (double)n);
        }
    }
    sim_free(sim);
    return share;
}

START_TEST(deadline_met_with_policy)
{
    uint64_t wp, wm, rp, rm;
    double sp = deadline_run(1, &wp, &rp), sm = deadline_run(0, &wm, &rm);

    printf("deadline %d ms, %d x %zu B every %.0f ms, 20M@10ms + 10M@100ms, 1%% loss:\n"
           "  policy: %.2f%% on time (worst %.1f ms, %" PRIu64 " bytes copied)\n"
           "  minrtt: %.2f%% on time (worst %.1f ms, %" PRIu64 " bytes copied)\n",
           DL_DEADLINE_MS, DL_COUNT, DL_MSG, (double)DL_INTERVAL / 1e6, 100 * sp,
           (double)wp / 1e6, rp, 100 * sm, (double)wm / 1e6, rm);
    ck_assert_msg(sp >= 0.999, "policy: only %.3f%% on time", 100 * sp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_mode");
    TCase *tc = tcase_create("modes");
    int nf;

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, handover_switches_on_stall_and_back);
    tcase_add_test(tc, handover_switches_on_reset_and_back);
    tcase_add_test(tc, interactive_copies_small_messages);
    tcase_add_test(tc, deadline_met_with_policy);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
