// Package taskdefs checks the example task definitions and IAM policies under
// deploy/: they register as written (strict JSON of the ECS API's shape), the
// containers fit together, Fargate examples use only what Fargate runs, every
// agent invocation's flags and AGENT_CONFIG pass the agent's own
// `agent check --for init|run|exec`, and an app run through `agent exec` runs
// the agent an installer container put into its volume. An `agent watch`
// service's flags are those `agent watch -h` lists, its task role policy is
// what `agent policy --command watch` prints for them, and deploy/README.md
// creates the service with one task that is never doubled by a deployment.
// A watcher that serves the change feed listens where other tasks reach
// it, has the metadata-only policy of `agent policy --feed`, runs as two or
// more tasks behind a load balancer, and polls at most half as often as
// the agents that use it.
package taskdefs

import (
	"bytes"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/tdcheck"
)

// What the test puts in place of ACCOUNT_ID and REGION.
const (
	testAccount = "111122223333"
	testRegion  = "us-east-1"
)

// What a user replaces (deploy/README.md), and what the test puts there.
var placeholders = strings.NewReplacer(
	"ACCOUNT_ID", testAccount,
	"REGION", testRegion,
	"YOUR_REGISTRY", "111122223333.dkr.ecr.us-east-1.amazonaws.com",
	"VERSION", "1.0.0",
	"KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab",
	"FEED_HOST", testFeedHost,
)

// testFeedHost stands for the feed watchers' internal load balancer.
const testFeedHost = "secrets-feed-0123456789abcdef.elb.us-east-1.amazonaws.com"

const agentImage = "111122223333.dkr.ecr.us-east-1.amazonaws.com/ecs-secrets-agent:1.0.0"

func TestTaskDefinitions(t *testing.T) {
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no task definitions here: %v", err)
	}
	agent := tdcheck.BuildAgent(t, "../../cmd/agent")
	readme := readDeployREADME(t)
	for _, file := range files {
		t.Run(strings.TrimSuffix(file, ".json"), func(t *testing.T) {
			if !strings.Contains(readme, "taskdefs/"+file) {
				t.Errorf("deploy/README.md does not name taskdefs/%s: add a row for it", file)
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			data := []byte(placeholders.Replace(string(raw)))
			td := tdcheck.DecodeStrict(t, data)
			tdcheck.KeyCase(t, data)
			tdcheck.Containers(t, td, isAgent)
			if slices.Contains(td.RequiresCompatibilities, types.CompatibilityFargate) {
				tdcheck.Fargate(t, td)
			}
			checkAgentCommands(t, agent, td)
			checkSidecarRestarts(t, td)
			if runsWatch(td) {
				checkWatchService(t, readme, td)
			}
		})
	}
}

// checkSidecarRestarts: an `agent run` sidecar is essential (its files must
// stay fresh) and restarts in place when it exits: without a restart policy
// a crash of the agent would stop the app's task, worse off than ECS's own
// injection. A restarted agent delivers what its predecessor had not.
func checkSidecarRestarts(t *testing.T, td *ecs.RegisterTaskDefinitionInput) {
	t.Helper()
	for _, c := range td.ContainerDefinitions {
		if !isAgent(c) || len(c.Command) == 0 || c.Command[0] != "run" {
			continue
		}
		if p := c.RestartPolicy; p == nil || p.Enabled == nil || !*p.Enabled {
			t.Errorf("%s: an agent run sidecar without \"restartPolicy\": {\"enabled\": true}: a crash of the agent would stop the task", deref(c.Name))
		}
	}
}

// checkAgentCommands runs `agent check --for COMMAND` with each agent
// invocation's flags and its container's environment: a wrong flag, an
// invalid configuration or an onChange action the command cannot run fails
// here. An invocation is an agent-image container's command (the image's
// ENTRYPOINT is /agent), or an app container whose entryPoint starts with an
// installed agent and "exec".
func checkAgentCommands(t *testing.T, agent string, td *ecs.RegisterTaskDefinitionInput) {
	t.Helper()
	n := 0
	for _, c := range td.ContainerDefinitions {
		name := deref(c.Name)
		var argv []string
		switch {
		case isAgent(c):
			if len(c.EntryPoint) > 0 {
				t.Errorf("%s: entryPoint %q: keep the image's (/agent) and give the subcommand in command", name, c.EntryPoint)
				continue
			}
			argv = append([]string{"/agent"}, c.Command...)
		case isExecWrapped(c):
			argv = append(slices.Clone(c.EntryPoint), c.Command...)
		default:
			continue
		}
		n++
		if len(argv) < 2 {
			t.Errorf("%s: no agent command (init, run, watch or install)", name)
			continue
		}
		sub, flags := argv[1], argv[2:]
		switch {
		case sub == "install" && isAgent(c):
			checkInstall(t, c, flags)
			continue
		case sub == "exec" && !isAgent(c):
			sep := slices.Index(flags, "--")
			if sep < 0 || sep == len(flags)-1 {
				t.Errorf("%s: %q: want %s exec [flags] -- COMMAND [ARGS...]: the app's command after --", name, argv, argv[0])
				continue
			}
			flags = flags[:sep] // the rest is the app's command, not the agent's
			checkExecInstalled(t, td, c, argv[0])
		case sub == "watch" && isAgent(c):
			checkWatch(t, agent, td, c, flags)
			continue
		case (sub == "init" || sub == "run") && isAgent(c):
		default:
			t.Errorf("%s: agent command %q: want init, run, watch or install in the agent image, or exec as an app's entryPoint", name, sub)
			continue
		}
		cmd := exec.Command(agent, append([]string{"check", "--for", sub}, flags...)...)
		cmd.Env = []string{} // only what the container sets
		for _, e := range c.Environment {
			cmd.Env = append(cmd.Env, deref(e.Name)+"="+deref(e.Value))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: agent check --for %s %q with its environment: %v\n%s", name, sub, flags, err, out)
		}
	}
	if n == 0 {
		t.Errorf("no agent container (image %s) and no app run by an installed agent", agentImage)
	}
}

// checkInstall checks `agent install DIR`: one directory, in a volume the
// container can write.
func checkInstall(t *testing.T, c types.ContainerDefinition, args []string) {
	t.Helper()
	name := deref(c.Name)
	if len(args) != 1 || !path.IsAbs(args[0]) {
		t.Errorf("%s: install %q: want one absolute directory", name, args)
		return
	}
	m, _, ok := mountOf(c, args[0])
	switch {
	case !ok:
		t.Errorf("%s: install %s: not in a mounted volume, so no other container sees the agent", name, args[0])
	case m.ReadOnly != nil && *m.ReadOnly:
		t.Errorf("%s: install %s: volume %s is mounted read-only", name, args[0], deref(m.SourceVolume))
	}
}

// checkExecInstalled checks that the agent an app's entryPoint runs is the one
// an installer container puts into a shared volume: the installer exists,
// mounts the same volume, and finishes before the app starts; the app mounts
// the volume read-only and runs agentPath from it.
func checkExecInstalled(t *testing.T, td *ecs.RegisterTaskDefinitionInput, app types.ContainerDefinition, agentPath string) {
	t.Helper()
	name := deref(app.Name)
	appMount, rel, ok := mountOf(app, agentPath)
	if !ok {
		t.Errorf("%s: entryPoint runs %s, which is in no mounted volume: mount the volume an installer container runs `install` into", name, agentPath)
		return
	}
	volume := deref(appMount.SourceVolume)
	if appMount.ReadOnly == nil || !*appMount.ReadOnly {
		t.Errorf("%s: mount volume %s read-only: the app only runs the agent from it", name, volume)
	}
	var installers []string
	for _, c := range td.ContainerDefinitions {
		if !isAgent(c) || len(c.Command) != 2 || c.Command[0] != "install" {
			continue
		}
		m, dirRel, ok := mountOf(c, c.Command[1])
		if !ok || deref(m.SourceVolume) != volume {
			continue
		}
		installers = append(installers, deref(c.Name))
		if want := path.Join(dirRel, "agent"); rel != want {
			t.Errorf("%s: entryPoint runs %s, but %s installs into %s (volume %s), which the app sees as %s",
				name, agentPath, deref(c.Name), c.Command[1], volume, path.Join(deref(appMount.ContainerPath), want))
		}
		waits := slices.ContainsFunc(app.DependsOn, func(d types.ContainerDependency) bool {
			return deref(d.ContainerName) == deref(c.Name) && d.Condition == types.ContainerConditionSuccess
		})
		if !waits {
			t.Errorf("%s: needs dependsOn %s SUCCESS, so the agent is installed before the app starts", name, deref(c.Name))
		}
	}
	if len(installers) != 1 {
		t.Errorf("%s: entryPoint runs %s from volume %s: want one container of the agent image running `install DIR` into that volume, found %q",
			name, agentPath, volume, installers)
	}
}

// mountOf returns the container's mount point that holds p (the deepest),
// and p relative to it.
func mountOf(c types.ContainerDefinition, p string) (types.MountPoint, string, bool) {
	var best types.MountPoint
	bestRel, found := "", false
	for _, m := range c.MountPoints {
		mp := path.Clean(deref(m.ContainerPath))
		rel, ok := strings.CutPrefix(path.Clean(p), mp)
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/") && mp != "/") {
			continue
		}
		if !found || len(mp) > len(path.Clean(deref(best.ContainerPath))) {
			best, bestRel, found = m, strings.TrimPrefix(rel, "/"), true
		}
	}
	if bestRel == "" {
		bestRel = "."
	}
	return best, bestRel, found
}

func TestIAMPolicies(t *testing.T) {
	files, err := filepath.Glob("../iam/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policies in deploy/iam: %v", err)
	}
	readme := readDeployREADME(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if !strings.Contains(readme, "iam/"+filepath.Base(file)) {
				t.Errorf("deploy/README.md does not name iam/%s", filepath.Base(file))
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			var p struct {
				Version   string
				Statement []struct {
					Sid       string
					Effect    string
					Principal map[string]any
					Action    any
					Resource  any
					Condition map[string]map[string]any
				}
			}
			if err := dec.Decode(&p); err != nil {
				t.Fatalf("not an IAM policy: %v", err)
			}
			if p.Version != "2012-10-17" {
				t.Errorf("Version %q, want \"2012-10-17\"", p.Version)
			}
			if len(p.Statement) == 0 {
				t.Error("no Statement")
			}
			for i, s := range p.Statement {
				if s.Effect != "Allow" && s.Effect != "Deny" {
					t.Errorf("Statement[%d].Effect %q", i, s.Effect)
				}
				if s.Action == nil {
					t.Errorf("Statement[%d]: no Action", i)
				}
				if s.Resource == nil && s.Principal == nil {
					t.Errorf("Statement[%d]: no Resource (or Principal, in a trust policy)", i)
				}
			}
		})
	}
}

// checkWatch checks an `agent watch` invocation. `agent check` does not take
// watch's flags, and running watch would start watching, so the flags are
// read against `agent watch -h`: every flag is one it lists, a flag that
// takes a value has one, --cluster and at least one --service are given, and
// --interval is a duration of 1s or more, as watch requires. The container
// needs a healthCheck that reaches the watcher's /healthz, and the task role's
// policy (deploy/iam/task-role-NAME.json for the role secrets-agent-NAME) is
// what `agent policy --command watch` prints for these services.
func checkWatch(t *testing.T, agent string, td *ecs.RegisterTaskDefinitionInput, c types.ContainerDefinition, args []string) {
	t.Helper()
	name := deref(c.Name)
	known := watchFlags(t, agent)
	var cluster, region, metricsAddr, feedAddr, feedRegions string
	var services []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		flagName := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
		if !strings.HasPrefix(arg, "-") || flagName == "" {
			t.Errorf("%s: watch %q: unexpected argument %q (watch takes flags only)", name, args, arg)
			continue
		}
		flagName, value, hasValue := strings.Cut(flagName, "=")
		takesValue, ok := known[flagName]
		if !ok {
			t.Errorf("%s: watch flag %q: `agent watch -h` lists no -%s", name, arg, flagName)
			continue
		}
		if takesValue && !hasValue {
			if i+1 == len(args) {
				t.Errorf("%s: watch flag %s needs a value", name, arg)
				continue
			}
			i++
			value = args[i]
		}
		switch flagName {
		case "cluster":
			cluster = value
		case "service":
			services = append(services, value)
		case "region":
			region = value
		case "metrics-addr":
			metricsAddr = value
		case "feed-addr":
			feedAddr = value
		case "feed-regions":
			feedRegions = value
		case "interval":
			if d, err := time.ParseDuration(value); err != nil || d < time.Second {
				t.Errorf("%s: watch --interval %q: want a duration of 1s or more", name, value)
			}
		}
	}
	wc := watchConfig(t, c)
	if feedAddr == "" {
		feedAddr = wc.FeedAddr
	}
	if feedRegions == "" {
		feedRegions = strings.Join(wc.FeedRegions, ",")
	}
	for _, s := range wc.Services {
		if s.Cluster != cluster && cluster != "" || s.Region != "" {
			t.Errorf("%s: AGENT_CONFIG services[%s]: give services in one cluster and the task's region (or as flags), so the policy check can name them", name, s)
		}
		cluster = s.Cluster
		services = append(services, s.Service)
	}
	if len(services) == 0 && feedAddr == "" {
		t.Errorf("%s: watch %q: give --cluster and at least one --service, or serve the change feed (feedAddr)", name, args)
		return
	}
	if len(services) > 0 && cluster == "" {
		t.Errorf("%s: watch %q: --service needs --cluster", name, args)
		return
	}
	if feedAddr != "" {
		checkFeedAddr(t, c, feedAddr)
	}
	if c.Essential != nil && !*c.Essential {
		t.Errorf("%s: the watcher is the task: make it essential", name)
	}
	if c.HealthCheck == nil {
		t.Errorf("%s: give the watcher a healthCheck ([CMD /agent health]) so ECS replaces a watcher that died or never finished its first pass", name)
	}
	if metricsAddr != "" {
		// `agent health` without --addr asks 127.0.0.1 on the default port.
		host, port, err := net.SplitHostPort(metricsAddr)
		if err != nil || port != "9102" || !slices.Contains([]string{"", "0.0.0.0", "::", "127.0.0.1", "localhost"}, host) {
			t.Errorf("%s: watch --metrics-addr %q: the healthCheck's `agent health` asks 127.0.0.1:9102", name, metricsAddr)
		}
	}
	if region == "" {
		region = testRegion // the task's own: REGION in the policy
	}
	checkWatchPolicy(t, agent, td, cluster, region, services, feedAddr != "", feedRegions)
}

// watchConfig is the watcher's AGENT_CONFIG as `agent watch` reads it
// (strictly: a misspelt key fails).
func watchConfig(t *testing.T, c types.ContainerDefinition) *config.Watch {
	t.Helper()
	wc, err := config.LoadWatch("", containerEnv(c))
	if err != nil {
		t.Errorf("%s: %v", deref(c.Name), err)
		return &config.Watch{}
	}
	return wc
}

func containerEnv(c types.ContainerDefinition) func(string) string {
	return func(k string) string {
		for _, e := range c.Environment {
			if deref(e.Name) == k {
				return deref(e.Value)
			}
		}
		return ""
	}
}

// checkFeedAddr checks that the feed listens where the agents of other
// tasks reach it: on every interface, on a port the container maps.
func checkFeedAddr(t *testing.T, c types.ContainerDefinition, addr string) {
	t.Helper()
	name := deref(c.Name)
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !slices.Contains([]string{"", "0.0.0.0", "::"}, host) {
		t.Errorf("%s: feedAddr %q: want :PORT (every interface), so agents in other tasks can connect", name, addr)
		return
	}
	mapped := slices.ContainsFunc(c.PortMappings, func(m types.PortMapping) bool {
		return m.ContainerPort != nil && strconv.Itoa(int(*m.ContainerPort)) == port
	})
	if !mapped {
		t.Errorf("%s: feedAddr %q: no portMappings entry for port %s", name, addr, port)
	}
}

// feedAddrOf is the address the task's watcher serves the change feed on,
// or "".
func feedAddrOf(t *testing.T, td *ecs.RegisterTaskDefinitionInput) (string, types.ContainerDefinition) {
	t.Helper()
	for _, c := range td.ContainerDefinitions {
		if !isAgent(c) || len(c.Command) == 0 || c.Command[0] != "watch" {
			continue
		}
		if i := slices.Index(c.Command, "--feed-addr"); i >= 0 && i+1 < len(c.Command) {
			return c.Command[i+1], c
		}
		return watchConfig(t, c).FeedAddr, c
	}
	return "", types.ContainerDefinition{}
}

// watchFlags reads `agent watch -h`: each flag's name, and whether it takes a
// value (the flag package prints no value name for a boolean flag).
func watchFlags(t *testing.T, agent string) map[string]bool {
	t.Helper()
	out, err := exec.Command(agent, "watch", "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("agent watch -h: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		head, _, _ := strings.Cut(line, "\t") // a one-letter flag's usage follows a tab
		if !strings.HasPrefix(head, "  -") {
			continue
		}
		f := strings.Fields(head)
		flags[strings.TrimPrefix(f[0], "-")] = len(f) > 1
	}
	if _, ok := flags["cluster"]; !ok || !flags["service"] {
		t.Fatalf("agent watch -h lists no -cluster or -service: cannot read its usage\n%s", out)
	}
	return flags
}

// checkWatchPolicy compares the task role's policy file with what the
// generator prints for the watcher's services and the regions its feed
// serves ("": the task's own), placeholders replaced.
func checkWatchPolicy(t *testing.T, agent string, td *ecs.RegisterTaskDefinitionInput, cluster, region string, services []string, feed bool, feedRegions string) {
	t.Helper()
	role := path.Base(deref(td.TaskRoleArn))
	suffix, ok := strings.CutPrefix(role, "secrets-agent-")
	if !ok {
		t.Errorf("taskRoleArn %q: name the role secrets-agent-NAME, with its policy in deploy/iam/task-role-NAME.json", deref(td.TaskRoleArn))
		return
	}
	file := "../iam/task-role-" + suffix + ".json"
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("the watcher's task role policy: %v", err)
		return
	}
	args := []string{"policy", "--command", "watch"}
	if cluster != "" {
		args = append(args, "--cluster", cluster)
	}
	for _, s := range services {
		args = append(args, "--service", s)
	}
	if feed {
		args = append(args, "--feed")
	}
	if feed && feedRegions != "" {
		args = append(args, "--feed-regions", feedRegions)
	}
	args = append(args, "--region", region, "--account", testAccount)
	cmd := exec.Command(agent, args...)
	cmd.Env = []string{}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("agent %q: %v\n%s", args, err, stderr.Bytes())
		return
	}
	var want, got any
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("agent policy printed no JSON: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(placeholders.Replace(string(raw))), &got); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s is not what the generator prints for the watcher's services: regenerate it with\n"+
			"  go run ./cmd/agent %s\n(then %s → REGION, %s → ACCOUNT_ID); it prints\n%s",
			file, strings.Join(args, " "), testRegion, testAccount, out)
	}
}

// runsWatch reports whether the task runs `agent watch`.
func runsWatch(td *ecs.RegisterTaskDefinitionInput) bool {
	return slices.ContainsFunc(td.ContainerDefinitions, func(c types.ContainerDefinition) bool {
		return isAgent(c) && len(c.Command) > 0 && c.Command[0] == "watch"
	})
}

// checkWatchService checks that deploy/README.md creates the watcher's
// service with `aws ecs create-service` for its family: one task
// (--desired-count 1: two watchers would each redeploy), and a deployment
// configuration that stops the old task before starting the new one
// (minimumHealthyPercent=0, maximumPercent=100), so a deployment of the
// watcher never runs two at once. A feed watcher is the opposite: agents
// must find one serving at all times, and two watchers still make one
// deployment per change (the redeploy lock), so it runs two or more tasks
// behind a load balancer on the feed's port, and a deployment keeps at
// least half of them.
func checkWatchService(t *testing.T, readme string, td *ecs.RegisterTaskDefinitionInput) {
	t.Helper()
	family := deref(td.Family)
	if addr, c := feedAddrOf(t, td); addr != "" {
		checkFeedService(t, readme, family, addr, c)
		return
	}
	var found bool
	for _, args := range commandsIn(readme, "aws ecs create-service") {
		opts := map[string][]string{}
		for i := 0; i < len(args); i++ {
			k, v, hasValue := strings.Cut(args[i], "=")
			if !strings.HasPrefix(k, "--") {
				continue
			}
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
				v = args[i]
			}
			opts[k] = append(opts[k], v)
		}
		if !slices.Equal(opts["--task-definition"], []string{family}) {
			continue
		}
		found = true
		if !slices.Equal(opts["--desired-count"], []string{"1"}) {
			t.Errorf("deploy/README.md: create-service for %s: want --desired-count 1 (one watcher; two would each redeploy), got %q", family, opts["--desired-count"])
		}
		var dc []string
		for _, v := range opts["--deployment-configuration"] {
			dc = append(dc, strings.Split(strings.Trim(v, `'"`), ",")...)
		}
		for _, want := range []string{"minimumHealthyPercent=0", "maximumPercent=100"} {
			if !slices.Contains(dc, want) {
				t.Errorf("deploy/README.md: create-service for %s: --deployment-configuration needs %s, so a deployment never runs two watchers; got %q", family, want, opts["--deployment-configuration"])
			}
		}
		if slices.Contains(td.RequiresCompatibilities, types.CompatibilityFargate) && !slices.Equal(opts["--launch-type"], []string{"FARGATE"}) {
			t.Errorf("deploy/README.md: create-service for %s: want --launch-type FARGATE, got %q", family, opts["--launch-type"])
		}
	}
	if !found {
		t.Errorf("deploy/README.md has no `aws ecs create-service … --task-definition %s` command", family)
	}
}

func checkFeedService(t *testing.T, readme, family, addr string, c types.ContainerDefinition) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	var found bool
	for _, args := range commandsIn(readme, "aws ecs create-service") {
		opts := options(args)
		if !slices.Equal(opts["--task-definition"], []string{family}) {
			continue
		}
		found = true
		if n, err := strconv.Atoi(strings.Join(opts["--desired-count"], "")); err != nil || n < 2 {
			t.Errorf("deploy/README.md: create-service for %s: want --desired-count 2 or more (agents fall back to polling AWS while no feed answers), got %q", family, opts["--desired-count"])
		}
		dc := map[string]int{}
		for _, v := range opts["--deployment-configuration"] {
			for _, kv := range strings.Split(strings.Trim(v, `'"`), ",") {
				k, v, _ := strings.Cut(kv, "=")
				dc[k], _ = strconv.Atoi(v)
			}
		}
		if dc["minimumHealthyPercent"] < 50 || dc["maximumPercent"] <= 100 {
			t.Errorf("deploy/README.md: create-service for %s: --deployment-configuration %q: want minimumHealthyPercent 50 or more, so a deployment keeps a feed serving, and maximumPercent over 100 to start the new tasks first", family, opts["--deployment-configuration"])
		}
		var lb []string
		for _, v := range opts["--load-balancers"] {
			lb = append(lb, strings.Split(strings.Trim(v, `'"`), ",")...)
		}
		for _, want := range []string{"containerName=" + deref(c.Name), "containerPort=" + port} {
			if !slices.Contains(lb, want) {
				t.Errorf("deploy/README.md: create-service for %s: --load-balancers needs %s (the feed's container and port), got %q", family, want, opts["--load-balancers"])
			}
		}
	}
	if !found {
		t.Errorf("deploy/README.md has no `aws ecs create-service … --task-definition %s` command", family)
	}
}

// options reads a command's --name value and --name=value arguments.
func options(args []string) map[string][]string {
	opts := map[string][]string{}
	for i := 0; i < len(args); i++ {
		k, v, hasValue := strings.Cut(args[i], "=")
		if !strings.HasPrefix(k, "--") {
			continue
		}
		if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			i++
			v = args[i]
		}
		opts[k] = append(opts[k], v)
	}
	return opts
}

// commandsIn returns the arguments of each command in text that starts with
// prefix: backslash-continued lines joined, an inline one ending at its
// closing backquote.
func commandsIn(text, prefix string) [][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var cmds [][]string
	for _, line := range strings.Split(text, "\n") {
		_, rest, ok := strings.Cut(line, prefix)
		if !ok {
			continue
		}
		rest, _, _ = strings.Cut(rest, "`")
		cmds = append(cmds, strings.Fields(rest))
	}
	return cmds
}

func readDeployREADME(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func isAgent(c types.ContainerDefinition) bool {
	return deref(c.Image) == agentImage
}

// isExecWrapped reports whether an app container runs through `agent exec`:
// its entryPoint is an agent binary (installed into a volume) and "exec".
func isExecWrapped(c types.ContainerDefinition) bool {
	return len(c.EntryPoint) >= 2 && path.Base(c.EntryPoint[0]) == "agent" && c.EntryPoint[1] == "exec"
}

func deref(s *string) string { return tdcheck.Deref(s) }

// TestFeedWiring checks the feed's two ends across the examples: every agent
// with refresh.feed names the watchers' load balancer and the port a feed
// watcher serves, and the watchers poll at least twice as often as each
// agent's interval (docs/FEED.md: otherwise the agents find the feed's view
// too old and poll AWS themselves).
func TestFeedWiring(t *testing.T) {
	files, _ := filepath.Glob("*.json")
	ports := map[string]time.Duration{} // feed port → the slowest watcher's interval
	type agentFeed struct {
		where    string
		feed     string
		interval time.Duration
	}
	var agents []agentFeed
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		td := tdcheck.DecodeStrict(t, []byte(placeholders.Replace(string(raw))))
		if addr, c := feedAddrOf(t, td); addr != "" {
			_, port, _ := net.SplitHostPort(addr)
			interval := watchConfig(t, c).IntervalOr(time.Minute) // 1m: the default with a feed
			if i := slices.Index(c.Command, "--interval"); i >= 0 && i+1 < len(c.Command) {
				interval, _ = time.ParseDuration(c.Command[i+1])
			}
			ports[port] = max(ports[port], interval)
		}
		for _, c := range td.ContainerDefinitions {
			var argv []string
			switch {
			case isAgent(c) && len(c.Command) > 0 && c.Command[0] == "run":
				argv = c.Command[1:]
			case isExecWrapped(c):
				argv = c.EntryPoint[2:]
			default:
				continue
			}
			var flags config.Flags
			for i := 0; i+1 < len(argv); i++ {
				switch argv[i] {
				case "--interval":
					flags.Interval = argv[i+1]
				case "--feed":
					flags.Feed = argv[i+1]
				}
			}
			s, err := config.Load(flags, containerEnv(c))
			if err != nil {
				t.Errorf("%s %s: %v", file, deref(c.Name), err)
				continue
			}
			if s.Feed != "" {
				agents = append(agents, agentFeed{file + " " + deref(c.Name), s.Feed, s.Interval})
			}
		}
	}
	if len(ports) == 0 || len(agents) == 0 {
		t.Fatalf("want a feed watcher and agents that use it among the examples; watchers' ports %v, agents %v", ports, agents)
	}
	for _, a := range agents {
		u, err := url.Parse(a.feed)
		if err != nil || u.Hostname() != testFeedHost {
			t.Errorf("%s: refresh.feed %q: want http://FEED_HOST:PORT, the watchers' load balancer", a.where, a.feed)
			continue
		}
		watcher, ok := ports[u.Port()]
		if !ok {
			t.Errorf("%s: refresh.feed %q: no feed watcher here serves port %q", a.where, a.feed, u.Port())
			continue
		}
		if 2*watcher > a.interval {
			t.Errorf("%s: refresh interval %s: the watchers poll every %s, more than half of it", a.where, a.interval, watcher)
		}
	}
}
