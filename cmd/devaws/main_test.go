package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs what the README's first command runs: devaws seeding kumo
// and running `agent init` with the demo config, then checks the files.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	build := exec.Command("go", "build", "-o", agent, "../agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the agent: %v\n%s", err, out)
	}
	conf, out := filepath.Join(dir, "demo.json"), filepath.Join(dir, "secrets")
	var stdout, stderr bytes.Buffer
	code, err := run(context.Background(), []string{"-demo-config", conf, "--", agent, "init", "--config", conf, "--output-dir", out}, &stdout, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("devaws: exit %d, %v\n%s", code, err, stderr.String())
	}
	want := map[string]string{
		"DB_USERNAME":  "app",
		"DB_PASSWORD":  parameters[1].value,
		"FEATURE_FLAG": "on",
		"APP_password": "hunter2-demo",
		"APP_port":     "5432",
		"APP_replicas": `["a","b"]`,
		"app/password": "hunter2-demo",
		"TLS_KEY":      string(tlsKey),
		"db.url":       "postgres://app:hunter2-demo@db:5432/app\n",
	}
	for name, v := range want {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || string(b) != v {
			t.Errorf("%s = %q, %v; want %q", name, b, err, v)
		}
	}
	env, err := os.ReadFile(filepath.Join(out, "secrets.env"))
	if err != nil || !strings.Contains(string(env), `DB_PASSWORD='pa'\''ss $HOME \n"word"'`+"\n") {
		t.Errorf("secrets.env = %q, %v", env, err)
	}
	for _, v := range []string{"hunter2-demo", parameters[1].value} {
		if strings.Contains(stderr.String()+stdout.String(), v) {
			t.Errorf("a demo secret was printed:\n%s", stderr.String())
		}
	}
}
