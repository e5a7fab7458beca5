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
