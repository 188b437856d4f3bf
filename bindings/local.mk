# Language bindings. The Python bindings (ctypes, no compiled part) are
# tested against the freshly built libmpt/.libs/libmpt.so when configured
# --enable-python, installed under $(pythondir) by `make install`, and always
# distributed.
mpt_python_sources = \
	bindings/python/mpt/__init__.py \
	bindings/python/mpt/_lib.py \
	bindings/python/mpt/_errors.py \
	bindings/python/mpt/_core.py \
	bindings/python/mpt/asyncio.py
EXTRA_DIST += \
	$(mpt_python_sources) \
	bindings/python/mpt/py.typed \
	bindings/python/README.md \
	bindings/python/test_mpt.py \
	bindings/python/test_asyncio.py \
	bindings/python/test_declarations.py \
	bindings/python/test_interop.py \
	bindings/python/test_leaks.py \
	bindings/python/run-tests.sh

if ENABLE_PYTHON
TESTS += bindings/python/run-tests.sh
endif
