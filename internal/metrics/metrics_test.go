package metrics

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const promtool = "/usr/bin/promtool"

// exercise makes every method of m record something.
func exercise(m *Metrics, ready *bool) {
	at := time.Unix(1700000000, 500_000_000)
	m.ObserveAPICall("ssm", "GetParameters", "success", 20*time.Millisecond)
	m.ObserveAPICall("ssm", "GetParameters", "throttled", 300*time.Millisecond)
	m.ObserveAPICall("secretsmanager", "DescribeSecret", "success", 3*time.Second)
	m.RefreshDone("success")
	m.RefreshDone("throttled")
	m.SetInterval(7*time.Minute + 30*time.Second)
	m.SecretOK("DB_PASSWORD", at)
	m.SecretOK("API_KEY", at)
	m.SecretStale("API_KEY")
	m.SecretStale("NEVER_READ")
	m.SecretChanged("DB_PASSWORD")
	m.SecretChanged("DB_PASSWORD")
	m.Action("signal", "success")
	m.Action("redeploy", "failure")
	m.FilesWritten("change", 3)
	m.FilesWritten("repair", 0) // nothing written: no change
	m.ChangePending(true)
	m.RenderFailing(true)
	m.RenderFailing(false)
	*ready = true
}

func TestSequence(t *testing.T) {
	reg := prometheus.NewRegistry()
	ready := false
	m := New(reg, "1.2.3", func() bool { return ready })

	// Before anything happens: build info, not ready, the bounded series at 0.
	before := fmt.Sprintf(`
# HELP ecs_secrets_agent_actions_total onChange actions run, by kind (signal, http, restart, redeploy) and outcome (success, failure).
# TYPE ecs_secrets_agent_actions_total counter
ecs_secrets_agent_actions_total{kind="http",outcome="failure"} 0
ecs_secrets_agent_actions_total{kind="http",outcome="success"} 0
ecs_secrets_agent_actions_total{kind="redeploy",outcome="failure"} 0
ecs_secrets_agent_actions_total{kind="redeploy",outcome="success"} 0
ecs_secrets_agent_actions_total{kind="restart",outcome="failure"} 0
ecs_secrets_agent_actions_total{kind="restart",outcome="success"} 0
ecs_secrets_agent_actions_total{kind="signal",outcome="failure"} 0
ecs_secrets_agent_actions_total{kind="signal",outcome="success"} 0
# HELP ecs_secrets_agent_build_info Always 1; the labels say which agent version and Go release built this binary.
# TYPE ecs_secrets_agent_build_info gauge
ecs_secrets_agent_build_info{goversion=%q,version="1.2.3"} 1
# HELP ecs_secrets_agent_ready 1 when /readyz answers 200: the first render is done and no secret has been stale longer than refresh.maxStale; else 0.
# TYPE ecs_secrets_agent_ready gauge
ecs_secrets_agent_ready 0
# HELP ecs_secrets_agent_refreshes_total Refresh cycles completed, by outcome: success (every secret fresh), failure (some secret could not be refreshed), throttled (AWS throttled the cycle).
# TYPE ecs_secrets_agent_refreshes_total counter
ecs_secrets_agent_refreshes_total{outcome="failure"} 0
ecs_secrets_agent_refreshes_total{outcome="success"} 0
ecs_secrets_agent_refreshes_total{outcome="throttled"} 0
# HELP ecs_secrets_agent_render_failing 1 when the last render failed, so the files do not hold the latest values; else 0.
# TYPE ecs_secrets_agent_render_failing gauge
ecs_secrets_agent_render_failing 0
# HELP ecs_secrets_agent_change_pending 1 while a change of the secrets has not been delivered: its render or one of its onChange actions keeps failing and is retried; else 0.
# TYPE ecs_secrets_agent_change_pending gauge
ecs_secrets_agent_change_pending 0
# HELP ecs_secrets_agent_files_written_total Output files written, by reason: change (a value changed) or repair (the file was deleted or modified on disk).
# TYPE ecs_secrets_agent_files_written_total counter
ecs_secrets_agent_files_written_total{reason="change"} 0
ecs_secrets_agent_files_written_total{reason="repair"} 0
# HELP ecs_secrets_agent_refresh_interval_seconds Current wait between refresh cycles before jitter; above the configured interval while backing off from throttling.
# TYPE ecs_secrets_agent_refresh_interval_seconds gauge
ecs_secrets_agent_refresh_interval_seconds 0
`, runtime.Version())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(before)); err != nil {
		t.Fatalf("before any call:\n%v", err)
	}

	exercise(m, &ready)

	after := fmt.Sprintf(`
# HELP ecs_secrets_agent_actions_total onChange actions run, by kind (signal, http, restart, redeploy) and outcome (success, failure).
# TYPE ecs_secrets_agent_actions_total counter
ecs_secrets_agent_actions_total{kind="http",outcome="failure"} 0
ecs_secrets_agent_actions_total{kind="http",outcome="success"} 0
ecs_secrets_agent_actions_total{kind="redeploy",outcome="failure"} 1
ecs_secrets_agent_actions_total{kind="redeploy",outcome="success"} 0
ecs_secrets_agent_actions_total{kind="restart",outcome="failure"} 0
ecs_secrets_agent_actions_total{kind="restart",outcome="success"} 0
ecs_secrets_agent_actions_total{kind="signal",outcome="failure"} 0
ecs_secrets_agent_actions_total{kind="signal",outcome="success"} 1
# HELP ecs_secrets_agent_api_request_duration_seconds Wall time of each AWS API call attempt (a retried call is observed once per attempt), by service and operation.
# TYPE ecs_secrets_agent_api_request_duration_seconds histogram
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="0.005"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="0.01"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="0.025"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="0.05"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="0.1"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="0.25"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="0.5"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="1"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="2.5"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="5"} 1
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="10"} 1
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="DescribeSecret",service="secretsmanager",le="+Inf"} 1
ecs_secrets_agent_api_request_duration_seconds_sum{operation="DescribeSecret",service="secretsmanager"} 3
ecs_secrets_agent_api_request_duration_seconds_count{operation="DescribeSecret",service="secretsmanager"} 1
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="0.005"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="0.01"} 0
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="0.025"} 1
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="0.05"} 1
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="0.1"} 1
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="0.25"} 1
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="0.5"} 2
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="1"} 2
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="2.5"} 2
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="5"} 2
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="10"} 2
ecs_secrets_agent_api_request_duration_seconds_bucket{operation="GetParameters",service="ssm",le="+Inf"} 2
ecs_secrets_agent_api_request_duration_seconds_sum{operation="GetParameters",service="ssm"} 0.32
ecs_secrets_agent_api_request_duration_seconds_count{operation="GetParameters",service="ssm"} 2
# HELP ecs_secrets_agent_api_requests_total AWS API calls made, by service, operation and outcome (success, throttled, client_error, server_error, network_error).
# TYPE ecs_secrets_agent_api_requests_total counter
ecs_secrets_agent_api_requests_total{operation="DescribeSecret",outcome="client_error",service="secretsmanager"} 0
ecs_secrets_agent_api_requests_total{operation="DescribeSecret",outcome="network_error",service="secretsmanager"} 0
ecs_secrets_agent_api_requests_total{operation="DescribeSecret",outcome="server_error",service="secretsmanager"} 0
ecs_secrets_agent_api_requests_total{operation="DescribeSecret",outcome="success",service="secretsmanager"} 1
ecs_secrets_agent_api_requests_total{operation="DescribeSecret",outcome="throttled",service="secretsmanager"} 0
ecs_secrets_agent_api_requests_total{operation="GetParameters",outcome="client_error",service="ssm"} 0
ecs_secrets_agent_api_requests_total{operation="GetParameters",outcome="network_error",service="ssm"} 0
ecs_secrets_agent_api_requests_total{operation="GetParameters",outcome="server_error",service="ssm"} 0
ecs_secrets_agent_api_requests_total{operation="GetParameters",outcome="success",service="ssm"} 1
ecs_secrets_agent_api_requests_total{operation="GetParameters",outcome="throttled",service="ssm"} 1
# HELP ecs_secrets_agent_build_info Always 1; the labels say which agent version and Go release built this binary.
# TYPE ecs_secrets_agent_build_info gauge
ecs_secrets_agent_build_info{goversion=%q,version="1.2.3"} 1
# HELP ecs_secrets_agent_change_pending 1 while a change of the secrets has not been delivered: its render or one of its onChange actions keeps failing and is retried; else 0.
# TYPE ecs_secrets_agent_change_pending gauge
ecs_secrets_agent_change_pending 1
# HELP ecs_secrets_agent_files_written_total Output files written, by reason: change (a value changed) or repair (the file was deleted or modified on disk).
# TYPE ecs_secrets_agent_files_written_total counter
ecs_secrets_agent_files_written_total{reason="change"} 3
ecs_secrets_agent_files_written_total{reason="repair"} 0
# HELP ecs_secrets_agent_ready 1 when /readyz answers 200: the first render is done and no secret has been stale longer than refresh.maxStale; else 0.
# TYPE ecs_secrets_agent_ready gauge
ecs_secrets_agent_ready 1
# HELP ecs_secrets_agent_refresh_interval_seconds Current wait between refresh cycles before jitter; above the configured interval while backing off from throttling.
# TYPE ecs_secrets_agent_refresh_interval_seconds gauge
ecs_secrets_agent_refresh_interval_seconds 450
# HELP ecs_secrets_agent_refreshes_total Refresh cycles completed, by outcome: success (every secret fresh), failure (some secret could not be refreshed), throttled (AWS throttled the cycle).
# TYPE ecs_secrets_agent_refreshes_total counter
ecs_secrets_agent_refreshes_total{outcome="failure"} 0
ecs_secrets_agent_refreshes_total{outcome="success"} 1
ecs_secrets_agent_refreshes_total{outcome="throttled"} 1
# HELP ecs_secrets_agent_render_failing 1 when the last render failed, so the files do not hold the latest values; else 0.
# TYPE ecs_secrets_agent_render_failing gauge
ecs_secrets_agent_render_failing 0
# HELP ecs_secrets_agent_secret_changes_total Times the secret's value changed in AWS and its files were rewritten.
# TYPE ecs_secrets_agent_secret_changes_total counter
ecs_secrets_agent_secret_changes_total{name="API_KEY"} 0
ecs_secrets_agent_secret_changes_total{name="DB_PASSWORD"} 2
# HELP ecs_secrets_agent_secret_last_success_timestamp_seconds Unix time the secret was last read from AWS successfully; absent until the first success.
# TYPE ecs_secrets_agent_secret_last_success_timestamp_seconds gauge
ecs_secrets_agent_secret_last_success_timestamp_seconds{name="API_KEY"} 1.7000000005e+09
ecs_secrets_agent_secret_last_success_timestamp_seconds{name="DB_PASSWORD"} 1.7000000005e+09
# HELP ecs_secrets_agent_secret_stale 1 when the last refresh of the secret failed and its file holds the last good value; 0 when fresh.
# TYPE ecs_secrets_agent_secret_stale gauge
ecs_secrets_agent_secret_stale{name="API_KEY"} 1
ecs_secrets_agent_secret_stale{name="DB_PASSWORD"} 0
ecs_secrets_agent_secret_stale{name="NEVER_READ"} 1
`, runtime.Version())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(after)); err != nil {
		t.Fatalf("after the sequence:\n%v", err)
	}

	// A reload that drops API_KEY and NEVER_READ deletes all their series;
	// DB_PASSWORD keeps its own.
	m.ForgetSecret("API_KEY")
	m.ForgetSecret("NEVER_READ")
	m.ForgetSecret("NOT_CONFIGURED") // nothing to delete: no panic
	forgotten := `
# HELP ecs_secrets_agent_secret_changes_total Times the secret's value changed in AWS and its files were rewritten.
# TYPE ecs_secrets_agent_secret_changes_total counter
ecs_secrets_agent_secret_changes_total{name="DB_PASSWORD"} 2
# HELP ecs_secrets_agent_secret_last_success_timestamp_seconds Unix time the secret was last read from AWS successfully; absent until the first success.
# TYPE ecs_secrets_agent_secret_last_success_timestamp_seconds gauge
ecs_secrets_agent_secret_last_success_timestamp_seconds{name="DB_PASSWORD"} 1.7000000005e+09
# HELP ecs_secrets_agent_secret_stale 1 when the last refresh of the secret failed and its file holds the last good value; 0 when fresh.
# TYPE ecs_secrets_agent_secret_stale gauge
ecs_secrets_agent_secret_stale{name="DB_PASSWORD"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(forgotten),
		"ecs_secrets_agent_secret_changes_total",
		"ecs_secrets_agent_secret_last_success_timestamp_seconds",
		"ecs_secrets_agent_secret_stale",
	); err != nil {
		t.Fatalf("after ForgetSecret:\n%v", err)
	}
}

func TestNilReady(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, "dev", nil)
	if n, err := testutil.GatherAndCount(reg, "ecs_secrets_agent_ready"); err != nil || n != 0 {
		t.Fatalf("ecs_secrets_agent_ready series with a nil ready func = %d, %v; want 0 (absent, not a false 0)", n, err)
	}
}

func TestNilRegisterer(t *testing.T) {
	ready := false
	m := New(nil, "dev", func() bool { return false })
	exercise(m, &ready) // records into unregistered metrics without panicking
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	ready := false
	exercise(m, &ready)
	m.ForgetSecret("DB_PASSWORD")
}

func TestDoubleRegistrationPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, "dev", func() bool { return true })
	defer func() {
		if recover() == nil {
			t.Fatal("registering the agent's metrics twice in one registry did not panic")
		}
	}()
	New(reg, "dev", func() bool { return true })
}

// exposition is what a scrape of reg returns, in the text format Prometheus
// 2.x negotiates.
func exposition(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

func TestPromtoolCheckMetrics(t *testing.T) {
	if _, err := os.Stat(promtool); err != nil {
		t.Skipf("%s not found (install the Debian package prometheus): %v", promtool, err)
	}
	reg := prometheus.NewRegistry()
	ready := false
	exercise(New(reg, "1.2.3", func() bool { return ready }), &ready)
	text := exposition(t, reg)

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\non:\n%s", err, out, text)
	}
}
