# mpt-copy: files and directory trees over libmpt, verified by SHA-256, with
# resume and live per-path progress.
bin_PROGRAMS += examples/mpt-copy
examples_mpt_copy_SOURCES = examples/mpt-copy.c
examples_mpt_copy_LDADD = examples/libmpttool.la $(MPT_IO_LIBS)
man1_MANS += doc/man/mpt-copy.1

# Loopback over two paths: byte-exact trees, resume, refusals, errors, exit
# statuses, --help against the man page.
dist_check_SCRIPTS += tests/test-copy.sh
EXTRA_DIST += tests/copy-evil.py
TESTS += tests/test-copy.sh
