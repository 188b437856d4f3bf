# Public headers install under $(includedir)/mpt/.
mptincludedir = $(includedir)/mpt
mptinclude_HEADERS = \
	include/mpt/export.h \
	include/mpt/error.h \
	include/mpt/mpt.h
