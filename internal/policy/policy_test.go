package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// specExample is SPEC §4's example configuration, verbatim.
const specExample = `{
  "secrets": [
    {"name": "DB_PASSWORD", "valueFrom": "/prod/db/password"},
    {"name": "API_KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:api-AbCdEf:key::",
     "file": "api/key.txt", "mode": "0400"},
    {"name": "RDS", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:rds-XyZ123", "expand": true}
  ],
  "outputDir": "/run/secrets",
  "mode": "0444", "uid": 1000, "gid": 1000,
  "envFile": "secrets.env",
  "jsonFile": "secrets.json",
  "templates": [{"template": "url=postgres://app:{{ secret \"DB_PASSWORD\" }}@db/app", "destination": "db.properties"}],
  "refresh": {"interval": "5m", "jitter": "30s"},
  "onChange": [
    {"signal": {"process": "nginx", "signal": "SIGHUP"}},
    {"signal": {"pidFile": "/run/app/app.pid"}},
    {"http": {"url": "http://127.0.0.1:8080/-/reload", "method": "POST"}},
    {"redeploy": {}}
  ],
  "metricsAddr": ":9102"
}`

// load builds Settings exactly as the agent does, from AGENT_CONFIG.
func load(t *testing.T, js string) *config.Settings {
	t.Helper()
	s, err := config.Load(config.Flags{}, func(k string) string {
		if k == "AGENT_CONFIG" {
			return js
		}
		return ""
	})
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return s
}

type goldenCase struct {
	name     string
	config   string // AGENT_CONFIG; "" for none
	in       Input  // Settings filled from config
	trust    bool   // Trust instead of Build
	wantRes  []string
	wantNote []string // substrings, each in some note
}

var goldenCases = []goldenCase{
	{
		name:   "spec-example-run",
		config: specExample,
		in:     Input{Region: "us-east-1", Account: "111122223333", Commands: []string{"run"}},
		wantRes: []string{
			"arn:aws:ssm:us-east-1:111122223333:parameter/prod/db/password",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:api-AbCdEf",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:rds-XyZ123",
			"arn:aws:ecs:us-east-1:111122223333:service/*/*",
			"arn:aws:ssm:us-east-1:111122223333:parameter/ecs-secrets-agent/locks/*",
		},
		wantNote: []string{"task metadata", "AWS managed keys"},
	},
	{
		name: "names-one-region-init",
		config: `{"secrets": [
			{"name": "DB_PASSWORD", "valueFrom": "/prod/db/password"},
			{"name": "DB_NAME", "valueFrom": "dbname"},
			{"name": "API_KEY", "valueFrom": "/prod/api/key"},
			{"name": "API_KEY_AGAIN", "valueFrom": "/prod/api/key"},
			{"name": "AMI", "valueFrom": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"}
		]}`,
		in: Input{Region: "eu-west-1", Account: "111122223333", Commands: []string{"init"}},
		wantRes: []string{
			"arn:aws:ssm:eu-west-1:111122223333:parameter/prod/db/password",
			"arn:aws:ssm:eu-west-1:111122223333:parameter/dbname",
			"arn:aws:ssm:eu-west-1:111122223333:parameter/prod/api/key",
			"arn:aws:ssm:eu-west-1::parameter/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
		},
	},
	{
		name: "arns-two-regions-run",
		config: `{"secrets": [
			{"name": "EU", "valueFrom": "arn:aws:ssm:eu-west-1:111122223333:parameter/prod/db/password"},
			{"name": "PLAIN", "valueFrom": "arn:aws:ssm:eu-west-1:111122223333:parameter/dbname"},
			{"name": "US", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf"},
			{"name": "US_KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf:user::"},
			{"name": "SHARED", "valueFrom": "arn:aws:ssm:us-east-1:444455556666:parameter/shared/key"}
		]}`,
		in: Input{Region: "us-east-1", Account: "111122223333", Commands: []string{"run"}},
		wantRes: []string{
			"arn:aws:ssm:eu-west-1:111122223333:parameter/prod/db/password",
			"arn:aws:ssm:eu-west-1:111122223333:parameter/dbname",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf",
			"arn:aws:ssm:us-east-1:444455556666:parameter/shared/key",
		},
		wantNote: []string{"is in account 444455556666"},
	},
	{
		name: "aws-cn-run",
		config: `{"secrets": [
			{"name": "BJ", "valueFrom": "arn:aws-cn:ssm:cn-north-1:111122223333:parameter/prod/db/password"},
			{"name": "NX", "valueFrom": "arn:aws-cn:secretsmanager:cn-northwest-1:111122223333:secret:prod/api-AbCdEf"},
			{"name": "LOCAL", "valueFrom": "/prod/local"}
		]}`,
		in: Input{Region: "cn-north-1", Account: "111122223333", Commands: []string{"run"}},
		wantRes: []string{
			"arn:aws-cn:ssm:cn-north-1:111122223333:parameter/prod/db/password",
			"arn:aws-cn:ssm:cn-north-1:111122223333:parameter/prod/local",
			"arn:aws-cn:secretsmanager:cn-northwest-1:111122223333:secret:prod/api-AbCdEf",
		},
	},
	{
		name: "mixed-partitions-init",
		config: `{"secrets": [
			{"name": "US", "valueFrom": "arn:aws:ssm:us-east-1:111122223333:parameter/prod/x"},
			{"name": "CN", "valueFrom": "arn:aws-cn:ssm:cn-north-1:111122223333:parameter/prod/x"}
		]}`,
		in: Input{Account: "111122223333", Commands: []string{"init"}},
		wantRes: []string{
			"arn:aws:ssm:us-east-1:111122223333:parameter/prod/x",
			"arn:aws-cn:ssm:cn-north-1:111122223333:parameter/prod/x",
		},
		wantNote: []string{"span partitions aws, aws-cn"},
	},
	{
		name: "sm-reference-run",
		config: `{"secrets": [
			{"name": "DB", "valueFrom": "/aws/reference/secretsmanager/prod/db"},
			{"name": "EU", "valueFrom": "arn:aws:ssm:eu-west-1:111122223333:parameter/aws/reference/secretsmanager/app"}
		]}`,
		in: Input{Region: "us-east-1", Account: "111122223333", Commands: []string{"run"}},
		wantRes: []string{
			"arn:aws:ssm:us-east-1:111122223333:parameter/aws/reference/secretsmanager/prod/db",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-??????",
			"arn:aws:ssm:eu-west-1:111122223333:parameter/aws/reference/secretsmanager/app",
			"arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-??????",
		},
	},
	{
		name: "partial-sm-arn-init",
		config: `{"secrets": [
			{"name": "PARTIAL", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db"},
			{"name": "PARTIAL_DASH", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-main"},
			{"name": "PARTIAL_KEY", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:app:password::"},
			{"name": "FULL", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:api-AbCdEf"}
		]}`,
		in: Input{Region: "us-east-1", Account: "111122223333", Commands: []string{"init"}},
		wantRes: []string{
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-??????",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-main-??????",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:app-??????",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:api-AbCdEf",
		},
	},
	{
		name: "selectors-run",
		config: `{"secrets": [
			{"name": "V3", "valueFrom": "/prod/db/password:3"},
			{"name": "STABLE", "valueFrom": "/prod/db/password:stable"},
			{"name": "PLAIN_V2", "valueFrom": "dbname:2"},
			{"name": "ARN_LABEL", "valueFrom": "arn:aws:ssm:us-east-1:111122223333:parameter/prod/flag:live"},
			{"name": "PINNED", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:pinned-AbCdEf:::9d4cb9a4-1111-2222-3333-444455556666"},
			{"name": "PREVIOUS", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:app-XyZ123::AWSPREVIOUS:"}
		]}`,
		in: Input{Region: "us-east-1", Account: "111122223333", Commands: []string{"run"}},
		wantRes: []string{
			"arn:aws:ssm:us-east-1:111122223333:parameter/prod/db/password",
			"arn:aws:ssm:us-east-1:111122223333:parameter/dbname",
			"arn:aws:ssm:us-east-1:111122223333:parameter/prod/flag",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:pinned-AbCdEf",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:app-XyZ123",
		},
	},
	{
		name: "redeploy-explicit-run",
		config: `{"secrets": [{"name": "DB", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf"}],
			"onChange": [{"redeploy": {"cluster": "prod", "service": "web"}}]}`,
		in: Input{Region: "us-east-1", Account: "111122223333", Commands: []string{"run"}},
		wantRes: []string{
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf",
			"arn:aws:ecs:us-east-1:111122223333:service/prod/web",
			"arn:aws:ssm:us-east-1:111122223333:parameter/ecs-secrets-agent/locks/*",
		},
	},
	{
		name: "redeploy-metadata-no-account-exec",
		config: `{"secrets": [{"name": "DB", "valueFrom": "/prod/db/password"}],
			"onChange": [{"redeploy": {}}]}`,
		in: Input{Region: "eu-west-1", Commands: []string{"exec"}},
		wantRes: []string{
			"arn:aws:ssm:eu-west-1:*:parameter/prod/db/password",
			"arn:aws:ecs:eu-west-1:*:service/*/*",
			"arn:aws:ssm:eu-west-1:*:parameter/ecs-secrets-agent/locks/*",
		},
		wantNote: []string{"account unknown", "task metadata"},
	},
	{
		name: "redeploy-init-only",
		config: `{"secrets": [{"name": "DB", "valueFrom": "/prod/db/password"}],
			"onChange": [{"redeploy": {"cluster": "prod", "service": "web"}}]}`,
		in:       Input{Region: "eu-west-1", Account: "111122223333", Commands: []string{"init"}},
		wantRes:  []string{"arn:aws:ssm:eu-west-1:111122223333:parameter/prod/db/password"},
		wantNote: []string{"no ECS grants"},
	},
	{
		name: "watch-three-services",
		in: Input{Region: "us-east-1", Account: "111122223333", Commands: []string{"watch"}, Watch: []Service{
			{Cluster: "prod", Service: "web"},
			{Cluster: "arn:aws:ecs:us-east-1:111122223333:cluster/prod", Service: "api"},
			{Cluster: "staging", Service: "worker", Region: "eu-west-1"},
		}},
		wantRes: []string{
			"arn:aws:ecs:us-east-1:111122223333:service/prod/web",
			"arn:aws:ecs:us-east-1:111122223333:service/prod/api",
			"arn:aws:ecs:eu-west-1:111122223333:service/staging/worker",
			"arn:aws:ssm:us-east-1:111122223333:parameter/*",
			"arn:aws:ssm:eu-west-1:111122223333:parameter/*",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:*",
			"arn:aws:secretsmanager:eu-west-1:111122223333:secret:*",
			// The lock each watched service shares with its tasks and
			// other watchers: its path and the records under it.
			"arn:aws:ssm:us-east-1:111122223333:parameter/ecs-secrets-agent/locks/prod/web",
			"arn:aws:ssm:us-east-1:111122223333:parameter/ecs-secrets-agent/locks/prod/web/*",
			"arn:aws:ssm:us-east-1:111122223333:parameter/ecs-secrets-agent/locks/prod/api",
			"arn:aws:ssm:us-east-1:111122223333:parameter/ecs-secrets-agent/locks/prod/api/*",
			"arn:aws:ssm:eu-west-1:111122223333:parameter/ecs-secrets-agent/locks/staging/worker",
			"arn:aws:ssm:eu-west-1:111122223333:parameter/ecs-secrets-agent/locks/staging/worker/*",
		},
		wantNote: []string{"at run time", "no resource-level permissions", "WatchRedeployLock"},
	},
	{
		// The change feed's watcher: metadata reads only, on the whole
		// region and account, since its agents' references are not known.
		name: "feed-everything",
		in:   Input{Region: "eu-west-1", Account: "111122223333", Feed: &Feed{}},
		wantRes: []string{
			"arn:aws:ssm:eu-west-1:111122223333:parameter/*",
			"arn:aws:secretsmanager:eu-west-1:111122223333:secret:*",
		},
		wantNote: []string{"--feed-prefix", "AccessDenied", "String and StringList"},
	},
	{
		name: "feed-prefixes",
		in:   Input{Region: "us-east-1", Account: "111122223333", Commands: []string{"watch"}, Feed: &Feed{Prefixes: []string{"/prod/", "shared-", "/prod/"}}},
		wantRes: []string{
			"arn:aws:ssm:us-east-1:111122223333:parameter/prod/*",
			"arn:aws:ssm:us-east-1:111122223333:parameter/shared-*",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/*",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:shared-*",
		},
		wantNote: []string{"AccessDenied"},
	},
	{
		// The feed's regions, as given to agent watch --feed-regions: each
		// gets the grants; the task's own region is not needed.
		name: "feed-regions",
		in:   Input{Account: "111122223333", Feed: &Feed{Regions: []string{"eu-west-1", "us-east-1"}, Prefixes: []string{"/prod/"}}},
		wantRes: []string{
			"arn:aws:ssm:eu-west-1:111122223333:parameter/prod/*",
			"arn:aws:ssm:us-east-1:111122223333:parameter/prod/*",
			"arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/*",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/*",
		},
		wantNote: []string{"--feed-regions"},
	},
	{
		// A feed watcher that also redeploys a service: both sets of grants.
		name: "feed-and-watch",
		in: Input{Region: "us-east-1", Account: "111122223333", Feed: &Feed{Prefixes: []string{"/prod/"}},
			Watch: []Service{{Cluster: "prod", Service: "web"}}},
		wantRes: []string{
			"arn:aws:ecs:us-east-1:111122223333:service/prod/web",
			"arn:aws:ssm:us-east-1:111122223333:parameter/*",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:*",
			"arn:aws:ssm:us-east-1:111122223333:parameter/ecs-secrets-agent/locks/prod/web",
			"arn:aws:ssm:us-east-1:111122223333:parameter/ecs-secrets-agent/locks/prod/web/*",
			"arn:aws:ssm:us-east-1:111122223333:parameter/prod/*",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/*",
		},
		wantNote: []string{"at run time", "AccessDenied"},
	},
	{
		name:    "trust",
		trust:   true,
		in:      Input{Region: "us-east-1", Account: "111122223333"},
		wantRes: nil,
	},
	{
		name:     "trust-no-account",
		trust:    true,
		in:       Input{Region: "us-east-1"},
		wantNote: []string{"account unknown"},
	},
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			if c.config != "" {
				in.Settings = load(t, c.config)
			}
			var (
				doc   Document
				notes []string
				err   error
			)
			if c.trust {
				doc, notes, err = Trust(in)
			} else {
				doc, notes, err = Build(in)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := doc.JSON()
			if err != nil {
				t.Fatal(err)
			}
			gotNotes := []byte(strings.Join(notes, "\n") + "\n")
			if len(notes) == 0 {
				gotNotes = nil
			}
			compareGolden(t, filepath.Join("testdata", c.name+".json"), got)
			compareGolden(t, filepath.Join("testdata", c.name+".notes.txt"), gotNotes)

			golden, err := os.ReadFile(filepath.Join("testdata", c.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			checkDocument(t, golden, c.trust, c.wantRes)
			for _, want := range c.wantNote {
				if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, want) }) {
					t.Errorf("no note mentions %q; notes:\n%s", want, strings.Join(notes, "\n"))
				}
			}
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if got == nil {
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if os.IsNotExist(err) && got == nil {
		return
	}
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// allowedActions are the only actions a policy may name, with whether the
// action may have Resource "*" (no resource-level permissions, or a key the
// configuration cannot name).
var allowedActions = map[string]bool{
	"ssm:GetParameters":             false,
	"ssm:GetParameter":              false,
	"ssm:PutParameter":              false,
	"ssm:GetParametersByPath":       false,
	"ssm:DeleteParameter":           false,
	"secretsmanager:GetSecretValue": false,
	"secretsmanager:DescribeSecret": false,
	"kms:Decrypt":                   true,
	"ecs:DescribeServices":          false,
	"ecs:UpdateService":             false,
	"ecs:DescribeTaskDefinition":    true,
	"sts:AssumeRole":                false,
}

var (
	actionRE = regexp.MustCompile(`^[a-z]+:[A-Z][A-Za-z]+$`)
	sidRE    = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	arnRE    = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):(ssm|secretsmanager|ecs):[a-z0-9-]+:([0-9]{12}|\*|):[^\s]+$`)
)

// checkDocument checks a printed policy as IAM would read it, and that its
// resources are exactly wantRes.
func checkDocument(t *testing.T, data []byte, trust bool, wantRes []string) {
	t.Helper()
	var doc Document
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not a policy document: %v", err)
	}
	if doc.Version != "2012-10-17" {
		t.Errorf("Version %q", doc.Version)
	}
	if len(doc.Statement) == 0 {
		t.Fatal("no statements")
	}
	sids := map[string]bool{}
	gotRes := map[string]bool{}
	for _, st := range doc.Statement {
		if !sidRE.MatchString(st.Sid) || sids[st.Sid] {
			t.Errorf("Sid %q: empty, not alphanumeric or repeated", st.Sid)
		}
		sids[st.Sid] = true
		if st.Effect != "Allow" {
			t.Errorf("%s: Effect %q", st.Sid, st.Effect)
		}
		if len(st.Action) == 0 {
			t.Errorf("%s: no Action", st.Sid)
		}
		if !slices.IsSorted(st.Action) || !slices.IsSorted(st.Resource) {
			t.Errorf("%s: actions or resources not sorted", st.Sid)
		}
		starOK := true
		for _, a := range st.Action {
			star, ok := allowedActions[a]
			if !actionRE.MatchString(a) || !ok {
				t.Errorf("%s: action %q is not service:Operation from the allowed list", st.Sid, a)
			}
			starOK = starOK && star
			if a == "kms:Decrypt" && len(st.Condition["StringEquals"]["kms:ViaService"]) == 0 {
				t.Errorf("%s: kms:Decrypt without a kms:ViaService condition", st.Sid)
			}
		}
		if trust {
			if st.Principal["Service"] != "ecs-tasks.amazonaws.com" || len(st.Resource) != 0 {
				t.Errorf("%s: trust statement has principal %v and resources %v", st.Sid, st.Principal, st.Resource)
			}
			continue
		}
		if st.Principal != nil {
			t.Errorf("%s: Principal in an identity policy", st.Sid)
		}
		if len(st.Resource) == 0 {
			t.Errorf("%s: no Resource", st.Sid)
		}
		for _, r := range st.Resource {
			if r == "*" {
				if !starOK {
					t.Errorf("%s: Resource * for %v", st.Sid, st.Action)
				}
				continue
			}
			if !arnRE.MatchString(r) {
				t.Errorf("%s: resource %q is not an ssm, secretsmanager or ecs ARN", st.Sid, r)
			}
			gotRes[r] = true
		}
	}
	want := map[string]bool{}
	for _, r := range wantRes {
		want[r] = true
		if !gotRes[r] {
			t.Errorf("resource %s is missing", r)
		}
	}
	for r := range gotRes {
		if !want[r] {
			t.Errorf("resource %s is granted but not named by the configuration", r)
		}
	}
}

func TestSecretResource(t *testing.T) {
	const p = "arn:aws:secretsmanager:us-east-1:111122223333:secret:"
	for id, want := range map[string]string{
		"app-AbCdEf":        "app-AbCdEf",
		"prod/db-XyZ123":    "prod/db-XyZ123",
		"app":               "app-??????",
		"prod/db":           "prod/db-??????",
		"db-main":           "db-main-??????", // 4 characters after the dash
		"db-backup1":        "db-backup1-??????",
		"x-y/abcdef":        "x-y/abcdef-??????", // the last dash is not before a 6-char suffix
		"-AbCdEf":           "-AbCdEf-??????",    // no name before the suffix
		"name-Ab_dEf":       "name-Ab_dEf-??????",
		"prod/db-backup":    "prod/db-backup", // ambiguous: taken as complete (documented)
		"a+b=c.d@e-123456":  "a+b=c.d@e-123456",
		"app-AbCdEf-??????": "app-AbCdEf-??????-??????",
	} {
		if got := SecretResource(p + id); got != p+want {
			t.Errorf("SecretResource(%q) = %q, want %q", id, strings.TrimPrefix(got, p), want)
		}
	}
}

func TestPollSecretsSplit(t *testing.T) {
	// A pinned version id is read but never polled; with run, the other
	// secret is both, so the two actions land in separate statements.
	s := load(t, `{"secrets": [
		{"name": "PINNED", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf:::9d4cb9a4-1111-2222-3333-444455556666"},
		{"name": "LIVE", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:b-AbCdEf"}
	]}`)
	doc, _, err := Build(Input{Settings: s, Region: "us-east-1", Account: "111122223333", Commands: []string{"run"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, st := range doc.Statement {
		got[st.Sid] = st.Resource
	}
	if want := []string{"arn:aws:secretsmanager:us-east-1:111122223333:secret:b-AbCdEf"}; !slices.Equal(got[SidPollSecrets], want) {
		t.Errorf("PollSecrets = %v, want %v", got[SidPollSecrets], want)
	}
	if len(got[SidReadSecrets]) != 2 {
		t.Errorf("ReadSecrets = %v, want both secrets", got[SidReadSecrets])
	}

	// init polls nothing: no DescribeSecret at all.
	doc, _, err = Build(Input{Settings: s, Region: "us-east-1", Account: "111122223333", Commands: []string{"init"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := doc.JSON()
	if bytes.Contains(b, []byte("DescribeSecret")) {
		t.Errorf("init policy grants DescribeSecret:\n%s", b)
	}
}

func TestDefaultCommands(t *testing.T) {
	s := load(t, `{"secrets": [{"name": "A", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf"}]}`)
	doc, notes, err := Build(Input{Settings: s, Region: "us-east-1", Account: "111122223333"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := doc.JSON()
	if !bytes.Contains(b, []byte("secretsmanager:DescribeSecret")) {
		t.Errorf("default (run) policy lacks DescribeSecret:\n%s", b)
	}
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "no command given") }) {
		t.Errorf("no note about the assumed command: %q", notes)
	}
}

func TestBuildErrors(t *testing.T) {
	bare := `{"secrets": [{"name": "A", "valueFrom": "/prod/a"}]}`
	redeployMeta := `{"secrets": [{"name": "A", "valueFrom": "arn:aws:ssm:us-east-1:111122223333:parameter/a"}], "onChange": [{"redeploy": {}}]}`
	for _, c := range []struct {
		name   string
		config string
		in     Input
		want   string
	}{
		{"bare name without region", bare, Input{Commands: []string{"init"}}, `secret A (valueFrom /prod/a) needs the task's region`},
		{"redeploy without region", redeployMeta, Input{Commands: []string{"run"}}, `onChange[0].redeploy needs the task's region`},
		{"bad account", bare, Input{Region: "us-east-1", Account: "1234"}, `account must be 12 digits, got "1234"`},
		{"bad region", bare, Input{Region: "useast1"}, `region "useast1" does not look like`},
		{"bad partition", bare, Input{Region: "us-east-1", Partition: "aws-xx"}, `partition must be aws, aws-cn or aws-us-gov`},
		{"region not in partition", bare, Input{Region: "us-east-1", Partition: "aws-cn"}, `region "us-east-1" is not in partition "aws-cn"`},
		{"unknown command", bare, Input{Region: "us-east-1", Commands: []string{"serve"}}, `command "serve": want one of init, run, exec, watch`},
		{"nothing", "", Input{Region: "us-east-1"}, `nothing to grant`},
		{"watch without services", bare, Input{Region: "us-east-1", Commands: []string{"watch"}}, `command watch: no services to watch and no change feed to serve`},
		{"feed without watch", bare, Input{Region: "us-east-1", Commands: []string{"run"}, Feed: &Feed{}}, `the change feed is served by agent watch, but the commands (run) do not include watch`},
		{"feed without region", "", Input{Feed: &Feed{}}, `the change feed needs the task's region`},
		{"feed bad region", "", Input{Feed: &Feed{Regions: []string{"eu-west-1", "europe"}}}, `feed region "europe" does not look like "us-east-1"`},
		{"feed regions in two partitions", "", Input{Feed: &Feed{Regions: []string{"eu-west-1", "cn-north-1"}}},
			`feed regions eu-west-1 and cn-north-1 are in partitions aws and aws-cn: one watcher's role reads one partition`},
		{"feed regions not the task's partition", "", Input{Region: "us-east-1", Feed: &Feed{Regions: []string{"cn-north-1"}}},
			`feed regions cn-north-1 are in partition aws-cn, the task's region us-east-1 in aws: one watcher's role reads one partition`},
		{"feed prefix wildcard", "", Input{Region: "us-east-1", Feed: &Feed{Prefixes: []string{"/prod/*"}}}, `feed prefix "/prod/*": want the start of parameter and secret names`},
		{"feed prefix slash", "", Input{Region: "us-east-1", Feed: &Feed{Prefixes: []string{"/"}}}, `feed prefix "/": want the start`},
		{"feed prefix empty", "", Input{Region: "us-east-1", Feed: &Feed{Prefixes: []string{""}}}, `feed prefix "": want the start`},
		{"feed prefix space", "", Input{Region: "us-east-1", Feed: &Feed{Prefixes: []string{"/prod /"}}}, `feed prefix "/prod /": want the start`},
		{"feed prefix empty level", "", Input{Region: "us-east-1", Feed: &Feed{Prefixes: []string{"//prod"}}}, `feed prefix "//prod": want the start`},
		{"services without watch", bare, Input{Region: "us-east-1", Commands: []string{"run"}, Watch: []Service{{Cluster: "c", Service: "s"}}}, `do not include watch`},
		{"watch empty service", "", Input{Region: "us-east-1", Watch: []Service{{Cluster: "c"}}}, `service name is empty`},
		{"watch bad cluster ARN", "", Input{Region: "us-east-1", Watch: []Service{{Cluster: "arn:aws:ecs:us-east-1:111122223333:service/x/y", Service: "s"}}}, `is not a cluster ARN`},
		{"watch bad service name", "", Input{Region: "us-east-1", Watch: []Service{{Cluster: "c", Service: "a*"}}}, `is not a cluster or service name`},
		{"watch without region", "", Input{Watch: []Service{{Cluster: "c", Service: "s"}}}, `needs the task's region`},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			if c.config != "" {
				in.Settings = load(t, c.config)
			}
			_, _, err := Build(in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestWatchServiceARN(t *testing.T) {
	doc, _, err := Build(Input{Account: "111122223333", Watch: []Service{
		{Service: "arn:aws:ecs:eu-west-1:444455556666:service/prod/web"},
		{Service: "api", Region: "us-west-2"}, // default cluster
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"arn:aws:ecs:eu-west-1:444455556666:service/prod/web",
		"arn:aws:ecs:us-west-2:111122223333:service/default/api",
	}
	if got := doc.Statement[0].Resource; doc.Statement[0].Sid != SidWatchServices || !slices.Equal(got, want) {
		t.Errorf("first statement %s %v, want %s %v", doc.Statement[0].Sid, got, SidWatchServices, want)
	}
}

func TestStable(t *testing.T) {
	// Same input, same bytes: maps and sets never leak their order.
	s := load(t, specExample)
	in := Input{Settings: s, Region: "us-east-1", Account: "111122223333", Commands: []string{"run", "init"}}
	first, _, _ := Build(in)
	a, _ := first.JSON()
	for range 20 {
		d, _, _ := Build(in)
		b, _ := d.JSON()
		if !bytes.Equal(a, b) {
			t.Fatalf("output changed between runs:\n%s\n%s", a, b)
		}
	}
}

func TestSizeNote(t *testing.T) {
	var secrets []string
	for i := range 120 {
		secrets = append(secrets, `{"name": "S`+strings.Repeat("X", i%5)+itoa(i)+`", "valueFrom": "/prod/some/rather/long/path/to/parameter/number/`+itoa(i)+`"}`)
	}
	s := load(t, `{"secrets": [`+strings.Join(secrets, ",")+`]}`)
	_, notes, err := Build(Input{Settings: s, Region: "us-east-1", Account: "111122223333", Commands: []string{"init"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "characters, over") }) {
		t.Errorf("no size note for 120 parameters: %q", notes)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestFeedMetadataOnly(t *testing.T) {
	// The feed's role reads versions, never a value: whatever the
	// prefixes, its policy names the two metadata actions and nothing else.
	for _, f := range []Feed{{}, {Prefixes: []string{"/prod/"}}, {Prefixes: []string{"a", "/b/c-", "d@e"}}} {
		doc, _, err := Build(Input{Region: "us-east-1", Account: "111122223333", Feed: &f})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, st := range doc.Statement {
			got = append(got, st.Sid+" "+strings.Join(st.Action, ","))
		}
		if want := []string{"FeedParameters ssm:GetParameters", "FeedSecrets secretsmanager:DescribeSecret"}; !slices.Equal(got, want) {
			t.Errorf("prefixes %q: statements %q, want %q", f.Prefixes, got, want)
		}
	}
}

// FuzzFeedPrefix: a prefix either is refused or becomes exactly one
// parameter and one secret resource that end in the only wildcard, with
// the prefix (without its leading /) before it.
func FuzzFeedPrefix(f *testing.F) {
	for _, p := range []string{"/prod/", "prod/", "shared-", "/", "", "/prod/*", "a?b", "/a b/", "x@y+z=1.2_3", "//"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		doc, _, err := Build(Input{Region: "us-east-1", Account: "111122223333", Feed: &Feed{Prefixes: []string{p}}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "feed prefix ") {
				t.Fatalf("prefix %q: error %v", p, err)
			}
			return
		}
		if strings.ContainsAny(p, "*? \t\n") || strings.Trim(p, "/") == "" || strings.Contains(p, "//") {
			t.Fatalf("prefix %q accepted", p)
		}
		name := strings.TrimPrefix(p, "/")
		want := []string{
			"arn:aws:ssm:us-east-1:111122223333:parameter/" + name + "*",
			"arn:aws:secretsmanager:us-east-1:111122223333:secret:" + name + "*",
		}
		var got []string
		for _, st := range doc.Statement {
			got = append(got, st.Resource...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("prefix %q: resources %q, want %q", p, got, want)
		}
	})
}
