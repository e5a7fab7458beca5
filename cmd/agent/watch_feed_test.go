package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
)

// feedWatcher is `agent watch --feed-addr 127.0.0.1:0` and the bodies of
// every feed answer it gave, for the scans.
type feedWatcher struct {
	*sidecar
	feedAddr string
	mu       sync.Mutex
	bodies   strings.Builder
}

func startFeedWatcher(t *testing.T, f *fixture, args ...string) *feedWatcher {
	t.Helper()
	return startFeedWatcherEnv(t, f.fake.Env(region), args...)
}

// startFeedWatcherEnv is startFeedWatcher with exactly env.
func startFeedWatcherEnv(t *testing.T, env []string, args ...string) *feedWatcher {
	t.Helper()
	cmd := exec.Command(agentBin, append([]string{"watch", "--feed-addr", "127.0.0.1:0", "--interval", "1s", "--metrics-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = env
	w := &feedWatcher{sidecar: startAgentCmd(t, cmd)}
	re := regexp.MustCompile(`"msg":"serving the change feed","addr":"([^"]+)","path":"/v1/changes","regions":\[`)
	eventually(t, "the feed's address", 30*time.Second, func() bool {
		m := re.FindStringSubmatch(w.logs())
		if m != nil {
			w.feedAddr = m[1]
		}
		return m != nil
	})
	return w
}

// ask posts a request body to the feed and returns the status and body.
func (w *feedWatcher) ask(t *testing.T, method, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+w.feedAddr+feed.Path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	w.mu.Lock()
	w.bodies.Write(b)
	w.mu.Unlock()
	return resp.StatusCode, string(b)
}

func decodeAnswer(t *testing.T, body string) feed.Response {
	t.Helper()
	var r feed.Response
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return r
}

// assertOnlyMetadataRead fails on any call that reads a value.
func assertOnlyMetadataRead(t *testing.T, f *fixture) {
	t.Helper()
	for _, c := range f.fake.CallLog() {
		if c.Op == "GetSecretValue" || (c.Op == "GetParameters" && c.WithDecryption) {
			t.Errorf("the feed read a value: %+v", c)
		}
	}
}

func TestWatchServesTheFeed(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/db", f.value("db"), true)
	api := f.fake.PutSecretString(region, "api", f.value("api"))
	w := startFeedWatcher(t, f)
	if code, body := w.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz %d %s with the feed alone", code, body)
	}

	// First ask: told both versions, as AWS gives them to a client.
	both := func(db, apiVersion, wait string) string {
		return `{"region":"` + region + `","wait":"` + wait + `","refs":{"/db":"` + db + `","` + api + `:password::":"` + apiVersion + `"}}`
	}
	code, body := w.ask(t, "POST", both("", "", "10s"))
	r := decodeAnswer(t, body)
	apiVersion := f.fake.SecretVersionID(region, "api", "AWSCURRENT")
	if code != 200 || r.Refs["/db"].Version != "1" || r.Refs[api+":password::"].Version != apiVersion ||
		strings.Join(r.Changed, ",") != "/db,"+api+":password::" || r.Interval != "1s" {
		t.Fatalf("first answer %d %s", code, body)
	}

	// Held while up to date, answered when the parameter changes.
	held := make(chan string, 1)
	go func() { _, b := w.ask(t, "POST", both("1", apiVersion, "60s")); held <- b }()
	eventually(t, "the request held", 10*time.Second, func() bool {
		return w.metric(t, "ecs_secrets_agent_feed_held_requests") == 1
	})
	t0 := time.Now()
	f.fake.PutParameter(region, "/db", f.value("db2"), true)
	select {
	case body = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer 10s after the change (interval 1s)")
	}
	r = decodeAnswer(t, body)
	if r.Refs["/db"].Version != "2" || strings.Join(r.Changed, ",") != "/db" {
		t.Errorf("after the change: %s", body)
	}
	t.Logf("change told after %s", time.Since(t0).Round(time.Millisecond))

	// Malformed: a reason, and a metric by code.
	if code, body := w.ask(t, "GET", ""); code != 405 || !strings.Contains(body, `"error":"method GET`) {
		t.Errorf("GET: %d %s", code, body)
	}
	if code, body := w.ask(t, "POST", `{"region":"`+region+`","refs":{"arn:aws:s3:::b":""}}`); code != 400 || !strings.Contains(body, `invalid valueFrom`) {
		t.Errorf("bad valueFrom: %d %s", code, body)
	}
	for code, want := range map[string]float64{"200": 2, "400": 1, "405": 1} {
		if got := w.metric(t, `ecs_secrets_agent_feed_requests_total{code="`+code+`"}`); got != want {
			t.Errorf("feed_requests_total{code=%q} %v, want %v", code, got, want)
		}
	}
	if got := w.metric(t, "ecs_secrets_agent_feed_tracked_references"); got != 2 {
		t.Errorf("tracked %v, want 2", got)
	}

	// SIGTERM answers a held request and exits cleanly.
	go func() { _, b := w.ask(t, "POST", both("2", apiVersion, "60s")); held <- b }()
	eventually(t, "the request held", 10*time.Second, func() bool {
		return w.metric(t, "ecs_secrets_agent_feed_held_requests") == 1
	})
	if d := w.stop(t); d > 5*time.Second {
		t.Errorf("stopped in %s", d)
	}
	if body := <-held; !strings.Contains(body, `"changed":[]`) {
		t.Errorf("held request at SIGTERM: %q", body)
	}
	assertOnlyMetadataRead(t, f)
	assertNoSecrets(t, "stderr", w.logs(), f.secrets)
	w.mu.Lock()
	assertNoSecrets(t, "feed answers", w.bodies.String(), f.secrets)
	w.mu.Unlock()
}

// With services too, the rotation watcher runs alongside the feed: one
// rotation, exactly one redeploy, and the feed's client told.
func TestWatchFeedWithServiceRedeploysOnce(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/shared", f.value("shared"), true)
	f.fake.CreateService(region, "prod", "web", taskDef(f, "web", "/shared"))
	w := startFeedWatcher(t, f, "--cluster", "prod", "--service", "web")
	eventually(t, "two cycles", 30*time.Second, func() bool { return f.fake.Calls("DescribeServices") >= 2 })
	// The feed's first read of a new reference answers a held request (the
	// client learns it is covered): wait for it, so the held request below
	// is answered by the rotation alone.
	eventually(t, "the feed's first read of /shared", 30*time.Second, func() bool {
		_, b := w.ask(t, "POST", `{"region":"`+region+`","wait":"0s","refs":{"/shared":"1"}}`)
		return decodeAnswer(t, b).Refs["/shared"].Version == "1"
	})

	held := make(chan string, 1)
	go func() {
		_, b := w.ask(t, "POST", `{"region":"`+region+`","wait":"60s","refs":{"/shared":"1"}}`)
		held <- b
	}()
	eventually(t, "the request held", 10*time.Second, func() bool {
		return w.metric(t, "ecs_secrets_agent_feed_held_requests") == 1
	})
	f.fake.PutParameter(region, "/shared", f.value("shared2"), true)
	eventually(t, "a redeploy", 30*time.Second, func() bool { return f.fake.Calls("UpdateService") >= 1 })
	select {
	case b := <-held:
		if r := decodeAnswer(t, b); r.Refs["/shared"].Version != "2" || strings.Join(r.Changed, ",") != "/shared" {
			t.Errorf("feed answer after the rotation: %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Error("the feed did not tell of the rotation")
	}
	polls := f.fake.Calls("DescribeServices")
	eventually(t, "two quiet cycles", 30*time.Second, func() bool { return f.fake.Calls("DescribeServices") >= polls+2 })
	w.stop(t)
	if n := f.fake.Calls("UpdateService"); n != 1 {
		t.Errorf("%d UpdateService calls for one rotation, want 1", n)
	}
	assertOnlyMetadataRead(t, f)
	assertNoSecrets(t, "stderr", w.logs(), f.secrets)
}

func TestWatchFeedFlagsAndConfig(t *testing.T) {
	f := newFixture(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"nothing to do", []string{"watch"}, 2, "watch: no services and no feed: give --cluster and --service, services in --config/AGENT_CONFIG, or --feed-addr"},
		{"no clients allowed", []string{"watch", "--feed-addr", "127.0.0.1:0", "--feed-max-clients", "0"}, 2, "watch: --feed-max-clients and --feed-max-refs must be 1 or more"},
		{"address in use", []string{"watch", "--feed-addr", busy.Addr().String(), "--metrics-addr", "127.0.0.1:0"}, 1, "serving the change feed on " + busy.Addr().String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runAgent(t, f.fake.Env(region), f.secrets, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}

	// feedAddr from the configuration file, and the feed's 1m default interval.
	cmd := exec.Command(agentBin, "watch")
	cmd.Env = append(f.fake.Env(region), `AGENT_CONFIG={"feedAddr":"127.0.0.1:0","metricsAddr":"127.0.0.1:0"}`)
	w := startAgentCmd(t, cmd)
	eventually(t, "the feed served", 30*time.Second, func() bool {
		return strings.Contains(w.logs(), `"msg":"serving the change feed"`) &&
			strings.Contains(w.logs(), `"msg":"watching","services":0,"region":"`+region+`","interval":"1m0s"`)
	})
	w.stop(t)
}
