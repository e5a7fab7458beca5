// Package cloudformation checks the templates here without an AWS account:
// a small evaluator resolves the intrinsic functions they use (Ref, Fn::Sub,
// Fn::If, Fn::Join, Fn::Split, Fn::GetAtt, conditions, and the
// AWS::LanguageExtensions transform's Fn::ForEach over Resources) for given
// parameter values, with CloudFormation's rules on what may be a function
// (a Join or Split delimiter and a Sub template are literal strings). The
// task definition it yields, converted from CloudFormation's PascalCase to
// the API's camelCase, must pass the checks every task definition under
// deploy/ passes (internal/tdcheck), the agent's command must pass
// `agent check`, and the task role's policies must be what `agent policy`
// prints for the same secrets or services.
package cloudformation

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/tdcheck"
)

const (
	testAccount = "111122223333"
	testRegion  = "us-east-1"
	agentImage  = "111122223333.dkr.ecr.us-east-1.amazonaws.com/ecs-secrets-agent:1.0.0"
)

func TestAgentTemplate(t *testing.T) {
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	tmpl := readTemplate(t, "agent.json")
	base := map[string]string{
		"AgentImage":       agentImage,
		"AppImage":         "public.ecr.aws/nginx/nginx-unprivileged:stable",
		"ExecutionRoleArn": "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
	}
	param := "/prod/db/password"
	secretRef := "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf:key::"
	paramARN := "arn:aws:ssm:us-east-1:111122223333:parameter/prod/db/password"
	secretARN := "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-AbCdEf"
	tests := []struct {
		name   string
		params map[string]string
	}{
		{"sidecar-signal", map[string]string{
			"Pattern": "sidecar", "Secrets": "DB_PASSWORD=" + param + ",API_KEY=" + secretRef,
			"ParameterArns": paramARN, "SecretArns": secretARN, "SignalProcess": "nginx", "AgentUser": "0",
		}},
		{"sidecar-feed-signal", map[string]string{
			"Pattern": "sidecar", "Secrets": "DB_PASSWORD=" + param, "ParameterArns": paramARN, "SignalProcess": "nginx", "AgentUser": "0",
			"FeedUrl": "http://loadbalancer-0123456789abcdef.elb.us-east-1.amazonaws.com:8081",
		}},
		{"sidecar-feed", map[string]string{
			"Pattern": "sidecar", "Secrets": "API_KEY=" + secretRef, "SecretArns": secretARN,
			"FeedUrl": "http://loadbalancer-0123456789abcdef.elb.us-east-1.amazonaws.com:8081",
		}},
		{"sidecar-feed-token", map[string]string{
			"Pattern": "sidecar", "Secrets": "API_KEY=" + secretRef, "SecretArns": secretARN,
			"FeedUrl":            "http://loadbalancer-0123456789abcdef.elb.us-east-1.amazonaws.com:8081",
			"FeedTokenSecretArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:feed-token-AbCdEf",
		}},
		{"init-feed-ignored", map[string]string{
			"Pattern": "init", "Secrets": "DB_PASSWORD=" + param, "ParameterArns": paramARN,
			"FeedUrl":            "http://loadbalancer-0123456789abcdef.elb.us-east-1.amazonaws.com:8081",
			"FeedTokenSecretArn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:feed-token-AbCdEf",
		}},
		{"sidecar-secrets-only", map[string]string{
			"Pattern": "sidecar", "Secrets": "API_KEY=" + secretRef, "SecretArns": secretARN, "CpuArchitecture": "ARM64",
		}},
		{"init", map[string]string{
			"Pattern": "init", "Secrets": "DB_PASSWORD=" + param + ",API_KEY=" + secretRef,
			"ParameterArns": paramARN, "SecretArns": secretARN, "AppContainerName": "web",
		}},
		{"init-parameter-only", map[string]string{
			"Pattern": "init", "Secrets": "DB_PASSWORD=" + param, "ParameterArns": paramARN,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params := map[string]string{}
			for k, v := range base {
				params[k] = v
			}
			for k, v := range tc.params {
				params[k] = v
			}
			checkAgentStack(t, agent, tmpl, testRegion, params)
		})
	}
}

// TestREADMEDeploy evaluates the `aws cloudformation deploy` command of
// deploy/README.md: its template and parameters give a stack that passes
// the same checks.
func TestREADMEDeploy(t *testing.T) {
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	var args []string
	for _, line := range strings.Split(text, "\n") {
		if _, rest, ok := strings.Cut(line, "aws cloudformation deploy "); ok {
			args = strings.Fields(rest)
			break
		}
	}
	if args == nil {
		t.Fatal("deploy/README.md has no `aws cloudformation deploy` command")
	}
	params := map[string]string{}
	var file string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--template-file":
			i++
			file = args[i]
		case "--parameter-overrides":
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
				k, v, ok := strings.Cut(strings.Trim(args[i], "'"), "=")
				if !ok {
					t.Fatalf("README: parameter %q: want KEY=VALUE", args[i])
				}
				params[k] = v
			}
		}
	}
	if file != "deploy/cloudformation/agent.json" {
		t.Fatalf("README: --template-file %q, want deploy/cloudformation/agent.json", file)
	}
	checkAgentStack(t, agent, readTemplate(t, "agent.json"), "eu-west-1", params)
}

// checkAgentStack evaluates agent.json for params in region and checks the
// task definition, the agent's command and the role's policies.
func checkAgentStack(t *testing.T, agent string, tmpl map[string]any, region string, params map[string]string) {
	t.Helper()
	command, pidMode := "run", types.PidMode("")
	if params["Pattern"] == "init" {
		command = "init"
	} else if params["SignalProcess"] != "" {
		pidMode = types.PidModeTask
	}
	stack := evaluate(t, tmpl, region, params)
	td := checkTaskDefinition(t, stack.properties(t, "TaskDefinition", "AWS::ECS::TaskDefinition"))
	if td.PidMode != pidMode {
		t.Errorf("pidMode %q, want %q", td.PidMode, pidMode)
	}
	agentC, app := td.ContainerDefinitions[0], td.ContainerDefinitions[1]
	if want := params["AppContainerName"]; want != "" && tdcheck.Deref(app.Name) != want {
		t.Errorf("app container %q, want %q", tdcheck.Deref(app.Name), want)
	}
	wantCond := map[string]types.ContainerCondition{"run": types.ContainerConditionHealthy, "init": types.ContainerConditionSuccess}[command]
	if len(app.DependsOn) != 1 || tdcheck.Deref(app.DependsOn[0].ContainerName) != "secrets" || app.DependsOn[0].Condition != wantCond {
		t.Errorf("app dependsOn %+v, want secrets %s", app.DependsOn, wantCond)
	}
	if (command == "run") != (agentC.HealthCheck != nil) {
		t.Errorf("agent healthCheck %v: a sidecar needs one (the app waits for HEALTHY), an init container none", agentC.HealthCheck)
	}
	var wantSecrets []string
	for _, s := range strings.Split(params["Secrets"], ",") {
		wantSecrets = append(wantSecrets, "--secret", s)
	}
	wantCmd := append([]string{"init"}, wantSecrets...)
	if command == "run" {
		wantCmd = append([]string{"run", "--interval", "5m"}, wantSecrets...)
	}
	if !slices.Equal(agentC.Command, wantCmd) {
		t.Errorf("agent command %q, want %q", agentC.Command, wantCmd)
	}
	checkAgentCommand(t, agent, agentC)
	// A sidecar given FeedUrl asks the feed (refresh.feed); an init
	// container does not refresh, so it has none.
	s, err := config.Load(config.Flags{Secrets: strings.Split(params["Secrets"], ",")}, func(k string) string {
		for _, e := range agentC.Environment {
			if tdcheck.Deref(e.Name) == k {
				return tdcheck.Deref(e.Value)
			}
		}
		return ""
	})
	wantFeed := params["FeedUrl"]
	if command == "init" {
		wantFeed = ""
	}
	switch {
	case err != nil:
		t.Errorf("agent's configuration: %v", err)
	case s.Feed != wantFeed:
		t.Errorf("agent's refresh.feed %q, want %q", s.Feed, wantFeed)
	}
	// Its token, when given, through ECS's own injection; none without a
	// feed.
	var tokenSecrets []string
	for _, sec := range agentC.Secrets {
		tokenSecrets = append(tokenSecrets, tdcheck.Deref(sec.Name)+"="+tdcheck.Deref(sec.ValueFrom))
	}
	var wantToken []string
	if arn := params["FeedTokenSecretArn"]; arn != "" && wantFeed != "" {
		wantToken = []string{"AGENT_FEED_TOKEN=" + arn}
	}
	if !slices.Equal(tokenSecrets, wantToken) {
		t.Errorf("agent container secrets %q, want %q", tokenSecrets, wantToken)
	}

	role := stack.properties(t, "TaskRole", "AWS::IAM::Role")
	checkTrust(t, agent, region, role)
	args := []string{"policy", "--command", command, "--region", region, "--account", testAccount}
	for _, s := range strings.Split(params["Secrets"], ",") {
		args = append(args, "--secret", s)
	}
	got := rolePolicies(t, stack, "TaskRole")
	if want := agentJSON(t, agent, args...); !reflect.DeepEqual(got, want) {
		t.Errorf("task role policy is not what `agent %s` prints:\ngot  %s\nwant %s", strings.Join(args, " "), jsonText(got), jsonText(want))
	}
}

func TestWatcherTemplate(t *testing.T) {
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	stack := evaluate(t, readTemplate(t, "watcher.json"), testRegion, map[string]string{
		"AgentImage":       agentImage,
		"Cluster":          "prod",
		"Services":         "web,api,billing-v2",
		"ExecutionRoleArn": "arn:aws:iam::111122223333:role/ecsTaskExecutionRole",
		"Subnets":          "subnet-0123,subnet-4567",
		"SecurityGroups":   "sg-0123",
	})
	td := checkTaskDefinition(t, stack.properties(t, "TaskDefinition", "AWS::ECS::TaskDefinition"))
	want := []string{"watch", "--cluster", "prod", "--service", "web", "--service", "api", "--service", "billing-v2", "--interval", "5m"}
	if got := td.ContainerDefinitions[0].Command; !slices.Equal(got, want) {
		t.Errorf("watch command %q, want %q", got, want)
	}

	// One watcher, never two at once (deploy/README.md, "The agent watch service").
	svc := stack.properties(t, "Service", "AWS::ECS::Service")
	if got := jsonText(map[string]any{
		"DesiredCount": svc["DesiredCount"], "LaunchType": svc["LaunchType"],
		"DeploymentConfiguration": svc["DeploymentConfiguration"], "TaskDefinition": svc["TaskDefinition"],
	}); got != `{"DeploymentConfiguration":{"MaximumPercent":100,"MinimumHealthyPercent":0},"DesiredCount":1,"LaunchType":"FARGATE","TaskDefinition":"arn:aws:ecs:us-east-1:111122223333:task-definition/TaskDefinition:1"}` {
		t.Errorf("watcher service: %s", got)
	}

	role := stack.properties(t, "TaskRole", "AWS::IAM::Role")
	checkTrust(t, agent, testRegion, role)
	// Fn::ForEach gives each service a policy of its own (CloudFormation
	// cannot prefix each element of a list), so the role's statements are
	// merged by Sid before the comparison; IAM ignores the order of
	// resources, so both sides are sorted.
	got := rolePolicies(t, stack, "TaskRole")
	policy := agentJSON(t, agent, "policy", "--command", "watch", "--cluster", "prod",
		"--service", "web", "--service", "api", "--service", "billing-v2", "--region", testRegion, "--account", testAccount)
	sortResources(policy)
	if !reflect.DeepEqual(got, policy) {
		t.Errorf("watcher's policies are not what `agent policy --command watch` prints:\ngot  %s\nwant %s", jsonText(got), jsonText(policy))
	}
}

// checkTaskDefinition turns the evaluated properties into the API's JSON and
// applies the checks of every task definition under deploy/.
func checkTaskDefinition(t *testing.T, props map[string]any) *ecs.RegisterTaskDefinitionInput {
	t.Helper()
	api, err := camelCase(props, reflect.TypeFor[ecs.RegisterTaskDefinitionInput]())
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(api)
	if err != nil {
		t.Fatal(err)
	}
	td := tdcheck.DecodeStrict(t, data)
	tdcheck.KeyCase(t, data)
	tdcheck.Containers(t, td, isAgent)
	if slices.Contains(td.RequiresCompatibilities, types.CompatibilityFargate) {
		tdcheck.Fargate(t, td)
	}
	if t.Failed() {
		t.Logf("task definition: %s", data)
	}
	return td
}

// checkAgentCommand runs `agent check --for COMMAND` with the agent
// container's flags and environment.
func checkAgentCommand(t *testing.T, agent string, c types.ContainerDefinition) {
	t.Helper()
	if len(c.Command) == 0 {
		t.Fatal("agent container has no command")
	}
	cmd := exec.Command(agent, append([]string{"check", "--for"}, c.Command...)...)
	cmd.Env = []string{}
	for _, e := range c.Environment {
		cmd.Env = append(cmd.Env, tdcheck.Deref(e.Name)+"="+tdcheck.Deref(e.Value))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("agent check --for %q: %v\n%s", c.Command, err, out)
	}
}

// checkTrust compares the role's trust policy with `agent policy --trust`.
func checkTrust(t *testing.T, agent, region string, role map[string]any) {
	t.Helper()
	want := agentJSON(t, agent, "policy", "--trust", "--region", region, "--account", testAccount)
	if got := role["AssumeRolePolicyDocument"]; !reflect.DeepEqual(got, want) {
		t.Errorf("trust policy:\ngot  %s\nwant %s", jsonText(got), jsonText(want))
	}
}

// rolePolicies is the policy the role ends up with: its inline Policies and
// every AWS::IAM::RolePolicy naming it, statements with one Sid merged. With
// one policy document it is that document, unchanged.
func rolePolicies(t *testing.T, s *stack, role string) map[string]any {
	t.Helper()
	var docs []any
	for _, p := range asList(s.properties(t, role, "AWS::IAM::Role")["Policies"]) {
		docs = append(docs, p.(map[string]any)["PolicyDocument"])
	}
	fake := s.refs[role]
	for _, id := range sortedKeys(s.resources) {
		r := s.resources[id].(map[string]any)
		if r["Type"] == "AWS::IAM::RolePolicy" && r["Properties"].(map[string]any)["RoleName"] == fake {
			docs = append(docs, r["Properties"].(map[string]any)["PolicyDocument"])
		}
	}
	if len(docs) == 1 {
		return docs[0].(map[string]any)
	}
	bySid := map[string]map[string]any{}
	var order []string
	for _, d := range docs {
		for _, st := range asList(d.(map[string]any)["Statement"]) {
			st := st.(map[string]any)
			sid, _ := st["Sid"].(string)
			if prev, ok := bySid[sid]; ok {
				prev["Resource"] = append(asList(prev["Resource"]), asList(st["Resource"])...)
				continue
			}
			bySid[sid] = st
			order = append(order, sid)
		}
	}
	// The order agent policy prints them in.
	rank := []string{"WatchServices", "WatchTaskDefinitions", "WatchParameters", "WatchSecrets", "WatchRedeployLock", "FeedParameters", "FeedSecrets"}
	sort.SliceStable(order, func(i, j int) bool { return slices.Index(rank, order[i]) < slices.Index(rank, order[j]) })
	var stmts []any
	for _, sid := range order {
		stmts = append(stmts, bySid[sid])
	}
	doc := map[string]any{"Version": "2012-10-17", "Statement": stmts}
	sortResources(doc)
	return doc
}

func sortResources(doc map[string]any) {
	for _, st := range asList(doc["Statement"]) {
		st := st.(map[string]any)
		r := asList(st["Resource"])
		sort.Slice(r, func(i, j int) bool { return r[i].(string) < r[j].(string) })
		st["Resource"] = r
	}
}

// camelCase turns CloudFormation's property names into the API's, walking
// beside the SDK type: a struct field's name gets a lower-case first letter,
// a map's keys (options, dockerLabels) are the user's and stay.
func camelCase(v any, typ reflect.Type) (any, error) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, child := range v {
			var ft reflect.Type
			key := k
			switch typ.Kind() {
			case reflect.Struct:
				f, ok := typ.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, k) })
				if !ok {
					return nil, fmt.Errorf("property %s: no such field in %s", k, typ)
				}
				ft, key = f.Type, strings.ToLower(k[:1])+k[1:]
			case reflect.Map:
				ft = typ.Elem()
			default:
				return nil, fmt.Errorf("property %s: an object where %s is expected", k, typ)
			}
			c, err := camelCase(child, ft)
			if err != nil {
				return nil, err
			}
			out[key] = c
		}
		return out, nil
	case []any:
		if typ.Kind() != reflect.Slice {
			return nil, fmt.Errorf("a list where %s is expected", typ)
		}
		out := make([]any, len(v))
		for i, child := range v {
			c, err := camelCase(child, typ.Elem())
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	return v, nil
}

// noValue is what AWS::NoValue evaluates to: the property or list element
// that holds it is removed.
type noValue struct{}

// stack is a template evaluated for one set of parameter values.
type stack struct {
	region     string         // AWS::Region
	params     map[string]any // string, or []any for a list type
	conditions map[string]any // definitions
	condCache  map[string]bool
	resources  map[string]any // logical id → resource, ForEach expanded
	refs       map[string]string
	scope      map[string]map[string]string // logical id → ForEach identifiers
}

func evaluate(t *testing.T, tmpl map[string]any, region string, given map[string]string) *stack {
	t.Helper()
	s := &stack{region: region, params: map[string]any{}, condCache: map[string]bool{}, resources: map[string]any{},
		refs: map[string]string{}, scope: map[string]map[string]string{}}
	s.conditions, _ = tmpl["Conditions"].(map[string]any)
	declared, _ := tmpl["Parameters"].(map[string]any)
	for name := range given {
		if _, ok := declared[name]; !ok {
			t.Fatalf("parameter %s: not in the template", name)
		}
	}
	for name, d := range declared {
		d := d.(map[string]any)
		v, ok := given[name]
		if !ok {
			def, has := d["Default"].(string)
			if !has {
				t.Fatalf("parameter %s has no default and no value", name)
			}
			v = def
		}
		if allowed, ok := d["AllowedValues"].([]any); ok && !slices.Contains(allowed, any(v)) {
			t.Fatalf("parameter %s: %q not in %v", name, v, allowed)
		}
		if typ := d["Type"].(string); typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<") {
			var l []any
			for _, e := range strings.Split(v, ",") {
				l = append(l, e)
			}
			s.params[name] = l
		} else {
			s.params[name] = v
		}
	}
	if tr, ok := tmpl["Transform"]; ok && tr != "AWS::LanguageExtensions" {
		t.Fatalf("Transform %v: the evaluator knows AWS::LanguageExtensions only", tr)
	}
	for id, r := range tmpl["Resources"].(map[string]any) {
		if !strings.HasPrefix(id, "Fn::ForEach::") {
			s.resources[id] = r
			continue
		}
		// ["Identifier", collection, {"LogicalId&{Identifier}": resource}]
		args := r.([]any)
		ident := args[0].(string)
		coll, err := s.eval(args[1], nil)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		for _, item := range asList(coll) {
			item := item.(string)
			alnum := regexp.MustCompile(`[^A-Za-z0-9]`).ReplaceAllString(item, "")
			for tid, body := range args[2].(map[string]any) {
				rid := strings.ReplaceAll(tid, "&{"+ident+"}", alnum)
				if _, dup := s.resources[rid]; dup {
					t.Fatalf("%s: logical id %s twice", id, rid)
				}
				s.resources[rid] = body
				s.scope[rid] = map[string]string{ident: item}
			}
		}
	}
	for id, r := range s.resources {
		typ := r.(map[string]any)["Type"].(string)
		switch typ {
		case "AWS::IAM::Role":
			s.refs[id] = id // Ref is the role's name
		case "AWS::ECS::TaskDefinition":
			s.refs[id] = "arn:aws:ecs:" + s.region + ":" + testAccount + ":task-definition/" + id + ":1"
		case "AWS::SQS::Queue":
			s.refs[id] = "https://sqs." + s.region + ".amazonaws.com/" + testAccount + "/" + id // Ref is the queue URL
		case "AWS::IAM::ManagedPolicy":
			s.refs[id] = "arn:aws:iam::" + testAccount + ":policy/" + id
		default:
			s.refs[id] = "ref-" + id
		}
	}
	for id, r := range s.resources {
		r := r.(map[string]any)
		if c, ok := r["Condition"].(string); ok {
			on, err := s.condition(c)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if !on {
				delete(s.resources, id)
				continue
			}
		}
		props, err := s.eval(r["Properties"], s.scope[id])
		if err != nil {
			t.Fatalf("resource %s: %v", id, err)
		}
		s.resources[id] = map[string]any{"Type": r["Type"], "Properties": props}
	}
	return s
}

func (s *stack) properties(t *testing.T, id, typ string) map[string]any {
	t.Helper()
	r, ok := s.resources[id].(map[string]any)
	if !ok || r["Type"] != typ {
		t.Fatalf("no resource %s of type %s", id, typ)
	}
	return r["Properties"].(map[string]any)
}

func (s *stack) condition(name string) (bool, error) {
	if v, ok := s.condCache[name]; ok {
		return v, nil
	}
	def, ok := s.conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	v, err := s.eval(def, nil)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition %s is %v, not a boolean", name, v)
	}
	s.condCache[name] = b
	return b, nil
}

func (s *stack) ref(name string, scope map[string]string) (any, error) {
	if v, ok := scope[name]; ok {
		return v, nil
	}
	switch name {
	case "AWS::NoValue":
		return noValue{}, nil
	case "AWS::Region":
		return s.region, nil
	case "AWS::AccountId":
		return testAccount, nil
	case "AWS::Partition":
		return "aws", nil
	case "AWS::URLSuffix":
		return "amazonaws.com", nil
	}
	if v, ok := s.params[name]; ok {
		return v, nil
	}
	if v, ok := s.refs[name]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("Ref %s: no such parameter or resource", name)
}

func (s *stack) getAtt(res, attr string) (any, error) {
	r, ok := s.resources[res].(map[string]any)
	if _, known := s.refs[res]; !ok || !known {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no such resource", res, attr)
	}
	switch typ := r["Type"]; {
	case attr == "Arn" && typ == "AWS::IAM::Role":
		return "arn:aws:iam::" + testAccount + ":role/" + res, nil
	case attr == "GroupId" && typ == "AWS::EC2::SecurityGroup":
		return "sg-" + strings.ToLower(res), nil
	case attr == "DNSName" && typ == "AWS::ElasticLoadBalancingV2::LoadBalancer":
		return strings.ToLower(res) + "-0123456789abcdef.elb." + s.region + ".amazonaws.com", nil
	}
	switch typ := r["Type"]; {
	case attr == "Arn" && typ == "AWS::SQS::Queue":
		return "arn:aws:sqs:" + s.region + ":" + testAccount + ":" + res, nil
	case attr == "Arn" && typ == "AWS::Events::Rule":
		return "arn:aws:events:" + s.region + ":" + testAccount + ":rule/" + res, nil
	}
	return nil, fmt.Errorf("Fn::GetAtt %s.%s: the evaluator knows a role's, a queue's and a rule's Arn, a security group's GroupId and a load balancer's DNSName only", res, attr)
}

// output evaluates one of the template's Outputs.
func (s *stack) output(t *testing.T, tmpl map[string]any, name string) any {
	t.Helper()
	o, ok := tmpl["Outputs"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("no output %s", name)
	}
	v, err := s.eval(o["Value"], nil)
	if err != nil {
		t.Fatalf("output %s: %v", name, err)
	}
	return v
}

// eval resolves the intrinsic functions in v.
func (s *stack) eval(v any, scope map[string]string) (any, error) {
	switch v := v.(type) {
	case []any:
		var out []any
		for _, e := range v {
			r, err := s.eval(e, scope)
			if err != nil {
				return nil, err
			}
			if _, skip := r.(noValue); !skip {
				out = append(out, r)
			}
		}
		return out, nil
	case map[string]any:
		if len(v) == 1 {
			for k, arg := range v {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					return s.function(k, arg, scope)
				}
			}
		}
		out := map[string]any{}
		for k, e := range v {
			r, err := s.eval(e, scope)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if _, skip := r.(noValue); !skip {
				out[k] = r
			}
		}
		return out, nil
	}
	return v, nil
}

func (s *stack) function(name string, arg any, scope map[string]string) (any, error) {
	args, _ := arg.([]any)
	str := func(v any) (string, error) {
		r, err := s.eval(v, scope)
		if err != nil {
			return "", err
		}
		out, ok := r.(string)
		if !ok {
			return "", fmt.Errorf("%s: %v is not a string", name, r)
		}
		return out, nil
	}
	switch name {
	case "Ref":
		return s.ref(arg.(string), scope)
	case "Condition":
		return s.condition(arg.(string))
	case "Fn::GetAtt":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt %v: want [resource, attribute]", arg)
		}
		return s.getAtt(args[0].(string), args[1].(string))
	case "Fn::If":
		if len(args) != 3 {
			return nil, fmt.Errorf("Fn::If %v: want [condition, then, else]", arg)
		}
		on, err := s.condition(args[0].(string))
		if err != nil {
			return nil, err
		}
		if on {
			return s.eval(args[1], scope)
		}
		return s.eval(args[2], scope)
	case "Fn::Equals":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Equals %v: want two values", arg)
		}
		a, err := s.eval(args[0], scope)
		if err != nil {
			return nil, err
		}
		b, err := s.eval(args[1], scope)
		if err != nil {
			return nil, err
		}
		return reflect.DeepEqual(a, b), nil
	case "Fn::Not", "Fn::And", "Fn::Or":
		vals, err := s.eval(args, scope)
		if err != nil {
			return nil, err
		}
		var bs []bool
		for _, v := range vals.([]any) {
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("%s: %v is not a condition", name, v)
			}
			bs = append(bs, b)
		}
		switch {
		case name == "Fn::Not" && len(bs) == 1:
			return !bs[0], nil
		case name == "Fn::And" && len(bs) >= 2:
			return !slices.Contains(bs, false), nil
		case name == "Fn::Or" && len(bs) >= 2:
			return slices.Contains(bs, true), nil
		}
		return nil, fmt.Errorf("%s %v: wrong number of conditions", name, arg)
	case "Fn::Join":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Join %v: want [delimiter, list]", arg)
		}
		delim, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Join delimiter %v: CloudFormation takes a literal string only", args[0])
		}
		l, err := s.eval(args[1], scope)
		if err != nil {
			return nil, err
		}
		var parts []string
		for _, e := range asList(l) {
			p, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("Fn::Join: %v is not a string", e)
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, delim), nil
	case "Fn::Split":
		if len(args) != 2 {
			return nil, fmt.Errorf("Fn::Split %v: want [delimiter, string]", arg)
		}
		delim, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Split delimiter %v: CloudFormation takes a literal string only", args[0])
		}
		src, err := str(args[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(src, delim) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::Sub":
		tmpl, vars := "", map[string]any{}
		switch a := arg.(type) {
		case string:
			tmpl = a
		case []any:
			if len(a) != 2 {
				return nil, fmt.Errorf("Fn::Sub %v: want a string or [string, variables]", arg)
			}
			var ok bool
			if tmpl, ok = a[0].(string); !ok {
				return nil, fmt.Errorf("Fn::Sub template %v: CloudFormation takes a literal string only", a[0])
			}
			for k, e := range a[1].(map[string]any) {
				r, err := s.eval(e, scope)
				if err != nil {
					return nil, err
				}
				vars[k] = r
			}
		default:
			return nil, fmt.Errorf("Fn::Sub %v: want a string or [string, variables]", arg)
		}
		var firstErr error
		out := regexp.MustCompile(`\$\{([^}]*)\}`).ReplaceAllStringFunc(tmpl, func(m string) string {
			name := m[2 : len(m)-1]
			if strings.HasPrefix(name, "!") {
				return "${" + name[1:] + "}"
			}
			v, ok := vars[name]
			var err error
			if !ok {
				if res, attr, dot := strings.Cut(name, "."); dot {
					v, err = s.getAtt(res, attr)
				} else {
					v, err = s.ref(name, scope)
				}
			}
			sv, isStr := v.(string)
			if err == nil && !isStr {
				err = fmt.Errorf("Fn::Sub ${%s}: %v is not a string", name, v)
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
			return sv
		})
		return out, firstErr
	}
	return nil, fmt.Errorf("%s: the evaluator does not know this function", name)
}

func asList(v any) []any {
	switch v := v.(type) {
	case []any:
		return v
	case nil:
		return nil
	}
	return []any{v}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func readTemplate(t *testing.T, file string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&tmpl); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return tmpl
}

// agentJSON runs the agent and decodes what it prints.
func agentJSON(t *testing.T, agent string, args ...string) map[string]any {
	t.Helper()
	cmd := exec.Command(agent, args...)
	cmd.Env = []string{}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("agent %q: %v\n%s", args, err, stderr.Bytes())
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("agent %q printed no JSON: %v\n%s", args, err, out)
	}
	return v
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// isAgent reports whether a container runs the agent's image, wherever it
// was pushed.
func isAgent(c types.ContainerDefinition) bool {
	return strings.Contains(tdcheck.Deref(c.Image), "/ecs-secrets-agent:")
}
