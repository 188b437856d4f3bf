#!/usr/bin/env bash
# The main job: libmpt moving data over two paths.
#  1. the engine in the deterministic simulator: two paths, 20 Mbit/s @ 10 ms
#     and 10 Mbit/s @ 40 ms, aggregated (the goodput should approach 30 Mbit/s);
#  2. real kernel TCP subflows on loopback: a 256 MiB file copied with
#     examples/mpt-copy over two source addresses (127.0.0.1 and 127.0.0.2),
#     checked byte for byte.
# Argument: the build directory (default build/default).
set -euo pipefail
b=${1:-build/default}
work=$(mktemp -d)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT

echo "== libmpt $(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' "$b/config.h") demo"
make -C "$b" tests/sim/mpt-simbench examples/mpt-copy >/dev/null

echo "== 1. simulated paths: 20 Mbit/s @ 10 ms + 10 Mbit/s @ 40 ms, 16 MiB each way"
"$b/tests/sim/mpt-simbench" sim-aggregation 16 2>&1 >/dev/null | sed 's/^/  /'

echo "== 2. loopback: 256 MiB over two subflows (127.0.0.1 and 127.0.0.2)"
head -c $((256 << 20)) /dev/urandom >"$work/in"
port=$((20000 + RANDOM % 20000))
"$b/examples/mpt-copy" -l "$port" --listen-addr 127.0.0.1 -o "$work/out" >"$work/rx.txt" 2>&1 &
rx=$!
for _ in $(seq 50); do
    ss -ltn "sport = :$port" 2>/dev/null | grep -q LISTEN && break
    sleep 0.1
done
"$b/examples/mpt-copy" 127.0.0.1 "$port" --path 127.0.0.1 --path 127.0.0.2 -f "$work/in" | sed 's/^/  /'
wait "$rx"
sed 's/^/  /' "$work/rx.txt"
if cmp -s "$work/in" "$work/out"; then
    echo "== the received file is byte-identical ($(sha256sum <"$work/out" | cut -c1-16)...)"
else
    echo "== MISMATCH: the received file differs" >&2
    exit 1
fi
