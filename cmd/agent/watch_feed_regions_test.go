package main

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// withoutEnv is env without key.
func withoutEnv(env []string, key string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}

// The feed's regions: the flag and feedRegions are checked alike, need the
// feed, and a watcher that cannot tell its own region must be given them.
func TestWatchFeedRegionsUsage(t *testing.T) {
	f := newFixture(t)
	env := f.fake.Env(region)
	noRegion := withoutEnv(env, "AWS_REGION") // and no task metadata
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"flag without the feed", env, []string{"watch", "--cluster", "prod", "--service", "web", "--feed-regions", "eu-west-1"},
			"agent watch: --feed-regions needs --feed-addr (or feedAddr): they are the regions the change feed serves"},
		{"config without the feed", withEnv(env, "AGENT_CONFIG", `{"services":[{"cluster":"prod","service":"web"}],"feedRegions":["eu-west-1"]}`), []string{"watch"},
			"agent watch: --feed-regions needs --feed-addr (or feedAddr): they are the regions the change feed serves"},
		{"flag not a region", env, []string{"watch", "--feed-addr", "127.0.0.1:0", "--feed-regions", "eu-west-1,Europe"},
			`agent watch: --feed-regions: "Europe" is not an AWS region ("eu-west-1")`},
		{"config not a region", withEnv(env, "AGENT_CONFIG", `{"feedAddr":"127.0.0.1:0","feedRegions":["eu-west-1","Europe"]}`), []string{"watch"},
			`"msg":"invalid configuration: feedRegions: \"Europe\" is not an AWS region (\"eu-west-1\")"`}, // a JSON log line
		{"own region unknown", noRegion, []string{"watch", "--feed-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
			"agent watch: the change feed serves the watcher's own region by default, and --region is not given and ECS_CONTAINER_METADATA_URI_V4 is not set (not running in an ECS task): " +
				"pass --feed-regions (or feedRegions) with the regions it serves, e.g. --feed-regions eu-west-1,us-east-1, or --region"},
		{"own region malformed", withEnv(env, "AWS_REGION", "local"), []string{"watch", "--feed-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
			`agent watch: the change feed serves the watcher's own region by default, and "local" is not an AWS region ("eu-west-1"): pass --feed-regions (or feedRegions), or a valid --region or AWS_REGION`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runAgent(t, tt.env, f.secrets, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", r.code, r.stderr, tt.want)
			}
			if strings.Contains(r.stderr, "serving the change feed") {
				t.Error("served the feed anyway")
			}
		})
	}
	if n := len(f.fake.CallLog()); n != 0 {
		t.Errorf("%d AWS calls from watchers that should not start", n)
	}
}

// The feed serves the watcher's own region by default, else the regions
// of --feed-regions or feedRegions, which agree; a ref in another region
// gets an error in the answer, and the watcher never calls that region.
func TestWatchFeedRegions(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/app/key", f.value("key"), true)
	euARN := f.fake.PutSecretString("eu-west-1", "app/db", f.value("db"))
	westARN := f.fake.PutSecretString("us-west-2", "app/other", f.value("other"))
	env := f.fake.Env(region)
	const both = `["` + region + `","eu-west-1"]`
	notServed := func(r, served string) string {
		return "region " + r + " is not served by this feed (--feed-regions " + served + ")"
	}
	for _, tt := range []struct {
		name    string
		env     []string
		args    []string
		regions string            // in the log line
		errs    map[string]string // each ref's error
	}{
		{"default: the watcher's own", env, nil, `["` + region + `"]`, map[string]string{
			"/app/key": "", euARN: notServed("eu-west-1", region), westARN: notServed("us-west-2", region),
		}},
		{"flag", withoutEnv(env, "AWS_REGION"), []string{"--feed-regions", region + ",eu-west-1"}, both, map[string]string{
			"/app/key": "", euARN: "", westARN: notServed("us-west-2", region+",eu-west-1"),
		}},
		{"config", withEnv(withoutEnv(env, "AWS_REGION"), "AGENT_CONFIG", `{"feedRegions":`+both+`}`), nil, both, map[string]string{
			"/app/key": "", euARN: "", westARN: notServed("us-west-2", region+",eu-west-1"),
		}},
		{"flag over config", withEnv(env, "AGENT_CONFIG", `{"feedRegions":["us-west-2"]}`), []string{"--feed-regions", region + ",eu-west-1"}, both, map[string]string{
			"/app/key": "", euARN: "", westARN: notServed("us-west-2", region+",eu-west-1"),
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.fake.ResetCounts()
			w := startFeedWatcherEnv(t, tt.env, tt.args...)
			if !strings.Contains(w.logs(), `"path":"/v1/changes","regions":`+tt.regions) {
				t.Errorf("log does not say the regions %s:\n%s", tt.regions, w.logs())
			}
			// A bare name resolves in the request's region.
			body, _ := json.Marshal(map[string]any{"region": region, "wait": "10s",
				"refs": map[string]string{"/app/key": "", euARN: "", westARN: ""}})
			code, answer := w.ask(t, "POST", string(body))
			r := decodeAnswer(t, answer)
			if code != 200 || !slices.Equal(slices.Sorted(maps.Keys(r.Refs)), slices.Sorted(maps.Keys(tt.errs))) {
				t.Fatalf("answer %d %s", code, answer)
			}
			for ref, want := range tt.errs {
				st := r.Refs[ref]
				if st.Error != want || (want == "") != (st.Version != "") {
					t.Errorf("%s: %+v, want error %q", ref, st, want)
				}
			}
			refused := 0
			for _, e := range tt.errs {
				if e != "" {
					refused++
				}
			}
			if got := w.metric(t, "ecs_secrets_agent_feed_refused_references_total"); got != float64(refused) {
				t.Errorf("refused references %v, want %d", got, refused)
			}
			if got := w.metric(t, "ecs_secrets_agent_feed_tracked_references"); got != float64(len(tt.errs)-refused) {
				t.Errorf("tracked references %v, want %d", got, len(tt.errs)-refused)
			}
			w.stop(t)
			for _, c := range f.fake.CallLog() {
				if tt.errs[westARN] != "" && c.Region == "us-west-2" || tt.errs[euARN] != "" && c.Region == "eu-west-1" {
					t.Errorf("the watcher called a region it does not serve: %+v", c)
				}
			}
			if strings.Contains(w.logs(), "us-west-2") {
				t.Errorf("a refused ref reached the log:\n%s", w.logs())
			}
			assertOnlyMetadataRead(t, f)
			assertNoSecrets(t, "stderr", w.logs(), f.secrets)
		})
	}
}

// An agent on the feed whose secret lives in a region the feed does not
// serve polls that secret itself, and gets its rotation; the feed still
// covers the rest, and the watcher never calls the other region.
func TestFeedClientPollsAnUnservedRegionItself(t *testing.T) {
	const agentInterval = 3 * time.Second
	f := newFixture(t)
	f.fake.PutParameter(region, "/app/key", f.value("key1"), true)
	euARN := f.fake.PutSecretString("eu-west-1", "app/db", f.value("db1"))
	env := f.fake.Env(region)
	w := startFeedWatcherEnv(t, env) // serves us-east-1 only

	dir := filepath.Join(t.TempDir(), "secrets")
	cfg, _ := json.Marshal(map[string]any{
		"outputDir": dir,
		"secrets": []map[string]any{
			{"name": "KEY", "valueFrom": "/app/key", "file": "key"},
			{"name": "DB", "valueFrom": euARN, "file": "db"},
		},
	})
	a := startSidecar(t, withEnv(env, "AGENT_CONFIG", string(cfg)), "--interval", agentInterval.String(), "--feed", "http://"+w.feedAddr)
	eventually(t, "the agent on the feed", 30*time.Second, func() bool { return a.source(t) == "feed" })
	eventually(t, "a refused ref", 30*time.Second, func() bool {
		return w.metric(t, "ecs_secrets_agent_feed_refused_references_total") >= 1
	})

	// The cross-region secret rotates: the agent's own poll finds it.
	v := f.value("db2")
	f.fake.PutSecretString("eu-west-1", "app/db", v)
	eventually(t, "the rotated cross-region secret", 30*time.Second, func() bool { return readFileOr(filepath.Join(dir, "db")) == v })
	// The served parameter rotates: told by the feed.
	k := f.value("key2")
	f.fake.PutParameter(region, "/app/key", k, true)
	eventually(t, "the rotated parameter", 30*time.Second, func() bool { return readFileOr(filepath.Join(dir, "key")) == k })

	if got := a.source(t); got != "feed" {
		t.Errorf("agent source %q, want feed: a refused ref is not a failing feed", got)
	}
	// The agent polled the secret (DescribeSecret); the watcher did not.
	if n := a.apiCalls(t, "DescribeSecret"); n == 0 {
		t.Error("the agent never polled the cross-region secret")
	}
	if n := w.apiCalls(t, "DescribeSecret"); n != 0 {
		t.Errorf("the watcher made %d DescribeSecret calls for a region it does not serve", n)
	}
	if got := w.metric(t, "ecs_secrets_agent_feed_tracked_references"); got != 1 {
		t.Errorf("the watcher tracks %v references, want the served parameter only", got)
	}
	for _, c := range f.fake.CallLog() {
		if c.Region == "eu-west-1" && c.Op != "DescribeSecret" && c.Op != "GetSecretValue" {
			t.Errorf("unexpected call in eu-west-1: %+v", c)
		}
	}
	a.stop(t)
	w.stop(t)
	assertNoSecrets(t, "agent log", a.logs(), f.secrets)
	assertNoSecrets(t, "watcher log", w.logs(), f.secrets)
}
