# Benchmark helpers. tests/bench/run is the entry point (see doc/benchmarks.md).
noinst_PROGRAMS += tests/bench/mpt-tcpbench
tests_bench_mpt_tcpbench_SOURCES = tests/bench/mpt-tcpbench.c
