package lint

import (
	"bytes"
	"os"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// FuzzCheck: whatever task definition the reader accepts, every rule and
// every output format run without a panic, and no finding lacks a rule.
func FuzzCheck(f *testing.F) {
	for _, file := range []string{"testdata/orders-api.taskdef.json", "../../deploy/taskdefs/exec.json", "../../deploy/taskdefs/sidecar-signal.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"name":"a","image":"ecs-secrets-agent","command":["install"],"readonlyRootFilesystem":true},{"name":"b","entryPoint":["agent","exec","--output-dir"]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		td, err := taskdef.Parse(data)
		if err != nil {
			return
		}
		fs := Check("f.json", td)
		for _, x := range fs {
			if x.RuleID == "" || x.Level == "" || x.Fix == "" {
				t.Fatalf("incomplete finding %+v", x)
			}
		}
		var b bytes.Buffer
		if WriteText(&b, 1, fs) != nil || WriteJSON(&b, 1, fs) != nil || WriteSARIF(&b, "", fs) != nil {
			t.Fatal("writing failed")
		}
	})
}
