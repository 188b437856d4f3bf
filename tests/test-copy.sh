#!/bin/sh
# mpt-copy on loopback (filled in by the next commit).
echo "SKIP: test-copy.sh: not yet written"
exit 77
