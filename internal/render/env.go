package render

import (
	"bytes"
	"fmt"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

// Var is one named value for the env and JSON files.
type Var struct {
	Name  string
	Value secret.Value
}

// ValidEnvName reports whether s is a POSIX environment variable name:
// [A-Za-z_][A-Za-z0-9_]*.
func ValidEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		letter := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// EncodeEnv returns a dotenv file that a POSIX sh loads with `set -a; . FILE`,
// one NAME='value' line per var in the given order. Inside single quotes every
// byte but ' is literal, including newlines, so any value without NUL
// round-trips; a ' ends the quoted string, is written as \', and a new one
// begins.
func EncodeEnv(vars []Var) ([]byte, error) {
	seen := make(map[string]bool, len(vars))
	var buf bytes.Buffer
	for _, v := range vars {
		if !ValidEnvName(v.Name) {
			return nil, fmt.Errorf("env file: variable name %q is not a valid environment variable name", v.Name)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("env file: variable %s appears twice", v.Name)
		}
		seen[v.Name] = true
		if bytes.IndexByte(v.Value.Bytes(), 0) >= 0 {
			return nil, fmt.Errorf("env file: value of variable %s contains a NUL byte, which a shell variable cannot hold", v.Name)
		}
		buf.WriteString(v.Name)
		buf.WriteByte('=')
		writeShellQuoted(&buf, v.Value.Bytes())
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// writeShellQuoted writes b single-quoted for sh; b must not hold a NUL.
func writeShellQuoted(buf *bytes.Buffer, b []byte) {
	buf.WriteByte('\'')
	for _, c := range b {
		if c == '\'' {
			buf.WriteString(`'\''`)
		} else {
			buf.WriteByte(c)
		}
	}
	buf.WriteByte('\'')
}
