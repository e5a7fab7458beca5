#!/usr/bin/env bash
# The project's test command (the README's second command): every test,
# including the black-box tests that build the agent and run it against the
# wire-level fake and the kumo emulator. No AWS account, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 "$@" ./...
