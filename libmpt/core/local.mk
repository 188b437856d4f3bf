# The sans-I/O core: protocol engine, codec, schedulers, congestion control.
# Built as a convenience library so tests can call its internals. It is
# compiled without libev's flags: the core never includes <ev.h>.
noinst_LTLIBRARIES += libmpt/core/libmptcore.la
libmpt_core_libmptcore_la_CPPFLAGS = $(AM_CPPFLAGS) -DMPT_BUILDING_LIBRARY $(BSD_CFLAGS)
libmpt_core_libmptcore_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libmpt_core_libmptcore_la_LIBADD = $(CRYPTO_LIBS) $(BSD_LIBS)
libmpt_core_libmptcore_la_SOURCES = \
	libmpt/core/error.c \
	libmpt/core/frame.c libmpt/core/frame.h \
	libmpt/core/crypto.c libmpt/core/crypto.h \
	libmpt/core/wire.h
