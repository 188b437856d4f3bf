#!/usr/bin/env bash
# Valgrind memcheck over every unit-test program `make check` builds and a
# short run of every tool with both ends under memcheck (issue 15,
# doc/testing.md). Usage: tests/valgrind.sh [BUILD_DIR] (default
# build/default, already built with `make check TESTS=`). Each program runs
# under valgrind --error-exitcode with a full leak check (definite and
# indirect leaks are errors; "still reachable" is not); Check runs in one
# process (CK_FORK=no) so leaks of a test case are seen.
#   VALGRIND_JOBS     programs at once (default 2)
#   VALGRIND_TESTS    the unit tests to run (default: every tests/unit/test_*
#                     program built, and tests/test-proxy-parse)
#   VALGRIND_SKIP     unit tests left out (default: the eight of $slow, each
#                     too slow or timing-bound under memcheck, see
#                     doc/testing.md); VALGRIND_SKIP= runs them all (hours)
#   VALGRIND_TOOLS    0: no tool runs
#   VALGRIND_TIMEOUT  seconds per program (default 900)
# Exit 0 all clean, 1 an error or leak, 77 no
# valgrind. Last line: "N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/default}
case $build in /*) ;; *) build=$top/$build ;; esac
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed"; exit 77; }
tmo=${VALGRIND_TIMEOUT:-900}
jobs=${VALGRIND_JOBS:-2}
# Left out by default (doc/testing.md, "Valgrind"): the six heavy simulator
# suites (5 to 15+ minutes each under memcheck; the core code they drive is
# the same the other seven simulator suites and the engine tests run), and two
# suites whose assertions are about time or throughput on real sockets:
# test_io_tls (TLS handshakes under memcheck outlast the 2 s subflow timeout
# and its refusal-time checks; 9 minutes) and test_io_netns (64 MiB over veth
# within seconds; needs root). All eight run under ASan + UBSan with
# LeakSanitizer in tests/bootstrap.sh test.
slow="test_sim_budget test_sim_cc test_sim_property test_sim_transfer test_sim_reinject
  test_sim_sched test_io_tls test_io_netns"
skip=$(echo ${VALGRIND_SKIP-$slow}) # one line, single spaces
if [ -n "${VALGRIND_TESTS:-}" ]; then
    tests=$VALGRIND_TESTS
else
    tests=""
    for p in "$build"/tests/unit/test_* "$build"/tests/test-proxy-parse; do
        n=${p##*/}
        case $n in *.*) continue ;; esac
        [ -f "$p" ] && [ -x "$p" ] || continue
        case " $skip " in *" $n "*) continue ;; esac
        tests="$tests $n"
    done
fi
vg=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --track-fds=no --num-callers=30)
logdir=$(mktemp -d /tmp/mpt-valgrind.XXXXXX)
t_start=$SECONDS

# verdict NAME OK MESSAGE: records a result (one file per result: jobs run
# in subshells)
verdict() {
    if [ "$2" = 1 ]; then
        echo "PASS: valgrind $1 $3" | tee "$logdir/$1.pass"
    else
        { echo "FAIL: valgrind $1 $3"; tail -n 60 "$logdir/$1".*vg "$logdir/$1".*out 2>/dev/null; } |
            tee "$logdir/$1.fail"
    fi
}

# unit NAME: one unit-test program under memcheck
unit() {
    local name=$1 rc=0 t0=$SECONDS path=$build/tests/unit/$1
    [ "$name" = test-proxy-parse ] && path=$build/tests/$1
    if [ ! -x "$path" ]; then
        verdict "$name" 0 "(not built: $path)"
        return
    fi
    CK_FORK=no timeout -k 5 "$tmo" "${vg[@]}" \
        --log-file="$logdir/$name.vg" "$path" >"$logdir/$name.out" 2>&1 || rc=$?
    if [ $rc -eq 0 ] && [ ! -s "$logdir/$name.vg" ]; then
        verdict "$name" 1 "($((SECONDS - t0)) s)"
    else
        verdict "$name" 0 "(exit $rc, $((SECONDS - t0)) s)"
    fi
}

# Longest first (measured under memcheck), so two jobs finish together.
order="test_sim_property test_sim_budget test_sim_cc test_sim_transfer test_sim_reinject
  test_sim_sched test_io_tls test_io_transfer test_conn_hostile test_sim_close test_frame
  test_alloc test_io_peers test_io_config test_rcvbuf test_io_api"
sorted=""
for t in $order; do case " $tests " in *" $t "*) sorted="$sorted $t" ;; esac; done
for t in $tests; do case " $sorted " in *" $t "*) ;; *) sorted="$sorted $t" ;; esac; done

running=0
for t in $sorted; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    unit "$t" &
    running=$((running + 1))
done

# ---- the tools: both ends under memcheck, on loopback ------------------------------
lt=$build/libtool
vgx() { # vgx LOG CMD...: a tool under memcheck (through libtool, for a shared build)
    local log=$1
    shift
    timeout -k 5 "$tmo" "$lt" --mode=execute "${vg[@]}" --log-file="$log" "$@"
}
# vgexec LOG CMD...: the same, replacing the shell (run it as `(vgexec ...) &`: $! is
# then the tool itself, to signal; libtool execs the program)
vgexec() {
    local log=$1
    shift
    exec "$lt" --mode=execute "${vg[@]}" --log-file="$log" "$@"
}
# stop PID: SIGTERM, then SIGKILL if it is still there after 60 s; returns its status
stop() {
    local i
    kill -TERM "$1" 2>/dev/null
    for i in $(seq 1 600); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    wait "$1"
}
# port_of FILE: the port of the first "listening on ADDR:PORT" line, waiting for it
port_of() {
    local p=""
    for _ in $(seq 1 600); do
        p=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
    done
    return 1
}
clean() { # clean NAME: both ends' memcheck logs empty
    local f
    for f in "$logdir/$1".*vg; do [ -s "$f" ] && return 1; done
    return 0
}

tool_copy() { # mpt-copy: 3 MB over two paths
    local copy=$build/examples/mpt-copy rx rx_rc=0 tx_rc=0 t0=$SECONDS port
    head -c 3000000 /dev/urandom >"$logdir/copy.in"
    mkdir -p "$logdir/copy.dest"
    vgx "$logdir/mpt-copy.rx.vg" "$copy" -l 127.0.0.1 0 -o "$logdir/copy.dest" \
        >"$logdir/mpt-copy.rx.out" 2>"$logdir/mpt-copy.rx.err" &
    rx=$!
    if port=$(port_of "$logdir/mpt-copy.rx.err"); then
        vgx "$logdir/mpt-copy.tx.vg" "$copy" --path 127.0.0.1 --path 127.0.0.2 127.0.0.1 "$port" \
            "$logdir/copy.in" >"$logdir/mpt-copy.tx.out" 2>"$logdir/mpt-copy.tx.err" || tx_rc=$?
    else
        tx_rc=1; kill "$rx" 2>/dev/null
    fi
    wait "$rx" || rx_rc=$?
    if [ $rx_rc -eq 0 ] && [ $tx_rc -eq 0 ] && cmp -s "$logdir/copy.in" "$logdir/copy.dest/copy.in" &&
        clean mpt-copy; then
        verdict mpt-copy 1 "(3 MB over 2 paths, both ends, $((SECONDS - t0)) s)"
    else
        verdict mpt-copy 0 "(receiver exit $rx_rc, sender exit $tx_rc)"
    fi
}

tool_cat() { # mpt-cat: 1 MB each way at once over two paths, both ends end
    local cat=$build/examples/mpt-cat srv srv_rc=0 cli_rc=0 t0=$SECONDS port
    head -c 1000000 /dev/urandom >"$logdir/cat.up"
    head -c 1000000 /dev/urandom >"$logdir/cat.down"
    vgx "$logdir/mpt-cat.srv.vg" "$cat" -v -l 127.0.0.1 0 <"$logdir/cat.down" \
        >"$logdir/cat.got-up" 2>"$logdir/mpt-cat.srv.err" &
    srv=$!
    if port=$(port_of "$logdir/mpt-cat.srv.err"); then
        vgx "$logdir/mpt-cat.cli.vg" "$cat" -p 127.0.0.1 -p 127.0.0.2 127.0.0.1 "$port" \
            <"$logdir/cat.up" >"$logdir/cat.got-down" 2>"$logdir/mpt-cat.cli.err" || cli_rc=$?
    else
        cli_rc=1; kill "$srv" 2>/dev/null
    fi
    wait "$srv" || srv_rc=$?
    if [ $srv_rc -eq 0 ] && [ $cli_rc -eq 0 ] && cmp -s "$logdir/cat.up" "$logdir/cat.got-up" &&
        cmp -s "$logdir/cat.down" "$logdir/cat.got-down" && clean mpt-cat; then
        verdict mpt-cat 1 "(1 MB each way at once over 2 paths, both ends, $((SECONDS - t0)) s)"
    else
        verdict mpt-cat 0 "(server exit $srv_rc, client exit $cli_rc)"
    fi
}

tool_stream() { # mpt-stream: a 2 s source at 2 Mbit/s over two paths into a sink
    local st=$build/examples/mpt-stream snk snk_rc=0 src_rc=0 t0=$SECONDS port
    vgx "$logdir/mpt-stream.snk.vg" "$st" -v -l 127.0.0.1 0 \
        >"$logdir/mpt-stream.snk.out" 2>"$logdir/mpt-stream.snk.err" &
    snk=$!
    if port=$(port_of "$logdir/mpt-stream.snk.err"); then
        vgx "$logdir/mpt-stream.src.vg" "$st" -p 127.0.0.1 -p 127.0.0.2 127.0.0.1 "$port" \
            --rate 2M --size 1024 --duration 2 \
            >"$logdir/mpt-stream.src.out" 2>"$logdir/mpt-stream.src.err" || src_rc=$?
    else
        src_rc=1; kill "$snk" 2>/dev/null
    fi
    wait "$snk" || snk_rc=$?
    if [ $snk_rc -eq 0 ] && [ $src_rc -eq 0 ] && grep -q '^stream at ' "$logdir/mpt-stream.snk.out" &&
        clean mpt-stream; then
        verdict mpt-stream 1 "(2 s at 2 Mbit/s over 2 paths, source and sink, $((SECONDS - t0)) s)"
    else
        verdict mpt-stream 0 "(sink exit $snk_rc, source exit $src_rc)"
    fi
}

tool_proxy() { # mpt-proxy: server and client; 1 MB from a TCP target through the port forward
    local px=$build/examples/mpt-proxy spid cpid tpid s_rc=0 c_rc=0 t0=$SECONDS sport fport tport
    command -v python3 >/dev/null || { echo "SKIP: valgrind mpt-proxy (the target needs python3)"; return; }
    head -c 1000000 /dev/urandom >"$logdir/proxy.data"
    # the target: a TCP server that sends the file to each client, then closes
    python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
data = open(sys.argv[1], "rb").read()
while True:
    c, _ = s.accept(); c.sendall(data); c.close()
' "$logdir/proxy.data" "$logdir/proxy.tport" &
    tpid=$!
    for _ in $(seq 1 100); do [ -s "$logdir/proxy.tport" ] && break; sleep 0.1; done
    tport=$(cat "$logdir/proxy.tport" 2>/dev/null)
    (vgexec "$logdir/mpt-proxy.srv.vg" "$px" server -v --listen 127.0.0.1:0 \
        --forward "127.0.0.1:$tport" 2>"$logdir/mpt-proxy.srv.err") &
    spid=$!
    if sport=$(port_of "$logdir/mpt-proxy.srv.err"); then
        (vgexec "$logdir/mpt-proxy.cli.vg" "$px" client -v --path 127.0.0.1 --path 127.0.0.2 \
            --to "127.0.0.1:$sport" --listen 127.0.0.1:0 2>"$logdir/mpt-proxy.cli.err") &
        cpid=$!
        if fport=$(port_of "$logdir/mpt-proxy.cli.err"); then
            timeout 300 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && cat <&3 >"$2"' _ "$fport" \
                "$logdir/proxy.got" || true
        fi
        stop "$cpid" || c_rc=$?
    else
        c_rc=1
    fi
    stop "$spid" || s_rc=$?
    kill "$tpid" 2>/dev/null
    wait "$tpid" 2>/dev/null
    if [ $s_rc -eq 0 ] && [ $c_rc -eq 0 ] && cmp -s "$logdir/proxy.data" "$logdir/proxy.got" &&
        clean mpt-proxy; then
        verdict mpt-proxy 1 "(1 MB through the port forward over 2 paths, client and server, $((SECONDS - t0)) s)"
    else
        verdict mpt-proxy 0 "(server exit $s_rc, client exit $c_rc)"
    fi
}

if [ "${VALGRIND_TOOLS:-1}" != 0 ]; then
    for tool in copy cat stream proxy; do
        [ -x "$build/examples/mpt-$tool" ] || { echo "SKIP: mpt-$tool not built"; continue; }
        if [ "$running" -ge "$jobs" ]; then
            wait -n
            running=$((running - 1))
        fi
        "tool_$tool" &
        running=$((running + 1))
    done
fi
wait

passed=$(ls "$logdir" | grep -c '\.pass$')
failed=$(ls "$logdir" | grep -c '\.fail$')
echo "valgrind: $((SECONDS - t_start)) s with $jobs jobs"
[ "$failed" -eq 0 ] && rm -rf "$logdir" || echo "logs kept in $logdir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
