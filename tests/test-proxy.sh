#!/bin/sh
# mpt-proxy on loopback: unmodified curl fetching from a Python HTTP server
# through the port forward and through SOCKS5 (curl --socks5-hostname), the
# proxy client using two paths (127.0.0.1 and 127.0.0.2), byte-exact
# (sha256); an upload (curl -T); a half-closed connection; a target's
# reset passed on as a reset; 50 parallel
# curls; SOCKS5 refusals with their reply codes (raw client); --help and the
# man page listing the same options; strict arguments and exit statuses.
# Run by `make check` from the build directory.
set -u
proxy=./examples/mpt-proxy
srcdir=$(cd "$(dirname "$0")/.." && pwd)
helper=$srcdir/tests/proxy-helper.py
man=$srcdir/doc/man/mpt-proxy.1
[ -x "$proxy" ] || { echo "test-proxy: $proxy not built"; exit 99; }
for t in curl python3 sha256sum; do
    command -v $t >/dev/null || { echo "SKIP: test-proxy needs $t"; exit 77; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-proxy.XXXXXX") || exit 99
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

passed=0
fail() {
    echo "FAIL: $*"
    for f in "$work"/*.err; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
    done
    exit 1
}
ok() { echo "ok: $*"; passed=$((passed + 1)); }

# wait_line FILE SED-EXPR: the first match of a -v "listening on" line.
wait_port() { # FILE WHAT
    for _ in $(seq 200); do
        p=$(sed -n "s/.*listening on [^ ]*:\([0-9][0-9]*\) for $2.*/\1/p" "$1" | head -n 1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.05
    done
    return 1
}
wait_file() {
    for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
    return 1
}

# ---- usage, --help, man page ------------------------------------------------------
"$proxy" --help >"$work/help.out" 2>"$work/help.err"
[ $? -eq 0 ] && [ -s "$work/help.out" ] && [ ! -s "$work/help.err" ] || fail "--help: not exit 0 on stdout"
"$proxy" client --help >/dev/null || fail "client --help: not exit 0"
"$proxy" --version | grep -q '^mpt-proxy (libmpt ' || fail "--version"
# Options in --help, and in the man page's SYNOPSIS and OPTIONS (EXAMPLES
# quote other programs' options).
grep -oE -- '(^|[ ,])--?[a-z][a-z0-9-]*' "$work/help.out" | tr -d ' ,' | sort -u >"$work/help.opts"
sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p; /^\.SH OPTIONS/,/^\.SH EXIT STATUS/p' "$man" | sed 's/\\-/-/g; s/\\f[BIRP]//g' |
    grep -oE -- '(^|[ ,(\[])--?[a-z][a-z0-9-]*' | tr -d ' ,([' | sort -u >"$work/man.opts"
diff "$work/help.opts" "$work/man.opts" >"$work/opts.diff" ||
    fail "--help and mpt-proxy.1 list different options: $(cat "$work/opts.diff")"
ok "--help (stdout, exit 0) and mpt-proxy.1 list the same $(wc -l <"$work/help.opts") options"

usage() { # expect exit 2 and a message
    "$proxy" "$@" >/dev/null 2>"$work/usage.err"
    rc=$?
    [ $rc -eq 2 ] && [ -s "$work/usage.err" ] || fail "mpt-proxy $* exited $rc (expected 2 with a message)"
}
usage
usage bogus
usage client --listen abc --to 127.0.0.1:1
usage client --listen 70000 --to 127.0.0.1:1
usage client --listen 8080
usage client --listen 8080 --to 127.0.0.1
usage client --listen 8080 --to 127.0.0.1:0
usage client --listen 8080 --to ::1:80
usage client --listen 8080 --to 127.0.0.1:1 --frobnicate
usage client --listen 8080 --to
usage client --listen 8080 --to 127.0.0.1:1 --max-conns 0
usage client --listen 8080 --to 127.0.0.1:1 extra
usage client --listen 8080 --to 127.0.0.1:1 --allow-any
usage server --listen 7000
usage server --listen 7000 --allow 10.0.0.0/33:80
usage server --listen 7000 --allow example.org:http
usage server --listen 7000 --forward 127.0.0.1:80 --path 127.0.0.1
ok "bad arguments exit 2 with a message ($(head -n 1 "$work/usage.err"))"

# ---- the servers -----------------------------------------------------------------------
mkdir "$work/www"
head -c 8388608 /dev/urandom >"$work/www/big.bin"
head -c 1048576 /dev/urandom >"$work/www/small.bin"
python3 "$helper" http "$work/www" "$work/http.port" 2>"$work/http.err" &
pids="$pids $!"
python3 "$helper" sink "$work/sink.port" 2>"$work/sink.err" &
pids="$pids $!"
python3 "$helper" rst "$work/rst.port" 2>"$work/rst.err" &
pids="$pids $!"
wait_file "$work/http.port" && wait_file "$work/sink.port" && wait_file "$work/rst.port" || fail "the Python servers did not start"
http=$(cat "$work/http.port")
sink=$(cat "$work/sink.port")
rst=$(cat "$work/rst.port")

"$proxy" server -v --stats --listen 127.0.0.1:0 --forward "127.0.0.1:$http" --allow "localhost:$http" \
    --allow '127.0.0.0/8:*' 2>"$work/server.err" &
spid=$!
pids="$pids $spid"
sport=$(wait_port "$work/server.err" libmpt) || fail "the proxy server did not start"
"$proxy" client -v --path 127.0.0.1 --path 127.0.0.2 --to "127.0.0.1:$sport" \
    --listen 127.0.0.1:0 --socks5 127.0.0.1:0 2>"$work/client.err" &
cpid=$!
pids="$pids $cpid"
fport=$(wait_port "$work/client.err" "port forwarding") &&
    xport=$(wait_port "$work/client.err" SOCKS5) || fail "the proxy client did not start"
want=$(sha256sum <"$work/www/big.bin" | cut -d' ' -f1)

# ---- transfers ----------------------------------------------------------------------------
curl -sS --max-time 60 -o "$work/fwd.bin" "http://127.0.0.1:$fport/big.bin" 2>"$work/curl.err" ||
    fail "curl through the port forward failed"
[ "$(sha256sum <"$work/fwd.bin" | cut -d' ' -f1)" = "$want" ] || fail "port forward: the file differs"
ok "curl through the port forward: 8 MiB byte-exact"

curl -sS --max-time 60 --socks5-hostname "127.0.0.1:$xport" -o "$work/socks.bin" \
    "http://localhost:$http/big.bin" 2>"$work/curl.err" || fail "curl --socks5-hostname failed"
[ "$(sha256sum <"$work/socks.bin" | cut -d' ' -f1)" = "$want" ] || fail "SOCKS5: the file differs"
ok "curl --socks5-hostname: 8 MiB byte-exact"

got=$(curl -sS --max-time 60 -T "$work/www/big.bin" "http://127.0.0.1:$fport/upload" 2>"$work/curl.err") ||
    fail "curl -T through the port forward failed"
[ "$got" = "$want" ] || fail "upload: the server saw sha256 $got, not $want"
ok "curl -T (upload) through the port forward: 8 MiB byte-exact"

got=$(python3 "$helper" halfclose 127.0.0.1 "$xport" "$work/www/small.bin" 127.0.0.1 "$sink" 2>"$work/half.err") ||
    fail "half-close through SOCKS5: $(cat "$work/half.err")"
[ "$got" = "$(sha256sum <"$work/www/small.bin" | cut -d' ' -f1)" ] || fail "half-close: answer '$got'"
ok "half-close: end of file carried to the target, its answer carried back"

r=$(python3 "$helper" expect-reset 127.0.0.1 "$xport" 127.0.0.1 "$rst" 2>"$work/reset.err")
[ "$r" = reset ] || fail "a target's reset reached the application as '$r' $(cat "$work/reset.err")"
ok "a reset by the target reaches the application as a reset"

grep -q "subflow 2 up: path 1, 127.0.0.2" "$work/client.err" || fail "the client never used path 127.0.0.2"
ok "the proxy client used both paths"
grep -A 4 "conn [0-9]* statistics:" "$work/server.err" | grep -q "127.0.0.2:.* established" ||
    fail "--stats: no per-subflow table with the second path"
ok "--stats: each connection's subflows when it closes"

want_small=$(sha256sum <"$work/www/small.bin" | cut -d' ' -f1)
curls=""
i=0
while [ $i -lt 50 ]; do
    if [ $((i % 2)) -eq 0 ]; then
        curl -sS --max-time 120 -o "$work/par$i.bin" "http://127.0.0.1:$fport/small.bin" 2>"$work/par$i.curlerr" &
    else
        curl -sS --max-time 120 --socks5-hostname "127.0.0.1:$xport" -o "$work/par$i.bin" \
            "http://localhost:$http/small.bin" 2>"$work/par$i.curlerr" &
    fi
    curls="$curls $!"
    i=$((i + 1))
done
failed_curls=0
for p in $curls; do wait "$p" || failed_curls=$((failed_curls + 1)); done
[ $failed_curls -eq 0 ] || fail "$failed_curls of 50 parallel curls failed: $(cat "$work"/par*.curlerr | head -n 3)"
bad=0
i=0
while [ $i -lt 50 ]; do
    [ "$(sha256sum <"$work/par$i.bin" | cut -d' ' -f1)" = "$want_small" ] || bad=$((bad + 1))
    i=$((i + 1))
done
[ $bad -eq 0 ] || fail "$bad of 50 parallel transfers differ"
ok "50 parallel curls (25 port forward, 25 SOCKS5): all byte-exact"

# ---- SOCKS5 refusals ---------------------------------------------------------------------
socks() { python3 "$helper" socks 127.0.0.1 "$xport" "$@" 2>"$work/socks.err"; }
[ "$(socks auth)" = "05ff" ] || fail "SOCKS5 without a no-auth method: $(socks auth)"
ok "SOCKS5 offering only username/password: method reply 05 ff"
r=$(socks bind)
[ "$r" = "0500 05070001000000000000" ] || fail "SOCKS5 BIND: reply $r"
r=$(socks udp)
[ "$r" = "0500 05070001000000000000" ] || fail "SOCKS5 UDP ASSOCIATE: reply $r"
ok "SOCKS5 BIND and UDP ASSOCIATE: reply 7 (command not supported)"
r=$(socks atyp)
[ "$r" = "0500 05080001000000000000" ] || fail "SOCKS5 address type 9: reply $r"
ok "SOCKS5 unknown address type: reply 8"
r=$(socks connect 192.0.2.1 80)
[ "$r" = "0500 05020001000000000000" ] || fail "SOCKS5 CONNECT to a target no --allow covers: reply $r"
ok "SOCKS5 CONNECT to a target no --allow rule covers: reply 2 (not allowed)"
# A port nobody listens on (bound, then closed).
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
r=$(socks connect 127.0.0.1 "$closed")
[ "$r" = "0500 05050001000000000000" ] || fail "SOCKS5 CONNECT to a closed port: reply $r"
ok "SOCKS5 CONNECT to a closed port: reply 5 (connection refused)"
[ "$(socks v4)" = "closed" ] || fail "a SOCKS4 request got an answer"
ok "a SOCKS4 request is closed without an answer"
grep -q "192.0.2.1:80: refused: not allowed by --allow" "$work/server.err" ||
    fail "the server did not report the refused target"
ok "the server reports refusals: $(grep -m1 '192.0.2.1:80: refused' "$work/server.err")"

# ---- failures ----------------------------------------------------------------------------
# The proxy server unreachable: the application gets a reset, the client names why.
"$proxy" client --to "127.0.0.1:$closed" --listen 127.0.0.1:0 -v 2>"$work/client2.err" &
c2=$!
pids="$pids $c2"
f2=$(wait_port "$work/client2.err" "port forwarding") || fail "the second client did not start"
curl -sS --max-time 20 -o /dev/null "http://127.0.0.1:$f2/small.bin" 2>/dev/null &&
    fail "curl through a client whose server is down succeeded"
grep -q "127.0.0.1:$closed: connect to the proxy server: MPT_ECONNREFUSED" "$work/client2.err" ||
    fail "no cause for the unreachable server"
ok "server unreachable: curl fails, $(grep -m1 "connect to the proxy server" "$work/client2.err" | cut -c1-120)"

# --max-conns: one connection held open (a SOCKS5 client that says nothing),
# the next one is refused at once and reported.
"$proxy" client --max-conns 1 --to "127.0.0.1:$sport" --listen 127.0.0.1:0 --socks5 127.0.0.1:0 \
    -v 2>"$work/client3.err" &
c3=$!
pids="$pids $c3"
f3=$(wait_port "$work/client3.err" "port forwarding") && x3=$(wait_port "$work/client3.err" SOCKS5) ||
    fail "the third client did not start"
python3 -c 'import socket, sys, time; s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); time.sleep(5)' "$x3" &
holder=$!
pids="$pids $holder"
for _ in $(seq 100); do grep -q "1 open" "$work/client3.err" && break; sleep 0.05; done
curl -sS --max-time 20 -o /dev/null "http://127.0.0.1:$f3/small.bin" 2>/dev/null &&
    fail "a connection beyond --max-conns 1 was served"
grep -q "refused: 1 connections open (--max-conns)" "$work/client3.err" || fail "--max-conns: no report"
kill "$holder" "$c3" 2>/dev/null
ok "--max-conns 1: the second connection is refused and reported"

# Cannot listen: exit 1, naming the address.
"$proxy" client --to "127.0.0.1:$sport" --listen "127.0.0.1:$http" 2>"$work/inuse.err"
rc=$?
[ $rc -eq 1 ] && grep -q "127.0.0.1:$http: listen: Address already in use" "$work/inuse.err" ||
    fail "client on a port in use: exit $rc, $(cat "$work/inuse.err")"
"$proxy" server --listen "127.0.0.1:$sport" --forward 127.0.0.1:1 2>"$work/inuse2.err"
rc=$?
[ $rc -eq 1 ] && grep -q "127.0.0.1:$sport: listen: MPT_E" "$work/inuse2.err" ||
    fail "server on a port in use: exit $rc, $(cat "$work/inuse2.err")"
ok "cannot listen: exit 1, $(head -n 1 "$work/inuse.err")"

# SIGTERM and SIGINT: exit 0; -v counted the connections and bytes.
kill -TERM "$cpid"; wait "$cpid"; rc=$?
[ $rc -eq 0 ] || fail "the client exited $rc after SIGTERM"
kill -INT "$spid"; wait "$spid"; rc=$?
[ $rc -eq 0 ] || fail "the server exited $rc after SIGINT"
kill -TERM "$c2"; wait "$c2"
grep -q "conn [0-9]* closed (done): .*in total" "$work/client.err" || fail "no -v connection lines"
ok "SIGTERM / SIGINT: exit 0; $(grep 'closed (done)' "$work/client.err" | tail -n 1 | sed 's/.*; //')"

echo "$passed passed, 0 failed"
