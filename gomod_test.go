// Package ecssecretsagent_test holds checks on the module as a whole.
package ecssecretsagent_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestGoModIsTidy protects go.mod from drifting: direct dependencies marked
// "// indirect", or missing go.sum lines, make `go mod tidy` rewrite it.
func TestGoModIsTidy(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.Command(gobin, "mod", "tidy", "-diff")
	// Offline: only the module cache; tidy must not reach the network.
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if stdout.Len() > 0 {
		t.Fatalf("go mod tidy would change go.mod/go.sum; run it and commit:\n%s", stdout.String())
	}
	if err != nil {
		if strings.Contains(stderr.String(), "GOPROXY=off") {
			t.Skipf("module cache lacks modules tidy needs, and the test stays offline: %s", stderr.String())
		}
		t.Fatalf("go mod tidy -diff: %v\n%s", err, stderr.String())
	}
}
