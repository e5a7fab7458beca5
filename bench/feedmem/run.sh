#!/usr/bin/env bash
# Measures the change feed's watcher (`agent watch --feed-addr`) holding
# 10,000 requests over real TCP: goroutines, heap and resident memory per
# held request, CPU while held, and the time to answer all of them after a
# change (docs/BENCHMARKS.md "Change feed: watcher memory"). Both processes
# need a file descriptor per connection.
set -euo pipefail
cd "$(dirname "$0")/../.."
ulimit -n 20000
# The shipped build (see the Makefile).
go build -trimpath -gcflags=all=-l -ldflags="-s -w" -o bin/ ./cmd/agent
go build -o bin/feedmem ./bench/feedmem
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
echo
bin/feedmem -agent bin/agent "$@"
