#!/bin/sh
# mpt-stream on loopback, the source using two paths (127.0.0.1 and
# 127.0.0.2): the sink's per-second reports and summary are present and
# sane (p50 <= p99 <= max, the delivered rate within 20% of --rate, message
# counts that agree between the reports, the summary and the source), the
# scheduler shows in the subflows' shares (roundrobin uses both, redundant
# carries the stream twice), --stdin delivers every message, a refused
# source and a source that is not mpt-stream fail, strict arguments, and
# --help against the man page.
# Run by `make check` from the build directory.
set -u
stream=./examples/mpt-stream
srcdir=$(cd "$(dirname "$0")/.." && pwd)
man=$srcdir/doc/man/mpt-stream.1
[ -x "$stream" ] || { echo "test-stream: $stream not built"; exit 99; }
for t in awk python3 timeout; do
    command -v $t >/dev/null || { echo "SKIP: test-stream needs $t"; exit 77; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-stream.XXXXXX") || exit 99
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*"
    for f in "$work"/*.out "$work"/*.err; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
    done
    exit 1
}
ok() { echo "ok: $*"; }

sink() { # TAG [options]: a sink in the background; sets snk (pid) and port
    tag=$1
    shift
    timeout 60 "$stream" -v "$@" -l 127.0.0.1 0 >"$work/$tag.out" 2>"$work/$tag.err" &
    snk=$!
    pids="$pids $snk"
    for _ in $(seq 200); do
        port=$(sed -n 's/.* listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$work/$tag.err")
        [ -n "$port" ] && return 0
        kill -0 "$snk" 2>/dev/null || break
        sleep 0.05
    done
    fail "$tag: the sink did not start"
}
# field FILE PREFIX KEY: KEY's value in the first line starting with PREFIX.
field() { sed -n "/^$2/{s/.* $3=\([^ ]*\).*/\1/p;q}" "$1"; }

# ---- --help, the man page, arguments ------------------------------------------------
"$stream" --help >"$work/help.txt" 2>"$work/help.err"
[ $? -eq 0 ] && [ -s "$work/help.txt" ] && [ ! -s "$work/help.err" ] || fail "--help: not exit 0 on stdout"
"$stream" --version | grep -q '^mpt-stream (libmpt ' || fail "--version"
grep -oE -- '(^|[ ,])--?[a-z][a-z0-9-]*' "$work/help.txt" | tr -d ' ,' | sort -u >"$work/help.opts"
sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p; /^\.SH OPTIONS/,/^\.SH EXIT STATUS/p' "$man" | sed 's/\\-/-/g; s/\\f[BIRP]//g' |
    grep -oE -- '(^|[ ,(\[])--?[a-z][a-z0-9-]*' | tr -d ' ,([' | sort -u >"$work/man.opts"
diff "$work/help.opts" "$work/man.opts" >"$work/opts.diff" ||
    fail "--help and mpt-stream.1 list different options: $(cat "$work/opts.diff")"
ok "--help (stdout, exit 0) and mpt-stream.1 list the same $(wc -l <"$work/help.opts") options"

usage() {
    "$stream" "$@" </dev/null >/dev/null 2>"$work/usage.err"
    rc=$?
    [ $rc -eq 2 ] && [ -s "$work/usage.err" ] || fail "mpt-stream $* exited $rc (expected 2 with a message)"
}
usage
usage -l
usage -l abc
usage -l 70000
usage 127.0.0.1
usage 127.0.0.1 0
usage 127.0.0.1 9 --rate 0
usage 127.0.0.1 9 --rate 8X
usage 127.0.0.1 9 --rate fast
usage 127.0.0.1 9 --size 10
usage 127.0.0.1 9 --size 2M
usage 127.0.0.1 9 --duration -1
usage 127.0.0.1 9 --duration 1s
usage 127.0.0.1 9 --rate 1k --size 1M --duration 1
usage 127.0.0.1 9 --stall 10
usage 127.0.0.1 9 --stdin --rate 1M
usage -l 0 --rate 1M
usage -l 0 --path 127.0.0.2
usage -l 0 --interval 0
usage 127.0.0.1 9 --frobnicate
ok "bad arguments exit 2 with a message ($("$stream" 127.0.0.1 9 --rate 8X 2>&1 | head -n 1))"

# ---- 8 Mbit/s of 1 KiB messages for 4 s over two paths ----------------------------------
sink cbr --stats
timeout 60 "$stream" -p 127.0.0.1 -p 127.0.0.2 127.0.0.1 "$port" --rate 8M --size 1024 \
    --duration 4 >"$work/cbr-src.out" 2>"$work/cbr-src.err" || fail "source: exit $?"
wait "$snk" || fail "sink: exit $?"
grep -q "^stream at .*mode=cbr rate_bps=8000000 size=1024" "$work/cbr.out" || fail "no stream line"
lines=$(grep -c '^t=' "$work/cbr.out")
[ "$lines" -ge 4 ] || fail "$lines report lines for 4 s"
# Every report: p50 <= p99 <= max; the message counts add up.
awk '/^t=/ {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        if (v["msgs"] > 0 && !(v["lat_p50_ms"] + 0 <= v["lat_p99_ms"] + 0 && v["lat_p99_ms"] + 0 <= v["lat_max_ms"] + 0)) {
            print "unordered percentiles: " $0; bad = 1
        }
        sum += v["msgs"]
     }
     END { if (bad) exit 1; print sum }' "$work/cbr.out" >"$work/cbr.sum" || fail "$(cat "$work/cbr.sum")"
msgs=$(field "$work/cbr.out" summary msgs)
sent=$(field "$work/cbr.out" summary sent)
src_sent=$(field "$work/cbr-src.out" sent msgs)
[ "$(field "$work/cbr.out" summary state)" = complete ] || fail "summary: not complete"
[ -n "$msgs" ] && [ "$msgs" = "$sent" ] && [ "$msgs" = "$src_sent" ] && [ "$msgs" = "$(cat "$work/cbr.sum")" ] ||
    fail "counts: summary $msgs, END $sent, source $src_sent, reports $(cat "$work/cbr.sum")"
# 4 s at 8 Mbit/s of 1024-byte messages: 3906 messages.
[ "$msgs" -ge 3900 ] && [ "$msgs" -le 3910 ] || fail "$msgs messages for 4 s at 8 Mbit/s (3906 expected)"
awk -v l="$(sed -n '/^summary/p' "$work/cbr.out")" 'BEGIN {
        n = split(l, f, " "); for (i = 1; i <= n; i++) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
        if (!(v["lat_p50_ms"] + 0 <= v["lat_p99_ms"] + 0 && v["lat_p99_ms"] + 0 <= v["lat_max_ms"] + 0)) exit 1
        if (v["rate_mbps"] < 6.4 || v["rate_mbps"] > 9.6) exit 2
        if (v["lat_max_ms"] <= 0) exit 3
    }' || fail "summary out of bounds (exit $?): $(grep '^summary' "$work/cbr.out")"
# The full seconds within 20% of 8 Mbit/s too, but one: on a loaded machine
# a process descheduled for a few hundred ms moves messages into the next
# second (the summary above holds the whole stream to 20%).
awk '/^t=/ && $2 == "dt=1.00" { split($4, r, "="); if (r[2] < 6.4 || r[2] > 9.6) { print; bad++ } }
     END { exit bad > 1 }' "$work/cbr.out" >"$work/cbr.bad" || fail "seconds outside 6.4-9.6 Mbit/s: $(cat "$work/cbr.bad")"
grep -q 'subflows_mbps=1:[0-9.]*,2:' "$work/cbr.out" || fail "the reports do not show two subflows"
grep -q "127.0.0.2:[0-9]* *established" "$work/cbr.err" || fail "--stats: no line for the second path"
ok "8M x 1 KiB for 4 s: $(sed -n 's/^summary \(.*\)/\1/p' "$work/cbr.out" | cut -d' ' -f2-11)"

# ---- the scheduler shows in the subflows' shares ---------------------------------------
share() { # FILE: the two subflows' Mbit/s over the whole stream (the report lines, by dt)
    awk '/^t=/ && /subflows_mbps=1:[0-9.]*,2:/ {
            split($2, d, "="); s = $0; sub(/.*subflows_mbps=/, "", s); split(s, f, /[:,]/)
            a += f[2] * d[2]; b += f[4] * d[2]; t += d[2]
         }
         END { if (t > 0) printf "%.3f %.3f\n", a / t, b / t }' "$1"
}
sink rr
timeout 60 "$stream" --scheduler roundrobin -p 127.0.0.1 -p 127.0.0.2 127.0.0.1 "$port" \
    --rate 8M --duration 3 >"$work/rr-src.out" 2>"$work/rr-src.err" || fail "roundrobin source: exit $?"
wait "$snk" || fail "roundrobin sink: exit $?"
grep -q 'scheduler=roundrobin' "$work/rr.out" || fail "the sink does not name the roundrobin scheduler"
set -- $(share "$work/rr.out")
awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { exit !(a > 2 && b > 2) }' ||
    fail "roundrobin: subflow shares $* Mbit/s (both should carry about 4)"
rr="$1 + $2"
sink red
timeout 60 "$stream" --scheduler redundant -p 127.0.0.1 -p 127.0.0.2 127.0.0.1 "$port" \
    --rate 8M --duration 3 >"$work/red-src.out" 2>"$work/red-src.err" || fail "redundant source: exit $?"
wait "$snk" || fail "redundant sink: exit $?"
set -- $(share "$work/red.out")
awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { exit !(a > 6.4 && b > 6.4) }' ||
    fail "redundant: subflow shares $* Mbit/s (each should carry all 8)"
[ "$(field "$work/red.out" summary msgs)" = "$(field "$work/red-src.out" sent msgs)" ] ||
    fail "redundant: duplicates counted as messages"
ok "the scheduler shows: roundrobin splits ($rr Mbit/s), redundant sends it twice ($1 + $2 Mbit/s)"

# ---- --stdin ----------------------------------------------------------------------------
sink stdin
seq 1 200000 | timeout 60 "$stream" --stdin --size 4K 127.0.0.1 "$port" >"$work/stdin-src.out" \
    2>"$work/stdin-src.err" || fail "--stdin source: exit $?"
wait "$snk" || fail "--stdin sink: exit $?"
want=$(seq 1 200000 | wc -c)
n=$(field "$work/stdin-src.out" sent msgs)
bytes=$(field "$work/stdin.out" summary bytes)
[ "$(field "$work/stdin.out" summary state)" = complete ] && [ "$bytes" -eq $((want + 24 * n)) ] ||
    fail "--stdin: $bytes bytes in $n messages for $want bytes of input"
ok "--stdin: $want bytes in $n messages, every one delivered"

# ---- failures ------------------------------------------------------------------------------
closed=$port
timeout 20 "$stream" 127.0.0.1 "$closed" --duration 1 >/dev/null 2>"$work/refused.err"
rc=$?
[ $rc -eq 1 ] && grep -q "127.0.0.1:$closed: connect: MPT_ECONNREFUSED" "$work/refused.err" ||
    fail "refused source: exit $rc"
ok "a refused source -> exit 1: $(head -n 1 "$work/refused.err")"

# Not an mpt-stream source: mpt-cat sends text to the sink.
if [ -x ./examples/mpt-cat ]; then
    sink junk
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 ./examples/mpt-cat 127.0.0.1 "$port" >/dev/null 2>&1
    wait "$snk"
    rc=$?
    [ $rc -eq 1 ] && grep -q "not an mpt-stream source" "$work/junk.err" || fail "junk: sink exit $rc"
    ok "a source that is not mpt-stream -> the sink exits 1: $(grep -m1 'not an mpt-stream' "$work/junk.err")"
fi

# The source is killed mid-stream: the sink reports an incomplete stream.
sink cut
"$stream" 127.0.0.1 "$port" --rate 1M --duration 30 >/dev/null 2>&1 &
victim=$!
pids="$pids $victim"
sleep 1.5
kill -9 "$victim"
wait "$snk"
rc=$?
[ $rc -eq 1 ] && [ "$(field "$work/cut.out" summary state)" = incomplete ] || fail "cut stream: sink exit $rc"
ok "a source killed mid-stream -> the sink says incomplete and exits 1"

# SIGINT ends a source's stream early but cleanly: both exit 0.
sink int
"$stream" 127.0.0.1 "$port" --rate 1M --duration 0 >"$work/int-src.out" 2>"$work/int-src.err" &
src=$!
pids="$pids $src"
sleep 1.5
kill -INT "$src"
wait "$src" || fail "a source ended by SIGINT exited $?"
wait "$snk" || fail "the sink of a source ended by SIGINT exited $?"
[ "$(field "$work/int.out" summary msgs)" = "$(field "$work/int-src.out" sent msgs)" ] || fail "SIGINT: counts differ"
ok "SIGINT ends a source's stream cleanly: both exit 0, $(field "$work/int.out" summary msgs) messages"
exit 0
