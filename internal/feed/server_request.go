package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// parsed is a valid request: every ref with its key, the distinct keys,
// and how long it may be held.
type parsed struct {
	wait    time.Duration
	refs    []parsedRef          // sorted by valueFrom
	keys    map[string]parsedKey // by key; refused refs have none
	refused int                  // refs in a region the server does not serve
}

type parsedRef struct {
	valueFrom, have, key string
	// refused is the ref's region when the server does not serve it: the
	// ref has no key, is never tracked, and is answered with an error.
	refused string
}

type parsedKey struct {
	key string
	ref fetch.Ref
}

// parseRequest decodes a request body strictly: unknown fields, trailing
// data, a bad region, no refs or too many, a valueFrom that does not parse
// and a malformed wait are errors whose text says which. A ref whose
// region (the request's, for a bare name) is not one that serves reports
// is not an error: it is refused, and gets no key.
func parseRequest(body []byte, serves func(region string) bool) (parsed, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return parsed{}, fmt.Errorf("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return parsed{}, errors.New("malformed JSON: data after the request object")
	}
	switch {
	case req.Region == "":
		return parsed{}, errors.New(`region: required, the task's region ("eu-west-1")`)
	case !fetch.ValidRegion(req.Region):
		return parsed{}, fmt.Errorf(`region: %q is not an AWS region ("eu-west-1")`, req.Region)
	case len(req.Refs) == 0:
		return parsed{}, errors.New("refs: required, 1 to 1000 valueFrom → version held")
	case len(req.Refs) > MaxRefsPerRequest:
		return parsed{}, fmt.Errorf("refs: %d entries, at most %d", len(req.Refs), MaxRefsPerRequest)
	}
	wait, err := ParseWait(req.Wait)
	if err != nil {
		return parsed{}, err
	}
	p := parsed{wait: wait, refs: make([]parsedRef, 0, len(req.Refs)), keys: make(map[string]parsedKey, len(req.Refs))}
	vfs := make([]string, 0, len(req.Refs))
	for vf := range req.Refs {
		vfs = append(vfs, vf)
	}
	// Sorted, so that the first invalid ref is the one reported, every time.
	sort.Strings(vfs)
	for _, vf := range vfs {
		have := req.Refs[vf]
		key, ref, err := Key(req.Region, vf)
		if err != nil {
			return parsed{}, fmt.Errorf("refs: %v", err)
		}
		if !serves(ref.Region) {
			p.refs = append(p.refs, parsedRef{valueFrom: vf, have: have, refused: ref.Region})
			p.refused++
			continue
		}
		p.refs = append(p.refs, parsedRef{valueFrom: vf, have: have, key: key})
		if _, ok := p.keys[key]; !ok {
			p.keys[key] = parsedKey{key: key, ref: ref}
		}
	}
	return p, nil
}

// target is what a change event names: a parameter or a secret, or, for a
// bare name, either.
type target struct {
	region    string
	parameter string // without its leading "/"; "" if the event is not about one
	secret    string // a secret name, maybe with its "-AbCdEf" suffix; "" if not
}

// parseTarget reads Notify's id: a parameter name or ARN, a secret name, a
// partial or full secret ARN. An ARN's region wins over region.
func parseTarget(region, id string) target {
	t := target{region: region}
	if !strings.HasPrefix(id, "arn:") {
		t.parameter, t.secret = strings.TrimPrefix(id, "/"), id
		return t
	}
	f := strings.SplitN(id, ":", 6)
	if len(f) < 6 {
		return target{}
	}
	t.region = f[3]
	switch res := f[5]; {
	case f[2] == "ssm" && strings.HasPrefix(res, "parameter/"):
		t.parameter = strings.TrimPrefix(res, "parameter/")
	case f[2] == "secretsmanager" && strings.HasPrefix(res, "secret:"):
		t.secret, _, _ = strings.Cut(strings.TrimPrefix(res, "secret:"), ":")
	}
	return t
}

// names reports whether the event may be about r. A false match costs one
// metadata poll; a missed one delays a change to the next interval, so
// the match is generous: any selector of a parameter, a secret with or
// without its random suffix, any account.
func (t target) names(r fetch.Ref) bool {
	if r.Region != t.region {
		return false
	}
	switch {
	case r.Service == fetch.ParameterStore && r.ViaSecretsManager:
		return t.secret != "" && sameSecret(secretName(strings.TrimPrefix(r.Parameter, "/aws/reference/secretsmanager/")), t.secret)
	case r.Service == fetch.ParameterStore:
		return t.parameter != "" && strings.TrimPrefix(r.Parameter, "/") == t.parameter
	case r.Service == fetch.SecretsManager:
		return t.secret != "" && sameSecret(secretName(r.SecretID), t.secret)
	}
	return false
}

// secretName is the name part of a secret id: an ARN's resource after
// "secret:", else the id itself.
func secretName(id string) string {
	if i := strings.Index(id, ":secret:"); strings.HasPrefix(id, "arn:") && i >= 0 {
		return id[i+len(":secret:"):]
	}
	return id
}

// sameSecret compares secret names where either may carry the six
// characters Secrets Manager appends to a full ARN.
func sameSecret(a, b string) bool {
	return a == b || trimSuffix(a) == b || a == trimSuffix(b)
}

func trimSuffix(s string) string {
	n := len(s)
	if n < 8 || s[n-7] != '-' {
		return s
	}
	for _, c := range s[n-6:] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return s
		}
	}
	return s[:n-7]
}
