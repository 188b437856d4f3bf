#!/usr/bin/env bash
# Unmodified iperf3 through mpt-proxy over two emulated paths (20 Mbit/s at
# 10 ms RTT and 10 Mbit/s at 40 ms RTT, tests/net/lib.sh): the proxy client
# in the client namespace with both paths, the proxy server and iperf3 -s in
# the server namespace, iperf3 -c through the client's port forward, 8 s
# each direction (once more if it missed). Passes if both directions reach
# 90% of 30 Mbit/s; prints plain iperf3 over the fast path alone for
# comparison.
# Needs root (exit 77 otherwise). Run by `make check` from the build
# directory; PROXY_IPERF_SECONDS and PROXY_IPERF_DELAY change the run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proxy=$PWD/examples/mpt-proxy
secs=${PROXY_IPERF_SECONDS:-8}
delay=${PROXY_IPERF_DELAY:-5,20}
target=27 # Mbit/s: 90% of 20 + 10

[ -x "$proxy" ] || { echo "test-proxy-iperf3: $proxy not built"; exit 99; }
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: test-proxy-iperf3 needs root (network namespaces)"; exit 77; fi
command -v iperf3 >/dev/null || { echo "SKIP: test-proxy-iperf3 needs iperf3"; exit 77; }
probe=mptpxq$$
ip netns add "$probe" 2>/dev/null || { echo "SKIP: cannot create network namespaces"; exit 77; }
ip netns del "$probe"
[ -e /dev/net/tun ] || { echo "SKIP: test-proxy-iperf3 needs /dev/net/tun"; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-proxy-iperf3.XXXXXX") || exit 99
# shellcheck disable=SC1091
. "$here/net/lib.sh"
mpt_build_tools "$work/bin" || exit 99
MPT_NETEM=$work/bin/mpt-netem MPT_PROBE=$work/bin/mpt-probe
cleanup() { mpt_net_down >/dev/null 2>&1; rm -rf "$work"; }
# mpt_net_down kills what is left in our namespaces (the proxies, iperf3 -s).
mpt_net_up --prefix "mptpx$(($$ % 1000000))" --no-trap --paths 2 --rate 20mbit,10mbit --delay "$delay" >"$work/net.log" 2>&1 ||
    { cat "$work/net.log"; rm -rf "$work"; echo "FAIL: mpt_net_up"; exit 1; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
dump() { for f in "$work"/*.err; do echo "--- $f"; tail -n 20 "$f"; done; }

srv=$MPT_SERVER_ADDR
mpt_ns s iperf3 -s -p 5201 >"$work/iperf3-s.log" 2>&1 &
mpt_ns s "$proxy" server -v --listen "$srv:7000" --forward 127.0.0.1:5201 2>"$work/server.err" &
mpt_ns c "$proxy" client -v --path "$(mpt_client_addr 1)" --path "$(mpt_client_addr 2)" \
    --to "$srv:7000" --listen 127.0.0.1:5202 2>"$work/client.err" &
for _ in $(seq 100); do
    grep -q "listening on" "$work/client.err" && grep -q "listening on" "$work/server.err" &&
        mpt_ns s bash -c 'exec 3<>/dev/tcp/127.0.0.1/5201' 2>/dev/null && break
    sleep 0.1
done

# mbps JSONFILE: the receiver's goodput in Mbit/s.
mbps() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"] / 1e6))' "$1" 2>/dev/null
}
run() { # run NAME ARGS...: iperf3 -c in the client namespace; sets rate
    local name=$1; shift
    timeout $((secs + 30)) ip netns exec "$MPT_NS_C" iperf3 -J -t "$secs" "$@" >"$work/$name.json" 2>"$work/$name.err"
    rate=$(mbps "$work/$name.json")
    [ -n "$rate" ] || { rate=0; echo "iperf3 $name: no result:"; head -c 600 "$work/$name.json"; echo; }
}

# best NAME ARGS...: a run through the proxy, and one more if it missed the
# target (a shared machine has slow seconds); sets rate to the better one.
best() {
    local name=$1 first; shift
    run "$name" "$@"
    if awk -v r="$rate" -v t="$target" 'BEGIN { exit !(r < t) }'; then
        first=$rate
        run "$name-again" "$@"
        echo "iperf3 $name: $first Mbit/s, then $rate Mbit/s"
        rate=$(awk -v a="$first" -v b="$rate" 'BEGIN { print (a > b ? a : b) }')
    fi
}
best proxy-up -c 127.0.0.1 -p 5202
up=$rate
best proxy-down -c 127.0.0.1 -p 5202 -R
down=$rate
run plain-up -c "$srv" -p 5201 -B "$(mpt_client_addr 1)"
plain_up=$rate
run plain-down -c "$srv" -p 5201 -B "$(mpt_client_addr 1)" -R
plain_down=$rate

echo "iperf3 through mpt-proxy (paths 20mbit + 10mbit, one-way delay $delay ms, ${secs} s):"
echo "  client -> server: $up Mbit/s, server -> client: $down Mbit/s (target >= $target)"
echo "plain iperf3 over path 1 alone: up $plain_up Mbit/s, down $plain_down Mbit/s"
for d in up down; do
    r=${!d}
    if awk -v r="$r" -v t="$target" 'BEGIN { exit !(r >= t) }'; then
        ok "iperf3 through mpt-proxy ($d): $r Mbit/s >= $target"
    else
        bad "iperf3 through mpt-proxy ($d): $r Mbit/s < $target"
        dump
    fi
done
grep -q "subflow 2 up" "$work/client.err" && ok "the proxy client used both paths" ||
    { bad "the proxy client never had a second subflow"; dump; }
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
