# The installed library: the core plus the I/O layer.
lib_LTLIBRARIES += libmpt/libmpt.la
libmpt_libmpt_la_CPPFLAGS = $(AM_CPPFLAGS) -DMPT_BUILDING_LIBRARY $(BSD_CFLAGS)
libmpt_libmpt_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libmpt_libmpt_la_SOURCES = libmpt/version.c
libmpt_libmpt_la_LIBADD = libmpt/core/libmptcore.la $(EV_LIBS) $(TLS_LIBS) $(BSD_LIBS)
libmpt_libmpt_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(MPT_LT_VERSION) -no-undefined
