# mpt-cat: netcat over libmpt.
bin_PROGRAMS += examples/mpt-cat
examples_mpt_cat_SOURCES = examples/mpt-cat.c
examples_mpt_cat_LDADD = examples/libmpttool.la $(MPT_IO_LIBS)
man1_MANS += doc/man/mpt-cat.1

# Byte-exact both ways over two loopback paths, half-close, -k, a second
# client refused, exit statuses, arguments, --help against the man page.
dist_check_SCRIPTS += tests/test-cat.sh
TESTS += tests/test-cat.sh

# TLS: a man in the middle with another CA's certificate is refused; in
# --tls-insecure mode the joins it relays are refused (channel binding).
dist_check_SCRIPTS += tests/test-tls-mitm.sh
TESTS += tests/test-tls-mitm.sh
EXTRA_DIST += tests/tls/mitm.py tests/tls/observer.py tests/tls/relaylib.py
