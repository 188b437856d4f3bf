#!/usr/bin/env bash
# Runs every network-namespace test in tests/net/ (root needed; each test skips
# itself with exit 77 otherwise). Exit: 0 all passed (or skipped), 1 a failure.
set -u
cd "$(dirname "$0")"
status=0 ran=0 skipped=0
for t in test-*.sh; do
    rc=0
    ./"$t" >"/tmp/mpt-net-$$-$t.log" 2>&1 || rc=$?
    case $rc in
    0) ran=$((ran + 1)); echo "PASS: tests/net/$t ($(tail -n 1 "/tmp/mpt-net-$$-$t.log"))" ;;
    77) skipped=$((skipped + 1)); echo "SKIP: tests/net/$t ($(grep -m1 -i skip "/tmp/mpt-net-$$-$t.log"))" ;;
    *) status=1; echo "FAIL: tests/net/$t (exit $rc)"; tail -n 40 "/tmp/mpt-net-$$-$t.log" ;;
    esac
    rm -f "/tmp/mpt-net-$$-$t.log"
done
[ $status -eq 0 ] && [ $ran -eq 0 ] && [ $skipped -gt 0 ] && exit 77
exit $status
