#!/usr/bin/env bash
# fairness (issue 5, scenario 5): three paths through one shared 20 Mbit/s
# bottleneck (10 ms one-way delay each). The contender uses paths 1 and 2
# (libmpt: two subflows; kernel MPTCP: endpoints on paths 1-2), while one
# ordinary TCP flow runs over path 3 at the same time, both 24 MiB
# (BENCH_QUICK=1 or FAIR_MIB: smaller), same direction. Metric share: the
# contender's part of the bytes the emulator forwarded on paths 1-3 between
# 2 s and 10 s after the start (counters, contender-agnostic); the TCP flow's
# part is recorded as tcp-vs-<contender>. 0.5 is an equal split.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup fairness
mib=${FAIR_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 12 || echo 24)}
BENCH_KERNEL_PATHS=2 bench_topo_up --paths 3 --bottleneck 20mbit --delay 10,10,10
BENCH_SRC=("$(mpt_client_addr 1)" "$(mpt_client_addr 2)")
bench_during_wait=1

bench_during() { # the competing TCP flow over path 3, same direction
    local p=$1 port=$((bench_port + 5000)) sa ca
    if [ "$dir" = up ]; then sa="--expect $bytes"; ca="--send $bytes"; else sa="--send $bytes"; ca="--expect $bytes"; fi
    # shellcheck disable=SC2086
    timeout 150 ip netns exec "$BENCH_NS_S" "$BENCH_TCP" server --bind "$BENCH_SRV" --port $port $sa \
        --timeout 120 > "$p.tcp.server" 2>&1 &
    local ps=$!
    sleep 0.2
    # shellcheck disable=SC2086
    timeout 150 ip netns exec "$BENCH_NS_C" "$BENCH_TCP" client --host "$BENCH_SRV" --src "$(mpt_client_addr 3)" \
        --port $port $ca --timeout 120 > "$p.tcp.client" 2>&1
    wait $ps
}

# share PREFIX DIR: "contender_share tcp_share" over the window 2..10 s.
share() {
    awk -v d="$2" '$3 == d { if (!t0) t0 = $1; t = $1 - t0
            if (t >= 2000 && !(($2) in b0)) b0[$2] = $4
            if (t <= 10000) b1[$2] = $4 }
        END { a = b1[1] - b0[1] + b1[2] - b0[2]; c = b1[3] - b0[3]
              if (a + c > 0) printf "%.3f %.3f\n", a / (a + c), c / (a + c) }' "$1.rates"
}

bytes=$((mib * 1024 * 1024))
for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            [ "$c" = tcp ] && continue
            bench_run "$c" "$dir" "$bytes"
            bench_record_common "$c-$dir"
            read -r sc st < <(share "$bench_log_prefix" "$dir")
            bench_record "$c-$dir" share "${sc:-}" fraction
            bench_record "tcp-vs-$c-$dir" share "${st:-}" fraction
            bench_log "fairness: $c-$dir share ${sc:-?}, competing tcp ${st:-?}"
        done
    done
done
bench_summarize
bench_plot
bench_markdown
[ "$bench_failures" -eq 0 ]
