#!/usr/bin/env bash
# Measures `agent init` for 50 parameters + 20 secrets with 20 ms on every AWS
# call (SPEC §8): wall time against the budget, API calls, peak RSS. The
# output directories go on tmpfs (/dev/shm, as an EC2 tmpfs volume) and on
# disk (as Fargate ephemeral storage), since fsync costs differ.
set -euo pipefail
cd "$(dirname "$0")/.."
# The shipped build (see the Makefile).
go build -trimpath -gcflags=all=-l -ldflags="-s -w" -o bin/ ./cmd/agent
go build -o bin/initbench ./bench/initbench
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
for dir in /dev/shm "$(pwd)/bin"; do
  base=$(mktemp -d "$dir/initbench.XXXXXX")
  echo
  echo "output on $(df --output=fstype "$base" | tail -1) ($dir):"
  echo
  bin/initbench -agent bin/agent -out "$base" "$@"
  rm -rf "$base"
done
