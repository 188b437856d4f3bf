#!/bin/sh
# The example tools over loopback. mpt-cat, on its own libev loop, delivers
# through a host name ("echo hi | mpt-cat localhost PORT" once exited 0
# having sent nothing); mpt-cat and mpt-copy exit non-zero, naming the peer
# and the cause, whenever the transfer failed (refused, a path that cannot
# exist, a stream cut short), and 0 only when it completed.
# Run by `make check` from the build directory.
set -u
cat=./examples/mpt-cat
copy=./examples/mpt-copy
[ -x "$cat" ] && [ -x "$copy" ] || { echo "test-examples: tools not built"; exit 99; }

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

# mpt-cat -l 0 in the background; sets srv (pid) and port.
start_cat_server() { # tag stdin-file
    timeout 20 "$cat" -v -l 0 <"$2" >"$work/$1.out" 2>"$work/$1.err" &
    srv=$!
    pids="$pids $srv"
    for _ in $(seq 200); do
        port=$(sed -n 's/^mpt-cat: listening on port \([0-9]*\)$/\1/p' "$work/$1.err")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    fail "$1: mpt-cat -l 0 did not start"
}

# 1. A host name, both directions, graceful close: both exit 0.
printf 'to client' >"$work/srv.in"
start_cat_server srv "$work/srv.in"
printf 'hi' | timeout 20 "$cat" localhost "$port" >"$work/cli.out" 2>"$work/cli.err"
rc=$?
wait "$srv"
src=$?
[ $rc -eq 0 ] || fail "mpt-cat localhost $port exited $rc"
[ $src -eq 0 ] || fail "mpt-cat -l exited $src"
[ "$(cat "$work/srv.out")" = "hi" ] || fail "the server did not receive 'hi'"
[ "$(cat "$work/cli.out")" = "to client" ] || fail "the client did not receive 'to client'"
ok "echo hi | mpt-cat localhost PORT delivers, both ends exit 0"
closed=$port # nobody listens there any more

# 2. Refused: exit 1, "host:port", the code and the errno text.
timeout 20 "$cat" 127.0.0.1 "$closed" </dev/null >/dev/null 2>"$work/refused.err"
rc=$?
[ $rc -eq 1 ] || fail "mpt-cat to a closed port exited $rc"
grep -q "127.0.0.1:$closed: connect: MPT_ECONNREFUSED" "$work/refused.err" &&
    grep -q "Connection refused" "$work/refused.err" || fail "mpt-cat: no cause in the message"
ok "mpt-cat: refused -> exit 1, $(head -n 1 "$work/refused.err")"

# 3. A path that cannot exist.
timeout 20 "$cat" --path eht0 127.0.0.1 "$closed" </dev/null >/dev/null 2>"$work/nodev.err"
rc=$?
[ $rc -eq 1 ] || fail "mpt-cat --path eht0 exited $rc"
grep -q "eht0: MPT_ENODEV" "$work/nodev.err" || fail "mpt-cat --path eht0: no cause"
ok "mpt-cat --path eht0 -> exit 1, $(head -n 1 "$work/nodev.err")"

# 4. mpt-copy refused (tests/test-copy.sh covers mpt-copy in depth).
printf 'x' >"$work/one"
timeout 20 "$copy" -q 127.0.0.1 "$closed" "$work/one" >/dev/null 2>"$work/copy-refused.err"
rc=$?
[ $rc -eq 1 ] || fail "mpt-copy to a closed port exited $rc"
grep -q "127.0.0.1:$closed: connect: MPT_ECONNREFUSED" "$work/copy-refused.err" ||
    fail "mpt-copy: no cause in the message"
ok "mpt-copy: refused -> exit 1"

# mpt-copy -l 0 in the background; sets rcv (pid) and cport.
start_copy_receiver() { # tag destdir
    timeout 60 "$copy" -l 127.0.0.1 0 -o "$2" >"$work/$1.out" 2>"$work/$1.err" &
    rcv=$!
    pids="$pids $rcv"
    for _ in $(seq 200); do
        cport=$(sed -n 's/^mpt-copy: listening on [^ ]*:\([0-9]*\), .*/\1/p' "$work/$1.err")
        [ -n "$cport" ] && return 0
        sleep 0.05
    done
    fail "$1: mpt-copy -l 127.0.0.1 0 did not start"
}

# 5. mpt-copy completes: both exit 0, every byte written.
head -c 3000000 /dev/urandom >"$work/three"
start_copy_receiver recv "$work/dest"
timeout 30 "$copy" -q 127.0.0.1 "$cport" "$work/three" >"$work/send.out" 2>"$work/send.err"
rc=$?
wait "$rcv"
rrc=$?
[ $rc -eq 0 ] || fail "mpt-copy sender exited $rc"
[ $rrc -eq 0 ] || fail "mpt-copy receiver exited $rrc"
cmp -s "$work/three" "$work/dest/three" || fail "mpt-copy: the file differs"
ok "mpt-copy: 3000000 bytes, both exit 0"

# 6. The sender dies mid-stream (SIGKILL, so no graceful close): the
# receiver must not exit 0.
# Random bytes: zero runs would travel as holes, and the partial file would
# stay empty until the very end.
head -c 100000000 /dev/urandom >"$work/big"
start_copy_receiver cut "$work/dest2"
"$copy" -q 127.0.0.1 "$cport" "$work/big" >/dev/null 2>"$work/cut-send.err" &
snd=$!
pids="$pids $snd"
for _ in $(seq 2000); do
    [ -s "$work/dest2/.big.mpt-part" ] && break
    sleep 0.005
done
kill -9 "$snd" 2>/dev/null
wait "$rcv"
rc=$?
[ $rc -eq 1 ] || fail "mpt-copy receiver of a cut stream exited $rc"
grep -q "transfer is incomplete" "$work/cut.err" || fail "mpt-copy: no message for a cut stream"
ok "mpt-copy: a cut stream -> receiver exit 1, $(grep incomplete "$work/cut.err" | head -n 1)"
exit 0
