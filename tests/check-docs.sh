#!/bin/sh
# Every exported function is documented and installed: it has a man page in
# doc/man/ (its own or a .so link to the page that names it), the page is in
# man3_MANS (so `make install` installs it), and libmpt(3) lists it. The ABI
# policy doc/abi.md exists and states the current libtool -version-info.
# Run by `make check`.
set -eu
top=${srcdir:-.}
fail=0
err() {
    echo "check-docs: $*"
    fail=1
}
funcs=$(grep -h '^MPT_EXPORT' "$top"/include/mpt/*.h | grep -o 'mpt_[a-z0-9_]*(' | tr -d '(' | sort -u)
[ -n "$funcs" ] || { echo "check-docs: no exported functions found"; exit 99; }
for f in $funcs; do
    page="$top/doc/man/$f.3"
    if [ ! -f "$page" ]; then
        err "$f has no page doc/man/$f.3"
        continue
    fi
    target=$(sed -n '1s|^\.so man3/\(.*\)$|\1|p' "$page")
    if [ -n "$target" ]; then
        [ -f "$top/doc/man/$target" ] || { err "$f.3 links to missing $target"; continue; }
        page="$top/doc/man/$target"
    fi
    sed -n '/^\.SH NAME/,/^\.SH/p' "$page" | grep -qw "$f" || err "$page does not name $f"
    grep -q "doc/man/$f.3" "$top"/libmpt/local.mk || err "doc/man/$f.3 is not in man3_MANS"
    sed -n '/^\.SH FUNCTIONS/,/^\.SH RETURN/p' "$top/doc/man/libmpt.3" | grep -qw "$f" ||
        err "libmpt.3 does not list $f"
done
[ -f "$top/doc/abi.md" ] || err "doc/abi.md (the ABI policy configure.ac cites) is missing"
lt=$(sed -n 's/^AC_SUBST(\[MPT_LT_VERSION\], \[\([0-9:]*\)\])/\1/p' "$top/configure.ac")
[ -n "$lt" ] || err "no MPT_LT_VERSION in configure.ac"
[ -f "$top/doc/abi.md" ] && [ -n "$lt" ] && ! grep -q -- "-version-info $lt" "$top/doc/abi.md" &&
    err "doc/abi.md does not state -version-info $lt"
[ $fail -eq 0 ] && echo "check-docs: $(echo "$funcs" | wc -l) functions documented, installed and listed"
exit $fail
