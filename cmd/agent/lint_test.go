package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runLintBin runs the built agent's lint with stdin and no environment.
func runLintBin(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, append([]string{"lint"}, args...)...)
	cmd.Env = []string{}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// lintOrders is a realistic describe-task-definition output with two
// plaintext secrets in its environment.
const lintOrders = "../../internal/lint/testdata/orders-api.taskdef.json"

var lintOrdersSecrets = []string{"Tr0ub4dor&3-orders", "sk_live_51HxQ2vKp9mTz7RfA0c3Wd8Y"}

// lintWarningOnly has one finding, a warning (ESA305).
const lintWarningOnly = `[
  {"name": "secrets", "image": "ecs-secrets-agent:1.0.0", "command": ["run"], "essential": false,
   "healthCheck": {"command": ["CMD", "/agent", "health"]},
   "mountPoints": [{"sourceVolume": "secrets", "containerPath": "/run/secrets"}]},
  {"name": "app", "image": "web:1", "dependsOn": [{"containerName": "secrets", "condition": "HEALTHY"}],
   "mountPoints": [{"sourceVolume": "secrets", "containerPath": "/run/secrets", "readOnly": true}]}
]`

func TestLintBinary(t *testing.T) {
	orders, err := os.ReadFile(lintOrders)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.json")
	if err := os.WriteFile(clean, []byte(`{"family": "web", "containerDefinitions": [{"name": "web", "image": "web:1", "environment": [{"name": "LOG_LEVEL", "value": "info"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(broken, []byte(`{"containerDefinitions": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	ordersSummary := "6 findings (5 errors, 1 warning, 0 notes) in 1 file\n"
	cases := []struct {
		name       string
		stdin      string
		args       []string
		code       int
		stdoutHas  []string
		stderr     string
		stdoutLast string // the last line, exactly
	}{
		{"clean file", "", []string{clean}, 0, nil, "", "no findings in 1 file\n"},
		{"findings in a file", "", []string{lintOrders}, 1,
			[]string{lintOrders + ":26: orders-api: error ESA101 plaintext-secret-name: environment variable DB_PASSWORD holds a plaintext value (sha256:ef235e05), and its name says it is a secret\n"},
			"", ordersSummary},
		{"findings on stdin", string(orders), []string{"-"}, 1,
			[]string{"<stdin>:30: orders-api: error ESA102 plaintext-credential: environment variable STRIPE_API_KEY holds what looks like a Stripe key in plaintext (sha256:06b2f561)\n"},
			"", ordersSummary},
		{"fail-on none", string(orders), []string{"--fail-on", "none", "-"}, 0, nil, "", ordersSummary},
		{"warning below fail-on error", lintWarningOnly, []string{"-"}, 0, []string{"ESA305"}, "", "1 finding (0 errors, 1 warning, 0 notes) in 1 file\n"},
		{"warning at fail-on warning", lintWarningOnly, []string{"--fail-on=warning", "-"}, 1, []string{"ESA305"}, "", "1 finding (0 errors, 1 warning, 0 notes) in 1 file\n"},
		{"two files", "", []string{clean, lintOrders}, 1, nil, "", "6 findings (5 errors, 1 warning, 0 notes) in 2 files\n"},
		{"missing file", "", []string{clean, filepath.Join(dir, "nope.json")}, 2, nil,
			"agent lint: " + filepath.Join(dir, "nope.json") + ": no such file or directory\n", "no findings in 1 file\n"},
		{"unreadable JSON", "", []string{broken}, 2, nil, "agent lint: " + broken + ": invalid JSON: unexpected end of input\n", "no findings in 0 files\n"},
		{"not a task definition on stdin", `{"family": "web"}`, []string{"-"}, 2, nil,
			"agent lint: <stdin>: not a task definition: want {\"taskDefinition\": …} (describe-task-definition output), {\"containerDefinitions\": […], …} (register-task-definition input) or a container definitions array\n", "no findings in 0 files\n"},
		{"bad format", "", []string{"--format", "xml", clean}, 2, nil, "agent lint: --format \"xml\" is not text, json or sarif\n", ""},
		{"bad fail-on", "", []string{"--fail-on", "fatal", clean}, 2, nil, "agent lint: --fail-on \"fatal\" is not error, warning, note or none\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runLintBin(t, []byte(tc.stdin), tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, s := range tc.stdoutHas {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
			if r.stderr != tc.stderr {
				t.Errorf("stderr:\n%q\nwant:\n%q", r.stderr, tc.stderr)
			}
			lines := strings.SplitAfter(r.stdout, "\n")
			if last := ""; len(lines) >= 2 {
				last = lines[len(lines)-2]
				if last != tc.stdoutLast {
					t.Errorf("last line %q, want %q", last, tc.stdoutLast)
				}
			} else if tc.stdoutLast != "" {
				t.Errorf("stdout %q, want a last line %q", r.stdout, tc.stdoutLast)
			}
			for _, v := range lintOrdersSecrets {
				if strings.Contains(r.stdout+r.stderr, v) {
					t.Errorf("output shows a plaintext value from the environment")
				}
			}
		})
	}
}

func TestLintBinaryFormats(t *testing.T) {
	orders, err := os.ReadFile(lintOrders)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("json", func(t *testing.T) {
		r := runLintBin(t, orders, "--format", "json", "-")
		var out struct {
			Findings []struct{ RuleID, Container, Severity string }
			Summary  struct{ Files, Errors, Warnings, Notes int }
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		var ids []string
		for _, f := range out.Findings {
			ids = append(ids, f.RuleID+"/"+f.Container+"/"+f.Severity)
		}
		want := "ESA101/orders-api/error ESA102/orders-api/error ESA201/orders-api/error ESA304/orders-api/error ESA305/secrets/warning ESA302/secrets/error"
		if got := strings.Join(ids, " "); got != want || r.code != 1 || out.Summary.Errors != 5 || out.Summary.Warnings != 1 {
			t.Errorf("exit %d, findings %s, summary %+v\nwant %s", r.code, got, out.Summary, want)
		}
		for _, v := range lintOrdersSecrets {
			if strings.Contains(r.stdout+r.stderr, v) {
				t.Errorf("JSON output shows a plaintext value")
			}
		}
	})
	t.Run("sarif", func(t *testing.T) {
		r := runLintBin(t, orders, "--format=sarif", "--fail-on=none", "-")
		var log struct {
			Version string
			Runs    []struct {
				Tool struct {
					Driver struct{ Name, Version string }
				}
				Results []struct{ RuleID, Level string }
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &log); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if r.code != 0 || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != 6 || log.Runs[0].Tool.Driver.Version != version {
			t.Errorf("exit %d, log %+v", r.code, log)
		}
		for _, v := range lintOrdersSecrets {
			if strings.Contains(r.stdout+r.stderr, v) {
				t.Errorf("SARIF output shows a plaintext value")
			}
		}
	})
}
