# Benchmark contenders. tests/bench/run is the entry point (see doc/benchmarks.md).
noinst_PROGRAMS += tests/bench/mpt-tcpbench tests/bench/mpt-bench
tests_bench_mpt_tcpbench_SOURCES = tests/bench/mpt-tcpbench.c tests/bench/bench-common.c \
	tests/bench/bench-common.h
tests_bench_mpt_bench_SOURCES = tests/bench/mpt-bench.c tests/bench/bench-common.c \
	tests/bench/bench-common.h
tests_bench_mpt_tcpbench_LDADD = $(TLS_LIBS)
tests_bench_mpt_bench_LDADD = $(MPT_IO_LIBS)
EXTRA_DIST += tests/bench/loopback.sh tests/bench/aggregation.sh tests/bench/heterogeneous.sh \
	tests/bench/failover.sh tests/bench/handover.sh tests/bench/fairness.sh \
	tests/bench/streaming.sh tests/bench/scale.sh tests/bench/streaming-heavy.sh \
	tests/bench/redundant.sh tests/bench/fairness-separate.sh tests/bench/loopback-tls.sh \
	tests/bench/aggregation-grid.sh tests/bench/aggregation-4.sh tests/bench/highbdp.sh \
	tests/bench/python-loopback.sh tests/bench/mpt-bench.py tests/bench/metered.sh
