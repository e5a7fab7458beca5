package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// EncodeJSON returns a JSON object {"NAME": "value", ...} with keys sorted,
// 2-space indented, with a trailing newline. Values must be valid UTF-8 (the
// caller base64-encodes binary ones): encoding/json would silently replace
// invalid bytes with U+FFFD, changing the secret.
func EncodeJSON(vars []Var) ([]byte, error) {
	sorted := slices.Clone(vars)
	slices.SortStableFunc(sorted, func(a, b Var) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	buf.WriteString("{")
	for i, v := range sorted {
		if !utf8.ValidString(v.Name) {
			return nil, fmt.Errorf("json file: variable name %q is not valid UTF-8", v.Name)
		}
		if i > 0 && sorted[i-1].Name == v.Name {
			return nil, fmt.Errorf("json file: variable %q appears twice", v.Name)
		}
		if !utf8.Valid(v.Value.Bytes()) {
			return nil, fmt.Errorf("json file: value of variable %q is not valid UTF-8", v.Name)
		}
		if i > 0 {
			buf.WriteString(",")
		}
		buf.WriteString("\n  ")
		writeJSONString(&buf, v.Name)
		buf.WriteString(": ")
		writeJSONString(&buf, string(v.Value.Bytes()))
	}
	if len(sorted) > 0 {
		buf.WriteString("\n")
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// writeJSONString writes s as a JSON string literal without HTML escaping
// (<, >, & stay readable). s must be valid UTF-8.
func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}
