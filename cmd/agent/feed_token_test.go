package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
)

// The feed's tokens of these tests. Each is a value that must never show
// up in a log, a metric, /readyz, a feed answer or the app's environment.
const (
	tokenNow   = "tok-now-8c1f5e2a9b7d4c3e"
	tokenPrev  = "tok-prev-3d9a1b6c0e4f7a2b"
	tokenWrong = "tok-wrong-5e7b2c9d1a0f3e6c"
)

var allTokens = []string{tokenNow, tokenPrev, tokenWrong}

// TestFeedToken runs a watcher with a token (and a previous one), an
// `agent run --feed` with the right token, one with a wrong token and an
// `agent exec --feed` with the right one, all real binaries against the
// wire-level fake:
//   - the right agent is on the feed and makes no polling call over a
//     quiet window; the wrong one is refused (401), polls AWS directly,
//     reports source "direct" and reason "unauthorized", and says so in
//     one error line;
//   - a request without a token is a 401 that tracks nothing;
//   - no token appears in any log, /metrics, /readyz, feed answer, or in
//     the environment of exec's app.
func TestFeedToken(t *testing.T) {
	const agentInterval = 4 * time.Second
	f := newFixture(t)
	f.fake.PutParameter(region, "/app/key", f.value("key1"), true)
	dbARN := f.fake.PutSecretString(region, "app/db", f.value("db1"))
	env := f.fake.Env(region)

	w := startFeedWatcherEnv(t, withEnv(withEnv(env, feed.TokenEnv, tokenNow), feed.TokenPreviousEnv, tokenPrev))
	if !strings.Contains(w.logs(), `"regions":["`+region+`"],"tokens":2}`) {
		t.Errorf("the serving line does not say 2 tokens:\n%s", w.logs())
	}
	if strings.Contains(w.logs(), "open to anyone") {
		t.Errorf("a watcher with a token says its feed is open:\n%s", w.logs())
	}
	tap := newFeedTap(t, w.feedAddr)

	// Not even tracked without the token.
	code, body := w.ask(t, "POST", `{"region":"`+region+`","wait":"0s","refs":{"/not/ours":""}}`)
	if want := `{"error":"no token: this feed requires one; set AGENT_FEED_TOKEN on the agent to the watcher's token (sent as Authorization: Bearer)"}` + "\n"; code != 401 || body != want {
		t.Errorf("without a token: %d %q, want 401 %q", code, body, want)
	}

	cfg, _ := json.Marshal(map[string]any{
		"secrets": []map[string]any{
			{"name": "KEY", "valueFrom": "/app/key"},
			{"name": "DB", "valueFrom": dbARN},
		},
	})
	agent := func(token string) *sidecar {
		e := withEnv(env, "AGENT_CONFIG", string(cfg))
		return startSidecar(t, withEnv(e, feed.TokenEnv, token),
			"--output-dir", t.TempDir(), "--interval", agentInterval.String(), "--feed", tap.srv.URL)
	}
	good, bad := agent(tokenNow), agent(tokenWrong)
	eventually(t, "the right token's agent on the feed", 30*time.Second, func() bool { return good.source(t) == "feed" })
	eventually(t, "the wrong token refused", 30*time.Second, func() bool {
		return bad.metric(t, `ecs_secrets_agent_feed_errors_total{reason="unauthorized"}`) >= 1
	})
	// Direct polling, and the previous token also accepted: a request
	// with it is answered.
	if got := bad.source(t); got != "direct" {
		t.Errorf("the wrong token's agent reports source %q, want direct", got)
	}
	req, _ := http.NewRequest("POST", "http://"+w.feedAddr+feed.Path, strings.NewReader(`{"region":"`+region+`","wait":"0s","refs":{"/app/key":""}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokenPrev)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("with the previous token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	polls := func(a *sidecar) int { return a.apiCalls(t, "GetParameters") + a.apiCalls(t, "DescribeSecret") }
	goodBefore, badBefore := polls(good), polls(bad)
	quiet := 2*agentInterval + agentInterval/2
	deadline := time.Now().Add(quiet)
	eventually(t, "the quiet window", quiet+time.Second, func() bool { return time.Now().After(deadline) })
	if d := polls(good) - goodBefore; d != 0 {
		t.Errorf("the right token's agent made %d polling calls while the feed answered", d)
	}
	// A tick at least (two are due), each a GetParameters and a
	// DescribeSecret: one tick is enough to show it polls, and tolerates
	// a loaded machine.
	if d := polls(bad) - badBefore; d < 2 {
		t.Errorf("the wrong token's agent made %d polling calls in %s at a %s interval, want 2 or more", d, quiet, agentInterval)
	}
	if got := bad.source(t); got != "direct" {
		t.Errorf("the wrong token's agent reports source %q, want direct", got)
	}
	refused := w.metric(t, `ecs_secrets_agent_feed_requests_total{code="401"}`)
	if refused < 2 {
		t.Errorf("feed_requests_total{code=401} %v, want 2 or more (ours and the wrong agent's)", refused)
	}
	if n := strings.Count(bad.logs(), `"level":"ERROR","msg":"change feed refused this agent's token`); n != 1 {
		t.Errorf("%d token error lines from the wrong agent, want 1:\n%s", n, bad.logs())
	}
	if !strings.Contains(bad.logs(), `"reason":"unauthorized","error":"status 401: the feed refused this agent's token: AGENT_FEED_TOKEN is wrong (not one the watcher accepts)"`) {
		t.Errorf("the error line does not say the token is wrong:\n%s", bad.logs())
	}
	if strings.Contains(good.logs(), "refused") {
		t.Errorf("the right token's agent was refused:\n%s", good.logs())
	}
	// Not logged by the watcher: a scanner would flood its log.
	if strings.Contains(w.logs(), "401") || strings.Contains(w.logs(), "unauthorized") {
		t.Errorf("the watcher logs refused requests:\n%s", w.logs())
	}

	t.Run("exec: the app's environment has no token", func(t *testing.T) {
		conf, _ := json.Marshal(secretCfg{"secrets": []secretCfg{{"name": "ROT", "valueFrom": "/app/key"}},
			"refresh": secretCfg{"interval": "2s", "jitter": "100ms"}})
		e := withEnv(withEnv(env, feed.TokenEnv, tokenNow), feed.TokenPreviousEnv, tokenPrev)
		cmd, out, stderr := execAgent(t, append(e, "AGENT_CONFIG="+string(conf), "AGENT_TEST_WATCH=ROT"), "--feed", tap.srv.URL)
		eventually(t, "app started", 30*time.Second, func() bool { return len(appLines(t, out)) == 1 })
		eventually(t, "exec on the feed", 30*time.Second, func() bool {
			return strings.Contains(stderr.String(), `"msg":"change feed answering`)
		})
		app := appLines(t, out)[0]
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", app.pid))
		if err != nil {
			t.Fatal(err)
		}
		vars := envOf(string(environ))
		if _, ok := vars["ROT"]; !ok {
			t.Errorf("the app's environment has no ROT: %v", strings.Join(strings.Split(string(environ), "\x00"), " ")[:200])
		}
		for _, name := range []string{feed.TokenEnv, feed.TokenPreviousEnv} {
			if _, ok := vars[name]; ok {
				t.Errorf("the app's environment has %s", name)
			}
		}
		assertNoSecrets(t, "the app's environment", string(environ), allTokens)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		assertNoSecrets(t, "exec's stderr", stderr.String(), allTokens)
		if strings.Contains(stderr.String(), "refused") {
			t.Errorf("exec was refused:\n%s", stderr.String())
		}
	})

	t.Run("no token in a log, /metrics, /readyz or a feed answer", func(t *testing.T) {
		if traffic := tap.text(); !strings.Contains(traffic, `"/app/key"`) {
			t.Fatalf("the tap saw no feed request:\n%.2000s", traffic)
		}
		w.mu.Lock()
		assertNoSecrets(t, "feed answers", w.bodies.String()+tap.text(), allTokens)
		w.mu.Unlock()
		for name, a := range map[string]*sidecar{"watcher": w.sidecar, "right agent": good, "wrong agent": bad} {
			for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
				_, body := a.get(t, path)
				assertNoSecrets(t, name+" "+path, body, allTokens)
			}
			assertNoSecrets(t, name+" log", a.logs(), allTokens)
		}
	})
}

// A token that is too short or not printable ASCII, or a previous token
// without a current one, is a configuration error: exit 2, naming the
// variable, never echoing the value. A watcher without a token says, once,
// that its feed is open.
func TestFeedTokenConfigErrors(t *testing.T) {
	f := newFixture(t)
	env := f.fake.Env(region)
	const short, spaced = "tok-short-12345", "tok with a space 12345"
	secrets := append(allTokens, short, spaced)
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"watch, short", withEnv(env, feed.TokenEnv, short), []string{"watch", "--feed-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
			"watch: AGENT_FEED_TOKEN: 15 bytes, want at least 16"},
		{"watch, previous with a space", withEnv(withEnv(env, feed.TokenEnv, tokenNow), feed.TokenPreviousEnv, spaced), []string{"watch", "--feed-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
			"watch: AGENT_FEED_TOKEN_PREVIOUS: byte 4 is not printable ASCII (spaces, control and non-ASCII characters are not allowed)"},
		{"watch, previous alone", withEnv(env, feed.TokenPreviousEnv, tokenPrev), []string{"watch", "--feed-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
			"watch: AGENT_FEED_TOKEN_PREVIOUS is set but AGENT_FEED_TOKEN is not: the previous token is accepted only alongside the current one"},
		{"run, short", withEnv(env, feed.TokenEnv, short), []string{"run", "--secret", "A=/a", "--feed", "http://127.0.0.1:1", "--metrics-addr", "127.0.0.1:0"},
			"AGENT_FEED_TOKEN: 15 bytes, want at least 16"},
		{"exec, spaced", withEnv(env, feed.TokenEnv, spaced), []string{"exec", "--secret", "A=/a", "--feed", "http://127.0.0.1:1", "--", "true"},
			"AGENT_FEED_TOKEN: byte 4 is not printable ASCII"},
		{"check, short", withEnv(env, feed.TokenEnv, short), []string{"check", "--secret", "A=/a", "--feed", "http://127.0.0.1:1"},
			"AGENT_FEED_TOKEN: 15 bytes, want at least 16"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.fake.ResetCounts()
			r := runAgent(t, tt.env, secrets, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", r.code, r.stderr, tt.want)
			}
			if log := f.fake.CallLog(); len(log) != 0 {
				t.Errorf("AWS calls before the configuration error: %+v", log)
			}
		})
	}

	w := startFeedWatcherEnv(t, env)
	eventually(t, "the open feed's warning", 10*time.Second, func() bool {
		return strings.Contains(w.logs(), `"level":"WARN","msg":"the change feed is open to anyone who reaches its port`)
	})
	if n := strings.Count(w.logs(), "open to anyone"); n != 1 || !strings.Contains(w.logs(), `"tokens":0}`) {
		t.Errorf("%d open-feed warnings, want 1, and tokens 0:\n%s", n, w.logs())
	}
}

// childEnv, the app's environment in both exec modes (replaced by the app,
// or supervising it), leaves out the feed's tokens.
func TestChildEnvLeavesOutTheFeedTokens(t *testing.T) {
	t.Setenv(feed.TokenEnv, tokenNow)
	t.Setenv(feed.TokenPreviousEnv, tokenPrev)
	t.Setenv("AGENT_TEST_KEPT", "kept")
	env, err := childEnv(&config.Settings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(env, "\n")
	if !strings.Contains(joined, "AGENT_TEST_KEPT=kept") {
		t.Errorf("the app's environment lost an ordinary variable")
	}
	for _, name := range []string{feed.TokenEnv, feed.TokenPreviousEnv} {
		if strings.Contains(joined, name+"=") {
			t.Errorf("the app's environment has %s", name)
		}
	}
}
