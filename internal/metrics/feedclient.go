package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// FeedErrorReasons are the values of feed_errors_total's reason label: the
// feed could not be reached, was silent past its promise, refused the
// agent's token (401: AGENT_FEED_TOKEN missing or wrong), answered with
// another status than 200, or answered something that is not
// protocol v1.
var FeedErrorReasons = []string{"unreachable", "timeout", "unauthorized", "status", "malformed"}

// FeedClient is the change-feed client's metrics (docs/FEED.md). Methods
// are safe on a nil *FeedClient.
type FeedClient struct {
	source *prometheus.GaugeVec
	errors *prometheus.CounterVec
}

// NewFeedClient registers the client's metrics with reg; a nil reg gives
// working metrics that nothing exports. Until the feed first answers the
// source in use is direct.
func NewFeedClient(reg prometheus.Registerer) *FeedClient {
	f := promauto.With(reg)
	m := &FeedClient{
		source: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "refresh_source",
			Help:      "1 for where rotation news comes from now: feed (the change feed answers; secrets it does not cover are still polled) or direct (the agent polls AWS itself); 0 for the other.",
		}, []string{"source"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "feed_errors_total",
			Help:      "Failed requests to the change feed, by reason: unreachable, timeout (silent past wait + 10s), unauthorized (401: AGENT_FEED_TOKEN missing or wrong), status (another non-200 status), malformed (not protocol v1).",
		}, []string{"reason"}),
	}
	for _, r := range FeedErrorReasons {
		m.errors.WithLabelValues(r)
	}
	m.SetSource(false)
	return m
}

// SetSource records whether the feed (true) or direct polling is in use.
func (m *FeedClient) SetSource(feed bool) {
	if m == nil {
		return
	}
	m.source.WithLabelValues("feed").Set(b2f(feed))
	m.source.WithLabelValues("direct").Set(b2f(!feed))
}

// FeedError counts one failed request; reason is one of FeedErrorReasons.
func (m *FeedClient) FeedError(reason string) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(reason).Inc()
}
