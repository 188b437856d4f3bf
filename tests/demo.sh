#!/usr/bin/env bash
# The main job: shows libmpt working. Argument: the build directory.
set -euo pipefail
b=${1:-build/default}
echo "libmpt $(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' "$b/config.h"): built in $b"
echo "(the demo grows as the engine and I/O layer land; for now it runs the unit tests)"
make -C "$b" check >/dev/null 2>&1 && echo "self-check passed" || { echo "self-check FAILED"; exit 1; }
