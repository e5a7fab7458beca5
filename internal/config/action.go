package config

import (
	"net/http"
	"sort"
	"strings"
)

// Action is one entry of "onChange": exactly one of its fields is set. `init`
// accepts and validates them so one config serves init and run.
type Action struct {
	Signal   *SignalAction   `json:"signal,omitempty"`
	HTTP     *HTTPAction     `json:"http,omitempty"`
	Redeploy *RedeployAction `json:"redeploy,omitempty"`
	Restart  *RestartAction  `json:"restart,omitempty"`
}

// SignalAction signals a process found by name or pid file (or, in exec mode
// with neither, the child).
type SignalAction struct {
	Process string `json:"process,omitempty"`
	PIDFile string `json:"pidFile,omitempty"`
	Signal  string `json:"signal,omitempty"`
}

// HTTPAction calls a reload URL.
type HTTPAction struct {
	URL          string `json:"url"`
	Method       string `json:"method,omitempty"`
	ExpectStatus int    `json:"expectStatus,omitempty"`
	Timeout      string `json:"timeout,omitempty"`
}

// RedeployAction forces a new deployment of an ECS service.
type RedeployAction struct {
	Cluster string `json:"cluster,omitempty"`
	Service string `json:"service,omitempty"`
}

// RestartAction restarts the child in exec mode.
type RestartAction struct {
	GracePeriod string `json:"gracePeriod,omitempty"`
}

var signals = map[string]bool{
	"SIGHUP": true, "SIGINT": true, "SIGQUIT": true, "SIGTERM": true,
	"SIGUSR1": true, "SIGUSR2": true, "SIGWINCH": true,
}

func (a Action) validate(field string) error {
	// Name the kinds that are set, not their content: a URL may carry a
	// password.
	var set []string
	for kind, ok := range map[string]bool{"signal": a.Signal != nil, "http": a.HTTP != nil, "redeploy": a.Redeploy != nil, "restart": a.Restart != nil} {
		if ok {
			set = append(set, kind)
		}
	}
	if len(set) != 1 {
		sort.Strings(set)
		return errorf("%s: want exactly one of signal, http, redeploy, restart; got %d (%s)", field, len(set), strings.Join(set, ", "))
	}
	switch {
	case a.Signal != nil:
		if a.Signal.Process != "" && a.Signal.PIDFile != "" {
			return errorf("%s.signal: set process or pidFile, not both", field)
		}
		if s := a.Signal.Signal; s != "" && !signals[strings.ToUpper(s)] {
			return errorf("%s.signal.signal: %q is not one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH", field, s)
		}
	case a.HTTP != nil:
		if !validHTTPURL(a.HTTP.URL) {
			return errorf("%s.http.url: %q is not an http:// or https:// URL", field, a.HTTP.URL)
		}
		switch a.HTTP.Method {
		case "", http.MethodGet, http.MethodPost, http.MethodPut:
		default:
			return errorf("%s.http.method: %q is not GET, POST or PUT", field, a.HTTP.Method)
		}
		if s := a.HTTP.ExpectStatus; s != 0 && (s < 100 || s > 599) {
			return errorf("%s.http.expectStatus: %d is not an HTTP status", field, s)
		}
		if a.HTTP.Timeout != "" {
			d, err := parseDuration(field+".http.timeout", a.HTTP.Timeout)
			if err != nil {
				return err
			}
			if d == 0 {
				return errorf("%s.http.timeout: must be more than 0", field)
			}
		}
	case a.Restart != nil:
		if a.Restart.GracePeriod != "" {
			if _, err := parseDuration(field+".restart.gracePeriod", a.Restart.GracePeriod); err != nil {
				return err
			}
		}
	}
	return nil
}
