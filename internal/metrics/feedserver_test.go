package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFeedServerMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewFeedServer(reg)
	m.SetHeld(3)
	m.SetTracked(2)
	m.Answered(200)
	m.VersionChanged()
	m.Refused(3)
	m.Refused(0)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP ecs_secrets_agent_feed_held_requests Change feed requests held open, waiting for a change.
# TYPE ecs_secrets_agent_feed_held_requests gauge
ecs_secrets_agent_feed_held_requests 3
# HELP ecs_secrets_agent_feed_refused_references_total References in requests answered with an error, never tracked, because their region is not one the change feed serves.
# TYPE ecs_secrets_agent_feed_refused_references_total counter
ecs_secrets_agent_feed_refused_references_total 3
# HELP ecs_secrets_agent_feed_tracked_references Distinct references the change feed tracks (and polls, unless pinned).
# TYPE ecs_secrets_agent_feed_tracked_references gauge
ecs_secrets_agent_feed_tracked_references 2
# HELP ecs_secrets_agent_feed_versions_changed_total Tracked references whose version the change feed saw change.
# TYPE ecs_secrets_agent_feed_versions_changed_total counter
ecs_secrets_agent_feed_versions_changed_total 1
`), "ecs_secrets_agent_feed_held_requests", "ecs_secrets_agent_feed_refused_references_total", "ecs_secrets_agent_feed_tracked_references", "ecs_secrets_agent_feed_versions_changed_total")
	if err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("200")); got != 1 {
		t.Errorf("requests{code=200} %v", got)
	}
	if got := testutil.CollectAndCount(m.requests); got != len(feedCodes) {
		t.Errorf("%d code series, want %d at 0 from the start", got, len(feedCodes))
	}
	var nilm *FeedServer
	nilm.SetHeld(1)
	nilm.Answered(200)
	nilm.Refused(1)
}
