#!/bin/sh
# Runs the Python bindings' unittest suite against the libmpt built in this
# build tree. Called by `make check` (from the build directory, with $srcdir
# set by automake) when configured with --enable-python.
srcdir=$(cd "${srcdir:-.}" && pwd) || exit 99
lib=$PWD/libmpt/.libs/libmpt.so
if [ ! -f "$lib" ]; then
    echo "run-tests.sh: $lib not found (no shared library built; skipping)" >&2
    exit 77
fi
MPT_LIBRARY=$lib
PYTHONPATH=$srcdir/bindings/python${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1
export MPT_LIBRARY PYTHONPATH PYTHONDONTWRITEBYTECODE
${PYTHON:-python3} -m unittest -v test_mpt
