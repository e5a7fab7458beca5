package watch_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/redeploy"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/watch"
)

const (
	region  = "us-east-1"
	cluster = "prod"
)

// syncBuffer is a log sink written by concurrent updates.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a fake AWS with real SDK clients configured as in an ECS task.
type env struct {
	t       *testing.T
	fake    *awsfake.Fake
	fetcher *fetch.Fetcher
	ecs     func(string) watch.ECSClient
	ssm     func(string) redeploy.SSMClient
	logs    *syncBuffer
	values  []string // every value seeded: none may reach a log
}

func newEnv(t *testing.T) *env {
	t.Helper()
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.SetenvIsolated(t.Setenv, region, t.TempDir())
	cfg, err := fetch.LoadAWSConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same retry decisions without waiting between attempts.
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = fetch.MaxAttempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		})
	}
	e := &env{t: t, fake: fake, logs: &syncBuffer{},
		fetcher: &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region, Attempts: fetch.RefreshMaxAttempts},
		ecs:     watch.NewECSClients(cfg), ssm: watch.NewSSMClients(cfg)}
	t.Cleanup(e.checkNoValues)
	return e
}

func (e *env) checkNoValues() {
	logs := e.logs.String()
	for _, v := range e.values {
		if strings.Contains(logs, v) {
			e.t.Errorf("a secret value (%q) reached the log:\n%s", v, logs)
		}
	}
}

func (e *env) putParam(reg, name string) {
	v := fmt.Sprintf("VALUE-%s-%d", strings.Trim(strings.ReplaceAll(name, "/", "-"), "-"), time.Now().UnixNano())
	e.values = append(e.values, v)
	e.fake.PutParameter(reg, name, v, true)
}

func (e *env) putSecret(name string) (arn string) {
	v := fmt.Sprintf(`{"password":"VALUE-%s-%d"}`, name, time.Now().UnixNano())
	e.values = append(e.values, v[len(`{"password":"`):len(v)-2])
	return e.fake.PutSecretString(region, name, v)
}

// service registers a task definition for family with the secrets
// (valueFroms, named S0, S1…) in an app container, plus optionally a log
// router reading logSecret, and creates the service.
func (e *env) service(reg, name string, secrets []string, logSecret string) {
	in := taskDef(name, secrets, logSecret)
	e.fake.CreateService(reg, cluster, name, e.fake.RegisterTaskDefinition(reg, in))
}

func taskDef(family string, secrets []string, logSecret string) *ecs.RegisterTaskDefinitionInput {
	app := ecstypes.ContainerDefinition{Name: aws.String("app"), Image: aws.String("app:1")}
	for i, s := range secrets {
		app.Secrets = append(app.Secrets, ecstypes.Secret{Name: aws.String(fmt.Sprintf("S%d", i)), ValueFrom: aws.String(s)})
	}
	in := &ecs.RegisterTaskDefinitionInput{Family: aws.String(family), ContainerDefinitions: []ecstypes.ContainerDefinition{app}}
	if logSecret != "" {
		in.ContainerDefinitions = append(in.ContainerDefinitions, ecstypes.ContainerDefinition{
			Name: aws.String("log_router"),
			LogConfiguration: &ecstypes.LogConfiguration{
				LogDriver:     ecstypes.LogDriverAwsfirelens,
				SecretOptions: []ecstypes.Secret{{Name: aws.String("apikey"), ValueFrom: aws.String(logSecret)}},
			},
		})
	}
	return in
}

func (e *env) watcher(dryRun bool, m *metrics.Metrics, targets ...watch.Target) *watch.Watcher {
	if len(targets) == 0 {
		for _, s := range []string{"web", "api", "worker"} {
			targets = append(targets, watch.Target{Cluster: cluster, Service: s, Region: region})
		}
	}
	w := watch.New(watch.Options{
		ECS: e.ecs, SSM: e.ssm, Source: e.fetcher, Targets: targets,
		Interval: time.Hour, DryRun: dryRun,
		Log:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: m,
		Status:  status.New(time.Hour, nil),
		Rand:    func() float64 { return 0.5 },
	})
	if err := w.Validate(); err != nil {
		e.t.Fatal(err)
	}
	return w
}

// cycle runs one cycle and returns the calls it made, summarized and
// sorted: "Op" plus, for GetParameters, the count of names and decryption.
func (e *env) cycle(w *watch.Watcher, want refresh.Outcome) []string {
	e.t.Helper()
	e.fake.ResetCounts()
	if got := w.Cycle(context.Background()); got != want {
		e.t.Fatalf("cycle outcome = %v, want %v; logs:\n%s", got, want, e.logs.String())
	}
	return e.calls()
}

func (e *env) calls() []string {
	var out []string
	for _, c := range e.fake.CallLog() {
		s := c.Op
		switch c.Op {
		case "GetParameters":
			s += fmt.Sprintf(" %d decrypt=%v", len(c.Names), c.WithDecryption)
		case "UpdateService", "DescribeTaskDefinition":
			s += " " + strings.Join(c.Names, ",")
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (e *env) deployments(service string) int {
	return len(e.fake.Deployments(region, cluster, service))
}

// locked is what redeploying n services through the shared lock adds, per
// service: list the records, create one, list again, DescribeServices
// under the lock, mark done; plus deletes of older records.
func locked(n, deletes int, calls ...string) []string {
	for range n {
		calls = append(calls, "GetParametersByPath", "GetParametersByPath", "PutParameter", "PutParameter", "DescribeServices")
	}
	for range deletes {
		calls = append(calls, "DeleteParameter")
	}
	return calls
}

func expectCalls(t *testing.T, what string, got, want []string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: calls\n  %q\nwant\n  %q", what, got, want)
	}
}

// TestRotationRedeploysEachUser: three services, two sharing a secret;
// rotating it redeploys those two once each and leaves the third alone,
// whether the shared secret is a parameter or a Secrets Manager secret.
func TestRotationRedeploysEachUser(t *testing.T) {
	for _, shared := range []string{"parameter", "secret"} {
		t.Run(shared, func(t *testing.T) {
			e := newEnv(t)
			// 12 parameters besides the shared one, so polls batch by 10.
			var webOnly, workerOnly []string
			for i := range 6 {
				webOnly = append(webOnly, fmt.Sprintf("/prod/web/p%d", i))
				workerOnly = append(workerOnly, fmt.Sprintf("/prod/worker/p%d", i))
			}
			for _, p := range append(slices.Clone(webOnly), workerOnly...) {
				e.putParam(region, p)
			}
			apiKey := e.putSecret("api-key")
			workerToken := e.putSecret("worker-token")
			var sharedRef string
			var rotate func()
			if shared == "parameter" {
				sharedRef = "/prod/shared/db"
				e.putParam(region, sharedRef)
				rotate = func() { e.putParam(region, sharedRef) }
			} else {
				sharedRef = e.putSecret("shared-db") + ":password::"
				rotate = func() { e.putSecret("shared-db") }
			}
			e.service(region, "web", append([]string{sharedRef}, webOnly...), "")
			e.service(region, "api", []string{sharedRef, apiKey}, apiKey+":password::")
			e.service(region, "worker", workerOnly, workerToken)

			reg := prometheus.NewRegistry()
			w := e.watcher(false, metrics.New(reg, "test", nil))

			// Parameters: 13 (or 12) distinct names → 2 GetParameters.
			// Secrets: api-key (two references, one secret), worker-token,
			// and shared-db when the shared one is a secret.
			poll := []string{"GetParameters 10 decrypt=false", "DescribeSecret", "DescribeSecret"}
			if shared == "parameter" {
				poll = append(poll, "GetParameters 3 decrypt=false")
			} else {
				poll = append(poll, "GetParameters 2 decrypt=false", "DescribeSecret")
			}
			first := e.cycle(w, refresh.Succeeded)
			expectCalls(t, "baseline", first, append([]string{"DescribeServices",
				"DescribeTaskDefinition arn:aws:ecs:us-east-1:111122223333:task-definition/web:1",
				"DescribeTaskDefinition arn:aws:ecs:us-east-1:111122223333:task-definition/api:1",
				"DescribeTaskDefinition arn:aws:ecs:us-east-1:111122223333:task-definition/worker:1"}, poll...))

			// Nothing changed: polling only, and one DescribeServices.
			for range 2 {
				expectCalls(t, "no change", e.cycle(w, refresh.Succeeded), append([]string{"DescribeServices"}, poll...))
			}

			rotate()
			got := e.cycle(w, refresh.Succeeded)
			expectCalls(t, "rotation", got, locked(2, 0, append([]string{"DescribeServices", "UpdateService web", "UpdateService api"}, poll...)...))
			t.Logf("calls for one rotation of the shared %s (3 services): %q", shared, got)
			for svc, want := range map[string]int{"web": 2, "api": 2, "worker": 1} {
				if got := e.deployments(svc); got != want {
					t.Errorf("%s has %d deployments, want %d", svc, got, want)
				}
			}
			if log := e.fake.CallLog(); !slices.ContainsFunc(log, func(c awsfake.Call) bool { return c.Op == "UpdateService" && c.Force && c.Cluster == cluster }) {
				t.Errorf("UpdateService without forceNewDeployment or cluster: %+v", log)
			}

			// The next cycles do not redeploy again.
			expectCalls(t, "after the rotation", e.cycle(w, refresh.Succeeded), append([]string{"DescribeServices"}, poll...))

			// Several secrets of one service rotated in one cycle: still
			// one UpdateService per service.
			rotate()
			e.putParam(region, webOnly[0])
			e.putParam(region, webOnly[1])
			e.putSecret("api-key")
			expectCalls(t, "three rotations", e.cycle(w, refresh.Succeeded), locked(2, 2, append([]string{"DescribeServices", "UpdateService web", "UpdateService api"}, poll...)...))

			if got := counter(t, reg, "ecs_secrets_agent_actions_total", "redeploy", "success"); got != 4 {
				t.Errorf("actions_total{redeploy,success} = %v, want 4", got)
			}
			logs := e.logs.String()
			for _, want := range []string{`"msg":"secret changed"`, `"msg":"redeployed service for rotated secrets"`, `"service":"web"`, `"service":"api"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %s:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, `"msg":"redeployed service for rotated secrets","cluster":"prod","service":"worker"`) {
				t.Error("worker was redeployed")
			}
		})
	}
}

// counter is the value of the counter name with exactly these label
// values (in label-name order), 0 if absent.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vals []string
			for _, l := range m.GetLabel() {
				vals = append(vals, l.GetValue())
			}
			if slices.Equal(vals, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// nextMillisecond returns once the wall clock has moved to the next
// millisecond, the precision of AWS timestamps.
func nextMillisecond() {
	ms := time.Now().UnixMilli()
	for time.Now().UnixMilli() == ms {
		runtime.Gosched()
	}
}

// TestAlreadyRedeployed: a service deployed after the change (by a
// pipeline) is skipped; one that was not is redeployed.
func TestAlreadyRedeployed(t *testing.T) {
	e := newEnv(t)
	e.putParam(region, "/prod/shared")
	e.service(region, "web", []string{"/prod/shared"}, "")
	e.service(region, "api", []string{"/prod/shared"}, "")
	e.service(region, "worker", []string{"/prod/shared"}, "")
	w := e.watcher(false, nil)
	e.cycle(w, refresh.Succeeded)

	e.putParam(region, "/prod/shared")
	nextMillisecond() // createdAt has millisecond precision: make the deploy strictly later
	e.fake.SetServiceTaskDefinition(region, cluster, "api", "api:1")
	got := e.cycle(w, refresh.Succeeded)
	expectCalls(t, "rotation", got, locked(2, 0, "DescribeServices", "GetParameters 1 decrypt=false", "UpdateService web", "UpdateService worker"))
	if n := e.deployments("api"); n != 2 {
		t.Errorf("api has %d deployments, want 2 (its own, and the pipeline's)", n)
	}
	if !strings.Contains(e.logs.String(), `"msg":"service already deployed since the change; not redeploying","cluster":"prod","service":"api"`) {
		t.Errorf("no skip logged:\n%s", e.logs.String())
	}
}

// TestUpdateFailureRetriedNextCycle: a failed UpdateService is logged with
// its code and hint and tried again next cycle — unless the service was
// deployed in between, which counts as done.
func TestUpdateFailureRetriedNextCycle(t *testing.T) {
	e := newEnv(t)
	arn := e.putSecret("shared")
	e.service(region, "web", []string{arn}, "")
	e.service(region, "api", []string{arn}, "")
	w := e.watcher(false, nil, watch.Target{Cluster: cluster, Service: "web", Region: region}, watch.Target{Cluster: cluster, Service: "api", Region: region})
	e.cycle(w, refresh.Succeeded)

	e.fake.SetFault(func(op string) *awsfake.APIError {
		if op == "UpdateService" {
			return &awsfake.APIError{Status: 400, Code: "AccessDeniedException", Message: "User: … is not authorized to perform: ecs:UpdateService"}
		}
		return nil
	})
	e.putSecret("shared")
	got := e.cycle(w, refresh.Failed)
	// One attempt each: UpdateService is never retried inside a cycle.
	// Each releases its lock record (the second PutParameter).
	expectCalls(t, "denied", got, locked(2, 0, "DescribeServices", "DescribeSecret", "UpdateService api", "UpdateService web"))
	logs := e.logs.String()
	if !strings.Contains(logs, "cannot redeploy service web: UpdateService: AccessDeniedException: access denied: the watcher's task role needs ecs:UpdateService on arn:aws:ecs:us-east-1:111122223333:service/prod/web; retrying next cycle") {
		t.Errorf("no actionable error logged:\n%s", logs)
	}

	e.fake.SetFault(nil)
	nextMillisecond()
	e.fake.SetServiceTaskDefinition(region, cluster, "api", "api:1") // someone deployed api meanwhile
	got = e.cycle(w, refresh.Succeeded)
	expectCalls(t, "retry", got, locked(1, 1, "DescribeServices", "DescribeSecret", "UpdateService web"))
	if e.deployments("web") != 2 || e.deployments("api") != 2 {
		t.Errorf("deployments web %d, api %d; want 2, 2", e.deployments("web"), e.deployments("api"))
	}
	expectCalls(t, "after", e.cycle(w, refresh.Succeeded), []string{"DescribeServices", "DescribeSecret"})
}

// TestTaskDefinitionRevision: a service moved to a revision with another
// secret is re-read once, and the new secret is polled and acted on.
func TestTaskDefinitionRevision(t *testing.T) {
	e := newEnv(t)
	e.putParam(region, "/prod/a")
	e.putParam(region, "/prod/b")
	e.service(region, "web", []string{"/prod/a"}, "")
	w := e.watcher(false, nil, watch.Target{Cluster: cluster, Service: "web", Region: region})
	e.cycle(w, refresh.Succeeded)

	td2 := e.fake.RegisterTaskDefinition(region, taskDef("web", []string{"/prod/b"}, ""))
	e.fake.SetServiceTaskDefinition(region, cluster, "web", td2)
	got := e.cycle(w, refresh.Succeeded)
	expectCalls(t, "new revision", got, []string{"DescribeServices", "DescribeTaskDefinition " + td2, "GetParameters 1 decrypt=false"})
	var names []string
	for _, c := range e.fake.CallLog() {
		if c.Op == "GetParameters" {
			names = append(names, c.Names...)
		}
	}
	if !slices.Equal(names, []string{"/prod/b"}) {
		t.Errorf("polled %q after the revision change, want only /prod/b", names)
	}
	// The old secret no longer matters; the new one does.
	e.putParam(region, "/prod/a")
	expectCalls(t, "old secret rotated", e.cycle(w, refresh.Succeeded), []string{"DescribeServices", "GetParameters 1 decrypt=false"})
	e.putParam(region, "/prod/b")
	expectCalls(t, "new secret rotated", e.cycle(w, refresh.Succeeded), locked(1, 0, "DescribeServices", "GetParameters 1 decrypt=false", "UpdateService web"))
}

// TestDryRun: a rotation is logged as "would redeploy" and nothing writes.
func TestDryRun(t *testing.T) {
	e := newEnv(t)
	e.putParam(region, "/prod/shared")
	e.service(region, "web", []string{"/prod/shared"}, "")
	w := e.watcher(true, nil, watch.Target{Cluster: cluster, Service: "web", Region: region})
	e.cycle(w, refresh.Succeeded)
	e.putParam(region, "/prod/shared")
	expectCalls(t, "rotation", e.cycle(w, refresh.Succeeded), []string{"DescribeServices", "GetParameters 1 decrypt=false"})
	expectCalls(t, "after", e.cycle(w, refresh.Succeeded), []string{"DescribeServices", "GetParameters 1 decrypt=false"})
	if e.deployments("web") != 1 {
		t.Errorf("dry run deployed")
	}
	if want := `"msg":"would redeploy (dry run)","cluster":"prod","service":"web","region":"us-east-1","secrets":["S0"],"value_from":["/prod/shared"]`; !strings.Contains(e.logs.String(), want) {
		t.Errorf("logs lack %s:\n%s", want, e.logs.String())
	}
}

// TestRegionsAndBadReferences: a bare name resolves in its service's
// region; a valueFrom that does not parse is logged once and skipped; a
// missing service is reported and left alone.
func TestRegionsAndBadReferences(t *testing.T) {
	e := newEnv(t)
	const eu = "eu-west-1"
	e.putParam(region, "/prod/db")
	e.putParam(eu, "/prod/db")
	e.service(region, "web", []string{"/prod/db", "arn:aws:secretsmanager:us-east-1:111122223333:secret:x:y"}, "")
	e.service(eu, "web", []string{"/prod/db"}, "")
	w := e.watcher(false, nil,
		watch.Target{Cluster: cluster, Service: "web", Region: region},
		watch.Target{Cluster: cluster, Service: "web", Region: eu},
		watch.Target{Cluster: cluster, Service: "gone", Region: eu})
	e.cycle(w, refresh.Succeeded)
	e.cycle(w, refresh.Succeeded)
	regions := map[string]int{}
	for _, c := range e.fake.CallLog() {
		regions[c.Op+" "+c.Region]++
	}
	want := map[string]int{"DescribeServices us-east-1": 1, "DescribeServices eu-west-1": 1, "GetParameters us-east-1": 1, "GetParameters eu-west-1": 1}
	if fmt.Sprint(regions) != fmt.Sprint(want) {
		t.Errorf("calls by region = %v, want %v", regions, want)
	}

	e.putParam(eu, "/prod/db")
	got := e.cycle(w, refresh.Succeeded)
	expectCalls(t, "rotation in eu-west-1", got, locked(1, 0, "DescribeServices", "DescribeServices", "GetParameters 1 decrypt=false", "GetParameters 1 decrypt=false", "UpdateService web"))
	if c := e.fake.CallLog(); !slices.ContainsFunc(c, func(c awsfake.Call) bool { return c.Op == "UpdateService" && c.Region == eu }) {
		t.Errorf("UpdateService not in eu-west-1: %+v", c)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "skipping a secret whose valueFrom cannot be watched"); n != 1 {
		t.Errorf("bad reference logged %d times:\n%s", n, logs)
	}
	if n := strings.Count(logs, `"service":"gone","region":"eu-west-1","reason":"MISSING"`); n != 1 {
		t.Errorf("missing service logged %d times:\n%s", n, logs)
	}
}

// TestRunTiming drives Run with a short interval and measures the time
// from a rotation to its UpdateService.
func TestRunTiming(t *testing.T) {
	e := newEnv(t)
	e.putParam(region, "/prod/shared")
	arn := e.putSecret("token")
	e.service(region, "web", []string{"/prod/shared"}, "")
	e.service(region, "api", []string{arn}, "")
	const interval = 200 * time.Millisecond
	st := status.New(time.Hour, nil)
	w := watch.New(watch.Options{
		ECS: e.ecs, SSM: e.ssm, Source: e.fetcher,
		Targets:  []watch.Target{{Cluster: cluster, Service: "web", Region: region}, {Cluster: cluster, Service: "api", Region: region}},
		Interval: interval, Jitter: interval / 10,
		Log:    slog.New(slog.NewJSONHandler(e.logs, nil)),
		Status: st,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()
	eventually(t, 5*time.Second, "ready", func() bool { ok, _ := st.Ready(); return ok })

	for _, rotate := range []struct {
		what    string
		service string
		do      func()
	}{
		{"parameter", "web", func() { e.putParam(region, "/prod/shared") }},
		{"secret", "api", func() { e.putSecret("token") }},
	} {
		before := e.fake.Calls("UpdateService")
		start := time.Now()
		rotate.do()
		eventually(t, 5*time.Second, "UpdateService after the "+rotate.what+" rotated", func() bool { return e.fake.Calls("UpdateService") > before })
		var at time.Time
		for _, c := range e.fake.CallLog() {
			if c.Op == "UpdateService" && c.Names[0] == rotate.service {
				at = c.Time
			}
		}
		t.Logf("%s rotated → UpdateService %s after %v (interval %v ± %v)", rotate.what, rotate.service, at.Sub(start).Round(time.Millisecond), interval, interval/10)
	}
	// A few more cycles: still exactly one per rotation.
	n := e.fake.Calls("DescribeServices")
	eventually(t, 5*time.Second, "three more cycles", func() bool { return e.fake.Calls("DescribeServices") >= n+3 })
	if got := e.fake.Calls("UpdateService"); got != 2 {
		t.Errorf("UpdateService called %d times, want 2", got)
	}
}

// TestUpdateServiceRate: 20 services redeployed at once are paced at 5
// UpdateService calls a second, as ECS's quota allows.
func TestUpdateServiceRate(t *testing.T) {
	e := newEnv(t)
	e.putParam(region, "/prod/shared")
	var targets []watch.Target
	for i := range 20 {
		name := fmt.Sprintf("svc%02d", i)
		e.service(region, name, []string{"/prod/shared"}, "")
		targets = append(targets, watch.Target{Cluster: cluster, Service: name, Region: region})
	}
	w := e.watcher(false, nil, targets...)
	expectCalls(t, "baseline DescribeServices", filter(e.cycle(w, refresh.Succeeded), "DescribeServices"), []string{"DescribeServices", "DescribeServices"})

	e.putParam(region, "/prod/shared")
	start := time.Now()
	e.cycle(w, refresh.Succeeded)
	took := time.Since(start)
	var at []time.Time
	for _, c := range e.fake.CallLog() {
		if c.Op == "UpdateService" {
			at = append(at, c.Time)
		}
	}
	if len(at) != 20 {
		t.Fatalf("%d UpdateService calls, want 20", len(at))
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	// No six calls within one second (the limiter's slots are 200ms apart;
	// allow for scheduling and the network).
	for i := 5; i < len(at); i++ {
		if d := at[i].Sub(at[i-5]); d < 800*time.Millisecond {
			t.Errorf("calls %d..%d within %v", i-5, i, d)
		}
	}
	if took < 3700*time.Millisecond {
		t.Errorf("20 redeploys took %v, want at least 3.8s at 5/s", took)
	}
	t.Logf("20 UpdateService calls in %v", at[len(at)-1].Sub(at[0]).Round(time.Millisecond))
}

func filter(calls []string, op string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, op) {
			out = append(out, c)
		}
	}
	return out
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		<-tick.C
	}
}

// TestDescribeFailureDefersRedeploy: without a fresh DescribeServices the
// watcher cannot tell whether someone deployed already, so it waits for a
// cycle that can; throttling makes the cycle Throttled.
func TestDescribeFailureDefersRedeploy(t *testing.T) {
	e := newEnv(t)
	e.putParam(region, "/prod/shared")
	e.service(region, "web", []string{"/prod/shared"}, "")
	w := e.watcher(false, nil, watch.Target{Cluster: cluster, Service: "web", Region: region})
	e.cycle(w, refresh.Succeeded)

	e.fake.SetFault(func(op string) *awsfake.APIError {
		if op == "DescribeServices" {
			return &awsfake.APIError{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}
		}
		return nil
	})
	e.putParam(region, "/prod/shared")
	// Two attempts (fetch.RefreshMaxAttempts), the poll, no UpdateService.
	expectCalls(t, "throttled", e.cycle(w, refresh.Throttled), []string{"DescribeServices", "DescribeServices", "GetParameters 1 decrypt=false"})
	e.fake.SetFault(nil)
	expectCalls(t, "recovered", e.cycle(w, refresh.Succeeded), locked(1, 0, "DescribeServices", "GetParameters 1 decrypt=false", "UpdateService web"))
	logs := e.logs.String()
	if !strings.Contains(logs, "cannot describe services in cluster prod (us-east-1): ThrottlingException: throttled by ECS") {
		t.Errorf("no throttling logged:\n%s", logs)
	}
}

// TestRestartRecoversRotationWhileAway: a secret rotated while no watcher
// ran (after the service's newest deployment) is redeployed once by the
// next watcher's first cycle; one rotated before that deployment is not.
func TestRestartRecoversRotationWhileAway(t *testing.T) {
	e := newEnv(t)
	e.putParam(region, "/prod/old")
	e.putParam(region, "/prod/away")
	e.service(region, "web", []string{"/prod/away"}, "")
	e.service(region, "api", []string{"/prod/old"}, "")
	nextMillisecond()                // createdAt has millisecond precision
	e.putParam(region, "/prod/away") // the watcher was down
	w := e.watcher(false, nil, watch.Target{Cluster: cluster, Service: "web", Region: region}, watch.Target{Cluster: cluster, Service: "api", Region: region})
	e.cycle(w, refresh.Succeeded)
	if web, api := e.deployments("web"), e.deployments("api"); web != 2 || api != 1 {
		t.Errorf("after the first cycle: web %d deployments, api %d; want 2 (recovered), 1", web, api)
	}
	if want := `"msg":"secret changed after the service's newest deployment (while not watched)","cluster":"prod","service":"web"`; !strings.Contains(e.logs.String(), want) {
		t.Errorf("logs lack %s:\n%s", want, e.logs.String())
	}
	expectCalls(t, "second cycle", e.cycle(w, refresh.Succeeded), []string{"DescribeServices", "GetParameters 2 decrypt=false"})

	// A second watcher started now finds the deployment newer than the
	// rotation: nothing to do.
	w2 := e.watcher(false, nil, watch.Target{Cluster: cluster, Service: "web", Region: region})
	e.cycle(w2, refresh.Succeeded)
	if n := e.deployments("web"); n != 2 {
		t.Errorf("a restarted watcher redeployed again: %d deployments", n)
	}
}

// TestBadReferenceDoesNotStopOthers: a reference that cannot be read
// (missing) is marked stale with its cause, and the other references of
// the same and other services are still watched and redeployed.
func TestBadReferenceDoesNotStopOthers(t *testing.T) {
	e := newEnv(t)
	e.putParam(region, "/prod/good")
	e.putParam(region, "/prod/other")
	e.service(region, "web", []string{"/prod/missing", "/prod/good"}, "")
	e.service(region, "api", []string{"/prod/other"}, "")
	st := status.New(time.Hour, nil)
	w := watch.New(watch.Options{
		ECS: e.ecs, SSM: e.ssm, Source: e.fetcher, Interval: time.Hour, Status: st,
		Targets: []watch.Target{{Cluster: cluster, Service: "web", Region: region}, {Cluster: cluster, Service: "api", Region: region}},
		Log:     slog.New(slog.NewJSONHandler(e.logs, nil)),
	})
	e.cycle(w, refresh.Failed)
	e.putParam(region, "/prod/good")
	e.putParam(region, "/prod/other")
	e.cycle(w, refresh.Failed)
	if web, api := e.deployments("web"), e.deployments("api"); web != 2 || api != 2 {
		t.Errorf("deployments web %d, api %d; want 2, 2", web, api)
	}
	if want := `"msg":"cannot check secret for rotation: `; !strings.Contains(e.logs.String(), want) || !strings.Contains(e.logs.String(), `"value_from":"/prod/missing"`) {
		t.Errorf("the bad reference's cause is not logged:\n%s", e.logs.String())
	}
	if _, detail := st.Ready(); !strings.Contains(fmt.Sprint(detail), "/prod/missing") {
		t.Errorf("status detail %v does not name the bad reference", detail)
	}
}

// TestWatcherAndInTaskDeployOnce: a watcher and an in-task agent on one
// service, in either order, start one deployment for one rotation: both
// date it by AWS and share the lock.
func TestWatcherAndInTaskDeployOnce(t *testing.T) {
	for _, first := range []string{"watcher", "in-task"} {
		t.Run(first+" first", func(t *testing.T) {
			e := newEnv(t)
			e.putParam(region, "/prod/db")
			e.service(region, "web", []string{"/prod/db"}, "")
			w := e.watcher(false, nil, watch.Target{Cluster: cluster, Service: "web", Region: region})
			e.cycle(w, refresh.Succeeded)
			inTask, err := redeploy.New(redeploy.Options{SSM: e.ssm(region), ECS: e.ecs(region), Cluster: "arn:aws:ecs:us-east-1:111122223333:cluster/prod",
				Service: "web", Owner: "arn:aws:ecs:us-east-1:111122223333:task/prod/1"})
			if err != nil {
				t.Fatal(err)
			}
			nextMillisecond()
			e.putParam(region, "/prod/db")
			task := func() {
				// What the task's refresh loop fetched: the value and AWS's date.
				ref, _ := fetch.ParseRef("/prod/db")
				out, err := e.fetcher.Fetch(context.Background(), []fetch.Request{{Name: "DB", Ref: ref}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := inTask.Ensure(context.Background(), out.Values["DB"].Modified); err != nil {
					t.Fatal(err)
				}
			}
			if first == "watcher" {
				nextMillisecond()
				e.cycle(w, refresh.Succeeded)
				nextMillisecond()
				task()
			} else {
				nextMillisecond() // createdAt has millisecond precision: the deployment is strictly later
				task()
				nextMillisecond()
				e.cycle(w, refresh.Succeeded)
			}
			if n := e.deployments("web"); n != 2 {
				t.Errorf("web has %d deployments, want 2 (its first, and one for the rotation)", n)
			}
			if names := e.fake.ParameterNames(region, redeploy.LockPrefix); len(names) != 1 || names[0] != redeploy.LockPath(cluster, "web")+"/1" {
				t.Errorf("lock records %q, want one", names)
			}
		})
	}
}
