package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
)

// signalCounter is a stand-in app: it writes its pid file, then prints one
// line per SIGHUP until SIGTERM.
func signalCounter(pidFile string) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.Exit(3)
	}
	fmt.Println("ready")
	for s := range ch {
		if s == syscall.SIGTERM {
			os.Exit(0)
		}
		fmt.Println("hup")
	}
}

// sidecar is a running `agent run` process.
type sidecar struct {
	cmd     *exec.Cmd
	addr    string
	mu      sync.Mutex
	stderr  strings.Builder
	exited  chan struct{}
	exitErr error
}

func (s *sidecar) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// startSidecar starts the agent and waits for its metrics address.
func startSidecar(t *testing.T, env []string, args ...string) *sidecar {
	t.Helper()
	cmd := exec.Command(agentBin, append([]string{"run", "--metrics-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = env
	return startAgentCmd(t, cmd)
}

// startAgentCmd starts cmd, a long-running agent command (run or watch)
// with --metrics-addr 127.0.0.1:0, possibly behind a shell that sets limits,
// and waits until it logs the address it serves on.
func startAgentCmd(t *testing.T, cmd *exec.Cmd) *sidecar {
	t.Helper()
	s := &sidecar{cmd: cmd, exited: make(chan struct{})}
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		re := regexp.MustCompile(`"msg":"serving /metrics, /healthz and /readyz","addr":"([^"]+)"`)
		for sc.Scan() {
			s.mu.Lock()
			s.stderr.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
	select {
	case s.addr = <-addr:
	case <-s.exited:
		t.Fatalf("agent exited before serving: %v\n%s", s.exitErr, s.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not log its address\n%s", s.logs())
	}
	return s
}

func (s *sidecar) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		<-tick.C
	}
}

func (s *sidecar) metric(t *testing.T, name string) float64 {
	t.Helper()
	_, body := s.get(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return -1
}

// stop sends SIGTERM and returns how long the agent took to exit 0.
func (s *sidecar) stop(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("agent still running 10s after SIGTERM\n%s", s.logs())
	}
	if s.exitErr != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", s.exitErr, s.logs())
	}
	return time.Since(start)
}

func TestRunRotationSignalsAndCallsReloadOncePerChangedCycle(t *testing.T) {
	f := newFixture(t)
	dbPass, apiKey := f.value("db"), f.value("api")
	f.fake.PutParameter(region, "/app/db", dbPass, true)
	f.fake.PutParameter(region, "/app/user", f.value("user"), false)
	arn := f.fake.PutSecretString(region, "app/api", fmt.Sprintf(`{"key":%q}`, apiKey))
	f.secrets = append(f.secrets, fmt.Sprintf(`{"key":%q}`, apiKey))

	// The app: a process that counts SIGHUPs, and a reload endpoint.
	pidFile := filepath.Join(t.TempDir(), "app.pid")
	app := exec.Command(os.Args[0])
	app.Env = append(os.Environ(), "AGENT_TEST_SIGNAL_COUNTER="+pidFile)
	appOut, _ := app.StdoutPipe()
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Process.Kill(); _ = app.Wait() })
	var hups atomic.Int32
	appReady := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(appOut)
		for sc.Scan() {
			switch sc.Text() {
			case "ready":
				close(appReady)
			case "hup":
				hups.Add(1)
			}
		}
	}()
	<-appReady
	var reloads atomic.Int32
	reload := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/-/reload" {
			reloads.Add(1)
		}
	}))
	defer reload.Close()

	conf, _ := json.Marshal(secretCfg{
		"secrets": []secretCfg{
			{"name": "DB_PASSWORD", "valueFrom": "/app/db"},
			{"name": "DB_USER", "valueFrom": "/app/user"},
			{"name": "API_KEY", "valueFrom": arn + ":key::"},
		},
		"refresh":  secretCfg{"interval": "1s", "jitter": "100ms"},
		"onChange": []secretCfg{{"signal": secretCfg{"pidFile": pidFile}}, {"http": secretCfg{"url": reload.URL + "/-/reload"}}},
	})
	s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+string(conf)), "--output-dir", f.out)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	assertFile(t, filepath.Join(f.out, "DB_PASSWORD"), dbPass, 0o444)
	if hups.Load() != 0 || reloads.Load() != 0 {
		t.Errorf("the first render ran actions: %d SIGHUP, %d reloads", hups.Load(), reloads.Load())
	}

	// Unchanged cycles: only metadata calls, no decrypt, no action.
	waitPolls := func(n int) {
		start := f.fake.Calls("DescribeSecret")
		eventually(t, fmt.Sprintf("%d polls", n), 30*time.Second, func() bool { return f.fake.Calls("DescribeSecret") >= start+n })
	}
	waitPolls(1)
	f.fake.ResetCounts()
	waitPolls(3)
	log := f.fake.CallLog()
	polls := f.fake.Calls("DescribeSecret")
	for _, c := range log {
		if c.Op == "GetSecretValue" || (c.Op == "GetParameters" && c.WithDecryption) {
			t.Errorf("a decrypting call in an unchanged cycle: %+v", c)
		}
	}
	if gp := f.fake.Calls("GetParameters"); gp < polls-1 || gp > polls+1 {
		t.Errorf("%d GetParameters for %d DescribeSecret: want one of each per cycle", gp, polls)
	}
	if hups.Load() != 0 || reloads.Load() != 0 {
		t.Errorf("unchanged cycles ran actions: %d SIGHUP, %d reloads", hups.Load(), reloads.Load())
	}

	// Rotate a parameter and the secret between two cycles: one cycle sees
	// both. A cycle's GetParameters and DescribeSecret are concurrent, so
	// wait for the calls to stop (the cycle is over), not for one of them:
	// a rotation between the two would split over two cycles.
	waitPolls(1)
	last, since := -1, time.Now()
	eventually(t, "a finished cycle", 30*time.Second, func() bool {
		if n := len(f.fake.CallLog()); n != last {
			last, since = n, time.Now()
			return false
		}
		return time.Since(since) >= 300*time.Millisecond
	})
	newPass, newKey := f.value("db2"), f.value("api2")
	f.fake.PutParameter(region, "/app/db", newPass, true)
	f.fake.PutSecretString(region, "app/api", fmt.Sprintf(`{"key":%q}`, newKey))
	f.secrets = append(f.secrets, fmt.Sprintf(`{"key":%q}`, newKey))
	eventually(t, "rotated files", 30*time.Second, func() bool {
		a, _ := os.ReadFile(filepath.Join(f.out, "DB_PASSWORD"))
		b, _ := os.ReadFile(filepath.Join(f.out, "API_KEY"))
		return string(a) == newPass && string(b) == newKey
	})
	eventually(t, "one SIGHUP and one reload", 10*time.Second, func() bool { return hups.Load() >= 1 && reloads.Load() >= 1 })
	waitPolls(3)
	if hups.Load() != 1 || reloads.Load() != 1 {
		t.Errorf("after one rotation and 3 quiet cycles: %d SIGHUP, %d reloads; want exactly 1 each", hups.Load(), reloads.Load())
	}
	if v := s.metric(t, `ecs_secrets_agent_secret_changes_total{name="DB_PASSWORD"}`); v != 1 {
		t.Errorf("changes_total{DB_PASSWORD} = %v", v)
	}
	if v := s.metric(t, `ecs_secrets_agent_actions_total{kind="signal",outcome="success"}`); v != 1 {
		t.Errorf("actions_total{signal,success} = %v", v)
	}
	if v := s.metric(t, "ecs_secrets_agent_ready"); v != 1 {
		t.Errorf("ready = %v", v)
	}
	_, metricsBody := s.get(t, "/metrics")
	_, readyBody := s.get(t, "/readyz")
	assertNoSecrets(t, "/metrics", metricsBody, f.secrets)
	assertNoSecrets(t, "/readyz", readyBody, f.secrets)

	if d := s.stop(t); d > 5*time.Second {
		t.Errorf("took %s to stop after SIGTERM", d)
	}
	assertNoSecrets(t, "stderr", s.logs(), f.secrets)
}

func TestRunOutageKeepsFilesThenRecovers(t *testing.T) {
	f := newFixture(t)
	v := f.value("a")
	f.fake.PutParameter(region, "/a", v, true)
	conf := `{"secrets":[{"name":"A","valueFrom":"/a"}],"refresh":{"interval":"1s","jitter":"100ms","maxStale":"2s"}}`
	s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+conf), "--output-dir", f.out)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	before, _ := os.Stat(filepath.Join(f.out, "A"))

	f.fake.SetFault(func(string) *awsfake.APIError {
		return &awsfake.APIError{Status: 503, Code: "ServiceUnavailable", Message: "unavailable"}
	})
	eventually(t, "stale metric", 30*time.Second, func() bool { return s.metric(t, `ecs_secrets_agent_secret_stale{name="A"}`) == 1 })
	eventually(t, "not ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 503 })
	_, body := s.get(t, "/readyz")
	if !strings.Contains(body, "secret A stale") || !strings.Contains(body, "ServiceUnavailable") {
		t.Errorf("/readyz body does not say why: %q", body)
	}
	after, _ := os.Stat(filepath.Join(f.out, "A"))
	assertFile(t, filepath.Join(f.out, "A"), v, 0o444)
	if !os.SameFile(before, after) {
		t.Error("the file was rewritten during the outage")
	}
	if v := s.metric(t, "ecs_secrets_agent_ready"); v != 0 {
		t.Errorf("ready = %v during the outage", v)
	}
	f.fake.SetFault(nil)
	eventually(t, "ready again", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	if v := s.metric(t, `ecs_secrets_agent_secret_stale{name="A"}`); v != 0 {
		t.Errorf("stale = %v after recovery", v)
	}
	s.stop(t)
	if n := strings.Count(s.logs(), `refresh failed; keeping the last good value`); n != 1 {
		t.Errorf("%d failure lines for one outage of one secret, want 1", n)
	}
	assertNoSecrets(t, "stderr", s.logs(), f.secrets)
}

func TestRunThrottlingGrowsInterval(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	conf := `{"secrets":[{"name":"A","valueFrom":"/a"}],"refresh":{"interval":"1s","jitter":"100ms","maxStale":"1m"}}`
	s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+conf), "--output-dir", f.out)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	f.fake.SetFault(func(op string) *awsfake.APIError {
		return &awsfake.APIError{Status: 400, Code: "ThrottlingException", Message: "Rate exceeded"}
	})
	eventually(t, "interval to grow", 60*time.Second, func() bool { return s.metric(t, "ecs_secrets_agent_refresh_interval_seconds") >= 4 })
	f.fake.SetFault(nil)
	eventually(t, "interval to shrink", 60*time.Second, func() bool { return s.metric(t, "ecs_secrets_agent_refresh_interval_seconds") < 4 })
	if v := s.metric(t, `ecs_secrets_agent_api_requests_total{operation="GetParameters",outcome="throttled",service="SSM"}`); v <= 0 {
		t.Errorf("throttled requests metric = %v", v)
	}
	s.stop(t)
}

// A wrong credentials token (the endpoint answers 401) is permanent, as
// AccessDenied is: the first render ends at once with the fix, instead of
// retrying until --timeout. (Transient faults at the first render are in
// TestFaultMatrix.)
func TestRunStartupFailsAtOnceOnAPermanentError(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	env := withEnv(f.fake.Env(region), "AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong")
	s := startSidecar(t, env, "--output-dir", f.out, "--secret", "A=/a", "--timeout", "1m")
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("agent still retrying a permanent error")
	}
	if ee, ok := s.exitErr.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want 1", s.exitErr)
	}
	if !strings.Contains(s.logs(), "NoCredentials: no credentials") || !strings.Contains(s.logs(), "not retried") {
		t.Errorf("logs do not say why:\n%s", s.logs())
	}
	if strings.Contains(s.logs(), "first render failed; retrying") {
		t.Errorf("a permanent error was retried:\n%s", s.logs())
	}
}
