#!/usr/bin/env bash
# streaming (issue 5, scenario 6): scenario 2's paths (20 Mbit/s at 10 ms RTT,
# 10 Mbit/s at 100 ms RTT); 1 KiB messages at 1,000 per second for
# STREAM_S seconds (default 10; BENCH_QUICK=1: 4), each carrying its
# CLOCK_MONOTONIC send time; the receiver reports one-way message latency.
# The TCP contenders use TCP_NODELAY (as libmpt does on its subflows).
# Metrics: latency_p50_ms, latency_p99_ms, latency_max_ms, lost_bytes.
# Target: p99 <= slow path's one-way delay (50 ms) + 20 ms with the
# latency-oriented scheduler (minrtt).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup streaming
secs=${STREAM_S:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 4 || echo 10)}
bench_topo_up --paths 2 --rate 20mbit,10mbit --delay 5,50
BENCH_TCP_ARGS=--nodelay

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            bench_run "$c" "$dir" $((secs * 1000 * 1024)) --stream 1000
            n=$c-$dir
            bench_record "$n" latency_p50_ms "$(bench_kv "$bench_rx" latency_p50_ms)" ms
            bench_record "$n" latency_p99_ms "$(bench_kv "$bench_rx" latency_p99_ms)" ms
            bench_record "$n" latency_max_ms "$(bench_kv "$bench_rx" latency_max_ms)" ms
            bench_record "$n" lost_bytes "$(bench_kv "$bench_rx" lost_bytes)" bytes
            bench_record "$n" subflows "$(bench_kv "$bench_rx" subflows)" count
        done
    done
done
bench_summarize
bench_plot
for dir in $BENCH_DIRS; do
    for c in $(bench_contenders); do
        case $c in libmpt-minrtt) ;; *) continue ;; esac
        p=$(bench_median "$c-$dir" latency_p99_ms)
        bench_target "$c-$dir latency_p99_ms ${p:-?} <= 70 (50 ms one-way + 20)" \
            "$(awk -v p="${p:-1e9}" 'BEGIN { print (p <= 70 ? "met" : "MISSED") }')"
    done
done
bench_markdown
[ "$bench_failures" -eq 0 ]
