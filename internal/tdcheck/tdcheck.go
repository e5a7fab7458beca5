// Package tdcheck holds the checks a task definition under deploy/ must pass,
// shared by the tests of the example JSON files and of the CloudFormation and
// Terraform code that generates task definitions: strict decoding into the
// ECS API's RegisterTaskDefinitionInput, the camelCase of every key, the
// containers fitting together, and Fargate's limits. Test code only.
package tdcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// DecodeStrict decodes like `aws ecs register-task-definition --cli-input-json`:
// an unknown field fails. encoding/json matches the SDK's field names
// case-insensitively, so KeyCase checks the case.
func DecodeStrict(t testing.TB, data []byte) *ecs.RegisterTaskDefinitionInput {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var td ecs.RegisterTaskDefinitionInput
	if err := dec.Decode(&td); err != nil {
		t.Fatalf("not a RegisterTaskDefinition input: %v", err)
	}
	if dec.More() {
		t.Fatal("trailing data after the task definition")
	}
	if td.Family == nil || *td.Family == "" {
		t.Error("family is required")
	}
	if len(td.ContainerDefinitions) == 0 {
		t.Error("containerDefinitions is required")
	}
	return &td
}

// KeyCase walks the JSON beside the SDK type: every object key must be the
// camelCase of a field (the CLI and the API are case-sensitive). Maps
// (dockerLabels, options, driverOpts) have free keys.
func KeyCase(t testing.TB, data []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any, typ reflect.Type)
	walk = func(path string, v any, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch v := v.(type) {
		case map[string]any:
			if typ.Kind() != reflect.Struct {
				return
			}
			for k, child := range v {
				f, ok := typ.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, k) })
				if !ok {
					t.Errorf("%s.%s: no such field in %s", path, k, typ)
					continue
				}
				if want := strings.ToLower(f.Name[:1]) + f.Name[1:]; k != want {
					t.Errorf("%s.%s: spell it %q", path, k, want)
				}
				walk(path+"."+k, child, f.Type)
			}
		case []any:
			if typ.Kind() == reflect.Slice {
				for i, child := range v {
					walk(fmt.Sprintf("%s[%d]", path, i), child, typ.Elem())
				}
			}
		}
	}
	walk("$", v, reflect.TypeFor[ecs.RegisterTaskDefinitionInput]())
}

// Containers checks that the containers fit together: unique names,
// dependencies on containers that exist and can satisfy the condition,
// mounts of declared volumes, one essential container, and, for the agent's
// containers (isAgent), the healthCheck and read-only root of the patterns.
func Containers(t testing.TB, td *ecs.RegisterTaskDefinitionInput, isAgent func(types.ContainerDefinition) bool) {
	t.Helper()
	names := map[string]types.ContainerDefinition{}
	for _, c := range td.ContainerDefinitions {
		if c.Name == nil || c.Image == nil {
			t.Errorf("a container without name or image: %+v", c)
			continue
		}
		if _, dup := names[*c.Name]; dup {
			t.Errorf("container %q defined twice", *c.Name)
		}
		names[*c.Name] = c
	}
	volumes := map[string]bool{}
	for _, v := range td.Volumes {
		volumes[Deref(v.Name)] = true
	}
	essential := 0
	for _, c := range td.ContainerDefinitions {
		name := Deref(c.Name)
		if c.Essential == nil || *c.Essential {
			essential++
		}
		for _, d := range c.DependsOn {
			target, ok := names[Deref(d.ContainerName)]
			switch {
			case !ok:
				t.Errorf("%s dependsOn %q: no such container", name, Deref(d.ContainerName))
			case d.Condition == types.ContainerConditionSuccess || d.Condition == types.ContainerConditionComplete:
				// An init container: it must be allowed to exit.
				if target.Essential == nil || *target.Essential {
					t.Errorf("%s waits for %s to %s, so %s must be \"essential\": false", name, *target.Name, d.Condition, *target.Name)
				}
			case d.Condition == types.ContainerConditionHealthy:
				if target.HealthCheck == nil {
					t.Errorf("%s waits for %s to be HEALTHY, but %s has no healthCheck", name, *target.Name, *target.Name)
				}
			}
		}
		for _, m := range c.MountPoints {
			if !volumes[Deref(m.SourceVolume)] {
				t.Errorf("%s mounts volume %q: not in volumes", name, Deref(m.SourceVolume))
			}
		}
		if isAgent(c) {
			if c.HealthCheck != nil && !slices.Equal(c.HealthCheck.Command, []string{"CMD", "/agent", "health"}) {
				// Not --ready: an AWS outage must not get a task with good
				// files replaced (SPEC §6 "Failing safe").
				t.Errorf("%s: healthCheck %q, want [CMD /agent health] (the image has no shell; /healthz, not --ready)", name, c.HealthCheck.Command)
			}
			if c.ReadonlyRootFilesystem == nil || !*c.ReadonlyRootFilesystem {
				t.Errorf("%s: the agent writes only to its volume: set \"readonlyRootFilesystem\": true", name)
			}
		}
	}
	if essential == 0 {
		t.Error("no essential container")
	}
}

// Fargate rejects what Fargate does not run.
func Fargate(t testing.TB, td *ecs.RegisterTaskDefinitionInput) {
	t.Helper()
	if td.NetworkMode != types.NetworkModeAwsvpc {
		t.Errorf("Fargate needs \"networkMode\": \"awsvpc\", got %q", td.NetworkMode)
	}
	if td.PidMode != "" && td.PidMode != types.PidModeTask {
		t.Errorf("Fargate supports only \"pidMode\": \"task\", got %q", td.PidMode)
	}
	if td.IpcMode != "" {
		t.Errorf("Fargate has no ipcMode, got %q", td.IpcMode)
	}
	if td.Cpu == nil || td.Memory == nil {
		t.Error("Fargate needs task-level cpu and memory")
	}
	for _, v := range td.Volumes {
		if v.DockerVolumeConfiguration != nil {
			t.Errorf("volume %s: dockerVolumeConfiguration is EC2-only", Deref(v.Name))
		}
		if v.Host != nil && v.Host.SourcePath != nil {
			t.Errorf("volume %s: host.sourcePath is EC2-only", Deref(v.Name))
		}
	}
	for _, c := range td.ContainerDefinitions {
		if c.Privileged != nil && *c.Privileged {
			t.Errorf("%s: privileged is EC2-only", Deref(c.Name))
		}
		if len(c.Links) > 0 {
			t.Errorf("%s: links need bridge mode", Deref(c.Name))
		}
	}
}

// Deref is the string a pointer holds, or "".
func Deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// BuildAgent builds the agent from pkg (a path relative to the test's
// package) into the test's temporary directory, for tests that run its
// check and policy commands.
func BuildAgent(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agent")
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
