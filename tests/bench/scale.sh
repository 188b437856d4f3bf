#!/usr/bin/env bash
# scale (issue 4): one libmpt server process holding SCALE_CONNS (default
# 10,000; BENCH_QUICK=1: 1,000) idle connections of 2 subflows each
# (loopback in a private namespace; paths 127.0.0.1 and 127.0.0.2), server
# and client in separate processes. Metrics: rss_kib_per_conn (server VmRSS
# after all connections have both subflows minus before the first, divided
# by the connections; no buffered data), accepts_per_s (first to last
# accept), connects_per_s (client side). Target: < 64 KiB per connection.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_setup scale
n=${SCALE_CONNS:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 1000 || echo 10000)}
bench_ns_loopback
# 2 descriptors per connection in each process (one per subflow). Raising
# the hard limit needs CAP_SYS_RESOURCE; without it the connection count is
# capped to what the hard limit allows (recorded as the conns metric).
ulimit -n $((2 * n + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
max_n=$((($(ulimit -n) - 64) / 2))
if [ "$n" -gt "$max_n" ]; then
    bench_log "scale: RLIMIT_NOFILE is $(ulimit -n) and cannot be raised: $max_n connections instead of $n"
    echo "scale: RLIMIT_NOFILE hard limit $(ulimit -Hn) (no CAP_SYS_RESOURCE): $max_n connections instead of $n" \
        >> "$bench_resdir/targets.txt"
    n=$max_n
fi
c=libmpt-${BENCH_SCHEDS%% *}

for bench_rep in $(seq 1 "$BENCH_REPS"); do
    port=$((bench_port++))
    p=$bench_resdir/logs/scale-$c-r$bench_rep
    timeout 200 ip netns exec "$BENCH_NS_S" "$BENCH_MPT" scale-server --bind 127.0.0.1 --port $port \
        --conns "$n" --timeout 150 > "$p.server" 2> "$p.server.err" &
    ps=$!
    for i in $(seq 1 100); do grep -q listening "$p.server" 2>/dev/null && break; sleep 0.05; done
    timeout 200 ip netns exec "$BENCH_NS_C" "$BENCH_MPT" scale-client --host 127.0.0.1 --port $port \
        --path 127.0.0.1 --path 127.0.0.2 --conns "$n" --timeout 160 > "$p.client" 2> "$p.client.err"
    rc_c=$?
    wait $ps; rc_s=$?
    bench_log "scale: $(grep -h '^role=' "$p.server" "$p.client" | tr '\n' ' ')"
    if [ $rc_s -ne 0 ] || [ $rc_c -ne 0 ]; then
        bench_log "scale: rep $bench_rep FAILED (server exit $rc_s, client exit $rc_c)"
        tail -n 5 "$p.server.err" "$p.client.err" >&2
        bench_failures=$((bench_failures + 1))
    fi
    bench_record "$c" completed "$([ $rc_s -eq 0 ] && echo 1 || echo 0)" bool
    bench_record "$c" conns "$(bench_kv "$p.server" conns)" count
    bench_record "$c" subflows "$(bench_kv "$p.server" subflows)" count
    bench_record "$c" rss_kib_per_conn "$(bench_kv "$p.server" rss_kib_per_conn)" KiB
    bench_record "$c" accepts_per_s "$(bench_kv "$p.server" accepts_per_s)" 1/s
    bench_record "$c" connects_per_s "$(bench_kv "$p.client" connects_per_s)" 1/s
done
bench_summarize
r=$(bench_median "$c" rss_kib_per_conn)
bench_target "$c rss_kib_per_conn ${r:-?} < 64 ($n connections x 2 subflows)" \
    "$(awk -v r="${r:-1e9}" 'BEGIN { print (r < 64 ? "met" : "MISSED") }')"
bench_markdown
[ "$bench_failures" -eq 0 ]
