#!/usr/bin/env bash
# aggregation-4 (issue 14): four paths of 10 Mbit/s at one-way delays 5, 10,
# 20 and 40 ms, 32 MiB per transfer (AGG4_MIB; BENCH_QUICK=1: 8), both
# directions. Target: libmpt >= 93% of 40 Mbit/s.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench_transfer_setup aggregation-4 AGG4_MIB 32 8 \
    --paths 4 --rate 10mbit,10mbit,10mbit,10mbit --delay 5,10,20,40
bench_transfer_all
bench_summarize
bench_goodput_target 37.2 "93% of 40"
bench_markdown
[ "$bench_failures" -eq 0 ]
