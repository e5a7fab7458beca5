package terraform

import (
	"encoding/json"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/tdcheck"
)

// feedResources are the module's resources for the change feed.
var feedResources = []string{
	"aws_iam_role.feed_watcher", "aws_iam_role_policy.feed_watcher", "aws_security_group.feed_lb", "aws_security_group.feed_watchers",
	"aws_vpc_security_group_egress_rule.feed_lb_to_watchers", "aws_vpc_security_group_egress_rule.feed_lb_health",
	"aws_vpc_security_group_ingress_rule.feed_from_lb", "aws_vpc_security_group_ingress_rule.feed_health_from_lb",
	"aws_vpc_security_group_egress_rule.feed_watchers_out", "aws_lb.feed", "aws_lb_target_group.feed", "aws_lb_listener.feed",
	"aws_ecs_task_definition.feed_watcher", "aws_ecs_service.feed_watcher",
}

// TestModuleFeedWatcher evaluates the module's feed_watcher: the watchers'
// task definition passes the checks of deploy/ and its AGENT_CONFIG is what
// agent watch reads, the role's policy is `agent policy --command watch
// --feed`, the feed's port is open to the agents' security groups only
// (through an internal Network Load Balancer), the service keeps half its
// watchers through a deployment, and a single watcher is refused.
func TestModuleFeedWatcher(t *testing.T) {
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	m := loadModule(t)
	const queue = "https://sqs.us-east-1.amazonaws.com/111122223333/secrets-changes"
	const feedToken = "arn:aws:secretsmanager:us-east-1:111122223333:secret:feed-token-AbCdEf"
	for _, tc := range []struct {
		name, inputs        string
		wantConfig          config.Watch
		agents, extra       int
		prometheus, desired int
	}{
		{"defaults", `
  agent_security_groups = ["sg-web", "sg-api"]
`, config.Watch{FeedAddr: ":8081", Interval: "1m"}, 2, 0, 0, 2},
		{"events-prometheus", `
  agent_security_groups     = ["sg-web"]
  prometheus_security_group = "sg-prom"
  events_queue_url          = "` + queue + `"
  extra_managed_policy_arns = ["arn:aws:iam::111122223333:policy/secrets-feed-events"]
  interval                  = "30s"
  desired_count             = 3
`, config.Watch{FeedAddr: ":8081", Interval: "30s", EventsQueue: queue}, 1, 1, 1, 3},
		{"token", `
  agent_security_groups = ["sg-web"]
  token_secret_arn      = "` + feedToken + `"
`, config.Watch{FeedAddr: ":8081", Interval: "1m"}, 1, 0, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := m.evaluate(t, "us-east-1", userContainers+`
secrets = { A = "/a" }
feed_watcher = {
  cluster            = "prod"
  vpc_id             = "vpc-0123"
  subnets            = ["subnet-0123", "subnet-4567"]
  execution_role_arn = "arn:aws:iam::111122223333:role/ecsTaskExecutionRole"
`+tc.inputs+`}
`)
			for _, r := range feedResources {
				if n := ev.resourceInt(t, r, "count"); n != 1 {
					t.Errorf("%s count %d, want 1", r, n)
				}
			}
			for r, want := range map[string]int{
				"aws_vpc_security_group_ingress_rule.feed_from_agents":             tc.agents,
				"aws_iam_role_policy_attachment.feed_watcher":                      tc.extra,
				"aws_vpc_security_group_ingress_rule.feed_metrics_from_prometheus": tc.prometheus,
				"aws_ecs_service.watcher":                                          0,
			} {
				if n := ev.resourceInt(t, r, "count"); n != want {
					t.Errorf("%s count %d, want %d", r, n, want)
				}
			}

			const tdr = "aws_ecs_task_definition.feed_watcher"
			var cds any
			if err := json.Unmarshal([]byte(ev.resource(t, tdr, "container_definitions").AsString()), &cds); err != nil {
				t.Fatal(err)
			}
			td := checkTaskDefinition(t, map[string]any{
				"family":                  ev.resource(t, tdr, "family").AsString(),
				"taskRoleArn":             "arn:aws:iam::111122223333:role/secrets-agent-watch-feed",
				"executionRoleArn":        ev.resource(t, tdr, "execution_role_arn").AsString(),
				"networkMode":             ev.resource(t, tdr, "network_mode").AsString(),
				"requiresCompatibilities": []string{ev.resource(t, tdr, "requires_compatibilities").Index(cty.NumberIntVal(0)).AsString()},
				"cpu":                     ev.resource(t, tdr, "cpu").AsString(),
				"memory":                  ev.resource(t, tdr, "memory").AsString(),
				"containerDefinitions":    cds,
			})
			c := td.ContainerDefinitions[0]
			if !slices.Equal(c.Command, []string{"watch"}) || len(c.Environment) != 1 || tdcheck.Deref(c.Environment[0].Name) != "AGENT_CONFIG" {
				t.Fatalf("watch container: command %q, environment %d entries", c.Command, len(c.Environment))
			}
			// The feed's token: from Secrets Manager through ECS's own
			// injection when given; none otherwise.
			var secrets, wantSecrets []string
			for _, sec := range c.Secrets {
				secrets = append(secrets, tdcheck.Deref(sec.Name)+"="+tdcheck.Deref(sec.ValueFrom))
			}
			if strings.Contains(tc.inputs, "token_secret_arn") {
				wantSecrets = []string{"AGENT_FEED_TOKEN=" + feedToken}
			}
			if !slices.Equal(secrets, wantSecrets) {
				t.Errorf("watch container secrets %q, want %q", secrets, wantSecrets)
			}
			js := tdcheck.Deref(c.Environment[0].Value)
			wc, err := config.LoadWatch("", func(k string) string { return map[string]string{"AGENT_CONFIG": js}[k] })
			if err != nil {
				t.Fatalf("AGENT_CONFIG %s: %v", js, err)
			}
			if !reflect.DeepEqual(*wc, tc.wantConfig) {
				t.Errorf("AGENT_CONFIG %s, want %+v", js, tc.wantConfig)
			}
			var ports []int32
			for _, m := range c.PortMappings {
				ports = append(ports, *m.ContainerPort)
			}
			if !slices.Equal(ports, []int32{8081, 9102}) {
				t.Errorf("container ports %v, want the feed's 8081 and metrics' 9102", ports)
			}

			args := []string{"policy", "--command", "watch", "--feed", "--region", "us-east-1", "--account", testAccount}
			if got, want := decodeJSON(t, ev.local(t, "feed_policy_json").AsString()), agentJSON(t, agent, args...); !reflect.DeepEqual(got, want) {
				t.Errorf("feed watcher policy is not what `agent %s` prints:\ngot  %s\nwant %s", strings.Join(args, " "), jsonText(t, got), jsonText(t, want))
			}

			const svc = "aws_ecs_service.feed_watcher"
			for attr, want := range map[string]int{"desired_count": tc.desired, "deployment_minimum_healthy_percent": 50, "deployment_maximum_percent": 200} {
				if got := ev.resourceInt(t, svc, attr); got != want {
					t.Errorf("%s.%s = %d, want %d", svc, attr, got, want)
				}
			}
			if got := jsonText(t, cty.TupleVal([]cty.Value{ev.block(t, svc, "load_balancer", "container_name"), ev.block(t, svc, "load_balancer", "container_port")})); got != `["watch",8081]` {
				t.Errorf("%s load_balancer: container and port %s, want the feed's", svc, got)
			}

			// An internal network load balancer on the feed's port, with an
			// HTTP health check on the watchers' /healthz.
			got := map[string]string{}
			for _, ra := range []string{"aws_lb.feed internal", "aws_lb.feed load_balancer_type", "aws_lb_target_group.feed target_type",
				"aws_lb_target_group.feed protocol", "aws_lb_target_group.feed port", "aws_lb_listener.feed protocol", "aws_lb_listener.feed port"} {
				r, a, _ := strings.Cut(ra, " ")
				got[ra] = jsonText(t, ev.resource(t, r, a))
			}
			for _, a := range []string{"protocol", "port", "path"} {
				got["health_check "+a] = jsonText(t, ev.block(t, "aws_lb_target_group.feed", "health_check", a))
			}
			want := map[string]string{
				"aws_lb.feed internal": `true`, "aws_lb.feed load_balancer_type": `"network"`, "aws_lb_target_group.feed target_type": `"ip"`,
				"aws_lb_target_group.feed protocol": `"TCP"`, "aws_lb_target_group.feed port": `8081`, "aws_lb_listener.feed protocol": `"TCP"`,
				"aws_lb_listener.feed port": `8081`, "health_check protocol": `"HTTP"`, "health_check port": `"9102"`, "health_check path": `"/healthz"`,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("load balancer:\ngot  %v\nwant %v", got, want)
			}

			// Ingress: one tcp port from a security group, never an address
			// range; the agents' groups reach the feed port only.
			for name := range m.resources {
				if !strings.HasPrefix(name, "aws_vpc_security_group_ingress_rule.") {
					continue
				}
				if _, ok := m.resources[name].Attributes["cidr_ipv4"]; ok {
					t.Errorf("%s: an address range; admit security groups only", name)
				}
				if _, ok := m.resources[name].Attributes["referenced_security_group_id"]; !ok {
					t.Errorf("%s: no referenced_security_group_id", name)
				}
			}
			const agents = "aws_vpc_security_group_ingress_rule.feed_from_agents"
			if got := jsonText(t, cty.TupleVal([]cty.Value{ev.resource(t, agents, "ip_protocol"), ev.resource(t, agents, "from_port"), ev.resource(t, agents, "to_port")})); got != `["tcp",8081,8081]` {
				t.Errorf("%s: %s, want tcp 8081 only", agents, got)
			}
		})
	}

	_, diags := m.variables(userContainers + `
secrets = { A = "/a" }
feed_watcher = {
  cluster = "prod", vpc_id = "vpc-0123", subnets = ["subnet-0123"], agent_security_groups = ["sg-web"]
  execution_role_arn = "arn:aws:iam::111122223333:role/ecsTaskExecutionRole", desired_count = 1
}
`)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "feed_watcher.desired_count must be 2 or more") {
		t.Errorf("desired_count 1: diagnostics %v, want the validation's error", diags)
	}
}

// TestREADMEFeedExample evaluates deploy/README.md's feed_watcher example
// (the second ```hcl block under "## Terraform") with the first example's
// other arguments: the module takes it and creates the feed watchers.
func TestREADMEFeedExample(t *testing.T) {
	m := loadModule(t)
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(raw), "## Terraform")
	args := hcl.Attributes{}
	for i := range 2 {
		_, after, ok := strings.Cut(rest, "```hcl\n")
		src, tail, ok2 := strings.Cut(after, "```")
		if !ok || !ok2 {
			t.Fatalf("deploy/README.md: no ```hcl example %d under \"## Terraform\"", i+1)
		}
		rest = tail
		f, diags := hclsyntax.ParseConfig([]byte(src), "README.md", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("README example %d: %v", i+1, diags)
		}
		content, _, diags := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "module", LabelNames: []string{"name"}}}})
		if diags.HasErrors() || len(content.Blocks) != 1 {
			t.Fatalf("README example %d: want one module block: %v", i+1, diags)
		}
		attrs, diags := content.Blocks[0].Body.JustAttributes()
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		maps.Copy(args, attrs)
	}
	if _, ok := args["feed_watcher"]; !ok {
		t.Fatal("README's second Terraform example sets no feed_watcher")
	}
	delete(args, "source")
	vars, diags := m.inputs(args)
	if diags.HasErrors() {
		t.Fatalf("README feed example's arguments: %v", diags)
	}
	ev := m.evaluateVars(t, "eu-west-1", vars)
	for _, r := range feedResources {
		if n := ev.resourceInt(t, r, "count"); n != 1 {
			t.Errorf("%s count %d, want 1", r, n)
		}
	}
}
