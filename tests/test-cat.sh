#!/bin/sh
# mpt-cat on loopback, the client using two paths (127.0.0.1 and
# 127.0.0.2): byte-exact copies both ways at once (empty, small, 8 MiB),
# half-close in each direction, a tar pipeline, -k serving clients one
# after the other, a concurrent second client refused at once instead of
# hanging, every documented exit status, strict arguments, --help against
# the man page, and standard input and output (a pipe, a file, a terminal)
# left blocking after every kind of exit.
# Run by `make check` from the build directory.
set -u
cat=./examples/mpt-cat
srcdir=$(cd "$(dirname "$0")/.." && pwd)
man=$srcdir/doc/man/mpt-cat.1
[ -x "$cat" ] || { echo "test-cat: $cat not built"; exit 99; }
for t in cmp python3 tar timeout; do
    command -v $t >/dev/null || { echo "SKIP: test-cat needs $t"; exit 77; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-cat.XXXXXX") || exit 99
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*"
    for f in "$work"/*.err; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
    done
    exit 1
}
ok() { echo "ok: $*"; }

# server TAG [mpt-cat -l arguments]: starts mpt-cat -v -l in the background
# with stdin from $work/TAG.in (or /dev/null) and stdout to $work/TAG.out;
# sets srv (pid) and port.
server() {
    tag=$1
    shift
    in=$work/$tag.in
    [ -e "$in" ] || in=/dev/null
    timeout 60 "$cat" -v "$@" <"$in" >"$work/$tag.out" 2>"$work/$tag.err" &
    srv=$!
    pids="$pids $srv"
    for _ in $(seq 200); do
        port=$(sed -n 's/.* listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$work/$tag.err")
        [ -n "$port" ] && return 0
        kill -0 "$srv" 2>/dev/null || break
        sleep 0.05
    done
    fail "$tag: mpt-cat -l did not start"
}
two_paths="-p 127.0.0.1 -p 127.0.0.2"

# ---- --help, --version, the man page, arguments ------------------------------------
"$cat" --help >"$work/help.out" 2>"$work/help.err"
[ $? -eq 0 ] && [ -s "$work/help.out" ] && [ ! -s "$work/help.err" ] || fail "--help: not exit 0 on stdout"
"$cat" --version | grep -q '^mpt-cat (libmpt ' || fail "--version"
grep -oE -- '(^|[ ,])--?[a-z][a-z0-9-]*' "$work/help.out" | tr -d ' ,' | sort -u >"$work/help.opts"
sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p; /^\.SH OPTIONS/,/^\.SH EXIT STATUS/p' "$man" | sed 's/\\-/-/g; s/\\f[BIRP]//g' |
    grep -oE -- '(^|[ ,(\[])--?[a-z][a-z0-9-]*' | tr -d ' ,([' | sort -u >"$work/man.opts"
diff "$work/help.opts" "$work/man.opts" >"$work/opts.diff" ||
    fail "--help and mpt-cat.1 list different options: $(cat "$work/opts.diff")"
ok "--help (stdout, exit 0) and mpt-cat.1 list the same $(wc -l <"$work/help.opts") options"
# Every exit status --help names is documented in the man page, and back.
for code in 0 1 2 3; do
    grep -q "^\.B $code\$" "$man" || fail "mpt-cat.1 does not document exit status $code"
done
[ "$(grep -c '^\.B [0-9]$' "$man")" -eq 4 ] || fail "mpt-cat.1 documents exit statuses --help does not name"
ok "exit statuses 0-3 documented in --help and mpt-cat.1"

usage() { # expect exit 2 and a message, and nothing attempted
    "$cat" "$@" </dev/null >/dev/null 2>"$work/usage.err"
    rc=$?
    [ $rc -eq 2 ] && [ -s "$work/usage.err" ] || fail "mpt-cat $* exited $rc (expected 2 with a message)"
}
usage
usage -l
usage -l abc
usage -l 70000
usage -l -1
usage -l 127.0.0.1 abc
usage -l 80x
usage 127.0.0.1
usage 127.0.0.1 0
usage 127.0.0.1 65536
usage 127.0.0.1 ' 80'
usage 127.0.0.1 80 extra
usage -k 127.0.0.1 80
usage -l --path 127.0.0.2 0
usage --frobnicate 127.0.0.1 80
usage --path
usage 127.0.0.1 80 --scheduler
"$cat" -l abc 2>&1 | grep -q "'abc' is not a number from 0 to 65535" || fail "-l abc: no reason given"
ok "bad arguments exit 2 with a message ($("$cat" -l 70000 2>&1 | head -n 1))"

# ---- byte-exact, both directions at once, two paths -----------------------------------
head -c 8388608 /dev/urandom >"$work/big.bin"
head -c 3000000 /dev/urandom >"$work/mid.bin"
printf 'hello over two paths\n' >"$work/small.bin"
: >"$work/empty.bin"

copy_both() { # NAME CLIENT-FILE SERVER-FILE
    cp "$3" "$work/$1-srv.in"
    server "$1-srv" -l 127.0.0.1 0
    timeout 60 "$cat" -v --stats $two_paths 127.0.0.1 "$port" <"$2" >"$work/$1-cli.out" 2>"$work/$1-cli.err"
    rc=$?
    wait "$srv"
    src=$?
    [ $rc -eq 0 ] || fail "$1: the client exited $rc"
    [ $src -eq 0 ] || fail "$1: the server exited $src"
    cmp -s "$2" "$work/$1-srv.out" || fail "$1: the server received other bytes than the client sent"
    cmp -s "$3" "$work/$1-cli.out" || fail "$1: the client received other bytes than the server sent"
}
copy_both empty "$work/empty.bin" "$work/empty.bin"
ok "empty both ways: both exit 0, nothing written"
copy_both small "$work/small.bin" "$work/small.bin"
ok "a line both ways: byte-exact, both exit 0"
copy_both big "$work/big.bin" "$work/mid.bin"
grep -q "subflow 2 up: path 1, 127.0.0.2" "$work/big-cli.err" || fail "the client never used path 127.0.0.2"
grep -q "127.0.0.2:[0-9]* *127.0.0.1:$port *established" "$work/big-cli.err" ||
    fail "--stats: no per-subflow line for the second path"
ok "8 MiB up and 3 MB down at once over 127.0.0.1 and 127.0.0.2: byte-exact, both exit 0, --stats per subflow"

# ---- half-close ---------------------------------------------------------------------------
# The client's input ends at once; the server's 8 MiB still arrives.
cp "$work/big.bin" "$work/half1-srv.in"
server half1-srv -l 0
timeout 60 "$cat" localhost "$port" </dev/null >"$work/half1.out" 2>"$work/half1.err" || fail "half-close: client exited $?"
wait "$srv" || fail "half-close: the server exited $?"
cmp -s "$work/big.bin" "$work/half1.out" || fail "half-close: the client did not get the server's 8 MiB"
[ ! -s "$work/half1-srv.out" ] || fail "half-close: the server received bytes from an empty input"
ok "half-close (to localhost): client input empty, the server's 8 MiB arrives after the client's end of stream"
# The other way: the server's input ends at once, the client's 8 MiB arrives.
server half2-srv -l 0
timeout 60 "$cat" $two_paths 127.0.0.1 "$port" <"$work/big.bin" >"$work/half2.out" 2>"$work/half2.err" || fail "half-close 2: client exited $?"
wait "$srv" || fail "half-close 2: the server exited $?"
cmp -s "$work/big.bin" "$work/half2-srv.out" || fail "half-close 2: the server did not get 8 MiB"
ok "half-close: server input empty, the client's 8 MiB arrives"
# The server answers only after the client's end of stream (tr reads to EOF: sort).
mkfifo "$work/ask.fifo"
timeout 60 sh -c "\"$cat\" -v -l 127.0.0.1 0 <\"$work/ask.fifo\" 2>\"$work/ask-srv.err\" | sort -r >\"$work/ask.fifo\"" &
asksh=$!
pids="$pids $asksh"
for _ in $(seq 200); do
    port=$(sed -n 's/.* listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$work/ask-srv.err" 2>/dev/null)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || fail "ask: the server did not start"
got=$(printf 'a\nc\nb\n' | timeout 60 "$cat" 127.0.0.1 "$port" 2>"$work/ask-cli.err") || fail "ask: client exited $?"
wait "$asksh" || fail "ask: server exited $?"
[ "$got" = "$(printf 'c\nb\na')" ] || fail "ask: the answer after the end of stream was '$got'"
ok "half-close: a server answering after the client's end of stream (sort -r) is heard"

# ---- a pipeline -----------------------------------------------------------------------------
mkdir -p "$work/tree/sub dir" && cp "$work/mid.bin" "$work/tree/sub dir/a.bin" &&
    printf 'x' >"$work/tree/one" || fail "cannot make a tree"
mkdir "$work/untar"
timeout 60 sh -c "\"$cat\" -v -l 0 </dev/null 2>\"$work/tar-srv.err\" | tar x -C \"$work/untar\"" &
tarsh=$!
pids="$pids $tarsh"
for _ in $(seq 200); do
    port=$(sed -n 's/.* listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$work/tar-srv.err" 2>/dev/null)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || fail "tar: the server did not start"
(cd "$work" && tar c tree) | timeout 60 "$cat" $two_paths 127.0.0.1 "$port" >/dev/null 2>"$work/tar-cli.err" ||
    fail "tar c | mpt-cat: exit $?"
wait "$tarsh" || fail "mpt-cat -l | tar x: exit $?"
diff -r "$work/tree" "$work/untar/tree" >/dev/null || fail "tar: the trees differ"
ok "tar c tree | mpt-cat HOST PORT, mpt-cat -l PORT | tar x: the same tree"

# ---- -k: one client after another, a concurrent one refused ----------------------------------
server keep -l -k 127.0.0.1 0
keep_srv=$srv
printf 'one\n' | timeout 30 "$cat" 127.0.0.1 "$port" >/dev/null 2>"$work/k1.err" || fail "-k: client 1 exited $?"
printf 'two\n' | timeout 30 "$cat" $two_paths 127.0.0.1 "$port" >/dev/null 2>"$work/k2.err" || fail "-k: client 2 exited $?"
# Client 3 holds the server (its input stays open 6 s); client 4 comes meanwhile.
(printf 'three\n'; sleep 6) | timeout 30 "$cat" 127.0.0.1 "$port" >/dev/null 2>"$work/k3.err" &
k3=$!
pids="$pids $k3"
for _ in $(seq 100); do
    grep -q "accepted a client" "$work/keep.err" && [ "$(grep -c 'accepted a client' "$work/keep.err")" -ge 3 ] && break
    sleep 0.05
done
t0=$(date +%s)
printf 'four\n' | timeout 30 "$cat" 127.0.0.1 "$port" >/dev/null 2>"$work/k4.err"
rc=$?
t1=$(date +%s)
[ $rc -eq 1 ] || fail "-k: a client arriving while another is served exited $rc, not 1"
[ $((t1 - t0)) -le 5 ] || fail "-k: the refused client took $((t1 - t0)) s to give up"
grep -q "MPT_ERESET" "$work/k4.err" || fail "-k: the refused client does not say why"
grep -q "refused a client from 127.0.0.1:[0-9]*: busy with 127.0.0.1:" "$work/keep.err" ||
    fail "-k: the server did not report the refused client"
wait "$k3" || fail "-k: client 3 (served while 4 was refused) exited $?"
printf 'five\n' | timeout 30 "$cat" 127.0.0.1 "$port" >/dev/null 2>"$work/k5.err" || fail "-k: client 5 exited $?"
[ "$(cat "$work/keep.out")" = "$(printf 'one\ntwo\nthree\nfive')" ] ||
    fail "-k: the server wrote '$(cat "$work/keep.out")'"
kill -TERM "$keep_srv"
wait "$keep_srv"
rc=$?
[ $rc -eq 0 ] || fail "-k: SIGTERM while idle, every client complete: exit $rc, not 0"
ok "-k: clients 1, 2, 3, 5 served in turn; 4, concurrent, refused in $((t1 - t0)) s with exit 1 ($(head -n 1 "$work/k4.err"))"

server keep2 -lk 0
(sleep 5) | timeout 30 "$cat" 127.0.0.1 "$port" >/dev/null 2>"$work/k6.err" &
k6=$!
pids="$pids $k6"
for _ in $(seq 100); do grep -q "accepted a client" "$work/keep2.err" && break; sleep 0.05; done
kill -TERM "$srv"
wait "$srv"
rc=$?
[ $rc -eq 1 ] || fail "-k: SIGTERM while serving a client: exit $rc, not 1"
grep -q "interrupted (signal 15)" "$work/keep2.err" || fail "-k: the interrupted client is not reported"
wait "$k6"
rc=$?
[ $rc -eq 1 ] || fail "the client of an interrupted server exited $rc"
ok "-k: SIGTERM while serving -> exit 1 on both ends"

# ---- failures and their exit statuses -----------------------------------------------------
closed=$port # the -k server is gone
timeout 20 "$cat" 127.0.0.1 "$closed" </dev/null >/dev/null 2>"$work/refused.err"
rc=$?
[ $rc -eq 1 ] || fail "connect to a closed port exited $rc"
grep -q "127.0.0.1:$closed: connect: MPT_ECONNREFUSED.*Connection refused" "$work/refused.err" ||
    fail "refused: no host:port and cause in the message"
ok "refused -> exit 1: $(head -n 1 "$work/refused.err")"

timeout 20 "$cat" --path eht0 127.0.0.1 "$closed" </dev/null >/dev/null 2>"$work/nodev.err"
rc=$?
[ $rc -eq 1 ] && grep -q "127.0.0.1:$closed: connect over paths eht0: MPT_ENODEV" "$work/nodev.err" ||
    fail "--path eht0: exit $rc, $(cat "$work/nodev.err")"
ok "a path that does not exist -> exit 1: $(head -n 1 "$work/nodev.err")"

timeout 20 "$cat" --path 192.0.2.77 127.0.0.1 "$closed" </dev/null >/dev/null 2>"$work/noaddr.err"
rc=$?
[ $rc -eq 1 ] && grep -q "MPT_EADDRNOTAVAIL" "$work/noaddr.err" || fail "--path 192.0.2.77: exit $rc"
ok "a source address that is not local -> exit 1"

timeout 30 "$cat" no-such-host.invalid 9 </dev/null >/dev/null 2>"$work/resolve.err"
rc=$?
[ $rc -eq 1 ] && grep -q "no-such-host.invalid:9: connect: MPT_ERESOLVE" "$work/resolve.err" ||
    fail "a name that does not resolve: exit $rc, $(cat "$work/resolve.err")"
ok "a name that does not resolve -> exit 1"

timeout 20 "$cat" --scheduler nosuch 127.0.0.1 "$closed" </dev/null >/dev/null 2>"$work/sched.err"
rc=$?
[ $rc -eq 1 ] && grep -q "MPT_ENOTFOUND" "$work/sched.err" || fail "--scheduler nosuch: exit $rc"
ok "an unknown --scheduler -> exit 1"

server busy -l 127.0.0.1 0
timeout 20 "$cat" -l 127.0.0.1 "$port" </dev/null >/dev/null 2>"$work/inuse.err"
rc=$?
[ $rc -eq 1 ] && grep -q "127.0.0.1:$port: listen" "$work/inuse.err" || fail "a port in use: exit $rc"
ok "listen on a port in use -> exit 1: $(head -n 1 "$work/inuse.err")"
kill "$srv"
wait "$srv" 2>/dev/null

# The client dies mid-stream (SIGKILL: no end of stream): the server exits 1.
server cut -l 0
"$cat" 127.0.0.1 "$port" </dev/zero >/dev/null 2>/dev/null &
victim=$!
pids="$pids $victim"
for _ in $(seq 100); do grep -q "accepted a client" "$work/cut.err" && break; sleep 0.05; done
sleep 0.3
kill -9 "$victim"
wait "$srv"
rc=$?
[ $rc -eq 1 ] || fail "the server of a killed client exited $rc"
grep -q "the connection was aborted: MPT_E" "$work/cut.err" || fail "the server does not say the stream was cut"
ok "a client killed mid-stream -> the server exits 1: $(grep -m1 'was aborted' "$work/cut.err")"

# Local I/O errors: exit 3, and the peer is not told the transfer completed.
cp "$work/big.bin" "$work/full2-srv.in"
server full2-srv -l 0
timeout 20 "$cat" 127.0.0.1 "$port" </dev/null >/dev/full 2>"$work/full2-cli.err"
rc=$?
wait "$srv"
src=$?
[ $rc -eq 3 ] || fail "stdout /dev/full: exit $rc, not 3"
grep -q "standard output: write: No space left on device" "$work/full2-cli.err" || fail "/dev/full: no cause"
[ $src -eq 1 ] || fail "the server of a client whose stdout failed exited $src, not 1"
ok "standard output fails (/dev/full) -> exit 3, the peer exits 1: $(head -n 1 "$work/full2-cli.err")"

server dir-srv -l 0
timeout 20 "$cat" 127.0.0.1 "$port" <"$work/tree" >/dev/null 2>"$work/dir.err"
rc=$?
wait "$srv"
src=$?
[ $rc -eq 3 ] && grep -q "standard input: read: Is a directory" "$work/dir.err" || fail "stdin a directory: exit $rc"
[ $src -eq 1 ] || fail "the server of a client whose stdin failed exited $src, not 1"
ok "standard input fails (a directory) -> exit 3, the peer exits 1"

# ---- standard input and output left blocking ----------------------------------------------
# flags FD: "nonblock" or "block" for an open description this shell shares.
flags() { python3 -c 'import fcntl, os, sys; print("nonblock" if fcntl.fcntl(int(sys.argv[1]), fcntl.F_GETFL) & os.O_NONBLOCK else "block")' "$1"; }
# A pipe (stdin) and a file (stdout) shared with this shell, across a clean
# exit, a failure and SIGTERM.
: >"$work/flags.out"
exec 4>"$work/flags.out"
mkfifo "$work/flags.fifo"
sleep 30 >"$work/flags.fifo" &
holder=$!
pids="$pids $holder"
exec 3<"$work/flags.fifo"
timeout 20 "$cat" 127.0.0.1 "$closed" <&3 >&4 2>/dev/null
[ "$(flags 3) $(flags 4)" = "block block" ] || fail "after a failed connect: stdin $(flags 3), stdout $(flags 4)"
server fl -l 0
"$cat" 127.0.0.1 "$port" <&3 >&4 2>"$work/fl-cli.err" &
victim=$!
for _ in $(seq 100); do grep -q "accepted a client" "$work/fl.err" && break; sleep 0.05; done
sleep 0.2
kill -TERM "$victim"
wait "$victim"
rc=$?
[ $rc -ne 0 ] || fail "a client killed by SIGTERM exited 0"
[ "$(flags 3) $(flags 4)" = "block block" ] || fail "after SIGTERM: stdin $(flags 3), stdout $(flags 4)"
kill "$srv" 2>/dev/null
wait "$srv" 2>/dev/null
exec 3<&- 4>&-
kill "$holder" 2>/dev/null
# A terminal (a pty as stdin and stdout, one description as in a shell): the
# server's text arrives, the client ends its side on the peer's end of
# stream (nobody types), exits 0 and leaves the terminal blocking.
printf 'hello terminal\n' >"$work/tty-srv.in"
server tty-srv -l 0
r=$(timeout 30 python3 - "$cat" "$port" <<'EOF'
import fcntl, os, pty, subprocess, sys
master, slave = pty.openpty()
p = subprocess.Popen([sys.argv[1], "127.0.0.1", sys.argv[2]], stdin=slave, stdout=slave,
                     stderr=subprocess.DEVNULL)
rc = p.wait(timeout=20)
out = b""
fcntl.fcntl(master, fcntl.F_SETFL, os.O_NONBLOCK)
try:
    out = os.read(master, 4096)
except BlockingIOError:
    pass
nb = fcntl.fcntl(slave, fcntl.F_GETFL) & os.O_NONBLOCK
print(rc, "nonblock" if nb else "block", out.decode(errors="replace").strip())
EOF
)
wait "$srv" || fail "tty: the server exited $?"
[ "$r" = "0 block hello terminal" ] || fail "on a terminal: '$r' (want: exit 0, blocking, the text)"
ok "stdin/stdout flags restored: a pipe and a file after a failure and SIGTERM, a terminal after a clean exit"
exit 0
