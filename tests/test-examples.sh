#!/bin/sh
# The example tools over loopback: mpt-copy exits non-zero, naming the peer
# and the cause, whenever the transfer failed (refused, a stream cut short),
# and 0 only when it completed. (mpt-cat: tests/test-cat.sh.)
# Run by `make check` from the build directory.
set -u
copy=./examples/mpt-copy
[ -x "$copy" ] || { echo "test-examples: tools not built"; exit 99; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-examples.XXXXXX") || exit 99
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*"
    for f in "$work"/*.err "$work"/*.out; do
        [ -f "$f" ] && { echo "--- $f"; head -c 2000 "$f"; echo; }
    done
    exit 1
}
ok() { echo "ok: $*"; }

# A port nobody listens on (bound, then closed); mpt-cat's cases are in
# tests/test-cat.sh.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
    exit 99

# 4. mpt-copy refused.
timeout 20 "$copy" 127.0.0.1 "$closed" -n 1000 >/dev/null 2>"$work/copy-refused.err"
rc=$?
[ $rc -eq 1 ] || fail "mpt-copy to a closed port exited $rc"
grep -q "127.0.0.1:$closed: connect: MPT_ECONNREFUSED" "$work/copy-refused.err" ||
    fail "mpt-copy: no cause in the message"
ok "mpt-copy: refused -> exit 1"

# 5. mpt-copy completes: both exit 0, every byte written. The port is the
# one just freed; the sender retries until the receiver listens.
timeout 30 "$copy" -l "$closed" --listen-addr 127.0.0.1 -o "$work/copy.data" \
    >"$work/recv.out" 2>"$work/recv.err" &
rcv=$!
pids="$pids $rcv"
for _ in $(seq 100); do
    timeout 20 "$copy" 127.0.0.1 "$closed" -n 3000000 >"$work/send.out" 2>"$work/send.err" &&
        break
    grep -q MPT_ECONNREFUSED "$work/send.err" || fail "mpt-copy sender failed"
    sleep 0.05
done
wait "$rcv"
rc=$?
[ $rc -eq 0 ] || fail "mpt-copy receiver exited $rc"
[ "$(wc -c <"$work/copy.data")" -eq 3000000 ] || fail "mpt-copy: the file is not 3000000 bytes"
ok "mpt-copy: 3000000 bytes, both exit 0"

# 6. The sender dies mid-stream (SIGKILL, so no graceful close): the
# receiver must not exit 0.
timeout 30 "$copy" -l "$closed" --listen-addr 127.0.0.1 >/dev/null 2>"$work/cut.err" &
rcv=$!
pids="$pids $rcv"
for _ in $(seq 100); do
    "$copy" 127.0.0.1 "$closed" -n 100000000000 >/dev/null 2>"$work/cut-send.err" &
    snd=$!
    pids="$pids $snd"
    sleep 0.5
    kill -0 "$snd" 2>/dev/null && break
    wait "$snd"
done
kill -9 "$snd" 2>/dev/null
wait "$rcv"
rc=$?
[ $rc -eq 1 ] || fail "mpt-copy receiver of a cut stream exited $rc"
grep -q "stream is incomplete" "$work/cut.err" || fail "mpt-copy: no message for a cut stream"
ok "mpt-copy: a cut stream -> receiver exit 1, $(head -n 1 "$work/cut.err")"
exit 0
