package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// feedTap is a reverse proxy in front of a feed watcher that keeps every
// request and answer body, for the scan for secret values. Its address
// stays when the watcher behind it is killed and restarted on the same
// port.
type feedTap struct {
	srv     *httptest.Server
	mu      sync.Mutex
	traffic bytes.Buffer
}

func newFeedTap(t *testing.T, target string) *feedTap {
	t.Helper()
	tap := &feedTap{}
	client := &http.Client{Timeout: 2 * time.Minute}
	tap.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+target+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		tap.mu.Lock()
		tap.traffic.Write(body)
		tap.traffic.WriteString("\n")
		tap.traffic.Write(answer)
		tap.traffic.WriteString("\n")
		tap.mu.Unlock()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(tap.srv.Close)
	return tap
}

func (tap *feedTap) text() string {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return tap.traffic.String()
}

// freePort returns a loopback address nothing listens on, so that a
// watcher can be restarted on the address its clients know.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// apiCalls sums an agent's ecs_secrets_agent_api_requests_total for op,
// every outcome.
func (s *sidecar) apiCalls(t *testing.T, op string) int {
	t.Helper()
	_, body := s.get(t, "/metrics")
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "ecs_secrets_agent_api_requests_total{") || !strings.Contains(line, `operation="`+op+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatal(err)
		}
		n += int(v)
	}
	return n
}

// source is the refresh source an agent reports in use: "feed" or "direct".
func (s *sidecar) source(t *testing.T) string {
	t.Helper()
	_, body := s.get(t, "/metrics")
	for _, src := range []string{"feed", "direct"} {
		if strings.Contains(body, `ecs_secrets_agent_refresh_source{source="`+src+`"} 1`) {
			return src
		}
	}
	return ""
}

// TestFeedServesThirtySidecars runs one feed watcher and 30 sidecars of the
// real binary against the wire-level fake (issue 10's black-box test):
//   - over a quiet window the sidecars make no polling call: the AWS calls
//     are the watcher's own polling;
//   - a rotation of a secret and of a parameter reaches all 30 files within
//     the watcher's interval + 5 s, with exactly one value fetch per task;
//   - the watcher killed, a rotation still reaches every sidecar by direct
//     polling within its interval; the watcher back, they return to the feed;
//   - no secret value appears in the feed's traffic or in any log.
//
// Time is scaled down: the watcher polls every 2 s, the sidecars every 10 s.
func TestFeedServesThirtySidecars(t *testing.T) {
	const (
		n               = 30
		watcherInterval = 2 * time.Second
		agentInterval   = 10 * time.Second
	)
	f := newFixture(t)
	f.fake.PutParameter(region, "/app/key", f.value("key1"), true)
	dbARN := f.fake.PutSecretString(region, "app/db", f.value("db1"))
	env := f.fake.Env(region)

	feedAddr := freePort(t)
	startFeed := func() *sidecar {
		return startWatcher(t, env, "--feed-addr", feedAddr, "--interval", watcherInterval.String())
	}
	watcher := startFeed()
	watchers := []*sidecar{watcher}
	tap := newFeedTap(t, feedAddr)

	dirs := make([]string, n)
	agents := make([]*sidecar, n)
	for i := range agents {
		dirs[i] = filepath.Join(t.TempDir(), "secrets")
		cfg, _ := json.Marshal(map[string]any{
			"outputDir": dirs[i],
			"secrets": []map[string]any{
				{"name": "KEY", "valueFrom": "/app/key", "file": "key"},
				{"name": "DB", "valueFrom": dbARN, "file": "db"},
			},
		})
		agents[i] = startSidecar(t, withEnv(env, "AGENT_CONFIG", string(cfg)),
			"--interval", agentInterval.String(), "--feed", tap.srv.URL)
	}
	for i, a := range agents {
		eventually(t, fmt.Sprintf("agent %d on the feed", i), 30*time.Second, func() bool { return a.source(t) == "feed" })
	}

	polls := func(a *sidecar) int { return a.apiCalls(t, "GetParameters") + a.apiCalls(t, "DescribeSecret") }
	t.Run("quiet window: no polling from the sidecars", func(t *testing.T) {
		before := make([]int, n)
		for i, a := range agents {
			before[i] = polls(a)
		}
		watcherBefore := polls(watcher)
		fakeBefore := f.fake.Calls("GetParameters") + f.fake.Calls("DescribeSecret")
		quiet := 2*agentInterval + agentInterval/2 // two full sidecar intervals and more
		deadline := time.Now().Add(quiet)
		eventually(t, "the quiet window", quiet+time.Second, func() bool { return time.Now().After(deadline) })
		for i, a := range agents {
			if d := polls(a) - before[i]; d != 0 {
				t.Errorf("agent %d made %d polling calls while the feed answered", i, d)
			}
		}
		watcherCalls := polls(watcher) - watcherBefore
		fakeCalls := f.fake.Calls("GetParameters") + f.fake.Calls("DescribeSecret") - fakeBefore
		if fakeCalls != watcherCalls {
			t.Errorf("AWS saw %d polling calls, the watcher made %d: the rest came from sidecars", fakeCalls, watcherCalls)
		}
		// One GetParameters and one DescribeSecret per watcher poll.
		if max := 2 * int(quiet/watcherInterval+2); watcherCalls > max || watcherCalls == 0 {
			t.Errorf("watcher made %d polling calls in %s, want 1..%d", watcherCalls, quiet, max)
		}
		t.Logf("quiet window %s: %d polling calls, all the watcher's; 0 from %d sidecars", quiet, fakeCalls, n)
	})

	rotate := func(t *testing.T, what, op, file string, put func() string, within time.Duration) {
		t.Helper()
		fetchesBefore := make([]int, n)
		for i, a := range agents {
			fetchesBefore[i] = a.apiCalls(t, op)
		}
		v := put()
		start := time.Now()
		for i := range agents {
			eventually(t, fmt.Sprintf("agent %d gets the rotated %s", i, what), within-time.Since(start)+time.Millisecond, func() bool {
				return readFileOr(filepath.Join(dirs[i], file)) == v
			})
		}
		t.Logf("%s rotation reached %d sidecars in %s", what, n, time.Since(start).Round(10*time.Millisecond))
		// Let any second fetch show up before counting.
		settle := time.Now().Add(watcherInterval)
		eventually(t, "a watcher interval", 2*watcherInterval, func() bool { return time.Now().After(settle) })
		for i, a := range agents {
			if d := a.apiCalls(t, op) - fetchesBefore[i]; d != 1 {
				t.Errorf("agent %d: %d %s calls for one rotation, want 1", i, d, op)
			}
		}
	}
	t.Run("a rotation reaches all through the feed", func(t *testing.T) {
		rotate(t, "secret", "GetSecretValue", "db", func() string {
			v := f.value("db2")
			f.fake.PutSecretString(region, "app/db", v)
			return v
		}, watcherInterval+5*time.Second)
		// GetParameters counts polls too: none happen while covered, so
		// one call per agent is its value fetch.
		rotate(t, "parameter", "GetParameters", "key", func() string {
			v := f.value("key2")
			f.fake.PutParameter(region, "/app/key", v, true)
			return v
		}, watcherInterval+5*time.Second)
	})

	t.Run("watcher killed: direct polling, then back to the feed", func(t *testing.T) {
		if err := watcher.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-watcher.exited
		v := f.value("db3")
		f.fake.PutSecretString(region, "app/db", v)
		start := time.Now()
		// Within the sidecar's interval (+ its jitter and a cycle's slack).
		within := agentInterval + agentInterval/10 + 5*time.Second
		for i := range agents {
			eventually(t, fmt.Sprintf("agent %d gets the rotation with the feed down", i), within-time.Since(start)+time.Millisecond, func() bool {
				return readFileOr(filepath.Join(dirs[i], "db")) == v
			})
		}
		t.Logf("with the watcher dead, the rotation reached %d sidecars in %s", n, time.Since(start).Round(10*time.Millisecond))
		for i, a := range agents {
			if got := a.source(t); got != "direct" {
				t.Errorf("agent %d reports source %q with the feed down, want direct", i, got)
			}
		}

		watcher = startFeed()
		watchers = append(watchers, watcher)
		for i, a := range agents {
			eventually(t, fmt.Sprintf("agent %d back on the feed", i), 2*agentInterval, func() bool { return a.source(t) == "feed" })
		}
		// Back on the feed: a full interval with no polling.
		before := make([]int, n)
		for i, a := range agents {
			before[i] = polls(a)
		}
		deadline := time.Now().Add(agentInterval + agentInterval/5)
		eventually(t, "an interval on the feed", 2*agentInterval, func() bool { return time.Now().After(deadline) })
		for i, a := range agents {
			if d := polls(a) - before[i]; d != 0 {
				t.Errorf("agent %d made %d polling calls after the feed came back", i, d)
			}
		}
	})

	t.Run("no secret value in the feed's traffic or any log", func(t *testing.T) {
		traffic := tap.text()
		if !strings.Contains(traffic, `"/app/key"`) {
			t.Fatalf("the tap saw no feed request:\n%.2000s", traffic)
		}
		assertNoSecrets(t, "feed traffic", traffic, f.secrets)
		for i, w := range watchers {
			assertNoSecrets(t, fmt.Sprintf("watcher %d log", i), w.logs(), f.secrets)
		}
		for i, a := range agents {
			assertNoSecrets(t, fmt.Sprintf("agent %d log", i), a.logs(), f.secrets)
		}
	})
}

// readFileOr is the file's content, or "" if it cannot be read yet.
func readFileOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
