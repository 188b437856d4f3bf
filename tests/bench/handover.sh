#!/usr/bin/env bash
# handover (issue 5, scenario 4): scenario 1's paths; path 1 is blackholed
# at 3 s and restored at 6 s of a 40 MiB transfer (BENCH_QUICK=1 or
# HANDOVER_MIB: smaller). Metric rejoin_ms: from the restore until path 1
# carries >= 2 Mbit/s of data again (router counters, 100 ms samples, so
# +-100 ms), plus the common metrics. Target: within 2 s.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup handover
mib=${HANDOVER_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 24 || echo 40)}
bench_topo_up --paths 2 --rate 20mbit,10mbit --delay 10,10

bench_during() {
    sleep 3; bench_event fail; path_blackhole 1
    sleep 3; bench_event restore; path_restore 1
}

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            bench_run "$c" "$dir" $((mib * 1024 * 1024))
            bench_record_common "$c-$dir"
            r=$(bench_rejoin_ms "$bench_log_prefix" restore 1 "$dir")
            bench_record "$c-$dir" rejoin_ms "${r:--1}" ms
            path_restore 1 2>/dev/null
        done
    done
done
bench_summarize
bench_plot
for dir in $BENCH_DIRS; do
    for c in $(bench_contenders); do
        case $c in libmpt-*) ;; *) continue ;; esac
        r=$(bench_median "$c-$dir" rejoin_ms)
        bench_target "$c-$dir rejoin_ms ${r:-?} <= 2000 (-1: never)" \
            "$(awk -v r="${r:--1}" 'BEGIN { print (r >= 0 && r <= 2000 ? "met" : "MISSED") }')"
    done
done
bench_markdown
[ "$bench_failures" -eq 0 ]
