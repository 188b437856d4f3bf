#!/usr/bin/env bash
# loopback-tls (issue 11): unshaped loopback inside a private namespace, 1 GiB
# per transfer (BENCH_QUICK=1: 256 MiB; LOOPBACK_MIB overrides), both
# directions, TLS with the same cipher suite on both contenders
# (TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256, EC P-256 certificates made at run
# time by tests/tls/make-certs.sh). Contenders: `tls`, one mbedTLS TLS 1.2
# connection over one plain TCP connection (mpt-tcpbench --tls-*), and
# `libmpt-tls`, libmpt over 2 TLS subflows (paths 127.0.0.1 and 127.0.0.2,
# minrtt). Metrics: throughput (Gbit/s, at the receiver), cpu_s_per_gib (both
# processes' CPU), subflows. Target: libmpt-tls >= 85% of tls's throughput.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup loopback-tls
bench_ns_loopback
mib=${LOOPBACK_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 256 || echo 1024)}
bytes=$((mib * 1024 * 1024))
BENCH_TLS=$bench_resdir/tls-certs
sh "$bench_top/tests/tls/make-certs.sh" "$BENCH_TLS" >&2 || bench_die "cannot make test certificates (openssl?)"
contenders=${BENCH_CONTENDERS:-tls libmpt-tls}

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $contenders; do
            bench_run "$c" "$dir" "$bytes" || continue
            name=$c-$dir
            bench_record "$name" throughput "$(bench_kv "$bench_rx" gbps)" Gbit/s
            bench_record "$name" cpu_s_per_gib "$(awk -v a="$(bench_kv "$bench_rx" cpu_s)" \
                -v b="$(bench_kv "$bench_tx" cpu_s)" -v m="$mib" 'BEGIN { printf "%.3f", (a + b) / (m / 1024) }')" s/GiB
            sf_rx=$(bench_kv "$bench_rx" subflows); sf_tx=$(bench_kv "$bench_tx" subflows)
            bench_record "$name" subflows "$((sf_rx > sf_tx ? sf_rx : sf_tx))" count
        done
    done
done
bench_summarize
for dir in $BENCH_DIRS; do
    t=$(bench_median "tls-$dir" throughput)
    g=$(bench_median "libmpt-tls-$dir" throughput)
    [ -n "$g" ] && [ -n "$t" ] || continue
    bench_target "libmpt-tls-$dir throughput $g Gbit/s >= 85% of tls-$dir $t Gbit/s ($(awk -v g="$g" -v t="$t" 'BEGIN { printf "%.0f%%", 100 * g / t }'))" \
        "$(awk -v g="$g" -v t="$t" 'BEGIN { print (g >= 0.85 * t ? "met" : "MISSED") }')"
done
bench_markdown
[ "$bench_failures" -eq 0 ]
