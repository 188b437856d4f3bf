#!/usr/bin/env bash
# streaming (issues 5 and 10): scenario 2's paths (20 Mbit/s at 10 ms RTT,
# 10 Mbit/s at 100 ms RTT); 1 KiB messages at STREAM_RATE per second
# (default 1,000: 8 Mbit/s, which the fast path carries alone) for STREAM_S
# seconds (default 10; BENCH_QUICK=1: 4), each carrying its
# CLOCK_MONOTONIC send time; the receiver reports one-way message latency.
# The TCP contenders use TCP_NODELAY (as libmpt does on its subflows).
# Contenders: tcp, kernel-mptcp and libmpt with every scheduler meant for
# latency (BENCH_SCHEDS, default minrtt roundrobin redundant blest ecf).
# Metrics: latency_p50_ms, latency_p99_ms, latency_max_ms, lost_bytes,
# reorder_p99_ms (libmpt: time out-of-order data waited in the receive
# buffer, from mpt_info).
# Targets: minrtt's p99 <= the slow path's one-way delay (50 ms) + 20 ms;
# no other latency scheduler's p99 above 1.5x minrtt's.
# streaming-heavy.sh and redundant.sh run this script with other settings
# (STREAM_SCENARIO, STREAM_RATE, STREAM_TOPO, STREAM_TARGET).
set -uo pipefail
# lib.sh reads the contender lists when sourced: set them first.
export BENCH_SCHEDS=${BENCH_SCHEDS-minrtt roundrobin redundant blest ecf}
. "$(dirname "$0")/lib.sh"
bench_setup "${STREAM_SCENARIO:-streaming}"
secs=${STREAM_S:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 4 || echo 10)}
rate=${STREAM_RATE:-1000}
# shellcheck disable=SC2086
bench_topo_up ${STREAM_TOPO:---paths 2 --rate 20mbit,10mbit --delay 5,50}
BENCH_TCP_ARGS=--nodelay

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            bench_run "$c" "$dir" $((secs * rate * 1024)) --stream "$rate"
            n=$c-$dir
            bench_record "$n" latency_p50_ms "$(bench_kv "$bench_rx" latency_p50_ms)" ms
            bench_record "$n" latency_p99_ms "$(bench_kv "$bench_rx" latency_p99_ms)" ms
            bench_record "$n" latency_max_ms "$(bench_kv "$bench_rx" latency_max_ms)" ms
            bench_record "$n" lost_bytes "$(bench_kv "$bench_rx" lost_bytes)" bytes
            bench_record "$n" subflows "$(bench_kv "$bench_rx" subflows)" count
            bench_record "$n" reorder_p99_ms "$(bench_kv "$bench_rx" reorder_p99_ms)" ms
        done
    done
done
bench_summarize
bench_plot
# pct A B: A relative to B
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'; }
for dir in $BENCH_DIRS; do
    m=$(bench_median "libmpt-minrtt-$dir" latency_p99_ms)
    t=$(bench_median "tcp-$dir" latency_p99_ms)
    case ${STREAM_TARGET:-light} in
    light)
        [ -n "$m" ] && bench_target "libmpt-minrtt-$dir latency_p99_ms $m <= 70 (50 ms one-way + 20)" \
            "$(awk -v p="$m" 'BEGIN { print (p <= 70 ? "met" : "MISSED") }')"
        for c in redundant blest ecf; do
            p=$(bench_median "libmpt-$c-$dir" latency_p99_ms)
            [ -n "$p" ] && [ -n "$m" ] || continue
            bench_target "libmpt-$c-$dir latency_p99_ms $p <= 1.5 x minrtt's $m ($(ratio "$p" "$m")x)" \
                "$(awk -v p="$p" -v m="$m" 'BEGIN { print (p <= 1.5 * m ? "met" : "MISSED") }')"
        done ;;
    heavy)
        for c in blest ecf; do
            p=$(bench_median "libmpt-$c-$dir" latency_p99_ms)
            [ -n "$p" ] && [ -n "$m" ] || continue
            bench_target "libmpt-$c-$dir latency_p99_ms $p < minrtt's $m" \
                "$(awk -v p="$p" -v m="$m" 'BEGIN { print (p < m ? "met" : "MISSED") }')"
        done ;;
    lossy)
        p=$(bench_median "libmpt-redundant-$dir" latency_p99_ms)
        [ -n "$p" ] && [ -n "$t" ] &&
            bench_target "libmpt-redundant-$dir latency_p99_ms $p <= 0.7 x the single path's (tcp) $t ($(ratio "$p" "$t")x)" \
                "$(awk -v p="$p" -v t="$t" 'BEGIN { print (p <= 0.7 * t ? "met" : "MISSED") }')" ;;
    esac
done
bench_markdown
[ "$bench_failures" -eq 0 ]
