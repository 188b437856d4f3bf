nobase_include_HEADERS += \
	include/mpt/export.h \
	include/mpt/error.h \
	include/mpt/mpt.h
