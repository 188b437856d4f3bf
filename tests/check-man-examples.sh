#!/bin/sh
# Every section-3 page's EXAMPLE is a complete program that compiles against
# the source tree's include/ and the built libmpt, and runs (over loopback,
# on its own) to exit status 0. The program is the text between .EX/.EE (or
# .nf/.fi) in the EXAMPLE section, roff escapes undone (\e \- \& \(aq \(dq).
# A page whose example cannot run alone says so with a roff comment line
#   .\" example: compile-only <why>
# and is then only compiled. The example of mpt_foo.3 must call mpt_foo().
# Run by `make check` from the top build directory ($srcdir: the sources),
# which is also what `make distcheck`'s VPATH build does.
set -u
top=$(cd "${srcdir:-.}" && pwd) || exit 99
build=$PWD
la=$build/libmpt/libmpt.la
lt=$build/libtool
[ -f "$la" ] || { echo "check-man-examples: $la not built"; exit 99; }
[ -x "$lt" ] || { echo "check-man-examples: no $lt (run configure)"; exit 99; }
# The compiler and sanitizer flags configure chose (tests get no $CC from
# make; the build's Makefile has them): an ASan build's static libmpt links
# only with -fsanitize=address, and the examples run sanitized too.
mkvar() { sed -n "s/^$1 = //p" "$build/Makefile" 2>/dev/null | head -n 1; }
cc=${CC:-$(mkvar CC)}
cc=${cc:-cc}
san=""
for w in $(mkvar MPT_CFLAGS); do
    case $w in
    -fsanitize=fuzzer*) ;;
    -fsanitize=* | -fno-sanitize* | -fno-omit-frame-pointer) san="$san $w" ;;
    esac
done
cflags="-std=c11 -Wall -Wextra -Werror -pthread$san"
ldflags=$(mkvar MPT_LDFLAGS)

work=$(mktemp -d "${TMPDIR:-/tmp}/mpt-manex.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM HUP

fail=0 ran="" compiled=""
err() {
    echo "FAIL: $*"
    fail=1
}

# extract PAGE: the EXAMPLE program on stdout.
extract() {
    awk '
        /^\.SH/ { in_ex = ($0 ~ /^\.SH +"?EXAMPLES?"?$/); code = 0; next }
        !in_ex { next }
        /^\.(EX|nf)( |$)/ { code = 1; next }
        /^\.(EE|fi)( |$)/ { code = 0; next }
        code && /^\.(RS|RE|PP|sp)( |$)/ { next }
        code && /^\.\\"/ { next }
        code { print }
    ' "$1" | sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e 's/\\&//g' \
                 -e "s/\\\\(aq/'/g" -e 's/\\(dq/"/g'
}

n=0
for page in "$top"/doc/man/*.3; do
    name=$(basename "$page" .3)
    if grep -q '^\.so ' "$page"; then
        # A link page has no example of its own; check-docs.sh refuses them.
        echo "check-man-examples: $name.3 is a .so link, skipped"
        continue
    fi
    n=$((n + 1))
    src=$work/$name.c
    extract "$page" >"$src"
    if ! grep -q 'main(' "$src"; then
        err "$name.3: EXAMPLE is not a complete program (no main)"
        continue
    fi
    case $name in
    mpt_*)
        grep -q "$name(" "$src" || err "$name.3: its EXAMPLE does not call $name()"
        ;;
    esac
    if ! (cd "$work" && "$lt" --quiet --mode=link --tag=CC $cc $cflags -I"$top/include" \
            $ldflags -o "$name" "$src" "$la") >"$work/$name.cc" 2>&1; then
        err "$name.3: EXAMPLE does not compile:"
        sed 's/^/    /' "$work/$name.cc" | head -n 30
        continue
    fi
    if grep -q '^\.\\" example: compile-only' "$page"; then
        compiled="$compiled $name"
        continue
    fi
    # Each program runs in its own directory, at most 30 s.
    mkdir "$work/run-$name"
    if (cd "$work/run-$name" && timeout 30 "$work/$name") >"$work/$name.out" 2>&1; then
        ran="$ran $name"
    else
        err "$name.3: EXAMPLE exited with status $? (output follows)"
        sed 's/^/    /' "$work/$name.out" | head -n 30
    fi
done
[ $n -gt 0 ] || { echo "check-man-examples: no pages in $top/doc/man"; exit 99; }
echo "check-man-examples: ran:${ran:- none}"
echo "check-man-examples: compiled only:${compiled:- none}"
echo "check-man-examples: $(echo $ran | wc -w) of $n examples ran, $(echo $compiled | wc -w) compiled only"
exit $fail
