/*
 * The golden check: a dozen fixed simulator runs (transfers over 1-4 paths,
 * failures, blackholes, joins, aborts, flow control, close) whose full trace
 * (every byte each engine wrote and every event it raised, with the virtual
 * time) is hashed and compared with committed values. A commit that only
 * moves code keeps every hash; a commit that changes behaviour says so and
 * updates them (SIM_GOLDEN_PRINT=1 prints the current values as C).
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

struct golden {
    const char *name;
    uint64_t hash; /* committed value */
};

static void base(struct sim_cfg *c, uint64_t seed, int npaths)
{
    sim_cfg_default(c);
    c->seed = seed;
    c->npaths = npaths;
    for (int p = 0; p < npaths; p++) {
        c->path[p].rate[0] = c->path[p].rate[1] = (uint64_t)(20 - 5 * p) * SIM_MBPS;
        c->path[p].delay[0] = c->path[p].delay[1] = (uint64_t)(10 + 15 * p) * SIM_MS;
    }
    c->bytes[SIM_C2S] = 2 * SIM_MIB;
    c->bytes[SIM_S2C] = 2 * SIM_MIB;
}

static void call_abort(struct sim *sim, void *arg)
{
    (void)arg;
    mpt_conn_abort(sim_conn(sim, SIM_CLIENT), 6, sim_now(sim));
}

static void raw_bad_join(struct sim *sim, void *arg)
{
    /* a JOIN with a token nobody holds: refused, the connection carries on */
    static const uint8_t b[] = {'M', 'P', 'T', 'L', 1, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
                                0x03, 0, 0, 26, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5,
                                6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1, 0};
    (void)arg;
    sim_open_raw(sim, 0, b, sizeof b);
}

/* Builds and runs scenario i; returns its trace hash. */
static uint64_t run(int i, char *desc, size_t dlen)
{
    struct sim_cfg c;
    struct sim *sim;
    uint64_t h;

    switch (i) {
    case 0: /* one path */
        base(&c, 101, 1);
        break;
    case 1: /* two paths */
        base(&c, 102, 2);
        c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 4 * SIM_MIB;
        break;
    case 2: /* four paths */
        base(&c, 103, 4);
        break;
    case 3: /* reset of the slow path */
        base(&c, 104, 2);
        break;
    case 4: /* blackhole of the fast path, then recovery */
        base(&c, 105, 2);
        break;
    case 5: /* a backup path */
        base(&c, 106, 2);
        c.path[1].backup = 1;
        break;
    case 6: /* small frames, small buffers */
        base(&c, 107, 3);
        c.settings[SIM_CLIENT].max_frame_payload = c.settings[SIM_SERVER].max_frame_payload = 1200;
        c.settings[SIM_CLIENT].rcvbuf = c.settings[SIM_SERVER].rcvbuf = 96 * 1024;
        c.settings[SIM_CLIENT].sndbuf = c.settings[SIM_SERVER].sndbuf = 64 * 1024;
        c.bytes[SIM_C2S] = c.bytes[SIM_S2C] = 512 * 1024;
        break;
    case 7: /* the client aborts mid-transfer */
        base(&c, 108, 2);
        break;
    case 8: /* the server application stops reading for 2 s */
        base(&c, 109, 2);
        break;
    case 9: /* behind a TCP-splitting proxy */
        base(&c, 110, 2);
        for (int p = 0; p < 2; p++) {
            c.path[p].delay[0] = c.path[p].delay[1] = 300 * SIM_MS;
            c.path[p].split_rtt = 5 * SIM_MS;
        }
        break;
    case 10: /* rate and delay changes, a refused join */
        base(&c, 111, 2);
        break;
    default: /* everything fails: both ends end with a clean error */
        base(&c, 112, 2);
        c.rejoin = 0;
        break;
    }
    ck_assert_int_eq(sim_new(&c, &sim), 0);
    switch (i) {
    case 3:
        sim_at_fail(sim, 500 * SIM_MS, 1);
        break;
    case 4:
        sim_at_stall(sim, 500 * SIM_MS, 0);
        sim_at_recover(sim, 2500 * SIM_MS, 0);
        break;
    case 7:
        sim_at_call(sim, 400 * SIM_MS, call_abort, NULL);
        break;
    case 8:
        sim_at_read_pause(sim, 200 * SIM_MS, SIM_SERVER, 2 * SIM_S);
        break;
    case 10:
        sim_at_rate(sim, 300 * SIM_MS, 0, -1, 2 * SIM_MBPS);
        sim_at_delay(sim, 600 * SIM_MS, 1, -1, 5 * SIM_MS);
        sim_at_call(sim, 200 * SIM_MS, raw_bad_join, NULL);
        break;
    case 11:
        sim_at_fail(sim, 300 * SIM_MS, 0);
        sim_at_fail(sim, 300 * SIM_MS, 1);
        break;
    }
    sim_run(sim);
    h = sim_result(sim)->trace_hash;
    sim_describe(sim, desc, dlen);
    sim_free(sim);
    return h;
}

static const struct golden want[] = {
    {"one path", 0x259173e147b72cfbull},
    {"two paths", 0xc34f9e250d71de17ull},
    {"four paths", 0xcad9b1f8eee2315bull},
    {"reset of the slow path", 0x499d0ebdcf3ae38cull},
    {"blackhole and recovery", 0xce9b728aac4e238aull},
    {"backup path", 0xf65c345e4c72ac7eull},
    {"small frames and buffers", 0x86ea82599bf1f669ull},
    {"client abort", 0xc621ab95f13c6d22ull},
    {"receiver pauses", 0x2895ebd0de22d74eull},
    {"splitting proxy", 0x247d4fb63250ed1eull},
    {"rate/delay change, refused join", 0xb2e16f27d5a64512ull},
    {"every path fails", 0xdff47ccd261699ecull},
};
#define NG ((int)(sizeof want / sizeof want[0]))

START_TEST(golden_traces)
{
    char desc[512];
    int print = getenv("SIM_GOLDEN_PRINT") != NULL, bad = 0;

    for (int i = 0; i < NG; i++) {
        uint64_t h = run(i, desc, sizeof desc);
        /* twice: the run itself must be deterministic */
        ck_assert_uint_eq(run(i, desc, sizeof desc), h);
        if (print)
            fprintf(stderr, "    {\"%s\", 0x%016" PRIx64 "ull}, /* %s */\n", want[i].name, h, desc);
        if (h != want[i].hash) {
            fprintf(stderr, "golden trace \"%s\" changed: 0x%016" PRIx64 " (committed 0x%016" PRIx64
                            "): %s\n", want[i].name, h, want[i].hash, desc);
            bad++;
        }
    }
    ck_assert_msg(bad == 0, "%d of %d golden traces changed (see stderr; SIM_GOLDEN_PRINT=1 "
                  "prints the new table: update it only in a commit that changes behaviour)",
                  bad, NG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sim_golden");
    TCase *tc = tcase_create("sim");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, golden_traces);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
