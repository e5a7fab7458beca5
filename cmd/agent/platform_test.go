package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// unsupportedMessage is what `go build` prints for a GOOS the agent does not
// support: the package clause of unsupported.go.
const unsupportedMessage = "ecs_secrets_agent_runs_in_linux_containers_build_with_GOOS_linux (unsupported.go)"

// goBuild cross-compiles this package into nowhere and returns go's output.
func goBuild(t *testing.T, goos, goarch string) (string, error) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.Command(gobin, "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// TestUnsupportedPlatformBuildSaysLinuxContainers protects the message a
// Windows (or FreeBSD, or wasm) build stops with: one line naming the reason,
// found while packages load, instead of a compile error about syscall.SIGUSR1
// in some internal package.
func TestUnsupportedPlatformBuildSaysLinuxContainers(t *testing.T) {
	for _, p := range []struct{ goos, goarch string }{
		{"windows", "amd64"},
		{"windows", "arm64"},
		{"freebsd", "amd64"},
		{"js", "wasm"},
	} {
		t.Run(p.goos+"/"+p.goarch, func(t *testing.T) {
			out, err := goBuild(t, p.goos, p.goarch)
			if err == nil {
				t.Fatalf("GOOS=%s GOARCH=%s go build succeeded; want it stopped with %q", p.goos, p.goarch, unsupportedMessage)
			}
			if !strings.Contains(out, unsupportedMessage) {
				t.Fatalf("GOOS=%s go build failed without saying why:\n%s", p.goos, out)
			}
			// The load error is all go prints: no compile error from a dependency.
			if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 || strings.Contains(out, "undefined:") {
				t.Fatalf("GOOS=%s go build printed %d more lines than the message:\n%s", p.goos, n, out)
			}
		})
	}
}

// TestDarwinBuilds protects the developer's build on a Mac (`agent check`,
// `agent policy`): unsupported.go must not stop it. linux/amd64 and
// linux/arm64 are built by the release test.
func TestDarwinBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the agent for darwin; skipped with -short")
	}
	for _, goarch := range []string{"arm64", "amd64"} {
		t.Run("darwin/"+goarch, func(t *testing.T) {
			if out, err := goBuild(t, "darwin", goarch); err != nil {
				t.Fatalf("GOOS=darwin GOARCH=%s go build: %v\n%s", goarch, err, out)
			}
		})
	}
}
