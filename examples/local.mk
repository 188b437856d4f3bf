# Example programs: netcat and a bulk copy with throughput, over the
# installed library's API (linked statically against the convenience libs).
noinst_PROGRAMS += examples/mpt-cat examples/mpt-copy
examples_mpt_cat_SOURCES = examples/mpt-cat.c
examples_mpt_cat_LDADD = $(MPT_IO_LIBS)
examples_mpt_copy_SOURCES = examples/mpt-copy.c
examples_mpt_copy_LDADD = $(MPT_IO_LIBS)
noinst_PROGRAMS += examples/mpt-scale
examples_mpt_scale_SOURCES = examples/mpt-scale.c
examples_mpt_scale_LDADD = $(MPT_IO_LIBS)

# The tools' behaviour on loopback: delivery and honest exit statuses.
dist_check_SCRIPTS += tests/test-examples.sh
TESTS += tests/test-examples.sh
