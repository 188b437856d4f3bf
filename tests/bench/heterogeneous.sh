#!/usr/bin/env bash
# heterogeneous (issues 5 and 10): 20 Mbit/s at 10 ms RTT and 10 Mbit/s at
# 100 ms RTT (one-way 5 and 50 ms), 64 MiB per transfer (BENCH_QUICK=1 or
# HET_MIB: smaller), both directions, with every scheduler meant for bulk
# (BENCH_SCHEDS, default minrtt blest ecf), first with libmpt's default
# receive memory (scenario heterogeneous), then with 1 MiB
# (heterogeneous-rcvbuf-1m, HET_RCVBUF): BLEST's motivating case, where the
# slow path's bytes in flight block the window. Metrics: goodput, the common
# ones, and reorder_p50_ms / reorder_p99_ms (libmpt: how long frames waited
# for earlier bytes at the receiver, mpt_info). Targets: with 1 MiB blest and
# ecf beat minrtt's goodput; with the default they keep >= 95% of it.
set -uo pipefail
# lib.sh reads the contender lists when sourced: set them first.
export BENCH_SCHEDS=${BENCH_SCHEDS-minrtt blest ecf}
. "$(dirname "$0")/lib.sh"
bench_setup heterogeneous
mib=${HET_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 16 || echo 64)}
bench_topo_up --paths 2 --rate 20mbit,10mbit --delay 5,50

for variant in default "${HET_RCVBUF:-1048576}"; do
    if [ "$variant" = default ]; then
        bench_scenario=heterogeneous; BENCH_MPT_ARGS=
    else
        bench_scenario=heterogeneous-rcvbuf-$((variant / 1048576))m; BENCH_MPT_ARGS="--rcvbuf $variant"
    fi
    for bench_rep in $(seq 1 "$BENCH_REPS"); do
        for dir in $BENCH_DIRS; do
            for c in $(bench_contenders); do
                # The reference contenders do not change with libmpt's buffer.
                [ "$variant" != default ] && case $c in libmpt-*) false ;; *) true ;; esac && continue
                bench_run "$c" "$dir" $((mib * 1024 * 1024))
                bench_record_common "$c-$dir"
                bench_record "$c-$dir" reorder_p50_ms "$(bench_kv "$bench_rx" reorder_p50_ms)" ms
                bench_record "$c-$dir" reorder_p99_ms "$(bench_kv "$bench_rx" reorder_p99_ms)" ms
            done
        done
    done
    bench_summarize
    bench_plot
    for dir in $BENCH_DIRS; do
        m=$(bench_median "libmpt-minrtt-$dir" goodput)
        for c in blest ecf; do
            g=$(bench_median "libmpt-$c-$dir" goodput)
            [ -n "$g" ] && [ -n "$m" ] || continue
            if [ "$variant" = default ]; then
                bench_target "libmpt-$c-$dir goodput $g >= 0.95 x minrtt's $m" \
                    "$(awk -v g="$g" -v m="$m" 'BEGIN { print (g >= 0.95 * m ? "met" : "MISSED") }')"
            else
                bench_target "$bench_scenario: libmpt-$c-$dir goodput $g > minrtt's $m" \
                    "$(awk -v g="$g" -v m="$m" 'BEGIN { print (g > m ? "met" : "MISSED") }')"
            fi
        done
    done
done
bench_markdown
[ "$bench_failures" -eq 0 ]
