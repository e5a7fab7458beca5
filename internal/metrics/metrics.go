// Package metrics defines every Prometheus metric the agent exports.
//
// Label values are names and small fixed vocabularies (service, operation,
// outcome, kind, reason, the configured secret name); a secret's value never
// reaches this package.
package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const namespace = "ecs_secrets_agent"

// Outcomes of one AWS API call, as the outcome label of api_requests_total.
var apiOutcomes = []string{"success", "throttled", "client_error", "server_error", "network_error"}

// Metrics is every metric the agent exports. All methods are safe on a nil
// *Metrics (they do nothing), so `agent init` can run without a registry.
type Metrics struct {
	apiRequests  *prometheus.CounterVec
	apiDuration  *prometheus.HistogramVec
	refreshes    *prometheus.CounterVec
	interval     prometheus.Gauge
	lastSuccess  *prometheus.GaugeVec
	stale        *prometheus.GaugeVec
	changes      *prometheus.CounterVec
	actions      *prometheus.CounterVec
	filesWritten *prometheus.CounterVec
	pending      prometheus.Gauge
	renderFail   prometheus.Gauge
	reg          prometheus.Registerer
}

// Registerer is the registry the metrics were registered with, for the
// parts that own metrics of their own (the change feed); nil for a nil
// *Metrics or one made with a nil registry.
func (m *Metrics) Registerer() prometheus.Registerer {
	if m == nil {
		return nil
	}
	return m.reg
}

// New registers the agent's metrics with reg (it panics, as MustRegister
// does, if they are already registered there). A nil reg gives working
// metrics that nothing exports. ready backs ecs_secrets_agent_ready and is
// called on every scrape; when nil, that series is not exported rather than
// reporting a false 0.
func New(reg prometheus.Registerer, version string, ready func() bool) *Metrics {
	f := promauto.With(reg)

	f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "build_info",
		Help:      "Always 1; the labels say which agent version and Go release built this binary.",
	}, []string{"version", "goversion"}).WithLabelValues(version, runtime.Version()).Set(1)

	if ready != nil {
		f.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "ready",
			Help:      "1 when /readyz answers 200: the first render is done and no secret has been stale longer than refresh.maxStale; else 0.",
		}, func() float64 {
			return b2f(ready())
		})
	}

	m := &Metrics{
		reg: reg,
		apiRequests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "api_requests_total",
			Help:      "AWS API calls made, by service, operation and outcome (success, throttled, client_error, server_error, network_error).",
		}, []string{"service", "operation", "outcome"}),
		apiDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "api_request_duration_seconds",
			Help:      "Wall time of each AWS API call attempt (a retried call is observed once per attempt), by service and operation.",
			// A same-region call takes 5–50 ms; SDK retries under throttling
			// stretch one to seconds, and 10 s is where callers give up.
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"service", "operation"}),
		refreshes: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "refreshes_total",
			Help:      "Refresh cycles completed, by outcome: success (every secret fresh), failure (some secret could not be refreshed), throttled (AWS throttled the cycle).",
		}, []string{"outcome"}),
		interval: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "refresh_interval_seconds",
			Help:      "Current wait between refresh cycles before jitter; above the configured interval while backing off from throttling.",
		}),
		lastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "secret_last_success_timestamp_seconds",
			Help:      "Unix time the secret was last read from AWS successfully; absent until the first success.",
		}, []string{"name"}),
		stale: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "secret_stale",
			Help:      "1 when the last refresh of the secret failed and its file holds the last good value; 0 when fresh.",
		}, []string{"name"}),
		changes: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "secret_changes_total",
			Help:      "Times the secret's value changed in AWS and its files were rewritten.",
		}, []string{"name"}),
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "actions_total",
			Help:      "onChange actions run, by kind (signal, http, restart, redeploy) and outcome (success, failure).",
		}, []string{"kind", "outcome"}),
		filesWritten: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "files_written_total",
			Help:      "Output files written, by reason: change (a value changed) or repair (the file was deleted or modified on disk).",
		}, []string{"reason"}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "change_pending",
			Help:      "1 while a change of the secrets has not been delivered: its render or one of its onChange actions keeps failing and is retried; else 0.",
		}),
		renderFail: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "render_failing",
			Help:      "1 when the last render failed, so the files do not hold the latest values; else 0.",
		}),
	}

	// Export the bounded series at 0 from the start, so rate() and increase()
	// see the first failure or repair instead of a series that appears at 1.
	for _, o := range []string{"success", "failure", "throttled"} {
		m.refreshes.WithLabelValues(o)
	}
	for _, r := range []string{"change", "repair"} {
		m.filesWritten.WithLabelValues(r)
	}
	// So that the first failure of an action is an increase too.
	for _, k := range []string{"signal", "http", "redeploy", "restart"} {
		for _, o := range []string{"success", "failure"} {
			m.actions.WithLabelValues(k, o)
		}
	}
	return m
}

// ObserveAPICall records one AWS API call. outcome is one of success,
// throttled, client_error, server_error, network_error.
func (m *Metrics) ObserveAPICall(service, operation, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	// Create every outcome of this operation at 0 so the first throttle is
	// an increase; the lookups are cheap next to a network round trip.
	for _, o := range apiOutcomes {
		m.apiRequests.WithLabelValues(service, operation, o)
	}
	m.apiRequests.WithLabelValues(service, operation, outcome).Inc()
	m.apiDuration.WithLabelValues(service, operation).Observe(d.Seconds())
}

// RefreshDone counts one refresh cycle; outcome is success, failure or throttled.
func (m *Metrics) RefreshDone(outcome string) {
	if m == nil {
		return
	}
	m.refreshes.WithLabelValues(outcome).Inc()
}

// SetInterval records the current (possibly grown) refresh interval.
func (m *Metrics) SetInterval(d time.Duration) {
	if m == nil {
		return
	}
	m.interval.Set(d.Seconds())
}

// SecretOK records a successful read of the secret at at: not stale, and
// last success at.
func (m *Metrics) SecretOK(name string, at time.Time) {
	if m == nil {
		return
	}
	m.stale.WithLabelValues(name).Set(0)
	m.lastSuccess.WithLabelValues(name).Set(float64(at.UnixNano()) / 1e9)
	m.changes.WithLabelValues(name) // exported at 0 before the first change
}

// SecretStale records that the secret could not be refreshed; its last
// success time is kept.
func (m *Metrics) SecretStale(name string) {
	if m == nil {
		return
	}
	m.stale.WithLabelValues(name).Set(1)
}

// SecretChanged counts one change of the secret's value.
func (m *Metrics) SecretChanged(name string) {
	if m == nil {
		return
	}
	m.changes.WithLabelValues(name).Inc()
}

// Action counts one onChange action; kind is signal, http, restart or
// redeploy, outcome success or failure.
func (m *Metrics) Action(kind, outcome string) {
	if m == nil {
		return
	}
	m.actions.WithLabelValues(kind, outcome).Inc()
}

// ChangePending records whether a change is waiting to be delivered.
func (m *Metrics) ChangePending(pending bool) {
	if m == nil {
		return
	}
	m.pending.Set(b2f(pending))
}

// RenderFailing records whether the files miss the latest values.
func (m *Metrics) RenderFailing(failing bool) {
	if m == nil {
		return
	}
	m.renderFail.Set(b2f(failing))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// FilesWritten counts n files written; reason is change or repair.
func (m *Metrics) FilesWritten(reason string, n int) {
	if m == nil || n <= 0 { // a counter cannot go down; Add panics on < 0
		return
	}
	m.filesWritten.WithLabelValues(reason).Add(float64(n))
}

// ForgetSecret deletes the secret's series after a config reload removed it,
// so a removed secret neither stays stale nor keeps alerting.
func (m *Metrics) ForgetSecret(name string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"name": name}
	m.lastSuccess.Delete(l)
	m.stale.Delete(l)
	m.changes.Delete(l)
}
