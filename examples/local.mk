# The tools (installed in bin/ by `make install`, one fragment each) and
# their shared code. Linked statically against the convenience libraries.

# Shared argument, error and statistics code of the tools (tool.h).
noinst_LTLIBRARIES += examples/libmpttool.la
examples_libmpttool_la_SOURCES = examples/tool.c examples/tool.h

include $(top_srcdir)/examples/mpt-cat.mk
include $(top_srcdir)/examples/mpt-copy.mk
include $(top_srcdir)/examples/mpt-stream.mk
include $(top_srcdir)/examples/mpt-proxy.mk

# A load generator for the scale benchmark (not installed).
noinst_PROGRAMS += examples/mpt-scale
examples_mpt_scale_SOURCES = examples/mpt-scale.c
examples_mpt_scale_LDADD = $(MPT_IO_LIBS)

# The tools' behaviour on loopback: delivery and honest exit statuses.
dist_check_SCRIPTS += tests/test-examples.sh
TESTS += tests/test-examples.sh
