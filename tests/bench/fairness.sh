#!/usr/bin/env bash
# fairness (issues 5 and 10): three paths through one shared 20 Mbit/s
# bottleneck (10 ms one-way delay each). The contender uses paths 1 and 2
# (libmpt: two subflows; kernel MPTCP: endpoints on paths 1-2), while one
# ordinary TCP flow runs over path 3 at the same time, both 24 MiB
# (BENCH_QUICK=1 or FAIR_MIB: smaller), same direction. Metric share: the
# contender's part of the bytes the emulator forwarded on paths 1-3 between
# 2 s and 10 s after the start (counters, contender-agnostic); the TCP flow's
# part is recorded as tcp-vs-<contender>. 0.5 is an equal split; RFC 6356's
# goal 2 asks a coupled contender for no more than the single TCP flow.
# Contenders libmpt-<cc> for each coupled congestion control (BENCH_CCS,
# default: uncoupled lia olia balia) and kernel-mptcp; every TCP socket
# (subflows, kernel MPTCP, the competing flow) runs FAIR_TCP_CCS in turn
# (default: cubic bbr), as scenarios fairness-cubic and fairness-bbr:
# bbr does not back off on loss, so it cannot tell coupling from its
# absence (doc/benchmarks.md).
set -uo pipefail
# lib.sh reads the contender lists when sourced: set them first.
export BENCH_SCHEDS=${BENCH_SCHEDS-}
export BENCH_CCS=${BENCH_CCS:-uncoupled lia olia balia}
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
        ${BENCH_TCP_CC:+--tcp-cc $BENCH_TCP_CC} --timeout 120 > "$p.tcp.server" 2>&1 &
    local ps=$!
    sleep 0.2
    # shellcheck disable=SC2086
    timeout 150 ip netns exec "$BENCH_NS_C" "$BENCH_TCP" client --host "$BENCH_SRV" --src "$(mpt_client_addr 3)" \
        --port $port $ca ${BENCH_TCP_CC:+--tcp-cc $BENCH_TCP_CC} --timeout 120 > "$p.tcp.client" 2>&1
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
for BENCH_TCP_CC in ${FAIR_TCP_CCS:-cubic bbr}; do
    bench_scenario=fairness-$BENCH_TCP_CC
    for bench_rep in $(seq 1 "$BENCH_REPS"); do
        for dir in $BENCH_DIRS; do
            for c in $(bench_contenders); do
                [ "$c" = tcp ] && continue
                bench_run "$c" "$dir" "$bytes"
                bench_record_common "$c-$dir"
                read -r sc st < <(share "$bench_log_prefix" "$dir")
                bench_record "$c-$dir" share "${sc:-}" fraction
                bench_record "tcp-vs-$c-$dir" share "${st:-}" fraction
                bench_log "fairness: $BENCH_TCP_CC $c-$dir share ${sc:-?}, competing tcp ${st:-?}"
            done
        done
    done
    bench_summarize
    bench_plot
    if [ "$BENCH_TCP_CC" = cubic ]; then
        for dir in $BENCH_DIRS; do
            for c in libmpt-lia libmpt-olia; do
                v=$(bench_median "$c-$dir" share)
                [ -n "$v" ] || continue
                bench_target "$c-$dir share $v in 0.45..0.55 (cubic)" \
                    "$(awk -v v="$v" 'BEGIN { print (v >= 0.45 && v <= 0.55 ? "met" : "MISSED") }')"
            done
        done
    fi
done
bench_markdown
[ "$bench_failures" -eq 0 ]
