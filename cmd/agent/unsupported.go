//go:build !linux && !darwin

// ecs-secrets-agent runs in Linux containers: it signals and reaps processes
// and locks files with Unix system calls. It builds for linux (amd64, arm64:
// `make release`) and for darwin, where `agent check` and `agent policy` help
// on a developer's machine. On any other GOOS this file's package clause
// stops the build while packages load, before a compile error in some
// dependency could hide why, with: "found packages main (…) and
// ecs_secrets_agent_runs_in_linux_containers_build_with_GOOS_linux (unsupported.go)".
package ecs_secrets_agent_runs_in_linux_containers_build_with_GOOS_linux
