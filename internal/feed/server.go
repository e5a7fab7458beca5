package feed

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/status"
)

// Versioner is what the server needs of *fetch.Fetcher: versions, never
// values. One serves every region: Key fills in each bare name's region.
type Versioner interface {
	Versions(ctx context.Context, reqs []fetch.Request) (map[string]fetch.Version, error)
}

// ServerOptions configure a Server. Zero values take the defaults.
type ServerOptions struct {
	Source           Versioner
	Interval, Jitter time.Duration // between polls; Interval 0 means DefaultServerInterval
	MaxClients       int           // requests held at once; 0 means DefaultMaxClients
	MaxRefs          int           // distinct keys tracked; 0 means DefaultMaxRefs
	Log              *slog.Logger
	Registerer       prometheus.Registerer // for the feed's metrics; nil registers none
	Status           *status.Status        // feed problems for /readyz; may be nil
	Now              func() time.Time
	Rand             func() float64
}

// Defaults of ServerOptions.
const (
	DefaultServerInterval = time.Minute
	DefaultMaxClients     = 20000
	DefaultMaxRefs        = 10000
)

// Server is the feed's server side: the tracked references and the held
// requests. Handler serves it; Run polls AWS.
type Server struct {
	o ServerOptions
}

// NewServer returns a server; Run starts its polling.
func NewServer(o ServerOptions) *Server { return &Server{o: o} }

// Handler serves Path.
func (s *Server) Handler() http.Handler { panic("feed: server not implemented yet") }

// Run polls the tracked references until ctx ends.
func (s *Server) Run(ctx context.Context) error { panic("feed: server not implemented yet") }

// Notify is a change event for a parameter or secret (a name or ARN) in a
// region: the references that name it are polled now, not at the next
// interval.
func (s *Server) Notify(region, id string) { panic("feed: server not implemented yet") }
