// Package terraform checks the module here without the terraform binary or
// an AWS account. Every .tf file parses with github.com/hashicorp/hcl/v2 and
// has only the blocks Terraform knows; the variables' types and defaults
// are applied to given inputs as Terraform does (ext/typeexpr), their
// validations evaluated; the locals are evaluated with the functions
// Terraform takes from go-cty's stdlib and hcl's tryfunc (a function the
// module calls that is not in that set fails the test, so what is tested is
// what Terraform runs), with the data sources stubbed. The
// container_definitions output, put into a task definition as README.md
// does, must pass the checks every task definition under deploy/ passes
// (internal/tdcheck) and `agent check`; the task role and watcher policies
// must equal what `agent policy` prints. Not tested: the provider's
// resources themselves (their arguments are read, not applied), and
// Terraform's own functions that differ from cty's (the module uses none).
package terraform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/tdcheck"
)

const (
	testAccount = "111122223333"
	agentImage  = "111122223333.dkr.ecr.us-east-1.amazonaws.com/ecs-secrets-agent:1.0.0"
)

// functions are the functions the module may call: those Terraform takes
// from go-cty's stdlib and hcl's tryfunc (its internal/lang/functions.go),
// and length, which Terraform implements itself but counts a list, tuple or
// map as cty's does (it adds strings, which the module does not count).
func functions() map[string]function.Function {
	return map[string]function.Function{
		"compact":    stdlib.CompactFunc,
		"concat":     stdlib.ConcatFunc,
		"contains":   stdlib.ContainsFunc,
		"distinct":   stdlib.DistinctFunc,
		"flatten":    stdlib.FlattenFunc,
		"format":     stdlib.FormatFunc,
		"join":       stdlib.JoinFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"length":     stdlib.LengthFunc,
		"merge":      stdlib.MergeFunc,
		"regexall":   stdlib.RegexAllFunc,
		"slice":      stdlib.SliceFunc,
		"sort":       stdlib.SortFunc,
		"split":      stdlib.SplitFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"values":     stdlib.ValuesFunc,
		"try":        tryfunc.TryFunc,
		"can":        tryfunc.CanFunc,
	}
}

// The module's parts that README.md and the tests rely on.
const (
	wantVariables = "agent_image agent_log_configuration agent_user app_container_names container_definitions " +
		"events_queue feed_token_secret_arn feed_url feed_watcher interval pattern region secrets signal_process task_role_name volume_name watcher"
	wantOutputs = "container_definitions events_consumer_policy_arn events_queue_arn events_queue_url feed_url " +
		"feed_watcher_service_arn pid_mode task_role_arn task_role_policy_json volume_name " +
		"watcher_service_arn"
	wantResources = "aws_cloudwatch_event_rule.events_parameters aws_cloudwatch_event_rule.events_secrets " +
		"aws_cloudwatch_event_target.events_parameters aws_cloudwatch_event_target.events_secrets " +
		"aws_ecs_service.feed_watcher aws_ecs_service.watcher aws_ecs_task_definition.feed_watcher " +
		"aws_ecs_task_definition.watcher aws_iam_policy.events_consumer aws_iam_role.feed_watcher " +
		"aws_iam_role.task aws_iam_role.watcher aws_iam_role_policy.feed_watcher aws_iam_role_policy.task " +
		"aws_iam_role_policy.watcher aws_iam_role_policy_attachment.feed_watcher aws_lb.feed " +
		"aws_lb_listener.feed aws_lb_target_group.feed aws_security_group.feed_lb " +
		"aws_security_group.feed_watchers aws_sqs_queue.events aws_sqs_queue_policy.events " +
		"aws_vpc_security_group_egress_rule.feed_lb_health " +
		"aws_vpc_security_group_egress_rule.feed_lb_to_watchers " +
		"aws_vpc_security_group_egress_rule.feed_watchers_out " +
		"aws_vpc_security_group_ingress_rule.feed_from_agents " +
		"aws_vpc_security_group_ingress_rule.feed_from_lb " +
		"aws_vpc_security_group_ingress_rule.feed_health_from_lb " +
		"aws_vpc_security_group_ingress_rule.feed_metrics_from_prometheus"
)

// The user's task, as in README.md: an app and a log router that the agent
// must leave alone.
const userContainers = `
container_definitions = [
  {
    name        = "app"
    image       = "public.ecr.aws/nginx/nginx-unprivileged:stable"
    essential   = true
    user        = "101:101"
    dependsOn   = [{ containerName = "log_router", condition = "START" }]
    mountPoints = [{ sourceVolume = "cache", containerPath = "/var/cache/nginx" }]
    portMappings = [{ containerPort = 8443, protocol = "tcp" }]
  },
  {
    name      = "log_router"
    image     = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
    essential = true
    firelensConfiguration = { type = "fluentbit" }
  },
]
app_container_names = ["app"]
agent_image = "` + agentImage + `"
`

func TestModuleAddsAgent(t *testing.T) {
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	m := loadModule(t)
	tests := []struct {
		name, region, inputs string
		command              string
		pidMode              types.PidMode
		policyArgs           []string
	}{
		{"sidecar-signal", "us-east-1", `
pattern = "sidecar"
signal_process = "nginx"
agent_user = "0"
task_role_name = "secrets-agent-sidecar"
secrets = {
  DB_PASSWORD = "/prod/db/password"
  DB_OLD      = "/prod/db/password:3"
  API_KEY     = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf:key::"
  PINNED      = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/pinned-AbCdEf:::9d4c8e1f-1111-2222-3333-444455556666"
  PARTIAL     = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/partial"
  VIA_SSM     = "/aws/reference/secretsmanager/prod/db"
  AMI         = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
  REMOTE      = "arn:aws:ssm:eu-west-1:444455556666:parameter/shared/token"
  PLAIN       = "dbname"
}
agent_log_configuration = {
  logDriver = "awslogs"
  options = { "awslogs-group" = "/ecs/app", "awslogs-region" = "us-east-1", "awslogs-stream-prefix" = "secrets" }
}
`, "run", types.PidModeTask, nil},
		{"sidecar-feed-signal", "us-east-1", `
signal_process = "nginx"
agent_user = "0"
feed_url = "http://feed-0123456789abcdef.elb.us-east-1.amazonaws.com:8081"
secrets = { DB_PASSWORD = "/prod/db/password" }
`, "run", types.PidModeTask, nil},
		{"sidecar-feed", "us-east-1", `
feed_url = "http://feed-0123456789abcdef.elb.us-east-1.amazonaws.com:8081"
secrets = { DB_PASSWORD = "/prod/db/password" }
`, "run", "", nil},
		{"sidecar-feed-token", "us-east-1", `
feed_url = "http://feed-0123456789abcdef.elb.us-east-1.amazonaws.com:8081"
feed_token_secret_arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:feed-token-AbCdEf"
secrets = { DB_PASSWORD = "/prod/db/password" }
`, "run", "", nil},
		{"init-feed-ignored", "us-east-1", `
pattern = "init"
feed_url = "http://feed-0123456789abcdef.elb.us-east-1.amazonaws.com:8081"
feed_token_secret_arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:feed-token-AbCdEf"
secrets = { DB_PASSWORD = "/prod/db/password" }
`, "init", "", nil},
		{"sidecar-secrets-manager-only", "us-east-1", `
secrets = { API_KEY = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf:key::" }
`, "run", "", nil},
		{"init", "us-east-1", `
pattern = "init"
secrets = {
  DB_PASSWORD = "/prod/db/password"
  API_KEY     = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf:key::"
}
`, "init", "", nil},
		{"init-china", "cn-north-1", `
pattern = "init"
secrets = {
  DB_PASSWORD = "/prod/db/password"
  API_KEY     = "arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:prod/api-AbCdEf"
}
`, "init", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := m.evaluate(t, tc.region, userContainers+tc.inputs)
			vars := ev.vars
			td := taskDefinition(t, ev)
			if td.PidMode != tc.pidMode {
				t.Errorf("pidMode %q, want %q", td.PidMode, tc.pidMode)
			}
			if len(td.ContainerDefinitions) != 3 {
				t.Fatalf("%d containers, want the agent, app and log_router", len(td.ContainerDefinitions))
			}
			agentC, app, router := td.ContainerDefinitions[0], td.ContainerDefinitions[1], td.ContainerDefinitions[2]

			// The agent's command: the pattern's subcommand and each secret,
			// in the order Terraform iterates a map (by key).
			want := []string{"init"}
			if tc.command == "run" {
				want = []string{"run", "--interval", "5m"}
			}
			secrets := vars.GetAttr("secrets").AsValueMap()
			for _, name := range sortedKeys(secrets) {
				want = append(want, "--secret", name+"="+secrets[name].AsString())
			}
			if !slices.Equal(agentC.Command, want) {
				t.Errorf("agent command %q, want %q", agentC.Command, want)
			}
			if (tc.command == "run") != (agentC.Essential != nil && *agentC.Essential) {
				t.Errorf("agent essential %s: a sidecar is essential, an init container must be allowed to exit", jsonText(t, agentC.Essential))
			}
			checkAgentCommand(t, agent, agentC)
			// A sidecar given feed_url asks the feed; an init container
			// does not refresh.
			var flags config.Flags
			for _, name := range sortedKeys(secrets) {
				flags.Secrets = append(flags.Secrets, name+"="+secrets[name].AsString())
			}
			s, err := config.Load(flags, func(k string) string {
				for _, e := range agentC.Environment {
					if tdcheck.Deref(e.Name) == k {
						return tdcheck.Deref(e.Value)
					}
				}
				return ""
			})
			wantFeed := ""
			if f := vars.GetAttr("feed_url"); tc.command == "run" && !f.IsNull() {
				wantFeed = f.AsString()
			}
			switch {
			case err != nil:
				t.Errorf("agent's configuration: %v", err)
			case s.Feed != wantFeed:
				t.Errorf("agent's refresh.feed %q, want %q", s.Feed, wantFeed)
			}
			// Its token, when given, through ECS's own injection; none
			// without a feed.
			var tokenSecrets, wantToken []string
			for _, sec := range agentC.Secrets {
				tokenSecrets = append(tokenSecrets, tdcheck.Deref(sec.Name)+"="+tdcheck.Deref(sec.ValueFrom))
			}
			if a := vars.GetAttr("feed_token_secret_arn"); wantFeed != "" && !a.IsNull() {
				wantToken = []string{"AGENT_FEED_TOKEN=" + a.AsString()}
			}
			if !slices.Equal(tokenSecrets, wantToken) {
				t.Errorf("agent container secrets %q, want %q", tokenSecrets, wantToken)
			}

			// The app keeps its own dependency and mount and gets the agent's;
			// the log router is left as it was.
			cond := map[string]string{"run": "HEALTHY", "init": "SUCCESS"}[tc.command]
			if got, want := jsonText(t, app.DependsOn), `[{"Condition":"START","ContainerName":"log_router"},{"Condition":"`+cond+`","ContainerName":"secrets"}]`; got != want {
				t.Errorf("app dependsOn %s, want %s", got, want)
			}
			if got, want := jsonText(t, app.MountPoints), `[{"ContainerPath":"/var/cache/nginx","ReadOnly":null,"SourceVolume":"cache"},{"ContainerPath":"/run/secrets","ReadOnly":true,"SourceVolume":"secrets"}]`; got != want {
				t.Errorf("app mountPoints %s, want %s", got, want)
			}
			if len(router.DependsOn)+len(router.MountPoints) != 0 {
				t.Errorf("log_router was changed: dependsOn %s, mountPoints %s", jsonText(t, router.DependsOn), jsonText(t, router.MountPoints))
			}

			args := []string{"policy", "--command", tc.command, "--region", tc.region, "--account", testAccount}
			for _, name := range sortedKeys(secrets) {
				args = append(args, "--secret", name+"="+secrets[name].AsString())
			}
			if got, want := decodeJSON(t, ev.local(t, "task_role_policy_json").AsString()), agentJSON(t, agent, args...); !reflect.DeepEqual(got, want) {
				t.Errorf("task_role_policy_json is not what `agent %s` prints:\ngot  %s\nwant %s", strings.Join(args, " "), jsonText(t, got), jsonText(t, want))
			}
			if got, want := decodeJSON(t, ev.local(t, "trust_policy_json").AsString()),
				agentJSON(t, agent, "policy", "--trust", "--region", tc.region, "--account", testAccount); !reflect.DeepEqual(got, want) {
				t.Errorf("trust policy:\ngot  %s\nwant %s", jsonText(t, got), jsonText(t, want))
			}

			wantRole := 0
			if !vars.GetAttr("task_role_name").IsNull() {
				wantRole = 1
			}
			for _, r := range []string{"aws_iam_role.task", "aws_iam_role_policy.task"} {
				if n := ev.resourceInt(t, r, "count"); n != wantRole {
					t.Errorf("%s count %d, want %d", r, n, wantRole)
				}
			}
			for _, r := range []string{"aws_iam_role.watcher", "aws_iam_role_policy.watcher", "aws_ecs_task_definition.watcher", "aws_ecs_service.watcher"} {
				if n := ev.resourceInt(t, r, "count"); n != 0 {
					t.Errorf("%s count %d without a watcher, want 0", r, n)
				}
			}
		})
	}
}

func TestModuleRejectsUnknownPattern(t *testing.T) {
	m := loadModule(t)
	vars, diags := m.variables(userContainers + `
pattern = "exec"
secrets = { A = "/a" }
`)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `The pattern must be "sidecar" or "init".`) {
		t.Errorf("pattern exec: diagnostics %v, want the validation's error (variables %#v)", diags, vars)
	}
}

func TestModuleWatcher(t *testing.T) {
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	m := loadModule(t)
	ev := m.evaluate(t, "us-east-1", userContainers+`
secrets = { A = "/a" }
watcher = {
  cluster            = "prod"
  services           = ["web", "api", "billing-v2"]
  execution_role_arn = "arn:aws:iam::111122223333:role/ecsTaskExecutionRole"
  subnets            = ["subnet-0123"]
  security_groups    = ["sg-0123"]
}
`)
	for _, r := range []string{"aws_iam_role.watcher", "aws_iam_role_policy.watcher", "aws_ecs_task_definition.watcher", "aws_ecs_service.watcher"} {
		if n := ev.resourceInt(t, r, "count"); n != 1 {
			t.Errorf("%s count %d, want 1", r, n)
		}
	}
	const tdr = "aws_ecs_task_definition.watcher"
	var cds any
	if err := json.Unmarshal([]byte(ev.resource(t, tdr, "container_definitions").AsString()), &cds); err != nil {
		t.Fatal(err)
	}
	td := checkTaskDefinition(t, map[string]any{
		"family":                  ev.resource(t, tdr, "family").AsString(),
		"taskRoleArn":             "arn:aws:iam::111122223333:role/secrets-agent-watch",
		"executionRoleArn":        ev.resource(t, tdr, "execution_role_arn").AsString(),
		"networkMode":             ev.resource(t, tdr, "network_mode").AsString(),
		"requiresCompatibilities": []string{ev.resource(t, tdr, "requires_compatibilities").Index(cty.NumberIntVal(0)).AsString()},
		"cpu":                     ev.resource(t, tdr, "cpu").AsString(),
		"memory":                  ev.resource(t, tdr, "memory").AsString(),
		"containerDefinitions":    cds,
	})
	want := []string{"watch", "--cluster", "prod", "--service", "web", "--service", "api", "--service", "billing-v2", "--interval", "5m"}
	if got := td.ContainerDefinitions[0].Command; !slices.Equal(got, want) {
		t.Errorf("watch command %q, want %q", got, want)
	}

	// One watcher, and a deployment never runs two (deploy/README.md).
	const svc = "aws_ecs_service.watcher"
	for attr, want := range map[string]int{"desired_count": 1, "deployment_minimum_healthy_percent": 0, "deployment_maximum_percent": 100} {
		if got := ev.resourceInt(t, svc, attr); got != want {
			t.Errorf("%s.%s = %d, want %d", svc, attr, got, want)
		}
	}
	if got := ev.resource(t, svc, "launch_type").AsString(); got != "FARGATE" {
		t.Errorf("%s.launch_type = %q, want FARGATE", svc, got)
	}

	args := []string{"policy", "--command", "watch", "--cluster", "prod", "--service", "web", "--service", "api", "--service", "billing-v2",
		"--region", "us-east-1", "--account", testAccount}
	if got, want := decodeJSON(t, ev.local(t, "watch_policy_json").AsString()), agentJSON(t, agent, args...); !reflect.DeepEqual(got, want) {
		t.Errorf("watcher policy is not what `agent %s` prints:\ngot  %s\nwant %s", strings.Join(args, " "), jsonText(t, got), jsonText(t, want))
	}
}

// TestREADMEExample evaluates deploy/README.md's example: its module block's
// arguments are the inputs, and its aws_ecs_task_definition, evaluated with
// the module's outputs, must be a task definition that passes the checks.
func TestREADMEExample(t *testing.T) {
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	m := loadModule(t)
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "## Terraform")
	_, rest, ok2 := strings.Cut(rest, "```hcl\n")
	src, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("deploy/README.md has no ```hcl example under \"## Terraform\"")
	}
	f, diags := hclsyntax.ParseConfig([]byte(src), "README.md", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("README example: %v", diags)
	}
	content, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "module", LabelNames: []string{"name"}}, {Type: "resource", LabelNames: []string{"type", "name"}},
	}})
	if diags.HasErrors() || len(content.Blocks) != 2 {
		t.Fatalf("README example: want a module and a resource block: %v", diags)
	}
	modArgs, diags := content.Blocks[0].Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if v, _ := modArgs["source"].Expr.Value(nil); v.AsString() != "./deploy/terraform" {
		t.Errorf("README example: module source %q", v.AsString())
	}
	delete(modArgs, "source")
	vars, diags := m.inputs(modArgs)
	if diags.HasErrors() {
		t.Fatalf("README example's module arguments: %v", diags)
	}
	ev := m.evaluateVars(t, "eu-west-1", vars)
	outputs := map[string]cty.Value{}
	for _, name := range keys(m.outputs) {
		outputs[name] = ev.output(t, name)
	}
	ctx := &hcl.EvalContext{Functions: functions(), Variables: map[string]cty.Value{
		"module": cty.ObjectVal(map[string]cty.Value{content.Blocks[0].Labels[0]: cty.ObjectVal(outputs)}),
	}}

	// The resource's arguments and volume blocks, in the API's names.
	body := content.Blocks[1].Body.(*hclsyntax.Body)
	td := map[string]any{}
	for name, a := range body.Attributes {
		v, diags := a.Expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("README example: %s: %v", name, diags)
		}
		if v.IsNull() {
			continue
		}
		parts := strings.Split(name, "_")
		for i := 1; i < len(parts); i++ {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
		key := strings.Join(parts, "")
		if name == "container_definitions" {
			td[key] = decodeJSON(t, v.AsString())
			continue
		}
		b, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			t.Fatal(err)
		}
		td[key] = decodeJSON(t, string(b))
	}
	var volumes []any
	for _, b := range body.Blocks {
		if b.Type != "volume" {
			t.Fatalf("README example: block %s: the test knows volume only", b.Type)
		}
		v, diags := b.Body.Attributes["name"].Expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		volumes = append(volumes, map[string]any{"name": v.AsString()})
	}
	td["volumes"] = volumes
	in := checkTaskDefinition(t, td)
	if in.PidMode != types.PidModeTask {
		t.Errorf("README example: pidMode %q, want task (signal_process is set)", in.PidMode)
	}
	checkAgentCommand(t, agent, in.ContainerDefinitions[0])
}

// module is the parsed .tf files.
type module struct {
	declared  map[string]*hcl.Block
	locals    map[string]*hcl.Attribute
	resources map[string]*hclsyntax.Body // "type.name"
	outputs   map[string]*hcl.Block
}

// topLevel is the blocks a module may have.
func topLevel() *hcl.BodySchema {
	return &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "terraform"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "data", LabelNames: []string{"type", "name"}},
		{Type: "resource", LabelNames: []string{"type", "name"}},
		{Type: "output", LabelNames: []string{"name"}},
	}}
}

func loadModule(t *testing.T) *module {
	t.Helper()
	files, err := filepath.Glob("*.tf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files: %v", err)
	}
	m := &module{declared: map[string]*hcl.Block{}, locals: map[string]*hcl.Attribute{},
		resources: map[string]*hclsyntax.Body{}, outputs: map[string]*hcl.Block{}}
	p := hclparse.NewParser()
	for _, file := range files {
		f, diags := p.ParseHCLFile(file)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", file, diags)
		}
		content, diags := f.Body.Content(topLevel())
		if diags.HasErrors() {
			t.Fatalf("%s: %v", file, diags)
		}
		for _, b := range content.Blocks {
			key := strings.Join(b.Labels, ".")
			switch b.Type {
			case "variable":
				m.declared[key] = b
			case "output":
				m.outputs[key] = b
			case "resource":
				m.resources[key] = b.Body.(*hclsyntax.Body)
			case "locals":
				attrs, diags := b.Body.JustAttributes()
				if diags.HasErrors() {
					t.Fatalf("%s: locals: %v", file, diags)
				}
				for name, a := range attrs {
					if _, dup := m.locals[name]; dup {
						t.Fatalf("local %s defined twice", name)
					}
					m.locals[name] = a
				}
			}
		}
	}
	for what, got := range map[string][]string{"variables": keys(m.declared), "outputs": keys(m.outputs), "resources": keys(m.resources)} {
		want := strings.Fields(map[string]string{"variables": wantVariables, "outputs": wantOutputs, "resources": wantResources}[what])
		if !slices.Equal(got, want) {
			t.Errorf("module %s %q, want %q (update README.md and this test together)", what, got, want)
		}
	}
	return m
}

// variables applies the module's variable declarations to inputs given as
// a .tfvars text: defaults, type conversion with optional attributes'
// defaults, and validations.
func (m *module) variables(tfvars string) (cty.Value, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig([]byte(tfvars), "test.tfvars", hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	given, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return m.inputs(given)
}

// inputs applies the variable declarations to the given arguments (of a
// .tfvars file or a module block).
func (m *module) inputs(given hcl.Attributes) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	schema := &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "description"}, {Name: "type"}, {Name: "default"}, {Name: "sensitive"}, {Name: "nullable"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
	}
	for name := range given {
		if _, ok := m.declared[name]; !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "undeclared variable " + name})
		}
	}
	vals := map[string]cty.Value{}
	var validations []*hcl.Block
	for _, name := range keys(m.declared) {
		content, d := m.declared[name].Body.Content(schema)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		typ, defaults := cty.DynamicPseudoType, (*typeexpr.Defaults)(nil)
		if a, ok := content.Attributes["type"]; ok {
			typ, defaults, d = typeexpr.TypeConstraintWithDefaults(a.Expr)
			diags = append(diags, d...)
		}
		var v cty.Value
		if a, ok := given[name]; ok {
			v, d = a.Expr.Value(&hcl.EvalContext{Functions: functions()})
		} else if a, ok := content.Attributes["default"]; ok {
			v, d = a.Expr.Value(nil)
		} else {
			d = hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "no value for required variable " + name}}
		}
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if defaults != nil {
			v = defaults.Apply(v)
		}
		cv, err := convert.Convert(v, typ)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("variable %s: %v", name, err)})
			continue
		}
		vals[name] = cv
		validations = append(validations, content.Blocks...)
	}
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	vars := cty.ObjectVal(vals)
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": vars}, Functions: functions()}
	for _, b := range validations {
		attrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		ok, d := attrs["condition"].Expr.Value(ctx)
		diags = append(diags, d...)
		if d.HasErrors() || ok.False() {
			msg, _ := attrs["error_message"].Expr.Value(ctx)
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "invalid value: " + msg.AsString()})
		}
	}
	return vars, diags
}

// evaluated is the module evaluated for one set of inputs.
type evaluated struct {
	m      *module
	vars   cty.Value
	locals map[string]cty.Value
	ctx    *hcl.EvalContext
}

func (m *module) evaluate(t *testing.T, region, tfvars string) *evaluated {
	t.Helper()
	vars, diags := m.variables(tfvars)
	if diags.HasErrors() {
		t.Fatalf("inputs: %v", diags)
	}
	return m.evaluateVars(t, region, vars)
}

func (m *module) evaluateVars(t *testing.T, region string, vars cty.Value) *evaluated {
	t.Helper()
	partition := "aws"
	if strings.HasPrefix(region, "cn-") {
		partition = "aws-cn"
	}
	data := cty.ObjectVal(map[string]cty.Value{
		"aws_region":          cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(region)})}),
		"aws_caller_identity": cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"account_id": cty.StringVal(testAccount)})}),
		"aws_partition":       cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"partition": cty.StringVal(partition)})}),
	})
	ev := &evaluated{m: m, vars: vars, locals: map[string]cty.Value{}}
	ev.ctx = &hcl.EvalContext{Variables: map[string]cty.Value{"var": vars, "data": data}, Functions: functions()}
	// Each local once the locals it refers to are known.
	for len(ev.locals) < len(m.locals) {
		progress := false
		for name, a := range m.locals {
			if _, done := ev.locals[name]; done || !ev.ready(a.Expr) {
				continue
			}
			v, diags := a.Expr.Value(ev.ctx)
			if diags.HasErrors() {
				t.Fatalf("local.%s: %v", name, diags)
			}
			ev.locals[name] = v
			ev.ctx.Variables["local"] = cty.ObjectVal(ev.locals)
			progress = true
		}
		if !progress {
			t.Fatal("locals refer to each other in a cycle or to an undefined local")
		}
	}
	return ev
}

func (ev *evaluated) ready(e hcl.Expression) bool {
	for _, tr := range e.Variables() {
		if tr.RootName() != "local" {
			continue
		}
		if _, ok := ev.locals[tr[1].(hcl.TraverseAttr).Name]; !ok {
			return false
		}
	}
	return true
}

func (ev *evaluated) local(t *testing.T, name string) cty.Value {
	t.Helper()
	v, ok := ev.locals[name]
	if !ok {
		t.Fatalf("no local.%s", name)
	}
	return v
}

func (ev *evaluated) output(t *testing.T, name string) cty.Value {
	t.Helper()
	attrs, diags := ev.m.outputs[name].Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatalf("output %s: %v", name, diags)
	}
	v, diags := attrs["value"].Expr.Value(ev.ctx)
	if diags.HasErrors() {
		t.Fatalf("output %s: %v", name, diags)
	}
	return v
}

// resource evaluates one argument of a resource (not its nested blocks).
func (ev *evaluated) resource(t *testing.T, name, attr string) cty.Value {
	t.Helper()
	a, ok := ev.m.resources[name].Attributes[attr]
	if !ok {
		t.Fatalf("%s has no argument %s", name, attr)
	}
	v, diags := a.Expr.Value(ev.ctx)
	if diags.HasErrors() {
		t.Fatalf("%s.%s: %v", name, attr, diags)
	}
	return v
}

// block evaluates one argument of a resource's nested block (the first of
// its type).
func (ev *evaluated) block(t *testing.T, name, typ, attr string) cty.Value {
	t.Helper()
	for _, b := range ev.m.resources[name].Blocks {
		if b.Type != typ {
			continue
		}
		a, ok := b.Body.Attributes[attr]
		if !ok {
			t.Fatalf("%s.%s has no argument %s", name, typ, attr)
		}
		v, diags := a.Expr.Value(ev.ctx)
		if diags.HasErrors() {
			t.Fatalf("%s.%s.%s: %v", name, typ, attr, diags)
		}
		return v
	}
	t.Fatalf("%s has no %s block", name, typ)
	return cty.NilVal
}

func (ev *evaluated) resourceInt(t *testing.T, name, attr string) int {
	t.Helper()
	v := ev.resource(t, name, attr)
	n, acc := v.AsBigFloat().Int64()
	if acc != 0 {
		t.Fatalf("%s.%s = %v, not an integer", name, attr, v.GoString())
	}
	return int(n)
}

// taskDefinition is the task definition README.md builds from the outputs:
// container_definitions, a volume named volume_name, and pid_mode.
func taskDefinition(t *testing.T, ev *evaluated) *ecsInput {
	t.Helper()
	var cds any
	if err := json.Unmarshal([]byte(ev.output(t, "container_definitions").AsString()), &cds); err != nil {
		t.Fatalf("container_definitions is not JSON: %v", err)
	}
	td := map[string]any{
		"family":                  "app",
		"taskRoleArn":             "arn:aws:iam::111122223333:role/secrets-agent-sidecar",
		"executionRoleArn":        "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
		"networkMode":             "awsvpc",
		"requiresCompatibilities": []string{"FARGATE"},
		"cpu":                     "256",
		"memory":                  "512",
		"volumes":                 []any{map[string]any{"name": ev.output(t, "volume_name").AsString()}, map[string]any{"name": "cache"}},
		"containerDefinitions":    cds,
	}
	if pm := ev.output(t, "pid_mode"); !pm.IsNull() {
		td["pidMode"] = pm.AsString()
	}
	return checkTaskDefinition(t, td)
}

type ecsInput = struct {
	PidMode              types.PidMode
	ContainerDefinitions []types.ContainerDefinition
}

func checkTaskDefinition(t *testing.T, td map[string]any) *ecsInput {
	t.Helper()
	data, err := json.Marshal(td)
	if err != nil {
		t.Fatal(err)
	}
	in := tdcheck.DecodeStrict(t, data)
	tdcheck.KeyCase(t, data)
	// The agent's image, wherever it was pushed.
	tdcheck.Containers(t, in, func(c types.ContainerDefinition) bool {
		return strings.Contains(tdcheck.Deref(c.Image), "/ecs-secrets-agent:")
	})
	if slices.Contains(in.RequiresCompatibilities, types.CompatibilityFargate) {
		tdcheck.Fargate(t, in)
	}
	if t.Failed() {
		t.Logf("task definition: %s", data)
	}
	return &ecsInput{PidMode: in.PidMode, ContainerDefinitions: in.ContainerDefinitions}
}

// checkAgentCommand runs `agent check --for COMMAND` with the agent
// container's flags and environment.
func checkAgentCommand(t *testing.T, agent string, c types.ContainerDefinition) {
	t.Helper()
	cmd := exec.Command(agent, append([]string{"check", "--for"}, c.Command...)...)
	cmd.Env = []string{}
	for _, e := range c.Environment {
		cmd.Env = append(cmd.Env, tdcheck.Deref(e.Name)+"="+tdcheck.Deref(e.Value))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("agent check --for %q: %v\n%s", c.Command, err, out)
	}
}

// agentJSON runs the agent and decodes what it prints.
func agentJSON(t *testing.T, agent string, args ...string) any {
	t.Helper()
	cmd := exec.Command(agent, args...)
	cmd.Env = []string{}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("agent %q: %v\n%s", args, err, stderr.Bytes())
	}
	return decodeJSON(t, string(out))
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	if cv, ok := v.(cty.Value); ok {
		b, err := ctyjson.Marshal(cv, cv.Type())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]cty.Value) []string { return keys(m) }

// TestFormatted: every .tf file is as `terraform fmt` leaves it (hclwrite
// is its formatter), so users' `terraform fmt -check` passes on the module.
func TestFormatted(t *testing.T) {
	files, err := filepath.Glob("*.tf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files: %v", err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted: run terraform fmt deploy/terraform", f)
		}
	}
}
