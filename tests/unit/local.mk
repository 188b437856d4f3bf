# Check unit tests: one file per module, each its own program (Check forks per test).
if HAVE_CHECK
UNIT_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(BSD_CFLAGS)
UNIT_LDADD = libmpt/core/libmptcore.la $(CHECK_LIBS) $(CRYPTO_LIBS) $(BSD_LIBS)

check_PROGRAMS += tests/unit/test_error
tests_unit_test_error_SOURCES = tests/unit/test_error.c
tests_unit_test_error_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_error_LDADD = $(UNIT_LDADD)

TESTS += tests/unit/test_error

check_PROGRAMS += tests/unit/test_frame
tests_unit_test_frame_SOURCES = tests/unit/test_frame.c
tests_unit_test_frame_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_frame_LDADD = $(UNIT_LDADD)

TESTS += tests/unit/test_frame

check_PROGRAMS += tests/unit/test_crypto
tests_unit_test_crypto_SOURCES = tests/unit/test_crypto.c
tests_unit_test_crypto_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_crypto_LDADD = $(UNIT_LDADD)

TESTS += tests/unit/test_crypto

check_PROGRAMS += tests/unit/test_conn_basic
tests_unit_test_conn_basic_SOURCES = tests/unit/test_conn_basic.c
tests_unit_test_conn_basic_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_conn_basic_LDADD = $(UNIT_LDADD)

TESTS += tests/unit/test_conn_basic

check_PROGRAMS += tests/unit/test_rcvbuf tests/unit/test_sendbuf tests/unit/test_reorder
tests_unit_test_reorder_SOURCES = tests/unit/test_reorder.c
tests_unit_test_reorder_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_reorder_LDADD = $(UNIT_LDADD)
tests_unit_test_rcvbuf_SOURCES = tests/unit/test_rcvbuf.c
tests_unit_test_rcvbuf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_rcvbuf_LDADD = $(UNIT_LDADD)
tests_unit_test_sendbuf_SOURCES = tests/unit/test_sendbuf.c
tests_unit_test_sendbuf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sendbuf_LDADD = $(UNIT_LDADD)

TESTS += tests/unit/test_rcvbuf tests/unit/test_sendbuf tests/unit/test_reorder

check_PROGRAMS += tests/unit/test_conn_sched
tests_unit_test_conn_sched_SOURCES = tests/unit/test_conn_sched.c
tests_unit_test_conn_sched_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_conn_sched_LDADD = $(UNIT_LDADD)
TESTS += tests/unit/test_conn_sched

check_PROGRAMS += tests/unit/test_cc
tests_unit_test_cc_SOURCES = tests/unit/test_cc.c
tests_unit_test_cc_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cc_LDADD = $(UNIT_LDADD)
TESTS += tests/unit/test_cc

check_PROGRAMS += tests/unit/test_pm
tests_unit_test_pm_SOURCES = tests/unit/test_pm.c
tests_unit_test_pm_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_pm_LDADD = $(UNIT_LDADD)
TESTS += tests/unit/test_pm

check_PROGRAMS += tests/unit/test_conn_hostile
tests_unit_test_conn_hostile_SOURCES = tests/unit/test_conn_hostile.c tests/unit/rawpeer.h tests/unit/wirebuf.h
tests_unit_test_conn_hostile_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_conn_hostile_LDADD = $(UNIT_LDADD)
TESTS += tests/unit/test_conn_hostile
# end of engine tests (test_conn_*, test_rcvbuf, test_sendbuf)
endif

# The sans-I/O core must stay free of syscalls, clocks and libev.
dist_check_SCRIPTS += tests/check-layering.sh
TESTS += tests/check-layering.sh
dist_check_SCRIPTS += tests/check-alloc.sh
TESTS += tests/check-alloc.sh

# Every exported function has an installed man page and is listed in
# libmpt(3); doc/abi.md states the current -version-info.
dist_check_SCRIPTS += tests/check-docs.sh
TESTS += tests/check-docs.sh

# I/O layer integration tests on loopback (link the I/O layer statically:
# they use its test-only hooks).
if HAVE_CHECK
check_PROGRAMS += tests/unit/test_io_api tests/unit/test_io_transfer tests/unit/test_io_algo \
	tests/unit/test_io_events
tests_unit_test_io_events_SOURCES = tests/unit/test_io_events.c
tests_unit_test_io_events_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_events_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
tests_unit_test_io_algo_SOURCES = tests/unit/test_io_algo.c
tests_unit_test_io_algo_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_algo_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
tests_unit_test_io_api_SOURCES = tests/unit/test_io_api.c
tests_unit_test_io_api_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_api_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
tests_unit_test_io_transfer_SOURCES = tests/unit/test_io_transfer.c
tests_unit_test_io_transfer_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_transfer_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_io_api tests/unit/test_io_transfer tests/unit/test_io_algo \
	tests/unit/test_io_events

check_PROGRAMS += tests/unit/test_io_hostile
tests_unit_test_io_hostile_SOURCES = tests/unit/test_io_hostile.c tests/unit/rawpeer.h tests/unit/wirebuf.h
tests_unit_test_io_hostile_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_hostile_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_io_hostile

# Hostile peers over loopback beside a well-behaved connection (doc/security.md).
check_PROGRAMS += tests/unit/test_io_peers
tests_unit_test_io_peers_SOURCES = tests/unit/test_io_peers.c tests/unit/rawpeer.h tests/unit/wirebuf.h
tests_unit_test_io_peers_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_peers_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_io_peers

check_PROGRAMS += tests/unit/test_io_limits
tests_unit_test_io_limits_SOURCES = tests/unit/test_io_limits.c tests/unit/rawpeer.h tests/unit/wirebuf.h
tests_unit_test_io_limits_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_limits_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_io_limits

# Allocation failure, in the engine (simulator) and in the I/O layer.
check_PROGRAMS += tests/unit/test_alloc
tests_unit_test_alloc_SOURCES = tests/unit/test_alloc.c
tests_unit_test_alloc_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/sim
tests_unit_test_alloc_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_alloc_LDADD = tests/sim/libmptsim.la $(MPT_IO_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_alloc

check_PROGRAMS += tests/unit/test_io_relay
tests_unit_test_io_relay_SOURCES = tests/unit/test_io_relay.c
tests_unit_test_io_relay_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_relay_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS) -lpthread
TESTS += tests/unit/test_io_relay

# TLS over loopback; makes its certificates with OpenSSL at run time.
check_PROGRAMS += tests/unit/test_io_tls
tests_unit_test_io_tls_SOURCES = tests/unit/test_io_tls.c
tests_unit_test_io_tls_CFLAGS = $(UNIT_CFLAGS) -DMPT_TEST_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_io_tls_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_io_tls
EXTRA_DIST += tests/tls/make-certs.sh

check_PROGRAMS += tests/unit/test_io_config
tests_unit_test_io_config_SOURCES = tests/unit/test_io_config.c
tests_unit_test_io_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_config_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_io_config
# Needs root (network namespaces); exits 77 (skipped) otherwise.
check_PROGRAMS += tests/unit/test_io_netns
tests_unit_test_io_netns_SOURCES = tests/unit/test_io_netns.c
tests_unit_test_io_netns_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_io_netns_LDADD = $(MPT_IO_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_io_netns
endif

# Simulation tests: the engine driven through tests/sim/ (simulated paths).
if HAVE_CHECK
SIM_TEST_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tests/sim
SIM_TEST_LDADD = tests/sim/libmptsim.la $(UNIT_LDADD)

check_PROGRAMS += tests/unit/test_sim_transfer tests/unit/test_sim_property \
	tests/unit/test_sim_reinject tests/unit/test_sim_join tests/unit/test_sim_close \
	tests/unit/test_sim_model
tests_unit_test_sim_model_SOURCES = tests/unit/test_sim_model.c
tests_unit_test_sim_model_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_model_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_model_LDADD = $(SIM_TEST_LDADD)
tests_unit_test_sim_transfer_SOURCES = tests/unit/test_sim_transfer.c
tests_unit_test_sim_transfer_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_transfer_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_transfer_LDADD = $(SIM_TEST_LDADD)
tests_unit_test_sim_property_SOURCES = tests/unit/test_sim_property.c
tests_unit_test_sim_property_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_property_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_property_LDADD = $(SIM_TEST_LDADD)
tests_unit_test_sim_reinject_SOURCES = tests/unit/test_sim_reinject.c
tests_unit_test_sim_reinject_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_reinject_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_reinject_LDADD = $(SIM_TEST_LDADD)
tests_unit_test_sim_join_SOURCES = tests/unit/test_sim_join.c
tests_unit_test_sim_join_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_join_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_join_LDADD = $(SIM_TEST_LDADD)
tests_unit_test_sim_close_SOURCES = tests/unit/test_sim_close.c
tests_unit_test_sim_close_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_close_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_close_LDADD = $(SIM_TEST_LDADD)

TESTS += tests/unit/test_sim_model tests/unit/test_sim_transfer tests/unit/test_sim_property \
	tests/unit/test_sim_reinject tests/unit/test_sim_join tests/unit/test_sim_close

# The golden check: hashes of fixed simulator traces (engine behaviour unchanged).
check_PROGRAMS += tests/unit/test_sim_golden
tests_unit_test_sim_golden_SOURCES = tests/unit/test_sim_golden.c
tests_unit_test_sim_golden_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_golden_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_golden_LDADD = $(SIM_TEST_LDADD)
TESTS += tests/unit/test_sim_golden

check_PROGRAMS += tests/unit/test_sim_pm
tests_unit_test_sim_pm_SOURCES = tests/unit/test_sim_pm.c
tests_unit_test_sim_pm_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_pm_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_pm_LDADD = $(SIM_TEST_LDADD)
TESTS += tests/unit/test_sim_pm

check_PROGRAMS += tests/unit/test_sim_sched
tests_unit_test_sim_sched_SOURCES = tests/unit/test_sim_sched.c
tests_unit_test_sim_sched_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_sched_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_sched_LDADD = $(SIM_TEST_LDADD)
TESTS += tests/unit/test_sim_sched

check_PROGRAMS += tests/unit/test_sim_policy
tests_unit_test_sim_policy_SOURCES = tests/unit/test_sim_policy.c
tests_unit_test_sim_policy_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_policy_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_policy_LDADD = $(SIM_TEST_LDADD)
TESTS += tests/unit/test_sim_policy

check_PROGRAMS += tests/unit/test_sim_mode
tests_unit_test_sim_mode_SOURCES = tests/unit/test_sim_mode.c
tests_unit_test_sim_mode_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_mode_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_mode_LDADD = $(SIM_TEST_LDADD)
TESTS += tests/unit/test_sim_mode

check_PROGRAMS += tests/unit/test_sim_cc
tests_unit_test_sim_cc_SOURCES = tests/unit/test_sim_cc.c
tests_unit_test_sim_cc_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_cc_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_cc_LDADD = $(SIM_TEST_LDADD)
TESTS += tests/unit/test_sim_cc
endif
TESTS += tests/unit/test_sim_sched

check_PROGRAMS += tests/unit/test_sim_budget
tests_unit_test_sim_budget_SOURCES = tests/unit/test_sim_budget.c
tests_unit_test_sim_budget_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_budget_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_budget_LDADD = $(SIM_TEST_LDADD)
TESTS += tests/unit/test_sim_budget


check_PROGRAMS += tests/unit/test_sim_rwin
tests_unit_test_sim_rwin_SOURCES = tests/unit/test_sim_rwin.c
tests_unit_test_sim_rwin_CPPFLAGS = $(SIM_TEST_CPPFLAGS)
tests_unit_test_sim_rwin_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sim_rwin_LDADD = $(SIM_TEST_LDADD)
TESTS += tests/unit/test_sim_rwin
