#!/usr/bin/env bash
# aggregation-4 (issue 14): four paths of 10 Mbit/s at one-way delays 5, 10,
# 20 and 40 ms, 32 MiB per transfer (AGG4_MIB; BENCH_QUICK=1: 8), both
# directions. Target: libmpt >= 93% of 40 Mbit/s.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup aggregation-4
mib=${AGG4_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 8 || echo 32)}
bench_topo_up --paths 4 --rate 10mbit,10mbit,10mbit,10mbit --delay 5,10,20,40

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            bench_run "$c" "$dir" $((mib * 1024 * 1024)) && bench_record_common "$c-$dir"
        done
    done
done
bench_summarize
for dir in $BENCH_DIRS; do
    for c in $(bench_contenders); do
        case $c in libmpt-*) ;; *) continue ;; esac
        g=$(bench_median "$c-$dir" goodput)
        [ -n "$g" ] || { bench_target "$c-$dir goodput (no result)" MISSED; continue; }
        bench_target "$c-$dir goodput $g Mbit/s >= 37.2 (93% of 40)" \
            "$(awk -v g="$g" 'BEGIN { print (g >= 37.2 ? "met" : "MISSED") }')"
    done
done
bench_markdown
[ "$bench_failures" -eq 0 ]
