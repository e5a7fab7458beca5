#!/usr/bin/env bash
# The project's test command (the README's second command): every test,
# including the black-box tests that build the agent and run it against the
# wire-level fake and the kumo emulator. No AWS account, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
# -timeout: cmd/agent's black-box tests take about 4.5 minutes on 2 cores
# while every other package runs beside them; the default 10 minutes left
# too little room on a loaded machine.
go test -race -count=1 -timeout 20m "$@" ./...
