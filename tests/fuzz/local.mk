# libFuzzer targets (configure --enable-fuzz CC=clang). Seeds live in tests/fuzz/corpus/,
# one directory per target named after it without the fuzz_ prefix; tests/fuzz/run.sh
# runs every target (CI: tests/fuzz/run.sh build/fuzz 60).
if ENABLE_FUZZ
FUZZ_CFLAGS = $(AM_CFLAGS) $(BSD_CFLAGS)
FUZZ_LINK_FLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
FUZZ_LDADD = libmpt/core/libmptcore.la $(CRYPTO_LIBS) $(BSD_LIBS)

noinst_PROGRAMS += tests/fuzz/fuzz_frame
tests_fuzz_fuzz_frame_SOURCES = tests/fuzz/fuzz_frame.c
tests_fuzz_fuzz_frame_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_frame_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_frame_LDADD = $(FUZZ_LDADD)
endif
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/run.sh tests/fuzz/make-corpus.py
