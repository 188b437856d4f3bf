# The sans-I/O core: protocol engine, codec, schedulers, congestion control.
# Built as a convenience library so tests can call its internals. It is
# compiled without libev's flags: the core never includes <ev.h>.
noinst_LTLIBRARIES += libmpt/core/libmptcore.la
libmpt_core_libmptcore_la_CPPFLAGS = $(AM_CPPFLAGS) -DMPT_BUILDING_LIBRARY $(BSD_CFLAGS)
libmpt_core_libmptcore_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden
libmpt_core_libmptcore_la_LIBADD = $(CRYPTO_LIBS) $(BSD_LIBS)
libmpt_core_libmptcore_la_SOURCES = \
	libmpt/core/error.c \
	libmpt/core/alloc.c libmpt/core/alloc.h \
	libmpt/core/frame.c libmpt/core/frame.h \
	libmpt/core/crypto.c libmpt/core/crypto.h \
	libmpt/core/conn.c libmpt/core/conn.h libmpt/core/conn_int.h libmpt/core/dsn.h \
	libmpt/core/handshake.c libmpt/core/outq.c libmpt/core/send.c libmpt/core/recv.c \
	libmpt/core/close.c libmpt/core/liveness.c libmpt/core/addr.c libmpt/core/evq.c \
	libmpt/core/ring.c libmpt/core/ring.h libmpt/core/bytering.h \
	libmpt/core/pm.c libmpt/core/pm.h \
	libmpt/core/sendbuf.c libmpt/core/sendbuf.h \
	libmpt/core/rcvbuf.c libmpt/core/rcvbuf.h \
	libmpt/core/reorder.c libmpt/core/reorder.h \
	libmpt/core/settings.c libmpt/core/autotune.c \
	libmpt/core/sched.c libmpt/core/sched.h \
	libmpt/core/sched_minrtt.c libmpt/core/sched_roundrobin.c libmpt/core/sched_redundant.c \
	libmpt/core/sched_blest.c libmpt/core/sched_ecf.c libmpt/core/sched_weighted.c \
	libmpt/core/sched_util.h \
	libmpt/core/cc.c libmpt/core/cc.h libmpt/core/cc_uncoupled.c libmpt/core/algo.c \
	libmpt/core/cc_lia.c libmpt/core/cc_olia.c libmpt/core/cc_balia.c libmpt/core/cc_util.h \
	libmpt/core/wire.h
