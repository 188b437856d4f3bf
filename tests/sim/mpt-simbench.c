/*
 * mpt-simbench: benchmarks in the network simulator (tests/sim/sim.h).
 *
 *   mpt-simbench sim-aggregation [MiB]   two paths, 20 Mbit/s @ 10 ms and
 *                                        10 Mbit/s @ 40 ms; goodput one way,
 *                                        upload then download (default 64 MiB)
 *   mpt-simbench sim-failover [MiB]      the same paths; path 1 (the 20 Mbit/s
 *                                        one) fails at t = 5 s: reset, then
 *                                        blackhole; lost bytes, longest gap
 *   mpt-simbench sim-speed [MiB]         the same paths, both directions at
 *                                        once, and two 1 Gbit/s paths:
 *                                        simulated seconds per wall second and
 *                                        engine cost per KiB moved
 *
 * Prints CSV `scenario,contender,metric,value,unit` on stdout, details on
 * stderr. Exit status 0 when every run finished byte-exact, 1 otherwise.
 *
 * Metrics:
 *   goodput      application bytes * 8 / (last byte read - first byte written)
 *   lost_bytes   bytes written but never read
 *   max_gap_ms   longest interval between successive deliveries to the reader
 *   detect_ms    failure detection: from the failure to the sending engine's
 *                first reinjection (1 ms resolution; a reset is reported to the
 *                engine at once, a blackhole is found by its stall detector)
 *   sf_fail_ms   blackhole: from the failure to the sending engine declaring the
 *                subflow failed (subflow_timeout)
 *   sim_speedup  simulated seconds / wall-clock seconds for the whole run
 *   ns_per_kib   wall-clock ns spent inside engine calls (CLOCK_MONOTONIC
 *                around every mpt_* call the simulator makes, minus the
 *                calibrated cost of one clock read per call) per KiB delivered
 *                to the applications (both directions); the whole process's
 *                CPU time per KiB (simulator included) is printed on stderr.
 *                sim-speed drives the engine in ~1 ms chunks per path, so the
 *                slow-path scenario costs more engine calls per KiB than the
 *                1 Gbit/s one (64 KiB chunks).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

static int failures;

static void csv(const char *scenario, const char *metric, double v, const char *unit)
{
    printf("%s,libmpt,%s,%.*f,%s\n", scenario, metric, v == (double)(uint64_t)v ? 0 : 2, v, unit);
    fflush(stdout);
}

static double ts_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void two_paths(struct sim_cfg *cfg)
{
    cfg->npaths = 2;
    cfg->path[0].rate[0] = cfg->path[0].rate[1] = 20 * SIM_MBPS;
    cfg->path[0].delay[0] = cfg->path[0].delay[1] = 10 * SIM_MS;
    cfg->path[1].rate[0] = cfg->path[1].rate[1] = 10 * SIM_MBPS;
    cfg->path[1].delay[0] = cfg->path[1].delay[1] = 40 * SIM_MS;
}

/* With watch_side >= 0: stop at t = watch_from, then step 1 ms at a time
 * until that side's engine counts a reinjection; *detect gets the time. */
static struct sim *run_watch(struct sim_cfg *cfg, void (*script)(struct sim *), double *wall,
                             double *cpu, int watch_side, uint64_t watch_from, uint64_t *detect)
{
    struct sim *sim;
    double w0, c0;
    char buf[1024];
    if (sim_new(cfg, &sim) < 0) {
        fprintf(stderr, "mpt-simbench: cannot create the simulator\n");
        exit(2);
    }
    if (script)
        script(sim);
    w0 = ts_ns(CLOCK_MONOTONIC);
    c0 = ts_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (watch_side >= 0) {
        uint64_t base, t = watch_from;
        *detect = UINT64_MAX;
        if (sim_run_until(sim, watch_from - 1) == SIM_RUNNING) {
            base = sim_result(sim)->side[watch_side].stats.reinjections;
            while (sim_run_until(sim, t) == SIM_RUNNING && t < watch_from + 30 * SIM_S) {
                if (sim_result(sim)->side[watch_side].stats.reinjections > base) {
                    *detect = sim_now(sim) - watch_from;
                    break;
                }
                t += SIM_MS;
            }
        }
    }
    sim_run(sim);
    *wall = ts_ns(CLOCK_MONOTONIC) - w0;
    *cpu = ts_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (!sim_check_complete(sim, buf, sizeof buf)) {
        fprintf(stderr, "mpt-simbench: run failed: %s\n", buf);
        failures++;
    }
    return sim;
}

static struct sim *run(struct sim_cfg *cfg, void (*script)(struct sim *), double *wall,
                       double *cpu)
{
    return run_watch(cfg, script, wall, cpu, -1, 0, NULL);
}

static double goodput(const struct sim_dir_result *d)
{
    double t = (double)(d->t_last_read - d->t_first_write) / 1e9;
    return t > 0 ? (double)d->delivered * 8 / t / 1e6 : 0;
}

static void aggregation(uint64_t bytes)
{
    for (int dir = 0; dir < 2; dir++) {
        struct sim_cfg cfg;
        struct sim *sim;
        double wall, cpu, g;
        const char *name = dir == SIM_C2S ? "sim-aggregation" : "sim-aggregation-down";
        sim_cfg_default(&cfg);
        two_paths(&cfg);
        cfg.bytes[dir] = bytes;
        sim = run(&cfg, NULL, &wall, &cpu);
        g = goodput(&sim_result(sim)->dir[dir]);
        csv(name, "goodput", g, "Mbit/s");
        fprintf(stderr, "%s: %.2f Mbit/s = %.1f%% of 30 Mbit/s (target >= 97%%: %s); %.2f simulated s in %.2f wall s\n",
                name, g, g / 30 * 100, g >= 0.97 * 30 ? "met" : "NOT met",
                (double)sim_result(sim)->end_time / 1e9, wall / 1e9);
        sim_free(sim);
    }
}

static void fail_path0(struct sim *sim)
{
    sim_at_fail(sim, 5 * SIM_S, 0);
}

static void stall_path0(struct sim *sim)
{
    sim_at_stall(sim, 5 * SIM_S, 0);
}

static void failover(uint64_t bytes)
{
    static const struct {
        const char *name;
        void (*script)(struct sim *);
        int dir;
    } runs[] = {
        { "sim-failover", fail_path0, SIM_C2S },
        { "sim-failover-down", fail_path0, SIM_S2C },
        { "sim-failover-blackhole", stall_path0, SIM_C2S },
        { "sim-failover-blackhole-down", stall_path0, SIM_S2C },
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        struct sim_cfg cfg;
        struct sim *sim;
        const struct sim_result *r;
        const struct sim_dir_result *d;
        double wall, cpu, detect, bound, rtt2 = 80;
        int sender = runs[i].dir == SIM_C2S ? SIM_CLIENT : SIM_SERVER;
        sim_cfg_default(&cfg);
        two_paths(&cfg);
        cfg.bytes[runs[i].dir] = bytes;
        uint64_t det;
        sim = run_watch(&cfg, runs[i].script, &wall, &cpu, sender, 5 * SIM_S, &det);
        r = sim_result(sim);
        d = &r->dir[runs[i].dir];
        detect = det == UINT64_MAX ? -1 : (double)det / 1e6;
        bound = detect + 2 * rtt2;
        csv(runs[i].name, "lost_bytes", (double)(d->written - d->delivered), "bytes");
        csv(runs[i].name, "max_gap_ms", (double)d->max_gap / 1e6, "ms");
        csv(runs[i].name, "detect_ms", detect, "ms");
        csv(runs[i].name, "goodput", goodput(d), "Mbit/s");
        if (runs[i].script == stall_path0) {
            uint64_t t = r->side[sender].t_engine_sf_fail;
            csv(runs[i].name, "sf_fail_ms", t >= 5 * SIM_S ? (double)(t - 5 * SIM_S) / 1e6 : -1, "ms");
        }
        fprintf(stderr,
                "%s: %s, longest gap %.1f ms ending at t=%.3f s; bound detection %.1f ms + 2 RTT "
                "%.0f ms = %.1f ms: %s; reinjected %" PRIu64 " bytes in %" PRIu64 " events\n",
                runs[i].name, d->delivered == d->written && d->mismatch < 0 ? "byte-exact" : "NOT exact",
                (double)d->max_gap / 1e6, (double)d->max_gap_at / 1e9, detect, 2 * rtt2, bound,
                (double)d->max_gap / 1e6 <= bound && detect >= 0 ? "met" : "NOT met",
                r->side[sender].stats.bytes_reinjected, r->side[sender].stats.reinjections);
        sim_free(sim);
    }
}

static void speed(uint64_t bytes)
{
    for (int fast = 0; fast < 2; fast++) {
        struct sim_cfg cfg;
        struct sim *sim;
        const struct sim_result *r;
        double wall, cpu, kib;
        const char *name = fast ? "sim-speed-gbit" : "sim-speed";
        sim_cfg_default(&cfg);
        two_paths(&cfg);
        if (fast) {
            for (int p = 0; p < 2; p++) {
                cfg.path[p].rate[0] = cfg.path[p].rate[1] = 1000 * SIM_MBPS;
                cfg.path[p].delay[0] = cfg.path[p].delay[1] = (1 + 4 * (uint64_t)p) * SIM_MS;
            }
        }
        cfg.bytes[0] = cfg.bytes[1] = fast ? 4 * bytes : bytes;
        cfg.measure_engine = 1;
        sim = run(&cfg, NULL, &wall, &cpu);
        r = sim_result(sim);
        kib = (double)(r->dir[0].delivered + r->dir[1].delivered) / 1024;
        csv(name, "sim_speedup", (double)r->end_time / wall, "x");
        csv(name, "ns_per_kib", kib > 0 ? r->engine_ns / kib : 0, "ns/KiB");
        fprintf(stderr,
                "%s: %.2f simulated s in %.3f wall s (%" PRIu64 " events); engine %.3f s in %"
                PRIu64 " calls; process CPU %.3f s = %.0f ns/KiB incl. simulator\n",
                name, (double)r->end_time / 1e9, wall / 1e9, r->events, r->engine_ns / 1e9,
                r->engine_calls, cpu / 1e9, kib > 0 ? cpu / kib : 0);
        sim_free(sim);
    }
}

int main(int argc, char **argv)
{
    uint64_t mib = 64;
    if (argc < 2) {
        fprintf(stderr, "usage: %s sim-aggregation|sim-failover|sim-speed [MiB]\n", argv[0]);
        return 2;
    }
    if (argc > 2)
        mib = strtoull(argv[2], NULL, 10);
    if (mib == 0)
        mib = 64;
    if (strcmp(argv[1], "sim-aggregation") == 0)
        aggregation(mib * SIM_MIB);
    else if (strcmp(argv[1], "sim-failover") == 0)
        failover(mib * SIM_MIB);
    else if (strcmp(argv[1], "sim-speed") == 0)
        speed(mib * SIM_MIB);
    else {
        fprintf(stderr, "%s: unknown scenario '%s'\n", argv[0], argv[1]);
        return 2;
    }
    return failures ? 1 : 0;
}
