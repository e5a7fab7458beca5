// Package migrate rewrites an ECS task definition from native `secrets` to
// one of the agent's patterns (docs/MIGRATION.md, automated). It works on the
// generic JSON of the register input, so every field the user had, known to
// the SDK or not, is kept as it was.
package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// The patterns, as --pattern names them.
const (
	Init    = "init"
	Sidecar = "sidecar"
	Exec    = "exec"
	Watch   = "watch"
)

// Where the patterns put things; the same as deploy/taskdefs.
const (
	secretsVolume = "secrets"
	secretsDir    = config.DefaultOutputDir
	binVolume     = "agent-bin"
	binDir        = "/shared"
	agentImageTag = "ecs-secrets-agent"
)

// Options say what to migrate to.
type Options struct {
	Pattern string
	Image   string // the agent image; required
	// EntryPoint and Command replace the app container's for exec, where
	// the task definition leaves them to the image; nil = not given.
	EntryPoint, Command []string
	// Cluster and Services are the watcher's (watch).
	Cluster  string
	Services []string
}

// Result is the rewritten task definition and what the operator must know.
type Result struct {
	// TaskDef is the register input to print: the migrated task definition,
	// or for watch the watcher's own.
	TaskDef map[string]any
	// Secrets is the agent's configuration: every secret moved, in order.
	Secrets []config.SecretJSON
	// Command is the agent command the task role serves (init, run, exec or
	// watch), for the policy.
	Command string
	// Unchanged: the task definition already uses the agent.
	Unchanged bool
	Notes     []string
}

// Error is input migrate cannot rewrite: exit 2.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errorf(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Validate checks the options alone.
func (o Options) Validate() error {
	switch o.Pattern {
	case Init, Sidecar, Exec, Watch:
	case "":
		return errorf("--pattern is required: init, sidecar, exec or watch")
	default:
		return errorf("--pattern %q is not init, sidecar, exec or watch", o.Pattern)
	}
	if o.Image == "" {
		return errorf("--image is required: the agent image (REGISTRY/ecs-secrets-agent:VERSION)")
	}
	if o.Pattern == Watch && (o.Cluster == "" || len(o.Services) == 0) {
		return errorf("--pattern watch needs --cluster and at least one --service: the services the watcher redeploys")
	}
	if o.Pattern != Watch && (o.Cluster != "" || len(o.Services) > 0) {
		return errorf("--cluster and --service are for --pattern watch only")
	}
	if o.Pattern != Exec && (o.EntryPoint != nil || o.Command != nil) {
		return errorf("--entrypoint and --command are for --pattern exec only")
	}
	return nil
}

// Migrate rewrites td (whose Raw it changes) for opt.Pattern.
func Migrate(td *taskdef.TaskDef, opt Options) (*Result, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if td.Shape == taskdef.Containers {
		return nil, errorf("a bare container definitions array has no volumes or family: give the register-task-definition input or the describe-task-definition output")
	}
	if f, _ := td.Raw["family"].(string); f == "" {
		return nil, errorf(`the task definition has no "family"`)
	}
	defs, err := containers(td.Raw)
	if err != nil {
		return nil, err
	}
	if opt.Pattern == Watch {
		return watcher(td.Raw, opt), nil
	}

	apps, secrets, err := collect(defs)
	if err != nil {
		return nil, err
	}
	if agent := agentContainer(defs, opt.Image); agent != "" {
		if len(apps) > 0 {
			return nil, errorf("container %q already runs the agent, and container %q still has native secrets: migrate does not merge into an existing agent; move them into its AGENT_CONFIG by hand, or migrate the task definition without the agent", agent, name(apps[0]))
		}
		r := &Result{TaskDef: td.Raw, Unchanged: true, Command: agentCommand(opt.Pattern),
			Notes: []string{fmt.Sprintf("container %q already runs the agent and no container has native secrets: nothing to change", agent)}}
		existing(defs, opt.Image, r)
		return r, nil
	}
	if len(apps) == 0 {
		return nil, errorf("no container has secrets to move: nothing to migrate")
	}
	conf, err := agentConfig(secrets)
	if err != nil {
		return nil, err
	}
	r := &Result{TaskDef: td.Raw, Secrets: secrets, Command: agentCommand(opt.Pattern)}
	if opt.Pattern == Exec {
		err = toExec(td.Raw, defs, apps, conf, opt, r)
	} else {
		err = toFiles(td.Raw, defs, apps, conf, opt, r)
	}
	if err != nil {
		return nil, err
	}
	if _, ok := td.Raw["taskRoleArn"]; !ok {
		r.Notes = append(r.Notes, `the task definition has no "taskRoleArn": the agent reads the secrets with the task role; create one and attach the --policy-out policy`)
	} else {
		r.Notes = append(r.Notes, "the agent reads the secrets with the task role, not the execution role: attach the --policy-out policy to it")
	}
	return r, nil
}

// existing reads the agent's command and AGENT_CONFIG secrets into r, so a
// rerun can still write the policy; with the secrets in flags or a file,
// r.Secrets stays empty.
func existing(defs []map[string]any, image string, r *Result) {
	for _, c := range defs {
		if agentContainer([]map[string]any{c}, image) == "" {
			continue
		}
		ep, _ := strs(c["entryPoint"])
		cmd, _ := strs(c["command"])
		switch {
		case len(ep) >= 2 && ep[1] == "exec":
			r.Command = "exec"
		case len(cmd) > 0 && (cmd[0] == "init" || cmd[0] == "run"):
			r.Command = cmd[0]
		}
		envList, _ := c["environment"].([]any)
		for _, e := range envList {
			kv, _ := e.(map[string]any)
			if kv == nil || kv["name"] != "AGENT_CONFIG" {
				continue
			}
			v, _ := kv["value"].(string)
			var f config.File
			if config.Decode([]byte(v), &f) == nil {
				r.Secrets = f.Secrets
			}
		}
	}
}

func agentCommand(pattern string) string {
	switch pattern {
	case Sidecar:
		return "run"
	case Exec:
		return "exec"
	case Watch:
		return "watch"
	}
	return "init"
}

// containers is the generic containerDefinitions, each an object.
func containers(raw map[string]any) ([]map[string]any, error) {
	list, _ := raw["containerDefinitions"].([]any)
	defs := make([]map[string]any, 0, len(list))
	for i, c := range list {
		m, ok := c.(map[string]any)
		if !ok {
			return nil, errorf("containerDefinitions[%d] is not an object", i)
		}
		defs = append(defs, m)
	}
	return defs, nil
}

func name(c map[string]any) string { s, _ := c["name"].(string); return s }

// strs reads a JSON array of strings; ok is false for anything else.
func strs(v any) (out []string, ok bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, v == nil
	}
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// agentContainer names the container that already runs the agent, or "":
// the agent image, or an entry point that runs an installed agent's exec.
func agentContainer(defs []map[string]any, image string) string {
	for _, c := range defs {
		img, _ := c["image"].(string)
		if img == image || strings.Contains(img, agentImageTag) {
			return name(c)
		}
		ep, _ := strs(c["entryPoint"])
		if len(ep) >= 2 && path.Base(ep[0]) == "agent" && ep[1] == "exec" {
			return name(c)
		}
	}
	return ""
}

// collect finds the app containers with native secrets and their secrets,
// one entry a name: two containers may share a name only for one valueFrom.
func collect(defs []map[string]any) (apps []map[string]any, secrets []config.SecretJSON, err error) {
	from := map[string]string{} // name → the container that brought it
	for _, c := range defs {
		list, ok := c["secrets"].([]any)
		if !ok || len(list) == 0 {
			continue
		}
		apps = append(apps, c)
		for j, e := range list {
			s, _ := e.(map[string]any)
			n, _ := s["name"].(string)
			ref, _ := s["valueFrom"].(string)
			if n == "" || ref == "" {
				return nil, nil, errorf("container %q secrets[%d]: want name and valueFrom", name(c), j)
			}
			if prev, ok := from[n]; ok {
				i := slices.IndexFunc(secrets, func(s config.SecretJSON) bool { return s.Name == n })
				if secrets[i].ValueFrom != ref {
					return nil, nil, errorf("secret %s: container %q reads it from %q, container %q from %q: the agent writes one %s for the task; rename one of them in its container's secrets first", n, prev, secrets[i].ValueFrom, name(c), ref, n)
				}
				continue
			}
			from[n] = name(c)
			secrets = append(secrets, config.SecretJSON{Name: n, ValueFrom: ref})
		}
	}
	return apps, secrets, nil
}

// agentConfig is AGENT_CONFIG for secrets, checked as the agent will check
// it, so a reference the agent rejects fails here and not in the task.
func agentConfig(secrets []config.SecretJSON) (string, error) {
	type entry struct {
		Name      string `json:"name"`
		ValueFrom string `json:"valueFrom"`
	}
	doc := struct {
		Secrets []entry `json:"secrets"`
	}{}
	for _, s := range secrets {
		doc.Secrets = append(doc.Secrets, entry{s.Name, s.ValueFrom})
	}
	b, err := marshal(doc, "")
	if err != nil {
		return "", err
	}
	conf := string(bytes.TrimSpace(b))
	getenv := func(k string) string {
		if k == "AGENT_CONFIG" {
			return conf
		}
		return ""
	}
	if _, err := config.Load(config.Flags{}, getenv); err != nil {
		return "", errorf("the agent would reject the moved secrets: AGENT_CONFIG %v", err)
	}
	return conf, nil
}

// Marshal is the output encoding: indented, and "<", ">", "&" as written.
func Marshal(v any) ([]byte, error) { return marshal(v, "  ") }

func marshal(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding the task definition: %w", err)
	}
	return buf.Bytes(), nil
}

// freeName is want, or want with a suffix, that no container uses.
func freeName(defs []map[string]any, want string) string {
	for i := 1; ; i++ {
		n := want
		if i > 1 {
			n = fmt.Sprintf("%s-%d", want, i)
		}
		if !slices.ContainsFunc(defs, func(c map[string]any) bool { return name(c) == n }) {
			return n
		}
	}
}

// addVolume declares a task-scoped volume, or finds it declared.
func addVolume(raw map[string]any, vol string) error {
	list, _ := raw["volumes"].([]any)
	for _, v := range list {
		if m, _ := v.(map[string]any); m != nil && m["name"] == vol {
			return errorf("volume %q already exists: migrate adds its own; rename the existing one first", vol)
		}
	}
	raw["volumes"] = append(list, map[string]any{"name": vol})
	return nil
}

// mount adds a mount point to c, refusing a second one at the same path.
func mount(c map[string]any, vol, dir string, readOnly bool) error {
	list, _ := c["mountPoints"].([]any)
	for _, m := range list {
		if mm, _ := m.(map[string]any); mm != nil && path.Clean(fmt.Sprint(mm["containerPath"])) == dir {
			return errorf("container %q already mounts a volume at %s, where the agent's volume goes", name(c), dir)
		}
	}
	mp := map[string]any{"sourceVolume": vol, "containerPath": dir}
	if readOnly {
		mp["readOnly"] = true
	}
	c["mountPoints"] = append(list, mp)
	return nil
}

func dependOn(c map[string]any, agent, condition string) {
	list, _ := c["dependsOn"].([]any)
	c["dependsOn"] = append(list, map[string]any{"containerName": agent, "condition": condition})
}

// agentDef is the agent's container definition, with the log configuration
// of the first app when it is awslogs (a stream prefix of its own).
func agentDef(raw map[string]any, apps []map[string]any, agent, image string) map[string]any {
	def := map[string]any{
		"name":                   agent,
		"image":                  image,
		"readonlyRootFilesystem": true,
	}
	if _, ok := raw["memory"]; !ok {
		// EC2 without task memory needs a container limit on each one.
		def["memoryReservation"] = json.Number("64")
	}
	if len(apps) > 0 {
		if lc, _ := apps[0]["logConfiguration"].(map[string]any); lc != nil && lc["logDriver"] == "awslogs" {
			opts, _ := lc["options"].(map[string]any)
			copied := map[string]any{}
			for k, v := range opts {
				copied[k] = v
			}
			copied["awslogs-stream-prefix"] = agent
			def["logConfiguration"] = map[string]any{"logDriver": "awslogs", "options": copied}
		}
	}
	return def
}

func env(conf string) []any {
	return []any{map[string]any{"name": "AGENT_CONFIG", "value": conf}}
}

// toFiles is init and sidecar: one agent container writes /run/secrets into
// a shared volume the apps mount read-only and wait on.
func toFiles(raw map[string]any, defs, apps []map[string]any, conf string, opt Options, r *Result) error {
	agent := freeName(defs, "secrets")
	if err := addVolume(raw, secretsVolume); err != nil {
		return err
	}
	def := agentDef(raw, apps, agent, opt.Image)
	def["environment"] = env(conf)
	def["mountPoints"] = []any{map[string]any{"sourceVolume": secretsVolume, "containerPath": secretsDir}}
	condition := "SUCCESS"
	if opt.Pattern == Sidecar {
		condition = "HEALTHY"
		def["essential"] = true
		// Restarted in place: an agent that exits must not stop the task.
		def["restartPolicy"] = map[string]any{"enabled": true, "restartAttemptPeriod": json.Number("60")}
		def["command"] = []any{"run"}
		def["healthCheck"] = map[string]any{
			"command":  []any{"CMD", "/agent", "health"},
			"interval": json.Number("10"), "timeout": json.Number("5"), "retries": json.Number("3"), "startPeriod": json.Number("60"),
		}
	} else {
		def["essential"] = false
		def["command"] = []any{"init"}
	}
	for _, c := range apps {
		var moved []string
		for _, e := range c["secrets"].([]any) {
			moved = append(moved, secretsDir+"/"+e.(map[string]any)["name"].(string))
		}
		delete(c, "secrets")
		if err := mount(c, secretsVolume, secretsDir, true); err != nil {
			return err
		}
		dependOn(c, agent, condition)
		r.Notes = append(r.Notes, fmt.Sprintf("container %q: its secrets are now files, no longer environment variables: point the app at %s (or set NAME_FILE variables where the image reads them)", name(c), strings.Join(moved, ", ")))
	}
	raw["containerDefinitions"] = append([]any{def}, raw["containerDefinitions"].([]any)...)
	return nil
}

// toExec installs the agent into a volume and wraps the one app container's
// entry point, so the app gets the same environment variables as before.
func toExec(raw map[string]any, defs, apps []map[string]any, conf string, opt Options, r *Result) error {
	if len(apps) > 1 {
		return errorf("--pattern exec wraps one container, and %q and %q both have secrets: migrate them with init or sidecar, or split the task", name(apps[0]), name(apps[1]))
	}
	app := apps[0]
	ep, okEP := strs(app["entryPoint"])
	cmd, okCmd := strs(app["command"])
	if !okEP || !okCmd {
		return errorf("container %q: entryPoint and command must be arrays of strings", name(app))
	}
	_, setEP := app["entryPoint"]
	if opt.EntryPoint != nil {
		ep, setEP = opt.EntryPoint, true
	}
	if opt.Command != nil {
		cmd = opt.Command
	}
	if !setEP {
		return errorf("container %q sets no entryPoint, so it runs its image's ENTRYPOINT and CMD, which a task definition does not show; agent exec cannot wrap them blindly: read them with `docker image inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' %v` and pass them as --entrypoint JSON-ARRAY and --command JSON-ARRAY (--entrypoint '[]' if the image has none)", name(app), app["image"])
	}
	argv := append(slices.Clone(ep), cmd...)
	if len(argv) == 0 {
		return errorf("container %q: entryPoint and command are both empty: there is no program for agent exec to run; pass --command JSON-ARRAY", name(app))
	}
	installer := freeName(defs, "install-agent")
	if err := addVolume(raw, binVolume); err != nil {
		return err
	}
	def := agentDef(raw, apps, installer, opt.Image)
	def["essential"] = false
	def["command"] = []any{"install", binDir}
	def["mountPoints"] = []any{map[string]any{"sourceVolume": binVolume, "containerPath": binDir}}

	delete(app, "secrets")
	app["entryPoint"] = []any{binDir + "/agent", "exec", "--"}
	wrapped := make([]any, len(argv))
	for i, a := range argv {
		wrapped[i] = a
	}
	app["command"] = wrapped
	envList, _ := app["environment"].([]any)
	for _, e := range envList {
		if m, _ := e.(map[string]any); m != nil && m["name"] == "AGENT_CONFIG" {
			return errorf("container %q already sets AGENT_CONFIG in its environment", name(app))
		}
	}
	app["environment"] = append(envList, env(conf)...)
	if err := mount(app, binVolume, binDir, true); err != nil {
		return err
	}
	dependOn(app, installer, "SUCCESS")
	raw["containerDefinitions"] = append([]any{def}, raw["containerDefinitions"].([]any)...)
	var names []string
	for _, s := range r.Secrets {
		names = append(names, s.Name)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("container %q: %s stay environment variables, now set by agent exec; its command is now run by /shared/agent exec", name(app), strings.Join(names, ", ")))
	return nil
}

// watcher is the watcher's own task definition (deploy/taskdefs/watch.json);
// the user's stays as it is.
func watcher(raw map[string]any, opt Options) *Result {
	cmd := []any{"watch", "--cluster", opt.Cluster}
	for _, s := range opt.Services {
		cmd = append(cmd, "--service", s)
	}
	defs, _ := containers(raw)
	// The watcher is Fargate with task memory: no container limit needed.
	def := agentDef(map[string]any{"memory": "512"}, defs, "watch", opt.Image)
	def["essential"] = true
	def["command"] = cmd
	def["healthCheck"] = map[string]any{
		"command":  []any{"CMD", "/agent", "health"},
		"interval": json.Number("10"), "timeout": json.Number("5"), "retries": json.Number("3"), "startPeriod": json.Number("60"),
	}
	td := map[string]any{
		"family":                  "secrets-watch",
		"networkMode":             "awsvpc",
		"requiresCompatibilities": []any{"FARGATE"},
		"cpu":                     "256",
		"memory":                  "512",
		"containerDefinitions":    []any{def},
	}
	if er, ok := raw["executionRoleArn"]; ok {
		td["executionRoleArn"] = er
	}
	return &Result{TaskDef: td, Command: "watch", Notes: []string{
		fmt.Sprintf("task definition %v is unchanged: native secrets stay, and the watcher printed here redeploys its service when one rotates", raw["family"]),
		"give the watcher a task role with `agent policy --command watch` (--policy-out) and run it as a one-task service (deploy/README.md)",
	}}
}

// IsError reports whether err is input migrate cannot rewrite.
func IsError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
