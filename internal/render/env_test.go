package render

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

func TestEncodeEnvGolden(t *testing.T) {
	got, err := EncodeEnv(nastyValues())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "env.golden", got)
}

func TestEncodeEnvEmpty(t *testing.T) {
	got, err := EncodeEnv(nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("EncodeEnv(nil) = %q, %v; want empty", got, err)
	}
}

func TestEncodeEnvErrors(t *testing.T) {
	const value = "s3cr3t-value"
	tests := []struct {
		name string
		vars []Var
		want string
	}{
		{"empty name", []Var{{"", secret.FromString(value)}},
			`env file: variable name "" is not a valid environment variable name`},
		{"leading digit", []Var{{"1A", secret.FromString(value)}},
			`env file: variable name "1A" is not a valid environment variable name`},
		{"dash", []Var{{"A-B", secret.FromString(value)}},
			`env file: variable name "A-B" is not a valid environment variable name`},
		{"injection", []Var{{"A=1;id", secret.FromString(value)}},
			`env file: variable name "A=1;id" is not a valid environment variable name`},
		{"nul", []Var{{"OK", secret.FromString(value + "\x00" + value)}},
			`env file: value of variable OK contains a NUL byte, which a shell variable cannot hold`},
		{"duplicate", []Var{{"A", secret.FromString(value)}, {"A", secret.FromString(value)}},
			`env file: variable A appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeEnv(tt.vars)
			if err == nil {
				t.Fatalf("EncodeEnv = %q, want error", got)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q\nwant    %q", err, tt.want)
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("error %q shows the value", err)
			}
		})
	}
}

func TestValidEnvName(t *testing.T) {
	tests := map[string]bool{
		"A": true, "_": true, "a_b9": true, "DB_PASSWORD": true, "_1": true,
		"": false, "9": false, "A-B": false, "A B": false, "A.B": false,
		"É": false, "A=B": false, "A\x00": false,
	}
	for name, want := range tests {
		if got := ValidEnvName(name); got != want {
			t.Errorf("ValidEnvName(%q) = %v, want %v", name, got, want)
		}
	}
}

// shells returns the POSIX shells to test against: sh (dash on Debian) and,
// if present, bash in POSIX mode.
func shells(t testing.TB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	if _, err := exec.LookPath("sh"); err == nil {
		out["sh"] = []string{"sh", "-c"}
	}
	if _, err := exec.LookPath("bash"); err == nil {
		out["bash-posix"] = []string{"bash", "--posix", "-c"}
	}
	if len(out) == 0 {
		t.Skip("no sh or bash in PATH")
	}
	return out
}

// runShell runs script with shell in dir, with a minimal environment.
func runShell(t testing.TB, shell []string, dir, script string, env ...string) {
	t.Helper()
	cmd := exec.Command(shell[0], append(shell[1:], script)...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", shell, err, out)
	}
}

// allBytes is every byte but NUL, including dash's internal control bytes
// 0x81-0x8a and invalid UTF-8.
func allBytes() string {
	var b []byte
	for c := 1; c < 256; c++ {
		b = append(b, byte(c))
	}
	return string(b)
}

func TestEnvShellRoundTrip(t *testing.T) {
	vars := nastyValues()
	vars = append(vars,
		Var{"ALL_BYTES", secret.FromString(allBytes())},
		Var{"INVALID_UTF8", secret.FromString("\xff\xfe\xc3(\x80")},
		Var{"ONLY_QUOTES", secret.FromString("''''")},
		Var{"QUOTE_BACKSLASH", secret.FromString(`'\''\`)},
		Var{"TRAILING_NEWLINES", secret.FromString("x\n\n\n")},
		Var{"DASH_CTL", secret.FromString("\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a")},
		Var{"LONG", secret.FromString(strings.Repeat("ab'c$\n", 20000))},
	)
	file, err := EncodeEnv(vars)
	if err != nil {
		t.Fatal(err)
	}
	// Each var is printed by the shell that loaded the file, and the first one
	// also by a child shell, which proves set -a exported it.
	var script strings.Builder
	script.WriteString("set -a; . ./vars.env; set +a\n")
	for _, v := range vars {
		script.WriteString("printf %s \"$" + v.Name + "\" > out." + v.Name + "\n")
	}
	script.WriteString(`sh -c 'printf %s "$PLAIN"' > child.PLAIN` + "\n")

	for shellName, shell := range shells(t) {
		for _, locale := range []string{"C", "C.UTF-8"} {
			t.Run(shellName+"/"+locale, func(t *testing.T) {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "vars.env"), file, 0o600); err != nil {
					t.Fatal(err)
				}
				runShell(t, shell, dir, script.String(), "LC_ALL="+locale)
				for _, v := range vars {
					got, err := os.ReadFile(filepath.Join(dir, "out."+v.Name))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, v.Value.Bytes()) {
						t.Errorf("%s: read back %q, want %q", v.Name, got, v.Value.Bytes())
					}
				}
				child, err := os.ReadFile(filepath.Join(dir, "child.PLAIN"))
				if err != nil || string(child) != "hunter2" {
					t.Errorf("child shell saw PLAIN=%q (%v); set -a did not export it", child, err)
				}
			})
		}
	}
}

func FuzzEnvRoundTrip(f *testing.F) {
	for _, v := range nastyValues() {
		f.Add(v.Value.Bytes())
	}
	f.Add([]byte(allBytes()))
	f.Add([]byte("a\x00b"))
	sh := shells(f)["sh"]
	if sh == nil {
		f.Skip("no sh in PATH")
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		file, err := EncodeEnv([]Var{{"V", secret.New(value)}})
		if bytes.IndexByte(value, 0) >= 0 {
			if err == nil {
				t.Fatalf("value with NUL encoded as %q, want error", file)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "file"), file, 0o600); err != nil {
			t.Fatal(err)
		}
		runShell(t, sh, dir, `set -a; . ./file; printf %s "$V" > out`)
		got, err := os.ReadFile(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, value) {
			t.Fatalf("read back %q, want %q (file %q)", got, value, file)
		}
	})
}
