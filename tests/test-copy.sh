#!/usr/bin/env bash
# mpt-copy on loopback, the sender using two paths (127.0.0.1 and
# 127.0.0.2): byte-exact copies of an empty, a small, a 64 MiB, a sparse
# file, 500 small files, names with spaces and unicode, a relative link,
# modes and mtimes kept; resume after the receiver is killed mid-transfer;
# hostile sender streams (tests/copy-evil.py, from the documented protocol)
# and a link in the destination refused; read and write errors reported;
# a second sender turned away while a transfer runs; every documented exit
# status; --help and the man page listing the same
# options. Run by `make check` from the build directory.
set -u
copy=$PWD/examples/mpt-copy
srcdir=$(cd "$(dirname "$0")/.." && pwd)
evil=$srcdir/tests/copy-evil.py
man=$srcdir/doc/man/mpt-copy.1
[ -x "$copy" ] || { echo "test-copy: $copy not built"; exit 99; }
for t in python3 cmp find; do
    command -v $t >/dev/null || { echo "SKIP: test-copy needs $t"; exit 77; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-copy.XXXXXX") || exit 99
chmod 755 "$work"
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

passed=0
fail() {
    echo "FAIL: $*"
    for f in "$work"/*.err "$work"/*.out; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
    done
    exit 1
}
ok() { echo "ok: $*"; passed=$((passed + 1)); }

# start_receiver TAG DESTDIR [ARGS...]: mpt-copy -l 127.0.0.1 0 in the
# background; sets rcv (its pid) and cport.
start_receiver() {
    local tag=$1 dest=$2
    shift 2
    timeout 120 "$copy" "$@" -l 127.0.0.1 0 -o "$dest" >"$work/$tag-rx.out" 2>"$work/$tag-rx.err" &
    rcv=$!
    pids="$pids $rcv"
    for _ in $(seq 200); do
        cport=$(sed -n 's/^mpt-copy: listening on [^ ]*:\([0-9]*\), .*/\1/p' "$work/$tag-rx.err")
        [ -n "$cport" ] && return 0
        kill -0 "$rcv" 2>/dev/null || break
        sleep 0.05
    done
    fail "$tag: the receiver did not start"
}
# send TAG ARGS...: the sender over both paths; sets src (its exit status).
send() {
    local tag=$1
    shift
    timeout 120 "$copy" --path 127.0.0.1 --path 127.0.0.2 127.0.0.1 "$cport" "$@" \
        >"$work/$tag-tx.out" 2>"$work/$tag-tx.err"
    src=$?
}
# expect TAG SENDER-STATUS RECEIVER-STATUS: waits for the receiver.
expect() {
    wait "$rcv"
    rrc=$?
    [ "$src" -eq "$2" ] || fail "$1: the sender exited $src (expected $2)"
    [ "$rrc" -eq "$3" ] || fail "$1: the receiver exited $rrc (expected $3)"
}
# A listing that must match: type, mode, mtime (s), size, link target.
listing() { (cd "$1" && find . -mindepth 1 -printf '%P|%y|%m|%T@|%s|%l\n' | sed 's/\.[0-9]*|/|/' | LC_ALL=C sort); }

# ---- --help, --version, the man page -------------------------------------------
"$copy" --help >"$work/help.out" 2>"$work/help.err"
[ $? -eq 0 ] && [ -s "$work/help.out" ] && [ ! -s "$work/help.err" ] || fail "--help: not exit 0 on stdout"
"$copy" --version | grep -q '^mpt-copy (libmpt ' || fail "--version"
grep -oE -- '(^|[ ,])--?[a-z][a-z0-9-]*' "$work/help.out" | tr -d ' ,' | sort -u >"$work/help.opts"
sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p; /^\.SH OPTIONS/,/^\.SH EXIT STATUS/p' "$man" |
    sed 's/\\-/-/g; s/\\f[BIRP]//g' | grep -oE -- '(^|[ ,(\[])--?[a-z][a-z0-9-]*' | tr -d ' ,([' |
    sort -u >"$work/man.opts"
diff "$work/help.opts" "$work/man.opts" >"$work/opts.diff" ||
    fail "--help and mpt-copy.1 list different options: $(cat "$work/opts.diff")"
ok "--help (stdout, exit 0) and mpt-copy.1 list the same $(wc -l <"$work/help.opts") options"
for c in 0 1 2 3 4; do
    sed -n '/^\.SH EXIT STATUS/,/^\.SH PROTOCOL/p' "$man" | grep -qx "\.B $c" || fail "mpt-copy.1 does not document exit $c"
done
ok "mpt-copy.1 documents exit statuses 0-4"

# ---- strict arguments: exit 2, a message, nothing attempted ------------------------
printf 'x' >"$work/x"
usage() {
    "$copy" "$@" >/dev/null 2>"$work/usage.err"
    rc=$?
    [ $rc -eq 2 ] && [ -s "$work/usage.err" ] || fail "mpt-copy $* exited $rc (expected 2 with a message)"
}
usage
usage 127.0.0.1 7000
usage 127.0.0.1 abc "$work/x"
usage 127.0.0.1 70000 "$work/x"
usage 127.0.0.1 0 "$work/x"
usage 127.0.0.1 7000 "$work/x" --frobnicate
usage -l abc -o "$work/d"
usage -l 70000 -o "$work/d"
usage -l 127.0.0.1 -o "$work/d"
usage -l 0
usage -l 1 2 3 -o "$work/d"
usage -l 0 -o "$work/d" --resume
usage -l 0 -o "$work/d" --path 127.0.0.2
usage -o "$work/d" 127.0.0.1 7000 "$work/x"
usage --interval 0 127.0.0.1 7000 "$work/x"
usage --interval 1x 127.0.0.1 7000 "$work/x"
usage 127.0.0.1 7000 "$work/x" --log
mkdir -p "$work/a1" "$work/a2"; printf 1 >"$work/a1/same"; printf 2 >"$work/a2/same"
usage 127.0.0.1 7000 "$work/a1/same" "$work/a2/same"
[ ! -e "$work/d" ] || fail "a usage error created the destination"
ok "strict arguments: 17 malformed command lines exit 2 with a message"

# ---- refused connection, missing file: exit 1 naming where and why -------------------
"$copy" -q 127.0.0.1 1 "$work/x" >/dev/null 2>"$work/refused.err"
rc=$?
[ $rc -eq 1 ] && grep -q '127.0.0.1:1: connect: MPT_ECONNREFUSED' "$work/refused.err" ||
    fail "refused: exit $rc, $(cat "$work/refused.err")"
ok "refused -> exit 1: $(head -n 1 "$work/refused.err")"
"$copy" -q 127.0.0.1 1 "$work/nonexistent" >/dev/null 2>"$work/missing.err"
rc=$?
[ $rc -eq 1 ] && grep -q "$work/nonexistent: cannot read: No such file or directory" "$work/missing.err" ||
    fail "missing file: exit $rc, $(cat "$work/missing.err")"
ok "a missing file -> exit 1 before connecting: $(head -n 1 "$work/missing.err")"
"$copy" -q -l 127.0.0.1 0 -o "$work/x" >/dev/null 2>"$work/notdir.err"
rc=$?
[ $rc -eq 1 ] && grep -q "$work/x: the destination directory: Not a directory" "$work/notdir.err" ||
    fail "-o FILE: exit $rc, $(cat "$work/notdir.err")"
ok "a file given as the destination directory -> exit 1: $(head -n 1 "$work/notdir.err")"

# ---- a tree, byte-exact, over two paths -----------------------------------------------
t=$work/src/tree
mkdir -p "$t/sub/deeper" "$t/with space" "$t/ünïcødé ✓" "$t/many"
: >"$t/empty"
printf 'small\n' >"$t/small"
head -c $((64 << 20)) /dev/urandom >"$t/large"
truncate -s 100M "$t/sparse"
printf 'in the middle' | dd of="$t/sparse" bs=1 seek=$((50 << 20)) conv=notrunc 2>/dev/null
printf 'spaces\n' >"$t/with space/a file with spaces"
printf 'unicode\n' >"$t/ünïcødé ✓/fïlé – ✓.txt"
for i in $(seq 500); do printf 'file %d\n' "$i" >"$t/many/f$i"; done
printf 'deep\n' >"$t/sub/deeper/x"
ln -s ../small "$t/sub/link-to-small"
chmod 751 "$t/small"; chmod 600 "$t/sub/deeper/x"; chmod 750 "$t/sub"
touch -d '2001-02-03 04:05:06' "$t/small" "$t/many/f7"
touch -h -d '2002-03-04 05:06:07' "$t/sub/link-to-small"
touch -d '2003-04-05 06:07:08' "$t/sub/deeper" "$t/many"
start_receiver tree "$work/dst" --log "$work/tree-rx.log"
send tree --log "$work/tree-tx.log" "$t"
expect tree 0 0
for f in empty small large sparse "with space/a file with spaces" "ünïcødé ✓/fïlé – ✓.txt" sub/deeper/x many/f1 many/f500; do
    cmp -s "$t/$f" "$work/dst/tree/$f" || fail "tree: $f differs"
done
alloc=$(($(stat -c '%b * %B' "$work/dst/tree/sparse")))
[ "$alloc" -lt $((1 << 20)) ] || fail "tree: the sparse file takes $alloc bytes on disk at the receiver"
listing "$t" >"$work/src.list"
listing "$work/dst/tree" >"$work/dst.list"
diff "$work/src.list" "$work/dst.list" >"$work/list.diff" || fail "tree: names, modes, mtimes, sizes or links differ: $(head "$work/list.diff")"
[ "$(wc -l <"$work/dst.list")" -eq 513 ] || fail "tree: $(wc -l <"$work/dst.list") entries, not 513"
[ -z "$(find "$work/dst" -name '*.mpt-part')" ] || fail "tree: .mpt-part files left"
n=$(grep -c 'path 127.0.0.2' "$work/tree-tx.out")
b2=$(sed -n 's/^mpt-copy: path 127.0.0.2: \([0-9.]*\) .*/\1/p' "$work/tree-tx.out")
[ "$n" -eq 1 ] && [ -n "$b2" ] && [ "$b2" != 0 ] || fail "tree: the second path carried nothing: $(cat "$work/tree-tx.out")"
grep -q 'every file verified' "$work/tree-rx.out" || fail "tree: the receiver did not report verification"
last=$(awk '$2 == "total" { b = $3 } END { print b }' "$work/tree-rx.log")
[ "$last" = $((64 * 1048576 + 100 * 1048576 + 6 + 7 + 8 + 5 + $(cat "$t"/many/* | wc -c))) ] ||
    fail "tree: the receiver's --log ends at $last bytes"
ok "a 513-entry tree (empty, small, 64 MiB, 100 MiB sparse, 500 small files, spaces, unicode, a link) byte-exact with modes and mtimes, $(grep 'path 127.0.0.2' "$work/tree-tx.out" | sed 's/^mpt-copy: //')"
ok "--log: the receiver's last total is every byte ($last)"
ok "the 100 MiB sparse file stays sparse at the receiver ($alloc bytes allocated)"

# ---- resume after the receiver is killed mid-transfer ----------------------------------
head -c $((64 << 20)) /dev/urandom >"$work/src/resume.bin"
start_receiver cut "$work/rdst"
send_bg() { timeout 120 "$copy" -q --path 127.0.0.1 --path 127.0.0.2 127.0.0.1 "$cport" "$@" \
    >"$work/cut-tx.out" 2>"$work/cut-tx.err" & snd=$!; pids="$pids $snd"; }
send_bg "$work/src/resume.bin"
part=$work/rdst/.resume.bin.mpt-part
for _ in $(seq 4000); do
    [ "$(stat -c %s "$part" 2>/dev/null || echo 0)" -ge $((4 << 20)) ] && break
    sleep 0.002
done
# The receiver itself, not the timeout(1) around it.
rx=$(pgrep -P "$rcv" -x mpt-copy)
[ -n "$rx" ] || fail "resume: no receiver process under $rcv"
kill -STOP "$rx"
have=$(stat -c %s "$part" 2>/dev/null || echo 0)
kill -9 "$rx"
wait "$rcv" 2>/dev/null
wait "$snd"
src=$?
[ "$have" -gt 0 ] && [ "$have" -lt $((64 << 20)) ] || fail "resume: the receiver had $have bytes when killed"
[ $src -eq 1 ] || fail "resume: the sender exited $src when the receiver was killed"
ok "receiver killed at $have of $((64 << 20)) bytes: the sender exits 1 ($(head -n 1 "$work/cut-tx.err"))"
start_receiver resume "$work/rdst"
send resume --resume -v "$work/src/resume.bin"
expect resume 0 0
cmp -s "$work/src/resume.bin" "$work/rdst/resume.bin" || fail "resume: the file differs"
grep -q 'resuming at byte' "$work/resume-tx.err" && grep -q 'already there (--resume)' "$work/resume-tx.out" ||
    fail "resume: the sender did not skip the prefix"
[ ! -e "$part" ] || fail "resume: the .mpt-part file is left"
ok "--resume: $(grep -o 'resuming at byte [0-9]*' "$work/resume-tx.err"), the file is byte-exact"
# A resume whose prefix differs sends everything again.
head -c 1000 /dev/urandom >"$work/rdst/.other.mpt-part"
head -c 5000 /dev/urandom >"$work/src/other"
start_receiver differ "$work/rdst"
send differ --resume -v "$work/src/other"
expect differ 0 0
cmp -s "$work/src/other" "$work/rdst/other" && grep -q 'differ: sending it all' "$work/differ-tx.err" ||
    fail "resume with a foreign prefix"
ok "--resume with a prefix that differs: sent again in full, byte-exact"

# ---- one transfer per receiver: a second sender is turned away -------------------------
start_receiver second "$work/sdst"
send_bg "$work/src/resume.bin"
for _ in $(seq 4000); do
    [ -s "$work/sdst/.resume.bin.mpt-part" ] && break
    sleep 0.002
done
first=$(pgrep -P "$snd" -x mpt-copy)
[ -n "$first" ] || fail "second: no sender process under $snd"
# The first transfer waits, still connected, until the receiver has turned
# the second sender away (a pause of more than ~2 s would end it: libmpt's
# liveness checks).
kill -STOP "$first"
timeout 30 "$copy" -q 127.0.0.1 "$cport" "$work/x" >/dev/null 2>"$work/second-tx.err" &
snd2=$!
for _ in $(seq 1000); do
    grep -q 'refusing a second sender' "$work/second-rx.err" && break
    sleep 0.01
done
kill -CONT "$first"
wait "$snd2"
rc2=$?
wait "$snd"
src=$?
expect second 0 0
[ $rc2 -eq 1 ] || fail "a second sender exited $rc2"
grep -q 'refusing a second sender' "$work/second-rx.err" || fail "the receiver did not say it refused"
cmp -s "$work/src/resume.bin" "$work/sdst/resume.bin" && [ ! -e "$work/sdst/x" ] ||
    fail "the first transfer was disturbed by the second sender"
ok "a second sender -> exit 1 ($(head -n 1 "$work/second-tx.err")); the first transfer completes"

# ---- hostile senders: refused, nothing written outside ---------------------------------
mkdir -p "$work/jail"
for kind in dotdot absolute inner-dotdot empty-part link-absolute link-climbs; do
    python3 "$evil" "$kind" "$work/$kind.stream" || fail "copy-evil.py $kind"
    rm -rf "$work/jail/dst"
    start_receiver "$kind" "$work/jail/dst"
    MPT_COPY_TEST_STREAM=$work/$kind.stream send "$kind" "$work/x"
    expect "$kind" 3 3
    grep -q 'refused' "$work/$kind-rx.err" || fail "$kind: no refusal message"
    [ -z "$(ls -A "$work/jail/dst")" ] || fail "$kind: the receiver wrote $(ls -A "$work/jail/dst")"
done
[ ! -e "$work/jail/evil" ] && [ ! -e "$work/evil" ] && [ ! -e /tmp/mpt-copy-evil-absolute ] ||
    fail "a hostile name was written outside the destination"
ok "6 hostile streams (../, absolute, a/../../, a//, link to /etc, link climbing out) refused, exit 3 both ends"
python3 "$evil" checksum "$work/checksum.stream"
start_receiver checksum "$work/jail/ck"
MPT_COPY_TEST_STREAM=$work/checksum.stream send checksum "$work/x"
expect checksum 4 4
grep -q 'SHA-256 mismatch' "$work/checksum-rx.err" && [ ! -e "$work/jail/ck/bad" ] &&
    [ -z "$(ls -A "$work/jail/ck")" ] || fail "checksum: not refused, or something left"
ok "a wrong SHA-256 -> exit 4 both ends, nothing left: $(grep mismatch "$work/checksum-rx.err" | head -n 1)"
for kind in bad-magic huge-frame; do
    python3 "$evil" "$kind" "$work/$kind.stream"
    start_receiver "$kind" "$work/jail/$kind"
    MPT_COPY_TEST_STREAM=$work/$kind.stream send "$kind" "$work/x"
    expect "$kind" 1 1
    grep -q 'not an mpt-copy sender\|protocol error' "$work/$kind-rx.err" || fail "$kind: $(cat "$work/$kind-rx.err")"
done
ok "not an mpt-copy sender, a 2 GiB frame -> exit 1 both ends: $(grep -h 'protocol error' "$work"/huge-frame-rx.err | head -n 1)"
python3 "$evil" good "$work/good.stream"
start_receiver good "$work/jail/good"
MPT_COPY_TEST_STREAM=$work/good.stream send good "$work/x"
expect good 0 0
[ "$(cat "$work/jail/good/good")" = payload ] || fail "the generator's well-formed stream was not written"
ok "the generator's well-formed stream is accepted (so the refusals are about the names)"
# A link already in the destination where a directory belongs.
mkdir -p "$work/outside" "$work/ldst" "$work/src/ltree/sub"
printf 'x\n' >"$work/src/ltree/sub/f"
ln -s "$work/outside" "$work/ldst/ltree"
start_receiver inway "$work/ldst"
send inway "$work/src/ltree"
expect inway 3 3
[ -z "$(ls -A "$work/outside")" ] || fail "the receiver wrote through a link: $(ls -A "$work/outside")"
ok "a link in the destination is not followed: exit 3, $(grep -o 'a symbolic link.*' "$work/inway-rx.err" | head -n 1)"
# A hard link planted as the partial file: replaced, its other name untouched.
mkdir -p "$work/hdst"
printf 'precious\n' >"$work/precious"
ln "$work/precious" "$work/hdst/.victim.mpt-part"
printf 'new contents\n' >"$work/src/victim"
start_receiver hard "$work/hdst"
send hard "$work/src/victim"
expect hard 0 0
[ "$(cat "$work/precious")" = precious ] && cmp -s "$work/src/victim" "$work/hdst/victim" ||
    fail "a hard link planted as the partial file was written through"
ok "a hard link planted as .NAME.mpt-part is replaced, not written through"
# The sender's own tree with an absolute link.
mkdir -p "$work/src/abs"; ln -s /etc/passwd "$work/src/abs/pw"
start_receiver abslink "$work/adst"
send abslink "$work/src/abs"
expect abslink 3 3
[ ! -e "$work/adst/abs/pw" ] && [ ! -L "$work/adst/abs/pw" ] || fail "an absolute link was created"
ok "a tree with an absolute link is refused (exit 3): $(grep -o 'refused.*' "$work/abslink-tx.err" | head -n 1)"

# ---- read errors and write errors ----------------------------------------------------------
mkdir -p "$work/src/unreadable"; printf 'secret\n' >"$work/src/unreadable/f"; chmod 000 "$work/src/unreadable/f"
as_user=()
if [ "$(id -u)" -eq 0 ]; then
    # Root reads anything: run the sender as nobody so that 000 means unreadable.
    command -v setpriv >/dev/null && as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
if [ "$(id -u)" -ne 0 ] || [ ${#as_user[@]} -gt 0 ]; then
    start_receiver rderr "$work/rdd"
    timeout 60 "${as_user[@]}" "$copy" 127.0.0.1 "$cport" "$work/src/unreadable" >"$work/rderr-tx.out" 2>"$work/rderr-tx.err"
    src=$?
    expect rderr 1 1
    grep -q "$work/src/unreadable/f: cannot open: Permission denied" "$work/rderr-tx.err" ||
        fail "read error: $(cat "$work/rderr-tx.err")"
    grep -q 'the sender gave up: the sender could not read unreadable/f' "$work/rderr-rx.err" ||
        fail "read error: the receiver was not told"
    ok "an unreadable file -> exit 1 both ends: $(head -n 1 "$work/rderr-tx.err")"
else
    echo "note: an unreadable file is not tested (root without setpriv)"
fi
# Write errors: a full file system (root: a 1 MiB tmpfs in a private mount
# namespace) or else a file-size limit.
head -c $((4 << 20)) /dev/urandom >"$work/src/4m"
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
    mkdir -p "$work/full"
    timeout 60 unshare -m sh -c 'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"' sh \
        "$work/full" "$copy" -l 127.0.0.1 0 -o "$work/full" >"$work/full-rx.out" 2>"$work/full-rx.err" &
    why="No space left on device"
else
    (ulimit -f 1024; exec timeout 60 "$copy" -l 127.0.0.1 0 -o "$work/full") >"$work/full-rx.out" 2>"$work/full-rx.err" &
    why="File too large"
fi
rcv=$!
pids="$pids $rcv"
for _ in $(seq 200); do
    cport=$(sed -n 's/^mpt-copy: listening on [^ ]*:\([0-9]*\), .*/\1/p' "$work/full-rx.err")
    [ -n "$cport" ] && break
    sleep 0.05
done
[ -n "$cport" ] || fail "full: the receiver did not start"
send full "$work/src/4m"
expect full 1 1
grep -q "full/4m: write: $why" "$work/full-rx.err" || fail "full: $(cat "$work/full-rx.err")"
grep -q "the receiver refused or failed: .*4m: write: $why" "$work/full-tx.err" || fail "full: the sender was not told"
ok "a write error ($why) -> exit 1 both ends: $(grep 'write:' "$work/full-rx.err" | head -n 1)"

echo "$passed passed"
