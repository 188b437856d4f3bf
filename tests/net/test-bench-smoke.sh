#!/usr/bin/env bash
# Smoke version of the benchmarks (tests/bench, doc/benchmarks.md) for CI:
# scenario 1 (aggregation: 20 + 10 Mbit/s, 20 ms RTT) and scenario 3
# (failover: path 1 blackholed, then restored) with small transfers and one
# repetition, libmpt (default scheduler) in both directions. Asserts
# correctness only: every transfer completes and arrives byte-exact
# (lost_bytes 0); speeds are printed, not checked.
# Exit 0 pass, 1 fail, 77 skip (not root, or no network namespaces).
# Last line: "N passed, N failed". About a minute.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: test-bench-smoke needs root (network namespaces)"; exit 77
fi
probe=mptsmk$$
if ! ip netns add "$probe" 2>/dev/null; then
    echo "SKIP: test-bench-smoke cannot create network namespaces"; exit 77
fi
ip netns del "$probe"
if [ ! -e /dev/net/tun ]; then
    echo "SKIP: test-bench-smoke needs /dev/net/tun"; exit 77
fi

BENCH_RESULTS=$(mktemp -d /tmp/mpt-bench-smoke.XXXXXX)
export BENCH_RESULTS BENCH_REPS=1 BENCH_TIMEOUT=60
# shellcheck disable=SC1091
. "$here/../bench/lib.sh"
passed=0 failed=0
check() { # check NAME: the last bench_run completed byte-exact
    local v l
    v=$(bench_kv "$bench_rx" verify); l=$(bench_kv "$bench_rx" lost_bytes)
    if [ "$v" = ok ] && [ "$l" = 0 ] && [ "$(bench_kv "$bench_rx" completed)" = 1 ] &&
       [ "$(bench_kv "$bench_tx" completed)" = 1 ]; then
        passed=$((passed + 1))
        echo "PASS: $1: $(grep -h '^role=' "$bench_rx")"
    else
        failed=$((failed + 1))
        echo "FAIL: $1 (verify=${v:-none} lost_bytes=${l:-?})"
        tail -n 5 "$bench_log_prefix".client* "$bench_log_prefix".server*
    fi
}

bench_setup smoke-aggregation
bench_topo_up --paths 2 --rate 20mbit,10mbit --delay 10,10
c=libmpt-minrtt
for dir in up down; do
    bench_run "$c" "$dir" $((4 * 1024 * 1024))
    check "aggregation $c-$dir 4 MiB"
done

bench_scenario=smoke-failover
bench_during() {
    sleep 1; bench_event fail; path_blackhole 1
    sleep 2; bench_event restore; path_restore 1
}
for dir in up down; do
    bench_run "$c" "$dir" $((8 * 1024 * 1024))
    check "failover (blackhole 1 s..3 s) $c-$dir 8 MiB, max_gap_ms=$(bench_kv "$bench_rx" max_gap_ms)"
    path_restore 1 2>/dev/null
done
unset -f bench_during
mpt_net_down
[ $failed -eq 0 ] && rm -rf "$BENCH_RESULTS" || echo "logs kept in $BENCH_RESULTS"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
