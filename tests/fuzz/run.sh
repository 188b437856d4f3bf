#!/usr/bin/env bash
# Runs every libFuzzer target built in BUILD_DIR (configure --enable-fuzz CC=clang)
# for SECONDS in total, split evenly, each on a scratch copy of its seed corpus
# tests/fuzz/corpus/NAME (NAME = the target without its fuzz_ prefix), so the
# source tree is never written. Exits non-zero if any target finds a crash,
# leak, timeout or abort; the reproducer is kept in BUILD_DIR/tests/fuzz/artifacts/.
#   usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]     (CI: tests/fuzz/run.sh build/fuzz 60)
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 BUILD_DIR [SECONDS]" >&2
    exit 2
fi
build=$1
total=${2:-60}
src=$(cd "$(dirname "$0")" && pwd)

targets=()
for t in "$build"/tests/fuzz/fuzz_*; do
    [ -f "$t" ] && [ -x "$t" ] && targets+=("$t")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz: no targets in $build/tests/fuzz (configure --enable-fuzz CC=clang, then make)" >&2
    exit 1
fi
per=$((total / ${#targets[@]}))
[ "$per" -ge 1 ] || per=1

work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=$build/tests/fuzz/artifacts
mkdir -p "$artifacts"

status=0
for t in "${targets[@]}"; do
    name=${t##*/fuzz_}
    corpus=$work/$name
    mkdir -p "$corpus"
    if [ -d "$src/corpus/$name" ]; then
        cp -R "$src/corpus/$name/." "$corpus/"
    else
        echo "fuzz: warning: no seed corpus $src/corpus/$name" >&2
    fi
    log=$build/tests/fuzz/fuzz_$name.log
    echo "fuzz: $name for ${per}s ($(ls "$corpus" | wc -l) seeds), log in $log"
    rc=0
    "$t" -max_total_time="$per" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$name-" "$corpus" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*\(cov: [0-9]*\).*/\1/p')
    if [ $rc -ne 0 ]; then
        echo "fuzz: $name FAILED (exit $rc) after ${execs:-?} executions:"
        tail -n 60 "$log"
        status=1
    else
        echo "fuzz: $name ok: ${execs:-?} executions, ${cov:-cov: ?}, corpus grew to $(ls "$corpus" | wc -l)"
    fi
done
exit $status
