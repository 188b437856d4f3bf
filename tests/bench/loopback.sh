#!/usr/bin/env bash
# loopback (issue 4): unshaped loopback inside a private namespace, 1 GiB per
# transfer (BENCH_QUICK=1: 256 MiB; LOOPBACK_MIB overrides), both directions.
# Contenders: one plain TCP connection, kernel MPTCP over 2 subflows
# (endpoint 127.0.0.2 "subflow signal"), libmpt with each scheduler over the
# paths 127.0.0.1 and 127.0.0.2. Metrics: throughput (Gbit/s, at the
# receiver), cpu_s_per_gib (both processes' CPU), subflows actually used.
# Targets (issue 14): libmpt >= 80% of plain TCP's throughput and CPU per
# GiB <= 1.3x plain TCP's, per direction.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup loopback
bench_ns_loopback
mib=${LOOPBACK_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 256 || echo 1024)}
bytes=$((mib * 1024 * 1024))

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            bench_run "$c" "$dir" "$bytes" || continue
            name=$c-$dir
            bench_record "$name" throughput "$(bench_kv "$bench_rx" gbps)" Gbit/s
            bench_record "$name" cpu_s_per_gib "$(awk -v a="$(bench_kv "$bench_rx" cpu_s)" \
                -v b="$(bench_kv "$bench_tx" cpu_s)" -v m="$mib" 'BEGIN { printf "%.3f", (a + b) / (m / 1024) }')" s/GiB
            sf_rx=$(bench_kv "$bench_rx" subflows); sf_tx=$(bench_kv "$bench_tx" subflows)
            bench_record "$name" subflows "$((sf_rx > sf_tx ? sf_rx : sf_tx))" count
            bench_record "$name" max_gap_ms "$(bench_kv "$bench_rx" max_gap_ms)" ms
        done
    done
done
bench_summarize
# Targets: libmpt >= 80% of tcp's throughput, <= 1.3x its CPU per GiB
# (per direction, medians).
for dir in $BENCH_DIRS; do
    t=$(bench_median "tcp-$dir" throughput)
    tc=$(bench_median "tcp-$dir" cpu_s_per_gib)
    for c in $(bench_contenders); do
        case $c in libmpt-*) ;; *) continue ;; esac
        g=$(bench_median "$c-$dir" throughput)
        gc=$(bench_median "$c-$dir" cpu_s_per_gib)
        [ -n "$g" ] && [ -n "$t" ] || continue
        bench_target "$c-$dir throughput $g Gbit/s >= 80% of tcp-$dir $t Gbit/s ($(awk -v g="$g" -v t="$t" 'BEGIN { printf "%.0f%%", 100 * g / t }'))" \
            "$(awk -v g="$g" -v t="$t" 'BEGIN { print (g >= 0.8 * t ? "met" : "MISSED") }')"
        [ -n "$gc" ] && [ -n "$tc" ] && bench_target "$c-$dir cpu $gc s/GiB <= 1.3x tcp-$dir $tc s/GiB ($(awk -v g="$gc" -v t="$tc" 'BEGIN { printf "%.2fx", g / t }'))" \
            "$(awk -v g="$gc" -v t="$tc" 'BEGIN { print (g <= 1.3 * t ? "met" : "MISSED") }')"
    done
done
bench_markdown
[ "$bench_failures" -eq 0 ]
