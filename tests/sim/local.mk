# The network simulator (tests/sim/sim.h): a convenience library linked into the
# simulation tests (tests/unit/test_sim_*.c) and the simulation benchmarks
# (tests/sim/mpt-simbench, run through tests/bench/run sim-*).
noinst_LTLIBRARIES += tests/sim/libmptsim.la
tests_sim_libmptsim_la_SOURCES = tests/sim/sim.c tests/sim/sim.h

noinst_PROGRAMS += tests/sim/mpt-simbench
tests_sim_mpt_simbench_SOURCES = tests/sim/mpt-simbench.c
tests_sim_mpt_simbench_LDADD = tests/sim/libmptsim.la libmpt/core/libmptcore.la $(CRYPTO_LIBS) $(BSD_LIBS)

EXTRA_DIST += tests/bench/run tests/bench/lib.sh tests/bench/sim-aggregation.sh \
	tests/bench/sim-failover.sh tests/bench/sim-speed.sh
