#!/usr/bin/env bash
# streaming-heavy (issue 10): streaming.sh's paths and 1 KiB messages at
# 3,000 per second (24 Mbit/s: more than the 20 Mbit/s fast path carries, so
# some must cross the 100 ms path). Contenders tcp (fast path only: it
# cannot keep up, and shows it), libmpt-minrtt, -blest, -ecf. Target: blest
# and ecf beat minrtt on p99 latency.
export STREAM_SCENARIO=streaming-heavy STREAM_RATE=${STREAM_RATE:-3000} STREAM_TARGET=heavy
export BENCH_SCHEDS=${BENCH_SCHEDS-minrtt blest ecf}
export BENCH_CONTENDERS=${BENCH_CONTENDERS:-tcp libmpt-minrtt libmpt-blest libmpt-ecf}
exec bash "$(dirname "$0")/streaming.sh"
