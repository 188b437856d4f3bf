#!/usr/bin/env bash
# aggregation-grid (issue 14): heterogeneous paths. Rates {20/10, 30/5}
# Mbit/s x one-way delays {5/50, 50/5, 10/10} ms; each cell is its own
# scenario aggregation-grid-<r1>-<r2>-<d1>-<d2> (for example
# aggregation-grid-30-5-50-5), 32 MiB one way (GRID_MIB overrides;
# BENCH_QUICK=1: 8) while 100 KiB goes the other way at the same time
# (GRID_REVERSE_KIB; --reverse of mpt-bench / mpt-tcpbench: the bulk sender
# verifies them, and a transfer completes only if both streams are exact),
# both directions, all contenders. GRID_CELLS limits the cells
# ("20-10-5-50 30-5-50-5").
# Targets: libmpt >= 93% of the sum of the rates in every cell, and ahead
# of kernel MPTCP.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup aggregation-grid
mib=${GRID_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 8 || echo 32)}
rev=$(( ${GRID_REVERSE_KIB:-100} * 1024 ))
cells=${GRID_CELLS:-"20-10-5-50 20-10-50-5 20-10-10-10 30-5-5-50 30-5-50-5 30-5-10-10"}
rc=0
for cell in $cells; do
    IFS=- read -r r1 r2 d1 d2 <<< "$cell"
    bench_scenario=aggregation-grid-$cell
    bench_failures=0
    bench_topo_up --paths 2 --rate "${r1}mbit,${r2}mbit" --delay "$d1,$d2"
    for bench_rep in $(seq 1 "$BENCH_REPS"); do
        for dir in $BENCH_DIRS; do
            for c in $(bench_contenders); do
                bench_run "$c" "$dir" $((mib * 1024 * 1024)) --reverse "$rev" && bench_record_common "$c-$dir"
            done
        done
    done
    mpt_net_down >&2 2>/dev/null
    bench_summarize
    want=$(awk -v a="$r1" -v b="$r2" 'BEGIN { printf "%.2f", 0.93 * (a + b) }')
    for dir in $BENCH_DIRS; do
        k=$(bench_median "kernel-mptcp-$dir" goodput)
        for c in $(bench_contenders); do
            case $c in libmpt-*) ;; *) continue ;; esac
            g=$(bench_median "$c-$dir" goodput)
            [ -n "$g" ] || { bench_target "$c-$dir goodput (no result)" MISSED; continue; }
            bench_target "$c-$dir goodput $g Mbit/s >= $want (93% of $((r1 + r2)))" \
                "$(awk -v g="$g" -v w="$want" 'BEGIN { print (g >= w ? "met" : "MISSED") }')"
            [ -n "$k" ] && bench_target "$c-$dir goodput $g >= kernel-mptcp-$dir $k Mbit/s" \
                "$(awk -v g="$g" -v k="$k" 'BEGIN { print (g >= k ? "met" : "MISSED") }')"
        done
    done
    [ "$bench_failures" -eq 0 ] || rc=1
done
bench_markdown
exit $rc
