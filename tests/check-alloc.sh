#!/bin/sh
# Every allocation of the library goes through libmpt/core/alloc.c (so tests
# can make any of them fail, doc/testing.md): no object of the core or the
# I/O layer but alloc.o imports the C library's allocator. Checked on the
# built objects (nm), so a macro or a new file cannot slip past.
# Run by `make check` from the build directory.
set -eu
fail=0
for lib in libmpt/core/.libs/libmptcore.a libmpt/.libs/libmptio.a; do
    [ -f "$lib" ] || { echo "check-alloc: $lib not built"; exit 99; }
    bad=$(nm -A "$lib" 2>/dev/null | awk '
        NF == 3 && $2 == "U" && $3 ~ /^(malloc|calloc|realloc|reallocarray|free|strdup|strndup|aligned_alloc|posix_memalign)$/ {
            split($1, p, ":"); if (p[2] !~ /alloc\.o$/) print p[2] " calls " $3 }')
    if [ -n "$bad" ]; then
        echo "check-alloc: allocation outside core/alloc.c (use mpt_malloc & co, core/alloc.h):"
        echo "$bad" | sed 's/^/  /'
        fail=1
    fi
done
[ $fail -eq 0 ] && echo "check-alloc: every allocation in libmptcore and libmptio goes through core/alloc.c"
exit $fail
