# mpt-copy: file and directory copy over libmpt.
noinst_PROGRAMS += examples/mpt-copy
examples_mpt_copy_SOURCES = examples/mpt-copy.c
examples_mpt_copy_LDADD = $(MPT_IO_LIBS)
