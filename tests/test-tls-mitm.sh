#!/bin/sh
# A man in the middle between mpt-cat's TLS subflows (tests/tls/mitm.py: it
# terminates TLS towards the client with a certificate of another CA, opens
# its own TLS to the server and relays, preamble included):
#  1. a client that verifies refuses it at once, with the reason;
#  2. a client in --tls-insecure mode (which accepts any certificate) has its
#     first subflow read by the relay, as documented, but no join through the
#     relay is accepted: each join is bound to its own TLS session
#     (doc/protocol.md 6.5), so the client sees MPT_EAUTH;
#  3. the control: the same insecure client straight to the server joins;
#  4. an observer (tests/tls/observer.py) that records the first subflow and
#     forges a join from the recorded bytes: the server takes it without TLS
#     (the control), and refuses it with TLS (the bytes are ciphertext).
# Certificates are made at run time (tests/tls/make-certs.sh, OpenSSL).
# Run by `make check` from the build directory.
set -u
cat=./examples/mpt-cat
srcdir=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$cat" ] || { echo "test-tls-mitm: $cat not built"; exit 99; }
for t in cmp python3 timeout openssl; do
    command -v $t >/dev/null || { echo "SKIP: test-tls-mitm needs $t"; exit 77; }
done
python3 -c 'import ssl' 2>/dev/null || { echo "SKIP: test-tls-mitm needs python3's ssl"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-tls-mitm.XXXXXX") || exit 99
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() {
    echo "FAIL: $*"
    for f in "$work"/*.err "$work"/*.log; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
    done
    exit 1
}
ok() { echo "ok: $*"; }
sh "$srcdir/tests/tls/make-certs.sh" "$work/c" >/dev/null || fail "cannot make certificates"
c=$work/c
head -c 300000 /dev/urandom >"$work/data"

# server TAG: a TLS mpt-cat -l that writes what it gets to TAG.out; sets port.
server() {
    timeout 60 "$cat" -v --tls-cert "$c/server.pem" --tls-key "$c/server.key" -l 127.0.0.1 0 \
        </dev/null >"$work/$1.out" 2>"$work/$1.err" &
    pids="$pids $!"
    for _ in $(seq 200); do
        port=$(sed -n 's/.* listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$work/$1.err")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    fail "$1: mpt-cat -l did not start"
}
# mitm TAG SERVER_PORT: the relay; sets mport.
mitm() {
    python3 "$srcdir/tests/tls/mitm.py" 0 "$2" "$c/mitm.pem" "$c/mitm.key" >"$work/$1.log" 2>&1 &
    pids="$pids $!"
    for _ in $(seq 200); do
        mport=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$work/$1.log")
        [ -n "$mport" ] && return 0
        sleep 0.05
    done
    fail "$1: mitm.py did not start"
}
# client TAG PORT [options]: sends data, holding the connection open for a
# second so that the join is tried while it lasts.
client() {
    tag=$1 p=$2
    shift 2
    (cat "$work/data"; sleep 1.5) | timeout 30 "$cat" -v -p 127.0.0.1 -p 127.0.0.2 "$@" 127.0.0.1 "$p" \
        >/dev/null 2>"$work/$tag.err"
}

# 1. Verifying client: refused, fast, with the reason.
server s1
mitm m1 "$port"
t0=$(date +%s%N)
timeout 30 "$cat" -v --tls-ca "$c/ca.pem" --tls-name mpt-test.example 127.0.0.1 "$mport" \
    <"$work/data" >/dev/null 2>"$work/c1.err" && fail "1: connected through the relay"
t1=$(date +%s%N)
grep -q 'not correctly signed by the trusted CA' "$work/c1.err" || fail "1: no certificate reason"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -lt 1000 ] || fail "1: refusal took $ms ms"
ok "1: a verifying client refuses the relay's certificate ($(grep -o 'certificate not accepted.*' "$work/c1.err" | head -n 1))"

# 2. Insecure client: the first subflow goes through, no join does.
server s2
mitm m2 "$port"
client c2 "$mport" --tls-insecure || fail "2: the transfer through the relay failed"
sleep 0.3
cmp -s "$work/data" "$work/s2.out" || fail "2: data differs"
grep -q 'kind=join' "$work/m2.log" || fail "2: the client never tried a join through the relay"
grep -q 'MPT_EAUTH' "$work/c2.err" || fail "2: the relayed join was not refused with MPT_EAUTH"
[ "$(grep -c 'subflow [0-9]* up' "$work/s2.err")" = 1 ] || fail "2: the server took a relayed join"
[ "$(grep -c 'subflow [0-9]* up' "$work/c2.err")" = 1 ] || fail "2: the client took a relayed join"
ok "2: relayed joins refused ($(grep -c 'kind=join' "$work/m2.log") tried, the client saw MPT_EAUTH)"

# 3. Control: the same client straight to the server joins.
server s3
client c3 "$port" --tls-insecure || fail "3: direct transfer failed"
sleep 0.3
cmp -s "$work/data" "$work/s3.out" || fail "3: data differs"
grep -q 'MPT_EAUTH' "$work/c3.err" && fail "3: a direct join failed authentication"
grep -q 'subflow 2 up: path 1' "$work/c3.err" || fail "3: the direct join did not come up"
ok "3: direct joins are accepted"
# 4. An observer forging a join from the first subflow's recorded bytes.
# observe TAG SERVER_PORT [client TLS options]: one-path client through it.
observe() {
    tag=$1 sp=$2
    shift 2
    python3 "$srcdir/tests/tls/observer.py" "$sp" >"$work/$tag.log" 2>&1 &
    pids="$pids $!"
    for _ in $(seq 200); do
        oport=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$work/$tag.log")
        [ -n "$oport" ] && break
        sleep 0.05
    done
    [ -n "$oport" ] || fail "$tag: observer.py did not start"
    (cat "$work/data"; sleep 2) | timeout 30 "$cat" -v -p 127.0.0.1 "$@" 127.0.0.1 "$oport" \
        >/dev/null 2>"$work/$tag-client.err" || fail "$tag: the client's transfer failed"
}
timeout 60 "$cat" -v -l 127.0.0.1 0 </dev/null >"$work/s4.out" 2>"$work/s4.err" &
pids="$pids $!"
for _ in $(seq 200); do
    port=$(sed -n 's/.* listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$work/s4.err")
    [ -n "$port" ] && break
    sleep 0.05
done
observe o4 "$port"
sleep 0.3
grep -q 'forged join: sent JOIN_CONFIRM' "$work/o4.log" || fail "4: the observer could not forge a join without TLS"
[ "$(grep -c 'subflow [0-9]* up' "$work/s4.err")" = 2 ] || fail "4: the server did not take the forged join (control)"
ok "4: without TLS, an observer of the first subflow joins (the control)"
server s5
observe o5 "$port" --tls-ca "$c/ca.pem" --tls-name mpt-test.example
sleep 0.3
cmp -s "$work/data" "$work/s5.out" || fail "5: data differs"
grep -q 'a TLS record' "$work/o5.log" || fail "5: the observer saw no TLS after the preamble"
grep -q 'forged join: refused' "$work/o5.log" || fail "5: the forged join was not refused"
[ "$(grep -c 'subflow [0-9]* up' "$work/s5.err")" = 1 ] || fail "5: the server took the forged join"
ok "5: with TLS, the observer's forged join is refused ($(grep -o 'refused: .*' "$work/o5.log"))"
echo "test-tls-mitm: all passed"
