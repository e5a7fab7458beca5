package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/render"
)

// Two agents on one output directory (issue 12 #10): an init that finds
// the directory held waits, says so and who holds it, and writes once the
// holder is gone.
func TestInitWaitsForAgentHoldingOutputDir(t *testing.T) {
	f := newFixture(t)
	v := f.value("db")
	f.fake.PutParameter(region, "/db", v, true)
	held, err := render.OpenDir(t.Context(), f.out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	cmd := exec.Command(agentBin, "init", "--output-dir", f.out)
	cmd.Env = append(f.fake.Env(region), `AGENT_CONFIG={"secrets":[{"name":"DB","valueFrom":"/db"}]}`)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := make(chan string)
	var all strings.Builder
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(time.Minute)
	host, _ := os.Hostname()
	holder := fmt.Sprintf(`"holder":"pid %d on host %s since `, os.Getpid(), host)
	for waiting := false; !waiting; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("init ended before it waited:\n%s", all.String())
			}
			all.WriteString(line + "\n")
			waiting = strings.Contains(line, `"msg":"waiting for the output directory: another agent holds its lock"`)
			if waiting && !strings.Contains(line, holder) {
				t.Errorf("waiting line does not name the holder (%s):\n%s", holder, line)
			}
		case <-deadline:
			t.Fatalf("init did not say it waits:\n%s", all.String())
		}
	}
	if _, err := os.Lstat(filepath.Join(f.out, "DB")); err == nil {
		t.Fatal("init wrote while another agent held the directory")
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	for line := range lines {
		all.WriteString(line + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("init: %v\n%s", err, all.String())
	}
	assertFile(t, filepath.Join(f.out, "DB"), v, 0o444)
	assertNoSecrets(t, "stderr", all.String(), f.secrets)
}

// An init whose deadline passes while another agent holds the directory
// exits 1 and says why; it writes nothing.
func TestInitTimesOutOnHeldOutputDir(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/db", f.value("db"), true)
	held, err := render.OpenDir(t.Context(), f.out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	r := f.run(t, secretCfg{"secrets": []secretCfg{{"name": "DB", "valueFrom": "/db"}}}, "--timeout", "1s")
	want := fmt.Sprintf(`output directory %q is in use by another agent`, f.out)
	if r.code != 1 || !strings.Contains(r.stderr, strings.ReplaceAll(want, `"`, `\"`)) || !strings.Contains(r.stderr, "context deadline exceeded") {
		t.Errorf("exit %d, want 1 with %s\n%s", r.code, want, r.stderr)
	}
	if got := listDir(t, f.out); len(got) != 0 {
		t.Errorf("wrote %v", got)
	}
}
