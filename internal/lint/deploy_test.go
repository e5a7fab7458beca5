package lint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// TestOurTaskDefinitionsLintClean: the examples under deploy/taskdefs are
// the shapes lint recommends, so each must pass it once its placeholders
// are filled in as deploy/README.md says (the placeholders themselves are
// rightly rejected as references: REGION is not a region).
func TestOurTaskDefinitionsLintClean(t *testing.T) {
	files, err := filepath.Glob("../../deploy/taskdefs/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no task definitions under deploy/taskdefs: %v", err)
	}
	fill := strings.NewReplacer("ACCOUNT_ID", "111122223333", "REGION", "us-east-1")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			td, err := taskdef.Parse([]byte(fill.Replace(string(raw))))
			if err != nil {
				t.Fatal(err)
			}
			t.Run("recognised", func(t *testing.T) {
				// Lint is clean because it saw the agent, not because it missed it.
				task := newTask(td)
				n := 0
				for _, c := range task.containers {
					if c.mode != "" {
						n++
					}
				}
				if n == 0 {
					t.Errorf("no agent container recognised")
				}
			})
			for _, f := range Check(filepath.Base(file), td) {
				t.Errorf("%s %s %s: %s", f.RuleID, f.Container, f.Path, f.Message)
			}
		})
	}
}
