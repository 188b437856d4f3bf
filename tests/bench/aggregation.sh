#!/usr/bin/env bash
# aggregation (issue 5, scenario 1): paths of 20 Mbit/s and 10 Mbit/s, both
# 20 ms RTT, 64 MiB per transfer (BENCH_QUICK=1 or AGG_MIB: smaller), both
# directions. Metrics: goodput (Mbit/s at the receiver), lost_bytes,
# max_gap_ms, subflows used. Target: libmpt >= 93% of 30 Mbit/s in both
# directions and >= kernel MPTCP's.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup aggregation
mib=${AGG_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 16 || echo 64)}
bench_topo_up --paths 2 --rate 20mbit,10mbit --delay 10,10

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            bench_run "$c" "$dir" $((mib * 1024 * 1024)) && bench_record_common "$c-$dir"
        done
    done
done
bench_summarize
bench_plot
for dir in $BENCH_DIRS; do
    k=$(bench_median "kernel-mptcp-$dir" goodput)
    for c in $(bench_contenders); do
        case $c in libmpt-*) ;; *) continue ;; esac
        g=$(bench_median "$c-$dir" goodput)
        [ -n "$g" ] || { bench_target "$c-$dir goodput (no result)" MISSED; continue; }
        bench_target "$c-$dir goodput $g Mbit/s >= 27.9 (93% of 30)" \
            "$(awk -v g="$g" 'BEGIN { print (g >= 27.9 ? "met" : "MISSED") }')"
        [ -n "$k" ] && bench_target "$c-$dir goodput $g >= kernel-mptcp-$dir $k Mbit/s" \
            "$(awk -v g="$g" -v k="$k" 'BEGIN { print (g >= k ? "met" : "MISSED") }')"
    done
done
bench_markdown
[ "$bench_failures" -eq 0 ]
