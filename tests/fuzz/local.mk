# libFuzzer targets (configure --enable-fuzz CC=clang). Seeds live in tests/fuzz/corpus/,
# one directory per target named after it without the fuzz_ prefix; tests/fuzz/run.sh
# runs every target (CI: tests/fuzz/run.sh build/fuzz 60, split evenly). doc/testing.md
# says what each checks and how to run them for hours.
if ENABLE_FUZZ
FUZZ_CFLAGS = $(AM_CFLAGS) $(BSD_CFLAGS)
FUZZ_LINK_FLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
FUZZ_LDADD = libmpt/core/libmptcore.la $(CRYPTO_LIBS) $(BSD_LIBS)

noinst_PROGRAMS += tests/fuzz/fuzz_frame
tests_fuzz_fuzz_frame_SOURCES = tests/fuzz/fuzz_frame.c
tests_fuzz_fuzz_frame_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_frame_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_frame_LDADD = $(FUZZ_LDADD)

noinst_PROGRAMS += tests/fuzz/fuzz_pair
tests_fuzz_fuzz_pair_SOURCES = tests/fuzz/fuzz_pair.c tests/fuzz/input.h
tests_fuzz_fuzz_pair_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_pair_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_pair_LDADD = $(FUZZ_LDADD)

noinst_PROGRAMS += tests/fuzz/fuzz_reasm
tests_fuzz_fuzz_reasm_SOURCES = tests/fuzz/fuzz_reasm.c tests/fuzz/input.h
tests_fuzz_fuzz_reasm_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_reasm_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_reasm_LDADD = $(FUZZ_LDADD)

noinst_PROGRAMS += tests/fuzz/fuzz_engine
tests_fuzz_fuzz_engine_SOURCES = tests/fuzz/fuzz_engine.c tests/fuzz/input.h tests/fuzz/peer.h tests/unit/wirebuf.h
tests_fuzz_fuzz_engine_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_engine_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_engine_LDADD = $(FUZZ_LDADD)

noinst_PROGRAMS += tests/fuzz/fuzz_handshake
tests_fuzz_fuzz_handshake_SOURCES = tests/fuzz/fuzz_handshake.c tests/fuzz/input.h tests/fuzz/peer.h tests/unit/wirebuf.h
tests_fuzz_fuzz_handshake_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_handshake_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_handshake_LDADD = $(FUZZ_LDADD)
endif
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/run.sh tests/fuzz/make-corpus.py tests/fuzz/input.h \
	tests/fuzz/peer.h tests/unit/wirebuf.h
