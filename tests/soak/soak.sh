#!/usr/bin/env bash
# Soak test (issue 15): one libmpt connection moves data continuously for
# SOAK_SECONDS (default 1800 = 30 min) over two emulated paths (tests/net:
# 20 + 10 Mbit/s, 20 ms RTT) while a chaos loop makes a random path fail
# at random (blackhole, TCP reset or link down, for 1-8 s, every 3-15 s) and
# come back; one path is always up. Every byte is verified by the receiver
# (mpt-bench's pattern: verify=ok, lost_bytes=0), and the resident memory
# (VmRSS) of both processes is sampled every SOAK_SAMPLE_S seconds (default
# 60). Passes when the transfer completes byte-exact and the last sample of
# each process is at most SOAK_RSS_SLACK_KIB (default 16384) above its first.
#
# The transfer is sized to last about SOAK_SECONDS at SOAK_RATE bytes/s
# (default 2,900,000: below the paths' 3.75 MB/s, since outages cost rate);
# it may end a little earlier or later. SOAK_SEED seeds the chaos (default:
# the PID). Short version for CI: tests/net/test-soak.sh (SOAK_SECONDS=120).
# Exit 0 pass, 1 fail, 77 skip (not root, no namespaces or /dev/net/tun).
# Output: "soak: ..." lines, one "rss" line per sample, and a last line
# "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=${SOAK_SECONDS:-1800}
sample=${SOAK_SAMPLE_S:-60}
rate=${SOAK_RATE:-2900000}
slack=${SOAK_RSS_SLACK_KIB:-16384}
seed=${SOAK_SEED:-$$}

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: soak needs root (network namespaces)"; exit 77; fi
probe=mptsoak$$
if ! ip netns add "$probe" 2>/dev/null; then echo "SKIP: soak cannot create network namespaces"; exit 77; fi
ip netns del "$probe"
if [ ! -e /dev/net/tun ]; then echo "SKIP: soak needs /dev/net/tun"; exit 77; fi

BENCH_RESULTS=${SOAK_RESULTS:-$(mktemp -d /tmp/mpt-soak.XXXXXX)}
export BENCH_RESULTS BENCH_REPS=1
# shellcheck disable=SC1091
. "$here/../bench/lib.sh"
bench_setup soak
bench_topo_up --paths 2 --rate 20mbit,10mbit --delay 10,10
log=$BENCH_RESULTS/logs
bytes=$((secs * rate))
tmo=$((secs * 3 + 120))
port=$((20000 + $$ % 20000))
pid_s="" pid_c="" pid_chaos=""

cleanup() {
    for p in $pid_chaos $pid_c $pid_s; do kill "$p" 2>/dev/null; done
    # not a bare wait: the path emulator is a child too, and mpt_net_down stops it
    for p in $pid_chaos $pid_c $pid_s; do wait "$p" 2>/dev/null; done
    mpt_net_down
}
trap cleanup EXIT INT TERM

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# The chaos loop: path 1 or 2 fails, the other stays up.
chaos() {
    RANDOM=$seed
    local i kind hold
    while :; do
        sleep $((3 + RANDOM % 13))
        i=$((1 + RANDOM % 2)); hold=$((1 + RANDOM % 8))
        case $((RANDOM % 3)) in
        0) kind=blackhole; path_blackhole "$i" ;;
        1) kind=reset; path_reset "$i" ;;
        2) kind=linkdown; path_down "$i" ;;
        esac
        echo "$(date -u +%T) path $i $kind for ${hold}s" >> "$log/soak.chaos"
        sleep "$hold"
        path_restore "$i" 2>/dev/null; path_up "$i" 2>/dev/null
    done
}

echo "soak: $secs s, $bytes bytes up over 2 paths, chaos seed $seed, logs in $BENCH_RESULTS"
echo "soak: $(uptime | sed 's/.*load/load/')"
# ip netns exec execs the program: $! is its PID, for /proc/PID/status.
ip netns exec "$BENCH_NS_S" "$BENCH_MPT" server --bind "$BENCH_SRV" --port "$port" \
    --timeout "$tmo" --expect "$bytes" > "$log/soak.server" 2> "$log/soak.server.err" &
pid_s=$!
for _ in $(seq 1 100); do grep -q listening "$log/soak.server" 2>/dev/null && break; sleep 0.05; done
ip netns exec "$BENCH_NS_C" "$BENCH_MPT" client --host "$BENCH_SRV" --port "$port" \
    --path "${BENCH_SRC[0]}" --path "${BENCH_SRC[1]}" --timeout "$tmo" --send "$bytes" \
    > "$log/soak.client" 2> "$log/soak.client.err" &
pid_c=$!
chaos & pid_chaos=$!

t0=$(date +%s) first_s="" first_c="" last_s="" last_c="" n=0
while kill -0 "$pid_s" 2>/dev/null || kill -0 "$pid_c" 2>/dev/null; do
    sleep 1
    t=$(( $(date +%s) - t0 ))
    if [ $((t % sample)) -eq 0 ] && [ "$t" -gt 0 ]; then
        rs=$(rss_kib "$pid_s"); rc=$(rss_kib "$pid_c")
        [ -n "$rs" ] && [ -n "$rc" ] || continue
        n=$((n + 1))
        [ -n "$first_s" ] || { first_s=$rs; first_c=$rc; }
        last_s=$rs last_c=$rc
        echo "rss t=${t}s server_kib=$rs client_kib=$rc"
    fi
done
kill "$pid_chaos" 2>/dev/null; wait "$pid_chaos" 2>/dev/null; pid_chaos=""
rc_s=0; wait "$pid_s" || rc_s=$?
rc_c=0; wait "$pid_c" || rc_c=$?
pid_s="" pid_c=""

passed=0 failed=0
check() { if [ "$2" = 1 ]; then passed=$((passed + 1)); echo "PASS: $1"; else failed=$((failed + 1)); echo "FAIL: $1"; fi; }
rx=$log/soak.server
echo "soak: server: $(grep -h '^role=' "$rx")"
echo "soak: client: $(grep -h '^role=' "$log/soak.client")"
echo "soak: $(wc -l < "$log/soak.chaos" 2>/dev/null || echo 0) path failures; $(uptime | sed 's/.*load/load/')"
check "transfer of $bytes bytes complete and byte-exact (exit $rc_c/$rc_s, verify=$(bench_kv "$rx" verify), lost_bytes=$(bench_kv "$rx" lost_bytes))" \
    "$([ $rc_s -eq 0 ] && [ $rc_c -eq 0 ] && [ "$(bench_kv "$rx" verify)" = ok ] && [ "$(bench_kv "$rx" lost_bytes)" = 0 ] && echo 1)"
check "$n RSS samples taken (at least 2)" "$([ "$n" -ge 2 ] && echo 1)"
if [ "$n" -ge 1 ]; then
    check "server RSS first ${first_s} KiB, last ${last_s} KiB (growth <= $slack KiB)" \
        "$([ $((last_s - first_s)) -le "$slack" ] && echo 1)"
    check "client RSS first ${first_c} KiB, last ${last_c} KiB (growth <= $slack KiB)" \
        "$([ $((last_c - first_c)) -le "$slack" ] && echo 1)"
fi
[ $failed -eq 0 ] && [ -z "${SOAK_RESULTS:-}" ] && rm -rf "$BENCH_RESULTS"
[ $failed -eq 0 ] || { echo "logs kept in $BENCH_RESULTS"; tail -n 5 "$log"/soak.*; }
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
