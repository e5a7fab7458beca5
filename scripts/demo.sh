#!/usr/bin/env bash
# Runs the agent's main job end to end with no AWS account: starts the local
# emulator (cmd/devaws: kumo + an ECS credentials endpoint), runs `agent init`
# against it as an init container would, and shows the files it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo/secrets}

go build -o bin/ ./cmd/agent ./cmd/devaws
rm -rf "$out"
mkdir -p "$(dirname "$out")"
bin/devaws -demo-config demo/agent.json -- \
  bin/agent init --config demo/agent.json --output-dir "$out" --log-format text

echo
echo "== files in $out"
ls -lR "$out"
for f in secrets.env secrets.json db.url DB_PASSWORD APP_port; do
  echo
  echo "== $out/$f"
  cat "$out/$f"
done
echo
