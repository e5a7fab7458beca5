package status

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestHandler(t *testing.T) (*Status, http.Handler, *time.Time) {
	t.Helper()
	now := t0
	s := New(10*time.Minute, func() time.Time { return now })
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ecs_secrets_agent_ready", Help: "test",
	}, func() float64 {
		if ok, _ := s.Ready(); ok {
			return 1
		}
		return 0
	}))
	return s, Handler(s, reg), &now
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(s *Status, now *time.Time)
		method   string
		path     string
		code     int
		body     string // exact, unless contains is set
		contains bool
	}{
		{name: "healthz before the first render", method: "GET", path: "/healthz", code: 503, body: "first render not done\n"},
		{
			name:   "healthz rendered",
			setup:  func(s *Status, _ *time.Time) { s.Rendered() },
			method: "GET", path: "/healthz", code: 200, body: "ok\n",
		},
		{
			// An AWS brownout past maxStale: not ready, still healthy.
			name: "healthz stale past limit",
			setup: func(s *Status, now *time.Time) {
				s.Rendered()
				s.Stale("DB_PASSWORD", t0, "InternalServerError")
				s.Problem("render", "files do not hold the latest values: disk full", t0)
				*now = t0.Add(time.Hour)
			},
			method: "GET", path: "/healthz", code: 200, body: "ok\n",
		},
		{
			name: "readyz problem past limit",
			setup: func(s *Status, now *time.Time) {
				s.Rendered()
				s.Problem("action:1", "onChange[1] http failing: 500 Internal Server Error", t0)
				s.Stale("API_KEY", t0.Add(9*time.Minute), "ThrottlingException")
				*now = t0.Add(11 * time.Minute)
			},
			method: "GET", path: "/readyz", code: 503,
			body: "action:1 failing for 11m0s (onChange[1] http failing: 500 Internal Server Error), limit 10m0s\n" +
				"secret API_KEY stale for 2m0s (ThrottlingException), limit 10m0s (within limit)\n",
		},
		{name: "readyz before the first render", method: "GET", path: "/readyz", code: 503, body: "first render not done\n"},
		{
			name:   "readyz rendered",
			setup:  func(s *Status, _ *time.Time) { s.Rendered() },
			method: "GET", path: "/readyz", code: 200, body: "ready\n",
		},
		{
			name: "readyz stale within limit",
			setup: func(s *Status, now *time.Time) {
				s.Rendered()
				s.Stale("API_KEY", t0, "ThrottlingException")
				*now = t0.Add(3 * time.Minute)
			},
			method: "GET", path: "/readyz", code: 200,
			body: "ready\nsecret API_KEY stale for 3m0s (ThrottlingException), limit 10m0s (within limit)\n",
		},
		{
			name: "readyz stale past limit",
			setup: func(s *Status, now *time.Time) {
				s.Rendered()
				s.Stale("DB_PASSWORD", t0, "AccessDeniedException")
				s.Stale("API_KEY", t0.Add(10*time.Minute), "ThrottlingException")
				*now = t0.Add(12 * time.Minute)
			},
			method: "GET", path: "/readyz", code: 503,
			body: "secret API_KEY stale for 2m0s (ThrottlingException), limit 10m0s (within limit)\n" +
				"secret DB_PASSWORD stale for 12m0s (AccessDeniedException), limit 10m0s\n",
		},
		{name: "HEAD readyz", method: "HEAD", path: "/readyz", code: 503, body: ""},
		{name: "HEAD healthz", method: "HEAD", path: "/healthz", code: 503, body: ""},
		{
			name:   "metrics",
			setup:  func(s *Status, _ *time.Time) { s.Rendered() },
			method: "GET", path: "/metrics", code: 200,
			body: "\necs_secrets_agent_ready 1\n", contains: true,
		},
		{name: "metrics not ready", method: "GET", path: "/metrics", code: 200, body: "\necs_secrets_agent_ready 0\n", contains: true},
		{name: "POST readyz", method: "POST", path: "/readyz", code: 405, body: "Method Not Allowed", contains: true},
		{name: "DELETE metrics", method: "DELETE", path: "/metrics", code: 405, body: "Method Not Allowed", contains: true},
		{name: "root", method: "GET", path: "/", code: 404, body: "404 page not found\n"},
		{name: "unknown", method: "GET", path: "/debug/pprof/", code: 404, body: "404 page not found\n"},
		{name: "trailing slash", method: "GET", path: "/readyz/", code: 404, body: "404 page not found\n"},
		{name: "POST unknown", method: "POST", path: "/nope", code: 404, body: "404 page not found\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, h, now := newTestHandler(t)
			if tt.setup != nil {
				tt.setup(s, now)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			body := rec.Body.String()
			if tt.method == "HEAD" {
				body = "" // a real server drops it; the recorder keeps it
			}
			if rec.Code != tt.code {
				t.Errorf("%s %s: status %d, want %d; body %q", tt.method, tt.path, rec.Code, tt.code, body)
			}
			if tt.contains && !strings.Contains(body, tt.body) || !tt.contains && body != tt.body {
				t.Errorf("%s %s: body %q, want %q", tt.method, tt.path, body, tt.body)
			}
			if tt.code == 405 {
				if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q, want \"GET, HEAD\"", got)
				}
			}
			if strings.HasPrefix(tt.path, "/healthz") || strings.HasPrefix(tt.path, "/readyz") && tt.code != 404 {
				if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type = %q", ct)
				}
			}
		})
	}
}

// A failing collector makes the scrape fail loudly rather than serve a
// partial page that hides the missing series.
func TestHandlerGatherError(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(failingCollector{})
	rec := httptest.NewRecorder()
	Handler(New(time.Minute, nil), reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "collector exploded") {
		t.Fatalf("status %d, body %q; want 500 naming the error", rec.Code, rec.Body)
	}
}

type failingCollector struct{}

var failingDesc = prometheus.NewDesc("ecs_secrets_agent_test_failing", "test", nil, nil)

func (failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- failingDesc }
func (failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(failingDesc, errors.New("collector exploded"))
}

func TestCheck(t *testing.T) {
	s, h, now := newTestHandler(t)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	client := &http.Client{Timeout: 5 * time.Second}
	ctx := t.Context()
	check := func(path string) string {
		if err := Check(ctx, addr, path, client); err != nil {
			return err.Error()
		}
		return ""
	}

	if got, want := check("/healthz"), "healthz: 503 Service Unavailable: first render not done"; got != want {
		t.Fatalf("healthz before render: %q, want %q", got, want)
	}
	if got, want := check("/readyz"), "readyz: 503 Service Unavailable: first render not done"; got != want {
		t.Fatalf("readyz before render: %q, want %q", got, want)
	}

	s.Rendered()
	if got := check("/healthz") + check("/readyz"); got != "" {
		t.Fatalf("rendered: %q", got)
	}

	s.Stale("DB_PASSWORD", t0, "AccessDeniedException")
	s.Stale("API_KEY", t0, "ThrottlingException")
	if got := check("/healthz") + check("/readyz"); got != "" {
		t.Fatalf("stale within limit: %q", got)
	}
	*now = t0.Add(11 * time.Minute)
	want := "readyz: 503 Service Unavailable: " +
		"secret API_KEY stale for 11m0s (ThrottlingException), limit 10m0s\n" +
		"secret DB_PASSWORD stale for 11m0s (AccessDeniedException), limit 10m0s"
	if got := check("/readyz"); got != want {
		t.Fatalf("readyz stale past limit: %q\nwant %q", got, want)
	}
	// Health does not fail on staleness: the files are good.
	if got := check("/healthz"); got != "" {
		t.Fatalf("healthz stale past limit: %q, want healthy", got)
	}

	// A listen address with no host is the agent on this machine.
	_, port, _ := net.SplitHostPort(addr)
	s.Fresh("DB_PASSWORD")
	s.Fresh("API_KEY")
	if err := Check(ctx, ":"+port, "/readyz", nil); err != nil {
		t.Fatalf("Check(%q): %v", ":"+port, err)
	}
	if err := Check(ctx, "0.0.0.0:"+port, "/healthz", client); err != nil {
		t.Fatalf("Check(%q): %v", "0.0.0.0:"+port, err)
	}
}

func TestCheckErrors(t *testing.T) {
	client := &http.Client{Timeout: 5 * time.Second}

	t.Run("connection refused", func(t *testing.T) {
		// A port that was free a moment ago; nothing listens on it now.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		err = Check(t.Context(), addr, "/readyz", client)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("Check(%s) = %v, want connection refused", addr, err)
		}
		if !strings.HasPrefix(err.Error(), "readyz: ") {
			t.Errorf("error %q does not say what was checked", err)
		}
	})

	t.Run("not host:port", func(t *testing.T) {
		err := Check(t.Context(), "localhost", "/healthz", client)
		if err == nil || !strings.Contains(err.Error(), `healthz: metrics address "localhost" is not HOST:PORT`) {
			t.Fatalf("Check(localhost) = %v", err)
		}
	})

	t.Run("empty 500 body", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		}))
		t.Cleanup(srv.Close)
		err := Check(t.Context(), strings.TrimPrefix(srv.URL, "http://"), "/readyz", client)
		if err == nil || err.Error() != "readyz: 500 Internal Server Error" {
			t.Fatalf("Check = %v", err)
		}
	})

	t.Run("client timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		err := Check(t.Context(), strings.TrimPrefix(srv.URL, "http://"), "/healthz", &http.Client{Timeout: 50 * time.Millisecond})
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Check = %v, want a timeout", err)
		}
	})

	t.Run("context canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := Check(ctx, "127.0.0.1:9", "/healthz", client)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Check = %v, want context.Canceled", err)
		}
	})

	t.Run("long body is bounded", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, strings.Repeat("x", 1<<20))
		}))
		t.Cleanup(srv.Close)
		err := Check(t.Context(), strings.TrimPrefix(srv.URL, "http://"), "/readyz", client)
		if err == nil || len(err.Error()) > 70<<10 {
			t.Fatalf("Check error length %d", len(err.Error()))
		}
	})
}
