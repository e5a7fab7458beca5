package lint

import (
	"path"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// The agent's commands, as its container command names them.
const (
	modeInit    = "init"
	modeRun     = "run"
	modeExec    = "exec"
	modeInstall = "install"
	modeWatch   = "watch"
)

const agentImage = "ecs-secrets-agent"

// task is the view the rules share.
type task struct {
	td         *taskdef.TaskDef
	containers []*container
	// taskLevel is false for a bare container array: no pidMode, no volumes.
	taskLevel bool
}

// container is one container definition, and what the agent in it runs.
type container struct {
	name string
	def  *types.ContainerDefinition
	path string // "containerDefinitions[i]"

	mode       string // "" for a container without the agent
	agentImage bool   // the agent's image, whatever it runs
	// cfgUnknown: the configuration is in a file (--config) or injected
	// by ECS (AGENT_CONFIG in secrets), so lint cannot read it.
	cfgUnknown bool
	secrets    []string
	outputDir  string // flag or config; "" = not set
	installTo  string
	cfg        *config.File // nil without AGENT_CONFIG
	cfgErr     error
	cfgPath    string // JSON path of AGENT_CONFIG
}

func newTask(td *taskdef.TaskDef) *task {
	t := &task{td: td, taskLevel: td.Shape != taskdef.Containers}
	for i := range td.Input.ContainerDefinitions {
		def := &td.Input.ContainerDefinitions[i]
		c := &container{name: aws.ToString(def.Name), def: def, path: "containerDefinitions[" + strconv.Itoa(i) + "]"}
		c.readAgent()
		t.containers = append(t.containers, c)
	}
	return t
}

// readAgent recognises the agent: the agent image with one of its commands,
// or any image whose entry point runs an "agent exec" copied in by install.
func (c *container) readAgent() {
	argv := append(append([]string(nil), c.def.EntryPoint...), c.def.Command...)
	image := strings.Contains(aws.ToString(c.def.Image), agentImage)
	c.agentImage = image
	for i, a := range argv {
		switch a {
		case modeInit, modeRun, modeExec, modeInstall, modeWatch:
		default:
			continue
		}
		prev := ""
		if i > 0 {
			prev = path.Base(argv[i-1])
		}
		byImage := image && (i == 0 || prev == "agent" || prev == agentImage)
		byPath := a == modeExec && (prev == "agent" || prev == agentImage)
		if !byImage && !byPath {
			continue
		}
		c.mode = a
		c.readFlags(argv[i+1:])
		break
	}
	if c.mode == "" {
		return
	}
	for _, s := range c.def.Secrets {
		if aws.ToString(s.Name) == "AGENT_CONFIG" {
			c.cfgUnknown = true
		}
	}
	for j, kv := range c.def.Environment {
		if aws.ToString(kv.Name) != "AGENT_CONFIG" {
			continue
		}
		c.cfgPath = c.path + ".environment[" + strconv.Itoa(j) + "]"
		if c.mode == modeWatch {
			// agent watch has a configuration of its own (services, feedAddr).
			js := aws.ToString(kv.Value)
			_, c.cfgErr = config.LoadWatch("", func(k string) string { return map[string]string{"AGENT_CONFIG": js}[k] })
			continue
		}
		c.cfg = &config.File{}
		if err := config.Decode([]byte(aws.ToString(kv.Value)), c.cfg); err != nil {
			c.cfg, c.cfgErr = nil, err
		}
	}
	if c.outputDir == "" && c.cfg != nil {
		c.outputDir = c.cfg.OutputDir
	}
}

// readFlags takes what lint needs from the agent's arguments.
func (c *container) readFlags(args []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return
		}
		if !strings.HasPrefix(a, "-") {
			if c.mode == modeInstall && c.installTo == "" {
				c.installTo = a
			}
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "secret", "output-dir":
		case "config":
			c.cfgUnknown = true
			continue
		default:
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				continue
			}
			i++
			val = args[i]
		}
		if name == "secret" {
			c.secrets = append(c.secrets, val)
		} else {
			c.outputDir = val
		}
	}
}

// writesFiles reports whether the agent writes into a directory other
// containers read, and which.
func (c *container) writesFiles() (dir string, ok bool) {
	switch c.mode {
	case modeInit, modeRun:
		if c.outputDir == "" && !c.cfgUnknown {
			return config.DefaultOutputDir, true
		}
		return c.outputDir, c.outputDir != ""
	case modeInstall:
		return c.installTo, c.installTo != ""
	case modeExec:
		return c.outputDir, c.outputDir != ""
	}
	return "", false
}

// writableVolumes are the volumes c mounts read-write.
func (c *container) writableVolumes() []string {
	var v []string
	for _, m := range c.def.MountPoints {
		if !aws.ToBool(m.ReadOnly) && aws.ToString(m.SourceVolume) != "" {
			v = append(v, aws.ToString(m.SourceVolume))
		}
	}
	return v
}

// mounts reports whether c mounts volume v at all.
func (c *container) mounts(v string) bool {
	for _, m := range c.def.MountPoints {
		if aws.ToString(m.SourceVolume) == v {
			return true
		}
	}
	return false
}
