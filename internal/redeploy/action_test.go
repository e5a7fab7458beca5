package redeploy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/redeploy"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskmeta"
)

// taskRegion is where the task runs; the secrets are in another region.
const taskRegion = "eu-west-1"

// actionEnv is a task of service web in cluster prod in eu-west-1 whose
// every reference is a full ARN of us-east-1, with no AWS_REGION: the
// region comes from the task ARN only.
type actionEnv struct {
	fake   *awsfake.Fake
	cfg    aws.Config
	getenv func(string) string
}

func newActionEnv(t *testing.T) *actionEnv {
	t.Helper()
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.SetenvIsolated(t.Setenv, "us-east-1", t.TempDir())
	t.Setenv("AWS_REGION", "") // the SDK's own region is empty too
	cfg, err := fetch.LoadAWSConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	td := fake.RegisterTaskDefinition(taskRegion, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("app")}}})
	fake.CreateService(taskRegion, "prod", "web", td)
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"Cluster":"arn:aws:ecs:%[1]s:111122223333:cluster/prod","TaskARN":"arn:aws:ecs:%[1]s:111122223333:task/prod/abc","ServiceName":"web"}`, taskRegion)
	}))
	t.Cleanup(meta.Close)
	env := map[string]string{taskmeta.EnvURI: meta.URL + "/v4"}
	return &actionEnv{fake: fake, cfg: cfg, getenv: func(k string) string { return env[k] }}
}

func (e *actionEnv) build(t *testing.T, ctx context.Context) action.Action {
	t.Helper()
	a, err := redeploy.NewBuilder(ctx, redeploy.BuilderOptions{AWS: e.cfg, Getenv: e.getenv, MaxWait: time.Second})(config.RedeployAction{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// change is a rotation dated by AWS now.
func change() action.Change {
	return action.Change{Changed: []string{"DB"}, Values: map[string]fetch.Result{"DB": {Version: "2", Modified: time.Now()}}}
}

// TestRedeployUsesTaskRegionWithARNReferences: with every reference a full
// ARN (so no region for bare names) and no AWS_REGION, the action's SSM and
// ECS calls go to the task's region from its ARN, not to an empty region
// (a credential scope of "…//ssm/aws4_request").
func TestRedeployUsesTaskRegionWithARNReferences(t *testing.T) {
	e := newActionEnv(t)
	nextMillisecond()
	if err := e.build(t, t.Context()).Run(t.Context(), change()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := e.fake.Deployments(taskRegion, "prod", "web"); len(d) != 2 {
		t.Errorf("%d deployments, want 2", len(d))
	}
	for _, c := range e.fake.CallLog() {
		if c.Region != taskRegion {
			t.Errorf("%s sent to region %q, want %q", c.Op, c.Region, taskRegion)
		}
	}
	if n := e.fake.SignatureFailures(); n != 0 {
		t.Errorf("%d requests failed the signature check", n)
	}
}

// TestRedeployReloadAfterStartupDeadline: the builder outlives the
// start-up context; a configuration reload after the deadline (here: the
// context is already done) still builds the action.
func TestRedeployReloadAfterStartupDeadline(t *testing.T) {
	e := newActionEnv(t)
	startCtx, cancel := context.WithCancel(t.Context())
	cancel() // --timeout passed
	b := redeploy.NewBuilder(startCtx, redeploy.BuilderOptions{AWS: e.cfg, Getenv: e.getenv})
	for i := range 2 {
		if _, err := b(config.RedeployAction{}); err != nil {
			t.Fatalf("build %d after the deadline: %v", i, err)
		}
	}
}

// TestRedeployRunReportsElectionFailure: Run returns the failure (so that
// actions_total counts it and the loop retries), and nil once the
// deployment exists; a retry of a covered change deploys nothing more.
func TestRedeployRunReportsElectionFailure(t *testing.T) {
	e := newActionEnv(t)
	a := e.build(t, t.Context())
	nextMillisecond()
	c := change()
	e.fake.DenyAccess("UpdateService", "web")
	err := a.Run(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), "redeploy: UpdateService web in cluster arn:aws:ecs:eu-west-1:111122223333:cluster/prod: ") ||
		!strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("Run with UpdateService denied = %v, want the AccessDenied error", err)
	}
	e.fake.AllowAccess("UpdateService", "web")
	if err := a.Run(t.Context(), c); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := a.Run(t.Context(), c); err != nil {
		t.Fatalf("second retry: %v", err)
	}
	if d := e.fake.Deployments(taskRegion, "prod", "web"); len(d) != 2 {
		t.Errorf("%d deployments, want 2", len(d))
	}
}

// nextMillisecond waits (busily, no timer) for the clock's next
// millisecond: AWS dates have millisecond precision, so a rotation made
// now is strictly later than a deployment made before.
func nextMillisecond() {
	ms := time.Now().UnixMilli()
	for time.Now().UnixMilli() == ms {
		runtime.Gosched()
	}
}

// TestRedeployVersionThatCameBack: a changed version dated before this
// agent started came back (a Secrets Manager stage or a label moved to
// it): its creation date would make the service's newest deployment look
// newer than the change, so the action dates it by when it saw it and
// redeploys.
func TestRedeployVersionThatCameBack(t *testing.T) {
	e := newActionEnv(t)
	a := e.build(t, t.Context())
	nextMillisecond()
	c := action.Change{Changed: []string{"DB"}, Values: map[string]fetch.Result{"DB": {Version: "v1", Modified: time.Now().Add(-time.Hour)}}}
	if err := a.Run(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Calls("UpdateService"); n != 1 {
		t.Errorf("UpdateService called %d times, want 1", n)
	}
}

// TestRedeployRestoredChangeKeepsItsDate: a change an earlier process of
// the agent noticed and did not deliver (refresh restores it after a
// restart) is dated by AWS though it is older than this process: the
// deployment made for it meanwhile (by another task, a watcher) covers it,
// and a second one would break exactly-once.
func TestRedeployRestoredChangeKeepsItsDate(t *testing.T) {
	e := newActionEnv(t)
	a := e.build(t, t.Context())
	nextMillisecond()
	c := action.Change{Changed: []string{"DB"}, Restored: true, At: time.Now().Add(-time.Hour),
		Values: map[string]fetch.Result{"DB": {Version: "v1", Modified: time.Now().Add(-time.Hour)}}}
	if err := a.Run(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Calls("UpdateService"); n != 0 {
		t.Errorf("UpdateService called %d times for a change older than the service's deployment, want 0", n)
	}
}

// TestRedeployBuildSurvivesAFailingMetadataEndpoint: a metadata endpoint
// that answers 500 at start is not a configuration error (the agent exited
// 2 on it); the action asks again when it acts, and deploys once it answers.
func TestRedeployBuildSurvivesAFailingMetadataEndpoint(t *testing.T) {
	e := newActionEnv(t)
	var failing atomic.Bool
	failing.Store(true)
	good := e.getenv(taskmeta.EnvURI)
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "agent restarting", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, good, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(meta.Close)
	getenv := func(k string) string {
		if k == taskmeta.EnvURI {
			return meta.URL + "/v4"
		}
		return e.getenv(k)
	}
	a, err := redeploy.NewBuilder(t.Context(), redeploy.BuilderOptions{AWS: e.cfg, Getenv: getenv, MaxWait: time.Second})(config.RedeployAction{})
	if err != nil {
		t.Fatalf("build with the metadata endpoint failing: %v, want an action that asks again", err)
	}
	nextMillisecond()
	c := change()
	if err := a.Run(t.Context(), c); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Run while the endpoint fails = %v, want its 500", err)
	}
	failing.Store(false)
	if err := a.Run(t.Context(), c); err != nil {
		t.Fatalf("Run once the endpoint answers: %v", err)
	}
	if d := e.fake.Deployments(taskRegion, "prod", "web"); len(d) != 2 {
		t.Errorf("%d deployments, want 2 (the service's first and ours)", len(d))
	}
	// Not in a task at all is still a configuration error, at once.
	noTask := func(k string) string {
		if k == taskmeta.EnvURI {
			return ""
		}
		return e.getenv(k)
	}
	if _, err := redeploy.NewBuilder(t.Context(), redeploy.BuilderOptions{AWS: e.cfg, Getenv: noTask})(config.RedeployAction{}); err == nil {
		t.Error("built a redeploy action outside any task")
	}
}
