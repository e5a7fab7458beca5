// Package plan decides what to write: it turns the settings and the fetched
// values into the full set of files, in memory, before anything is written,
// so a failure anywhere writes nothing.
package plan

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/render"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// Entry is one named value as the app sees it: a configured secret, or one
// key of an expanded JSON secret (NAME_KEY).
type Entry struct {
	Name   string
	Value  secret.Value
	Binary bool
	Secret *config.Secret // the configured secret it comes from
}

// Text is the value where only text fits (env and JSON files, environment
// variables): binary values are base64.
func (e Entry) Text() secret.Value {
	if !e.Binary {
		return e.Value
	}
	return secret.FromString(base64.StdEncoding.EncodeToString(e.Value.Bytes()))
}

// Entries expands the fetched values in configuration order. Secrets missing
// from values (skipped optional ones) are left out.
func Entries(s *config.Settings, values map[string]fetch.Result) ([]Entry, error) {
	var out []Entry
	seen := map[string]string{} // entry name → secret it came from
	add := func(e Entry) error {
		if prev, ok := seen[e.Name]; ok {
			return fmt.Errorf("secret %s: %q is also produced by secret %s", e.Secret.Name, e.Name, prev)
		}
		seen[e.Name] = e.Secret.Name
		out = append(out, e)
		return nil
	}
	for i := range s.Secrets {
		sec := &s.Secrets[i]
		res, ok := values[sec.Name]
		if !ok {
			continue
		}
		if !sec.Expand {
			if err := add(Entry{Name: sec.Name, Value: res.Value, Binary: res.Binary, Secret: sec}); err != nil {
				return nil, err
			}
			continue
		}
		if res.Binary {
			return nil, fmt.Errorf("secret %s: expand needs a JSON object, and the secret is binary", sec.Name)
		}
		fields, err := res.Value.Fields()
		if err != nil {
			return nil, fmt.Errorf("secret %s: expand: %w", sec.Name, err)
		}
		for _, k := range secret.SortedKeys(fields) {
			name := sec.Name + "_" + k
			if !render.ValidEnvName(name) {
				return nil, fmt.Errorf("secret %s: expand: key %q does not make a valid variable name (%s)", sec.Name, k, name)
			}
			if err := add(Entry{Name: name, Value: fields[k], Secret: sec}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Files returns every file the settings ask for. Templates see every entry,
// and an expanded secret also under its own name, for `key "NAME" "field"`.
func Files(s *config.Settings, fetched map[string]fetch.Result) ([]render.File, error) {
	entries, err := Entries(s, fetched)
	if err != nil {
		return nil, err
	}
	var files []render.File
	var targets []render.Target
	claimed := map[string]string{}
	add := func(f render.File, what string) error {
		if prev, ok := claimed[f.Path]; ok {
			return fmt.Errorf("%s and %s both write %q", prev, what, f.Path)
		}
		claimed[f.Path] = what
		files = append(files, f)
		targets = append(targets, render.Target{Path: f.Path, By: what})
		return nil
	}
	vars := make([]render.Var, 0, len(entries))
	values := make(map[string]secret.Value, len(entries))
	for _, e := range entries {
		path := e.Secret.File
		if e.Secret.Expand {
			path = e.Name
		}
		f := render.File{Path: path, Data: e.Value, Mode: e.Secret.Mode, UID: e.Secret.UID, GID: e.Secret.GID}
		if err := add(f, "secret "+e.Name); err != nil {
			return nil, err
		}
		vars = append(vars, render.Var{Name: e.Name, Value: e.Text()})
		values[e.Name] = e.Value
	}
	for _, sec := range s.Secrets {
		if _, taken := values[sec.Name]; !taken && sec.Expand {
			if res, ok := fetched[sec.Name]; ok {
				values[sec.Name] = res.Value
			}
		}
	}
	if s.EnvFile != "" {
		data, err := render.EncodeEnv(vars)
		if err != nil {
			return nil, fmt.Errorf("envFile %s: %w", s.EnvFile, err)
		}
		if err := add(render.File{Path: s.EnvFile, Data: secret.New(data), Mode: s.Mode, UID: s.UID, GID: s.GID}, "envFile"); err != nil {
			return nil, err
		}
	}
	if s.JSONFile != "" {
		data, err := render.EncodeJSON(vars)
		if err != nil {
			return nil, fmt.Errorf("jsonFile %s: %w", s.JSONFile, err)
		}
		if err := add(render.File{Path: s.JSONFile, Data: secret.New(data), Mode: s.Mode, UID: s.UID, GID: s.GID}, "jsonFile"); err != nil {
			return nil, err
		}
	}
	for i, t := range s.Templates {
		data, err := t.Template.Execute(values)
		if err != nil {
			return nil, fmt.Errorf("templates[%d]: %w", i, err)
		}
		if err := add(render.File{Path: t.Destination, Data: data, Mode: t.Mode, UID: s.UID, GID: s.GID}, fmt.Sprintf("templates[%d]", i)); err != nil {
			return nil, err
		}
	}
	// Expanded keys are known only now, and may clash with a configured
	// path ("DB_USER" against "DB_USER/x"): fail before writing anything.
	if err := render.CheckTargets(targets); err != nil {
		return nil, err
	}
	return files, nil
}

// Env returns the environment entries NAME=value for the app, in
// configuration order. A value with a NUL byte cannot be an environment
// variable and is an error naming the entry.
func Env(s *config.Settings, fetched map[string]fetch.Result) ([]string, error) {
	entries, err := Entries(s, fetched)
	if err != nil {
		return nil, err
	}
	env := make([]string, 0, len(entries))
	for _, e := range entries {
		v := e.Text().Bytes()
		if bytes.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("secret %s: the value contains a NUL byte, which no environment variable can hold", e.Name)
		}
		env = append(env, e.Name+"="+string(v))
	}
	return env, nil
}

// Gone returns the paths of before that after no longer has, in before's
// order: the files a reload's removed secret (or key, or envFile…) leaves
// behind, for render.Dir.Remove.
func Gone(before, after []render.File) []string {
	keep := make(map[string]bool, len(after))
	for _, f := range after {
		keep[f.Path] = true
	}
	var gone []string
	for _, f := range before {
		if !keep[f.Path] {
			gone = append(gone, f.Path)
		}
	}
	return gone
}
