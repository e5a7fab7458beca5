package config

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Action defaults.
const (
	DefaultHTTPTimeout = 10 * time.Second
	DefaultGracePeriod = 10 * time.Second // how long a restart waits after SIGTERM
)

// ActionJSON is one entry of "onChange": exactly one of its fields is set.
// `init` accepts and validates them so one config serves init and run.
type ActionJSON struct {
	Signal   *SignalJSON     `json:"signal,omitempty"`
	HTTP     *HTTPJSON       `json:"http,omitempty"`
	Redeploy *RedeployAction `json:"redeploy,omitempty"`
	Restart  *RestartJSON    `json:"restart,omitempty"`
}

// SignalJSON is "signal".
type SignalJSON struct {
	Process string `json:"process,omitempty"`
	PIDFile string `json:"pidFile,omitempty"`
	Signal  string `json:"signal,omitempty"`
}

// HTTPJSON is "http".
type HTTPJSON struct {
	URL          string `json:"url"`
	Method       string `json:"method,omitempty"`
	ExpectStatus int    `json:"expectStatus,omitempty"`
	Timeout      string `json:"timeout,omitempty"`
}

// RestartJSON is "restart".
type RestartJSON struct {
	GracePeriod string `json:"gracePeriod,omitempty"`
}

// Action is one validated onChange step, parsed once: exactly one field is
// set, and every value in it is typed and defaulted.
type Action struct {
	Signal   *SignalAction
	HTTP     *HTTPAction
	Redeploy *RedeployAction
	Restart  *RestartAction
}

// SignalAction signals a process found by name or pid file (or, in exec mode
// with neither, the child).
type SignalAction struct {
	Process string
	PIDFile string
	Signal  syscall.Signal // SIGHUP unless configured
	Name    string         // the signal's name, "SIGHUP"
}

// HTTPAction calls a reload URL.
type HTTPAction struct {
	URL          *url.URL
	Method       string // GET, POST (the default) or PUT
	ExpectStatus int    // 0: any 2xx
	Timeout      time.Duration
}

// Redacted is the URL as it may be shown: see RedactURL.
func (a *HTTPAction) Redacted() string { return RedactURL(a.URL) }

// RedeployAction forces a new deployment of an ECS service; empty fields
// come from task metadata.
type RedeployAction struct {
	Cluster string `json:"cluster,omitempty"`
	Service string `json:"service,omitempty"`
}

// RestartAction restarts the child in exec mode.
type RestartAction struct {
	GracePeriod time.Duration
}

var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT, "SIGTERM": syscall.SIGTERM,
	"SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2, "SIGWINCH": syscall.SIGWINCH,
}

// RedactURL shows u without what may be a credential: the password of its
// userinfo and the value of every query parameter. Keys stay, so the
// operator can tell which URL it is.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.Fragment, r.RawFragment = "", ""
	if r.RawQuery != "" {
		var parts []string
		for p := range strings.SplitSeq(r.RawQuery, "&") {
			k, _, hasValue := strings.Cut(p, "=")
			if hasValue {
				k += "=xxxxx"
			}
			parts = append(parts, k)
		}
		r.RawQuery = strings.Join(parts, "&")
	}
	return r.Redacted()
}

// redactRawURL is RedactURL for a string that may not parse; one that does
// not is not shown at all.
func redactRawURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not shown: it does not parse and may hold a password)"
	}
	return fmt.Sprintf("%q", RedactURL(u))
}

// ParseAction validates one onChange entry and returns it typed. outputDir is
// where the agent writes secrets: a pid file there would be a secret.
func ParseAction(field string, a ActionJSON, outputDir string) (Action, error) {
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
		return Action{}, errorf("%s: want exactly one of signal, http, redeploy, restart; got %d (%s)", field, len(set), strings.Join(set, ", "))
	}
	switch {
	case a.Signal != nil:
		s, err := parseSignal(field+".signal", *a.Signal, outputDir)
		return Action{Signal: s}, err
	case a.HTTP != nil:
		h, err := parseHTTP(field+".http", *a.HTTP)
		return Action{HTTP: h}, err
	case a.Restart != nil:
		r := &RestartAction{GracePeriod: DefaultGracePeriod}
		if a.Restart.GracePeriod != "" {
			var err error
			if r.GracePeriod, err = parseDuration(field+".restart.gracePeriod", a.Restart.GracePeriod); err != nil {
				return Action{}, err
			}
		}
		return Action{Restart: r}, nil
	}
	r := *a.Redeploy
	return Action{Redeploy: &r}, nil
}

func parseSignal(field string, j SignalJSON, outputDir string) (*SignalAction, error) {
	if j.Process != "" && j.PIDFile != "" {
		return nil, errorf("%s: set process or pidFile, not both", field)
	}
	s := &SignalAction{Process: j.Process, PIDFile: j.PIDFile, Signal: syscall.SIGHUP, Name: "SIGHUP"}
	if j.Signal != "" {
		name := strings.ToUpper(j.Signal)
		sig, ok := signals[name]
		if !ok {
			return nil, errorf("%s.signal: %q is not one of SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH", field, j.Signal)
		}
		s.Signal, s.Name = sig, name
	}
	if j.PIDFile != "" && inside(j.PIDFile, outputDir) {
		// The agent would read a secret as a pid, and a message about a
		// bad pid could show it.
		return nil, errorf("%s.pidFile: %q is inside the output directory %s, where the agent writes secrets: point it at the app's pid file", field, j.PIDFile, outputDir)
	}
	return s, nil
}

// inside reports whether path is dir or under it, comparing absolute, clean
// paths.
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func parseHTTP(field string, j HTTPJSON) (*HTTPAction, error) {
	u, err := url.Parse(j.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errorf("%s.url: %s is not an http:// or https:// URL", field, redactRawURL(j.URL))
	}
	h := &HTTPAction{URL: u, Method: j.Method, ExpectStatus: j.ExpectStatus, Timeout: DefaultHTTPTimeout}
	switch h.Method {
	case "":
		h.Method = http.MethodPost
	case http.MethodGet, http.MethodPost, http.MethodPut:
	default:
		return nil, errorf("%s.method: %q is not GET, POST or PUT", field, j.Method)
	}
	if s := j.ExpectStatus; s != 0 && (s < 100 || s > 599) {
		return nil, errorf("%s.expectStatus: %d is not an HTTP status", field, s)
	}
	if j.Timeout != "" {
		if h.Timeout, err = parseDuration(field+".timeout", j.Timeout); err != nil {
			return nil, err
		}
		if h.Timeout == 0 {
			return nil, errorf("%s.timeout: must be more than 0", field)
		}
	}
	return h, nil
}
