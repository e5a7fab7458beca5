#!/usr/bin/env bash
# The fleet simulator (issue 10 item 6): every scenario, or those named
# with -run a,b (-list shows them). Figures go to docs/BENCHMARKS.md,
# "Fleet simulator". The N = 10,000 scenarios take a few minutes each on
# 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/fleetsim ./bench/fleetsim
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
echo
bin/fleetsim "$@"
