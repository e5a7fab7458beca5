package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/lint"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

var updateMigrate = flag.Bool("update-migrate", false, "rewrite internal/migrate/testdata/*.golden.json")

// migrateOrders is a realistic describe output: native secrets and two
// plaintext secrets in environment (lintOrdersSecrets' values).
const (
	migrateOrders = "../../internal/migrate/testdata/orders-api.describe.json"
	migrateImage  = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/ecs-secrets-agent:1.0.0"
	migrateRegion = "eu-west-1"
)

// migrateEnv is the environment of an operator whose credentials come from
// the fake, with no AWS configuration files of their own.
func migrateEnv(t *testing.T, f *awsfake.Fake) []string {
	dir := t.TempDir()
	return append(f.Env(migrateRegion), "AWS_CONFIG_FILE="+filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "credentials"))
}

// fakeSSMClient reads the fake's parameters as the test, signed with the
// credentials the fake hands out.
func fakeSSMClient(f *awsfake.Fake) *ssm.Client {
	return ssm.New(ssm.Options{
		Region:       migrateRegion,
		BaseEndpoint: aws.String(f.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(f.AccessKeyID, f.SecretAccessKey, f.SessionToken),
	})
}

func TestMigrateSidecarGolden(t *testing.T) {
	r := runAgent(t, nil, nil, "migrate", "--pattern", "sidecar", "--image", migrateImage, migrateOrders)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	golden := "../../internal/migrate/testdata/orders-api.sidecar.golden.json"
	if *updateMigrate {
		if err := os.WriteFile(golden, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(want) {
		t.Errorf("stdout differs from %s (-update-migrate to rewrite):\n%s", golden, r.stdout)
	}
	const notes = `note: container "orders-api": its secrets are now files, no longer environment variables: point the app at /run/secrets/JWT_SIGNING_KEY, /run/secrets/REDIS_AUTH (or set NAME_FILE variables where the image reads them)
note: the agent reads the secrets with the task role, not the execution role: attach the --policy-out policy to it
note: container "orders-api" containerDefinitions[0].environment[2]: ESA101 stays in plaintext; --move-plaintext PREFIX moves it to Parameter Store
note: container "orders-api" containerDefinitions[0].environment[3]: ESA102 stays in plaintext; --move-plaintext PREFIX moves it to Parameter Store
`
	if r.stderr != notes {
		t.Errorf("stderr\n got %s\nwant %s", r.stderr, notes)
	}

	// Its own output, from stdin: the same bytes again.
	dir := t.TempDir()
	again := filepath.Join(dir, "migrated.json")
	if err := os.WriteFile(again, want, 0o644); err != nil {
		t.Fatal(err)
	}
	r2 := runAgent(t, nil, nil, "migrate", "--pattern", "sidecar", "--image", migrateImage, again)
	if r2.code != 0 || r2.stdout != string(want) {
		t.Errorf("second run: exit %d, output changed: %v\n%s", r2.code, r2.stdout != string(want), r2.stderr)
	}
}

func TestMigrateMovePlaintext(t *testing.T) {
	f := awsfake.New()
	t.Cleanup(f.Close)
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	r := runAgent(t, migrateEnv(t, f), lintOrdersSecrets, "migrate", "--pattern", "init", "--image", migrateImage,
		"--move-plaintext", "/orders/prod", "--policy-out", policyFile, migrateOrders)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	ctx := context.Background()
	client := fakeSSMClient(f)
	for i, name := range []string{"/orders/prod/DB_PASSWORD", "/orders/prod/STRIPE_API_KEY"} {
		out, err := client.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if out.Parameter.Type != ssmtypes.ParameterTypeSecureString || aws.ToString(out.Parameter.Value) != lintOrdersSecrets[i] {
			t.Errorf("%s: type %s, value right: %v", name, out.Parameter.Type, aws.ToString(out.Parameter.Value) == lintOrdersSecrets[i])
		}
		if !strings.Contains(r.stdout, `\"valueFrom\":\"`+name+`\"`) {
			t.Errorf("AGENT_CONFIG does not reference %s", name)
		}
		if !strings.Contains(r.stderr, "created parameter "+name+"\n") {
			t.Errorf("stderr does not say %s was created:\n%s", name, r.stderr)
		}
	}
	if n := f.Calls("PutParameter"); n != 2 {
		t.Errorf("%d PutParameter calls, want 2", n)
	}
	td, err := taskdef.Parse([]byte(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	for _, finding := range lint.Check("out", td) {
		t.Errorf("lint on the result: %s %s", finding.RuleID, finding.Message)
	}
	doc, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	var pol struct{ Statement []struct{ Resource []string } }
	if err := json.Unmarshal(doc, &pol); err != nil {
		t.Fatalf("policy: %v\n%s", err, doc)
	}
	if !strings.Contains(string(doc), `"arn:aws:ssm:eu-west-1:*:parameter/orders/prod/DB_PASSWORD"`) {
		t.Errorf("policy does not grant the moved parameter:\n%s", doc)
	}

	// A rerun on the original finds the same values in place: no error.
	f.ResetCounts()
	r = runAgent(t, migrateEnv(t, f), lintOrdersSecrets, "migrate", "--pattern", "init", "--image", migrateImage,
		"--move-plaintext", "/orders/prod", migrateOrders)
	if r.code != 0 || strings.Contains(r.stderr, "created parameter") || f.Calls("GetParameter") != 2 {
		t.Errorf("rerun: exit %d, %d GetParameter\n%s", r.code, f.Calls("GetParameter"), r.stderr)
	}
}

func TestMigrateMovePlaintextDryRun(t *testing.T) {
	f := awsfake.New()
	t.Cleanup(f.Close)
	r := runAgent(t, migrateEnv(t, f), lintOrdersSecrets, "migrate", "--pattern", "sidecar", "--image", migrateImage,
		"--move-plaintext", "/orders/prod", "--dry-run", migrateOrders)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	const want = `would move: container "orders-api" environment DB_PASSWORD (ESA101) → SecureString parameter /orders/prod/DB_PASSWORD
would move: container "orders-api" environment STRIPE_API_KEY (ESA102) → SecureString parameter /orders/prod/STRIPE_API_KEY
dry run: 2 parameter(s) not written; no task definition printed
`
	if r.stderr != want || r.stdout != "" {
		t.Errorf("stdout %q stderr\n%s\nwant\n%s", r.stdout, r.stderr, want)
	}
	if n := len(f.CallLog()); n != 0 || f.CredentialRequests() != 0 {
		t.Errorf("dry run made %d AWS calls and %d credential requests", n, f.CredentialRequests())
	}
}

func TestMigrateMovePlaintextDenied(t *testing.T) {
	f := awsfake.New()
	t.Cleanup(f.Close)
	f.DenyAccess("PutParameter", "/orders/prod/STRIPE_API_KEY")
	r := runAgent(t, migrateEnv(t, f), lintOrdersSecrets, "migrate", "--pattern", "sidecar", "--image", migrateImage,
		"--move-plaintext", "/orders/prod", migrateOrders)
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("exit %d stdout %q, want 1 and nothing printed\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"created parameter /orders/prod/DB_PASSWORD\n",
		`agent migrate: putting parameter /orders/prod/STRIPE_API_KEY (from STRIPE_API_KEY of container "orders-api"): AccessDeniedException: `,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestMigrateUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no image", []string{"--pattern", "init", migrateOrders}, "agent migrate: --image is required: the agent image (REGISTRY/ecs-secrets-agent:VERSION)\n"},
		{"no file", []string{"--pattern", "init", "--image", "x"}, "usage: agent migrate"},
		{"bad entrypoint", []string{"--pattern", "exec", "--image", "x", "--entrypoint", "/app", migrateOrders}, `want a JSON array of strings`},
		{"dry run alone", []string{"--pattern", "init", "--image", "x", "--dry-run", migrateOrders}, "agent migrate: --kms-key and --dry-run go with --move-plaintext\n"},
		{"watch and move", []string{"--pattern", "watch", "--image", "x", "--cluster", "c", "--service", "s", "--move-plaintext", "/p", migrateOrders}, "agent migrate: --move-plaintext changes the task definition"},
		{"missing file", []string{"--pattern", "init", "--image", "x", "/nonexistent.json"}, "agent migrate: /nonexistent.json: no such file or directory\n"},
		{"exec cannot wrap", []string{"--pattern", "exec", "--image", "x", "../../internal/migrate/testdata/shop-ec2.register.json"}, `--pattern exec wraps one container, and "web" and "worker" both have secrets`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runAgent(t, nil, nil, append([]string{"migrate"}, tc.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Errorf("exit %d stdout %q stderr\n%s\nwant 2 and %q", r.code, r.stdout, r.stderr, tc.want)
			}
		})
	}
}

func TestMigrateWatchPrintsWatcher(t *testing.T) {
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	r := runAgent(t, nil, nil, "migrate", "--pattern", "watch", "--image", migrateImage, "--cluster", "prod",
		"--service", "orders-api", "--region", migrateRegion, "--policy-out", policyFile, migrateOrders)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `"family": "secrets-watch"`) || !strings.Contains(r.stderr, "task definition orders-api is unchanged") {
		t.Errorf("stdout\n%s\nstderr\n%s", r.stdout, r.stderr)
	}
	doc, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "ecs:UpdateService") || !strings.Contains(string(doc), "service/prod/orders-api") {
		t.Errorf("watch policy:\n%s", doc)
	}
}

// TestMigrateResultGivesNativeValues runs what migrate printed, the way the
// containers would (the agent's own command and environment, paths moved
// into a temporary directory), against the fake: the app sees exactly the
// values ECS's native injection would have given it, including a plaintext
// value moved to Parameter Store on the way.
func TestMigrateResultGivesNativeValues(t *testing.T) {
	f := awsfake.New()
	t.Cleanup(f.Close)
	const dbPassword, apiKey, plain = `p@ss "w0rd" $HOME\n`, "key-from-json", "Tr0ub4dor&3-billing"
	f.PutParameter(migrateRegion, "/billing/db-password", dbPassword, true)
	secretARN := f.PutSecretString(migrateRegion, "billing/api", `{"key":"`+apiKey+`","other":"x"}`)
	values := []string{dbPassword, apiKey, plain}
	native := map[string]string{"DB_PASSWORD": dbPassword, "API_KEY": apiKey, "SESSION_SECRET": plain, "MODE": "live"}

	in := `{"family": "billing", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
	  "containerDefinitions": [{"name": "app", "image": "billing:1", "entryPoint": ["sh", "-c"], "command": ["env -0 > \"$OUT\""],
	    "environment": [{"name": "MODE", "value": "live"}, {"name": "SESSION_SECRET", "value": "` + plain + `"}],
	    "secrets": [{"name": "DB_PASSWORD", "valueFrom": "/billing/db-password"}, {"name": "API_KEY", "valueFrom": "` + secretARN + `:key::"}]}]}`
	file := filepath.Join(t.TempDir(), "billing.json")
	if err := os.WriteFile(file, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}

	migrated := func(t *testing.T, pattern string) map[string]any {
		t.Helper()
		r := runAgent(t, migrateEnv(t, f), values, "migrate", "--pattern", pattern, "--image", migrateImage, "--move-plaintext", "/billing", file)
		if r.code != 0 {
			t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
		}
		var td map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &td); err != nil {
			t.Fatal(err)
		}
		return td
	}
	containerEnv := func(c map[string]any) []string {
		var env []string
		list, _ := c["environment"].([]any)
		for _, e := range list {
			kv := e.(map[string]any)
			env = append(env, kv["name"].(string)+"="+kv["value"].(string))
		}
		return env
	}
	strs := func(v any) []string {
		var out []string
		list, _ := v.([]any)
		for _, e := range list {
			out = append(out, e.(string))
		}
		return out
	}
	byName := func(td map[string]any, name string) map[string]any {
		for _, c := range td["containerDefinitions"].([]any) {
			if c.(map[string]any)["name"] == name {
				return c.(map[string]any)
			}
		}
		t.Fatalf("no container %s", name)
		return nil
	}

	t.Run("exec", func(t *testing.T) {
		td := migrated(t, "exec")
		app := byName(td, "app")
		argv := append(strs(app["entryPoint"]), strs(app["command"])...)
		if argv[0] != "/shared/agent" {
			t.Fatalf("argv %q", argv)
		}
		out := filepath.Join(t.TempDir(), "env")
		env := append(append(migrateEnv(t, f), containerEnv(app)...), "OUT="+out, "PATH="+os.Getenv("PATH"))
		r := runAgent(t, env, values, argv[1:]...) // agentBin is what the installer put at /shared/agent
		if r.code != 0 {
			t.Fatalf("app: exit %d\n%s", r.code, r.stderr)
		}
		got := envOf(readFile(t, out))
		for k, v := range native {
			if got[k] != v {
				t.Errorf("$%s wrong (set: %v), want what ECS would inject", k, got[k] != "")
			}
		}
	})
	t.Run("init", func(t *testing.T) {
		td := migrated(t, "init")
		agent := byName(td, "secrets")
		dir := filepath.Join(t.TempDir(), "secrets")
		args := append(strs(agent["command"]), "--output-dir", dir) // /run/secrets, moved
		r := runAgent(t, append(migrateEnv(t, f), containerEnv(agent)...), values, args...)
		if r.code != 0 {
			t.Fatalf("agent init: exit %d\n%s", r.code, r.stderr)
		}
		for k, v := range native {
			if k == "MODE" {
				continue // stays in the app's environment
			}
			if got := readFile(t, filepath.Join(dir, k)); got != v {
				t.Errorf("/run/secrets/%s differs from what ECS would inject", k)
			}
		}
		if env := containerEnv(byName(td, "app")); !slices.Equal(env, []string{"MODE=live"}) {
			t.Errorf("app environment %q, want MODE=live only", env)
		}
	})
}

// TestMigrateRerunWritesSamePolicy: on its own output migrate still writes
// the policy (from the agent's AGENT_CONFIG), so a pipeline can rerun it.
func TestMigrateRerunWritesSamePolicy(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "p1.json"), filepath.Join(dir, "p2.json")
	r := runAgent(t, nil, nil, "migrate", "--pattern", "exec", "--image", migrateImage, "--region", migrateRegion, "--policy-out", first, migrateOrders)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	out := filepath.Join(dir, "migrated.json")
	if err := os.WriteFile(out, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	r2 := runAgent(t, nil, nil, "migrate", "--pattern", "exec", "--image", migrateImage, "--region", migrateRegion, "--policy-out", second, out)
	if r2.code != 0 || r2.stdout != r.stdout {
		t.Fatalf("rerun: exit %d, output changed %v\n%s", r2.code, r2.stdout != r.stdout, r2.stderr)
	}
	p1, p2 := readFile(t, first), readFile(t, second)
	if p1 != p2 || !strings.Contains(p1, "parameter/orders/prod/redis-auth") || !strings.Contains(p1, "secretsmanager:DescribeSecret") {
		t.Errorf("policies differ or miss the secrets:\n%s\n%s", p1, p2)
	}
}
