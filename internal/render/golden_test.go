package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// nastyValues are values that break naive quoting; the goldens hold them all.
func nastyValues() []Var {
	return []Var{
		{"PLAIN", secret.FromString("hunter2")},
		{"EMPTY", secret.FromString("")},
		{"SINGLE_QUOTE", secret.FromString("it's 'quoted'")},
		{"DOUBLE_QUOTE", secret.FromString(`say "hi"`)},
		{"DOLLAR", secret.FromString("$HOME ${PATH} $(id) $1")},
		{"BACKSLASH", secret.FromString(`C:\path\n\\ \'`)},
		{"BACKTICK", secret.FromString("`rm -rf /`")},
		{"NEWLINES", secret.FromString("line1\nline2\r\n\n")},
		{"NON_ASCII", secret.FromString("héllo wörld 日本語 🙂 \u2028")},
		{"HTML", secret.FromString("<a href='x'>&amp;</a>")},
		{"CONTROL", secret.FromString("tab\there bell\a esc\x1b[0m")},
		{"SHELL_META", secret.FromString("; | & * ? [ ] ~ # ! { } < > =")},
	}
}
