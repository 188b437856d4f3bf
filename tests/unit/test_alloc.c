/*
 * Allocation failure (issue 15): every allocation of the library goes
 * through core/alloc.c, and making any one of them fail (or it and every
 * one after it) must surface as an error, never a crash, a hang, a lost or
 * corrupted byte, or a leak (the ASan build runs LeakSanitizer at exit).
 *
 *  - the engine: a whole simulated transfer (handshake, a join, data both
 *    ways, close) with allocation N failing, for every N the run makes;
 *  - the I/O layer: context, listener, connect, an echo and the close over
 *    loopback with allocation N failing, for every N.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpt/error.h>
#include <mpt/mpt.h>

#include "core/alloc.h"
#include "sim.h"

START_TEST(hook_counts_and_fails)
{
    uint64_t before = mpt_alloc_count(), failed = mpt_alloc_failures();
    void *p, *q;
    char *s;

    mpt_alloc_fail_at(2, 0);
    p = mpt_malloc(16);
    q = mpt_calloc(1, 16);
    s = mpt_strdup("x");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_null(q); /* the second one */
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(mpt_alloc_count() - before, 3);
    ck_assert_uint_eq(mpt_alloc_failures() - failed, 1);
    mpt_alloc_fail_at(1, 1);
    ck_assert_ptr_null(mpt_realloc(p, 32)); /* p is still ours */
    ck_assert_ptr_null(mpt_malloc(1));
    mpt_alloc_fail_at(0, 0);
    ck_assert_ptr_null(mpt_reallocarray(NULL, SIZE_MAX / 2, 4)); /* overflow, not a huge block */
    q = mpt_reallocarray(p, 4, 8);
    ck_assert_ptr_nonnull(q);
    mpt_free(q);
    mpt_free(s);
    mpt_free(NULL);
}
END_TEST

static void sim_setup(struct sim_cfg *cfg)
{
    sim_cfg_default(cfg);
    cfg->seed = 15;
    cfg->npaths = 2;
    for (int p = 0; p < 2; p++) {
        cfg->path[p].rate[SIM_C2S] = cfg->path[p].rate[SIM_S2C] = 20 * SIM_MBPS;
        cfg->path[p].delay[SIM_C2S] = cfg->path[p].delay[SIM_S2C] = (5 + 10 * (uint64_t)p) * SIM_MS;
    }
    cfg->bytes[SIM_C2S] = 200 * SIM_KIB;
    cfg->bytes[SIM_S2C] = 100 * SIM_KIB;
    cfg->progress_timeout = 120 * SIM_S;
    for (int s = 0; s < 2; s++) {
        cfg->settings[s].sndbuf = 64 * 1024;
        cfg->settings[s].rcvbuf = 64 * 1024;
    }
}

/* One run with allocation `nth` (0: none) failing; returns the allocations
 * the run made. */
static uint64_t sim_once(uint64_t nth, int sticky)
{
    struct sim_cfg cfg;
    struct sim *sim;
    char buf[1024];
    uint64_t before;
    enum sim_outcome o;
    const struct sim_result *r;

    sim_setup(&cfg);
    before = mpt_alloc_count();
    mpt_alloc_fail_at(nth, sticky);
    if (sim_new(&cfg, &sim) != 0) {
        /* the engines could not even be made: an error, nothing to check */
        mpt_alloc_fail_at(0, 0);
        return mpt_alloc_count() - before;
    }
    o = sim_run(sim);
    mpt_alloc_fail_at(0, 0);
    r = sim_result(sim);
    /* An application told MPT_ENOMEM by mpt_conn_send stops writing in the
     * simulator (and so never shuts down): the failure surfaced, and what
     * was delivered until then must still be exact. Otherwise the run must
     * end: completely, or with a clean error on both ends. */
    if (o == SIM_DEADLOCK &&
        (r->dir[SIM_C2S].write_error == MPT_ENOMEM || r->dir[SIM_S2C].write_error == MPT_ENOMEM)) {
        for (int d = 0; d < 2; d++) {
            ck_assert_int_eq(r->dir[d].mismatch, -1);
            ck_assert_uint_le(r->dir[d].delivered, r->dir[d].written);
            ck_assert(!r->side[d].mem_violation);
        }
    } else {
        ck_assert_msg(o == SIM_FINISHED, "allocation %" PRIu64 "%s failing: outcome %s: %s", nth,
                      sticky ? " and later" : "", sim_outcome_name(o), sim_message(sim));
        ck_assert_msg(sim_check_exact_or_error(sim, buf, sizeof buf),
                      "allocation %" PRIu64 "%s failing: %s", nth, sticky ? " and later" : "", buf);
    }
    sim_free(sim);
    return mpt_alloc_count() - before;
}

/* TEST_ALLOC_ONLY=N (or N+ for "and every later one") replays one case,
 * e.g. under gdb with a breakpoint in alloc.c's inject(). */
static int only(int sticky)
{
    const char *e = getenv("TEST_ALLOC_ONLY");
    if (!e)
        return 0;
    if ((strchr(e, '+') != NULL) == sticky)
        sim_once(strtoull(e, NULL, 10), sticky);
    return 1;
}

START_TEST(engine_every_allocation_fails_once)
{
    uint64_t total;

    if (only(0))
        return;
    total = sim_once(0, 0);

    ck_assert_uint_gt(total, 10);
    for (uint64_t n = 1; n <= total; n++)
        sim_once(n, 0);
}
END_TEST

START_TEST(engine_every_allocation_fails_from_then_on)
{
    uint64_t total;

    if (only(1))
        return;
    total = sim_once(0, 0);

    for (uint64_t n = 1; n <= total; n++)
        sim_once(n, 1);
}
END_TEST

/* ---- the I/O layer ------------------------------------------------------------------ */

static const char *const lo[] = {"127.0.0.1"};

struct echo {
    int accepted, closed;
};

static void echo_readable(struct mpt_socket *s, void *user)
{
    char buf[4096];
    ssize_t n;
    (void)user;
    while ((n = mpt_recv(s, buf, sizeof buf)) > 0)
        (void)mpt_send(s, buf, (size_t)n);
    if (n == 0)
        (void)mpt_shutdown(s);
}

static void echo_closed(struct mpt_socket *s, int status, void *user)
{
    (void)status;
    ((struct echo *)user)->closed++;
    mpt_close(s);
}

static void echo_accept(struct mpt_listener *l, void *user)
{
    struct mpt_callbacks cb = {0};
    struct mpt_socket *s;

    cb.readable = echo_readable;
    cb.closed = echo_closed;
    while (mpt_accept(l, &cb, user, &s) == 0) {
        ((struct echo *)user)->accepted++;
        echo_readable(s, user);
    }
}

static int is_err(long r)
{
    return r < 0 && r >= MPT_EAFNOSUPPORT;
}

/* Returns the allocations made; with nth, allocation nth fails. */
static uint64_t io_once(uint64_t nth)
{
    static const char msg[] = "allocation failure must be an error, not a crash";
    struct mpt_ctx *ctx;
    struct mpt_listener *l;
    struct mpt_socket *s;
    struct echo e = {0, 0};
    uint64_t before = mpt_alloc_count();
    char buf[128];
    size_t got = 0;
    int rc;

    mpt_alloc_fail_at(nth, 0);
    rc = mpt_ctx_new(&ctx, NULL, NULL);
    if (rc != 0) {
        ck_assert_int_eq(rc, MPT_ENOMEM);
        goto out;
    }
    rc = mpt_listen(ctx, lo, 1, 0, echo_accept, &e, &l);
    if (rc != 0) {
        ck_assert_int_eq(rc, MPT_ENOMEM);
        mpt_ctx_free(ctx);
        goto out;
    }
    rc = mpt_blocking_connect(ctx, "127.0.0.1", (uint16_t)mpt_listener_port(l), NULL, 0, 2000, &s);
    if (rc == 0) {
        ssize_t n = mpt_blocking_send_all(s, msg, sizeof msg, 2000);
        ck_assert(n == (ssize_t)sizeof msg || is_err(n));
        while (n > 0 && got < sizeof msg) {
            n = mpt_blocking_recv(s, buf + got, sizeof buf - got, 2000);
            ck_assert(n > 0 || is_err(n));
            if (n > 0)
                got += (size_t)n;
        }
        /* what came back is exactly a prefix of what was sent */
        ck_assert(got <= sizeof msg && memcmp(buf, msg, got) == 0);
        if (nth == 0)
            ck_assert_uint_eq(got, sizeof msg);
        (void)mpt_shutdown(s);
        rc = mpt_blocking_close(s, 2000);
        ck_assert(rc == 0 || is_err(rc));
    } else {
        ck_assert_msg(is_err(rc), "connect: %d", rc);
    }
    for (int i = 0; i < 20 && e.closed < e.accepted; i++)
        mpt_ctx_run(ctx, 20);
    mpt_listener_close(l);
    mpt_ctx_free(ctx);
out:
    mpt_alloc_fail_at(0, 0);
    return mpt_alloc_count() - before;
}

START_TEST(io_every_allocation_fails_once)
{
    uint64_t total = io_once(0);

    ck_assert_uint_gt(total, 5);
    for (uint64_t n = 1; n <= total; n++)
        io_once(n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, hook_counts_and_fails);
    tcase_add_test(tc, engine_every_allocation_fails_once);
    tcase_add_test(tc, engine_every_allocation_fails_from_then_on);
    tcase_add_test(tc, io_every_allocation_fails_once);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
