#!/usr/bin/env bash
# sim-failover: see tests/sim/mpt-simbench.c for the scenario and its metrics.
# SIM_MIB sets the transfer size in MiB (default 64).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bench_make tests/sim/mpt-simbench
"$bench_build/tests/sim/mpt-simbench" sim-failover "${SIM_MIB:-64}"
