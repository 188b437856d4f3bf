# libFuzzer targets (configure --enable-fuzz CC=clang). Seeds live in tests/fuzz/corpus/.
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/run.sh
