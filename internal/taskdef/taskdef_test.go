package taskdef

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

const containersJSON = `[
  {
    "name": "secrets",
    "image": "ecs-secrets-agent:1.0.0",
    "essential": false,
    "command": ["init"]
  },
  {
    "name": "app",
    "image": "web:1",
    "environment": [{"name": "DB_PASSWORD_FILE", "value": "/run/secrets/DB_PASSWORD"}],
    "dependsOn": [{"containerName": "secrets", "condition": "SUCCESS"}]
  }
]`

const registerJSON = `{
  "family": "web",
  "requiresCompatibilities": ["EC2"],
  "pidMode": "task",
  "containerDefinitions": ` + containersJSON + `,
  "volumes": [{"name": "secrets", "dockerVolumeConfiguration": {"scope": "task", "driver": "local", "driverOpts": {"type": "tmpfs"}}}]
}`

const describeJSON = `{
  "taskDefinition": {
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:111122223333:task-definition/web:3",
    "family": "web",
    "revision": 3,
    "status": "ACTIVE",
    "requiresAttributes": [{"name": "ecs.capability.container-ordering"}],
    "compatibilities": ["EC2"],
    "requiresCompatibilities": ["EC2"],
    "pidMode": "task",
    "registeredAt": "2026-11-02T10:04:05.123000+00:00",
    "registeredBy": "arn:aws:sts::111122223333:assumed-role/deploy/ci",
    "deregisteredAt": "2026-11-03T10:04:05.123000+00:00",
    "containerDefinitions": ` + containersJSON + `,
    "volumes": [{"name": "secrets", "dockerVolumeConfiguration": {"scope": "task", "driver": "local", "driverOpts": {"type": "tmpfs"}}}]
  },
  "tags": [{"key": "team", "value": "web"}]
}`

func TestParseShapes(t *testing.T) {
	cases := []struct {
		name     string
		in       string
		shape    Shape
		keys     string // top-level keys of Raw, sorted
		pidMode  types.PidMode
		appLine  int // line of containerDefinitions[1].environment[0]
		tmpfsVol bool
	}{
		{"describe output", describeJSON, Describe, "containerDefinitions family pidMode requiresCompatibilities tags volumes", types.PidModeTask, 24, true},
		{"register input", registerJSON, Register, "containerDefinitions family pidMode requiresCompatibilities volumes", types.PidModeTask, 15, true},
		{"container array", containersJSON, Containers, "containerDefinitions", "", 11, false},
		{"container array with BOM", "\xef\xbb\xbf" + containersJSON, Containers, "containerDefinitions", "", 11, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			td, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if td.Shape != tc.shape {
				t.Errorf("shape %v, want %v", td.Shape, tc.shape)
			}
			var keys []string
			for k := range td.Raw {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if got := strings.Join(keys, " "); got != tc.keys {
				t.Errorf("keys %q, want %q", got, tc.keys)
			}
			if td.Input.PidMode != tc.pidMode {
				t.Errorf("pidMode %q, want %q", td.Input.PidMode, tc.pidMode)
			}
			cd := td.Input.ContainerDefinitions
			if len(cd) != 2 || aws.ToString(cd[1].Name) != "app" || aws.ToBool(cd[0].Essential) || cd[1].DependsOn[0].Condition != types.ContainerConditionSuccess {
				t.Errorf("typed view wrong: %+v", cd)
			}
			if got := td.Line("containerDefinitions[1].environment[0]"); got != tc.appLine {
				t.Errorf("line %d, want %d", got, tc.appLine)
			}
			if got := len(td.Input.Volumes) == 1 && td.Input.Volumes[0].DockerVolumeConfiguration.DriverOpts["type"] == "tmpfs"; got != tc.tmpfsVol {
				t.Errorf("tmpfs volume %v, want %v", got, tc.tmpfsVol)
			}
			// The register shape re-reads as itself: ready for
			// register-task-definition --cli-input-json.
			b, err := json.Marshal(td.Raw)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(b)
			if err != nil || again.Shape != Register || !reflect.DeepEqual(again.Raw, td.Raw) {
				t.Errorf("register shape does not re-read as itself: %v", err)
			}
		})
	}
}

func TestParseErrorsNameNoValue(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"empty", ``, "invalid JSON: unexpected end of input"},
		{"syntax", `{"containerDefinitions": [}`, "invalid JSON at byte 27"},
		{"two values", `[] []`, "invalid JSON: more than one value"},
		{"trailing garbage", `[] hunter2`, "invalid JSON: more than one value"},
		{"scalar", `"hunter2"`, "not a task definition: want a JSON object or array"},
		{"other object", `{"family": "x"}`, `not a task definition: want {"taskDefinition": …} (describe-task-definition output), {"containerDefinitions": […], …} (register-task-definition input) or a container definitions array`},
		{"taskDefinition not object", `{"taskDefinition": []}`, `"taskDefinition" is not an object`},
		{"containerDefinitions not array", `{"containerDefinitions": {}}`, `"containerDefinitions" is not an array`},
		// encoding/json would say "number 987654321"; a number can be a secret.
		{"mistyped value", `[{"name": "app", "environment": [{"name": "PIN", "value": 987654321}]}]`, "containerDefinitions.environment.value: want string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "987654321") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a value: %v", err)
			}
		})
	}
}

// TestRegisterShapeWins: a describe output whose task definition itself has
// a "taskDefinition" key still re-reads as a register input.
func TestRegisterShapeWins(t *testing.T) {
	td, err := Parse([]byte(`{"taskDefinition": {"taskDefinition": {}, "containerDefinitions": []}}`))
	if err != nil || td.Shape != Describe {
		t.Fatalf("%v %v", td, err)
	}
	b, _ := json.Marshal(td.Raw)
	again, err := Parse(b)
	if err != nil || again.Shape != Register {
		t.Fatalf("re-read as %v, %v", again.Shape, err)
	}
}
