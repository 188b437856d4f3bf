#!/usr/bin/env bash
# redundant (issue 10): two equal paths (20 Mbit/s, 20 ms RTT) with 1%
# random loss each way on each, 1 KiB messages at 1,000 per second. A lost
# segment costs a single TCP path at least one retransmission timeout or
# fast-retransmit round trip; with every message on both paths the receiver
# takes the first copy. Contenders tcp (the best single path),
# libmpt-minrtt, libmpt-redundant. Target: redundant's p99 at least 30%
# below tcp's.
export STREAM_SCENARIO=redundant STREAM_TARGET=lossy
export STREAM_TOPO=${STREAM_TOPO:---paths 2 --rate 20mbit,20mbit --delay 10,10 --loss 1,1}
export BENCH_SCHEDS=${BENCH_SCHEDS-minrtt redundant}
export BENCH_CONTENDERS=${BENCH_CONTENDERS:-tcp libmpt-minrtt libmpt-redundant}
exec bash "$(dirname "$0")/streaming.sh"
