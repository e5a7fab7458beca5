package action

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// reloadServer records every request it gets and answers with reply.
type reloadServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls []string // "METHOD path UA bodylen"
}

func newReloadServer(t *testing.T, reply http.HandlerFunc) *reloadServer {
	t.Helper()
	s := &reloadServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, r.Method+" "+r.URL.RequestURI()+" "+r.UserAgent()+" "+strconv.FormatInt(r.ContentLength, 10))
		s.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *reloadServer) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func status(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

func newHTTPAction(t *testing.T, c config.HTTPAction) Action {
	t.Helper()
	return newOne(t, config.Action{HTTP: &c}, Options{})
}

func TestHTTPOneRequestPerRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		method string
		code   int
		expect int
		want   string
	}{
		{"default POST, 200", "", 200, 0, "POST /-/reload?x=1 ecs-secrets-agent 0"},
		{"default 2xx takes 204", "", 204, 0, "POST /-/reload?x=1 ecs-secrets-agent 0"},
		{"GET", http.MethodGet, 202, 0, "GET /-/reload?x=1 ecs-secrets-agent 0"},
		{"PUT with expectStatus", http.MethodPut, 200, 200, "PUT /-/reload?x=1 ecs-secrets-agent 0"},
		{"expectStatus outside 2xx", "", 302, 302, "POST /-/reload?x=1 ecs-secrets-agent 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newReloadServer(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(tc.code)
			})
			a := newHTTPAction(t, config.HTTPAction{URL: s.URL + "/-/reload?x=1", Method: tc.method, ExpectStatus: tc.expect})
			if a.Kind() != "http" {
				t.Errorf("Kind() = %q, want http", a.Kind())
			}
			for run := 1; run <= 2; run++ {
				if err := a.Run(context.Background(), Change{}); err != nil {
					t.Fatal(err)
				}
				got := s.got()
				if len(got) != run {
					t.Fatalf("after %d runs the server saw %d requests: %q", run, len(got), got)
				}
				if got[run-1] != tc.want {
					t.Errorf("request %q, want %q", got[run-1], tc.want)
				}
			}
		})
	}
}

func TestHTTPWrongStatus(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 190) + "0123456789" + "TAIL"
	for _, tc := range []struct {
		name   string
		reply  http.HandlerFunc
		expect int
		want   string // after "http: POST <url>: "
	}{
		{"not 2xx", status(500, "reload failed: bad config at line 3\n"), 0,
			`got status 500 Internal Server Error, want 2xx: "reload failed: bad config at line 3"`},
		{"not the expected status", status(200, "ok"), 204,
			`got status 200 OK, want 204: "ok"`},
		{"empty body", status(404, ""), 0,
			`got status 404 Not Found, want 2xx`},
		{"body cut at 200 bytes", status(503, long), 0,
			`got status 503 Service Unavailable, want 2xx: "` + long[:200] + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newReloadServer(t, tc.reply)
			a := newHTTPAction(t, config.HTTPAction{URL: s.URL + "/-/reload", ExpectStatus: tc.expect})
			err := a.Run(context.Background(), Change{})
			want := "http: POST " + s.URL + "/-/reload: " + tc.want
			if err == nil || err.Error() != want {
				t.Fatalf("got error %v\nwant %s", err, want)
			}
			if n := len(s.got()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
		})
	}
}

func TestHTTPTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := newReloadServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release) // before s.Close, which waits for the handler
	a := newHTTPAction(t, config.HTTPAction{URL: s.URL, Timeout: "50ms"})
	err := a.Run(context.Background(), Change{})
	want := "http: POST " + s.URL + ": no response within 50ms: context deadline exceeded"
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v\nwant %s", err, want)
	}
}

func TestHTTPCanceled(t *testing.T) {
	t.Parallel()
	s := newReloadServer(t, status(200, ""))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := newHTTPAction(t, config.HTTPAction{URL: s.URL}).Run(ctx, Change{})
	want := "http: POST " + s.URL + ": context canceled"
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v\nwant %s", err, want)
	}
}

func TestHTTPRedirects(t *testing.T) {
	t.Parallel()
	other := newReloadServer(t, status(200, ""))
	// Same port range, other host name: 127.0.0.1 and localhost differ.
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1) + "/-/reload"
	s := newReloadServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, otherURL, http.StatusTemporaryRedirect)
		case "/old":
			http.Redirect(w, r, "/new", http.StatusPermanentRedirect)
		case "/new":
			w.WriteHeader(http.StatusNoContent)
		}
	})

	err := newHTTPAction(t, config.HTTPAction{URL: s.URL + "/away"}).Run(context.Background(), Change{})
	want := "http: POST " + s.URL + "/away: redirect to " + otherURL + " refused: it leaves " + strings.TrimPrefix(s.URL, "http://")
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v\nwant %s", err, want)
	}
	if got := other.got(); len(got) != 0 {
		t.Errorf("the other host got %q", got)
	}

	if err := newHTTPAction(t, config.HTTPAction{URL: s.URL + "/old"}).Run(context.Background(), Change{}); err != nil {
		t.Fatalf("same-host redirect: %v", err)
	}
	wantCalls := []string{
		"POST /away ecs-secrets-agent 0",
		"POST /old ecs-secrets-agent 0",
		"POST /new ecs-secrets-agent 0",
	}
	if got := s.got(); strings.Join(got, "\n") != strings.Join(wantCalls, "\n") {
		t.Errorf("server saw %q, want %q", got, wantCalls)
	}
}

func TestHTTPPasswordNotInErrors(t *testing.T) {
	t.Parallel()
	s := newReloadServer(t, status(500, ""))
	u := strings.Replace(s.URL, "http://", "http://admin:hunter2@", 1)
	err := newHTTPAction(t, config.HTTPAction{URL: u}).Run(context.Background(), Change{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("got error %v, want one without the password", err)
	}
}
