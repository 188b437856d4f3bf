#!/usr/bin/env bash
# highbdp (issue 14): a fast long path and a short one, 200 Mbit/s at 40 ms
# one way + 100 Mbit/s at 5 ms (the emulator handles about 800 Mbit/s),
# 128 MiB per transfer (HIGHBDP_MIB; BENCH_QUICK=1: 32), both directions.
# Metrics as aggregation plus rcv_mem_bound (libmpt's receive memory bound,
# rcvbuf * 9 / 8: the ring and its bitmap; mpt_info does not report the
# peak yet). Target: >= 90% of 300 Mbit/s. The receive
# window is the fixed rcvbuf (4 MiB: about 110 Mbit/s at an 80 ms RTT)
# until auto-tuning exists; HIGHBDP_RCVBUF sets it for libmpt.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
[ -n "${HIGHBDP_RCVBUF:-}" ] && BENCH_MPT_ARGS="${BENCH_MPT_ARGS:-} --rcvbuf $HIGHBDP_RCVBUF"
bench_transfer_setup highbdp HIGHBDP_MIB 128 32 --paths 2 --rate 200mbit,100mbit --delay 40,5

highbdp_mem() {
    case $2 in libmpt-*) bench_record "$1" rcv_mem_bound $(( ${HIGHBDP_RCVBUF:-4194304} * 9 / 8 )) bytes ;; esac
}
bench_transfer_all highbdp_mem
bench_summarize
bench_goodput_target 270 "90% of 300"
bench_markdown
[ "$bench_failures" -eq 0 ]
