# Language bindings. The Python bindings (cffi, ABI mode) are tested against
# the freshly built libmpt/.libs/libmpt.so when configured --enable-python;
# they are always distributed.
EXTRA_DIST += \
	bindings/python/README.md \
	bindings/python/mpt/__init__.py \
	bindings/python/test_mpt.py \
	bindings/python/run-tests.sh

if ENABLE_PYTHON
TESTS += bindings/python/run-tests.sh
endif
