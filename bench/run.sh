#!/usr/bin/env bash
# Measures the sidecar (`agent run`) with 100 secrets (80 parameters + 20
# secrets): API calls per unchanged cycle, resident memory, idle CPU over a
# minute (SPEC §8). Pass -idle 10s for a quick look.
set -euo pipefail
cd "$(dirname "$0")/.."
# The shipped build (see the Makefile).
go build -trimpath -gcflags=all=-l -ldflags="-s -w" -o bin/ ./cmd/agent
go build -o bin/runbench ./bench/runbench
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
echo
bin/runbench -agent bin/agent "$@"
