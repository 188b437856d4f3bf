#!/usr/bin/env bash
# fairness-separate (issue 10): RFC 6356's goal 1 ("improve throughput"):
# two paths that do NOT share a bottleneck, 10 Mbit/s each at 20 ms RTT.
# A coupled congestion control must still give libmpt at least the goodput
# of one TCP flow on the best path. 24 MiB (BENCH_QUICK=1 or FAIR_MIB:
# smaller), both directions, every TCP socket on cubic (BENCH_TCP_CC).
# Contenders tcp and libmpt-<cc> for BENCH_CCS (default: uncoupled lia olia
# balia). Metrics: goodput and the common ones.
set -uo pipefail
# lib.sh reads the contender lists when sourced: set them first.
export BENCH_SCHEDS=${BENCH_SCHEDS-}
export BENCH_CCS=${BENCH_CCS:-uncoupled lia olia balia}
export BENCH_TCP_CC=${BENCH_TCP_CC:-cubic}
. "$(dirname "$0")/lib.sh"
bench_setup fairness-separate
mib=${FAIR_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 12 || echo 24)}
bench_topo_up --paths 2 --rate 10mbit,10mbit --delay 10,10

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            [ "$c" = kernel-mptcp ] && continue
            bench_run "$c" "$dir" $((mib * 1024 * 1024))
            bench_record_common "$c-$dir"
        done
    done
done
bench_summarize
for dir in $BENCH_DIRS; do
    t=$(bench_median "tcp-$dir" goodput)
    for c in $(bench_contenders); do
        case $c in libmpt-*) ;; *) continue ;; esac
        g=$(bench_median "$c-$dir" goodput)
        [ -n "$g" ] && [ -n "$t" ] || continue
        bench_target "$c-$dir goodput $g >= tcp's $t Mbit/s (RFC 6356 goal 1)" \
            "$(awk -v g="$g" -v t="$t" 'BEGIN { print (g >= t ? "met" : "MISSED") }')"
    done
done
bench_markdown
[ "$bench_failures" -eq 0 ]
