#!/usr/bin/env bash
# The fleet simulator (issue 10 item 6): every scenario (bin/fleetsim
# -list), or those named as arguments, each in a process of its own so
# that one run's heap and sockets do not weigh on the next. Prints the
# table, then each scenario's counts; full outputs in bin/fleetsim-NAME.txt.
# Figures go to docs/BENCHMARKS.md, "Fleet simulator". On 2 shared cores
# an N = 10,000 scenario takes 6 to 10 minutes, all of them about an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
# The watcher of the feed scenarios is the shipped build (see the Makefile).
go build -trimpath -gcflags=all=-l -ldflags="-s -w" -o bin/ ./cmd/agent
go build -o bin/fleetsim ./bench/fleetsim
if [ $# -eq 0 ]; then
	mapfile -t scenarios < <(bin/fleetsim -list)
else
	scenarios=("$@")
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
echo
for sc in "${scenarios[@]}"; do
	# A 10,000-agent heap is collected less often: more CPU for the agents.
	GOGC=200 bin/fleetsim -agent bin/agent -run "$sc" >"bin/fleetsim-$sc.txt" 2>&1
done
head -n 4 "bin/fleetsim-${scenarios[0]}.txt" | grep -v '^[0-9]'
for sc in "${scenarios[@]}"; do grep '^| ' "bin/fleetsim-$sc.txt" | grep -v '^| scenario'; done
echo
for sc in "${scenarios[@]}"; do grep -E '^ *- ' "bin/fleetsim-$sc.txt"; done
