package migrate

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/lint"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/tdcheck"
)

const image = "111122223333.dkr.ecr.us-east-1.amazonaws.com/ecs-secrets-agent:1.0.0"

// fargateTwoApps is a register input on Fargate with two app containers
// sharing one secret, a log driver secret, and a field the SDK of this
// build may not know (kept as written).
const fargateTwoApps = `{
  "family": "billing",
  "taskRoleArn": "arn:aws:iam::111122223333:role/billing-task",
  "executionRoleArn": "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "1024",
  "memory": "2048",
  "ephemeralStorage": {"sizeInGiB": 30},
  "containerDefinitions": [
    {
      "name": "api",
      "image": "billing-api:7",
      "essential": true,
      "entryPoint": ["/bin/sh", "-c"],
      "command": ["exec /app/api --listen :8080"],
      "secrets": [
        {"name": "DB_URL", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:billing/db-AbCdEf:url::"},
        {"name": "HMAC_KEY", "valueFrom": "/billing/hmac"}
      ],
      "mountPoints": [{"sourceVolume": "cache", "containerPath": "/cache"}],
      "logConfiguration": {
        "logDriver": "awsfirelens",
        "options": {"Name": "datadog"},
        "secretOptions": [{"name": "apikey", "valueFrom": "/billing/datadog-key"}]
      }
    },
    {
      "name": "jobs",
      "image": "billing-jobs:7",
      "essential": false,
      "dependsOn": [{"containerName": "api", "condition": "START"}],
      "secrets": [{"name": "DB_URL", "valueFrom": "arn:aws:secretsmanager:us-east-1:111122223333:secret:billing/db-AbCdEf:url::"}]
    }
  ],
  "volumes": [{"name": "cache"}]
}`

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t *testing.T, data []byte) *taskdef.TaskDef {
	t.Helper()
	td, err := taskdef.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return td
}

// run migrates data and returns the printed bytes.
func run(t *testing.T, data []byte, opt Options) (*Result, []byte) {
	t.Helper()
	res, err := Migrate(parse(t, data), opt)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	out, err := Marshal(res.TaskDef)
	if err != nil {
		t.Fatal(err)
	}
	return res, out
}

func isAgent(c types.ContainerDefinition) bool { return tdcheck.Deref(c.Image) == image }

// check applies deploy/taskdefs' checks to a printed task definition.
func check(t *testing.T, out []byte) *ecs.RegisterTaskDefinitionInput {
	t.Helper()
	td := tdcheck.DecodeStrict(t, out)
	tdcheck.KeyCase(t, out)
	tdcheck.Containers(t, td, isAgent)
	if slices.Contains(td.RequiresCompatibilities, types.CompatibilityFargate) {
		tdcheck.Fargate(t, td)
	}
	return td
}

func container(t *testing.T, td *ecs.RegisterTaskDefinitionInput, name string) types.ContainerDefinition {
	t.Helper()
	for _, c := range td.ContainerDefinitions {
		if tdcheck.Deref(c.Name) == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return types.ContainerDefinition{}
}

func agentConfigOf(t *testing.T, c types.ContainerDefinition) string {
	t.Helper()
	for _, e := range c.Environment {
		if tdcheck.Deref(e.Name) == "AGENT_CONFIG" {
			return tdcheck.Deref(e.Value)
		}
	}
	t.Fatalf("container %s has no AGENT_CONFIG", tdcheck.Deref(c.Name))
	return ""
}

// dependsOn and mounts as compact strings, for exact comparison.
func deps(c types.ContainerDefinition) []string {
	var out []string
	for _, d := range c.DependsOn {
		out = append(out, tdcheck.Deref(d.ContainerName)+":"+string(d.Condition))
	}
	return out
}

func mounts(c types.ContainerDefinition) []string {
	var out []string
	for _, m := range c.MountPoints {
		ro := "rw"
		if m.ReadOnly != nil && *m.ReadOnly {
			ro = "ro"
		}
		out = append(out, tdcheck.Deref(m.SourceVolume)+":"+tdcheck.Deref(m.ContainerPath)+":"+ro)
	}
	return out
}

// lintErrors are lint's findings on out, the plaintext ones (which migrate
// moves only with --move-plaintext) left out.
func lintErrors(t *testing.T, out []byte) []string {
	t.Helper()
	var errs []string
	for _, f := range lint.Check("out.json", parse(t, out)) {
		if f.Severity == lint.Error && !strings.HasPrefix(f.RuleID, "ESA10") {
			errs = append(errs, f.RuleID+" "+f.Container+": "+f.Message)
		}
	}
	return errs
}

// kept checks that everything migrate does not own is as the input had it:
// the task-level fields but containerDefinitions and volumes, and each app
// container's fields but those in changed.
func kept(t *testing.T, in, out []byte, changed ...string) {
	t.Helper()
	before, after := parse(t, in).Raw, parse(t, out).Raw
	for k, v := range before {
		if k == "containerDefinitions" || k == "volumes" {
			continue
		}
		if !reflect.DeepEqual(after[k], v) {
			t.Errorf("task field %s changed: %v → %v", k, v, after[k])
		}
	}
	byName := map[string]map[string]any{}
	for _, c := range after["containerDefinitions"].([]any) {
		m := c.(map[string]any)
		byName[m["name"].(string)] = m
	}
	for _, c := range before["containerDefinitions"].([]any) {
		bm := c.(map[string]any)
		am := byName[bm["name"].(string)]
		if am == nil {
			t.Errorf("container %v dropped", bm["name"])
			continue
		}
		for k, v := range bm {
			if slices.Contains(changed, k) {
				continue
			}
			if !reflect.DeepEqual(am[k], v) {
				t.Errorf("container %v field %s changed: %v → %v", bm["name"], k, v, am[k])
			}
		}
	}
	// Volumes the user had are all still there, first.
	bv, _ := before["volumes"].([]any)
	av, _ := after["volumes"].([]any)
	if len(av) < len(bv) || !reflect.DeepEqual(av[:len(bv)], bv) {
		t.Errorf("volumes %v → %v: the user's must stay as they were", bv, av)
	}
}

func TestMigrateFilesPatterns(t *testing.T) {
	const (
		ordersConf  = `{"secrets":[{"name":"JWT_SIGNING_KEY","valueFrom":"arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/jwt-a1B2c3:signing::"},{"name":"REDIS_AUTH","valueFrom":"/orders/prod/redis-auth"}]}`
		shopConf    = `{"secrets":[{"name":"DB_PASSWORD","valueFrom":"arn:aws:ssm:us-east-1:111122223333:parameter/shop/db-password"},{"name":"SESSION_KEY","valueFrom":"arn:aws:secretsmanager:us-east-1:111122223333:secret:shop/session-XyZ123"},{"name":"QUEUE_TOKEN","valueFrom":"/shop/queue-token"}]}`
		billingConf = `{"secrets":[{"name":"DB_URL","valueFrom":"arn:aws:secretsmanager:us-east-1:111122223333:secret:billing/db-AbCdEf:url::"},{"name":"HMAC_KEY","valueFrom":"/billing/hmac"}]}`
	)
	inputs := []struct {
		name   string
		data   []byte
		conf   string
		apps   map[string][]string // app → dependsOn (with "AGENT" for the agent's condition)
		mounts map[string][]string
	}{
		{
			name: "fargate describe output", data: readTestdata(t, "orders-api.describe.json"), conf: ordersConf,
			apps:   map[string][]string{"orders-api": {"secrets:AGENT"}},
			mounts: map[string][]string{"orders-api": {"secrets:/run/secrets:ro"}},
		},
		{
			name: "ec2 register input with two apps", data: readTestdata(t, "shop-ec2.register.json"), conf: shopConf,
			apps:   map[string][]string{"web": {"secrets:AGENT"}, "worker": {"secrets:AGENT"}, "metrics": nil},
			mounts: map[string][]string{"web": {"secrets:/run/secrets:ro"}, "worker": {"secrets:/run/secrets:ro"}, "metrics": nil},
		},
		{
			name: "fargate register input with two apps", data: []byte(fargateTwoApps), conf: billingConf,
			apps:   map[string][]string{"api": {"secrets:AGENT"}, "jobs": {"api:START", "secrets:AGENT"}},
			mounts: map[string][]string{"api": {"cache:/cache:rw", "secrets:/run/secrets:ro"}, "jobs": {"secrets:/run/secrets:ro"}},
		},
	}
	patterns := []struct {
		pattern, command, condition string
		essential                   bool
	}{
		{Init, "init", "SUCCESS", false},
		{Sidecar, "run", "HEALTHY", true},
	}
	for _, in := range inputs {
		for _, p := range patterns {
			t.Run(in.name+"/"+p.pattern, func(t *testing.T) {
				res, out := run(t, in.data, Options{Pattern: p.pattern, Image: image})
				td := check(t, out)
				agent := container(t, td, "secrets")
				if got := agentConfigOf(t, agent); got != in.conf {
					t.Errorf("AGENT_CONFIG\n got %s\nwant %s", got, in.conf)
				}
				if !slices.Equal(agent.Command, []string{p.command}) || agent.Essential == nil || *agent.Essential != p.essential {
					t.Errorf("agent command %q essential %v, want [%s] %v", agent.Command, agent.Essential, p.command, p.essential)
				}
				if got := mounts(agent); !slices.Equal(got, []string{"secrets:/run/secrets:rw"}) {
					t.Errorf("agent mounts %q", got)
				}
				if (agent.HealthCheck != nil) != (p.pattern == Sidecar) {
					t.Errorf("agent healthCheck %v for %s", agent.HealthCheck, p.pattern)
				}
				if td.PidMode != "" {
					t.Errorf("pidMode %q: not needed without a signal action", td.PidMode)
				}
				for app, want := range in.apps {
					c := container(t, td, app)
					want = slices.Clone(want)
					for i := range want {
						want[i] = strings.Replace(want[i], "AGENT", p.condition, 1)
					}
					if got := deps(c); !slices.Equal(got, want) {
						t.Errorf("%s dependsOn %q, want %q", app, got, want)
					}
					if got := mounts(c); !slices.Equal(got, in.mounts[app]) {
						t.Errorf("%s mounts %q, want %q", app, got, in.mounts[app])
					}
					if len(c.Secrets) != 0 {
						t.Errorf("%s still has native secrets %v", app, c.Secrets)
					}
				}
				if errs := lintErrors(t, out); len(errs) > 0 {
					t.Errorf("lint on the result: %q", errs)
				}
				kept(t, in.data, out, "secrets", "mountPoints", "dependsOn")
				if res.Command != p.command || res.Unchanged {
					t.Errorf("result command %q unchanged %v", res.Command, res.Unchanged)
				}

				// Running it again changes nothing.
				res2, out2 := run(t, out, Options{Pattern: p.pattern, Image: image})
				if !res2.Unchanged || !bytes.Equal(out2, out) {
					t.Errorf("second run changed the output (unchanged=%v):\n%s", res2.Unchanged, out2)
				}
				// ... and still knows the secrets and command, for the policy.
				if res2.Command != p.command || !reflect.DeepEqual(res2.Secrets, res.Secrets) {
					t.Errorf("second run: command %q secrets %v, want %q %v", res2.Command, res2.Secrets, p.command, res.Secrets)
				}
			})
		}
	}
}

func TestMigrateLogSecretOptionsStayNative(t *testing.T) {
	_, out := run(t, []byte(fargateTwoApps), Options{Pattern: Sidecar, Image: image})
	api := container(t, check(t, out), "api")
	so := api.LogConfiguration.SecretOptions
	if len(so) != 1 || tdcheck.Deref(so[0].Name) != "apikey" || tdcheck.Deref(so[0].ValueFrom) != "/billing/datadog-key" {
		t.Errorf("logConfiguration.secretOptions %v, want apikey from /billing/datadog-key", so)
	}
	if strings.Contains(agentConfigOf(t, container(t, check(t, out), "secrets")), "datadog") {
		t.Error("a log driver secret went into AGENT_CONFIG")
	}
}

func TestMigrateExec(t *testing.T) {
	const conf = `{"secrets":[{"name":"JWT_SIGNING_KEY","valueFrom":"arn:aws:secretsmanager:eu-west-1:111122223333:secret:orders/jwt-a1B2c3:signing::"},{"name":"REDIS_AUTH","valueFrom":"/orders/prod/redis-auth"}]}`
	in := readTestdata(t, "orders-api.describe.json")
	res, out := run(t, in, Options{Pattern: Exec, Image: image})
	td := check(t, out)
	inst := container(t, td, "install-agent")
	if !slices.Equal(inst.Command, []string{"install", "/shared"}) || inst.Essential == nil || *inst.Essential {
		t.Errorf("installer command %q essential %v", inst.Command, inst.Essential)
	}
	if got := mounts(inst); !slices.Equal(got, []string{"agent-bin:/shared:rw"}) {
		t.Errorf("installer mounts %q", got)
	}
	app := container(t, td, "orders-api")
	argv := append(slices.Clone(app.EntryPoint), app.Command...)
	if want := []string{"/shared/agent", "exec", "--", "node", "dist/server.js", "--port", "8080"}; !slices.Equal(argv, want) {
		t.Errorf("app argv %q, want %q", argv, want)
	}
	if got := agentConfigOf(t, app); got != conf {
		t.Errorf("AGENT_CONFIG\n got %s\nwant %s", got, conf)
	}
	if got := deps(app); !slices.Equal(got, []string{"install-agent:SUCCESS"}) {
		t.Errorf("dependsOn %q", got)
	}
	if got := mounts(app); !slices.Equal(got, []string{"agent-bin:/shared:ro"}) {
		t.Errorf("mounts %q", got)
	}
	if errs := lintErrors(t, out); len(errs) > 0 {
		t.Errorf("lint on the result: %q", errs)
	}
	kept(t, in, out, "secrets", "mountPoints", "dependsOn", "entryPoint", "command", "environment")
	if res.Command != "exec" {
		t.Errorf("command %q", res.Command)
	}
	res2, out2 := run(t, out, Options{Pattern: Exec, Image: image})
	if !res2.Unchanged || !bytes.Equal(out2, out) {
		t.Errorf("second run changed the output:\n%s", out2)
	}
	if res2.Command != "exec" || !reflect.DeepEqual(res2.Secrets, res.Secrets) {
		t.Errorf("second run: command %q secrets %v", res2.Command, res2.Secrets)
	}
}

func TestMigrateExecEntryPoint(t *testing.T) {
	noEntry := `{"family": "f", "containerDefinitions": [{"name": "app", "image": "app:1", "command": ["serve"],
		"secrets": [{"name": "A", "valueFrom": "/a"}]}]}`
	noEither := `{"family": "f", "containerDefinitions": [{"name": "app", "image": "app:1",
		"secrets": [{"name": "A", "valueFrom": "/a"}]}]}`
	twoApps := `{"family": "f", "containerDefinitions": [
		{"name": "a", "image": "a:1", "entryPoint": ["/a"], "secrets": [{"name": "A", "valueFrom": "/a"}]},
		{"name": "b", "image": "b:1", "entryPoint": ["/b"], "secrets": [{"name": "B", "valueFrom": "/b"}]}]}`
	const blind = `container "app" sets no entryPoint, so it runs its image's ENTRYPOINT and CMD, which a task definition does not show; agent exec cannot wrap them blindly: read them with ` +
		"`docker image inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' app:1`" +
		` and pass them as --entrypoint JSON-ARRAY and --command JSON-ARRAY (--entrypoint '[]' if the image has none)`
	errCases := []struct {
		name, in string
		opt      Options
		want     string
	}{
		{"command without entryPoint", noEntry, Options{}, blind},
		{"neither", noEither, Options{}, blind},
		{"empty entryPoint flag and no command", noEither, Options{EntryPoint: []string{}}, `container "app": entryPoint and command are both empty: there is no program for agent exec to run; pass --command JSON-ARRAY`},
		{"two apps with secrets", twoApps, Options{}, `--pattern exec wraps one container, and "a" and "b" both have secrets: migrate them with init or sidecar, or split the task`},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Pattern, tc.opt.Image = Exec, image
			_, err := Migrate(parse(t, []byte(tc.in)), tc.opt)
			if err == nil || err.Error() != tc.want || !IsError(err) {
				t.Errorf("error\n got %v\nwant %s", err, tc.want)
			}
		})
	}
	okCases := []struct {
		name, in string
		opt      Options
		want     []string
	}{
		{"entrypoint flag keeps the command", noEntry, Options{EntryPoint: []string{"/entry.sh"}}, []string{"/entry.sh", "serve"}},
		{"both flags", noEither, Options{EntryPoint: []string{}, Command: []string{"/app", "-v"}}, []string{"/app", "-v"}},
		{"flags replace the task definition's", noEntry, Options{EntryPoint: []string{"tini", "--"}, Command: []string{"/srv"}}, []string{"tini", "--", "/srv"}},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Pattern, tc.opt.Image = Exec, image
			_, out := run(t, []byte(tc.in), tc.opt)
			app := container(t, tdcheck.DecodeStrict(t, out), "app")
			want := append([]string{"/shared/agent", "exec", "--"}, tc.want...)
			if got := append(slices.Clone(app.EntryPoint), app.Command...); !slices.Equal(got, want) {
				t.Errorf("argv %q, want %q", got, want)
			}
		})
	}
}

func TestMigrateRefuses(t *testing.T) {
	cases := []struct {
		name, in string
		opt      Options
		want     string
	}{
		{"one name two references", `{"family": "f", "containerDefinitions": [
			{"name": "a", "image": "a:1", "secrets": [{"name": "DB", "valueFrom": "/prod/db"}]},
			{"name": "b", "image": "b:1", "secrets": [{"name": "DB", "valueFrom": "/staging/db"}]}]}`,
			Options{Pattern: Init},
			`secret DB: container "a" reads it from "/prod/db", container "b" from "/staging/db": the agent writes one DB for the task; rename one of them in its container's secrets first`},
		{"an agent and native secrets", `{"family": "f", "containerDefinitions": [
			{"name": "secrets", "image": "r/ecs-secrets-agent:1", "command": ["init"]},
			{"name": "b", "image": "b:1", "secrets": [{"name": "DB", "valueFrom": "/prod/db"}]}]}`,
			Options{Pattern: Init},
			`container "secrets" already runs the agent, and container "b" still has native secrets: migrate does not merge into an existing agent; move them into its AGENT_CONFIG by hand, or migrate the task definition without the agent`},
		{"nothing to move", `{"family": "f", "containerDefinitions": [{"name": "a", "image": "a:1"}]}`,
			Options{Pattern: Sidecar}, `no container has secrets to move: nothing to migrate`},
		{"bare array", `[{"name": "a", "image": "a:1", "secrets": [{"name": "DB", "valueFrom": "/prod/db"}]}]`,
			Options{Pattern: Init}, `a bare container definitions array has no volumes or family: give the register-task-definition input or the describe-task-definition output`},
		{"reference the agent rejects", `{"family": "f", "containerDefinitions": [
			{"name": "a", "image": "a:1", "secrets": [{"name": "DB", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:db:key"}]}]}`,
			Options{Pattern: Init}, `the agent would reject the moved secrets: AGENT_CONFIG secrets[0].valueFrom: `},
		{"volume name taken", `{"family": "f", "volumes": [{"name": "secrets", "host": {"sourcePath": "/x"}}], "containerDefinitions": [
			{"name": "a", "image": "a:1", "secrets": [{"name": "DB", "valueFrom": "/prod/db"}]}]}`,
			Options{Pattern: Init}, `volume "secrets" already exists: migrate adds its own; rename the existing one first`},
		{"mount path taken", `{"family": "f", "volumes": [{"name": "v"}], "containerDefinitions": [
			{"name": "a", "image": "a:1", "mountPoints": [{"sourceVolume": "v", "containerPath": "/run/secrets/"}], "secrets": [{"name": "DB", "valueFrom": "/prod/db"}]}]}`,
			Options{Pattern: Init}, `container "a" already mounts a volume at /run/secrets, where the agent's volume goes`},
		{"no image", `{"family": "f", "containerDefinitions": []}`, Options{Pattern: Init, Image: "-"},
			`--image is required: the agent image (REGISTRY/ecs-secrets-agent:VERSION)`},
		{"bad pattern", `{"family": "f", "containerDefinitions": []}`, Options{Pattern: "daemon"},
			`--pattern "daemon" is not init, sidecar, exec or watch`},
		{"watch without services", `{"family": "f", "containerDefinitions": []}`, Options{Pattern: Watch, Cluster: "prod"},
			`--pattern watch needs --cluster and at least one --service: the services the watcher redeploys`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.opt.Image {
			case "":
				tc.opt.Image = image
			case "-":
				tc.opt.Image = ""
			}
			_, err := Migrate(parse(t, []byte(tc.in)), tc.opt)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !IsError(err) {
				t.Errorf("error\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestMigrateContainerNamedSecrets(t *testing.T) {
	// An app already called "secrets" keeps its name; the agent takes another.
	in := `{"family": "f", "containerDefinitions": [{"name": "secrets", "image": "vault-ui:1", "entryPoint": ["/ui"],
		"secrets": [{"name": "DB", "valueFrom": "/prod/db"}]}]}`
	_, out := run(t, []byte(in), Options{Pattern: Sidecar, Image: image})
	td := check(t, out)
	app := container(t, td, "secrets")
	if got := deps(app); !slices.Equal(got, []string{"secrets-2:HEALTHY"}) {
		t.Errorf("dependsOn %q", got)
	}
	if !isAgent(container(t, td, "secrets-2")) {
		t.Error("agent container not named secrets-2")
	}
}

func TestMigrateWatch(t *testing.T) {
	in := readTestdata(t, "orders-api.describe.json")
	td := parse(t, in)
	before, _ := Marshal(td.Raw)
	res, err := Migrate(td, Options{Pattern: Watch, Image: image, Cluster: "prod", Services: []string{"orders-api", "orders-jobs"}})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := Marshal(td.Raw); !bytes.Equal(before, after) {
		t.Error("watch changed the user's task definition")
	}
	out, err := Marshal(res.TaskDef)
	if err != nil {
		t.Fatal(err)
	}
	w := check(t, out)
	c := container(t, w, "watch")
	if want := []string{"watch", "--cluster", "prod", "--service", "orders-api", "--service", "orders-jobs"}; !slices.Equal(c.Command, want) {
		t.Errorf("watch command %q, want %q", c.Command, want)
	}
	if c.HealthCheck == nil || c.Essential == nil || !*c.Essential {
		t.Errorf("watcher healthCheck %v essential %v", c.HealthCheck, c.Essential)
	}
	if tdcheck.Deref(w.ExecutionRoleArn) != "arn:aws:iam::111122223333:role/ecsTaskExecutionRole" {
		t.Errorf("executionRoleArn %q", tdcheck.Deref(w.ExecutionRoleArn))
	}
	if res.Command != "watch" {
		t.Errorf("command %q", res.Command)
	}
	if errs := lintErrors(t, out); len(errs) > 0 {
		t.Errorf("lint on the watcher: %q", errs)
	}
}

// TestMigrateOutputKeepsNumbers: numbers stay integers (no float
// exponent), and "&" in values is not escaped.
func TestMigrateOutputKeepsNumbers(t *testing.T) {
	in := `{"family": "f", "containerDefinitions": [{"name": "a", "image": "a:1", "entryPoint": ["/a"], "memory": 1024,
		"environment": [{"name": "Q", "value": "a&b<c>"}], "secrets": [{"name": "DB", "valueFrom": "/prod/db"}]}]}`
	_, out := run(t, []byte(in), Options{Pattern: Init, Image: image})
	for _, want := range []string{`"memory": 1024`, `"value": "a&b<c>"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
}
