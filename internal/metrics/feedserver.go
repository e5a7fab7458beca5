package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// FeedServer is the change feed server's metrics (docs/FEED.md). Its AWS
// calls are counted by api_requests_total, through the aws.Config
// observer. All methods are safe on a nil *FeedServer.
type FeedServer struct {
	held     prometheus.Gauge
	tracked  prometheus.Gauge
	requests *prometheus.CounterVec
	changes  prometheus.Counter
	refused  prometheus.Counter
}

// feedCodes are the answers the feed gives, created at 0 so that the first
// of each is an increase.
var feedCodes = []int{200, 400, 401, 404, 405, 413, 415, 503}

// NewFeedServer registers the feed server's metrics with reg; nil gives
// working metrics that nothing exports.
func NewFeedServer(reg prometheus.Registerer) *FeedServer {
	f := promauto.With(reg)
	m := &FeedServer{
		held: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "feed_held_requests",
			Help:      "Change feed requests held open, waiting for a change.",
		}),
		tracked: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "feed_tracked_references",
			Help:      "Distinct references the change feed tracks (and polls, unless pinned).",
		}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "feed_requests_total",
			Help:      "Change feed requests answered, by HTTP status code.",
		}, []string{"code"}),
		changes: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "feed_versions_changed_total",
			Help:      "Tracked references whose version the change feed saw change.",
		}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "feed_refused_references_total",
			Help:      "References in requests answered with an error, never tracked, because their region is not one the change feed serves.",
		}),
	}
	for _, c := range feedCodes {
		m.requests.WithLabelValues(strconv.Itoa(c))
	}
	return m
}

// SetHeld records the number of requests held open.
func (m *FeedServer) SetHeld(n int) {
	if m == nil {
		return
	}
	m.held.Set(float64(n))
}

// SetTracked records the number of references tracked.
func (m *FeedServer) SetTracked(n int) {
	if m == nil {
		return
	}
	m.tracked.Set(float64(n))
}

// Answered counts one request answered with code.
func (m *FeedServer) Answered(code int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// VersionChanged counts one reference whose version changed.
func (m *FeedServer) VersionChanged() {
	if m == nil {
		return
	}
	m.changes.Inc()
}

// Refused counts n references refused because of their region.
func (m *FeedServer) Refused(n int) {
	if m == nil || n == 0 {
		return
	}
	m.refused.Add(float64(n))
}
