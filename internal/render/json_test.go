package render

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

func TestEncodeJSONGolden(t *testing.T) {
	got, err := EncodeJSON(nastyValues())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "json.golden", got)
}

func TestEncodeJSONEmpty(t *testing.T) {
	got, err := EncodeJSON(nil)
	if err != nil || string(got) != "{}\n" {
		t.Fatalf("EncodeJSON(nil) = %q, %v; want {}\\n", got, err)
	}
}

func TestEncodeJSONErrors(t *testing.T) {
	const value = "s3cr3t-value"
	tests := []struct {
		name string
		vars []Var
		want string
	}{
		{"invalid utf8 value", []Var{{"A", secret.FromString(value + "\xff")}},
			`json file: value of variable "A" is not valid UTF-8`},
		{"invalid utf8 name", []Var{{"A\xff", secret.FromString(value)}},
			`json file: variable name "A\xff" is not valid UTF-8`},
		{"duplicate", []Var{{"B", secret.FromString(value)}, {"A", secret.FromString(value)}, {"B", secret.FromString(value)}},
			`json file: variable "B" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EncodeJSON(tt.vars)
			if err == nil {
				t.Fatalf("EncodeJSON = %q, want error", got)
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

// referenceJSON is what encoding/json makes of the same map, the oracle for
// EncodeJSON's layout.
func referenceJSON(t *testing.T, m map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzEncodeJSON(f *testing.F) {
	for _, v := range nastyValues() {
		f.Add(v.Name, string(v.Value.Bytes()))
	}
	f.Add("B", "dup")
	f.Add("", "\xff")
	f.Fuzz(func(t *testing.T, name, value string) {
		vars := []Var{{name, secret.FromString(value)}, {"B", secret.FromString("other")}}
		got, err := EncodeJSON(vars)
		wantErr := !utf8.ValidString(name) || !utf8.ValidString(value) || name == "B"
		if wantErr {
			if err == nil {
				t.Fatalf("EncodeJSON = %q, want error", got)
			}
			if len(value) >= 8 && strings.Contains(err.Error(), value) {
				t.Fatalf("error %q shows the value", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var back map[string]string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("output %q is not JSON: %v", got, err)
		}
		if len(back) != 2 || back[name] != value || back["B"] != "other" {
			t.Fatalf("round trip gave %q, want %q=%q", back, name, value)
		}
		if want := referenceJSON(t, map[string]string{name: value, "B": "other"}); !bytes.Equal(got, want) {
			t.Fatalf("layout differs from encoding/json:\ngot  %q\nwant %q", got, want)
		}
	})
}
