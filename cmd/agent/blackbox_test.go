package main

// Black-box tests: build cmd/agent once, run it as a process against a
// wire-level AWS stand-in, and check exit codes, files and every byte it
// prints.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var agentBin, devawsBin string

func TestMain(m *testing.M) {
	if os.Getenv("AGENT_TEST_APP") != "" {
		testApp(os.Getenv("AGENT_TEST_APP"), os.Getenv("AGENT_TEST_WATCH"))
		return
	}
	if os.Getenv("AGENT_TEST_SIGNAL_COUNTER") != "" {
		signalCounter(os.Getenv("AGENT_TEST_SIGNAL_COUNTER"))
		return
	}
	dir, err := os.MkdirTemp("", "agent-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin, devawsBin = filepath.Join(dir, "agent"), filepath.Join(dir, "devaws")
	// Built without -race whatever the test flags: kumo, inside devaws, has
	// data races of its own that are not ours to report.
	build := exec.Command("go", "build", "-o", dir+"/", ".", "../devaws")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the agent and devaws:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the agent binary.
type result struct {
	code           int
	stdout, stderr string
}

// runAgent runs the built agent with exactly env (no inherited variables,
// as in a container) and fails the test if any secret in secrets shows up
// in its output.
func runAgent(t *testing.T, env []string, secrets []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running agent: %v", err)
	}
	assertNoSecrets(t, "stdout", r.stdout, secrets)
	assertNoSecrets(t, "stderr", r.stderr, secrets)
	for _, a := range args {
		assertNoSecrets(t, "argument list", a, secrets)
	}
	return r
}

func assertNoSecrets(t *testing.T, where, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("secret value %q... leaked into %s", s[:min(len(s), 4)], where)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertFile(t *testing.T, path, want string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want regular %v", path, fi.Mode(), mode)
	}
	if got := readFile(t, path); got != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

// listDir lists every path under dir but the agent's lock file, relative, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// .agent.lock is the agent's lock on the directory, not an output.
		if rel, _ := filepath.Rel(dir, p); p != dir && rel != ".agent.lock" {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// withEnv returns env with key set to value (replaced, or added).
func withEnv(env []string, key, value string) []string {
	out := []string{key + "=" + value}
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
