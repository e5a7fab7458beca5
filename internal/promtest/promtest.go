// Package promtest starts a real Prometheus server for tests: it scrapes a
// target, evaluates rule files, and answers queries. Tests skip where the
// Debian package prometheus is not installed; CI installs it.
package promtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bin is where Debian's prometheus package installs the server.
const Bin = "/usr/bin/prometheus"

// Server is a Prometheus process started for one test.
type Server struct {
	url  string        // http://127.0.0.1:PORT
	done chan struct{} // closed when the process has exited
	logs *syncBuffer
}

// Start runs Bin scraping target (host:port) every second
// as job "ecs-secrets-agent", with ruleFiles (absolute paths) evaluated every
// second, and waits until it is ready. It skips the test when the binary is
// absent and stops the process, with SIGTERM, when the test ends.
func Start(t testing.TB, target string, ruleFiles ...string) *Server {
	t.Helper()
	if _, err := os.Stat(Bin); err != nil {
		t.Skipf("%s not found (install the Debian package prometheus): %v", Bin, err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	var rules strings.Builder
	for _, f := range ruleFiles {
		fmt.Fprintf(&rules, "  - %q\n", f)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
%sscrape_configs:
  - job_name: ecs-secrets-agent
    static_configs:
      - targets: [%q]
`, rules.String(), target)
	if len(ruleFiles) == 0 {
		cfg = strings.Replace(cfg, "rule_files:\n", "", 1)
	}
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	// Prometheus cannot listen on port 0 and report the port, so take a free
	// one and hand it over; another process may grab it in between, hence
	// the retries.
	var lastLogs string
	for attempt := 1; attempt <= 3; attempt++ {
		p, err := run(t, dir, config)
		if err == nil {
			return p
		}
		lastLogs = p.logs.String()
		if !strings.Contains(lastLogs, "address already in use") {
			t.Fatalf("prometheus: %v\n%s", err, lastLogs)
		}
	}
	t.Fatalf("prometheus found no free port in 3 attempts:\n%s", lastLogs)
	return nil
}

func run(t testing.TB, dir, config string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &Server{url: "http://" + addr, done: make(chan struct{}), logs: &syncBuffer{}}
	cmd := exec.Command(Bin,
		"--config.file="+config,
		"--storage.tsdb.path="+filepath.Join(dir, "data-"+strings.ReplaceAll(addr, ":", "-")),
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return // exited by itself; reported where that mattered
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if waitErr != nil {
				t.Errorf("prometheus did not stop cleanly on SIGTERM: %v\n%s", waitErr, p.logs)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
			t.Errorf("prometheus ignored SIGTERM for 15s; killed\n%s", p.logs)
		}
	})

	err = p.poll(t, 30*time.Second, func() (bool, string) {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p, err
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var errExited = errors.New("prometheus exited")

// poll calls check until it reports done, every 100ms, for at most timeout,
// and returns an error if Prometheus exits or time runs out first.
func (p *Server) poll(t testing.TB, timeout time.Duration, check func() (done bool, state string)) error {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := check()
		if done {
			return nil
		}
		select {
		case <-p.done:
			return errExited
		case <-deadline:
			return fmt.Errorf("not within %s; last: %s", timeout, state)
		case <-tick.C:
		}
	}
}

// waitFor waits until the instant query q returns exactly one sample with
// value want.
func (p *Server) WaitFor(t testing.TB, q, want string) {
	t.Helper()
	err := p.poll(t, 30*time.Second, func() (bool, string) {
		got, err := p.Query(q)
		if err != nil {
			return false, err.Error()
		}
		return got == want, "value " + got
	})
	if err != nil {
		t.Fatalf("query %s = %s: %v\n%s", q, want, err, p.logs)
	}
}

// query runs an instant query and returns the single sample's value, or ""
// when the result is empty.
func (p *Server) Query(q string) (string, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := p.getJSON("/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return "", err
	}
	switch {
	case r.Status != "success":
		return "", fmt.Errorf("status %s: %s", r.Status, r.Error)
	case len(r.Data.Result) == 0:
		return "", nil
	case len(r.Data.Result) > 1:
		return "", fmt.Errorf("%d series", len(r.Data.Result))
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v, nil
}

// waitRulesHealthy waits until every rule of group has been evaluated
// without error.
func (p *Server) WaitRulesHealthy(t testing.TB, group string) {
	t.Helper()
	err := p.poll(t, 30*time.Second, func() (bool, string) {
		var r struct {
			Data struct {
				Groups []struct {
					Name  string `json:"name"`
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := p.getJSON("/api/v1/rules", &r); err != nil {
			return false, err.Error()
		}
		for _, g := range r.Data.Groups {
			if g.Name != group {
				continue
			}
			for _, rule := range g.Rules {
				if rule.Health != "ok" {
					return false, fmt.Sprintf("rule %s: %s %s", rule.Name, rule.Health, rule.LastError)
				}
			}
			return len(g.Rules) > 0, "no rules"
		}
		return false, "group not loaded"
	})
	if err != nil {
		t.Fatalf("rule group %s: %v\n%s", group, err, p.logs)
	}
}

func (p *Server) getJSON(path string, v any) error {
	resp, err := http.Get(p.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %s: %w", resp.Status, body, err)
	}
	return nil
}

// syncBuffer collects the process's output, written by exec's copying
// goroutines and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
