package config

import (
	"testing"
	"time"
)

func TestLoadWatch(t *testing.T) {
	w, err := LoadWatch("", env(map[string]string{"AGENT_CONFIG": `{"services":[{"cluster":"prod","service":"web","region":"eu-west-1"}],"interval":"30s","dryRun":true,"metricsAddr":":9200"}`}))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Services) != 1 || w.Services[0].String() != "prod/web" || w.Services[0].Region != "eu-west-1" ||
		w.IntervalOr(time.Hour) != 30*time.Second || !w.DryRun || w.MetricsAddr != ":9200" {
		t.Errorf("watch = %+v", w)
	}
	if w, err := LoadWatch("", env(nil)); err != nil || len(w.Services) != 0 || w.IntervalOr(time.Hour) != time.Hour {
		t.Errorf("empty = %+v, %v", w, err)
	}
	for _, tt := range []struct{ json, want string }{
		{`{"services":[{"cluster":"prod"}]}`, `services[0]: cluster and service are required`},
		{`{"services":[],"intervall":"1m"}`, `AGENT_CONFIG: intervall: unknown field`},
		{`{"interval":"soon"}`, `interval: "soon" is not a duration ("30s", "5m")`},
		{`{"interval":"100ms"}`, `interval: 100ms is below the minimum of 1s`},
		{`{"secrets":[]}`, `AGENT_CONFIG: secrets: unknown field`},
	} {
		_, err := LoadWatch("", env(map[string]string{"AGENT_CONFIG": tt.json}))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error %v, want %q", tt.json, err, tt.want)
		}
	}
	if _, err := LoadWatch("x.json", env(map[string]string{"AGENT_CONFIG": "{}"})); err == nil {
		t.Error("both --config and AGENT_CONFIG accepted")
	}
}
