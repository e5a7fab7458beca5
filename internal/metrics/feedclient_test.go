package metrics

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFeedClientSequence(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewFeedClient(reg)
	// Before the feed answers: direct, every reason at 0.
	want := `
# HELP ecs_secrets_agent_feed_errors_total Failed requests to the change feed, by reason: unreachable, timeout (silent past wait + 10s), unauthorized (401: AGENT_FEED_TOKEN missing or wrong), status (another non-200 status), malformed (not protocol v1).
# TYPE ecs_secrets_agent_feed_errors_total counter
ecs_secrets_agent_feed_errors_total{reason="malformed"} 0
ecs_secrets_agent_feed_errors_total{reason="status"} 0
ecs_secrets_agent_feed_errors_total{reason="timeout"} 0
ecs_secrets_agent_feed_errors_total{reason="unauthorized"} 0
ecs_secrets_agent_feed_errors_total{reason="unreachable"} 0
# HELP ecs_secrets_agent_refresh_source 1 for where rotation news comes from now: feed (the change feed answers; secrets it does not cover are still polled) or direct (the agent polls AWS itself); 0 for the other.
# TYPE ecs_secrets_agent_refresh_source gauge
ecs_secrets_agent_refresh_source{source="direct"} 1
ecs_secrets_agent_refresh_source{source="feed"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	m.SetSource(true)
	m.FeedError("timeout")
	m.FeedError("timeout")
	m.FeedError("status")
	want = strings.NewReplacer(
		`{reason="status"} 0`, `{reason="status"} 1`,
		`{reason="timeout"} 0`, `{reason="timeout"} 2`,
		`{source="direct"} 1`, `{source="direct"} 0`,
		`{source="feed"} 0`, `{source="feed"} 1`,
	).Replace(want)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	var nilM *FeedClient
	nilM.SetSource(true)
	nilM.FeedError("timeout")
	NewFeedClient(nil).FeedError("status") // registers nothing, works
}

func TestFeedClientPromtoolCheckMetrics(t *testing.T) {
	if _, err := os.Stat(promtool); err != nil {
		t.Skipf("%s not found (install the Debian package prometheus): %v", promtool, err)
	}
	reg := prometheus.NewRegistry()
	m := NewFeedClient(reg)
	m.FeedError("unreachable")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition(t, reg))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
