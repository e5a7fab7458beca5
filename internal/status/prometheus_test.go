package status

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/metrics"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/promtest"
)

// A real Prometheus scrapes Handler and sees readiness flip, and loads the
// shipped alert rules without error.
func TestPrometheusScrapes(t *testing.T) {
	start := time.Now()
	s := New(10*time.Minute, time.Now)
	reg := prometheus.NewRegistry()
	metrics.New(reg, "test", func() bool { ok, _ := s.Ready(); return ok })
	agent := httptest.NewServer(Handler(s, reg))
	t.Cleanup(agent.Close)

	rules, err := filepath.Abs("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := promtest.Start(t, strings.TrimPrefix(agent.URL, "http://"), rules)
	t.Logf("prometheus ready after %s", time.Since(start).Round(time.Millisecond))

	// Not ready before the first render: the series is 0 and the rule that
	// watches it, evaluated against real scraped names, goes pending.
	p.WaitFor(t, "ecs_secrets_agent_ready", "0")
	p.WaitFor(t, `ALERTS{alertname="EcsSecretsAgentDown",cause="not_ready",alertstate="pending"}`, "1")
	s.Rendered()
	p.WaitFor(t, "ecs_secrets_agent_ready", "1")
	p.WaitFor(t, `count(ALERTS{alertname=~"EcsSecretsAgent.*"}) or vector(0)`, "0")
	p.WaitFor(t, `ecs_secrets_agent_build_info{version="test"}`, "1")
	p.WaitRulesHealthy(t, "ecs-secrets-agent")
	t.Logf("scraped and evaluated after %s", time.Since(start).Round(time.Millisecond))
}
