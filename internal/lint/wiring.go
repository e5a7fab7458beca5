package lint

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// wantCondition is the dependsOn condition an app needs on an agent that
// writes files: an exiting agent must have succeeded, a sidecar must have
// rendered once (its healthCheck).
func wantCondition(mode string) types.ContainerCondition {
	if mode == modeRun {
		return types.ContainerConditionHealthy
	}
	return types.ContainerConditionSuccess
}

// checkTmpfs reports a tmpfs Docker volume that only exiting agents write
// and no sidecar keeps mounted: Docker drops a tmpfs volume's content when
// the last container using it stops, before a SUCCESS-dependent app starts.
func checkTmpfs(t *task, emit emitFunc) {
	if !t.taskLevel {
		return
	}
	for _, v := range t.td.Input.Volumes {
		dv := v.DockerVolumeConfiguration
		if dv == nil || dv.DriverOpts["type"] != "tmpfs" {
			continue
		}
		name := aws.ToString(v.Name)
		var exiting []*container
		kept := false
		for _, c := range t.containers {
			switch {
			case c.mode == modeRun && c.mounts(name):
				kept = true
			case (c.mode == modeInit || c.mode == modeInstall) && slices.Contains(c.writableVolumes(), name):
				exiting = append(exiting, c)
			}
		}
		if kept {
			continue
		}
		for _, c := range exiting {
			emit(c, c.path+".mountPoints", fmt.Sprintf("agent %s writes into tmpfs volume %q, which loses its content when this container exits, before the app can read it", c.mode, name))
		}
	}
}

// checkSignal reports a sidecar signal action in a task without a shared
// PID namespace, where the app's processes are invisible to the agent.
func checkSignal(t *task, emit emitFunc) {
	if !t.taskLevel || t.td.Input.PidMode == types.PidModeTask {
		return
	}
	for _, c := range t.containers {
		if c.mode != modeRun || c.cfg == nil {
			continue
		}
		for i, a := range c.cfg.OnChange {
			if a.Signal == nil {
				continue
			}
			target := "process " + strconv.Quote(a.Signal.Process)
			if a.Signal.Process == "" {
				target = "pid file " + strconv.Quote(a.Signal.PIDFile)
			}
			emit(c, c.cfgPath, fmt.Sprintf("AGENT_CONFIG onChange[%d] signals %s, but the task's pidMode is not \"task\": the agent cannot see the app's processes", i, target))
		}
	}
}

// checkDependsOn reports, for every container that mounts a volume an agent
// writes, a missing dependsOn on that agent (wrong == false) or a wrong
// condition (wrong == true).
func checkDependsOn(wrong bool) func(*task, emitFunc) {
	return func(t *task, emit emitFunc) {
		for _, agent := range t.containers {
			switch agent.mode {
			case modeInit, modeRun, modeInstall:
			default:
				continue
			}
			vols := agent.writableVolumes()
			for _, app := range t.containers {
				if app == agent || (app.mode != "" && app.mode != modeExec) || (app.mode == "" && app.agentImage) {
					continue
				}
				shared := ""
				for _, v := range vols {
					if app.mounts(v) {
						shared = v
						break
					}
				}
				if shared == "" {
					continue
				}
				want := wantCondition(agent.mode)
				j := slices.IndexFunc(app.def.DependsOn, func(d types.ContainerDependency) bool {
					return aws.ToString(d.ContainerName) == agent.name
				})
				switch {
				case j < 0 && !wrong:
					emit(app, app.path, fmt.Sprintf("mounts volume %q that agent %s container %q writes, but has no dependsOn on it: it can start before the secrets are written; want condition %s", shared, agent.mode, agent.name, want))
				case j >= 0 && wrong && app.def.DependsOn[j].Condition != want:
					got := app.def.DependsOn[j].Condition
					emit(app, app.path+".dependsOn["+strconv.Itoa(j)+"]", fmt.Sprintf("depends on agent %s container %q with condition %s, want %s: %s", agent.mode, agent.name, got, want, conditionWhy(agent.mode, got)))
				}
			}
		}
	}
}

// conditionWhy says what goes wrong with condition got on an agent.
func conditionWhy(mode string, got types.ContainerCondition) string {
	switch {
	case mode == modeRun && got == types.ContainerConditionStart:
		return "the app can start before the first render"
	case mode == modeRun:
		return "agent run never exits, so the app never starts"
	case got == types.ContainerConditionComplete:
		return "the app starts even when the agent failed to write the secrets"
	case got == types.ContainerConditionStart:
		return "the app can start before the secrets are written"
	}
	return "the condition is never met for an agent " + mode + " container"
}

func checkSidecarEssential(t *task, emit emitFunc) {
	for _, c := range t.containers {
		if c.mode == modeRun && c.def.Essential != nil && !*c.def.Essential {
			emit(c, c.path+".essential", "agent run is not essential: if it stops, the task runs on and its secrets silently stop refreshing")
		}
	}
}

// checkSidecarRestart reports an essential agent run that ECS would not
// restart: its exit would stop the task, worse off than ECS's own injection.
func checkSidecarRestart(t *task, emit emitFunc) {
	for _, c := range t.containers {
		if c.mode != modeRun || (c.def.Essential != nil && !*c.def.Essential) {
			continue
		}
		switch p := c.def.RestartPolicy; {
		case p == nil:
			emit(c, c.path, "agent run is essential and has no restartPolicy: if the agent exits (a crash, out of memory), ECS stops the whole task, app included")
		case !aws.ToBool(p.Enabled):
			emit(c, c.path+".restartPolicy.enabled", "agent run is essential and its restartPolicy is disabled: if the agent exits (a crash, out of memory), ECS stops the whole task, app included")
		}
	}
}

func checkInitEssential(t *task, emit emitFunc) {
	for _, c := range t.containers {
		if (c.mode == modeInit || c.mode == modeInstall) && (c.def.Essential == nil || *c.def.Essential) {
			p, why := c.path+".essential", ""
			if c.def.Essential == nil {
				p, why = c.path, ` ("essential" is not set, and ECS defaults it to true)`
			}
			emit(c, p, fmt.Sprintf("agent %s is essential%s: ECS stops the whole task when it exits, even with status 0", c.mode, why))
		}
	}
}

// checkHealthCheck reports an agent that others wait on as HEALTHY without a
// healthCheck: the condition is never met.
func checkHealthCheck(t *task, emit emitFunc) {
	for _, c := range t.containers {
		if c.mode == "" || c.def.HealthCheck != nil {
			continue
		}
		var waiters []string
		for _, o := range t.containers {
			for _, d := range o.def.DependsOn {
				if aws.ToString(d.ContainerName) == c.name && d.Condition == types.ContainerConditionHealthy {
					waiters = append(waiters, strconv.Quote(o.name))
				}
			}
		}
		if len(waiters) > 0 {
			emit(c, c.path, fmt.Sprintf("%s wait(s) for agent %s to be HEALTHY, but it has no healthCheck: ECS never reports it healthy", strings.Join(waiters, ", "), c.mode))
		}
	}
}

// checkReadonlyRoot reports an agent with a read-only root file system and
// nothing writable mounted where it writes.
func checkReadonlyRoot(t *task, emit emitFunc) {
	for _, c := range t.containers {
		dir, ok := c.writesFiles()
		if !ok || !aws.ToBool(c.def.ReadonlyRootFilesystem) || writableAt(c.def, dir) {
			continue
		}
		emit(c, c.path+".readonlyRootFilesystem", fmt.Sprintf("agent %s writes to %s, but the root file system is read-only and no writable volume is mounted there", c.mode, dir))
	}
}

// writableAt reports whether dir is inside a read-write mount point or a
// container tmpfs.
func writableAt(def *types.ContainerDefinition, dir string) bool {
	dir = path.Clean(dir)
	under := func(mount string) bool {
		m := path.Clean(mount)
		return m == dir || m == "/" || strings.HasPrefix(dir, m+"/")
	}
	for _, m := range def.MountPoints {
		if !aws.ToBool(m.ReadOnly) && under(aws.ToString(m.ContainerPath)) {
			return true
		}
	}
	if lp := def.LinuxParameters; lp != nil {
		for _, tm := range lp.Tmpfs {
			if under(aws.ToString(tm.ContainerPath)) {
				return true
			}
		}
	}
	return false
}
