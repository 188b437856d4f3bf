#!/usr/bin/env bash
# heterogeneous (issue 5, scenario 2): 20 Mbit/s at 10 ms RTT and 10 Mbit/s at
# 100 ms RTT (one-way 5 and 50 ms), 64 MiB per transfer (BENCH_QUICK=1 or
# HET_MIB: smaller), both directions. Metrics: goodput and the common ones.
# reorder_delay_ms is not measured: libmpt's public API exposes no
# per-frame arrival times (nor does its trace), and an application-level
# proxy would mostly measure send-buffer queueing; see doc/benchmarks.md.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup heterogeneous
mib=${HET_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 16 || echo 64)}
bench_topo_up --paths 2 --rate 20mbit,10mbit --delay 5,50

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            bench_run "$c" "$dir" $((mib * 1024 * 1024))
            bench_record_common "$c-$dir"
        done
    done
done
bench_summarize
bench_plot
echo "heterogeneous: reorder_delay_ms: not measured (no per-frame arrival times in libmpt's API or trace)" \
    >> "$bench_resdir/targets.txt"
bench_markdown
[ "$bench_failures" -eq 0 ]
