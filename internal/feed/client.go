package feed

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	URL      string        // refresh.feed: http://HOST:PORT
	Region   string        // the task's region, for bare Parameter Store names
	Interval time.Duration // the agent's refresh interval: the freshness it requires, and its fallback polling
	HTTP     *http.Client  // nil means a client of its own
	Log      *slog.Logger
	// Registerer takes the client's metrics (source in use, feed errors);
	// nil registers none.
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Client is an agent's side of the feed. It implements refresh.Feed; Run
// keeps a request open to the feed.
type Client struct {
	o ClientOptions
}

// NewClient returns a client; Run starts it.
func NewClient(o ClientOptions) (*Client, error) { return &Client{o: o}, nil }

// Run asks the feed until ctx ends.
func (c *Client) Run(ctx context.Context) { panic("feed: client not implemented yet") }
