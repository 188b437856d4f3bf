# Both ends of the load-balancer test (tests/net/test-haproxy.sh): built by
# `make`, run as root in a namespace of its own by tests/net/run-all.sh.
noinst_PROGRAMS += tests/lb/mpt-lbtest
tests_lb_mpt_lbtest_SOURCES = tests/lb/mpt-lbtest.c
tests_lb_mpt_lbtest_LDADD = $(MPT_IO_LIBS)
EXTRA_DIST += examples/haproxy/mpt-haproxy.cfg examples/haproxy/mpt-servers.map
