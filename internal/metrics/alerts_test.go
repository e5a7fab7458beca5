package metrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The alert rules ship with the metrics they query; they are tested here so
// a renamed metric breaks this package's tests, not a pager at night.
const repoRoot = "../.."

func TestAlertRules(t *testing.T) {
	if _, err := os.Stat(promtool); err != nil {
		t.Skipf("%s not found (install the Debian package prometheus): %v", promtool, err)
	}
	for _, args := range [][]string{
		{"check", "rules", "deploy/prometheus/alerts.yml"},
		{"test", "rules", "deploy/prometheus/alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// Every ecs_secrets_agent_ metric the rules name must be one New exports.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(repoRoot, "deploy/prometheus/alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := New(reg, "dev", func() bool { return true })
	m.ObserveAPICall("ssm", "GetParameters", "success", time.Millisecond)
	m.SecretOK("X", time.Now())
	m.Action("signal", "success")
	// The change feed's client registers its own (only with refresh.feed).
	fc := NewFeedClient(reg)
	fc.SetSource(false)
	fc.FeedError("unreachable")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}

	used := regexp.MustCompile(`ecs_secrets_agent_[a-z_]+`).FindAllString(string(rules), -1)
	if len(used) == 0 {
		t.Fatal("alerts.yml names no ecs_secrets_agent_ metric")
	}
	for _, name := range used {
		switch {
		case exported[name]:
		default:
			t.Errorf("alerts.yml uses %s, which the agent does not export", name)
		}
	}
}
