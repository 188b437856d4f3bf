#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (run as root):
#   tests/bootstrap.sh demo   install dependencies, build, run the demo
#   tests/bootstrap.sh test   install dependencies, build, run every test
# Builds happen out of tree under build/ so several configurations coexist.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
mode=${1:-test}
jobs=$(nproc 2>/dev/null || echo 2)

packages=(build-essential autoconf automake libtool pkg-config
          libev-dev libmbedtls-dev check libbsd-dev
          clang libclang-rt-14-dev python3 python3-pip python3-venv iproute2 nftables ethtool
          gnuplot-nox curl iperf3 man-db groff-base haproxy openssl valgrind)

install_deps() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bootstrap: installing ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then
            echo "bootstrap: need root to install packages (run as root or install: ${missing[*]})" >&2
            exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# build DIR [configure args...]: configure (once) and build in build/DIR.
build() {
    local dir=build/$1; shift
    [ -x configure ] || ./autogen.sh >/dev/null
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ]; then
        (cd "$dir" && "$top/configure" --enable-werror "$@" >/dev/null)
    fi
    make -C "$dir" -j"$jobs" >/dev/null
}

passed=0 failed=0 skipped=0
count() { # count NAME STATUS: one result for the closing tally
    case $2 in
    0) passed=$((passed + 1)); echo "PASS: $1" ;;
    77) skipped=$((skipped + 1)); echo "SKIP: $1" ;;
    *) failed=$((failed + 1)); echo "FAIL: $1" ;;
    esac
}

# Each stage has a time limit so that one hung test shows up as a failure
# that names it, never as CI running into its own hard limit in silence
# (each test also has its own limit: MPT_TEST_TIMEOUT in Makefile.am).
stage_limit=${MPT_STAGE_TIMEOUT:-1800}
bounded() { # bounded NAME CMD...: run CMD under the stage limit
    local name=$1 rc=0; shift
    timeout -k 30 "$stage_limit" "$@" || rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "bootstrap: stage '$name' did not finish within $stage_limit s (killed)" >&2
    fi
    return $rc
}

run_unit() {
    local dir=build/$1 rc=0 n
    bounded "make check in $dir" make -C "$dir" -j"$jobs" check >"$dir/check.out" 2>&1 || rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        # The tests still running when the stage was killed: a log, no result.
        for log in $(find "$dir" -name '*.log' ! -name 'test-suite.log' ! -name 'config.log'); do
            [ -f "${log%.log}.trs" ] || { echo "FAIL: ${log#"$dir"/} (still running when the stage was killed)"; tail -n 20 "$log"; failed=$((failed + 1)); }
        done
    fi
    grep -E '^(PASS|FAIL|SKIP|ERROR|XPASS|XFAIL):' "$dir/check.out" || true
    n=$(sed -n 's/^# PASS: *//p' "$dir/check.out"); passed=$((passed + ${n:-0}))
    n=$(sed -n 's/^# SKIP: *//p' "$dir/check.out"); skipped=$((skipped + ${n:-0}))
    n=$(sed -n 's/^# FAIL: *//p' "$dir/check.out"); failed=$((failed + ${n:-0}))
    n=$(sed -n 's/^# ERROR: *//p' "$dir/check.out"); failed=$((failed + ${n:-0}))
    if [ $rc -ne 0 ]; then
        # Show why: the failing tests' own logs (Check prints each failed assertion).
        grep -l -E '^(FAIL|ERROR)' $(find "$dir/tests" -name '*.trs') 2>/dev/null \
            | sed 's/\.trs$/.log/' | xargs -r tail -n 40
        grep -q '^# TOTAL' "$dir/check.out" || { tail -40 "$dir/check.out"; failed=$((failed + 1)); }
        return 1
    fi
}

case "$mode" in
demo)
    install_deps
    build default --enable-python
    exec tests/demo.sh build/default
    ;;
test)
    install_deps
    echo "== build and unit tests (-O2 -g) =="
    build default --enable-python
    run_unit default || true
    echo "== unit tests again under ASan + UBSan =="
    build asan --enable-asan --enable-ubsan --disable-shared
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_unit asan || true
    # The unit tests (all but eight too slow or timing-bound ones, see
    # doc/testing.md) and each tool, both ends, under memcheck, with
    # build/default's binaries (run_unit built them), two at a time: minutes.
    echo "== unit tests and the tools under Valgrind memcheck (tests/valgrind.sh) =="
    rc=0; bounded valgrind tests/valgrind.sh build/default || rc=$?; count valgrind $rc
    if [ -x tests/fuzz/run.sh ]; then
        echo "== fuzzing the codec, engine, handshake, reassembly and pair (60 s in all) =="
        build fuzz --enable-fuzz --disable-shared CC=clang
        rc=0; bounded fuzz tests/fuzz/run.sh build/fuzz 60 || rc=$?; count fuzz $rc
    fi
    if [ -x tests/net/run-all.sh ]; then
        echo "== network namespace tests =="
        rc=0; bounded netns tests/net/run-all.sh || rc=$?; count netns $rc
    fi
    # The demo exactly as README's first command runs it (namespaces and the
    # outage as root, loopback otherwise): about 45 s; fails unless the copy
    # is byte-exact.
    echo "== the demo (tests/demo.sh) =="
    rc=0; bounded demo tests/demo.sh build/default >build/default/demo.out 2>&1 || rc=$?
    grep '^==' build/default/demo.out || true
    [ $rc -eq 0 ] || tail -40 build/default/demo.out
    count demo $rc
    echo "== make distcheck =="
    rc=0; bounded distcheck make -C build/default distcheck >build/default/distcheck.out 2>&1 || rc=$?
    [ $rc -eq 0 ] || tail -40 build/default/distcheck.out
    count distcheck $rc
    echo "tests: $passed passed, $failed failed, $skipped skipped"
    [ $failed -eq 0 ]
    ;;
*)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
