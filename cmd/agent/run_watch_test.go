package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/promtest"
)

func TestRunScrapedByPrometheus(t *testing.T) {
	if _, err := os.Stat(promtest.Bin); err != nil {
		t.Skipf("%s not found (install the Debian package prometheus): %v", promtest.Bin, err)
	}
	f := newFixture(t)
	f.fake.PutParameter(region, "/a", f.value("a"), true)
	s := startSidecar(t, f.fake.Env(region), "--output-dir", f.out, "--secret", "A=/a", "--interval", "1m")
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	rules, err := filepath.Abs("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	p := promtest.Start(t, s.addr, rules)
	p.WaitFor(t, "ecs_secrets_agent_ready == 1", "1")
	p.WaitFor(t, `ecs_secrets_agent_secret_stale{name="A"}`, "0")
	p.WaitRulesHealthy(t, "ecs-secrets-agent")
	s.stop(t)
}

// TestRunWatchesConfigAndOutput changes the config file under a running
// agent (valid, then invalid) and tampers with an output file.
func TestRunWatchesConfigAndOutput(t *testing.T) {
	f := newFixture(t)
	a, b := f.value("a"), f.value("b")
	f.fake.PutParameter(region, "/a", a, true)
	f.fake.PutParameter(region, "/b", b, true)
	conf := filepath.Join(t.TempDir(), "agent.json")
	write := func(v any) {
		data, _ := json.Marshal(v)
		// Replace by rename, as deploy tools and editors do.
		tmp := conf + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, conf); err != nil {
			t.Fatal(err)
		}
	}
	write(secretCfg{"secrets": []secretCfg{{"name": "A", "valueFrom": "/a"}}, "refresh": secretCfg{"interval": "1h"}})
	s := startSidecar(t, f.fake.Env(region), "--output-dir", f.out, "--config", conf)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := s.get(t, "/readyz"); return code == 200 })
	assertFile(t, filepath.Join(f.out, "A"), a, 0o444)

	// A deleted or altered output file is rewritten, with no AWS call.
	f.fake.ResetCounts()
	if err := os.Remove(filepath.Join(f.out, "A")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A rewritten", 10*time.Second, func() bool { got, err := os.ReadFile(filepath.Join(f.out, "A")); return err == nil && string(got) == a })
	if err := os.Chmod(filepath.Join(f.out, "A"), 0o666); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A's mode restored", 10*time.Second, func() bool {
		fi, err := os.Stat(filepath.Join(f.out, "A"))
		return err == nil && fi.Mode().Perm() == 0o444
	})
	if n := len(f.fake.CallLog()); n != 0 {
		t.Errorf("repairs made %d AWS calls", n)
	}

	// A valid new config: B appears.
	write(secretCfg{"secrets": []secretCfg{{"name": "A", "valueFrom": "/a"}, {"name": "B", "valueFrom": "/b"}}, "refresh": secretCfg{"interval": "1h"}})
	eventually(t, "B written", 10*time.Second, func() bool { got, err := os.ReadFile(filepath.Join(f.out, "B")); return err == nil && string(got) == b })

	// An invalid one is rejected with a clear line; the old one stays.
	if err := os.WriteFile(conf, []byte(`{"secrets":[{"name":"C","valueFrom":"arn:aws:s3:::x"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rejection logged", 10*time.Second, func() bool {
		return strings.Contains(s.logs(), `reloaded configuration rejected; keeping the old one: secrets[0].valueFrom: invalid valueFrom \"arn:aws:s3:::x\"`)
	})
	if code, body := s.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz %d after a rejected reload: %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(f.out, "C")); !os.IsNotExist(err) {
		t.Errorf("the invalid config was applied: %v", err)
	}
	s.stop(t)
	assertNoSecrets(t, "stderr", s.logs(), f.secrets)
}
