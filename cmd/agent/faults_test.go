package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fault is what a faultProxy does to the requests it forwards.
type fault string

const (
	faultNone      fault = ""
	faultHang      fault = "hang"      // never answers (a network blackhole)
	fault5xx       fault = "5xx"       // 503 ServiceUnavailable
	faultThrottle  fault = "throttle"  // 400 ThrottlingException
	faultMalformed fault = "malformed" // 200 with a body that is not the API's JSON
	faultDown      fault = "down"      // connection refused (the listener is closed)
)

// faultProxy stands between the agent and the fake (the AWS API or the
// credentials endpoint) and injects one fault at a time. Credentials it
// passes through expire within a second, so a refresh fetches them again.
type faultProxy struct {
	mu     sync.Mutex
	mode   fault
	held   int // requests hanging now
	srv    *httptest.Server
	target *url.URL
	hung   chan struct{} // closed at cleanup: releases hung requests
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{target: u, hung: make(chan struct{})}
	rp := &httputil.ReverseProxy{
		// The Host header stays the one the agent signed (SigV4 covers it).
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.URL.Path = r.In.URL.Path; r.Out.Host = r.In.Host },
		ModifyResponse: func(resp *http.Response) error {
			if !strings.Contains(resp.Request.URL.Path, "/credentials/") || resp.StatusCode != 200 {
				return nil
			}
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				return err
			}
			body["Expiration"] = time.Now().Add(time.Second).UTC().Format(time.RFC3339)
			b, _ := json.Marshal(body)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Del("Content-Length")
			return nil
		},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.get() {
		case faultHang:
			p.mu.Lock()
			p.held++
			p.mu.Unlock()
			defer func() { p.mu.Lock(); p.held--; p.mu.Unlock() }()
			select {
			case <-r.Context().Done():
			case <-p.hung:
			}
			return
		case fault5xx:
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(503)
			_, _ = io.WriteString(w, `{"__type":"ServiceUnavailable","message":"service unavailable"}`)
			return
		case faultThrottle:
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
			return
		case faultMalformed:
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			_, _ = io.WriteString(w, `<html>captive portal</html>`)
			return
		case faultDown:
			// Hijack and close: the closest to a refused connection on a
			// listener that must stay open for recovery.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
				}
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(p.hung); p.srv.Close() })
	return p
}

func (p *faultProxy) set(m fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

func (p *faultProxy) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

func (p *faultProxy) get() fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// faultEnv is the fake's environment with the API and the credentials
// endpoint behind proxies.
func faultEnv(t *testing.T, f *fixture) (env []string, api, creds *faultProxy) {
	t.Helper()
	env = f.fake.Env(region)
	api = newFaultProxy(t, f.fake.URL)
	cu, err := url.Parse(f.fake.CredentialsURL)
	if err != nil {
		t.Fatal(err)
	}
	creds = newFaultProxy(t, cu.Scheme+"://"+cu.Host)
	env = withEnv(env, "AWS_ENDPOINT_URL", api.srv.URL)
	env = withEnv(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI", creds.srv.URL+cu.Path)
	return env, api, creds
}

// fullDisk mounts a small tmpfs and fills it, for the disk-full cells; it
// skips where mounting is not allowed. free gives the space back.
func fullDisk(t *testing.T) (dir string, free func()) {
	t.Helper()
	dir = t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("disk-full cells need to mount a tmpfs (root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir, func() { _ = os.Remove(filepath.Join(dir, "filler")) }
}

func fill(t *testing.T, dir string) {
	t.Helper()
	fh, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := fh.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestFaultMatrix runs the sidecar through each fault at its first render
// and during refresh, and checks the files, the readiness, the metrics and
// the cause its log states.
func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	const conf = `{"secrets":[{"name":"A","valueFrom":"/a"}],"refresh":{"interval":"1s","jitter":"100ms","maxStale":"2s"}}`
	for _, tc := range []struct {
		fault fault
		creds bool           // the fault hits the credentials endpoint
		cause *regexp.Regexp // what the log must say
	}{
		{faultHang, false, regexp.MustCompile(`(Timeout|NoAnswer): no answer`)},
		{fault5xx, false, regexp.MustCompile(`ServiceUnavailable`)},
		{faultThrottle, false, regexp.MustCompile(`ThrottlingException`)},
		{faultMalformed, false, regexp.MustCompile(`BadResponse: the ssm endpoint in us-east-1 sent a response that could not be read`)},
		{faultDown, true, regexp.MustCompile(`CredentialsUnavailable: could not reach the container credentials endpoint`)},
		{fault5xx, true, regexp.MustCompile(`CredentialsUnavailable: the container credentials endpoint answered 503`)},
	} {
		name := string(tc.fault)
		if tc.creds {
			name = "credentials-" + name
		}
		t.Run(name+"/first-render", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.fake.PutParameter(region, "/a", f.value("a"), true)
			env, api, creds := faultEnv(t, f)
			if tc.creds {
				creds.set(tc.fault)
			} else {
				api.set(tc.fault)
			}
			s := startSidecar(t, append(env, "AGENT_CONFIG="+conf), "--output-dir", f.out, "--timeout", "4s")
			if code, _ := s.get(t, "/readyz"); code != 503 {
				t.Errorf("/readyz = %d before a first render", code)
			}
			select {
			case <-s.exited:
			case <-time.After(40 * time.Second):
				t.Fatalf("still running long after its start-up deadline\n%s", s.logs())
			}
			if ee, ok := s.exitErr.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("exit %v, want 1", s.exitErr)
			}
			if _, err := os.Stat(filepath.Join(f.out, "A")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file without a complete first render: %v", err)
			}
			if !tc.cause.MatchString(s.logs()) {
				t.Errorf("log does not state the cause %s:\n%s", tc.cause, s.logs())
			}
			assertNoSecrets(t, "stderr", s.logs(), f.secrets)
		})
		t.Run(name+"/refresh", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			v := f.value("a")
			f.fake.PutParameter(region, "/a", v, true)
			env, api, creds := faultEnv(t, f)
			s := startSidecar(t, append(env, "AGENT_CONFIG="+conf), "--output-dir", f.out)
			eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
			before, _ := os.Stat(filepath.Join(f.out, "A"))
			if tc.creds {
				creds.set(tc.fault)
			} else {
				api.set(tc.fault)
			}
			eventually(t, "stale", 40*time.Second, func() bool { return s.metric(t, `ecs_secrets_agent_secret_stale{name="A"}`) == 1 })
			eventually(t, "not ready", 40*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 503 })
			if code, body := s.get(t, "/healthz"); code != 200 {
				t.Errorf("/healthz = %d %q during the fault: health must not fail on staleness", code, body)
			}
			after, _ := os.Stat(filepath.Join(f.out, "A"))
			assertFile(t, filepath.Join(f.out, "A"), v, 0o444)
			if !os.SameFile(before, after) {
				t.Error("the file was rewritten during the fault")
			}
			if !tc.cause.MatchString(s.logs()) {
				t.Errorf("log does not state the cause %s:\n%s", tc.cause, s.logs())
			}
			api.set(faultNone)
			creds.set(faultNone)
			eventually(t, "ready again", 40*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
			s.stop(t)
			assertNoSecrets(t, "stderr", s.logs(), f.secrets)
		})
	}

	t.Run("disk-full/first-render", func(t *testing.T) {
		t.Parallel()
		dir, _ := fullDisk(t)
		fill(t, dir)
		f := newFixture(t)
		f.fake.PutParameter(region, "/a", f.value("a"), true)
		s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+conf), "--output-dir", filepath.Join(dir, "out"), "--timeout", "3s")
		select {
		case <-s.exited:
		case <-time.After(40 * time.Second):
			t.Fatalf("still running long after its start-up deadline\n%s", s.logs())
		}
		if ee, ok := s.exitErr.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("exit %v, want 1", s.exitErr)
		}
		if !strings.Contains(s.logs(), "no space left on device") {
			t.Errorf("log does not say the disk is full:\n%s", s.logs())
		}
	})
	t.Run("disk-full/refresh", func(t *testing.T) {
		t.Parallel()
		dir, free := fullDisk(t)
		out := filepath.Join(dir, "out")
		f := newFixture(t)
		v := f.value("a")
		f.fake.PutParameter(region, "/a", v, true)
		s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+conf), "--output-dir", out)
		eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
		fill(t, dir)
		v2 := f.value("a2")
		f.fake.PutParameter(region, "/a", v2, true)
		eventually(t, "render failing", 30*time.Second, func() bool { return s.metric(t, "ecs_secrets_agent_render_failing") == 1 })
		if got := s.metric(t, "ecs_secrets_agent_change_pending"); got != 1 {
			t.Errorf("change_pending = %v, want 1", got)
		}
		eventually(t, "not ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 503 })
		if _, body := s.get(t, "/readyz"); !strings.Contains(body, "files do not hold the latest values") || !strings.Contains(body, "no space left on device") {
			t.Errorf("/readyz does not say why: %q", body)
		}
		if code, _ := s.get(t, "/healthz"); code != 200 {
			t.Errorf("/healthz = %d with a full disk", code)
		}
		assertFile(t, filepath.Join(out, "A"), v, 0o444)
		free()
		eventually(t, "rendered", 30*time.Second, func() bool { return s.metric(t, "ecs_secrets_agent_render_failing") == 0 })
		assertFile(t, filepath.Join(out, "A"), v2, 0o444)
		if got := s.metric(t, `ecs_secrets_agent_secret_changes_total{name="A"}`); got != 1 {
			t.Errorf("changes_total = %v, want 1", got)
		}
		s.stop(t)
		assertNoSecrets(t, "stderr", s.logs(), f.secrets)
	})
	t.Run("directory-removed/first-render", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t) // f.out does not exist yet
		v := f.value("a")
		f.fake.PutParameter(region, "/a", v, true)
		s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+conf), "--output-dir", f.out)
		eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
		assertFile(t, filepath.Join(f.out, "A"), v, 0o444)
		s.stop(t)
	})
	t.Run("directory-removed/refresh", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		v := f.value("a")
		f.fake.PutParameter(region, "/a", v, true)
		s := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+conf), "--output-dir", f.out)
		eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
		if err := os.RemoveAll(f.out); err != nil {
			t.Fatal(err)
		}
		eventually(t, "directory recreated", 30*time.Second, func() bool {
			b, err := os.ReadFile(filepath.Join(f.out, "A"))
			return err == nil && string(b) == v
		})
		assertFile(t, filepath.Join(f.out, "A"), v, 0o444)
		if code, _ := s.get(t, "/readyz"); code != 200 {
			t.Errorf("/readyz = %d after the directory came back", code)
		}
		s.stop(t)
		assertNoSecrets(t, "stderr", s.logs(), f.secrets)
	})
}

// SIGTERM while init waits on AWS is a stop: the log must not blame AWS or
// the start-up deadline.
func TestInitStoppedBySIGTERMSaysSo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	env, api, _ := faultEnv(t, f)
	api.set(faultHang)
	cmd := exec.Command(agentBin, "init", "--output-dir", f.out, "--secret", "A=/a")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the call is in flight (it hangs at the proxy), then stop.
	eventually(t, "a call in flight", 30*time.Second, func() bool { return api.inFlight() > 0 })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit %v, want 1", err)
	}
	logs := stderr.String()
	if !strings.Contains(logs, "stopped before every secret was resolved; nothing was written") {
		t.Errorf("no stop line:\n%s", logs)
	}
	if strings.Contains(logs, "deadline") || strings.Contains(logs, "Timeout") {
		t.Errorf("a stop was reported as a timeout:\n%s", logs)
	}
	assertNoSecrets(t, "stderr", logs, f.secrets)
}
