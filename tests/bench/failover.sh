#!/usr/bin/env bash
# failover (issue 5, scenario 3): scenario 1's paths (20 + 10 Mbit/s, 20 ms
# RTT); path 1 fails at half-time of a 32 MiB transfer (at 30 Mbit/s;
# BENCH_QUICK=1 or FAILOVER_MIB: smaller) and comes back FAILOVER_DOWN_S
# (default 5) seconds later so that the single-path contender can finish.
# FAILOVER_KINDS (default "blackhole linkdown reset") chooses the outages;
# scenario names: failover (blackhole), failover-linkdown, failover-reset.
# Metrics: completed, lost_bytes (must be 0), max_gap_ms (longest interval
# between two reads that returned data), subflows, reinjected.
# Targets (issue 14): libmpt loses nothing; gap <= 500 ms when blackholed, <= 150 ms when
# the link goes down or is reset; and shorter than kernel MPTCP's.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup failover
mib=${FAILOVER_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 8 || echo 32)}
down_s=${FAILOVER_DOWN_S:-5}
at_s=$(awk -v m="$mib" 'BEGIN { printf "%.1f", m * 8.388608 / 30 / 2 }')
bench_topo_up --paths 2 --rate 20mbit,10mbit --delay 10,10

bench_during() {
    sleep "$at_s"
    case $kind in
    blackhole) bench_event fail; path_blackhole 1 ;;
    linkdown) bench_event fail; path_down 1 ;;
    reset) bench_event fail; path_reset 1 ;;
    esac
    sleep "$down_s"
    case $kind in
    linkdown) bench_event restore; path_up 1 ;;
    *) bench_event restore; path_restore 1 ;;
    esac
}

rc=0
for kind in ${FAILOVER_KINDS:-blackhole linkdown reset}; do
    bench_scenario=failover; [ "$kind" = blackhole ] || bench_scenario=failover-$kind
    bench_failures=0
    for bench_rep in $(seq 1 "$BENCH_REPS"); do
        for dir in $BENCH_DIRS; do
            for c in $(bench_contenders); do
                bench_run "$c" "$dir" $((mib * 1024 * 1024))
                bench_record_common "$c-$dir"
                # The path must be back whatever happened to the hook.
                path_restore 1 2>/dev/null; path_up 1 2>/dev/null
            done
        done
    done
    bench_summarize
    bench_plot
    limit=500; [ "$kind" = blackhole ] || limit=150
    for dir in $BENCH_DIRS; do
        kg=$(bench_median "kernel-mptcp-$dir" max_gap_ms)
        for c in $(bench_contenders); do
            case $c in libmpt-*) ;; *) continue ;; esac
            l=$(bench_median "$c-$dir" lost_bytes); g=$(bench_median "$c-$dir" max_gap_ms)
            done_=$(bench_median "$c-$dir" completed)
            bench_target "$c-$dir completed ($done_) and lost_bytes ${l:-?} = 0" \
                "$([ "$done_" = 1 ] && [ "$l" = 0 ] && echo met || echo MISSED)"
            bench_target "$c-$dir max_gap_ms ${g:-?} <= $limit" \
                "$(awk -v g="${g:-1e9}" -v l="$limit" 'BEGIN { print (g <= l ? "met" : "MISSED") }')"
            [ -n "$kg" ] && bench_target "$c-$dir max_gap_ms ${g:-?} < kernel-mptcp-$dir $kg" \
                "$(awk -v g="${g:-1e9}" -v k="$kg" 'BEGIN { print (g < k ? "met" : "MISSED") }')"
        done
    done
    [ "$bench_failures" -eq 0 ] || rc=1
done
bench_markdown
exit $rc
