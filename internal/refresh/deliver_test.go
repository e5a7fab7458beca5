package refresh

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/action"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/render"
)

// recorder backs recActions: it keeps every change each action index was
// run on, and fails an index while told to.
type recorder struct {
	mu   sync.Mutex
	n    int
	fail map[int]bool
	runs map[int][]action.Change
	at   map[int][]time.Duration // when, since start
	t0   time.Time
}

func newRecorder(n int) *recorder {
	return &recorder{n: n, fail: map[int]bool{}, runs: map[int][]action.Change{}, at: map[int][]time.Duration{}, t0: time.Now()}
}

func (r *recorder) factory([]config.Action) ([]action.Action, error) {
	acts := make([]action.Action, r.n)
	for i := range acts {
		acts[i] = recAction{r, i}
	}
	return acts, nil
}

func (r *recorder) setFail(i int, fail bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail[i] = fail
}

func (r *recorder) count(i int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs[i])
}

func (r *recorder) last(i int) action.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[i][len(r.runs[i])-1]
}

type recAction struct {
	r *recorder
	i int
}

func (a recAction) Kind() string { return []string{"http", "signal"}[a.i%2] }

func (a recAction) Run(_ context.Context, c action.Change) error {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	a.r.runs[a.i] = append(a.r.runs[a.i], c)
	a.r.at[a.i] = append(a.r.at[a.i], time.Since(a.r.t0))
	if a.r.fail[a.i] {
		return errors.New("reload URL answered 500")
	}
	return nil
}

// running starts h's loop with ev and returns a stop function that waits
// for Run to return.
func (h *harness) running(t *testing.T, ev Events) (stop func()) {
	t.Helper()
	if err := h.loop.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.loop.Run(ctx, ev); close(done) }()
	return func() { cancel(); <-done }
}

// block makes the file name unwritable: a non-empty directory in its place
// (rename cannot replace it, even as root).
func (h *harness) block(t *testing.T, name string) {
	t.Helper()
	p := filepath.Join(h.out, name)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(p, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) unblock(t *testing.T, name string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(h.out, name)); err != nil {
		t.Fatal(err)
	}
}

func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}

func TestChangeWhoseRenderFailedIsDeliveredWhenRenderSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory)
		stop := h.running(t, Events{})
		defer stop()

		h.src.rotate("A", "a2")
		h.block(t, "A")
		advance(6 * time.Second) // the poll at 5s fetches a2 and cannot write it
		if n := rec.count(0); n != 0 {
			t.Fatalf("%d actions for a change whose files could not be written", n)
		}
		if got := metricValue(t, h.reg, "ecs_secrets_agent_render_failing"); got != 1 {
			t.Errorf("render_failing = %v, want 1", got)
		}
		if got := metricValue(t, h.reg, "ecs_secrets_agent_change_pending"); got != 1 {
			t.Errorf("change_pending = %v, want 1", got)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_changes_total", "A"); got != 0 {
			t.Errorf("changes_total{A} = %v while the files do not hold the change, want 0", got)
		}
		if !strings.Contains(h.logs.String(), `"msg":"cannot render; the files in place are unchanged`) {
			t.Errorf("no render error line: %s", h.logs)
		}

		h.unblock(t, "A")
		advance(10 * time.Second) // the poll at 15s sees no new version
		if h.file(t, "A") != "a2" {
			t.Fatalf("A = %q after the render recovered", h.file(t, "A"))
		}
		if n := rec.count(0); n != 1 {
			t.Fatalf("%d actions once the change reached the files, want 1", n)
		}
		if c := rec.last(0); !slices.Equal(c.Changed, []string{"A"}) || c.Values["A"].Value.String() != "[REDACTED]" || string(c.Values["A"].Value.Bytes()) != "a2" {
			t.Errorf("action ran on changed=%v A=%q", c.Changed, c.Values["A"].Value.Bytes())
		}
		for name, want := range map[string]float64{"ecs_secrets_agent_render_failing": 0, "ecs_secrets_agent_change_pending": 0} {
			if got := metricValue(t, h.reg, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_changes_total", "A"); got != 1 {
			t.Errorf("changes_total{A} = %v, want 1", got)
		}
		if n := strings.Count(h.logs.String(), "render"); n != 2 {
			t.Errorf("%d render lines, want one when it failed and one when it recovered: %s", n, h.logs)
		}
	})
}

func TestFailedActionIsRetriedWithBackoffUntilItSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(2)
		rec.setFail(0, true)
		h := newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory)
		stop := h.running(t, Events{})
		defer stop()

		h.src.rotate("A", "a2")
		advance(5*time.Second + 1*time.Second + 2*time.Second + 4*time.Second + time.Millisecond)
		// Run at 5s, retried at 6s, 8s and 12s; the action that succeeded ran once.
		if n, m := rec.count(0), rec.count(1); n != 4 || m != 1 {
			t.Fatalf("failing action ran %d times, succeeding one %d; want 4 and 1", n, m)
		}
		if ok, detail := h.status.Ready(); !ok || !strings.Contains(detail, "change not delivered: onChange[0] http failing (the log has why)") {
			t.Errorf("ready=%v detail=%q: want the failing action listed, within its limit", ok, detail)
		}
		if got := metricValue(t, h.reg, "ecs_secrets_agent_change_pending"); got != 1 {
			t.Errorf("change_pending = %v, want 1", got)
		}
		if got := metricValue(t, h.reg, "ecs_secrets_agent_actions_total", "kind", "http", "outcome", "failure"); got != 4 {
			t.Errorf("actions_total{http,failure} = %v, want 4", got)
		}
		rec.setFail(0, false)
		advance(8 * time.Second) // the retry at 20s succeeds
		advance(time.Minute)
		if n := rec.count(0); n != 5 {
			t.Errorf("failing action ran %d times, want 5: retried until it succeeded, then never again", n)
		}
		if c := rec.last(0); string(c.Values["A"].Value.Bytes()) != "a2" {
			t.Errorf("retry acted on A=%q, want a2", c.Values["A"].Value.Bytes())
		}
		if got := metricValue(t, h.reg, "ecs_secrets_agent_change_pending"); got != 0 {
			t.Errorf("change_pending = %v after delivery, want 0", got)
		}
		if ok, detail := h.status.Ready(); !ok || detail != "" {
			t.Errorf("ready=%v detail=%q after delivery", ok, detail)
		}
		if n := strings.Count(h.logs.String(), `"msg":"onChange action failed; retrying"`); n != 4 {
			t.Errorf("%d failure lines, want one per failed attempt (4)", n)
		}
	})
}

func TestSupersedingChangeRunsEveryActionOnTheNewerValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(2)
		rec.setFail(1, true)
		h := newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory)
		stop := h.running(t, Events{})
		defer stop()

		h.src.rotate("A", "a2")
		advance(5*time.Second + 500*time.Millisecond) // change 1 at 5s: action 1 fails, retry at 6s
		h.src.rotate("B", "b2")
		advance(time.Second) // retry at 6s fails again on change 1
		advance(9 * time.Second)
		// At 15s change 2 supersedes: both actions run on it.
		n0 := rec.count(0)
		if n0 != 2 {
			t.Fatalf("action 0 ran %d times, want 2", n0)
		}
		c := rec.last(0)
		if !slices.Equal(c.Changed, []string{"A", "B"}) || string(c.Values["B"].Value.Bytes()) != "b2" {
			t.Errorf("superseding change: changed=%v B=%q; want both names, B=b2", c.Changed, c.Values["B"].Value.Bytes())
		}
		rec.setFail(1, false)
		advance(time.Minute)
		if c := rec.last(1); string(c.Values["B"].Value.Bytes()) != "b2" {
			t.Errorf("action 1 finally acted on B=%q, want b2 (the newer change)", c.Values["B"].Value.Bytes())
		}
		if n := rec.count(0); n != 2 {
			t.Errorf("action 0 ran %d times, want 2: a succeeded action is not retried", n)
		}
	})
}

// reloadCfg is settings for a reload: config JSON with the output dir.
func reloadCfg(t *testing.T, h *harness, cfgJSON string) *config.Settings {
	t.Helper()
	s, err := config.Load(config.Flags{OutputDir: h.out}, func(k string) string {
		if k == "AGENT_CONFIG" {
			return cfgJSON
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReloadRemovesTheFilesOfARemovedSecret(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		cfg := `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b","file":"sub/b.txt"}],"envFile":"all.env","refresh":{"interval":"10s"}}`
		h := newHarnessWith(t, cfg, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.factory)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		if h.file(t, "sub/b.txt") != "b1" {
			t.Fatal("no B file at start")
		}
		cfgCh <- reloadCfg(t, h, `{"secrets":[{"name":"A","valueFrom":"/a"}],"envFile":"all.env","refresh":{"interval":"10s"}}`)
		synctest.Wait()
		if _, err := os.Stat(filepath.Join(h.out, "sub/b.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removed secret's file still there: %v", err)
		}
		if got := h.file(t, "all.env"); got != "A='a1'\n" {
			t.Errorf("env file %q", got)
		}
		if n := rec.count(0); n != 1 {
			t.Fatalf("%d actions after a reload that removed a secret, want 1", n)
		}
		if s := rec.last(0).Settings; len(s.Secrets) != 1 {
			t.Errorf("action got settings with %d secrets, want the reloaded 1", len(s.Secrets))
		}
	})
}

func TestReloadedChangeCarriesTheNewSettingsAndValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1", "C": "c1"}, 0.5, rec.factory)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		cfgCh <- reloadCfg(t, h, strings.Replace(twoSecrets, `]`, `,{"name":"C","valueFrom":"/c"}]`, 1))
		synctest.Wait()
		if n := rec.count(0); n != 1 {
			t.Fatalf("%d actions after a reload that added a secret, want 1", n)
		}
		c := rec.last(0)
		if len(c.Settings.Secrets) != 3 || string(c.Values["C"].Value.Bytes()) != "c1" || !slices.Equal(c.Changed, []string{"C"}) {
			t.Errorf("change: %d secrets in settings, C=%q, changed %v; want 3, c1, [C] (exec's restart builds the environment from these)",
				len(c.Settings.Secrets), c.Values["C"].Value.Bytes(), c.Changed)
		}
	})
}

func TestReloadThatChangesMetricsAddrIsRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1", "C": "c1"}, 0.5)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		cfgCh <- reloadCfg(t, h, strings.Replace(twoSecrets, `]`, `,{"name":"C","valueFrom":"/c"}],"metricsAddr":"127.0.0.1:9999"`, 1))
		synctest.Wait()
		if _, err := os.Stat(filepath.Join(h.out, "C")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a rejected reload wrote C: %v", err)
		}
		if !strings.Contains(h.logs.String(), `reloaded configuration rejected; keeping the old one: metricsAddr \"\" → \"127.0.0.1:9999\" takes a restart of the agent`) {
			t.Errorf("no rejection naming metricsAddr: %s", h.logs)
		}
	})
}

func TestPartialRenderFailureSaysWhatWasWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		stop := h.running(t, Events{})
		defer stop()
		h.src.rotate("A", "a2")
		h.src.rotate("B", "b2")
		h.block(t, "A")
		advance(6 * time.Second)
		if h.file(t, "B") != "b2" {
			t.Fatalf("B = %q", h.file(t, "B"))
		}
		if !strings.Contains(h.logs.String(), `"msg":"render failed after writing 1 files; the others keep their previous content: write \"A\"`) {
			t.Errorf("render error line does not say B was written: %s", h.logs)
		}
		if strings.Contains(h.logs.String(), "the files in place are unchanged") {
			t.Errorf("claims nothing changed though B was written: %s", h.logs)
		}
	})
}

func TestStopDuringARefreshMarksNothingStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		stop := h.running(t, Events{})
		h.src.mu.Lock()
		h.src.hang = true
		h.src.mu.Unlock()
		advance(5*time.Second + time.Second) // a poll hangs from 5s
		stop()                               // SIGTERM mid-call
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "A"); got != 0 {
			t.Errorf("secret_stale{A} = %v after a stop during a refresh, want 0", got)
		}
		if strings.Contains(h.logs.String(), "refresh failed") || strings.Contains(h.logs.String(), "deadline") {
			t.Errorf("a stop was logged as a failure: %s", h.logs)
		}
	})
}

func TestHungCallMakesSecretsStaleAtTheCycleDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		stop := h.running(t, Events{})
		defer stop()
		h.src.mu.Lock()
		h.src.hang = true
		h.src.mu.Unlock()
		advance(5*time.Second + cycleTimeout(10*time.Second) - time.Millisecond)
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "A"); got != 0 {
			t.Fatalf("stale before the cycle deadline")
		}
		advance(2 * time.Millisecond)
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "A"); got != 1 {
			t.Errorf("secret_stale{A} = %v once the hung cycle hit its deadline, want 1", got)
		}
		if _, detail := h.status.Ready(); !strings.Contains(detail, "secret A stale for 0s (Timeout)") {
			t.Errorf("readyz detail %q", detail)
		}
	})
}

func TestStartFailsAtOnceOnAPermanentError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		h.src.setFault("AccessDeniedException")
		start := time.Now()
		err := h.loop.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), "not retried") {
			t.Fatalf("Start = %v, want a permanent failure", err)
		}
		if d := time.Since(start); d != 0 || len(h.src.fetched) != 1 {
			t.Errorf("Start took %s and %d fetches; want one attempt, no waiting", d, len(h.src.fetched))
		}
	})
}

func TestThrottlingNeverStretchesTheIntervalPastHalfMaxStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		// Every other poll throttled, for a long time.
		for range 40 {
			h.src.script = append(h.src.script, "ThrottlingException", "")
		}
		stop := h.running(t, Events{})
		defer stop()
		for range 600 {
			advance(time.Second)
			if ok, detail := h.status.Ready(); !ok {
				t.Fatalf("unready at %d polls while half the polls succeed: %s", len(h.src.polls), detail)
			}
		}
		for _, g := range gapsOf(h.src.polls) {
			if g > 15*time.Second+2*time.Second*3/2 { // maxStale/2, plus jitter scaled with it
				t.Fatalf("gap %s beyond maxStale/2 (15s) plus jitter: %v", g, gapsOf(h.src.polls))
			}
		}
	})
}

func TestRepairsBackOffWhileWritesFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		out := make(chan struct{}, 1)
		stop := h.running(t, Events{Output: out})
		defer stop()
		h.block(t, "A")
		for range 100 { // a file event every 100ms for 10s
			select {
			case out <- struct{}{}:
			default:
			}
			advance(100 * time.Millisecond)
		}
		stop() // before reading the loop's state
		// Without backoff: 40 repairs (one per 250ms). With it: 250ms, 500ms, 1s, 2s, 4s, 8s.
		if n := h.loop.repairFails; n > 6 {
			t.Errorf("%d failing repairs in 10s, want at most 6", n)
		}
		if n := strings.Count(h.logs.String(), "cannot render"); n != 1 {
			t.Errorf("%d error lines, want 1", n)
		}
	})
}

func TestOptionalSecretGoneFromAWSLosesItsFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		cfg := `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"O","valueFrom":"/o","optional":true}],"envFile":"all.env","refresh":{"interval":"10s"}}`
		h := newHarnessWith(t, cfg, map[string]string{"A": "a1", "O": "o1"}, 0.5, rec.factory)
		stop := h.running(t, Events{})
		defer stop()
		h.src.mu.Lock()
		h.src.gone["O"] = true
		h.src.mu.Unlock()
		advance(6 * time.Second)
		if _, err := os.Stat(filepath.Join(h.out, "O")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file of a deleted optional secret: %v", err)
		}
		if got := h.file(t, "all.env"); got != "A='a1'\n" {
			t.Errorf("env file %q", got)
		}
		if n := rec.count(0); n != 1 || !slices.Equal(rec.last(0).Changed, []string{"O"}) {
			t.Errorf("%d actions; want 1 on changed [O]", n)
		}
		if !strings.Contains(h.logs.String(), `"msg":"optional secret is gone; removing its files`) {
			t.Errorf("no log line: %s", h.logs)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "O"); got != 0 {
			t.Errorf("stale{O} = %v", got)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_changes_total", "O"); got != 1 {
			t.Errorf("changes_total{O} = %v, want 1", got)
		}
		advance(30 * time.Second)
		if n := rec.count(0); n != 1 {
			t.Errorf("%d actions; the absence is one change, not one per cycle", n)
		}
	})
}

func TestReloadAppliesMaxStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		cfgCh <- reloadCfg(t, h, strings.Replace(twoSecrets, `"maxStale":"30s"`, `"maxStale":"2m"`, 1))
		synctest.Wait()
		h.src.setFault("ServiceUnavailable")
		advance(time.Minute)
		ok, detail := h.status.Ready()
		if !ok || !strings.Contains(detail, "limit 2m0s (within limit)") {
			t.Errorf("ready=%v detail=%q: a minute stale is within the reloaded 2m limit", ok, detail)
		}
	})
}

// probingAction's target is not there yet.
type probingAction struct{ recAction }

func (probingAction) Probe() error {
	return errors.New(`no process named "ngnix" (visible: nginx): check the name`)
}

func TestStartWarnsWhenAnActionsTargetIsMissing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := newHarnessWith(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5,
			func([]config.Action) ([]action.Action, error) {
				return []action.Action{probingAction{recAction{rec, 0}}}, nil
			})
		if err := h.loop.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(h.logs.String(), `"level":"WARN","msg":"onChange action's target not found yet (the app may still be starting): no process named \"ngnix\" (visible: nginx): check the name","action_index":0`) {
			t.Errorf("no warning at start: %s", h.logs)
		}
		if ok, _ := h.status.Ready(); !ok {
			t.Error("a missing target made the agent unready at start")
		}
	})
}

// byConfig makes one recAction per configured action, so a reload can
// change their number.
func (r *recorder) byConfig(a []config.Action) ([]action.Action, error) {
	acts := make([]action.Action, len(a))
	for i := range acts {
		acts[i] = recAction{r, i}
	}
	return acts, nil
}

const (
	cfgTwoActs = `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b"}],"envFile":"all.env","refresh":{"interval":"10s","jitter":"2s","maxStale":"30s"},"onChange":[{"http":{"url":"http://127.0.0.1:1/a"}},{"http":{"url":"http://127.0.0.1:1/b"}}]}`
	cfgOneAct  = `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b"}],"envFile":"all.env","refresh":{"interval":"10s","jitter":"2s","maxStale":"30s"},"onChange":[{"http":{"url":"http://127.0.0.1:1/a"}}]}`
)

// A pending change keeps the actions it was rendered with: a reload that
// drops an action while the render fails must not leave the retry pointing
// past the new list (it panicked: index out of range).
func TestPendingChangeKeepsItsActionsAcrossAReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(2)
		rec.setFail(1, true)
		h := newHarnessWith(t, cfgTwoActs, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.byConfig)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		h.src.rotate("A", "a2")
		advance(5*time.Second + 500*time.Millisecond) // action 1 fails at 5s; retry due at 6s
		h.block(t, "B")
		h.src.rotate("B", "b2")
		cfgCh <- reloadCfg(t, h, cfgOneAct) // its render fails: B is blocked
		synctest.Wait()
		advance(2 * time.Second) // the retry fires on the pending change
		h.unblock(t, "B")
		rec.setFail(1, false)
		advance(time.Minute)
		if h.file(t, "B") != "b2" {
			t.Fatalf("B = %q", h.file(t, "B"))
		}
		if c := rec.last(0); string(c.Values["B"].Value.Bytes()) != "b2" || len(c.Settings.OnChange) != 1 {
			t.Errorf("the newest change ran with B=%q and %d actions configured; want b2 and the reloaded 1", c.Values["B"].Value.Bytes(), len(c.Settings.OnChange))
		}
	})
}

// A reload that changes a secret's reference while AWS fails keeps the
// last good value and its files, stale, as any failed refresh does.
func TestReloadedReferenceThatCannotBeFetchedKeepsTheFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := newHarnessWith(t, cfgOneAct, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.byConfig)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		h.src.setFault("InternalServerError")
		cfgCh <- reloadCfg(t, h, strings.Replace(cfgOneAct, `"/a"`, `"/a2"`, 1))
		synctest.Wait()
		if got := h.file(t, "A"); got != "a1" {
			t.Errorf("A = %q, want the last good a1", got)
		}
		if got := h.file(t, "all.env"); got != "A='a1'\nB='b1'\n" {
			t.Errorf("env file %q", got)
		}
		if n := rec.count(0); n != 0 {
			t.Errorf("%d actions for a reload whose new value could not be read", n)
		}
		if got := secretMetric(t, h.reg, "ecs_secrets_agent_secret_stale", "A"); got != 1 {
			t.Errorf("stale{A} = %v, want 1", got)
		}
	})
}

// A reload that adds a secret AWS cannot give yet changes nothing, so no
// action runs; the secret arrives, and acts, when AWS answers.
func TestReloadAddingASecretThatCannotBeFetchedActsOnlyWhenItArrives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := newHarnessWith(t, cfgOneAct, map[string]string{"A": "a1", "B": "b1", "C": "c1"}, 0.5, rec.byConfig)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		h.src.setFault("InternalServerError")
		cfgCh <- reloadCfg(t, h, strings.Replace(cfgOneAct, `{"name":"B","valueFrom":"/b"}]`, `{"name":"B","valueFrom":"/b"},{"name":"C","valueFrom":"/c"}]`, 1))
		synctest.Wait()
		if n := rec.count(0); n != 0 {
			t.Errorf("%d actions before C could be read", n)
		}
		h.src.setFault("")
		advance(12 * time.Second)
		if n := rec.count(0); n != 1 || h.file(t, "C") != "c1" || !slices.Equal(rec.last(0).Changed, []string{"C"}) {
			t.Errorf("%d actions, C=%q once AWS answered; want 1 on changed [C]", n, h.file(t, "C"))
		}
	})
}

// A secret removed by a reload loses its file even when the new
// configuration cannot render (here: an expand secret that is not JSON).
func TestReloadRemovesAFileEvenWhenTheRenderFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b","expand":true}],"refresh":{"interval":"10s","maxStale":"30s"}}`
		h := newHarness(t, cfg, map[string]string{"A": "a1", "B": `{"k":"v"}`}, 0.5)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		h.src.rotate("B", "not json")
		advance(6 * time.Second) // the render fails from now on
		cfgCh <- reloadCfg(t, h, `{"secrets":[{"name":"B","valueFrom":"/b","expand":true}],"refresh":{"interval":"10s","maxStale":"30s"}}`)
		synctest.Wait()
		if _, err := os.Stat(filepath.Join(h.out, "A")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removed secret A still readable while the render fails: %v", err)
		}
	})
}

// A file that cannot be removed is reported on its own; it does not hold
// back the delivery of the changes that were written.
func TestUnremovableFileDoesNotBlockDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		h := newHarnessWith(t, cfgOneAct, map[string]string{"A": "a1", "B": "b1"}, 0.5, rec.byConfig)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		h.block(t, "A") // a non-empty directory where A's file was
		cfgCh <- reloadCfg(t, h, strings.Replace(cfgOneAct, `{"name":"A","valueFrom":"/a"},`, ``, 1))
		synctest.Wait()
		before := rec.count(0)
		h.src.rotate("B", "b2")
		advance(20 * time.Second)
		if h.file(t, "B") != "b2" || rec.count(0) != before+1 {
			t.Errorf("B=%q, %d actions after the rotation (was %d): the change must be delivered", h.file(t, "B"), rec.count(0), before)
		}
		if got := metricValue(t, h.reg, "ecs_secrets_agent_render_failing"); got != 0 {
			t.Errorf("render_failing = %v: the files hold the latest values", got)
		}
		if _, detail := h.status.Ready(); !strings.Contains(detail, "files no longer configured are still readable") {
			t.Errorf("/readyz detail %q does not report the file left behind", detail)
		}
	})
}

// In exec mode a reload that only changes the environment's shape (expand
// toggled) is a change: the child must restart with the new variables.
func TestExecReloadChangingOnlyTheEnvironmentActs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(1)
		cfg := `{"secrets":[{"name":"A","valueFrom":"/a"}],"refresh":{"interval":"10s","maxStale":"30s"},"onChange":[{"http":{"url":"http://127.0.0.1:1/a"}}]}`
		h := newHarnessWith(t, cfg, map[string]string{"A": `{"k":"v"}`}, 0.5, rec.byConfig)
		h.loop.settings.OutputDir = ""
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		ns := reloadCfg(t, h, strings.Replace(cfg, `"/a"}`, `"/a","expand":true}`, 1))
		ns.OutputDir = ""
		cfgCh <- ns
		synctest.Wait()
		if n := rec.count(0); n != 1 || !rec.last(0).Settings.Secrets[0].Expand {
			t.Errorf("%d actions after expand was turned on in exec mode; want 1 with the new settings", n)
		}
	})
}

// A reload to an output directory that another agent holds fails its
// render visibly; the loop goes on polling instead of waiting for the lock.
func TestReloadToALockedDirectoryKeepsTheLoopRunning(t *testing.T) {
	other := t.TempDir()
	held, err := render.OpenDir(context.Background(), other, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, twoSecrets, map[string]string{"A": "a1", "B": "b1"}, 0.5)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		defer stop()
		ns := reloadCfg(t, h, twoSecrets)
		ns.OutputDir = other
		cfgCh <- ns
		before := h.src.pollCount()
		advance(time.Minute)
		if n := h.src.pollCount() - before; n < 4 {
			t.Errorf("%d polls in the minute after the reload; the loop waited on the lock", n)
		}
		if got := metricValue(t, h.reg, "ecs_secrets_agent_render_failing"); got != 1 {
			t.Errorf("render_failing = %v, want 1", got)
		}
	})
}

// A reload that leaves refresh alone keeps the schedule: it must not undo
// throttling's slow-down (a fleet reloading its config would hit the quota
// again at once).
func TestReloadKeepsAThrottledSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := strings.Replace(twoSecrets, `"maxStale":"30s"`, `"maxStale":"10m"`, 1)
		h := newHarness(t, cfg, map[string]string{"A": "a1", "B": "b1", "C": "c1"}, 0.5)
		cfgCh := make(chan *config.Settings)
		stop := h.running(t, Events{Config: cfgCh})
		h.src.setFault("ThrottlingException")
		advance(5*time.Second + 20*time.Second + 40*time.Second + time.Second) // polls at 5, 25, 65: interval now 80s
		h.src.setFault("")
		cfgCh <- reloadCfg(t, h, strings.Replace(cfg, `]`, `,{"name":"C","valueFrom":"/c"}]`, 1))
		synctest.Wait()
		advance(2 * time.Minute)
		stop()
		gaps := gapsOf(h.src.polls)
		if len(gaps) < 3 || gaps[2] != 80*time.Second {
			t.Errorf("gaps %v: the poll after a reload should still be 80s after the last (the throttled interval)", gaps)
		}
	})
}
