package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// taskDef registers a task definition whose one container names refs.
func taskDef(f *fixture, family string, refs ...string) string {
	var secrets []ecstypes.Secret
	for i, r := range refs {
		secrets = append(secrets, ecstypes.Secret{Name: aws.String(fmt.Sprintf("S%d", i)), ValueFrom: aws.String(r)})
	}
	return f.fake.RegisterTaskDefinition(region, &ecs.RegisterTaskDefinitionInput{
		Family:               aws.String(family),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("app"), Secrets: secrets}},
	})
}

func TestWatchRedeploysEachServiceOncePerRotation(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/shared", f.value("shared"), true)
	f.fake.PutParameter(region, "/own", f.value("own"), true)
	f.fake.CreateService(region, "prod", "web", taskDef(f, "web", "/shared"))
	f.fake.CreateService(region, "prod", "api", taskDef(f, "api", "/shared", "/own"))
	f.fake.CreateService(region, "prod", "worker", taskDef(f, "worker", "/own"))

	// A dry run, by flag or by the configuration file's dryRun, calls no
	// mutating API (UpdateService, PutParameter, DeleteParameter).
	for _, mode := range []string{"dry-run flag", "dryRun in the config file", "real"} {
		dry := mode != "real"
		args := []string{"watch", "--cluster", "prod", "--service", "web", "--service", "api", "--service", "worker",
			"--interval", "1s", "--metrics-addr", "127.0.0.1:0"}
		env := f.fake.Env(region)
		if dry {
			// The same services from the configuration instead of flags.
			args = []string{"watch"}
			dryRun := `"dryRun":true,`
			if mode == "dry-run flag" {
				args, dryRun = append(args, "--dry-run"), ""
			}
			env = append(env, `AGENT_CONFIG={"services":[{"cluster":"prod","service":"web"},{"cluster":"prod","service":"api"},`+
				`{"cluster":"prod","service":"worker","region":"`+region+`"}],`+dryRun+`"interval":"1s","metricsAddr":"127.0.0.1:0"}`)
		}
		cmd := exec.Command(agentBin, args...)
		cmd.Env = env
		pipe, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		lines := make(chan string, 1000)
		go func() {
			sc := bufio.NewScanner(pipe)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		waitLog := func(what string) {
			t.Helper()
			deadline := time.After(30 * time.Second)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("agent exited before logging %q:\n%s", what, logs.String())
					}
					logs.WriteString(l + "\n")
					if strings.Contains(l, what) {
						return
					}
				case <-deadline:
					t.Fatalf("no %q in 30s:\n%s", what, logs.String())
				}
			}
		}
		waitLog(`"msg":"watching"`)
		before := f.fake.Calls("DescribeServices")
		eventually(t, "two cycles", 30*time.Second, func() bool { return f.fake.Calls("DescribeServices") >= before+2 })
		f.fake.ResetCounts()
		f.fake.PutParameter(region, "/shared", f.value("shared2"), true)
		if dry {
			waitLog("would redeploy")
		} else {
			eventually(t, "two redeploys", 30*time.Second, func() bool { return f.fake.Calls("UpdateService") >= 2 })
		}
		polls := f.fake.Calls("DescribeServices")
		eventually(t, "two quiet cycles", 30*time.Second, func() bool { return f.fake.Calls("DescribeServices") >= polls+2 })
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		for range lines {
		}
		want := map[string]int{"web": 1, "api": 1, "worker": 0}
		got := map[string]int{}
		for _, c := range f.fake.CallLog() {
			if dry && (c.Op == "UpdateService" || c.Op == "PutParameter" || c.Op == "DeleteParameter") {
				t.Errorf("%s: a dry run called %s %q", mode, c.Op, c.Names)
			}
			if c.Op == "UpdateService" {
				got[strings.Join(c.Names, ",")]++
			}
			if c.Op == "GetSecretValue" || (c.Op == "GetParameters" && c.WithDecryption) {
				t.Errorf("the watcher read a value: %+v", c)
			}
		}
		if dry {
			want = map[string]int{"web": 0, "api": 0, "worker": 0}
		}
		for svc, n := range want {
			if got[svc] != n {
				t.Errorf("%s: UpdateService for %s: %d, want %d (all: %v)", mode, svc, got[svc], n, got)
			}
		}
		assertNoSecrets(t, "stderr", logs.String(), f.secrets)
	}
}

// TestRunRedeployActionElectsOneTask runs three sidecars of one service,
// each with its own task metadata, and rotates a secret they all use:
// exactly one UpdateService.
func TestRunRedeployActionElectsOneTask(t *testing.T) {
	f := newFixture(t)
	f.fake.PutParameter(region, "/db", f.value("db"), true)
	f.fake.CreateService(region, "prod", "web", taskDef(f, "web", "/db"))
	f.fake.SetECSLatency("UpdateService", 1500*time.Millisecond)
	agents := startRedeploySidecars(t, f, 3, "500ms")
	f.fake.PutParameter(region, "/db", f.value("db2"), true)
	eventually(t, "a redeploy", 30*time.Second, func() bool { return f.fake.Calls("UpdateService") >= 1 })
	// Every task has seen the change and had time to race (UpdateService takes 1.5s).
	for _, a := range agents {
		eventually(t, "the change seen", 30*time.Second, func() bool { return strings.Contains(a.logs(), `"msg":"secrets changed"`) })
	}
	eventually(t, "the election settled", 30*time.Second, func() bool {
		n := 0
		for _, a := range agents {
			if strings.Contains(a.logs(), `"msg":"redeploy done"`) {
				n++
			}
		}
		return n >= 1
	})
	if n := f.fake.Calls("UpdateService"); n != 1 {
		t.Errorf("%d UpdateService calls from 3 tasks, want 1", n)
	}
	if d := f.fake.Deployments(region, "prod", "web"); len(d) != 2 {
		t.Errorf("%d deployments, want the original and one new", len(d))
	}
	for _, a := range agents {
		a.stop(t)
		assertNoSecrets(t, "stderr", a.logs(), f.secrets)
	}
}

// startRedeploySidecars starts n sidecars of service prod/web, each a task
// of its own (its own metadata endpoint and task ARN) whose only action is
// the in-task redeploy of secret DB (/db), and waits until all are ready.
func startRedeploySidecars(t *testing.T, f *fixture, n int, jitter string) []*sidecar {
	t.Helper()
	conf, _ := json.Marshal(secretCfg{"secrets": []secretCfg{{"name": "DB", "valueFrom": "/db"}},
		"refresh": secretCfg{"interval": "1s", "jitter": jitter}, "onChange": []secretCfg{{"redeploy": secretCfg{}}}})
	var agents []*sidecar
	for i := range n {
		meta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"Cluster":"arn:aws:ecs:%s:111122223333:cluster/prod","TaskARN":"arn:aws:ecs:%s:111122223333:task/prod/task%d","ServiceName":"web"}`, region, region, i)
		}))
		t.Cleanup(meta.Close)
		env := append(f.fake.Env(region), "AGENT_CONFIG="+string(conf), "ECS_CONTAINER_METADATA_URI_V4="+meta.URL+"/v4")
		agents = append(agents, startSidecar(t, env, "--output-dir", fmt.Sprintf("%s-%d", f.out, i)))
	}
	for _, a := range agents {
		eventually(t, "ready", 30*time.Second, func() bool { code, _ := a.get(t, "/readyz"); return code == 200 })
	}
	return agents
}
