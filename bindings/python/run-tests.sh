#!/bin/sh
# Runs the Python bindings' unittest suites against the libmpt built in this
# build tree. Called by `make check` (from the build directory, with $srcdir
# set by automake) when configured with --enable-python; by hand:
#   cd build/default && srcdir=../.. ../../bindings/python/run-tests.sh [MODULE...]
srcdir=$(cd "${srcdir:-.}" && pwd) || exit 99
lib=$PWD/libmpt/.libs/libmpt.so
if [ ! -f "$lib" ]; then
    echo "run-tests.sh: $lib not found (no shared library built; skipping)" >&2
    exit 77
fi
MPT_LIBRARY=$lib
MPT_BUILD_DIR=$PWD
MPT_SRCDIR=$srcdir
PYTHONPATH=$srcdir/bindings/python${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1
export MPT_LIBRARY MPT_BUILD_DIR MPT_SRCDIR PYTHONPATH PYTHONDONTWRITEBYTECODE
cd "$srcdir/bindings/python" || exit 99
if [ $# -eq 0 ]; then exec ${PYTHON:-python3} -m unittest discover -v -s . -p "test_*.py"; fi
${PYTHON:-python3} -m unittest -v "$@"
