package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/redeploy"
)

// startWatcher starts `agent watch` with args, as startSidecar starts run.
func startWatcher(t *testing.T, env []string, args ...string) *sidecar {
	t.Helper()
	cmd := exec.Command(agentBin, append([]string{"watch", "--metrics-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = env
	return startAgentCmd(t, cmd)
}

// settled counts the log lines in which an actor finished with a change:
// a sidecar's redeploy action, or the watcher's redeploy or skip.
func settled(logs string) int {
	n := 0
	for _, msg := range []string{`"msg":"redeploy done"`, `"msg":"redeployed service for rotated secrets"`,
		`"msg":"service already redeployed since the change`, `"msg":"service already deployed since the change; not redeploying"`} {
		n += strings.Count(logs, msg)
	}
	return n
}

// TestWatchAndSidecarsRedeployOncePerRotation: agent watch and five
// sidecars with {"redeploy":{}} on one service, UpdateService taking 1.5s:
// each of three rotations gives exactly one deployment, and afterwards one
// lock record is left (the newest, done, naming the last deployment).
func TestWatchAndSidecarsRedeployOncePerRotation(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/db", f.value("db"), true)
	f.fake.CreateService(region, "prod", "web", taskDef(f, "web", "/db"))
	f.fake.SetECSLatency("UpdateService", 1500*time.Millisecond)

	watcher := startWatcher(t, f.fake.Env(region), "--cluster", "prod", "--service", "web", "--interval", "1s")
	agents := startRedeploySidecars(t, f, 5, "300ms")
	eventually(t, "the watcher's baseline", 30*time.Second, func() bool { return strings.Contains(watcher.logs(), `"msg":"task definition read"`) })
	before := f.fake.Calls("DescribeServices")
	eventually(t, "two watcher cycles", 30*time.Second, func() bool { return f.fake.Calls("DescribeServices") >= before+2 })

	actors := append([]*sidecar{watcher}, agents...)
	for rotation := 1; rotation <= 3; rotation++ {
		f.fake.PutParameter(region, "/db", f.value(fmt.Sprintf("db%d", rotation+1)), true)
		// Every actor finishes with this rotation: deployed it, or found
		// it deployed.
		for i, a := range actors {
			eventually(t, fmt.Sprintf("actor %d done with rotation %d", i, rotation), 60*time.Second, func() bool { return settled(a.logs()) >= rotation })
		}
		// (Deployments keeps the PRIMARY and the one before, as ECS shows.)
		if n := f.fake.Calls("UpdateService"); n != rotation {
			var all strings.Builder
			for i, a := range actors {
				fmt.Fprintf(&all, "actor %d:\n%s\n", i, a.logs())
			}
			t.Fatalf("after rotation %d: %d UpdateService calls, want %d (one per rotation)\n%s", rotation, n, rotation, all.String())
		}
	}
	if n := f.fake.Calls("UpdateService"); n != 3 {
		t.Errorf("%d UpdateService calls for 3 rotations, want 3", n)
	}
	// Bounded: the newest record only, done, naming the last deployment.
	records := f.fake.ParameterNames(region, redeploy.LockPrefix)
	if len(records) != 1 || !strings.HasPrefix(records[0], redeploy.LockPath("prod", "web")+"/") {
		t.Fatalf("lock records %q, want one under %s", records, redeploy.LockPath("prod", "web"))
	}
	value, _ := f.fake.ParameterValue(region, records[0])
	var rec struct{ State, Deployment string }
	if err := json.Unmarshal([]byte(value), &rec); err != nil {
		t.Fatal(err)
	}
	if last := f.fake.Deployments(region, "prod", "web")[0]; rec.State != "done" || rec.Deployment != last.ID {
		t.Errorf("lock record %s = %s, want done naming %s", records[0], value, last.ID)
	}
	for _, a := range actors {
		a.stop(t)
		assertNoSecrets(t, "stderr", a.logs(), f.secrets)
	}
}

// TestRunRedeployFailureCountsAsFailure: a sidecar whose redeploy cannot
// deploy (UpdateService denied) counts actions_total{kind="redeploy"} as a
// failure, not a success, and logs the AWS error; nothing is deployed.
func TestRunRedeployFailureCountsAsFailure(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/db", f.value("db"), true)
	f.fake.CreateService(region, "prod", "web", taskDef(f, "web", "/db"))
	f.fake.DenyAccess("UpdateService", "web")
	conf, _ := json.Marshal(secretCfg{"secrets": []secretCfg{{"name": "DB", "valueFrom": "/db"}},
		"refresh": secretCfg{"interval": "1s", "jitter": "100ms"}, "onChange": []secretCfg{{"redeploy": secretCfg{}}}})
	meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"Cluster":"prod","TaskARN":"arn:aws:ecs:%s:111122223333:task/prod/t1","ServiceName":"web"}`, region)
	}))
	t.Cleanup(meta.Close)
	a := startSidecar(t, append(f.fake.Env(region), "AGENT_CONFIG="+string(conf), "ECS_CONTAINER_METADATA_URI_V4="+meta.URL+"/v4"), "--output-dir", f.out)
	eventually(t, "ready", 30*time.Second, func() bool { code, _ := a.get(t, "/readyz"); return code == 200 })
	f.fake.PutParameter(region, "/db", f.value("db2"), true)
	const failure = `ecs_secrets_agent_actions_total{kind="redeploy",outcome="failure"}`
	eventually(t, "a failed redeploy counted", 30*time.Second, func() bool { return a.metric(t, failure) >= 1 })
	if n := a.metric(t, `ecs_secrets_agent_actions_total{kind="redeploy",outcome="success"}`); n > 0 {
		t.Errorf("actions_total{redeploy,success} = %v after a denied UpdateService, want none", n)
	}
	if d := f.fake.Deployments(region, "prod", "web"); len(d) != 1 {
		t.Errorf("%d deployments, want the original only", len(d))
	}
	a.stop(t)
	if logs := a.logs(); !strings.Contains(logs, "AccessDeniedException") {
		t.Errorf("the AWS error is not logged:\n%s", logs)
	}
	assertNoSecrets(t, "stderr", a.logs(), f.secrets)
}
