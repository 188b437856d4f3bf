#!/usr/bin/env bash
# metered (issue 16): a free path of 10 Mbit/s and a metered path of 20
# Mbit/s (both 20 ms RTT) with a 16 MiB byte budget (mpt_set_path_budget:
# the sender meters it; the client names its --path, the server the client's
# address), a 64 MiB transfer (BENCH_QUICK=1 or METERED_MIB: smaller; the
# budget is a quarter of it), both directions. Metrics: metered_bytes (DATA
# payload the sender handed to the metered path) and completed, plus the
# common ones. Targets: metered_bytes <= budget + one frame (16384), and
# the transfer completes.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup metered
mib=${METERED_MIB:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 16 || echo 64)}
budget=$((mib * 1024 * 1024 / 4))
export BENCH_SCHEDS=${BENCH_SCHEDS-minrtt}
export BENCH_CONTENDERS=${BENCH_CONTENDERS:-libmpt-minrtt}
bench_topo_up --paths 2 --rate 10mbit,20mbit --delay 10,10
metered=${BENCH_SRC[1]}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-240}

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    for dir in $BENCH_DIRS; do
        for c in $(bench_contenders); do
            case $c in libmpt-*) ;; *) continue ;; esac
            name=libmpt-$dir
            [ "$c" = libmpt-minrtt ] || name=$c-$dir
            if bench_run "$c" "$dir" $((mib * 1024 * 1024)) --budget "$metered=$budget"; then
                bench_record_common "$name"
                bench_record "$name" metered_bytes "$(bench_kv "$bench_tx" metered_bytes)" bytes
            fi
            # bench_run recorded completed under $c-$dir; the issue's name too
            [ "$name" = "$c-$dir" ] ||
                bench_record "$name" completed "$([ "$(bench_kv "$bench_rx" verify)" = ok ] && echo 1 || echo 0)" bool
        done
    done
done
bench_summarize
bench_plot
for dir in $BENCH_DIRS; do
    m=$(bench_median "libmpt-$dir" metered_bytes)
    done_=$(bench_median "libmpt-$dir" completed)
    [ -n "$m" ] || { bench_target "libmpt-$dir metered_bytes (no result)" MISSED; continue; }
    bench_target "libmpt-$dir metered_bytes $m <= $budget + 16384" \
        "$(awk -v m="$m" -v b="$budget" 'BEGIN { print (m <= b + 16384 ? "met" : "MISSED") }')"
    bench_target "libmpt-$dir completed" "$([ "${done_:-0}" = 1 ] && echo met || echo MISSED)"
done
bench_markdown
[ "$bench_failures" -eq 0 ]
