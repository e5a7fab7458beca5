// Package lint checks ECS task definitions for plaintext secrets, references
// ECS would reject, and ecs-secrets-agent patterns wired wrong. Rules are a
// table (Rules); each finding names its rule, container and JSON path, and
// never carries an environment value, only its name and a fingerprint.
package lint

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// Severity orders findings; the names are SARIF's levels.
type Severity int

const (
	Note Severity = iota + 1
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Note:
		return "note"
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return "Severity(" + strconv.Itoa(int(s)) + ")"
}

// ParseSeverity parses "note", "warning" or "error".
func ParseSeverity(s string) (Severity, error) {
	for _, v := range []Severity{Note, Warning, Error} {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("severity %q is not error, warning or note", s)
}

// Rule is one row of the table: a stable id and name, what it finds, and how
// to fix it.
type Rule struct {
	ID       string // stable: "ESA101"
	Name     string // stable: "plaintext-secret-name"
	Severity Severity
	Summary  string
	Fix      string
	check    func(t *task, emit emitFunc)
}

// emitFunc reports one finding on container c at a register-shape JSON path.
type emitFunc func(c *container, path, msg string)

// Finding is one problem found in one file.
type Finding struct {
	File      string   `json:"file"`
	Line      int      `json:"line,omitempty"`
	Container string   `json:"container"`
	Path      string   `json:"path"` // JSON path in register-input shape
	RuleID    string   `json:"ruleId"`
	RuleName  string   `json:"rule"`
	Severity  Severity `json:"-"`
	Level     string   `json:"severity"`
	Message   string   `json:"message"`
	Fix       string   `json:"fix"`
}

// Rules returns the rule table, in id order.
func Rules() []Rule {
	return []Rule{
		{
			ID: "ESA101", Name: "plaintext-secret-name", Severity: Error,
			Summary: "An environment variable whose name says it is a secret has a plaintext value.",
			Fix:     fixPlaintext,
			check:   checkEnvironment(kindName),
		},
		{
			ID: "ESA102", Name: "plaintext-credential", Severity: Error,
			Summary: "An environment variable's value looks like a credential (AWS access key, private key, URL with a password, API token).",
			Fix:     fixPlaintext,
			check:   checkEnvironment(kindCredential),
		},
		{
			ID: "ESA103", Name: "high-entropy-value", Severity: Warning,
			Summary: "An environment variable's value is a long random-looking string, possibly a credential.",
			Fix:     fixPlaintext + "; if it is not a secret, ignore this warning",
			check:   checkEnvironment(kindEntropy),
		},
		{
			ID: "ESA201", Name: "invalid-valuefrom", Severity: Error,
			Summary: "A secrets or secretOptions valueFrom that ECS rejects.",
			Fix:     "write valueFrom as a Parameter Store name or ARN, or a Secrets Manager ARN as secret:ID or secret:ID:json-key:version-stage:version-id (all colons present)",
			check:   checkValueFrom,
		},
		{
			ID: "ESA202", Name: "invalid-agent-config", Severity: Error,
			Summary: "The agent's AGENT_CONFIG or --secret flags would fail `agent check`.",
			Fix:     "run `agent check` with the same AGENT_CONFIG and flags and fix what it names",
			check:   checkAgentConfig,
		},
		{
			ID: "ESA301", Name: "tmpfs-init-only", Severity: Error,
			Summary: "A tmpfs Docker volume is written only by containers that exit, so its content is gone before the app starts.",
			Fix:     "keep a container on the volume for the task's life (the sidecar pattern, `agent run`), or drop the tmpfs driver option; on Fargate use the exec pattern to keep secrets in memory only",
			check:   checkTmpfs,
		},
		{
			ID: "ESA302", Name: "signal-without-pid-mode", Severity: Error,
			Summary: "A sidecar's signal action cannot see the app's processes without pidMode task.",
			Fix:     `set "pidMode": "task" on the task definition (Fargate platform 1.4.0+ and EC2)`,
			check:   checkSignal,
		},
		{
			ID: "ESA303", Name: "app-missing-depends-on", Severity: Error,
			Summary: "A container reads the agent's volume but does not wait for the agent.",
			Fix:     `add {"containerName": AGENT, "condition": C} to the app's dependsOn: SUCCESS for agent init and install, HEALTHY for agent run`,
			check:   checkDependsOn(false),
		},
		{
			ID: "ESA304", Name: "app-depends-on-condition", Severity: Error,
			Summary: "A container waits for the agent with a condition that is wrong for the agent's command.",
			Fix:     "use condition SUCCESS on agent init and install (exits 0 once the files are written), HEALTHY on agent run (healthy once the first render is done)",
			check:   checkDependsOn(true),
		},
		{
			ID: "ESA305", Name: "sidecar-not-essential", Severity: Warning,
			Summary: "The agent sidecar is not essential: if it stops, the task runs on and its secrets silently stop refreshing.",
			Fix:     `set "essential": true on the agent run container`,
			check:   checkSidecarEssential,
		},
		{
			ID: "ESA306", Name: "init-essential", Severity: Error,
			Summary: "An agent container that exits (init, install) is essential, so ECS stops the task when it exits.",
			Fix:     `set "essential": false on the container (ECS defaults essential to true)`,
			check:   checkInitEssential,
		},
		{
			ID: "ESA307", Name: "health-check-missing", Severity: Error,
			Summary: "A container waits for the agent to be HEALTHY, but the agent has no healthCheck.",
			Fix:     `add "healthCheck": {"command": ["CMD", "/agent", "health"], "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 60} to the agent container`,
			check:   checkHealthCheck,
		},
		{
			ID: "ESA308", Name: "read-only-root-without-output-volume", Severity: Error,
			Summary: "The agent's root file system is read-only and no writable volume is mounted at its output directory.",
			Fix:     "mount a volume read-write at the agent's output directory (mountPoints with readOnly false)",
			check:   checkReadonlyRoot,
		},
		{
			ID: "ESA309", Name: "sidecar-without-restart-policy", Severity: Warning,
			Summary: "The essential agent sidecar has no restart policy: if the agent exits (a crash, out of memory), ECS stops the whole task, app included.",
			Fix:     `add "restartPolicy": {"enabled": true, "restartAttemptPeriod": 60} to the agent run container: ECS restarts it in place, and the restarted agent delivers any change its predecessor had not`,
			check:   checkSidecarRestart,
		},
	}
}

const fixPlaintext = "move it to the container's secrets (valueFrom: a SecureString parameter or a Secrets Manager secret) or into the agent's configuration, then rotate it: whoever could describe this task definition has seen it"

// Check runs every rule on td and returns the findings, ordered by
// container, path and rule. file is only copied into the findings.
func Check(file string, td *taskdef.TaskDef) []Finding {
	t := newTask(td)
	var out []Finding
	for _, r := range Rules() {
		r.check(t, func(c *container, path, msg string) {
			out = append(out, Finding{
				File: file, Line: td.Line(path), Container: c.name, Path: path,
				RuleID: r.ID, RuleName: r.Name, Severity: r.Severity, Level: r.Severity.String(),
				Message: msg, Fix: r.Fix,
			})
		})
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path), cmp.Compare(a.RuleID, b.RuleID))
	})
	return out
}
