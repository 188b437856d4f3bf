#!/bin/sh
# The sans-I/O core must not make system calls, read a clock or touch libev:
# every symbol its objects import must be on this allow-list (memory and string
# helpers, mbedTLS hashing, sanitizer and compiler runtime).
# Run by `make check` from the build directory.
set -eu
lib=libmpt/core/.libs/libmptcore.a
[ -f "$lib" ] || { echo "layering: $lib not built"; exit 99; }
# Symbols the core's objects import from outside the core itself (an mpt_*
# function of the I/O layer, such as mpt_io_now, would be a layering bug).
imports=$(nm "$lib" 2>/dev/null | awk '
    NF == 2 && $1 == "U" { u[$2] = 1 }
    NF == 3 && $2 ~ /^[TDBRVW]$/ { d[$3] = 1 }
    END { for (s in u) if (!(s in d)) print s }' | sort)
bad=$(printf '%s\n' "$imports" | grep -v -E \
    '^((mem(cpy|move|set|cmp|chr)|bcmp)|str(len|cmp|ncmp|chr|nlen|lcpy)|(m|c|re)alloc|reallocarray|free|abort|qsort|bsearch|__assert_fail|__stack_chk_fail|__(memcpy|memset|memmove)_chk|mbedtls_(sha256|md)[a-z0-9_]*|__(a|ub|l|t|m)san_[A-Za-z0-9_]*|__sanitizer_[A-Za-z0-9_]*|__sancov_[A-Za-z0-9_]*|_GLOBAL_OFFSET_TABLE_|__(u)?(div|mod)ti3|__popcount[sdt]i2|__ctz[sdt]i2|)$' || true)
if [ -n "$bad" ]; then
    echo "layering: the sans-I/O core imports symbols outside its allow-list:"
    echo "$bad"
    exit 1
fi
if grep -n -E '#include *<(ev|sys/socket|unistd|time|sys/time|pthread|netinet/[a-z]+|arpa/inet)\.h>' "${srcdir:-.}"/libmpt/core/*.c "${srcdir:-.}"/libmpt/core/*.h; then
    echo "layering: the core includes an I/O header"
    exit 1
fi
echo "layering: core imports only allowed symbols"
