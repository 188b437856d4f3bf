# mpt-stream: timestamped message streams and their one-way latency.
bin_PROGRAMS += examples/mpt-stream
examples_mpt_stream_SOURCES = examples/mpt-stream.c
examples_mpt_stream_LDADD = examples/libmpttool.la $(MPT_IO_LIBS) -lm
man1_MANS += doc/man/mpt-stream.1

# The sink's report over two loopback paths: present, p50 <= p99 <= max, the
# configured rate within 20%, message counts that agree; arguments, --help.
dist_check_SCRIPTS += tests/test-stream.sh
TESTS += tests/test-stream.sh
