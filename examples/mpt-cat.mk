# mpt-cat: netcat over libmpt.
noinst_PROGRAMS += examples/mpt-cat
examples_mpt_cat_SOURCES = examples/mpt-cat.c
examples_mpt_cat_LDADD = $(MPT_IO_LIBS)
