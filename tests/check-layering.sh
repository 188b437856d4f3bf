#!/bin/sh
# The layers, checked on the built objects (nm) and the sources:
#  1. The sans-I/O core must not make system calls, read a clock or touch
#     libev: every symbol its objects import must be on an allow-list
#     (memory and string helpers, mbedTLS hashing, sanitizer and compiler
#     runtime).
#  2. In particular the core calls nothing of the I/O layer: no symbol it
#     imports is defined by an I/O object (libmptio.a), whatever its name.
#  3. The I/O layer's helpers (resolve, netlink, watcher, timer, util) call
#     nothing of the files that use them (sock, subflow, paths, listener,
#     ctx, events, blocking): they report through the hooks those register.
#     Their imports may come only from each other, the core and the system.
#  4. Neither includes the headers of the layer above.
# Run by `make check` from the build directory.
set -eu
lib=libmpt/core/.libs/libmptcore.a
iolib=libmpt/.libs/libmptio.a
for f in "$lib" "$iolib"; do
    [ -f "$f" ] || { echo "layering: $f not built"; exit 99; }
done
fail=0

# Symbols defined (text, data, bss, read-only, weak) and imported by a set
# of objects, the imports less what the set defines itself.
# (nm -A: "archive:member.o:ADDR T sym", "archive:member.o: U sym")
defined() { nm -A "$@" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[TDBRVW]$/ { print $3 }' | sort -u; }
imports() {
    nm -A "$@" 2>/dev/null | awk '
        NF == 3 && $2 == "U" { u[$3] = 1 }
        NF == 3 && $2 ~ /^[TDBRVW]$/ { d[$3] = 1 }
        END { for (s in u) if (!(s in d)) print s }' | sort -u
}

# 1. The core's imports, against the allow-list.
core_imports=$(imports "$lib")
bad=$(printf '%s\n' "$core_imports" | grep -v -E \
    '^((mem(cpy|move|set|cmp|chr)|bcmp)|str(len|cmp|ncmp|chr|nlen|lcpy)|(m|c|re)alloc|reallocarray|free|abort|qsort|bsearch|__assert_fail|__stack_chk_fail|__(memcpy|memset|memmove)_chk|mbedtls_(sha256|md)[a-z0-9_]*|__(a|ub|l|t|m)san_[A-Za-z0-9_]*|__sanitizer_[A-Za-z0-9_]*|__sancov_[A-Za-z0-9_]*|_GLOBAL_OFFSET_TABLE_|__(u)?(div|mod)ti3|__popcount[sdt]i2|__ctz[sdt]i2|)$' || true)
if [ -n "$bad" ]; then
    echo "layering: the sans-I/O core imports symbols outside its allow-list:"
    echo "$bad"
    fail=1
fi

# 2. The core's imports, against what the I/O layer defines.
io_defined=$(defined "$iolib")
[ -n "$io_defined" ] || { echo "layering: $iolib defines nothing?"; exit 99; }
bad=$(printf '%s\n' "$core_imports" | grep -x -F "$io_defined" || true)
if [ -n "$bad" ]; then
    echo "layering: the sans-I/O core calls the I/O layer (libmpt/*.c):"
    echo "$bad"
    fail=1
fi

# 3. The helpers' imports, against what the files that use them define.
tmp=${TMPDIR:-/tmp}/check-layering.$$
mkdir "$tmp"
trap 'rm -rf "$tmp"' EXIT INT TERM
iolib_abs=$(pwd)/$iolib
(cd "$tmp" && ar x "$iolib_abs")
helpers="resolve netlink watcher timer util"
users="sock subflow paths listener ctx events blocking"
hobjs= uobjs=
for h in $helpers; do
    f="$tmp/libmptio_la-$h.o"
    [ -f "$f" ] || { echo "layering: $f not in $iolib"; exit 99; }
    hobjs="$hobjs $f"
done
for u in $users; do
    f="$tmp/libmptio_la-$u.o"
    [ -f "$f" ] || { echo "layering: $f not in $iolib"; exit 99; }
    uobjs="$uobjs $f"
done
# shellcheck disable=SC2086
users_defined=$(defined $uobjs)
[ -n "$users_defined" ] || { echo "layering: the I/O objects define nothing?"; exit 99; }
for h in $helpers; do
    bad=$(imports "$tmp/libmptio_la-$h.o" | grep -x -F "$users_defined" || true)
    if [ -n "$bad" ]; then
        echo "layering: libmpt/$h.c calls into the files that use it (it must report through hooks):"
        echo "$bad"
        fail=1
    fi
done

# 4. Includes.
src=${srcdir:-.}
if grep -n -E '#include *<(ev|sys/socket|unistd|time|sys/time|pthread|netinet/[a-z]+|arpa/inet)\.h>' "$src"/libmpt/core/*.c "$src"/libmpt/core/*.h; then
    echo "layering: the core includes an I/O header"
    fail=1
fi
for f in resolve.c resolve.h netlink.c netlink.h watcher.c watch.h timer.c util.c util.h; do
    [ -f "$src/libmpt/$f" ] || { echo "layering: libmpt/$f missing"; exit 99; }
    if grep -n -H -E '#include *"(io|ctx|sock|subflow|paths|listener|events|abi)\.h"' "$src/libmpt/$f"; then
        echo "layering: libmpt/$f includes a header of the files that use it"
        fail=1
    fi
done

[ "$fail" -eq 0 ] || exit 1
echo "layering: core imports only allowed symbols and nothing of the I/O layer; resolve, netlink, watcher, timer and util call nothing of their users"
