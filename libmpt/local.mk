# The installed library: the core plus the I/O layer.
lib_LTLIBRARIES += libmpt/libmpt.la
libmpt_libmpt_la_CPPFLAGS = $(AM_CPPFLAGS) -DMPT_BUILDING_LIBRARY $(BSD_CFLAGS)
libmpt_libmpt_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libmpt_libmpt_la_SOURCES = libmpt/version.c
libmpt_libmpt_la_LIBADD = libmpt/core/libmptcore.la $(EV_LIBS) $(TLS_LIBS) $(BSD_LIBS)
libmpt_libmpt_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(MPT_LT_VERSION) -no-undefined
# Man pages: one per public function or small family (doc/man/).
man3_MANS += \
	doc/man/libmpt.3 \
	doc/man/mpt_config_default.3 \
	doc/man/mpt_ctx_new.3 \
	doc/man/mpt_ctx_fd.3 \
	doc/man/mpt_connect.3 \
	doc/man/mpt_listen.3 \
	doc/man/mpt_send.3 \
	doc/man/mpt_close.3 \
	doc/man/mpt_set_callbacks.3 \
	doc/man/mpt_add_path.3 \
	doc/man/mpt_get_info.3 \
	doc/man/mpt_set_trace_file.3 \
	doc/man/mpt_blocking_connect.3 \
	doc/man/mpt_strerror.3
