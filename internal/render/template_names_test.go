package render

import (
	"slices"
	"testing"
)

// TestTemplateSecretNames protects the list config checks templates
// against: every literal name of secret and key, wherever it is nested.
func TestTemplateSecretNames(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{`plain text`, []string{}},
		{`{{ secret "A" }} {{ secret "A" | json }}`, []string{"A"}},
		{`{{ key "DB" "user" }}:{{ key "DB" "pass" | shellquote }}`, []string{"DB"}},
		{`{{ if eq (secret "MODE") "x" }}{{ secret "X" }}{{ else if true }}{{ secret "Y" }}{{ else }}{{ with key "Z" "k" }}{{ . }}{{ else }}{{ secret "W" }}{{ end }}{{ end }}`, []string{"MODE", "W", "X", "Y", "Z"}},
		{`{{ $v := secret "V" }}{{ $v }}{{ printf "%s-%s" (secret "P") (trim (secret "Q")) }}`, []string{"P", "Q", "V"}},
		{"{{ secret `RAW` }}", []string{"RAW"}},
		// A computed name cannot be known before the values are.
		{`{{ secret (secret "INDIRECT") }}`, []string{"INDIRECT"}},
	} {
		tmpl, err := ParseTemplate("t", tc.text)
		if err != nil {
			t.Fatalf("%s: %v", tc.text, err)
		}
		if got := tmpl.SecretNames(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: names %q, want %q", tc.text, got, tc.want)
		}
	}
}
