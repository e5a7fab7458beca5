package action

import (
	"context"
	"log/slog"
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

func newHTTPAction(t *testing.T, c config.HTTPJSON) Action {
	t.Helper()
	return newOne(t, config.ActionJSON{HTTP: &c}, Options{})
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
			a := newHTTPAction(t, config.HTTPJSON{URL: s.URL + "/-/reload?x=1", Method: tc.method, ExpectStatus: tc.expect})
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
			a := newHTTPAction(t, config.HTTPJSON{URL: s.URL + "/-/reload", ExpectStatus: tc.expect})
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
	a := newHTTPAction(t, config.HTTPJSON{URL: s.URL, Timeout: "50ms"})
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
	err := newHTTPAction(t, config.HTTPJSON{URL: s.URL}).Run(ctx, Change{})
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

	err := newHTTPAction(t, config.HTTPJSON{URL: s.URL + "/away"}).Run(context.Background(), Change{})
	want := "http: POST " + s.URL + "/away: redirect to " + otherURL + " refused: it leaves " + strings.TrimPrefix(s.URL, "http://")
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v\nwant %s", err, want)
	}
	if got := other.got(); len(got) != 0 {
		t.Errorf("the other host got %q", got)
	}

	if err := newHTTPAction(t, config.HTTPJSON{URL: s.URL + "/old"}).Run(context.Background(), Change{}); err != nil {
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

// TestHTTPCredentialsNotInErrorsOrLogs protects a reload URL's password and
// query tokens: action errors showed the query whole.
func TestHTTPCredentialsNotInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	code := 500
	var mu sync.Mutex
	s := newReloadServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(code)
	})
	u := strings.Replace(s.URL, "http://", "http://admin:hunter2@", 1) + "/-/reload?token=s3cr3t&debug"
	shown := strings.Replace(s.URL, "http://", "http://admin:xxxxx@", 1) + "/-/reload?token=xxxxx&debug"
	var logs strings.Builder
	a := newOne(t, config.ActionJSON{HTTP: &config.HTTPJSON{URL: u}}, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	err := a.Run(context.Background(), Change{})
	if want := "http: POST " + shown + ": got status 500 Internal Server Error, want 2xx"; err == nil || err.Error() != want {
		t.Fatalf("got error %v\nwant %s", err, want)
	}
	mu.Lock()
	code = 200
	mu.Unlock()
	if err := a.Run(context.Background(), Change{}); err != nil {
		t.Fatal(err)
	}
	// Refused redirects name the target redacted too.
	r := newReloadServer(t, func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, "http://bob:hunter2@localhost:1/x?token=s3cr3t", http.StatusTemporaryRedirect)
	})
	err = newOne(t, config.ActionJSON{HTTP: &config.HTTPJSON{URL: r.URL}}, Options{}).Run(context.Background(), Change{})
	if want := "http: POST " + r.URL + ": redirect to http://bob:xxxxx@localhost:1/x?token=xxxxx refused: it leaves " + strings.TrimPrefix(r.URL, "http://"); err == nil || err.Error() != want {
		t.Fatalf("got error %v\nwant %s", err, want)
	}
	if strings.Contains(logs.String(), "hunter2") || strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("log shows a credential:\n%s", logs.String())
	}
	if want := `msg="reload URL answered 200" action=http method=POST url="` + shown + `" status=200`; !strings.Contains(logs.String(), want) {
		t.Errorf("log\n%s\nlacks %s", logs.String(), want)
	}
}
