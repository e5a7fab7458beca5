package action

import (
	"errors"
	"net/url"
	"slices"
	"syscall"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

// typed parses onChange entries as config does, for an output directory the
// tests' pid files are not in.
func typed(t testing.TB, js ...config.ActionJSON) []config.Action {
	t.Helper()
	var out []config.Action
	for _, j := range js {
		a, err := config.ParseAction("onChange[0]", j, "/run/secrets")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  config.Action
		want string
	}{
		{"redeploy", config.Action{Redeploy: &config.RedeployAction{}}, "onChange[2]: redeploy is not available here (agent run and agent exec run it)"},
		{"restart", config.Action{Restart: &config.RestartAction{GracePeriod: config.DefaultGracePeriod}}, "onChange[2]: restart needs agent exec (it restarts the app the agent runs)"},
		{"empty", config.Action{}, "onChange[2]: no action set: want one of signal, http"},
		{"signal without target", typed(t, config.ActionJSON{Signal: &config.SignalJSON{}})[0], "onChange[2].signal: set process or pidFile (signalling the child needs exec mode)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgs := append(typed(t,
				config.ActionJSON{Signal: &config.SignalJSON{Process: "nginx"}},
				config.ActionJSON{HTTP: &config.HTTPJSON{URL: "http://127.0.0.1:9/-/reload"}},
			), tc.cfg)
			acts, err := New(cfgs, Options{})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if _, ok := errors.AsType[*config.Error](err); !ok {
				t.Errorf("error is %T, want *config.Error so the agent exits 2", err)
			}
			if acts != nil {
				t.Errorf("got actions %v with the error", acts)
			}
		})
	}
}

func TestNewKeepsOrder(t *testing.T) {
	t.Parallel()
	acts, err := New(typed(t,
		config.ActionJSON{HTTP: &config.HTTPJSON{URL: "http://127.0.0.1:9/a"}},
		config.ActionJSON{Signal: &config.SignalJSON{PIDFile: "/run/app.pid", Signal: "sigwinch"}},
		config.ActionJSON{HTTP: &config.HTTPJSON{URL: "https://127.0.0.1:9/b", Method: "GET", Timeout: "2s"}},
	), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range acts {
		kinds = append(kinds, a.Kind())
	}
	if want := []string{"http", "signal", "http"}; !slices.Equal(kinds, want) {
		t.Fatalf("kinds %q, want %q", kinds, want)
	}
}

// TestNewDefaultsHandBuiltValues protects against a typed action built
// without config's defaults: a zero signal would be kill(pid, 0), which
// sends nothing and succeeds.
func TestNewDefaultsHandBuiltValues(t *testing.T) {
	t.Parallel()
	acts, err := New([]config.Action{
		{Signal: &config.SignalAction{PIDFile: "/run/app/app.pid"}},
		{HTTP: &config.HTTPAction{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:9", Path: "/r"}}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := acts[0].(*signalAction); s.sig != syscall.SIGHUP || s.sigName != "SIGHUP" {
		t.Errorf("signal %v %q, want SIGHUP", s.sig, s.sigName)
	}
	if h := acts[1].(*httpAction); h.method != "POST" || h.timeout != config.DefaultHTTPTimeout || h.url != "http://127.0.0.1:9/r" {
		t.Errorf("http %+v", h)
	}
}
