// Package config reads the agent's settings from flags, AGENT_CONFIG and a JSON
// file, merges them and validates them before any AWS call.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/render"
)

// Defaults, as SPEC §5 and §6 give them.
const (
	DefaultOutputDir = "/run/secrets"
	DefaultMode      = fs.FileMode(0o444)
	DefaultInterval  = 5 * time.Minute
	MinInterval      = time.Second
)

// File is the JSON schema of --config and AGENT_CONFIG (camelCase, like task
// definitions). Pointers tell "unset" from a zero value.
type File struct {
	Secrets     []SecretJSON   `json:"secrets"`
	OutputDir   string         `json:"outputDir"`
	Mode        string         `json:"mode"`
	UID         *int           `json:"uid"`
	GID         *int           `json:"gid"`
	EnvFile     string         `json:"envFile"`
	JSONFile    string         `json:"jsonFile"`
	Templates   []TemplateJSON `json:"templates"`
	Refresh     *RefreshJSON   `json:"refresh"`
	OnChange    []ActionJSON   `json:"onChange"`
	MetricsAddr string         `json:"metricsAddr"`
}

// SecretJSON is one entry of "secrets".
type SecretJSON struct {
	Name      string `json:"name"`
	ValueFrom string `json:"valueFrom"`
	File      string `json:"file"`
	Mode      string `json:"mode"`
	UID       *int   `json:"uid"`
	GID       *int   `json:"gid"`
	Expand    bool   `json:"expand"`
	Optional  bool   `json:"optional"`
}

// TemplateJSON is one entry of "templates": inline text or a source file.
type TemplateJSON struct {
	Template    string `json:"template"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Mode        string `json:"mode"`
}

// RefreshJSON is "refresh".
type RefreshJSON struct {
	Interval string `json:"interval"`
	Jitter   string `json:"jitter"`
	MaxStale string `json:"maxStale"`
	// Feed is the change feed's URL (docs/FEED.md): while it answers, the
	// agent makes no polling calls to AWS.
	Feed string `json:"feed"`
}

// Flags are the command-line values that take part in the merge. Empty means
// not given.
type Flags struct {
	ConfigPath  string
	Secrets     []string // NAME=VALUEFROM
	OutputDir   string
	Interval    string
	Feed        string // --feed: refresh.feed
	MetricsAddr string
}

// Settings is the validated, merged configuration.
type Settings struct {
	Secrets     []Secret
	OutputDir   string
	Mode        fs.FileMode
	UID, GID    int // -1 = unset
	EnvFile     string
	JSONFile    string
	Templates   []Template
	Interval    time.Duration
	Jitter      time.Duration
	MaxStale    time.Duration // not ready when a secret has been stale longer
	Feed        string        // the change feed's URL; "" polls AWS directly
	OnChange    []Action
	MetricsAddr string
	Source      string // where the JSON came from, for logs: a path, "AGENT_CONFIG" or ""

	// Whether outputDir and refresh were given at all: exec writes no file
	// and does not refresh unless asked to.
	OutputDirSet, RefreshSet bool
}

// Secret is one validated secret.
type Secret struct {
	Name     string
	Ref      fetch.Ref
	File     string // relative to OutputDir; "" when Expand
	Mode     fs.FileMode
	UID, GID int
	Expand   bool
	Optional bool
}

// Template is one validated template.
type Template struct {
	Template    *render.Template
	Destination string
	Mode        fs.FileMode
}

// Error is a configuration error: the agent exits 2.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

// Load merges the JSON config (from flags.ConfigPath or AGENT_CONFIG) with the
// flags and validates the result. Every error is an *Error.
func Load(flags Flags, getenv func(string) string) (*Settings, error) {
	var f File
	source := ""
	envJSON := getenv("AGENT_CONFIG")
	switch {
	case flags.ConfigPath != "" && envJSON != "":
		return nil, errorf("both --config %q and AGENT_CONFIG are set: use one", flags.ConfigPath)
	case flags.ConfigPath != "":
		data, err := os.ReadFile(flags.ConfigPath)
		if err != nil {
			return nil, errorf("--config: cannot read %q: %v", flags.ConfigPath, unwrapPathError(err))
		}
		if err := Decode(data, &f); err != nil {
			return nil, errorf("--config %s: %v", flags.ConfigPath, err)
		}
		source = flags.ConfigPath
	case envJSON != "":
		if err := Decode([]byte(envJSON), &f); err != nil {
			return nil, errorf("AGENT_CONFIG: %v", err)
		}
		source = "AGENT_CONFIG"
	}
	for _, s := range flags.Secrets {
		name, ref, ok := strings.Cut(s, "=")
		if !ok {
			return nil, errorf("--secret %q: want NAME=VALUEFROM", s)
		}
		f.Secrets = append(f.Secrets, SecretJSON{Name: name, ValueFrom: ref})
	}
	if flags.OutputDir != "" {
		f.OutputDir = flags.OutputDir
	}
	if flags.Interval != "" {
		if f.Refresh == nil {
			f.Refresh = &RefreshJSON{}
		}
		f.Refresh.Interval = flags.Interval
	}
	if flags.Feed != "" {
		if f.Refresh == nil {
			f.Refresh = &RefreshJSON{}
		}
		f.Refresh.Feed = flags.Feed
	}
	if flags.MetricsAddr != "" {
		f.MetricsAddr = flags.MetricsAddr
	}
	s, err := f.validate(flags.Secrets, source)
	if err != nil {
		return nil, err
	}
	s.Source = source
	return s, nil
}

// Decode parses JSON strictly: unknown fields, trailing data and type
// mismatches are errors.
func Decode(data []byte, f *File) error { return decodeStrict(data, f) }

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Errorf("field %q: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	return fmt.Errorf("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (f *File) validate(flagSecrets []string, source string) (*Settings, error) {
	s := &Settings{
		OutputDir:   f.OutputDir,
		Mode:        DefaultMode,
		UID:         -1,
		GID:         -1,
		EnvFile:     f.EnvFile,
		JSONFile:    f.JSONFile,
		Interval:    DefaultInterval,
		MetricsAddr: f.MetricsAddr,

		OutputDirSet: f.OutputDir != "",
		RefreshSet:   f.Refresh != nil,
	}
	if s.OutputDir == "" {
		s.OutputDir = DefaultOutputDir
	}
	var err error
	if f.Mode != "" {
		if s.Mode, err = parseMode("mode", f.Mode); err != nil {
			return nil, err
		}
	}
	if s.UID, err = id("uid", f.UID, -1); err != nil {
		return nil, err
	}
	if s.GID, err = id("gid", f.GID, -1); err != nil {
		return nil, err
	}
	if len(f.Secrets) == 0 {
		return nil, errorf("no secrets configured: give --secret NAME=VALUEFROM, --config FILE or AGENT_CONFIG")
	}

	dest := map[string]string{} // path → the field that writes it
	var targets []render.Target // the same, in order, for render.CheckTargets
	claim := func(path, field string) error {
		if prev, ok := dest[path]; ok {
			return errorf("%s: %q is also written by %s", field, path, prev)
		}
		dest[path] = field
		targets = append(targets, render.Target{Path: path, By: field})
		return nil
	}
	names := map[string]bool{}
	fromFlags := len(f.Secrets) - len(flagSecrets)
	for i, js := range f.Secrets {
		field := fmt.Sprintf("secrets[%d]", i)
		if i >= fromFlags {
			field = fmt.Sprintf("--secret %q", flagSecrets[i-fromFlags])
		}
		sec, err := js.validate(field, s)
		if err != nil {
			return nil, err
		}
		if names[sec.Name] {
			return nil, errorf("%s.name: duplicate name %q", field, sec.Name)
		}
		names[sec.Name] = true
		if !sec.Expand {
			if err := claim(sec.File, field+".file"); err != nil {
				return nil, err
			}
		}
		s.Secrets = append(s.Secrets, sec)
	}
	for _, p := range []struct{ field, path string }{{"envFile", f.EnvFile}, {"jsonFile", f.JSONFile}} {
		if p.path == "" {
			continue
		}
		if err := render.CheckPath(p.path); err != nil {
			return nil, errorf("%s: %v", p.field, err)
		}
		if err := claim(p.path, p.field); err != nil {
			return nil, err
		}
	}
	for i, jt := range f.Templates {
		field := fmt.Sprintf("templates[%d]", i)
		t, err := jt.validate(field, s.Mode, source)
		if err != nil {
			return nil, err
		}
		for _, name := range t.Template.SecretNames() {
			if !names[name] && !expandedKey(name, s.Secrets) {
				// Caught here, not by init after fetching everything.
				return nil, errorf("%s.template: names secret %q, which is not configured (configured: %s)", field, name, strings.Join(slices.Sorted(maps.Keys(names)), ", "))
			}
		}
		if err := claim(t.Destination, field+".destination"); err != nil {
			return nil, err
		}
		s.Templates = append(s.Templates, t)
	}
	// Paths valid one by one may not coexist ("d" and "d/x").
	if err := render.CheckTargets(targets); err != nil {
		return nil, errorf("%v", err)
	}
	if err := f.validateRefresh(s); err != nil {
		return nil, err
	}
	for i, j := range f.OnChange {
		a, err := ParseAction(fmt.Sprintf("onChange[%d]", i), j, s.OutputDir)
		if err != nil {
			return nil, err
		}
		s.OnChange = append(s.OnChange, a)
	}
	if s.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(s.MetricsAddr); err != nil || !validPort(port) {
			return nil, errorf("metricsAddr: %q is not HOST:PORT (\":9102\", \"127.0.0.1:0\")", s.MetricsAddr)
		}
	}
	return s, nil
}

// expandedKey reports whether name can be a key of an expanded secret
// (NAME_KEY): its keys are known only once the value is.
func expandedKey(name string, secrets []Secret) bool {
	for _, sec := range secrets {
		if sec.Expand && strings.HasPrefix(name, sec.Name+"_") {
			return true
		}
	}
	return false
}

func (js SecretJSON) validate(field string, s *Settings) (Secret, error) {
	sec := Secret{Name: js.Name, File: js.File, Mode: s.Mode, UID: s.UID, GID: s.GID, Expand: js.Expand, Optional: js.Optional}
	if js.Name == "" {
		return sec, errorf("%s.name: missing", field)
	}
	if !render.ValidEnvName(js.Name) {
		return sec, errorf("%s.name: %q is not a valid environment variable name (letters, digits and _, not starting with a digit)", field, js.Name)
	}
	if js.ValueFrom == "" {
		return sec, errorf("%s.valueFrom: missing", field)
	}
	ref, err := fetch.ParseRef(js.ValueFrom)
	if err != nil {
		return sec, errorf("%s.valueFrom: %v", field, err)
	}
	sec.Ref = ref
	if js.Expand {
		if js.File != "" {
			return sec, errorf("%s.file: not allowed with expand (each key is written to NAME_KEY)", field)
		}
		if ref.Service == fetch.SecretsManager && ref.JSONKey != "" {
			return sec, errorf("%s.expand: the reference already selects JSON key %q; drop the key or expand", field, ref.JSONKey)
		}
	} else if sec.File == "" {
		sec.File = js.Name
	}
	if sec.File != "" {
		if err := render.CheckPath(sec.File); err != nil {
			return sec, errorf("%s.file: %v", field, err)
		}
	}
	if js.Mode != "" {
		if sec.Mode, err = parseMode(field+".mode", js.Mode); err != nil {
			return sec, err
		}
	}
	if sec.UID, err = id(field+".uid", js.UID, s.UID); err != nil {
		return sec, err
	}
	if sec.GID, err = id(field+".gid", js.GID, s.GID); err != nil {
		return sec, err
	}
	return sec, nil
}

func (jt TemplateJSON) validate(field string, mode fs.FileMode, source string) (Template, error) {
	t := Template{Destination: jt.Destination, Mode: mode}
	text := jt.Template
	switch {
	case jt.Template != "" && jt.Source != "":
		return t, errorf("%s: set template or source, not both", field)
	case jt.Source != "":
		data, err := os.ReadFile(jt.Source)
		if err != nil {
			return t, errorf("%s.source: cannot read %q: %v", field, jt.Source, unwrapPathError(err))
		}
		text = string(data)
	case jt.Template == "":
		return t, errorf("%s: template or source is required", field)
	}
	if jt.Destination == "" {
		return t, errorf("%s.destination: missing", field)
	}
	if err := render.CheckPath(jt.Destination); err != nil {
		return t, errorf("%s.destination: %v", field, err)
	}
	var err error
	if t.Template, err = render.ParseTemplate(jt.Destination, text); err != nil {
		return t, errorf("%s.template: %v", field, err)
	}
	if jt.Mode != "" {
		if t.Mode, err = parseMode(field+".mode", jt.Mode); err != nil {
			return t, err
		}
	}
	return t, nil
}

func (f *File) validateRefresh(s *Settings) error {
	if f.Refresh == nil {
		s.Jitter, s.MaxStale = s.Interval/10, 3*s.Interval
		return nil
	}
	var err error
	if f.Refresh.Interval != "" {
		if s.Interval, err = parseDuration("refresh.interval", f.Refresh.Interval); err != nil {
			return err
		}
		if s.Interval < MinInterval {
			return errorf("refresh.interval: %s is below the minimum of 1s", s.Interval)
		}
	}
	s.Jitter = s.Interval / 10
	if f.Refresh.Jitter != "" {
		if s.Jitter, err = parseDuration("refresh.jitter", f.Refresh.Jitter); err != nil {
			return err
		}
		if s.Jitter >= s.Interval {
			return errorf("refresh.jitter: %s must be less than the interval %s", s.Jitter, s.Interval)
		}
	}
	s.MaxStale = 3 * s.Interval
	if f.Refresh.MaxStale != "" {
		if s.MaxStale, err = parseDuration("refresh.maxStale", f.Refresh.MaxStale); err != nil {
			return err
		}
		if s.MaxStale < s.Interval {
			return errorf("refresh.maxStale: %s is shorter than the interval %s: every failed refresh would make the agent unready", s.MaxStale, s.Interval)
		}
	}
	if f.Refresh.Feed != "" {
		if err := checkFeedURL(f.Refresh.Feed); err != nil {
			return err
		}
		s.Feed = f.Refresh.Feed
	}
	return nil
}

// checkFeedURL accepts http(s)://HOST[:PORT][/PREFIX]: the feed serves no
// secret, so plain HTTP inside the VPC is the expected case.
func checkFeedURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errorf("refresh.feed: not a URL (%s)", redactRawURL(raw))
	case u.Scheme != "http" && u.Scheme != "https":
		return errorf("refresh.feed: %s: want http://HOST:PORT (the address agent watch --feed-addr serves)", redactRawURL(raw))
	case u.Host == "":
		return errorf("refresh.feed: %s has no host", redactRawURL(raw))
	case u.RawQuery != "" || u.Fragment != "":
		return errorf("refresh.feed: %s: no query or fragment, please", redactRawURL(raw))
	}
	return nil
}

func parseDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errorf("%s: %q is not a duration (\"30s\", \"5m\")", field, v)
	}
	return d, nil
}

func parseMode(field, v string) (fs.FileMode, error) {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || m > 0o777 || len(v) < 3 {
		return 0, errorf("%s: %q is not an octal file mode like \"0444\" or \"0400\"", field, v)
	}
	if m&0o400 == 0 {
		return 0, errorf("%s: %q leaves the file unreadable by its owner", field, v)
	}
	return fs.FileMode(m), nil
}

// maxID is the largest uid or gid a file can have.
const maxID int64 = 1<<32 - 2

func id(field string, v *int, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v < 0 {
		return 0, errorf("%s: %d is negative", field, *v)
	}
	// 4294967295 is (uid_t)-1, which chown takes as "leave as is", so the
	// owner would never match; larger values would wrap (4294967296 to root).
	if int64(*v) > maxID {
		return 0, errorf("%s: %d is out of range: ids go from 0 to %d", field, *v, maxID)
	}
	return *v, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}
