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
	bindings/python/pyproject.toml \
	bindings/python/_build/mpt_build.py \
	bindings/python/README.md \
	bindings/python/test_mpt.py \
	bindings/python/test_asyncio.py \
	bindings/python/test_declarations.py \
	bindings/python/test_interop.py \
	bindings/python/test_leaks.py \
	bindings/python/test_install.py \
	bindings/python/test_examples.py \
	bindings/python/examples/send_file.py \
	bindings/python/examples/receive_file.py \
	bindings/python/examples/echo_server.py \
	bindings/python/run-tests.sh

if ENABLE_PYTHON
TESTS += bindings/python/run-tests.sh
endif

mpt_installcheck_deps =
# `make install`: the package under $(pythondir)/mpt (byte-compiled by
# automake), with _install.py telling it the $(libdir) libmpt went to.
if ENABLE_PYTHON
mptpydir = $(pythondir)/mpt
mptpy_PYTHON = $(mpt_python_sources)
nodist_mptpy_PYTHON = bindings/python/mpt/_install.py
dist_mptpy_DATA = bindings/python/mpt/py.typed
CLEANFILES += bindings/python/mpt/_install.py
bindings/python/mpt/_install.py: Makefile
	$(AM_V_GEN)$(MKDIR_P) bindings/python/mpt && \
	{ echo '"""Written by make install: where libmpt was installed."""'; \
	  echo 'LIBDIR = "$(libdir)"'; } > $@-t && mv $@-t $@

# The installed package imports and finds the installed library.
mpt_installcheck_deps += installcheck-python
installcheck-python:
	cd / && PYTHONPATH="$(DESTDIR)$(pythondir)" LD_LIBRARY_PATH="$(DESTDIR)$(libdir)" \
		$(PYTHON) -c 'import mpt, mpt.asyncio, sys; print(mpt.__file__, mpt.version()); \
		sys.exit(not mpt.__file__.startswith("$(DESTDIR)$(pythondir)"))'
.PHONY: installcheck-python
endif
