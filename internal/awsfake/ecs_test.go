package awsfake_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

func appTaskDef(family string, secrets ...string) *ecs.RegisterTaskDefinitionInput {
	app := ecstypes.ContainerDefinition{Name: aws.String("app"), Image: aws.String("app:1"), Essential: aws.Bool(true)}
	for i, s := range secrets {
		app.Secrets = append(app.Secrets, ecstypes.Secret{Name: aws.String("S" + string(rune('A'+i))), ValueFrom: aws.String(s)})
	}
	return &ecs.RegisterTaskDefinitionInput{Family: aws.String(family), ContainerDefinitions: []ecstypes.ContainerDefinition{app}}
}

func TestDescribeTaskDefinition(t *testing.T) {
	f, cfg := setup(t)
	in := appTaskDef("web", "/prod/db/password", "arn:aws:secretsmanager:us-east-1:111122223333:secret:api-AbCdEf:key::")
	in.ContainerDefinitions = append(in.ContainerDefinitions, ecstypes.ContainerDefinition{
		Name: aws.String("log_router"),
		LogConfiguration: &ecstypes.LogConfiguration{
			LogDriver:     ecstypes.LogDriverAwsfirelens,
			Options:       map[string]string{"Name": "datadog"},
			SecretOptions: []ecstypes.Secret{{Name: aws.String("apikey"), ValueFrom: aws.String("/prod/dd/key")}},
		},
	})
	arn1 := f.RegisterTaskDefinition(region, in)
	arn2 := f.RegisterTaskDefinition(region, appTaskDef("web", "/prod/other"))
	if arn1 != "arn:aws:ecs:us-east-1:111122223333:task-definition/web:1" || arn2 != "arn:aws:ecs:us-east-1:111122223333:task-definition/web:2" {
		t.Fatalf("ARNs = %q, %q", arn1, arn2)
	}
	client := ecs.NewFromConfig(cfg)
	ctx := context.Background()

	for _, tt := range []struct{ ask, want string }{{"web", arn2}, {"web:1", arn1}, {arn1, arn1}, {"web:2", arn2}} {
		out, err := client.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(tt.ask)})
		if err != nil {
			t.Fatalf("%s: %v", tt.ask, err)
		}
		if got := aws.ToString(out.TaskDefinition.TaskDefinitionArn); got != tt.want {
			t.Errorf("%s: TaskDefinitionArn = %q, want %q", tt.ask, got, tt.want)
		}
	}

	out, err := client.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web:1")})
	if err != nil {
		t.Fatal(err)
	}
	td := out.TaskDefinition
	if aws.ToString(td.Family) != "web" || td.Revision != 1 || len(td.ContainerDefinitions) != 2 {
		t.Fatalf("task definition = %+v", td)
	}
	app, router := td.ContainerDefinitions[0], td.ContainerDefinitions[1]
	var got []string
	for _, s := range app.Secrets {
		got = append(got, aws.ToString(s.Name)+"="+aws.ToString(s.ValueFrom))
	}
	if want := []string{"SA=/prod/db/password", "SB=arn:aws:secretsmanager:us-east-1:111122223333:secret:api-AbCdEf:key::"}; !slices.Equal(got, want) {
		t.Errorf("secrets = %q, want %q", got, want)
	}
	lc := router.LogConfiguration
	if lc == nil || lc.LogDriver != ecstypes.LogDriverAwsfirelens || len(lc.SecretOptions) != 1 ||
		aws.ToString(lc.SecretOptions[0].ValueFrom) != "/prod/dd/key" || lc.Options["Name"] != "datadog" {
		t.Errorf("logConfiguration = %+v", lc)
	}

	for _, missing := range []string{"nope", "web:3", "arn:aws:ecs:eu-west-1:111122223333:task-definition/web:1"} {
		_, err := client.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(missing)})
		if got := errorCode(err); got != "ClientException" {
			t.Errorf("%s: error code = %q (%v), want ClientException", missing, got, err)
		}
	}
	f.DenyAccess("DescribeTaskDefinition", arn1)
	_, err = client.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web:1")})
	if got := errorCode(err); got != "AccessDeniedException" {
		t.Errorf("denied: error code = %q (%v)", got, err)
	}
	if f.SignatureFailures() != 0 {
		t.Errorf("SignatureFailures() = %d", f.SignatureFailures())
	}
}

func TestDescribeServices(t *testing.T) {
	f, cfg := setup(t)
	td1 := f.RegisterTaskDefinition(region, appTaskDef("web", "/a"))
	before := time.Now()
	svcARN := f.CreateService(region, "prod", "web", td1)
	f.CreateService(region, "prod", "worker", "web")
	if svcARN != "arn:aws:ecs:us-east-1:111122223333:service/prod/web" {
		t.Fatalf("service ARN = %q", svcARN)
	}
	client := ecs.NewFromConfig(cfg)
	ctx := context.Background()

	out, err := client.DescribeServices(ctx, &ecs.DescribeServicesInput{
		Cluster:  aws.String("arn:aws:ecs:us-east-1:111122223333:cluster/prod"),
		Services: []string{"web", "arn:aws:ecs:us-east-1:111122223333:service/prod/worker", "gone"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Services) != 2 || len(out.Failures) != 1 {
		t.Fatalf("services %d, failures %d; want 2, 1", len(out.Services), len(out.Failures))
	}
	if fl := out.Failures[0]; aws.ToString(fl.Arn) != "arn:aws:ecs:us-east-1:111122223333:service/prod/gone" || aws.ToString(fl.Reason) != "MISSING" {
		t.Errorf("failure = %+v", fl)
	}
	s := out.Services[0]
	if aws.ToString(s.ServiceArn) != svcARN || aws.ToString(s.ServiceName) != "web" ||
		aws.ToString(s.ClusterArn) != "arn:aws:ecs:us-east-1:111122223333:cluster/prod" ||
		aws.ToString(s.TaskDefinition) != td1 || aws.ToString(s.Status) != "ACTIVE" || len(s.Deployments) != 1 {
		t.Fatalf("service = %+v", s)
	}
	d := s.Deployments[0]
	if !strings.HasPrefix(aws.ToString(d.Id), "ecs-svc/") || aws.ToString(d.Status) != "PRIMARY" || aws.ToString(d.TaskDefinition) != td1 ||
		d.CreatedAt == nil || d.CreatedAt.Before(before.Add(-time.Millisecond)) || d.UpdatedAt == nil || d.RolloutState != ecstypes.DeploymentRolloutStateCompleted {
		t.Errorf("deployment = %+v", d)
	}

	// A pipeline deploys a new revision.
	td2 := f.RegisterTaskDefinition(region, appTaskDef("web", "/a", "/b"))
	f.SetServiceTaskDefinition(region, "prod", "web", "web:2")
	out, err = client.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	s = out.Services[0]
	if aws.ToString(s.TaskDefinition) != td2 || len(s.Deployments) != 2 ||
		aws.ToString(s.Deployments[0].Status) != "PRIMARY" || aws.ToString(s.Deployments[0].TaskDefinition) != td2 ||
		s.Deployments[0].RolloutState != ecstypes.DeploymentRolloutStateInProgress ||
		aws.ToString(s.Deployments[1].Status) != "ACTIVE" || !s.Deployments[0].CreatedAt.After(*s.Deployments[1].CreatedAt) {
		t.Errorf("after a deploy: %+v", s)
	}

	tests := []struct {
		name     string
		in       ecs.DescribeServicesInput
		wantCode string
	}{
		{"no cluster", ecs.DescribeServicesInput{Cluster: aws.String("nope"), Services: []string{"web"}}, "ClusterNotFoundException"},
		{"default cluster", ecs.DescribeServicesInput{Services: []string{"web"}}, "ClusterNotFoundException"},
		{"eleven", ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: slices.Repeat([]string{"web"}, 11)}, "InvalidParameterException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.DescribeServices(ctx, &tt.in)
			if got := errorCode(err); got != tt.wantCode {
				t.Errorf("error code = %q (%v), want %q", got, err, tt.wantCode)
			}
		})
	}
	f.DenyAccess("DescribeServices", svcARN)
	_, err = client.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{"worker", "web"}})
	if got := errorCode(err); got != "AccessDeniedException" {
		t.Errorf("denied: error code = %q (%v)", got, err)
	}
}

func TestUpdateService(t *testing.T) {
	f, cfg := setup(t)
	td := f.RegisterTaskDefinition(region, appTaskDef("web", "/a"))
	f.CreateService(region, "prod", "web", td)
	first := f.Deployments(region, "prod", "web")
	client := ecs.NewFromConfig(cfg)
	ctx := context.Background()

	// No change, not forced: nothing starts.
	if _, err := client.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web")}); err != nil {
		t.Fatal(err)
	}
	if got := f.Deployments(region, "prod", "web"); len(got) != 1 || got[0] != first[0] {
		t.Fatalf("an unforced update without change deployed: %+v", got)
	}

	out, err := client.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), ForceNewDeployment: true})
	if err != nil {
		t.Fatal(err)
	}
	deps := f.Deployments(region, "prod", "web")
	if len(deps) != 2 || deps[0].Status != "PRIMARY" || deps[1].Status != "ACTIVE" || deps[1].ID != first[0].ID ||
		deps[0].TaskDefinition != td || !deps[0].CreatedAt.After(first[0].CreatedAt) {
		t.Fatalf("deployments after a forced update = %+v", deps)
	}
	if s := out.Service; s == nil || len(s.Deployments) != 2 || aws.ToString(s.Deployments[0].Id) != deps[0].ID ||
		!s.Deployments[0].CreatedAt.Equal(deps[0].CreatedAt.Truncate(time.Millisecond)) {
		t.Errorf("returned service = %+v", s)
	}
	// Three deployments in a row keep the newest two.
	if _, err := client.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("arn:aws:ecs:us-east-1:111122223333:service/prod/web"), ForceNewDeployment: true}); err != nil {
		t.Fatal(err)
	}
	if got := f.Deployments(region, "prod", "web"); len(got) != 2 || got[1].ID != deps[0].ID {
		t.Errorf("deployments = %+v", got)
	}

	log := f.CallLog()
	if c := log[len(log)-1]; c.Op != "UpdateService" || c.Cluster != "prod" || !c.Force || len(c.Names) != 1 || !strings.HasSuffix(c.Names[0], "service/prod/web") {
		t.Errorf("CallLog() last = %+v", c)
	}
	if got := f.Calls("UpdateService"); got != 3 {
		t.Errorf(`Calls("UpdateService") = %d, want 3`, got)
	}

	tests := []struct {
		name, cluster, service, wantCode string
	}{
		{"no service", "prod", "nope", "ServiceNotFoundException"},
		{"no cluster", "nope", "web", "ClusterNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(tt.cluster), Service: aws.String(tt.service), ForceNewDeployment: true})
			if got := errorCode(err); got != tt.wantCode {
				t.Errorf("error code = %q (%v), want %q", got, err, tt.wantCode)
			}
		})
	}
	f.DenyAccess("UpdateService", "web")
	_, err = client.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), ForceNewDeployment: true})
	if got := errorCode(err); got != "AccessDeniedException" {
		t.Errorf("denied: error code = %q (%v)", got, err)
	}
	if got := len(f.Deployments(region, "prod", "web")); got != 2 {
		t.Errorf("%d deployments after failed updates", got)
	}
}

func TestECSLatency(t *testing.T) {
	f, cfg := setup(t)
	f.CreateService(region, "prod", "web", f.RegisterTaskDefinition(region, appTaskDef("web", "/a")))
	client := ecs.NewFromConfig(cfg)
	ctx := context.Background()
	describe := func() time.Duration {
		start := time.Now()
		if _, err := client.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{"web"}}); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	describe() // credentials
	const d = 300 * time.Millisecond
	f.SetECSLatency("UpdateService", d)
	if got := describe(); got >= d {
		t.Errorf("DescribeServices took %v with UpdateService slowed", got)
	}
	start := time.Now()
	if _, err := client.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), ForceNewDeployment: true}); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got < d {
		t.Errorf("UpdateService took %v, want at least %v", got, d)
	}
	f.SetECSLatency("UpdateService", 0)
	start = time.Now()
	if _, err := client.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String("prod"), Service: aws.String("web"), ForceNewDeployment: true}); err != nil {
		t.Fatal(err)
	}
	if got := time.Since(start); got >= d {
		t.Errorf("UpdateService took %v after the latency was removed", got)
	}
}

func TestSeedingPanics(t *testing.T) {
	f := awsfake.New()
	defer f.Close()
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		fn()
	}
	mustPanic("CreateService without a task definition", func() { f.CreateService(region, "c", "s", "nope") })
	td := f.RegisterTaskDefinition(region, appTaskDef("web"))
	f.CreateService(region, "c", "s", td)
	mustPanic("CreateService twice", func() { f.CreateService(region, "c", "s", td) })
	mustPanic("SetServiceTaskDefinition of a missing service", func() { f.SetServiceTaskDefinition(region, "c", "nope", td) })
	mustPanic("RegisterTaskDefinition without a family", func() { f.RegisterTaskDefinition(region, &ecs.RegisterTaskDefinitionInput{}) })
}
