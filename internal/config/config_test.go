package config

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadSpecExample(t *testing.T) {
	s, err := Load(Flags{ConfigPath: "testdata/spec-example.json"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(s.Secrets), 3; got != want {
		t.Fatalf("secrets = %d, want %d", got, want)
	}
	api := s.Secrets[1]
	if api.File != "api/key.txt" || api.Mode != 0o400 || api.UID != 1000 || api.GID != 1000 || api.Ref.JSONKey != "key" {
		t.Errorf("API_KEY = %+v", api)
	}
	if db := s.Secrets[0]; db.File != "DB_PASSWORD" || db.Mode != 0o444 {
		t.Errorf("DB_PASSWORD file %q mode %v", db.File, db.Mode)
	}
	if rds := s.Secrets[2]; !rds.Expand || rds.File != "" {
		t.Errorf("RDS = %+v", rds)
	}
	if s.Interval != 5*time.Minute || s.Jitter != 30*time.Second || s.MaxStale != 15*time.Minute {
		t.Errorf("interval %s jitter %s", s.Interval, s.Jitter)
	}
	if s.OutputDir != "/run/secrets" || s.EnvFile != "secrets.env" || s.JSONFile != "secrets.json" || len(s.Templates) != 1 || len(s.OnChange) != 4 || s.MetricsAddr != ":9102" {
		t.Errorf("settings = %+v", s)
	}
	if s.Source != "testdata/spec-example.json" {
		t.Errorf("source = %q", s.Source)
	}
}

func TestLoadDefaultsAndFlags(t *testing.T) {
	s, err := Load(Flags{Secrets: []string{"A=/x/a", "B=arn:aws:ssm:eu-west-1:111122223333:parameter/b"}}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.OutputDir != DefaultOutputDir || s.Mode != DefaultMode || s.UID != -1 || s.GID != -1 {
		t.Errorf("defaults = %+v", s)
	}
	if s.Interval != DefaultInterval || s.Jitter != DefaultInterval/10 {
		t.Errorf("interval %s jitter %s", s.Interval, s.Jitter)
	}
	if s.Secrets[1].Ref.Region != "eu-west-1" || s.Secrets[1].File != "B" {
		t.Errorf("B = %+v", s.Secrets[1])
	}

	// Flags override the JSON, and --secret adds to its list.
	s, err = Load(Flags{Secrets: []string{"B=/b"}, OutputDir: "/out", Interval: "10s", MetricsAddr: "127.0.0.1:0"},
		env(map[string]string{"AGENT_CONFIG": `{"secrets":[{"name":"A","valueFrom":"/a"}],"outputDir":"/ignored","refresh":{"interval":"1h"}}`}))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Secrets) != 2 || s.OutputDir != "/out" || s.Interval != 10*time.Second || s.Jitter != time.Second || s.MetricsAddr != "127.0.0.1:0" || s.Source != "AGENT_CONFIG" {
		t.Errorf("merged = %+v", s)
	}
}

func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	ok := `{"name":"A","valueFrom":"/a"}`
	tests := []struct {
		name  string
		flags Flags
		json  string // AGENT_CONFIG
		want  string
	}{
		{"nothing", Flags{}, "", "no secrets configured: give --secret NAME=VALUEFROM, --config FILE or AGENT_CONFIG"},
		{"both sources", Flags{ConfigPath: "x.json"}, `{}`, `both --config "x.json" and AGENT_CONFIG are set: use one`},
		{"missing file", Flags{ConfigPath: missing}, "", `--config: cannot read "` + missing + `": no such file or directory`},
		{"config is a directory", Flags{ConfigPath: "testdata"}, "", `--config: cannot read "testdata": is a directory`},
		{"unknown field", Flags{}, `{"secrets":[` + ok + `],"outptuDir":"/x"}`, `AGENT_CONFIG: outptuDir: unknown field`},
		{"unknown secret field", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","optinal":true}]}`, `AGENT_CONFIG: secrets[0].optinal: unknown field`},
		{"wrong type", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","expand":"ture"}]}`, `AGENT_CONFIG: field "secrets.expand": expected bool, got JSON string`},
		{"trailing data", Flags{}, `{"secrets":[` + ok + `]} {}`, `AGENT_CONFIG: unexpected data after the JSON object`},
		{"syntax", Flags{}, `{"secrets":[`, `AGENT_CONFIG: invalid JSON: unexpected EOF`},
		{"flag without =", Flags{Secrets: []string{"A"}}, "", `--secret "A": want NAME=VALUEFROM`},
		{"missing name", Flags{}, `{"secrets":[{"valueFrom":"/a"}]}`, `secrets[0].name: missing`},
		{"bad name", Flags{}, `{"secrets":[{"name":"DB-PASS","valueFrom":"/a"}]}`, `secrets[0].name: "DB-PASS" is not a valid environment variable name (letters, digits and _, not starting with a digit)`},
		{"name with slash", Flags{}, `{"secrets":[{"name":"a/b","valueFrom":"/a"}]}`, `secrets[0].name: "a/b" is not a valid environment variable name (letters, digits and _, not starting with a digit)`},
		{"name with dots", Flags{Secrets: []string{"..=/a"}}, "", `--secret "..=/a".name: ".." is not a valid environment variable name (letters, digits and _, not starting with a digit)`},
		{"duplicate name", Flags{Secrets: []string{"A=/b"}}, `{"secrets":[` + ok + `]}`, `--secret "A=/b".name: duplicate name "A"`},
		{"missing valueFrom", Flags{}, `{"secrets":[{"name":"A"}]}`, `secrets[0].valueFrom: missing`},
		{"bad valueFrom", Flags{}, `{"secrets":[{"name":"A","valueFrom":"arn:aws:s3:::bucket"}]}`, `secrets[0].valueFrom: invalid valueFrom "arn:aws:s3:::bucket": `},
		{"file escapes", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","file":"../etc/passwd"}]}`, `secrets[0].file: `},
		{"file absolute", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","file":"/etc/passwd"}]}`, `secrets[0].file: `},
		{"same file twice", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","file":"x"},{"name":"B","valueFrom":"/b","file":"x"}]}`, `secrets[1].file: "x" is also written by secrets[0].file`},
		{"envFile is a secret's file", Flags{}, `{"secrets":[` + ok + `],"envFile":"A"}`, `envFile: "A" is also written by secrets[0].file`},
		{"jsonFile escapes", Flags{}, `{"secrets":[` + ok + `],"jsonFile":"a/../../x"}`, `jsonFile: `},
		{"expand with file", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","expand":true,"file":"x"}]}`, `secrets[0].file: not allowed with expand (each key is written to NAME_KEY)`},
		{"expand with key", Flags{}, `{"secrets":[{"name":"A","valueFrom":"arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf:k::","expand":true}]}`, `secrets[0].expand: the reference already selects JSON key "k"; drop the key or expand`},
		{"bad mode", Flags{}, `{"secrets":[` + ok + `],"mode":"rw"}`, `mode: "rw" is not an octal file mode like "0444" or "0400"`},
		{"mode too big", Flags{}, `{"secrets":[` + ok + `],"mode":"4755"}`, `mode: "4755" is not an octal file mode like "0444" or "0400"`},
		{"mode unreadable", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","mode":"0044"}]}`, `secrets[0].mode: "0044" leaves the file unreadable by its owner`},
		{"negative uid", Flags{}, `{"secrets":[` + ok + `],"uid":-1}`, `uid: -1 is negative`},
		{"uid never matches", Flags{}, `{"secrets":[` + ok + `],"uid":4294967295}`, `uid: 4294967295 is out of range: ids go from 0 to 4294967294`},
		{"uid wraps to root", Flags{}, `{"secrets":[` + ok + `],"uid":4294967296}`, `uid: 4294967296 is out of range: ids go from 0 to 4294967294`},
		{"gid wraps to 1000", Flags{}, `{"secrets":[` + ok + `],"gid":4294968296}`, `gid: 4294968296 is out of range: ids go from 0 to 4294967294`},
		{"secret uid wraps to root", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","uid":4294967296}]}`, `secrets[0].uid: 4294967296 is out of range: ids go from 0 to 4294967294`},
		{"secret gid never matches", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","gid":4294967295}]}`, `secrets[0].gid: 4294967295 is out of range: ids go from 0 to 4294967294`},
		{"negative secret gid", Flags{}, `{"secrets":[{"name":"A","valueFrom":"/a","gid":-5}]}`, `secrets[0].gid: -5 is negative`},
		{"template both", Flags{}, `{"secrets":[` + ok + `],"templates":[{"template":"x","source":"y","destination":"d"}]}`, `templates[0]: set template or source, not both`},
		{"template none", Flags{}, `{"secrets":[` + ok + `],"templates":[{"destination":"d"}]}`, `templates[0]: template or source is required`},
		{"template no destination", Flags{}, `{"secrets":[` + ok + `],"templates":[{"template":"x"}]}`, `templates[0].destination: missing`},
		{"template escapes", Flags{}, `{"secrets":[` + ok + `],"templates":[{"template":"x","destination":"../../etc/cron.d/x"}]}`, `templates[0].destination: `},
		{"template syntax", Flags{}, `{"secrets":[` + ok + `],"templates":[{"template":"{{ secret ","destination":"d"}]}`, `templates[0].template: `},
		{"template source missing", Flags{}, `{"secrets":[` + ok + `],"templates":[{"source":"` + missing + `","destination":"d"}]}`, `templates[0].source: cannot read "` + missing + `": no such file or directory`},
		{"template names an undefined secret", Flags{}, `{"secrets":[` + ok + `,{"name":"B","valueFrom":"/b"}],"templates":[{"template":"{{ secret \"A\" }}{{ if true }}{{ key \"DB\" \"password\" }}{{ end }}","destination":"d"}]}`, `templates[0].template: names secret "DB", which is not configured (configured: A, B)`},
		{"template names a key of an unexpanded secret", Flags{}, `{"secrets":[{"name":"J","valueFrom":"/j"}],"templates":[{"template":"{{ secret \"J_k\" }}","destination":"d"}]}`, `templates[0].template: names secret "J_k", which is not configured (configured: J)`},
		{"template same destination", Flags{}, `{"secrets":[` + ok + `],"templates":[{"template":"x","destination":"A"}]}`, `templates[0].destination: "A" is also written by secrets[0].file`},
		{"interval", Flags{}, `{"secrets":[` + ok + `],"refresh":{"interval":"5 minutes"}}`, `refresh.interval: "5 minutes" is not a duration ("30s", "5m")`},
		{"interval too short", Flags{Interval: "500ms"}, `{"secrets":[` + ok + `]}`, `refresh.interval: 500ms is below the minimum of 1s`},
		{"feed not http", Flags{}, `{"secrets":[` + ok + `],"refresh":{"feed":"watcher:8080"}}`, `refresh.feed: "watcher:8080": want http://HOST:PORT (the address agent watch --feed-addr serves)`},
		{"feed flag without host", Flags{Feed: "http:///x"}, `{"secrets":[` + ok + `]}`, `refresh.feed: "http:///x" has no host`},
		{"feed with query", Flags{}, `{"secrets":[` + ok + `],"refresh":{"feed":"http://w:1/?token=hunter2"}}`, `refresh.feed: "http://w:1/?token=xxxxx": no query or fragment, please`},
		{"jitter too big", Flags{}, `{"secrets":[` + ok + `],"refresh":{"interval":"10s","jitter":"10s"}}`, `refresh.jitter: 10s must be less than the interval 10s`},
		{"maxStale too short", Flags{}, `{"secrets":[` + ok + `],"refresh":{"interval":"1m","maxStale":"30s"}}`, `refresh.maxStale: 30s is shorter than the interval 1m0s: every failed refresh would make the agent unready`},
		{"two actions in one", Flags{}, `{"secrets":[` + ok + `],"onChange":[{"signal":{},"http":{"url":"http://x"}}]}`, `onChange[0]: want exactly one of signal, http, redeploy, restart; got 2 (http, signal)`},
		{"empty action", Flags{}, `{"secrets":[` + ok + `],"onChange":[{}]}`, `onChange[0]: want exactly one of signal, http, redeploy, restart; got 0 ()`},
		{"bad signal", Flags{}, `{"secrets":[` + ok + `],"onChange":[{"signal":{"process":"nginx","signal":"SIGFOO"}}]}`, `onChange[0].signal.signal: "SIGFOO" is not one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH`},
		{"signal both targets", Flags{}, `{"secrets":[` + ok + `],"onChange":[{"signal":{"process":"a","pidFile":"b"}}]}`, `onChange[0].signal: set process or pidFile, not both`},
		{"bad url", Flags{}, `{"secrets":[` + ok + `],"onChange":[{"http":{"url":"localhost:8080/reload"}}]}`, `onChange[0].http.url: "localhost:8080/reload" is not an http:// or https:// URL`},
		{"bad expectStatus", Flags{}, `{"secrets":[` + ok + `],"onChange":[{"http":{"url":"http://x/","expectStatus":42}}]}`, `onChange[0].http.expectStatus: 42 is not an HTTP status`},
		{"bad gracePeriod", Flags{}, `{"secrets":[` + ok + `],"onChange":[{"restart":{"gracePeriod":"soon"}}]}`, `onChange[0].restart.gracePeriod: "soon" is not a duration ("30s", "5m")`},
		{"pidFile is a secret", Flags{}, `{"secrets":[{"name":"PIN","valueFrom":"/pin"}],"outputDir":"/run/secrets","onChange":[{"signal":{"pidFile":"/run/secrets/PIN"}}]}`, `onChange[0].signal.pidFile: "/run/secrets/PIN" is inside the output directory /run/secrets, where the agent writes secrets: point it at the app's pid file`},
		{"pidFile under the output directory", Flags{OutputDir: "/out"}, `{"secrets":[` + ok + `],"onChange":[{"signal":{"pidFile":"/out/./app/../x.pid"}}]}`, `onChange[0].signal.pidFile: "/out/./app/../x.pid" is inside the output directory /out, where the agent writes secrets: point it at the app's pid file`},
		{"bad method", Flags{}, `{"secrets":[` + ok + `],"onChange":[{"http":{"url":"http://x/","method":"DELETE"}}]}`, `onChange[0].http.method: "DELETE" is not GET, POST or PUT`},
		{"zero http timeout", Flags{}, `{"secrets":[` + ok + `],"onChange":[{"http":{"url":"http://x/","timeout":"0s"}}]}`, `onChange[0].http.timeout: must be more than 0`},
		{"bad metricsAddr", Flags{MetricsAddr: "9102"}, `{"secrets":[` + ok + `]}`, `metricsAddr: "9102" is not HOST:PORT (":9102", "127.0.0.1:0")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.flags, env(map[string]string{"AGENT_CONFIG": tt.json}))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("error is %T, want *config.Error", err)
			}
			// A want ending in ": " pins the field and leaves the reason to
			// the package that owns it (its own tests assert the exact text).
			if strings.HasSuffix(tt.want, ": ") {
				if !strings.HasPrefix(err.Error(), tt.want) {
					t.Errorf("error\n got %q\nwant prefix %q", err, tt.want)
				}
				return
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err, tt.want)
			}
		})
	}
}

func TestUnreadableConfigFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode; the missing-file case covers the message")
	}
	p := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(p, []byte(`{}`), 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := Load(Flags{ConfigPath: p}, env(nil))
	if want := `--config: cannot read "` + p + `": permission denied`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestModeParsing(t *testing.T) {
	for in, want := range map[string]fs.FileMode{"0444": 0o444, "0400": 0o400, "600": 0o600, "0640": 0o640} {
		got, err := parseMode("mode", in)
		if err != nil || got != want {
			t.Errorf("parseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// TestIDRangeEdges protects the largest valid id: 4294967294 is a real
// uid, one more is chown's "leave as is".
// TestTemplateMayNameExpandedKeys protects templates that read an expanded
// secret's keys as secrets (NAME_KEY): the keys are known only at fetch.
func TestTemplateMayNameExpandedKeys(t *testing.T) {
	js := `{"secrets":[{"name":"J","valueFrom":"/j","expand":true}],"templates":[{"template":"{{ secret \"J_k\" }}{{ key \"J\" \"x\" }}","destination":"d"}]}`
	if _, err := Load(Flags{}, env(map[string]string{"AGENT_CONFIG": js})); err != nil {
		t.Fatal(err)
	}
}

func TestIDRangeEdges(t *testing.T) {
	s, err := Load(Flags{}, env(map[string]string{"AGENT_CONFIG": `{"secrets":[{"name":"A","valueFrom":"/a","gid":0}],"uid":4294967294}`}))
	if err != nil {
		t.Fatal(err)
	}
	if s.UID != 4294967294 || s.Secrets[0].UID != 4294967294 || s.Secrets[0].GID != 0 {
		t.Errorf("uid %d, secret uid %d gid %d", s.UID, s.Secrets[0].UID, s.Secrets[0].GID)
	}
}

// TestURLCredentialsNotShownInConfigErrors protects a reload URL's password
// and query tokens from configuration errors.
func TestURLCredentialsNotShownInConfigErrors(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"ftp://ops:hunter2@app:8080/-/reload?token=s3cr3t&x", `onChange[0].http.url: "ftp://ops:xxxxx@app:8080/-/reload?token=xxxxx&x" is not an http:// or https:// URL`},
		{"app:8080/reload?key=s3cr3t", `onChange[0].http.url: "app:8080/reload?key=xxxxx" is not an http:// or https:// URL`},
		{"http://ops:hunter2@app/%zz?token=s3cr3t", `onChange[0].http.url: (not shown: it does not parse and may hold a password) is not an http:// or https:// URL`},
	} {
		js := `{"secrets":[{"name":"A","valueFrom":"/a"}],"onChange":[{"http":{"url":` + strconv.Quote(tt.url) + `}}]}`
		_, err := Load(Flags{}, env(map[string]string{"AGENT_CONFIG": js}))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error\n got %v\nwant %q", tt.url, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cr3t")) {
			t.Errorf("error shows a credential: %v", err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080/-/reload":                 "http://127.0.0.1:8080/-/reload",
		"https://u:p@h/x?a=1&b=&c#frag":                  "https://u:xxxxx@h/x?a=xxxxx&b=xxxxx&c",
		"http://user@h/":                                 "http://user@h/",
		"http://h/hook?token=abc%20def&token=second&sig": "http://h/hook?token=xxxxx&token=xxxxx&sig",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedactURL(u); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOnChangeParsedOnce protects the typed onChange: defaults filled in and
// values parsed in config, so actions build without re-parsing.
func TestOnChangeParsedOnce(t *testing.T) {
	js := `{"secrets":[{"name":"A","valueFrom":"/a"}],"onChange":[
		{"signal":{"process":"nginx"}},
		{"signal":{"pidFile":"/run/app/app.pid","signal":"sigusr2"}},
		{"http":{"url":"http://127.0.0.1:8080/-/reload?token=t"}},
		{"http":{"url":"https://h/r","method":"GET","expectStatus":204,"timeout":"2s"}},
		{"redeploy":{"cluster":"c"}},
		{"restart":{}},
		{"restart":{"gracePeriod":"30s"}}]}`
	s, err := Load(Flags{}, env(map[string]string{"AGENT_CONFIG": js}))
	if err != nil {
		t.Fatal(err)
	}
	a := s.OnChange
	if len(a) != 7 {
		t.Fatalf("%d actions", len(a))
	}
	if g := a[0].Signal; g == nil || g.Process != "nginx" || g.Signal != syscall.SIGHUP || g.Name != "SIGHUP" {
		t.Errorf("[0] = %+v", g)
	}
	if g := a[1].Signal; g == nil || g.PIDFile != "/run/app/app.pid" || g.Signal != syscall.SIGUSR2 || g.Name != "SIGUSR2" {
		t.Errorf("[1] = %+v", g)
	}
	if h := a[2].HTTP; h == nil || h.Method != "POST" || h.ExpectStatus != 0 || h.Timeout != DefaultHTTPTimeout || h.URL.Host != "127.0.0.1:8080" || h.Redacted() != "http://127.0.0.1:8080/-/reload?token=xxxxx" {
		t.Errorf("[2] = %+v", h)
	}
	if h := a[3].HTTP; h == nil || h.Method != "GET" || h.ExpectStatus != 204 || h.Timeout != 2*time.Second {
		t.Errorf("[3] = %+v", h)
	}
	if r := a[4].Redeploy; r == nil || r.Cluster != "c" || r.Service != "" {
		t.Errorf("[4] = %+v", r)
	}
	if r := a[5].Restart; r == nil || r.GracePeriod != DefaultGracePeriod {
		t.Errorf("[5] = %+v", r)
	}
	if r := a[6].Restart; r == nil || r.GracePeriod != 30*time.Second {
		t.Errorf("[6] = %+v", r)
	}
}

func TestFeedFromFileAndFlag(t *testing.T) {
	ok := `{"name":"A","valueFrom":"/a"}`
	for _, tc := range []struct {
		name, json string
		flags      Flags
		want       string
		refreshSet bool
	}{
		{"file", `{"secrets":[` + ok + `],"refresh":{"feed":"http://feed.internal:8081"}}`, Flags{}, "http://feed.internal:8081", true},
		{"flag overrides", `{"secrets":[` + ok + `],"refresh":{"feed":"http://a:1"}}`, Flags{Feed: "http://b:2"}, "http://b:2", true},
		{"flag alone turns refresh on", `{"secrets":[` + ok + `]}`, Flags{Feed: "https://b:2/prefix"}, "https://b:2/prefix", true},
		{"none", `{"secrets":[` + ok + `]}`, Flags{}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "AGENT_CONFIG" {
					return tc.json
				}
				return ""
			}
			s, err := Load(tc.flags, getenv)
			if err != nil {
				t.Fatal(err)
			}
			if s.Feed != tc.want || s.RefreshSet != tc.refreshSet {
				t.Errorf("Feed %q RefreshSet %v, want %q %v", s.Feed, s.RefreshSet, tc.want, tc.refreshSet)
			}
		})
	}
}
