package action

import (
	"errors"
	"slices"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
)

func TestNewRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  config.Action
		want string
	}{
		{"redeploy", config.Action{Redeploy: &config.RedeployAction{}}, "onChange[2]: redeploy is not available here (agent run and agent exec run it)"},
		{"restart", config.Action{Restart: &config.RestartAction{GracePeriod: "10s"}}, "onChange[2]: restart needs agent exec (it restarts the app the agent runs)"},
		{"empty", config.Action{}, "onChange[2]: no action set: want one of signal, http"},
		{"signal without target", config.Action{Signal: &config.SignalAction{}}, "onChange[2].signal: set process or pidFile (signalling the child needs exec mode)"},
		{"signal with both targets", config.Action{Signal: &config.SignalAction{Process: "a", PIDFile: "/b"}}, "onChange[2].signal: set process or pidFile, not both"},
		{"unknown signal", config.Action{Signal: &config.SignalAction{Process: "a", Signal: "SIGKILL"}}, `onChange[2].signal.signal: "SIGKILL" is not one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH`},
		{"bad url", config.Action{HTTP: &config.HTTPAction{URL: "localhost:8080/reload"}}, `onChange[2].http.url: "localhost:8080/reload" is not an http:// or https:// URL`},
		{"bad method", config.Action{HTTP: &config.HTTPAction{URL: "http://a/", Method: "DELETE"}}, `onChange[2].http.method: "DELETE" is not GET, POST or PUT`},
		{"bad status", config.Action{HTTP: &config.HTTPAction{URL: "http://a/", ExpectStatus: 42}}, `onChange[2].http.expectStatus: 42 is not an HTTP status`},
		{"zero timeout", config.Action{HTTP: &config.HTTPAction{URL: "http://a/", Timeout: "0s"}}, `onChange[2].http.timeout: "0s" is not a positive duration ("5s", "1m")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgs := []config.Action{
				{Signal: &config.SignalAction{Process: "nginx"}},
				{HTTP: &config.HTTPAction{URL: "http://127.0.0.1:9/-/reload"}},
				tc.cfg,
			}
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
	acts, err := New([]config.Action{
		{HTTP: &config.HTTPAction{URL: "http://127.0.0.1:9/a"}},
		{Signal: &config.SignalAction{PIDFile: "/run/app.pid", Signal: "sigwinch"}},
		{HTTP: &config.HTTPAction{URL: "https://127.0.0.1:9/b", Method: "GET", Timeout: "2s"}},
	}, Options{})
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
