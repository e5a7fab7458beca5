package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunRestartedDeliversWhatItsPredecessorDidNot: the app outlives the
// agent's container (an ECS container restart policy, a compose restart).
// A change whose reload failed when the agent was SIGKILLed, and a rotation
// made while no agent ran, each reach the app through the next agent
// process: without the note of the pending change, and without counting a
// first render that replaced an earlier process's files as a change, the
// restarted agent found the files current and told the app nothing.
func TestRunRestartedDeliversWhatItsPredecessorDidNot(t *testing.T) {
	f := newFixture(t)
	v1, v2, v3 := f.value("v1"), f.value("v2"), f.value("v3")
	f.fake.PutParameter(region, "/app/db", v1, true)

	var failing atomic.Bool
	var failed, reloaded atomic.Int32
	reload := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			failed.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		reloaded.Add(1)
	}))
	defer reload.Close()
	conf, _ := json.Marshal(secretCfg{
		"secrets":  []secretCfg{{"name": "DB_PASSWORD", "valueFrom": "/app/db"}},
		"refresh":  secretCfg{"interval": "1s", "jitter": "100ms"},
		"onChange": []secretCfg{{"http": secretCfg{"url": reload.URL + "/-/reload"}}},
	})
	env := append(f.fake.Env(region), "AGENT_CONFIG="+string(conf))
	note := filepath.Join(f.out, ".agent.pending")
	kill := func(s *sidecar) {
		t.Helper()
		_ = s.cmd.Process.Kill()
		<-s.exited
		assertNoSecrets(t, "stderr", s.logs(), f.secrets)
	}

	s := startSidecar(t, env, "--output-dir", f.out)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	failing.Store(true)
	f.fake.PutParameter(region, "/app/db", v2, true)
	eventually(t, "a failed reload of the rotated file", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(f.out, "DB_PASSWORD"))
		return string(b) == v2 && failed.Load() >= 1
	})
	kill(s)
	b, err := os.ReadFile(note)
	if err != nil || !strings.Contains(string(b), `"changed":["DB_PASSWORD"]`) {
		t.Fatalf("note after the kill: %q, %v", b, err)
	}
	assertNoSecrets(t, "the note", string(b), f.secrets)

	failing.Store(false)
	s = startSidecar(t, env, "--output-dir", f.out)
	eventually(t, "the reload the killed agent owed", 30*time.Second, func() bool { return reloaded.Load() == 1 })
	eventually(t, "the note removed", 10*time.Second, func() bool { _, err := os.Lstat(note); return os.IsNotExist(err) })
	if !strings.Contains(s.logs(), "delivering a change an earlier agent process had not delivered to the app") {
		t.Errorf("no log line for the restored change:\n%s", s.logs())
	}
	kill(s)

	// Rotated while no agent ran: the next one's first render is the change.
	f.fake.PutParameter(region, "/app/db", v3, true)
	s = startSidecar(t, env, "--output-dir", f.out)
	eventually(t, "the reload for a rotation while no agent ran", 30*time.Second, func() bool { return reloaded.Load() == 2 })
	assertFile(t, filepath.Join(f.out, "DB_PASSWORD"), v3, 0o444)
	if d := s.stop(t); d > 5*time.Second {
		t.Errorf("took %s to stop after SIGTERM", d)
	}
	// A restart with nothing new tells the app nothing.
	s = startSidecar(t, env, "--output-dir", f.out)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	start := f.fake.Calls("GetParameters")
	eventually(t, "two polls", 30*time.Second, func() bool { return f.fake.Calls("GetParameters") >= start+2 })
	if n := reloaded.Load(); n != 2 {
		t.Errorf("%d reloads after a restart with nothing new, want 2", n)
	}
	s.stop(t)
	assertNoSecrets(t, "stderr", s.logs(), f.secrets)
}
