#!/bin/sh
# Every exported function is documented and installed: it has a man page of
# its own in doc/man/ that names it (it may document a family), the page is in
# man3_MANS (so `make install` installs it), and libmpt(3) lists it. The ABI
# policy doc/abi.md exists and states the current libtool -version-info.
# Every page in doc/man/ is a real page (no `.so` link, which only resolves
# once installed) that renders from the source tree with `man -l` and with
# `groff -man -ww -z` without a warning; without man or groff the rendering
# check cannot run and the test SKIPs (77) once everything else passed.
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

# Pages from the source tree: no links, every page renders without a warning.
pages=$(ls "$top"/doc/man/*.[1-9] 2>/dev/null)
[ -n "$pages" ] || { echo "check-docs: no pages in doc/man"; exit 99; }
for page in $pages; do
    if grep -q '^\.so[[:space:]]' "$page"; then
        err "$(basename "$page") is a .so link: \`man -l $page\` cannot open its target"
    fi
done
if ! command -v groff >/dev/null 2>&1 || ! command -v man >/dev/null 2>&1; then
    [ $fail -eq 0 ] || exit 1
    echo "check-docs: SKIP rendering: man and groff are needed (apt-get install man-db groff-base)"
    exit 77
fi
tmp=$(mktemp "${TMPDIR:-/tmp}/check-docs.XXXXXX") || exit 99
trap 'rm -f "$tmp"' EXIT
npages=0
for page in $pages; do
    npages=$((npages + 1))
    b=$(basename "$page")
    if ! groff -man -Tutf8 -ww -z "$page" >"$tmp" 2>&1 || [ -s "$tmp" ]; then
        err "$b: groff -man -ww warns:"
        sed 's/^/    /' "$tmp" | head -n 10
    fi
    # man -l as a reader runs it: no pager, a fixed width, warnings on.
    if ! MANPAGER=cat PAGER=cat MANWIDTH=80 man --warnings -l "$page" 2>"$tmp" |
            grep -q '^NAME'; then
        err "$b: man -l shows no NAME section"
    fi
    if [ -s "$tmp" ]; then
        err "$b: man -l warns:"
        sed 's/^/    /' "$tmp" | head -n 10
    fi
done
[ $fail -eq 0 ] && echo "check-docs: $npages pages render with man -l and groff -ww, no .so links"
exit $fail
