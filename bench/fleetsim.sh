#!/usr/bin/env bash
# The fleet simulator (issue 10 item 6): every scenario, or those named
# with -run a,b (-list shows them). Figures go to docs/BENCHMARKS.md,
# "Fleet simulator". All of it takes about half an hour on 2 shared cores;
# the N = 10,000 scenarios 4 to 7 minutes each.
set -euo pipefail
cd "$(dirname "$0")/.."
# The watcher of the feed scenarios is the shipped build (see the Makefile).
go build -trimpath -gcflags=all=-l -ldflags="-s -w" -o bin/ ./cmd/agent
go build -o bin/fleetsim ./bench/fleetsim
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
echo
# A 10,000-agent heap is collected less often: more of the 2 cores for the agents.
GOGC=200 bin/fleetsim -agent bin/agent "$@"
