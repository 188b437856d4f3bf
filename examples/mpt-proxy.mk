# mpt-proxy: ordinary TCP connections (port forward, SOCKS5) carried over libmpt.
bin_PROGRAMS += examples/mpt-proxy
examples_mpt_proxy_SOURCES = examples/mpt-proxy.c \
	examples/proxy-relay.c examples/proxy-relay.h \
	examples/proxy-socks5.c examples/proxy-socks5.h \
	examples/proxy-target.c examples/proxy-target.h
examples_mpt_proxy_LDADD = examples/libmpttool.la $(MPT_IO_LIBS)
man1_MANS += doc/man/mpt-proxy.1
