package config

import (
	"strings"
	"testing"
)

// check must refuse what init cannot write (issue 12 #8): a file that
// another destination needs as a directory, and a name longer than 255
// bytes. Before, both passed and init wrote some files, then exited 1.
func TestLoadRejectsPathsThatCannotBeWritten(t *testing.T) {
	long := strings.Repeat("n", 256)
	tests := []struct {
		name, json, want string
	}{
		{"file and file below it",
			`{"secrets":[{"name":"A","valueFrom":"/a","file":"d"},{"name":"B","valueFrom":"/b","file":"d/x"}]}`,
			`secrets[1].file: "d/x" needs "d" to be a directory, but secrets[0].file writes a file there`},
		{"secret name is a directory of another file",
			`{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b","file":"A/b"}]}`,
			`secrets[1].file: "A/b" needs "A" to be a directory, but secrets[0].file writes a file there`},
		{"envFile below a secret's file",
			`{"secrets":[{"name":"A","valueFrom":"/a"}],"envFile":"A/.env"}`,
			`envFile: "A/.env" needs "A" to be a directory, but secrets[0].file writes a file there`},
		{"secret below the jsonFile",
			`{"secrets":[{"name":"A","valueFrom":"/a","file":"all.json/a"}],"jsonFile":"all.json"}`,
			`secrets[0].file: "all.json/a" needs "all.json" to be a directory, but jsonFile writes a file there`},
		{"template destination above a secret",
			`{"secrets":[{"name":"A","valueFrom":"/a","file":"conf/a/key"}],"templates":[{"template":"x","destination":"conf/a"}]}`,
			`secrets[0].file: "conf/a/key" needs "conf/a" to be a directory, but templates[0].destination writes a file there`},
		{"long file name",
			`{"secrets":[{"name":"A","valueFrom":"/a","file":"dir/` + long + `"}]}`,
			`secrets[0].file: path element "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"… is 256 bytes long; a file or directory name can have at most 255`},
		{"long directory name",
			`{"secrets":[{"name":"A","valueFrom":"/a"}],"templates":[{"template":"x","destination":"` + long + `/t"}]}`,
			`templates[0].destination: path element "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"… is 256 bytes long; a file or directory name can have at most 255`},
		{"the lock file",
			`{"secrets":[{"name":"A","valueFrom":"/a"}],"envFile":".agent.lock"}`,
			`envFile: path ".agent.lock" is the agent's lock file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Flags{}, env(map[string]string{"AGENT_CONFIG": tt.json}))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got %v\nwant %s", err, tt.want)
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("error is %T, want *config.Error (exit 2)", err)
			}
		})
	}
	// 255 bytes is a valid name, and distinct siblings coexist.
	ok := `{"secrets":[{"name":"A","valueFrom":"/a","file":"d/` + strings.Repeat("n", 255) + `"},{"name":"B","valueFrom":"/b","file":"d/y"}],"envFile":"dx"}`
	if _, err := Load(Flags{}, env(map[string]string{"AGENT_CONFIG": ok})); err != nil {
		t.Errorf("valid paths rejected: %v", err)
	}
}
