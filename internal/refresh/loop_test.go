package refresh

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// fakeSource is an in-memory AWS: values and versions by secret name, an
// optional fault per cycle, and a record of when it was asked.
type fakeSource struct {
	mu      sync.Mutex
	values  map[string]string
	version map[string]int
	fault   string          // error code every request gets, "" for none
	hang    bool            // every call blocks until its context ends
	gone    map[string]bool // deleted from AWS: an optional request is skipped, others fail ParameterNotFound
	script  []string        // if set, the fault of each next Poll in turn ("" none), before fault applies
	polls   []time.Duration
	polled  [][]string // the names each Poll was asked about
	fetched [][]string
	fetchAt []time.Duration
	start   time.Time
}

func newSource(values map[string]string) *fakeSource {
	s := &fakeSource{values: values, version: map[string]int{}, gone: map[string]bool{}, start: time.Now()}
	for k := range values {
		s.version[k] = 1
	}
	return s
}

func (s *fakeSource) rotate(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[name] = value
	s.version[name]++
}

func (s *fakeSource) pollCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.polls)
}

func (s *fakeSource) setFault(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = code
}

func (s *fakeSource) errs(reqs []fetch.Request) error {
	var errs []error
	for _, r := range reqs {
		errs = append(errs, &fetch.Error{Name: r.Name, Ref: r.Ref, Code: s.fault, Err: fmt.Errorf("%s", s.fault)})
	}
	return joinErrs(errs)
}

// wait blocks a hung call until its context ends, like a network
// blackhole, and returns the error fetch would.
func (s *fakeSource) wait(ctx context.Context, reqs []fetch.Request) error {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if !hang {
		return nil
	}
	<-ctx.Done()
	var errs []error
	for _, r := range reqs {
		errs = append(errs, &fetch.Error{Name: r.Name, Ref: r.Ref, Code: "Timeout", Err: ctx.Err()})
	}
	return joinErrs(errs)
}

func (s *fakeSource) Fetch(ctx context.Context, reqs []fetch.Request) (fetch.Outcome, error) {
	if err := s.wait(ctx, reqs); err != nil {
		return fetch.Outcome{Values: map[string]fetch.Result{}}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, r := range reqs {
		names = append(names, r.Name)
	}
	s.fetched = append(s.fetched, names)
	s.fetchAt = append(s.fetchAt, time.Since(s.start))
	if s.fault != "" {
		return fetch.Outcome{Values: map[string]fetch.Result{}}, s.errs(reqs)
	}
	out := fetch.Outcome{Values: map[string]fetch.Result{}}
	var errs []error
	for _, r := range reqs {
		if s.gone[r.Name] {
			e := &fetch.Error{Name: r.Name, Ref: r.Ref, Code: "ParameterNotFound", Err: fmt.Errorf("not found")}
			if r.Optional {
				out.Skipped = append(out.Skipped, e)
			} else {
				errs = append(errs, e)
			}
			continue
		}
		out.Values[r.Name] = fetch.Result{Value: secret.FromString(s.values[r.Name]), Version: fmt.Sprint(s.version[r.Name]),
			Modified: s.start.Add(time.Duration(s.version[r.Name]) * time.Hour)}
	}
	return out, joinErrs(errs)
}

func (s *fakeSource) Poll(ctx context.Context, reqs []fetch.Request, have map[string]fetch.Result) ([]string, error) {
	if err := s.wait(ctx, reqs); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls = append(s.polls, time.Since(s.start))
	var names []string
	for _, r := range reqs {
		names = append(names, r.Name)
	}
	s.polled = append(s.polled, names)
	if len(s.script) > 0 {
		f := s.script[0]
		s.script = s.script[1:]
		if f != "" {
			saved := s.fault
			s.fault = f
			defer func() { s.fault = saved }()
			return nil, s.errs(reqs)
		}
	} else if s.fault != "" {
		return nil, s.errs(reqs)
	}
	var changed []string
	for _, r := range reqs {
		if s.gone[r.Name] || have[r.Name].Version != fmt.Sprint(s.version[r.Name]) {
			changed = append(changed, r.Name)
		}
	}
	return changed, nil
}

func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return joined(errs)
}

type joined []error

func (j joined) Error() string   { return "joined" }
func (j joined) Unwrap() []error { return j }

// countAction counts its runs.
type countAction struct{ runs *int }

func (countAction) Kind() string                               { return "signal" }
func (a countAction) Run(context.Context, action.Change) error { *a.runs++; return nil }

// lockedBuffer is the loop's log: written by Run's goroutine, read by the
// test (synctest.Wait orders them in time, not for the race detector).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harness struct {
	loop   *Loop
	src    *fakeSource
	status *status.Status
	reg    *prometheus.Registry
	out    string
	runs   int
	logs   *lockedBuffer
}

func newHarness(t *testing.T, cfgJSON string, values map[string]string, rnd float64) *harness {
	t.Helper()
	return newHarnessWith(t, cfgJSON, values, rnd, nil)
}

// newHarnessWith builds the loop with acts as its actions factory; nil
// means one countAction.
func newHarnessWith(t *testing.T, cfgJSON string, values map[string]string, rnd float64, acts func([]config.Action) ([]action.Action, error)) *harness {
	t.Helper()
	return newHarnessIn(t, t.TempDir(), cfgJSON, values, rnd, acts)
}

// newHarnessIn is newHarnessWith writing into out: a second harness on an
// earlier one's directory is the agent restarted.
func newHarnessIn(t testing.TB, out, cfgJSON string, values map[string]string, rnd float64, acts func([]config.Action) ([]action.Action, error)) *harness {
	t.Helper()
	h := &harness{src: newSource(values), reg: prometheus.NewRegistry(), out: out, logs: &lockedBuffer{}}
	s, err := config.Load(config.Flags{OutputDir: h.out}, func(k string) string {
		if k == "AGENT_CONFIG" {
			return cfgJSON
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	h.status = status.New(s.MaxStale, time.Now)
	if acts == nil {
		acts = func([]config.Action) ([]action.Action, error) { return []action.Action{countAction{&h.runs}}, nil }
	}
	m := metrics.New(h.reg, "test", func() bool { ok, _ := h.status.Ready(); return ok })
	h.loop, err = New(Options{
		Source: h.src, Settings: s, Metrics: m, Status: h.status,
		Log:     slog.New(slog.NewJSONHandler(h.logs, nil)),
		Rand:    func() float64 { return rnd },
		Actions: acts,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.loop.Close() })
	return h
}

func (h *harness) file(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.out, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runFor runs the loop for d of fake time, then stops it.
func (h *harness) runFor(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = h.loop.Run(ctx, Events{})
		close(done)
	}()
	advance(d)
	cancel()
	<-done
}

const twoSecrets = `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b"}],"refresh":{"interval":"10s","jitter":"2s","maxStale":"30s"}}`

func TestLoopPollsAtIntervalWithFirstOffset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		if err := h.loop.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.runFor(t, 36*time.Second)
		// rand 0.5: first wait is half the interval, then interval ± 0 jitter.
		want := []time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second, 35 * time.Second}
		if fmt.Sprint(h.src.polls) != fmt.Sprint(want) {
			t.Errorf("polls at %v, want %v", h.src.polls, want)
		}
		if len(h.src.fetched) != 1 || h.runs != 0 {
			t.Errorf("fetches %v and %d actions for no change; want only the first fetch and no action", h.src.fetched, h.runs)
		}
	})
}

func TestLoopRotationRewritesAndActsOncePerChangedCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		if err := h.loop.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if h.file(t, "A") != "a1" || h.runs != 0 {
			t.Fatalf("first render: A=%q, %d actions", h.file(t, "A"), h.runs)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = h.loop.Run(ctx, Events{}); close(done) }()

		advance(6 * time.Second) // past the first poll at 5s
		h.src.rotate("A", "a2")
		h.src.rotate("B", "b2")
		advance(10 * time.Second) // the poll at 15s sees both
		if h.file(t, "A") != "a2" || h.file(t, "B") != "b2" {
			t.Errorf("after rotation A=%q B=%q", h.file(t, "A"), h.file(t, "B"))
		}
		if h.runs != 1 {
			t.Errorf("%d actions for one changed cycle with two rotated secrets, want 1", h.runs)
		}
		// A new version with the same value changes no file: no action.
		h.src.rotate("A", "a2")
		advance(20 * time.Second)
		cancel()
		<-done
		if h.runs != 1 {
			t.Errorf("%d actions after an unchanged value, want still 1", h.runs)
		}
		if got := h.src.fetched; fmt.Sprint(got) != "[[A B] [A B] [A]]" {
			t.Errorf("fetches %v: only moved secrets are fetched", got)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_changes_total", "A"); got != 1 {
			t.Errorf("changes_total{name=A} = %v, want 1", got)
		}
	})
}

func TestLoopKeepsFilesWhenAWSFailsThenRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		if err := h.loop.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = h.loop.Run(ctx, Events{}); close(done) }()
		h.src.setFault("ServiceUnavailable")
		advance(6 * time.Second) // first poll fails at 5s
		if ok, _ := h.status.Ready(); !ok {
			t.Error("not ready right after one failure; the limit is 30s")
		}
		advance(40 * time.Second)
		if h.file(t, "A") != "a1" || h.file(t, "B") != "b1" {
			t.Errorf("files changed during the outage: A=%q B=%q", h.file(t, "A"), h.file(t, "B"))
		}
		ok, detail := h.status.Ready()
		if ok || !strings.Contains(detail, "secret A stale") || !strings.Contains(detail, "ServiceUnavailable") {
			t.Errorf("ready=%v detail=%q after 40s stale with a 30s limit", ok, detail)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "A"); got != 1 {
			t.Errorf("secret_stale{name=A} = %v, want 1", got)
		}
		// Backoff after the failure at 5s: steps of 1s, 2s, 4s, 8s, then the 10s interval.
		gaps := gapsOf(h.src.polls)
		want := []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 7500 * time.Millisecond}
		if len(gaps) < 5 || fmt.Sprint(gaps[:5]) != fmt.Sprint(want) {
			t.Errorf("gaps between failing polls %v, want %v (steps 1s, 2s, 4s, 8s, 10s; rand 0.5 takes 3/4 of each)", gaps, want)
		}
		h.src.setFault("")
		advance(11 * time.Second)
		cancel()
		<-done
		if ok, detail := h.status.Ready(); !ok {
			t.Errorf("not ready after recovery: %s", detail)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "A"); got != 0 {
			t.Errorf("secret_stale{name=A} = %v after recovery, want 0", got)
		}
		if n := strings.Count(h.logs.String(), `"msg":"refresh failed; keeping the last good value`); n != 2 {
			t.Errorf("%d failure lines for 2 secrets over many failing cycles, want 2 (one per transition)", n)
		}
	})
}

func TestLoopThrottlingGrowsIntervalThenShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// maxStale 10m: half of it (the cap on growth) is above 16 × 10s.
		cfg := strings.Replace(twoSecrets, `"maxStale":"30s"`, `"maxStale":"10m"`, 1)
		h := newHarness(t, cfg, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		if err := h.loop.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = h.loop.Run(ctx, Events{}); close(done) }()
		h.src.setFault("ThrottlingException")
		advance(5*time.Second + 20*time.Second + 40*time.Second + time.Second)
		h.src.setFault("")
		advance(200 * time.Second)
		cancel()
		<-done
		gaps := gapsOf(h.src.polls)
		want := []time.Duration{20 * time.Second, 40 * time.Second, 80 * time.Second, 64 * time.Second}
		if len(gaps) < 4 || fmt.Sprint(gaps[:4]) != fmt.Sprint(want) {
			t.Errorf("gaps %v, want %v...: doubled while throttled, then shrinking by 20%% a cycle", gaps, want)
		}
	})
}

func TestLoopStartRetriesTransientErrorsUntilDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		h.src.setFault("ServiceUnavailable")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := h.loop.Start(ctx)
		if err == nil || !strings.Contains(err.Error(), "no complete first render before the start-up deadline") {
			t.Fatalf("Start = %v", err)
		}
		if ok, _ := h.status.Ready(); ok {
			t.Error("ready without a first render")
		}
		if entries, _ := os.ReadDir(h.out); len(entries) != 0 {
			t.Errorf("files written without a complete render: %v", entries)
		}
		if n := len(h.src.fetched); n < 4 {
			t.Errorf("%d attempts in 20s, want retries with backoff", n)
		}
	})
}

// advance moves the bubble's fake clock by d (it costs no real time) and
// waits until every goroutine in the bubble is blocked again.
func advance(d time.Duration) {
	<-time.After(d)
	synctest.Wait()
}

func gapsOf(ts []time.Duration) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i]-ts[i-1])
	}
	return out
}

// secretMetric is the value of the gauge or counter name{name=secretName}.
func secretMetric(t *testing.T, g prometheus.Gatherer, name, secretName string) float64 {
	t.Helper()
	return metricValue(t, g, name, "name", secretName)
}
