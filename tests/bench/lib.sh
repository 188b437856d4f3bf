# Helpers for the benchmark scripts tests/bench/<name>.sh (sourced, not run).
# Every benchmark prints CSV lines `scenario,contender,metric,value,unit` on
# stdout and everything else on stderr.
#
# Environment:
#   MPT_BENCH_BUILD  build directory to use (default: build/default, configured
#                    like tests/bootstrap.sh does if it does not exist yet)
#   MPT_BENCH_JOBS   parallel make jobs (default: nproc)

bench_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bench_build=${MPT_BENCH_BUILD:-$bench_top/build/default}
case $bench_build in /*) ;; *) bench_build=$bench_top/$bench_build ;; esac
bench_jobs=${MPT_BENCH_JOBS:-$(nproc 2>/dev/null || echo 2)}

bench_log() { echo "bench: $*" >&2; }
bench_die() { echo "bench: error: $*" >&2; exit 1; }

# bench_configure: make sure $bench_build holds a configured tree.
bench_configure() {
    if [ ! -f "$bench_build/Makefile" ]; then
        bench_log "configuring $bench_build"
        if [ ! -x "$bench_top/configure" ]; then
            (cd "$bench_top" && ./autogen.sh) >&2 || bench_die "autogen.sh failed"
        fi
        mkdir -p "$bench_build"
        (cd "$bench_build" && "$bench_top/configure" --enable-werror) >&2 \
            || bench_die "configure failed (see $bench_build/config.log)"
    fi
}

# bench_make TARGET...: build the given make targets (paths relative to the
# build directory, e.g. tests/sim/mpt-simbench); output goes to stderr.
bench_make() {
    bench_configure
    make -C "$bench_build" -j"$bench_jobs" "$@" >&2 || bench_die "building $* failed"
}
