#!/usr/bin/env bash
# The demo (README's first command runs it through tests/bootstrap.sh demo):
# one 64 MiB file copied with examples/mpt-copy over two paths at once,
# shown live per path, verified by SHA-256.
#
# As root: two emulated paths between network namespaces, made with the
# project's own emulator (tests/net/lib.sh, mpt-netem): path 1 20 Mbit/s at
# 10 ms RTT, path 2 10 Mbit/s at 40 ms RTT. Half-way through, path 1 is
# blackholed (every packet dropped, no signal to either end); the copy
# finishes on path 2. Without root (or without namespaces): the same copy
# over two loopback addresses (127.0.0.1, 127.0.0.2), no outage.
#
# Then: the verified checksum, bytes per path, the longest stall, and a PNG
# plot of each path's throughput over time (gnuplot), whose path it prints.
# The namespaces (prefix mptd<PID>) and temporary files are always removed,
# also on failure or Ctrl-C. Exit 0 only if the copy is byte-exact.
#
# Usage: tests/demo.sh [BUILD_DIR]    (default build/default)
# DEMO_MIB (default 64) changes the size; DEMO_LOOPBACK=1 forces loopback.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
b=$(cd "${1:-build/default}" && pwd)
mib=${DEMO_MIB:-64}
make -C "$b" examples/mpt-copy >/dev/null
copy=$b/examples/mpt-copy
plot=$b/demo-throughput.png
work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-demo.XXXXXX")
chmod 755 "$work"
netns=0
bg=""

cleanup() {
    trap - EXIT INT TERM HUP
    for p in $bg; do kill "$p" 2>/dev/null || true; done
    if [ "$netns" = 1 ]; then mpt_net_down >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
# A trap runs with the redirections of the command it interrupts (the
# sender's >tx.out): say it on the demo's own standard output.
exec 3>&1
trap 'printf "\n== interrupted: cleaning up\n" >&3; exit 130' INT TERM HUP

can_netns() {
    [ "${DEMO_LOOPBACK:-0}" != 1 ] && [ "$(id -u)" -eq 0 ] && [ -e /dev/net/tun ] || return 1
    local probe=mptdq$$
    ip netns add "$probe" 2>/dev/null || return 1
    ip netns del "$probe"
}

echo "== libmpt $(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' "$b/config.h") demo: mpt-copy, one file over two paths"
head -c $((mib << 20)) /dev/urandom >"$work/demo.bin"
sum=$(sha256sum "$work/demo.bin" | cut -d' ' -f1)

if can_netns; then
    netns=1
    # shellcheck disable=SC1091
    . "$here/net/lib.sh"
    mpt_build_tools "$work/bin" >/dev/null || { echo "demo: cannot build the path emulator" >&2; exit 1; }
    MPT_NETEM=$work/bin/mpt-netem MPT_PROBE=$work/bin/mpt-probe
    # One-way delays per direction: RTT 10 ms and 40 ms.
    mpt_net_up --prefix "mptd$(($$ % 1000000))" --no-trap --paths 2 --rate 20mbit,10mbit \
        --delay 5,20 >"$work/net.log" 2>&1 || { cat "$work/net.log"; exit 1; }
    srv=$MPT_SERVER_ADDR
    p1=$(mpt_client_addr 1) p2=$(mpt_client_addr 2)
    label1="path 1 ($p1, 20 Mbit/s, 10 ms RTT)"
    label2="path 2 ($p2, 10 Mbit/s, 40 ms RTT)"
    echo "== namespaces $MPT_NS_C (sender) and $MPT_NS_S (receiver), joined through $MPT_NS_R by"
    echo "   $label1 and $label2"
    echo "== path 1 will be blackholed (every packet dropped) once half the file has arrived"
    run_c() { ip netns exec "$MPT_NS_C" "$@"; }
    run_s() { ip netns exec "$MPT_NS_S" "$@"; }
else
    srv=127.0.0.1 p1=127.0.0.1 p2=127.0.0.2
    label1="path 1 ($p1)" label2="path 2 ($p2)"
    echo "== not root (or no network namespaces): loopback, $label1 and $label2, no outage"
    run_c() { "$@"; }
    run_s() { "$@"; }
fi

run_s "$copy" -l "$srv" 0 -o "$work/out" --log "$work/rx.log" >"$work/rx.out" 2>"$work/rx.err" &
bg="$bg $!"
port=""
for _ in $(seq 100); do
    port=$(sed -n 's/^mpt-copy: listening on [^ ]*:\([0-9]*\), .*/\1/p' "$work/rx.err")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { cat "$work/rx.err" >&2; echo "demo: the receiver did not start" >&2; exit 1; }

if [ "$netns" = 1 ]; then
    # Half-way by the receiver's own count of bytes written.
    (
        part=$work/out/.demo.bin.mpt-part
        while :; do
            n=$(stat -c %s "$part" 2>/dev/null) || n=0
            [ "${n:-0}" -lt $((mib << 19)) ] || break
            [ -e "$work/out/demo.bin" ] && exit 0
            sleep 0.05
        done
        path_blackhole 1 && awk '$2 == "total" { t = $1 } END { print t }' "$work/rx.log" >"$work/outage"
        printf '\n== %s s: path 1 blackholed\n' "$(cat "$work/outage")"
    ) &
    bg="$bg $!"
fi

echo "== mpt-copy --path $p1 --path $p2 $srv $port demo.bin ($mib MiB)"
t0=$(date +%s.%N)
rc=0
run_c "$copy" --path "$p1" --path "$p2" "$srv" "$port" "$work/demo.bin" >"$work/tx.out" || rc=$?
t1=$(date +%s.%N)
# The receiver prints its summary once the sender has its confirmation.
for _ in $(seq 100); do
    grep -q 'longest stall' "$work/rx.out" 2>/dev/null && break
    sleep 0.05
done
sed 's/^/  /' "$work/tx.out"
if [ $rc -ne 0 ]; then
    echo "== the copy FAILED (mpt-copy exited $rc):" >&2
    sed 's/^/  /' "$work/rx.err" >&2
    exit 1
fi
echo "== the receiver:"
sed 's/^/  /' "$work/rx.out"
if cmp -s "$work/demo.bin" "$work/out/demo.bin" && grep -q "sha256 $sum" "$work/rx.out"; then
    echo "== verified: sha256 $sum, byte-identical to the source"
else
    echo "== MISMATCH: the received file differs from the source" >&2
    exit 1
fi

# After the outage: what each path carried from then on (receiver's log).
a1=$(awk -v l="$p1" '$2 == l { b = $3 } END { print b + 0 }' "$work/rx.log")
a2=$(awk -v l="$p2" '$2 == l { b = $3 } END { print b + 0 }' "$work/rx.log")
echo "== per path (received): path 1 $((a1 >> 20)) MiB, path 2 $((a2 >> 20)) MiB, in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
if [ -s "$work/outage" ]; then
    o=$(cat "$work/outage")
    read -r b1 b2 <<<"$(awk -v o="$o" -v l1="$p1" -v l2="$p2" '
        $1 <= o && $2 == l1 { x1 = $3 } $1 <= o && $2 == l2 { x2 = $3 }
        $2 == l1 { e1 = $3 } $2 == l2 { e2 = $3 }
        END { printf "%d %d\n", (e1 - x1) / 1048576, (e2 - x2) / 1048576 }' "$work/rx.log")"
    if [ "$b1" -eq 0 ]; then
        echo "== after the outage at $o s: path 1 carried nothing, path 2 $b2 MiB: the copy finished on path 2"
    else
        echo "== after the outage at $o s: path 1 still carried $b1 MiB (the blackhole did not hold), path 2 $b2 MiB"
    fi
fi
grep -o 'longest stall.*' "$work/rx.out" | sed 's/^/== /'

if command -v gnuplot >/dev/null; then
    awk -v l="$p1" '$2 == l { print $1, $4 }' "$work/rx.log" >"$work/p1.dat"
    awk -v l="$p2" '$2 == l { print $1, $4 }' "$work/rx.log" >"$work/p2.dat"
    awk '$2 == "total" { print $1, $4 }' "$work/rx.log" >"$work/total.dat"
    {
        echo "set terminal pngcairo size 1000,500"
        echo "set output '$plot'"
        echo "set title 'mpt-copy, $mib MiB: throughput per path at the receiver (1 s window)'"
        echo "set xlabel 'seconds'; set ylabel 'Mbit/s'; set grid; set key top right"
        [ -s "$work/outage" ] && echo "set arrow from $(cat "$work/outage"), graph 0 to $(cat "$work/outage"), graph 1 nohead dt 2 lc rgb 'red'" &&
            echo "set label 'path 1 blackholed' at $(cat "$work/outage"), graph 0.95 offset 1,0 tc rgb 'red'"
        echo "plot '$work/total.dat' with lines lw 2 lc rgb 'black' title 'total', \\"
        echo "     '$work/p1.dat' with lines lw 2 title '$label1', \\"
        echo "     '$work/p2.dat' with lines lw 2 title '$label2'"
    } >"$work/plot.gp"
    if gnuplot "$work/plot.gp" 2>"$work/gnuplot.err"; then
        cp "$work/rx.log" "${plot%.png}.log"
        echo "== plot: $plot (data: ${plot%.png}.log, mpt-copy --log format)"
    else
        echo "== gnuplot failed: $(head -n 1 "$work/gnuplot.err")"
    fi
else
    echo "== no plot: gnuplot is not installed (apt-get install gnuplot-nox)"
fi
