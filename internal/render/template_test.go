package render

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

func templateValues() map[string]secret.Value {
	m := map[string]secret.Value{
		"RDS":     secret.FromString(`{"username":"app","password":"p@ss'w\"rd$","port":5432,"options":{"ssl": true}}`),
		"ENCODED": secret.FromString("aMOpbGxvCg=="),
		"PADDED":  secret.FromString(" \t padded \n"),
	}
	for _, v := range nastyValues() {
		m[v.Name] = v.Value
	}
	return m
}

func TestTemplateGolden(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("testdata", "template.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseTemplate("golden", string(text))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Execute(templateValues())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "template.golden", got.Bytes())
}

func TestTemplateErrors(t *testing.T) {
	values := map[string]secret.Value{
		"S":    secret.FromString("s3cr3t-value"),
		"J":    secret.FromString(`{"k":"s3cr3t-value"}`),
		"BAD":  secret.FromString("s3cr3t-value\xff"),
		"NUL":  secret.FromString("s3cr3t-value\x00"),
		"NAME": secret.FromString("s3cr3t-value"),
	}
	tests := []struct {
		name, text, want string
	}{
		{"missing secret", `a{{ secret "NOPE" }}`,
			`render template "t": template: t:1:4: executing "t" at <secret "NOPE">: error calling secret: secret "NOPE" not found`},
		{"missing secret in key", `{{ key "NOPE" "k" }}`,
			`render template "t": template: t:1:3: executing "t" at <key "NOPE" "k">: error calling key: secret "NOPE" not found`},
		{"missing key", "{{ key `J` `nope` }}",
			"render template \"t\": template: t:1:3: executing \"t\" at <key `J` `nope`>: error calling key: key \"nope\" not found in secret \"J\""},
		{"not json", `{{ key "S" "k" }}`,
			`render template "t": template: t:1:3: executing "t" at <key "S" "k">: error calling key: secret "S": secret value is not a JSON object`},
		{"computed name hidden", `{{ secret (secret "NAME") }}`,
			`render template "t": template: t:1:3: executing "t" at <secret (secret "NAME")>: error calling secret: secret (computed name, not shown) not found`},
		{"computed key hidden", `{{ key "J" (secret "S") }}`,
			`render template "t": template: t:1:3: executing "t" at <key "J" (secret "S")>: error calling key: key (computed name, not shown) not found in secret "J"`},
		{"bad base64", `{{ base64decode (secret "S") }}`,
			`render template "t": template: t:1:3: executing "t" at <base64decode (secret "S")>: error calling base64decode: value is not valid base64: illegal base64 data at input byte 6`},
		{"json invalid utf8", `{{ json (secret "BAD") }}`,
			`render template "t": template: t:1:3: executing "t" at <json (secret "BAD")>: error calling json: value is not valid UTF-8`},
		{"shellquote nul", `{{ shellquote (secret "NUL") }}`,
			`render template "t": template: t:1:3: executing "t" at <shellquote (secret "NUL")>: error calling shellquote: value contains a NUL byte, which sh cannot hold`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseTemplate("t", tt.text)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Execute(values)
			if err == nil {
				t.Fatalf("Execute = %q, want error", got.Bytes())
			}
			if err.Error() != tt.want {
				t.Errorf("error = %s\nwant    %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q shows a value", err)
			}
		})
	}
}

func TestParseTemplateError(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"unclosed", `{{ secret "A" `, `parse template "conf": template: conf:1: unclosed action`},
		{"unknown function", `{{ nosuchfunc }}`, `parse template "conf": template: conf:1: function "nosuchfunc" not defined`},
		// Dot holds no secrets (it is nil, or a string inside with), so a
		// field is always an error: found at start-up, not at the first render.
		{"dot is not the values", `{{ .S }}`,
			`parse template "conf": template: conf:1: field access .S is not supported: dot holds no secrets; use secret "NAME" or key "NAME" "field"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTemplate("conf", tt.text)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v\nwant    %s", err, tt.want)
			}
		})
	}
}

// A parsed template is shared by concurrent renders with different values.
func TestTemplateConcurrent(t *testing.T) {
	tmpl, err := ParseTemplate("t", `{{ secret "A" }}`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		want := strings.Repeat("x", i)
		wg.Go(func() {
			for range 100 {
				got, err := tmpl.Execute(map[string]secret.Value{"A": secret.FromString(want)})
				if err != nil || string(got.Bytes()) != want {
					t.Errorf("Execute = %q, %v; want %q", got.Bytes(), err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// helperTemplate runs every helper on the fuzzed value V and the fuzzed
// field name F, one helper per template so each result is checked alone.
func FuzzTemplateHelpers(f *testing.F) {
	for _, v := range nastyValues() {
		f.Add(string(v.Value.Bytes()), "k")
	}
	f.Add(`{"k":"v","n":1}`, "k")
	f.Add(`{"k":"v"}`, "missing")
	f.Add("aGVsbG8=", "")
	f.Add("a\x00b\xff", "\x00")
	sh := shells(f)["sh"]
	if sh == nil {
		f.Skip("no sh in PATH")
	}
	parse := func(text string) *Template {
		tmpl, err := ParseTemplate("fuzz", text)
		if err != nil {
			f.Fatal(err)
		}
		return tmpl
	}
	var (
		quoteT  = parse(`{{ shellquote (secret "V") }}`)
		jsonT   = parse(`{{ json (secret "V") }}`)
		b64T    = parse(`{{ base64 (secret "V") | base64decode }}`)
		decodeT = parse(`{{ base64decode (secret "V") }}`)
		trimT   = parse(`{{ trim (secret "V") }}`)
		keyT    = parse(`{{ key "V" (secret "F") }}`)
		nameT   = parse(`{{ secret (secret "V") }}`)
	)
	f.Fuzz(func(t *testing.T, value, field string) {
		values := map[string]secret.Value{"V": secret.FromString(value), "F": secret.FromString(field)}
		run := func(tmpl *Template) (string, error) {
			out, err := tmpl.Execute(values)
			return string(out.Bytes()), err
		}

		quoted, err := run(quoteT)
		if strings.Contains(value, "\x00") != (err != nil) {
			t.Fatalf("shellquote: error %v for value %q", err, value)
		}
		if err == nil {
			dir := t.TempDir()
			runShell(t, sh, dir, "printf %s "+quoted+" > out")
			got, err := os.ReadFile(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != value {
				t.Fatalf("shellquote: sh read back %q, want %q", got, value)
			}
		}

		lit, err := run(jsonT)
		if utf8.ValidString(value) != (err == nil) {
			t.Fatalf("json: error %v for value %q", err, value)
		}
		if err == nil {
			var back string
			if err := json.Unmarshal([]byte(lit), &back); err != nil || back != value {
				t.Fatalf("json: %q decodes to %q, %v; want %q", lit, back, err, value)
			}
		}

		if got, err := run(b64T); err != nil || got != value {
			t.Fatalf("base64 round trip = %q, %v; want %q", got, err, value)
		}
		if got, err := run(trimT); err != nil || got != strings.TrimSpace(value) {
			t.Fatalf("trim = %q, %v", got, err)
		}
		if _, err := run(decodeT); err != nil && !strings.Contains(err.Error(), "error calling base64decode: value is not valid base64: illegal base64 data at input byte ") {
			t.Fatalf("base64decode: unexpected error %q", err)
		}
		// Errors about computed names must not show them: they may be secrets.
		got, err := run(keyT)
		switch {
		case err == nil:
			want, ferr := secret.FromString(value).Field(field)
			if ferr != nil || !bytes.Equal(want.Bytes(), []byte(got)) {
				t.Fatalf("key = %q, want %q (%v)", got, want.Bytes(), ferr)
			}
		case field == "V" || field == "F":
		case strings.HasSuffix(err.Error(), `error calling key: key (computed name, not shown) not found in secret "V"`):
		case strings.HasSuffix(err.Error(), `error calling key: secret "V": secret value is not a JSON object`):
		default:
			t.Fatalf("key: unexpected error %q", err)
		}
		_, err = run(nameT)
		want := `render template "fuzz": template: fuzz:1:3: executing "fuzz" at <secret (secret "V")>: error calling secret: secret (computed name, not shown) not found`
		if value != "V" && value != "F" && (err == nil || err.Error() != want) {
			t.Fatalf("secret of computed name: error %v, want %s", err, want)
		}
	})
}
