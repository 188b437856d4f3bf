#!/usr/bin/env bash
# The short soak for CI (tests/soak/soak.sh, doc/testing.md): 2 minutes of
# continuous transfer over two emulated paths failing at random, every byte
# verified, RSS sampled every 20 s. SOAK_SECONDS overrides the length.
# Exit 0 pass, 1 fail, 77 skip. Last line: "N passed, N failed".
here=$(cd "$(dirname "$0")" && pwd)
SOAK_SECONDS=${SOAK_SECONDS:-120} SOAK_SAMPLE_S=${SOAK_SAMPLE_S:-20} exec "$here/../soak/soak.sh"
