package cloudformation

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/tdcheck"
)

// TestFeedWatcherTemplate evaluates feed-watcher.json: the watchers' task
// definition passes the checks of deploy/, their AGENT_CONFIG is what agent
// watch reads, their role is `agent policy --command watch --feed` plus the
// extra managed policies, the feed's port is open to the agents' security
// groups only (through an internal Network Load Balancer), and the service
// keeps half its watchers through a deployment.
func TestFeedWatcherTemplate(t *testing.T) {
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	tmpl := readTemplate(t, "feed-watcher.json")
	const queue = "https://sqs.us-east-1.amazonaws.com/111122223333/secrets-changes"
	const eventsPolicy = "arn:aws:iam::111122223333:policy/secrets-feed-events"
	const feedToken = "arn:aws:secretsmanager:us-east-1:111122223333:secret:feed-token-AbCdEf"
	base := map[string]string{
		"AgentImage":          agentImage,
		"Cluster":             "prod",
		"VpcId":               "vpc-0123",
		"Subnets":             "subnet-0123,subnet-4567",
		"AgentSecurityGroups": "sg-web,sg-api",
		"ExecutionRoleArn":    "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
	}
	for _, tc := range []struct {
		name       string
		params     map[string]string
		wantConfig config.Watch
		wantManage []any
		prometheus string
	}{
		{"defaults", nil, config.Watch{FeedAddr: ":8081", Interval: "1m"}, nil, ""},
		{"events-prometheus", map[string]string{
			"EventsQueueUrl": queue, "ExtraManagedPolicyArns": eventsPolicy, "PrometheusSecurityGroup": "sg-prom",
			"Interval": "30s", "DesiredCount": "3",
		}, config.Watch{FeedAddr: ":8081", Interval: "30s", EventsQueue: queue}, []any{eventsPolicy}, "sg-prom"},
		{"token", map[string]string{"FeedTokenSecretArn": feedToken}, config.Watch{FeedAddr: ":8081", Interval: "1m"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := map[string]string{}
			for k, v := range base {
				params[k] = v
			}
			for k, v := range tc.params {
				params[k] = v
			}
			stack := evaluate(t, tmpl, testRegion, params)

			td := checkTaskDefinition(t, stack.properties(t, "TaskDefinition", "AWS::ECS::TaskDefinition"))
			c := td.ContainerDefinitions[0]
			if !slices.Equal(c.Command, []string{"watch"}) || len(c.Environment) != 1 || tdcheck.Deref(c.Environment[0].Name) != "AGENT_CONFIG" {
				t.Fatalf("watch container: command %q, environment %d entries", c.Command, len(c.Environment))
			}
			// The feed's token: from Secrets Manager through ECS's own
			// injection when given, never in the environment; none otherwise.
			var secrets []string
			for _, sec := range c.Secrets {
				secrets = append(secrets, tdcheck.Deref(sec.Name)+"="+tdcheck.Deref(sec.ValueFrom))
			}
			wantSecrets := []string(nil)
			if arn := params["FeedTokenSecretArn"]; arn != "" {
				wantSecrets = []string{"AGENT_FEED_TOKEN=" + arn}
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

			role := stack.properties(t, "TaskRole", "AWS::IAM::Role")
			checkTrust(t, agent, testRegion, role)
			policy := agentJSON(t, agent, "policy", "--command", "watch", "--feed", "--region", testRegion, "--account", testAccount)
			if got := rolePolicies(t, stack, "TaskRole"); !reflect.DeepEqual(got, policy) {
				t.Errorf("the watchers' policy is not what `agent policy --command watch --feed` prints:\ngot  %s\nwant %s", jsonText(got), jsonText(policy))
			}
			if got, _ := role["ManagedPolicyArns"].([]any); !reflect.DeepEqual(got, tc.wantManage) {
				t.Errorf("ManagedPolicyArns %v, want %v", role["ManagedPolicyArns"], tc.wantManage)
			}

			checkFeedNetwork(t, stack, []string{"sg-web", "sg-api"}, tc.prometheus)

			svc := stack.properties(t, "Service", "AWS::ECS::Service")
			want := `{"DeploymentConfiguration":{"MaximumPercent":200,"MinimumHealthyPercent":50},"DesiredCount":"` + orDefault(params["DesiredCount"], "2") +
				`","LaunchType":"FARGATE","LoadBalancers":[{"ContainerName":"watch","ContainerPort":8081,"TargetGroupArn":"ref-TargetGroup"}],` +
				`"NetworkConfiguration":{"AwsvpcConfiguration":{"AssignPublicIp":"DISABLED","SecurityGroups":["sg-watchersecuritygroup"],"Subnets":["subnet-0123","subnet-4567"]}}}`
			if got := jsonText(map[string]any{
				"DesiredCount": svc["DesiredCount"], "LaunchType": svc["LaunchType"], "DeploymentConfiguration": svc["DeploymentConfiguration"],
				"LoadBalancers": svc["LoadBalancers"], "NetworkConfiguration": svc["NetworkConfiguration"],
			}); got != want {
				t.Errorf("feed service:\ngot  %s\nwant %s", got, want)
			}

			// The URL the agents are given is one refresh.feed accepts.
			feedURL, _ := stack.output(t, tmpl, "FeedUrl").(string)
			if feedURL != "http://loadbalancer-0123456789abcdef.elb.us-east-1.amazonaws.com:8081" {
				t.Errorf("FeedUrl %q", feedURL)
			}
			if _, err := config.Load(config.Flags{Secrets: []string{"A=/a"}, Feed: feedURL}, func(string) string { return "" }); err != nil {
				t.Errorf("FeedUrl as --feed: %v", err)
			}
		})
	}
}

// checkFeedNetwork: the feed's port is reachable from the agents' groups
// through the internal load balancer and from nothing else; the watchers
// admit the load balancer (feed, health check) and Prometheus (metrics).
func checkFeedNetwork(t *testing.T, s *stack, agentGroups []string, prometheus string) {
	t.Helper()
	const lbGroup, watcherGroup = "sg-loadbalancersecuritygroup", "sg-watchersecuritygroup"
	type rule struct {
		group, from string
		port        any
	}
	var got []rule
	for _, id := range sortedKeys(s.resources) {
		r := s.resources[id].(map[string]any)
		props := r["Properties"].(map[string]any)
		var group string
		var rules []any
		switch r["Type"] {
		case "AWS::EC2::SecurityGroupIngress":
			group, rules = props["GroupId"].(string), []any{props}
		case "AWS::EC2::SecurityGroup":
			group, rules = "sg-"+strings.ToLower(id), asList(props["SecurityGroupIngress"])
			if props["SecurityGroupEgress"] != nil {
				t.Errorf("%s: egress rules replace the default (all out), which the watchers need for AWS", id)
			}
		default:
			continue
		}
		for _, in := range rules {
			in := in.(map[string]any)
			if in["CidrIp"] != nil || in["CidrIpv6"] != nil || in["FromPort"] != in["ToPort"] || in["IpProtocol"] != "tcp" {
				t.Errorf("%s: ingress %v: want one tcp port from a security group, never an address range", id, in)
			}
			got = append(got, rule{group, in["SourceSecurityGroupId"].(string), in["FromPort"]})
		}
	}
	feed, metrics := json.Number("8081"), json.Number("9102")
	var want []rule
	for _, g := range agentGroups {
		want = append(want, rule{lbGroup, g, feed})
	}
	want = append(want, rule{watcherGroup, lbGroup, feed}, rule{watcherGroup, lbGroup, metrics})
	if prometheus != "" {
		want = append(want, rule{watcherGroup, prometheus, metrics})
	}
	key := func(r rule) string { return r.group + " " + r.from + " " + jsonText(r.port) }
	gotKeys, wantKeys := []string{}, []string{}
	for _, r := range got {
		gotKeys = append(gotKeys, key(r))
	}
	for _, r := range want {
		wantKeys = append(wantKeys, key(r))
	}
	slices.Sort(gotKeys)
	slices.Sort(wantKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Errorf("ingress rules (group, source, port):\ngot  %q\nwant %q", gotKeys, wantKeys)
	}

	lb := s.properties(t, "LoadBalancer", "AWS::ElasticLoadBalancingV2::LoadBalancer")
	if lb["Scheme"] != "internal" || lb["Type"] != "network" || !reflect.DeepEqual(lb["SecurityGroups"], []any{lbGroup}) {
		t.Errorf("load balancer %s: want an internal network load balancer in %s", jsonText(lb), lbGroup)
	}
	tg := s.properties(t, "TargetGroup", "AWS::ElasticLoadBalancingV2::TargetGroup")
	if got := jsonText(map[string]any{"TargetType": tg["TargetType"], "Protocol": tg["Protocol"], "Port": tg["Port"],
		"HealthCheckProtocol": tg["HealthCheckProtocol"], "HealthCheckPort": tg["HealthCheckPort"], "HealthCheckPath": tg["HealthCheckPath"]}); got != `{"HealthCheckPath":"/healthz","HealthCheckPort":"9102","HealthCheckProtocol":"HTTP","Port":8081,"Protocol":"TCP","TargetType":"ip"}` {
		t.Errorf("target group: %s", got)
	}
	ln := s.properties(t, "Listener", "AWS::ElasticLoadBalancingV2::Listener")
	if got := jsonText(ln); got != `{"DefaultActions":[{"TargetGroupArn":"ref-TargetGroup","Type":"forward"}],"LoadBalancerArn":"ref-LoadBalancer","Port":8081,"Protocol":"TCP"}` {
		t.Errorf("listener: %s", got)
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
