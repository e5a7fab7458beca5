package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
)

// feedStandIn is a tiny change feed: it answers from a table of versions
// that the test sets, holding a request until a version differs from the
// one sent or the wait runs out, and records every request body.
type feedStandIn struct {
	mu       sync.Mutex
	versions map[string]string // by valueFrom
	bodies   []string
	changed  chan struct{}
}

func (s *feedStandIn) set(ref, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions[ref] = version
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *feedStandIn) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func (s *feedStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req feed.Request
	if r.URL.Path != feed.Path || json.Unmarshal(body, &req) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, string(body))
	s.mu.Unlock()
	wait, _ := feed.ParseWait(req.Wait)
	timeout := time.After(wait)
	for {
		s.mu.Lock()
		resp := feed.Response{Refs: map[string]feed.RefState{}, Changed: []string{}, Interval: "1s"}
		for ref, held := range req.Refs {
			v := s.versions[ref]
			resp.Refs[ref] = feed.RefState{Version: v}
			if v != "" && v != held {
				resp.Changed = append(resp.Changed, ref)
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if len(resp.Changed) > 0 {
			_, _ = w.Write(feed.Encode(resp))
			return
		}
		select {
		case <-changed:
		case <-timeout:
			_, _ = w.Write(feed.Encode(resp))
			return
		case <-r.Context().Done():
			return
		}
	}
}

// TestRunWithFeed runs the real binary with --feed against the wire-level
// fake and a stand-in feed: no polling while the feed answers, one value
// fetch for a change it reports, direct polling once it is gone.
func TestRunWithFeed(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/app/db", f.value("db"), true)
	apiKey := f.value("api")
	arn := f.fake.PutSecretString(region, "app/api", fmt.Sprintf(`{"key":%q}`, apiKey))
	f.secrets = append(f.secrets, fmt.Sprintf(`{"key":%q}`, apiKey))
	apiRef := arn + ":key::"

	stand := &feedStandIn{versions: map[string]string{
		"/app/db": "1",
		apiRef:    f.fake.SecretVersionID(region, "app/api", "AWSCURRENT"),
	}, changed: make(chan struct{})}
	srv := httptest.NewServer(stand)
	defer srv.Close()

	conf, _ := json.Marshal(secretCfg{
		"secrets": []secretCfg{
			{"name": "DB_PASSWORD", "valueFrom": "/app/db"},
			{"name": "API_KEY", "valueFrom": apiRef},
		},
		"refresh": secretCfg{"interval": "2s", "jitter": "100ms"},
	})
	s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+string(conf)), "--output-dir", f.out, "--feed", srv.URL)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	eventually(t, "the feed in use", 30*time.Second, func() bool { return s.metric(t, `ecs_secrets_agent_refresh_source{source="feed"}`) == 1 })

	// Quiet: over several intervals, not one polling call.
	n := stand.requests()
	eventually(t, "a feed answer", 10*time.Second, func() bool { return stand.requests() > n })
	f.fake.ResetCounts()
	ticks := s.metric(t, `ecs_secrets_agent_refreshes_total{outcome="success"}`)
	eventually(t, "4 ticks", 30*time.Second, func() bool {
		return s.metric(t, `ecs_secrets_agent_refreshes_total{outcome="success"}`) >= ticks+4
	})
	for _, op := range []string{"GetParameters", "DescribeSecret", "GetSecretValue"} {
		if c := f.fake.Calls(op); c != 0 {
			t.Errorf("%d %s calls over 4 intervals while the feed answers, want 0", c, op)
		}
	}

	// A change the feed reports: one value fetch, the new file.
	newKey := f.value("api2")
	f.fake.PutSecretString(region, "app/api", fmt.Sprintf(`{"key":%q}`, newKey))
	f.secrets = append(f.secrets, fmt.Sprintf(`{"key":%q}`, newKey))
	stand.set(apiRef, f.fake.SecretVersionID(region, "app/api", "AWSCURRENT"))
	eventually(t, "the rotated file", 10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(f.out, "API_KEY"))
		return string(b) == newKey
	})
	ticks = s.metric(t, `ecs_secrets_agent_refreshes_total{outcome="success"}`)
	eventually(t, "2 more ticks", 30*time.Second, func() bool {
		return s.metric(t, `ecs_secrets_agent_refreshes_total{outcome="success"}`) >= ticks+2
	})
	if got := fmt.Sprint(f.fake.Calls("GetSecretValue"), f.fake.Calls("GetParameters"), f.fake.Calls("DescribeSecret")); got != "1 0 0" {
		t.Errorf("GetSecretValue, GetParameters, DescribeSecret calls after one change = %s, want 1 0 0", got)
	}

	// The feed gone: direct polling at the interval.
	srv.CloseClientConnections()
	srv.Close()
	eventually(t, "direct polling", 30*time.Second, func() bool {
		return f.fake.Calls("DescribeSecret") >= 2 && f.fake.Calls("GetParameters") >= 2
	})
	if v := s.metric(t, `ecs_secrets_agent_refresh_source{source="direct"}`); v != 1 {
		t.Errorf("refresh_source{direct} = %v with the feed gone", v)
	}
	if v := s.metric(t, `ecs_secrets_agent_feed_errors_total{reason="unreachable"}`); v < 1 {
		t.Errorf("feed_errors_total{unreachable} = %v", v)
	}
	s.stop(t)
	logs := s.logs()
	if n := strings.Count(logs, `"msg":"change feed not answering; polling AWS directly at the refresh interval for the secrets it no longer covers"`); n != 1 {
		t.Errorf("%d feed→direct lines, want 1:\n%s", n, logs)
	}
	stand.mu.Lock()
	sent := strings.Join(stand.bodies, "\n")
	stand.mu.Unlock()
	assertNoSecrets(t, "requests to the feed", sent, f.secrets)
	assertNoSecrets(t, "stderr", logs, f.secrets)
}

// TestExecWithFeed: the exec wrapper asks the feed too, and restarts the
// app with a value the feed reported moved, fetched in one call.
func TestExecWithFeed(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/rot", f.value("v1"), true)
	stand := &feedStandIn{versions: map[string]string{"/rot": "1"}, changed: make(chan struct{})}
	srv := httptest.NewServer(stand)
	defer srv.Close()
	conf, _ := json.Marshal(secretCfg{"secrets": []secretCfg{{"name": "ROT", "valueFrom": "/rot"}},
		"refresh": secretCfg{"interval": "2s", "jitter": "100ms"}, "onChange": []secretCfg{{"restart": secretCfg{"gracePeriod": "5s"}}}})
	cmd, out, stderr := execAgent(t, append(f.fake.Env(region), "AGENT_CONFIG="+string(conf), "AGENT_TEST_WATCH=ROT"), "--feed", srv.URL)
	eventually(t, "app started", 30*time.Second, func() bool { return len(appLines(t, out)) == 1 })
	n := stand.requests()
	eventually(t, "a feed answer", 10*time.Second, func() bool { return stand.requests() > n })
	f.fake.ResetCounts()
	n = stand.requests()
	eventually(t, "4 more feed requests (2 intervals)", 30*time.Second, func() bool { return stand.requests() >= n+4 })
	if c := f.fake.Calls("GetParameters"); c != 0 {
		t.Errorf("%d GetParameters calls while the feed answers, want 0", c)
	}
	v2 := f.value("v2")
	f.fake.PutParameter(region, "/rot", v2, true)
	stand.set("/rot", "2")
	eventually(t, "the app restarted with v2", 30*time.Second, func() bool {
		lines := appLines(t, out)
		return len(lines) >= 3 && lines[len(lines)-1].value == v2
	})
	if log := f.fake.CallLog(); len(log) != 1 || log[0].Op != "GetParameters" || !log[0].WithDecryption {
		t.Errorf("calls after one reported change: %+v, want one decrypting GetParameters", log)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	stand.mu.Lock()
	sent := strings.Join(stand.bodies, "\n")
	stand.mu.Unlock()
	assertNoSecrets(t, "requests to the feed", sent, f.secrets)
	assertNoSecrets(t, "stderr", stderr.String(), f.secrets)
}
