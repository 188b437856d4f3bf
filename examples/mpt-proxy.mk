# mpt-proxy: ordinary TCP connections (port forward, SOCKS5) carried over libmpt.
bin_PROGRAMS += examples/mpt-proxy
examples_mpt_proxy_SOURCES = examples/mpt-proxy.c \
	examples/proxy-relay.c examples/proxy-relay.h \
	examples/proxy-socks5.c examples/proxy-socks5.h \
	examples/proxy-target.c examples/proxy-target.h
examples_mpt_proxy_LDADD = examples/libmpttool.la $(MPT_IO_LIBS)
man1_MANS += doc/man/mpt-proxy.1

# Loopback: curl through both modes over two paths, SOCKS5 refusals, usage;
# namespaces (root): iperf3 over emulated 20 + 10 Mbit/s paths.
dist_check_SCRIPTS += tests/test-proxy.sh tests/test-proxy-iperf3.sh
EXTRA_DIST += tests/proxy-helper.py
TESTS += tests/test-proxy.sh tests/test-proxy-iperf3.sh

# The header, SOCKS5 and --allow parsers on their own.
check_PROGRAMS += tests/test-proxy-parse
tests_test_proxy_parse_SOURCES = tests/test-proxy-parse.c examples/proxy-socks5.c \
	examples/proxy-target.c
tests_test_proxy_parse_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/examples
TESTS += tests/test-proxy-parse
