package render

import (
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		want string // "" = accepted
	}{
		{"DB_PASSWORD", ""},
		{"api/key.txt", ""},
		{"a/b/c/.hidden", ""},
		{"..x/x..", ""},
		{"...", ""},
		{"", `path is empty`},
		{"/etc/passwd", `path "/etc/passwd" must be relative to the output directory`},
		{"/", `path "/" must be relative to the output directory`},
		{"../x", `path "../x" must stay inside the output directory`},
		{"a/../../x", `path "a/../../x" must stay inside the output directory`},
		{"a/..", `path "a/.." must stay inside the output directory`},
		{".", `path "." has a "." element`},
		{"./a", `path "./a" has a "." element`},
		{"a/./b", `path "a/./b" has a "." element`},
		{"a//b", `path "a//b" has an empty element`},
		{"a/", `path "a/" must not end in "/"`},
		{"a\x00b", `path "a\x00b" contains a NUL byte`},
		{strings.Repeat("a", 4097), `path of 4097 bytes is longer than 4096`},
		{".x.agent-tmp-0123456789abcdef", `path ".x.agent-tmp-0123456789abcdef" looks like an agent temp file`},
		{".agent.lock", `path ".agent.lock" is the agent's lock file`},
		{"a/.agent.lock", ""}, // only the top-level one is the lock
		{".agent.pending", `path ".agent.pending" is the agent's note of a pending change`},
		{"a/.agent.pending", ""},
		{strings.Repeat("n", 255), ""},
		{"d/" + strings.Repeat("n", 255), ""},
		{strings.Repeat("n", 256), `path element "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"… is 256 bytes long; a file or directory name can have at most 255`},
		{strings.Repeat("é", 150) + "/x", `path element "éééééééééééééééééééééééééééééééé"… is 300 bytes long; a file or directory name can have at most 255`},
		{"ok/" + strings.Repeat("d", 300) + "/x", `path element "dddddddddddddddddddddddddddddddd"… is 300 bytes long; a file or directory name can have at most 255`},
	}
	for _, tt := range tests {
		name := tt.path
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			err := CheckPath(tt.path)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckPath(%q) = %v, want nil", tt.path, err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("CheckPath(%q) = %v, want %s", tt.path, err, tt.want)
			}
		})
	}
	// Names up to NAME_MAX are accepted, and so is their temp file.
	if err := CheckPath(strings.Repeat("a/", 2047) + "a"); err != nil {
		t.Errorf("4095-byte path rejected: %v", err)
	}
}

func TestTempName(t *testing.T) {
	for _, base := range []string{"x", ".env", strings.Repeat("n", 255)} {
		name := tempName(base)
		if !isTempName(name) || len(name) > 255 {
			t.Errorf("tempName(%.20q) = %q: recognised %v, %d bytes", base, name, isTempName(name), len(name))
		}
		if name == tempName(base) {
			t.Errorf("tempName(%.20q) is not random", base)
		}
	}
	for _, name := range []string{"x", ".x", ".env", ".x.agent-tmp-", ".x.agent-tmp-0123456789ABCDEF", "x.agent-tmp-0123456789abcdef", ".x.agent-tmp-0123456789abcde"} {
		if isTempName(name) {
			t.Errorf("isTempName(%q) = true", name)
		}
	}
}

// Every path the configuration accepts can be written: a 255-byte name (its
// temp name is shortened) and a file next to a directory.
func TestCheckPathAcceptedNamesWrite(t *testing.T) {
	d, root := openTestDir(t)
	for _, p := range []string{strings.Repeat("n", 255), "d/" + strings.Repeat("é", 127) + "x", "a/.agent.lock"} {
		if err := CheckPath(p); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, d, newFile(p, "v", 0o444))
		checkFile(t, root+"/"+p, "v", 0o444)
	}
}

func TestCheckTargets(t *testing.T) {
	long := strings.Repeat("n", 256)
	tests := []struct {
		name    string
		targets []Target
		want    string // "" = accepted
	}{
		{"distinct", []Target{{"a", "secrets[0].file"}, {"b/c", "secrets[1].file"}, {"b/d", "envFile"}}, ""},
		{"prefix is not a parent", []Target{{"d", "secrets[0].file"}, {"dx/y", "secrets[1].file"}, {"d.x", "jsonFile"}}, ""},
		{"file then directory", []Target{{"d", "secrets[0].file"}, {"d/x", "secrets[1].file"}},
			`secrets[1].file: "d/x" needs "d" to be a directory, but secrets[0].file writes a file there`},
		{"directory then file", []Target{{"d/x", "secrets[0].file"}, {"d", "secrets[1].file"}},
			`secrets[0].file: "d/x" needs "d" to be a directory, but secrets[1].file writes a file there`},
		{"grandparent", []Target{{"a/b/c", "templates[0].destination"}, {"a", "envFile"}},
			`templates[0].destination: "a/b/c" needs "a" to be a directory, but envFile writes a file there`},
		{"against jsonFile", []Target{{"out.json", "jsonFile"}, {"out.json/x", "secrets[0].file"}},
			`secrets[0].file: "out.json/x" needs "out.json" to be a directory, but jsonFile writes a file there`},
		{"same path", []Target{{"x", "secret A"}, {"x", "templates[0]"}}, `templates[0]: "x" is also written by secret A`},
		{"long name", []Target{{"ok", "secrets[0].file"}, {long, "secrets[1].file"}},
			`secrets[1].file: path element "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"… is 256 bytes long; a file or directory name can have at most 255`},
		{"bad path", []Target{{"../x", "envFile"}}, `envFile: path "../x" must stay inside the output directory`},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTargets(tt.targets)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckTargets = %v, want nil", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("CheckTargets = %v\nwant %s", err, tt.want)
			}
		})
	}
}
