package lint

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// orders-api.json seeds these plaintext values in environment.
var ordersSecrets = []string{"Tr0ub4dor&3-orders", "sk_live_51HxQ2vKp9mTz7RfA0c3Wd8Y"}

func ordersFindings(t *testing.T) []Finding {
	t.Helper()
	data, err := os.ReadFile("testdata/orders-api.taskdef.json")
	if err != nil {
		t.Fatal(err)
	}
	td, err := taskdef.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return Check("orders-api.json", td)
}

// formats renders findings in every output format.
func formats(t *testing.T, files int, fs []Finding) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var b bytes.Buffer
	if err := WriteText(&b, files, fs); err != nil {
		t.Fatal(err)
	}
	out["txt"] = bytes.Clone(b.Bytes())
	b.Reset()
	if err := WriteJSON(&b, files, fs); err != nil {
		t.Fatal(err)
	}
	out["json"] = bytes.Clone(b.Bytes())
	b.Reset()
	if err := WriteSARIF(&b, "1.0.0", fs); err != nil {
		t.Fatal(err)
	}
	out["sarif"] = bytes.Clone(b.Bytes())
	return out
}

func TestReportGolden(t *testing.T) {
	for ext, got := range formats(t, 1, ordersFindings(t)) {
		t.Run(ext, func(t *testing.T) {
			golden := filepath.Join("testdata", "orders-api.golden."+ext)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (run with -update to accept):\n%s", ext, golden, got)
			}
		})
	}
}

func TestNoReportShowsAnEnvironmentValue(t *testing.T) {
	seeded := []string{
		"correct horse battery staple",
		"AKIAIOSFODNN7EXAMPLE",
		"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----",
		"postgres://app:pA55word-seeded@db:5432/app",
		"ghp_0123456789abcdefghijABCDEFGHIJ012345",
		"xoxb-1234567890-seededslack",
		"q8Xz3LmP0vR7tY2wK9nB4cJ6",
		"hunter2",
	}
	names := []string{"DB_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SSH_KEY", "DATABASE_URL", "GH", "SLACK_TOKEN", "SESSION", "ADMIN_PASSWORD"}
	var kv []string
	for i, v := range seeded {
		kv = append(kv, names[i], v)
	}
	fs := lintJSON(t, fargate(nil, agentC("secrets", "init", nil, "--secret", "A=/a"), appC("app", "secrets", "SUCCESS", obj{"environment": env(kv...)})))
	if len(fs) != len(seeded) {
		t.Fatalf("%d findings, want one per seeded variable (%d): %v", len(fs), len(seeded), brief(fs))
	}
	all := append(ordersSecrets, seeded...)
	outputs := formats(t, 1, append(fs, ordersFindings(t)...))
	for ext, out := range outputs {
		for _, v := range all {
			for _, part := range strings.Split(v, "\n") {
				if bytes.Contains(out, []byte(part)) {
					t.Errorf("%s output shows the value of a seeded variable: %q", ext, part)
				}
			}
		}
		for _, f := range fs {
			name := strings.Fields(strings.TrimPrefix(f.Message, "environment variable "))[0]
			if !bytes.Contains(out, []byte(name)) || !bytes.Contains(out, []byte(fingerprintOf(f))) {
				t.Errorf("%s output does not name %s with its fingerprint", ext, name)
			}
		}
	}
}

// fingerprintOf is the "sha256:…" a finding's message carries.
func fingerprintOf(f Finding) string {
	i := strings.Index(f.Message, "sha256:")
	if i < 0 {
		return "sha256:?"
	}
	return f.Message[i : i+len("sha256:")+8]
}

func TestFingerprintIsFirst8HexOfSHA256(t *testing.T) {
	// printf %s hunter2 | sha256sum
	if got, want := fingerprint("hunter2"), "sha256:f52fbd32"; got != want {
		t.Errorf("fingerprint = %s, want %s", got, want)
	}
}

func TestSARIFValidatesAgainstSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile("testdata/sarif-2.1.0-subset.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	all := ordersFindings(t)
	all = append(all, Finding{File: "dir with space/<stdin>", Container: "c", Path: "containerDefinitions[0]", RuleID: "ESA303", RuleName: "app-missing-depends-on", Severity: Error, Level: "error", Message: "m", Fix: "f"})
	for name, fs := range map[string][]Finding{"findings": all, "none": nil} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteSARIF(&b, "1.0.0", fs); err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(&b)
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Errorf("SARIF does not validate: %v\n%s", err, b.String())
			}
		})
	}
	// The schema is not vacuous: it rejects what SARIF forbids.
	for name, bad := range map[string]string{
		"wrong version":   `{"version":"2.0.0","runs":[]}`,
		"no driver name":  `{"version":"2.1.0","runs":[{"tool":{"driver":{}}}]}`,
		"bad level":       `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"level":"fatal","message":{"text":"m"}}]}]}`,
		"line 0":          `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"a"},"region":{"startLine":0}}}]}]}]}`,
		"message no text": `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{}}]}]}`,
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if schema.Validate(inst) == nil {
			t.Errorf("schema accepts %s", name)
		}
	}
}
