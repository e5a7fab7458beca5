// Package feed is the change feed (SPEC §6 "Change feed"; the protocol is
// docs/FEED.md). A watcher serves, over HTTP, the versions of the
// references its clients ask about, polling AWS for metadata only and
// holding each request open until one of them changes, in the way of
// Consul's blocking queries. An agent with refresh.feed asks it instead of
// polling AWS, and fetches a changed value itself, with its own role.
//
// The feed never reads or serves a value. What a client sends back, the
// versions it holds, is the whole of its state: a client that reconnects,
// to the same watcher or another, misses no change, and a change made
// while no client was connected is told at the next request.
package feed

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// Path is the one endpoint of protocol version 1.
const Path = "/v1/changes"

// Limits of protocol version 1. A server may lower the number of clients
// and references it tracks (Options); these bound one request.
const (
	DefaultWait       = 60 * time.Second // hold, when a request gives no wait
	MaxWait           = 5 * time.Minute  // a longer wait is cut to this
	MaxBodyBytes      = 256 << 10        // request body
	MaxRefsPerRequest = 1000
)

// Request is the body of POST /v1/changes.
type Request struct {
	// Region is where the client's bare Parameter Store names resolve (its
	// task's region). Required.
	Region string `json:"region"`
	// Wait is how long the server may hold the request when nothing the
	// client holds is out of date: a Go duration ("60s"). "" means
	// DefaultWait; "0s" answers at once with the feed's current view.
	Wait string `json:"wait,omitempty"`
	// Refs maps each valueFrom the client watches to the version it holds:
	// a Parameter Store version number, a Secrets Manager version id, as
	// AWS gave them ("" when it holds none).
	Refs map[string]string `json:"refs"`
}

// Response is the 200 answer: the feed's view of every ref of the request.
type Response struct {
	Refs map[string]RefState `json:"refs"`
	// Changed lists, sorted, the refs whose version the feed knows and
	// differs from the one the request held.
	Changed []string `json:"changed"`
	// Interval is the server's polling interval (a Go duration).
	Interval string `json:"interval"`
}

// RefState is the feed's view of one ref.
type RefState struct {
	// Version is the version the ref resolves to now, as the client would
	// get it from AWS; "" while the feed has not read it yet, or cannot.
	Version string `json:"version,omitempty"`
	// Age is how many seconds ago, by the server's clock, the feed last
	// read Version successfully. A client counts the ref as covered only
	// while Age plus the time since the answer is within its own interval.
	Age float64 `json:"age"`
	// Error says why the last read failed (an AWS error code and message,
	// never a value); the client polls such a ref itself.
	Error string `json:"error,omitempty"`
	// Splay is how many seconds the clients told of this version should
	// spread their value fetches over, each waiting a random part of it:
	// the feed tells thousands of tasks at once, and their fetches share
	// one account quota (ECS's task starts use Parameter Store's too). 0
	// or absent: fetch at once.
	Splay float64 `json:"splay,omitempty"`
}

// Fetch rates the feed spreads a change's value fetches to, per reference
// (Splay = clients told / rate). Parameter Store's: half its default
// GetParameters quota of 40/s, leaving the rest to ECS's task starts and
// to everything else in the account; Secrets Manager's: a quarter of
// GetSecretValue's 10,000/s.
const (
	ParameterStoreFetchRate = 20
	SecretsManagerFetchRate = 2500
)

// SplayFor is the Splay of a change told to clients at once.
func SplayFor(service fetch.Service, clients int) float64 {
	rate := float64(SecretsManagerFetchRate)
	if service == fetch.ParameterStore {
		// /aws/reference/secretsmanager/ names too: read through
		// GetParameters.
		rate = ParameterStoreFetchRate
	}
	return math.Round(float64(clients)/rate*1000) / 1000
}

// ErrorBody is the JSON body of every 4xx and 5xx answer.
type ErrorBody struct {
	Error string `json:"error"`
}

// Key is what the feed tracks for one ref: the parsed reference with the
// request's region filled in for a bare name, and the string that
// identifies what AWS is asked about. Refs that differ only in a JSON key
// ("db:user::" and "db:password::") share a key: one poll serves both.
func Key(region, valueFrom string) (key string, ref fetch.Ref, err error) {
	ref, err = fetch.ParseRef(valueFrom)
	if err != nil {
		return "", fetch.Ref{}, err
	}
	switch ref.Service {
	case fetch.ParameterStore:
		if ref.Region == "" {
			ref.Region = region
		}
		return fmt.Sprintf("ssm %s %s", ref.Region, ref.ParameterQuery()), ref, nil
	case fetch.SecretsManager:
		ref.JSONKey = ""
		stage := ref.VersionStage
		if stage == "" && ref.VersionID == "" {
			stage = "AWSCURRENT"
		}
		return fmt.Sprintf("secretsmanager %s %s %s %s", ref.Region, ref.SecretID, stage, ref.VersionID), ref, nil
	}
	return "", fetch.Ref{}, fmt.Errorf("valueFrom %q: unknown service", valueFrom)
}

// ParseWait reads Request.Wait: "" is DefaultWait, longer than MaxWait is
// MaxWait.
func ParseWait(s string) (time.Duration, error) {
	if s == "" {
		return DefaultWait, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("wait: %q is not a duration (\"60s\")", s)
	}
	return min(d, MaxWait), nil
}

// Encode is json.Marshal for the feed's types, which cannot fail.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
