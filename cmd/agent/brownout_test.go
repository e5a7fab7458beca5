package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// health runs `agent health --addr ADDR [args…]` and returns its exit code
// and output, failing the test if a seeded value shows up in it.
func (f *fixture) health(t *testing.T, addr string, args ...string) result {
	t.Helper()
	return runAgent(t, []string{}, f.secrets, append([]string{"health", "--addr", addr}, args...)...)
}

// staleAges parses /readyz's detail: how long each stale secret has been
// stale, as the agent itself counts it.
var staleLine = regexp.MustCompile(`(?m)^secret (\S+) stale for (\S+) \(([^)]*)\), limit (\S+)`)

func staleAges(t *testing.T, body string) map[string]time.Duration {
	t.Helper()
	ages := map[string]time.Duration{}
	for _, m := range staleLine.FindAllStringSubmatch(body, -1) {
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("/readyz line %q: %v", m[0], err)
		}
		ages[m[1]] = d
	}
	return ages
}

// An AWS brownout or a task role without DescribeSecret, for 3 × maxStale
// after the first render: the container health check (`agent health`) keeps
// passing, so ECS does not replace a task whose files are good; the stale
// metric, /readyz and `agent health --ready` (the opt-in) show the failure;
// the files stay byte for byte; and all of it recovers when AWS does.
func TestHealthSurvivesAWSFailurePastMaxStale(t *testing.T) {
	const maxStale = 2 * time.Second
	tests := []struct {
		name   string
		fault  func(op string) *awsfake.APIError
		stale  []string // the secrets the fault makes stale
		fresh  []string // the secrets it leaves alone
		reason string
	}{
		{
			name: "brownout",
			fault: func(string) *awsfake.APIError {
				return &awsfake.APIError{Status: 500, Code: "InternalFailure", Message: "internal failure"}
			},
			stale: []string{"API_KEY", "DB_PASSWORD"}, reason: "InternalFailure",
		},
		{
			name: "role lacks DescribeSecret",
			fault: func(op string) *awsfake.APIError {
				if op != "DescribeSecret" {
					return nil
				}
				return &awsfake.APIError{Status: 400, Code: "AccessDeniedException",
					Message: "User: arn:aws:sts::111122223333:assumed-role/task/x is not authorized to perform: secretsmanager:DescribeSecret"}
			},
			stale: []string{"API_KEY"}, fresh: []string{"DB_PASSWORD"}, reason: "AccessDeniedException",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.fake.PutParameter(region, "/app/db", f.value("db"), true)
			apiKey := f.value("api")
			arn := f.fake.PutSecretString(region, "app/api", fmt.Sprintf(`{"key":%q}`, apiKey))
			f.secrets = append(f.secrets, fmt.Sprintf(`{"key":%q}`, apiKey))
			conf, _ := json.Marshal(secretCfg{
				"secrets": []secretCfg{
					{"name": "DB_PASSWORD", "valueFrom": "/app/db"},
					{"name": "API_KEY", "valueFrom": arn + ":key::"},
				},
				"envFile": "secrets.env",
				"refresh": secretCfg{"interval": "1s", "jitter": "100ms", "maxStale": maxStale.String()},
			})
			s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+string(conf)), "--output-dir", f.out)
			eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
			if r := f.health(t, s.addr); r.code != 0 || r.stdout != "healthy\n" {
				t.Fatalf("agent health when ready: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			files := []string{"API_KEY", "DB_PASSWORD", "secrets.env"}
			before := map[string][]byte{}
			inodes := map[string]os.FileInfo{}
			for _, name := range files {
				p := filepath.Join(f.out, name)
				before[name] = []byte(readFile(t, p))
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				inodes[name] = fi
			}

			f.fake.SetFault(tt.fault)
			// Check health at each second of staleness the agent reports,
			// until it is past 3 × maxStale: the checks follow the agent's
			// own clock, not the test's.
			var checks, checksPastLimit int
			lastAge := time.Duration(-1)
			eventually(t, "staleness past 3 × maxStale", 60*time.Second, func() bool {
				code, body := s.get(t, "/readyz")
				ages := staleAges(t, body)
				age, ok := ages[tt.stale[0]]
				if !ok || age <= lastAge {
					return false
				}
				lastAge = age
				r := f.health(t, s.addr)
				if r.code != 0 || r.stdout != "healthy\n" || r.stderr != "" {
					t.Fatalf("agent health with %s stale for %s (/readyz %d): exit %d, stdout %q, stderr %q",
						tt.stale[0], age, code, r.code, r.stdout, r.stderr)
				}
				checks++
				if age > maxStale {
					checksPastLimit++
					if code != 503 {
						t.Fatalf("/readyz = %d with %s stale for %s against a limit of %s", code, tt.stale[0], age, maxStale)
					}
				}
				return age > 3*maxStale
			})
			if checks < 4 || checksPastLimit < 2 {
				t.Errorf("%d health checks, %d past maxStale: want the brownout's whole window covered", checks, checksPastLimit)
			}

			// Past the limit: readiness and the opt-in say so, with why.
			code, body := s.get(t, "/readyz")
			if code != 503 {
				t.Errorf("/readyz = %d, want 503", code)
			}
			ages := staleAges(t, body)
			for _, name := range tt.stale {
				if v := s.metric(t, `ecs_secrets_agent_secret_stale{name="`+name+`"}`); v != 1 {
					t.Errorf("secret_stale{%s} = %v, want 1", name, v)
				}
				if ages[name] <= maxStale {
					t.Errorf("/readyz does not list %s stale past the limit: %q", name, body)
				}
			}
			for _, name := range tt.fresh {
				if v := s.metric(t, `ecs_secrets_agent_secret_stale{name="`+name+`"}`); v != 0 {
					t.Errorf("secret_stale{%s} = %v, want 0", name, v)
				}
				if _, ok := ages[name]; ok {
					t.Errorf("/readyz lists %s, which the fault does not touch: %q", name, body)
				}
			}
			if !strings.Contains(body, "("+tt.reason+"), limit 2s\n") {
				t.Errorf("/readyz does not give the reason %s: %q", tt.reason, body)
			}
			if v := s.metric(t, "ecs_secrets_agent_ready"); v != 0 {
				t.Errorf("ready = %v, want 0", v)
			}
			r := f.health(t, s.addr, "--ready")
			wantErr := regexp.MustCompile(`^not ready: readyz: 503 Service Unavailable: secret ` + tt.stale[0] +
				` stale for \d+s \(` + tt.reason + `\), limit 2s\n`)
			if r.code != 1 || r.stdout != "" || !wantErr.MatchString(r.stderr) {
				t.Errorf("agent health --ready: exit %d, stdout %q, stderr %q; want 1 and %s", r.code, r.stdout, r.stderr, wantErr)
			}
			for _, name := range files {
				p := filepath.Join(f.out, name)
				if got := readFile(t, p); got != string(before[name]) {
					t.Errorf("%s changed during the failure", name)
				}
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if !os.SameFile(inodes[name], fi) {
					t.Errorf("%s was rewritten during the failure", name)
				}
			}

			// Recovery.
			f.fake.SetFault(nil)
			eventually(t, "ready again", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
			for _, name := range tt.stale {
				if v := s.metric(t, `ecs_secrets_agent_secret_stale{name="`+name+`"}`); v != 0 {
					t.Errorf("secret_stale{%s} = %v after recovery, want 0", name, v)
				}
			}
			if code, body := s.get(t, "/readyz"); code != 200 || body != "ready\n" {
				t.Errorf("/readyz after recovery = %d %q", code, body)
			}
			for _, args := range [][]string{nil, {"--ready"}} {
				want := "healthy\n"
				if args != nil {
					want = "ready\n"
				}
				if r := f.health(t, s.addr, args...); r.code != 0 || r.stdout != want {
					t.Errorf("agent health %v after recovery: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
				}
			}
			_, metricsBody := s.get(t, "/metrics")
			assertNoSecrets(t, "/metrics", metricsBody, f.secrets)
			s.stop(t)
			assertNoSecrets(t, "stderr", s.logs(), f.secrets)
		})
	}
}

// `agent health` before the first render fails with why; the container's
// startPeriod covers that time.
func TestHealthFailsBeforeFirstRender(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	f.fake.SetFault(func(string) *awsfake.APIError {
		return &awsfake.APIError{Status: 500, Code: "InternalFailure", Message: "internal failure"}
	})
	s := startSidecar(t, f.fake.Env(region), "--output-dir", f.out, "--secret", "A=/a", "--timeout", "1m")
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{nil, "not healthy: healthz: 503 Service Unavailable: first render not done\n"},
		{[]string{"--ready"}, "not ready: readyz: 503 Service Unavailable: first render not done\n"},
	} {
		if r := f.health(t, s.addr, c.args...); r.code != 1 || r.stdout != "" || r.stderr != c.stderr {
			t.Errorf("agent health %v before the first render: exit %d, stdout %q, stderr %q; want 1, %q",
				c.args, r.code, r.stdout, r.stderr, c.stderr)
		}
	}
	f.fake.SetFault(nil)
	eventually(t, "healthy", 30*time.Second, func() bool { return f.health(t, s.addr).code == 0 })
	s.stop(t)
}

// Idle keep-alive connections to the metrics endpoint, far more than the
// agent's descriptor limit allows, cannot stop a rotation from being written,
// and the server's own complaints are JSON lines like every other.
func TestMetricsConnectionsCannotStarveRotation(t *testing.T) {
	const fdLimit, conns = 64, 100
	f := newFixture(t)
	f.fake.PutParameter(region, "/app/db", f.value("db"), true)
	conf := `{"secrets":[{"name":"DB_PASSWORD","valueFrom":"/app/db"}],"refresh":{"interval":"1s","jitter":"100ms"}}`
	// The shell sets the soft and hard limits, so the Go runtime cannot
	// raise the soft one at start.
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, fdLimit),
		agentBin, "run", "--metrics-addr", "127.0.0.1:0", "--output-dir", f.out)
	cmd.Env = append(f.fake.Env(region), "AGENT_CONFIG="+conf)
	s := startAgentCmd(t, cmd)
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(fmt.Sprintf(`Max open files +%d +%d `, fdLimit, fdLimit)).Match(limits) {
		t.Fatalf("the agent does not run with %d descriptors:\n%s", fdLimit, limits)
	}
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	http.DefaultClient.CloseIdleConnections()

	// Connect, ask once, keep the connection: what a client with keep-alive
	// and no idle timeout of its own does.
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	var open []conn
	t.Cleanup(func() {
		for _, c := range open {
			c.c.Close()
		}
	})
	for range conns {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, conn{c, bufio.NewReader(c)})
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	served, refused, hung := 0, 0, 0
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range open {
		_ = c.c.SetReadDeadline(deadline)
		resp, err := http.ReadResponse(c.br, nil)
		var ne net.Error
		switch {
		case err == nil:
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			served++
		case errors.As(err, &ne) && ne.Timeout():
			hung++
		default:
			refused++
		}
	}
	if limit := status.MaxConns + status.LoopbackReserve; served > limit || served == 0 || hung != 0 {
		t.Errorf("of %d connections: %d served, %d refused, %d hung; want at most %d served and the rest refused at once",
			conns, served, refused, hung, limit)
	}

	// Rotate while the served connections are still open.
	newPass := f.value("db2")
	f.fake.PutParameter(region, "/app/db", newPass, true)
	eventually(t, "the rotated file", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(f.out, "DB_PASSWORD"))
		return string(b) == newPass
	})
	// Every slot was ours; once they are given back the endpoint answers.
	for _, c := range open {
		c.c.Close()
	}
	eventually(t, "the endpoint to answer again", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + s.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if v := s.metric(t, `ecs_secrets_agent_secret_changes_total{name="DB_PASSWORD"}`); v != 1 {
		t.Errorf("secret_changes_total = %v, want 1", v)
	}
	s.stop(t)

	logs := s.logs()
	for _, line := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stderr line is not JSON: %q", line)
		}
	}
	if !strings.Contains(logs, `"msg":"too many connections to the metrics endpoint; refusing more until one closes","limit":`+strconv.Itoa(status.MaxConns)) {
		t.Errorf("no line says connections were refused:\n%s", logs)
	}
	for _, bad := range []string{"too many open files", "Accept error"} {
		if strings.Contains(logs, bad) {
			t.Errorf("stderr says %q:\n%s", bad, logs)
		}
	}
	assertNoSecrets(t, "stderr", logs, f.secrets)
}

// `agent watch` is healthy once its first pass is done, and stays so while
// Parameter Store fails past its limit: the single watcher is not replaced
// for an outage that a replacement could not fix.
func TestWatchHealthSurvivesBrownout(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/shared", f.value("shared"), true)
	f.fake.CreateService(region, "prod", "web", taskDef(f, "web", "/shared"))
	cmd := exec.Command(agentBin, "watch", "--cluster", "prod", "--service", "web", "--interval", "1s", "--metrics-addr", "127.0.0.1:0")
	cmd.Env = f.fake.Env(region)
	s := startAgentCmd(t, cmd)
	eventually(t, "the first pass", 30*time.Second, func() bool { return f.health(t, s.addr).code == 0 })
	if code, body := s.get(t, "/readyz"); code != 200 {
		t.Fatalf("/readyz after the first pass = %d %q", code, body)
	}

	f.fake.SetFault(func(op string) *awsfake.APIError {
		if op != "GetParameters" {
			return nil
		}
		return &awsfake.APIError{Status: 500, Code: "InternalServerError", Message: "internal failure"}
	})
	// The watcher's limit is 3 × interval; check past it, at each second
	// of staleness the watcher reports.
	const limit = 3 * time.Second
	var checks int
	lastAge := time.Duration(-1)
	eventually(t, "staleness past the limit", 60*time.Second, func() bool {
		code, body := s.get(t, "/readyz")
		var age time.Duration
		for _, a := range staleAges(t, body) {
			age = max(age, a)
		}
		if age <= lastAge {
			return false
		}
		lastAge = age
		if r := f.health(t, s.addr); r.code != 0 || r.stdout != "healthy\n" {
			t.Fatalf("agent health with a reference stale for %s (/readyz %d): exit %d, stdout %q, stderr %q",
				age, code, r.code, r.stdout, r.stderr)
		}
		checks++
		return age > limit+time.Second && code == 503
	})
	if checks < 3 {
		t.Errorf("%d health checks during the outage, want at least 3", checks)
	}
	if r := f.health(t, s.addr, "--ready"); r.code != 1 || !strings.HasPrefix(r.stderr, "not ready: readyz: 503 Service Unavailable: ") {
		t.Errorf("agent health --ready past the limit: exit %d, stderr %q", r.code, r.stderr)
	}
	f.fake.SetFault(nil)
	eventually(t, "ready again", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	s.stop(t)
	assertNoSecrets(t, "stderr", s.logs(), f.secrets)
}

// The help says what health checks and how to opt in to failing on staleness.
func TestHealthHelpSaysWhatItChecks(t *testing.T) {
	r := runAgent(t, []string{}, nil, "health", "-h")
	if r.code != 0 {
		t.Fatalf("agent health -h: exit %d", r.code)
	}
	for _, want := range []string{
		"usage: agent health [--ready] [--addr HOST:PORT] [--config FILE] [--timeout D]\n",
		"Exit 0 if the agent is healthy: alive, and its first render done (/healthz).\n",
		"  -ready\n    \task /readyz instead of /healthz: fail when a secret is stale past refresh.maxStale (opt-in)\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("agent health -h does not say %q:\n%s", want, r.stderr)
		}
	}
}
