# The I/O layer (libev, kernel sockets) around the sans-I/O core. Built as a
# convenience library so that tests can reach internal test hooks; the
# installed library is the two convenience libraries plus the version.
noinst_LTLIBRARIES += libmpt/libmptio.la
libmpt_libmptio_la_CPPFLAGS = $(AM_CPPFLAGS) -DMPT_BUILDING_LIBRARY $(BSD_CFLAGS)
libmpt_libmptio_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden -pthread
libmpt_libmptio_la_SOURCES = \
	libmpt/abi.h \
	libmpt/ctx.h \
	libmpt/events.h \
	libmpt/listener.h \
	libmpt/paths.h \
	libmpt/sock.h \
	libmpt/subflow.h \
	libmpt/transport.h \
	libmpt/tls.h \
	libmpt/netlink.h \
	libmpt/random.h \
	libmpt/resolve.h \
	libmpt/util.h \
	libmpt/watch.h \
	libmpt/version.c \
	libmpt/ctx.c \
	libmpt/util.c \
	libmpt/watcher.c \
	libmpt/events.c \
	libmpt/timer.c \
	libmpt/sock.c \
	libmpt/subflow.c \
	libmpt/transport_plain.c \
	libmpt/transport_tls.c \
	libmpt/paths.c \
	libmpt/listener.c \
	libmpt/resolve.c \
	libmpt/netlink.c \
	libmpt/random.c \
	libmpt/blocking.c
libmpt_libmptio_la_LIBADD = $(EV_LIBS) $(TLS_LIBS) $(BSD_LIBS)

# The installed library: the core plus the I/O layer.
lib_LTLIBRARIES += libmpt/libmpt.la
libmpt_libmpt_la_CPPFLAGS = $(AM_CPPFLAGS) -DMPT_BUILDING_LIBRARY $(BSD_CFLAGS)
libmpt_libmpt_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libmpt_libmpt_la_SOURCES =
libmpt_libmpt_la_LIBADD = libmpt/libmptio.la libmpt/core/libmptcore.la $(EV_LIBS) $(TLS_LIBS) $(BSD_LIBS) -lpthread
libmpt_libmpt_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(MPT_LT_VERSION) -no-undefined

# What the tests and examples link to reach the I/O layer (static, with hooks).
MPT_IO_LIBS = libmpt/libmptio.la libmpt/core/libmptcore.la $(EV_LIBS) $(TLS_LIBS) $(BSD_LIBS) -lpthread

# Man pages: the overview and one page per family of functions (doc/man/).
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
# A page of its own for every other function (no .so links: every page
# renders with `man -l` from the source tree, tests/check-docs.sh).
man3_MANS += \
	doc/man/mpt_abort.3 \
	doc/man/mpt_accept.3 \
	doc/man/mpt_blocking_accept.3 \
	doc/man/mpt_blocking_close.3 \
	doc/man/mpt_blocking_recv.3 \
	doc/man/mpt_blocking_send_all.3 \
	doc/man/mpt_ctx_break.3 \
	doc/man/mpt_ctx_free.3 \
	doc/man/mpt_ctx_loop.3 \
	doc/man/mpt_ctx_process.3 \
	doc/man/mpt_ctx_run.3 \
	doc/man/mpt_ctx_timeout.3 \
	doc/man/mpt_err_name.3 \
	doc/man/mpt_get_subflows.3 \
	doc/man/mpt_get_subflows_sized.3 \
	doc/man/mpt_get_user.3 \
	doc/man/mpt_listener_close.3 \
	doc/man/mpt_listener_port.3 \
	doc/man/mpt_listener_set_advertised.3 \
	doc/man/mpt_recv.3 \
	doc/man/mpt_remove_path.3 \
	doc/man/mpt_set_backup.3 \
	doc/man/mpt_set_priority.3 \
	doc/man/mpt_set_path_budget.3 \
	doc/man/mpt_set_path_rate.3 \
	doc/man/mpt_set_scheduler.3 \
	doc/man/mpt_set_mode.3 \
	doc/man/mpt_send_msg.3 \
	doc/man/mpt_set_cc.3 \
	doc/man/mpt_set_callbacks_sized.3 \
	doc/man/mpt_connect_sized.3 \
	doc/man/mpt_accept_sized.3 \
	doc/man/mpt_ctx_next_event.3 \
	doc/man/mpt_ctx_wakeup.3 \
	doc/man/mpt_ctx_get_stats.3 \
	doc/man/mpt_set_trace_callback.3 \
	doc/man/mpt_shutdown.3 \
	doc/man/mpt_state_name.3 \
	doc/man/mpt_subflow_state_name.3 \
	doc/man/mpt_tls_config_check.3 \
	doc/man/mpt_get_tls_info.3 \
	doc/man/mpt_version.3

# Every section-3 page's EXAMPLE compiles against include/ and the built
# library, and runs over loopback (tests/check-man-examples.sh).
dist_check_SCRIPTS += tests/check-man-examples.sh
TESTS += tests/check-man-examples.sh
