#!/usr/bin/env bash
# python-loopback (issue 13): the Python bindings against the C API, 1 GiB
# (BENCH_QUICK=1: 256 MiB; LOOPBACK_MIB overrides) over unshaped loopback in
# a private namespace, 2 paths (127.0.0.1, 127.0.0.2), the client sending.
# Contenders, alternated in each repetition:
#   c               mpt-bench (the C blocking API, 256 KiB buffers)
#   python          tests/bench/mpt-bench.py: mpt.create_connection /
#                   create_server, sendall 256 KiB, recv_into one 64 KiB buffer
#   python-asyncio  the same through mpt.asyncio streams (read(65536))
# Every receiver checks every byte against the pattern. Metrics: throughput
# (Gbit/s at the receiver), cpu_s_per_gib (both processes), subflows.
# Target: python >= 80% of c (medians).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup python-loopback
bench_make libmpt/libmpt.la
[ -f "$bench_build/libmpt/.libs/libmpt.so" ] || { bench_log "python-loopback: SKIP: no shared libmpt"; exit 77; }
bench_ns_loopback
mib=${LOOPBACK_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 256 || echo 1024)}
bytes=$((mib * 1024 * 1024))
contenders=${BENCH_PY_CONTENDERS:-c python python-asyncio}

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for c in $contenders; do
        run=$c
        [ "$c" = c ] && run=libmpt-minrtt
        bench_run "$run" up "$bytes" || continue
        bench_record "$c" throughput "$(bench_kv "$bench_rx" gbps)" Gbit/s
        bench_record "$c" cpu_s_per_gib "$(awk -v a="$(bench_kv "$bench_rx" cpu_s)" \
            -v b="$(bench_kv "$bench_tx" cpu_s)" -v m="$mib" 'BEGIN { printf "%.3f", (a + b) / (m / 1024) }')" s/GiB
        sf_rx=$(bench_kv "$bench_rx" subflows); sf_tx=$(bench_kv "$bench_tx" subflows)
        bench_record "$c" subflows "$((sf_rx > sf_tx ? sf_rx : sf_tx))" count
    done
done
bench_summarize
t=$(bench_median c throughput)
for c in python python-asyncio; do
    g=$(bench_median "$c" throughput)
    [ -n "$g" ] && [ -n "$t" ] || continue
    pct=$(awk -v g="$g" -v t="$t" 'BEGIN { printf "%.0f%%", 100 * g / t }')
    if [ "$c" = python ]; then
        bench_target "python throughput $g Gbit/s >= 80% of c $t Gbit/s ($pct)" \
            "$(awk -v g="$g" -v t="$t" 'BEGIN { print (g >= 0.8 * t ? "met" : "MISSED") }')"
    else
        bench_log "python-loopback: $c $g Gbit/s = $pct of c (reported, no target)"
    fi
done
bench_markdown
[ "$bench_failures" -eq 0 ]
