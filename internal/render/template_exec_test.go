package render

import (
	"bytes"
	"strings"
	"testing"
	"text/template" // the reference the evaluator must agree with; tests are not in the binary

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

func evalValues() map[string]secret.Value {
	return map[string]secret.Value{
		"A":  secret.FromString("alpha"),
		"E":  secret.FromString(""),
		"SP": secret.FromString(" x \n"),
		"J":  secret.FromString(`{"k":"v","n":1}`),
		"S":  secret.FromString("s3cr3t-value"),
	}
}

// reference parses text with text/template and the same helpers: what
// ParseTemplate did before this package had its own evaluator.
func reference(name, text string, values map[string]secret.Value) (*template.Template, error) {
	h := helpers{text: text, values: values}
	return template.New(name).Funcs(template.FuncMap{
		"secret":       h.secret,
		"key":          h.key,
		"json":         jsonQuote,
		"base64":       base64Encode,
		"base64decode": base64Decode,
		"shellquote":   shellQuote,
		"trim":         strings.TrimSpace,
	}).Parse(text)
}

// referenceExecute runs text with text/template's executor.
func referenceExecute(name, text string, values map[string]secret.Value) (string, error) {
	tmpl, err := reference(name, text, values)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, nil); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// Every construct and builtin the evaluator implements, each checked against
// the expected output and against text/template.
func TestTemplateEval(t *testing.T) {
	for _, tt := range evalCases() {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseTemplate("t", tt.text)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Execute(evalValues())
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Bytes()) != tt.want {
				t.Errorf("Execute = %q, want %q", got.Bytes(), tt.want)
			}
			ref, err := referenceExecute("t", tt.text, evalValues())
			if err != nil || ref != tt.want {
				t.Errorf("text/template = %q, %v; want %q", ref, err, tt.want)
			}
		})
	}
}

// Errors while rendering, word for word as text/template's, except that a
// wrongly typed result is reported where it was computed (text/template names
// the last node it evaluated) and len of nil says so (text/template shows a
// reflect panic). None shows a value.
func TestTemplateEvalErrors(t *testing.T) {
	const prefix = `render template "t": template: t:`
	// Where the message differs from text/template's.
	differs := map[string]bool{"int for string": true, "len of nil": true}
	for _, tt := range evalErrorCases() {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseTemplate("t", tt.text)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Execute(evalValues())
			if err == nil {
				t.Fatalf("Execute = %q, want error", got.Bytes())
			}
			if want := prefix + tt.want; err.Error() != want {
				t.Errorf("error = %s\nwant    %s", err, want)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "alpha") {
				t.Errorf("error %q shows a value", err)
			}
			_, refErr := referenceExecute("t", tt.text, evalValues())
			if refErr == nil || !differs[tt.name] && `render template "t": `+refErr.Error() != err.Error() {
				t.Errorf("text/template error = %v", refErr)
			}
		})
	}
}

// What the evaluator does not implement fails at parse time, so the agent
// refuses the configuration at start-up.
func TestTemplateUnsupported(t *testing.T) {
	const prefix = `parse template "db.url": template: db.url:`
	for _, tt := range unsupportedCases() {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := ParseTemplate("db.url", tt.text)
			if err == nil {
				t.Fatalf("ParseTemplate = %v, want error", tmpl)
			}
			if want := prefix + tt.want; err.Error() != want {
				t.Errorf("error = %s\nwant    %s", err, want)
			}
		})
	}
}

// templateCase is a template, its name and what it renders to or fails with.
type templateCase struct{ name, text, want string }

// evalCases are every construct and builtin the evaluator implements.
func evalCases() []templateCase {
	return []templateCase{
		// text, comments, trim markers
		{"empty", ``, ``},
		{"text only", "plain\ntext", "plain\ntext"},
		{"comment", `a{{/* note */}}b`, `ab`},
		{"trimmed comment", "a \n{{- /* note */ -}}\n b", `ab`},
		{"trim markers", "a  {{- \"b\" -}}  \n c", `abc`},

		// constants
		{"string", `{{ "lit" }}`, `lit`},
		{"raw string", "{{ `r\\aw` }}", `r\aw`},
		{"int", `{{ 42 }}`, `42`},
		{"negative", `{{ -7 }}`, `-7`},
		{"float", `{{ 1.5 }}`, `1.5`},
		{"exponent", `{{ 1e3 }}`, `1000`},
		{"hex", `{{ 0x1F }}`, `31`},
		{"rune", `{{ 'a' }}`, `97`},
		{"complex", `{{ 1i }}`, `(0+1i)`},
		{"bool", `{{ true }} {{ false }}`, `true false`},

		// dot and $ are nil
		{"dot", `{{ . }}`, `<no value>`},
		{"dollar", `{{ $ }}`, `<no value>`},

		// pipelines
		{"helper", `{{ secret "A" }}`, `alpha`},
		{"pipeline", `{{ secret "SP" | trim | printf "[%s]" }}`, `[x]`},
		{"parenthesised args", `{{ printf "%s-%s" (secret "A") (trim (secret "SP")) }}`, `alpha-x`},
		{"pipeline in parens", `{{ json (secret "SP" | trim) }}`, `"x"`},
		{"parens as command", `{{ (secret "A") }}`, `alpha`},
		{"parens then pipe", `{{ (secret "A") | base64 }}`, `YWxwaGE=`},
		{"function as argument", `{{ json print }}`, `""`},
		{"key", `{{ key "J" "k" }}{{ key "J" "n" }}`, `v1`},

		// variables
		{"declare", `{{ $x := secret "A" }}[{{ $x }}]`, `[alpha]`},
		{"assign", `{{ $x := "a" }}{{ $x = "b" }}{{ $x }}`, `b`},
		{"variable as argument", `{{ $x := secret "A" }}{{ printf "%s!" $x }}`, `alpha!`},
		{"variable piped", `{{ $x := secret "SP" }}{{ $x | trim }}`, `x`},
		{"assign in if persists", `{{ $x := "a" }}{{ if true }}{{ $x = "b" }}{{ end }}{{ $x }}`, `b`},
		{"declare in if is scoped", `{{ $x := "a" }}{{ if true }}{{ $x := "b" }}{{ $x }}{{ end }}{{ $x }}`, `ba`},
		{"declare in if pipeline", `{{ if $x := secret "A" }}{{ $x }}{{ else }}{{ $x }}none{{ end }}`, `alpha`},
		{"declare in if pipeline, else", `{{ if $x := secret "E" }}{{ $x }}{{ else }}[{{ $x }}]{{ end }}`, `[]`},
		{"declare in parens", `{{ print ($x := "a") $x }}`, `aa`},
		{"declare in with", `{{ with $x := secret "A" }}{{ $x }}{{ . }}{{ end }}`, `alphaalpha`},

		// if
		{"if true", `{{ if true }}yes{{ end }}`, `yes`},
		{"if false", `{{ if false }}yes{{ end }}`, ``},
		{"if else", `{{ if secret "E" }}yes{{ else }}no{{ end }}`, `no`},
		{"if string", `{{ if secret "A" }}yes{{ else }}no{{ end }}`, `yes`},
		{"if zero", `{{ if 0 }}a{{ else if 0.0 }}b{{ else if "" }}d{{ else }}e{{ end }}`, `e`},
		{"if nonzero", `{{ if 2 }}a{{ end }}{{ if 0.5 }}b{{ end }}{{ if 1i }}c{{ end }}`, `abc`},
		{"if dot", `{{ if . }}a{{ else }}b{{ end }}`, `b`},
		{"else if", `{{ if eq (secret "A") "x" }}x{{ else if eq (secret "A") "alpha" }}alpha{{ else }}other{{ end }}`, `alpha`},
		{"nested if", `{{ if true }}{{ if false }}a{{ else }}b{{ end }}{{ end }}`, `b`},

		// with
		{"with", `{{ with secret "A" }}[{{ . }}]{{ end }}`, `[alpha]`},
		{"with dot as argument", `{{ with secret "A" }}{{ json . }}{{ end }}`, `"alpha"`},
		{"with empty", `{{ with secret "E" }}x{{ else }}empty{{ end }}`, `empty`},
		{"else with", `{{ with secret "E" }}x{{ else with secret "A" }}{{ . }}{{ end }}`, `alpha`},
		{"with keeps $", `{{ with "x" }}{{ $ }}{{ end }}`, `<no value>`},
		{"nested with", `{{ with "a" }}{{ with "b" }}{{ . }}{{ end }}{{ . }}{{ end }}`, `ba`},
		{"else has the outer dot", `{{ with "a" }}{{ with "" }}x{{ else }}{{ . }}{{ end }}{{ end }}`, `a`},

		// printf, print
		{"printf", `{{ printf "%s=%d %v %q %.2f" "a" 1 true "b" 1.5 }}`, `a=1 true "b" 1.50`},
		{"printf missing operand", `{{ printf "%d" }}`, `%!d(MISSING)`},
		{"printf piped", `{{ "x" | printf "%s!" }}`, `x!`},
		{"printf types", `{{ printf "%T %T %T %T %T %T" "" 1 1.0 1i true nil }}`, `string int float64 complex128 bool <nil>`},
		{"print", `{{ print "a" 1 2 "b" }}`, `a1 2b`},
		{"print nil", `{{ print nil . }}`, `<nil> <nil>`},
		{"print nothing", `{{ print }}`, ``},

		// eq, ne
		{"eq", `{{ eq (secret "A") "alpha" }} {{ eq "a" "b" }}`, `true false`},
		{"eq any of", `{{ eq 1 2 3 1 }} {{ eq "c" "a" "b" }}`, `true false`},
		{"eq nil", `{{ eq nil nil }} {{ eq . nil }} {{ eq "a" nil }} {{ eq nil "a" }}`, `true true false false`},
		{"eq kinds", `{{ eq true true }} {{ eq 1.5 1.5 }} {{ eq 1i 1i }} {{ eq 'a' 97 }}`, `true true true true`},
		{"ne", `{{ ne "a" "b" }} {{ ne 1 1 }}`, `true false`},

		// not, and, or
		{"not", `{{ not "" }} {{ not (secret "A") }} {{ not nil }} {{ not 0 }}`, `true false true true`},
		{"and", `[{{ and "a" "" "b" }}] {{ and "a" "b" }} {{ and 1 0 }}`, `[] b 0`},
		{"and short-circuits", `[{{ and "" (secret "NOPE") }}]`, `[]`},
		{"and piped", `{{ "z" | and "a" }} [{{ "z" | and "" }}]`, `z []`},
		{"or", `{{ or "" "b" }} {{ or (secret "E") "default" }} {{ or 0 "" }}`, `b default `},
		{"or short-circuits", `{{ or "x" (secret "NOPE") }}`, `x`},
		{"or piped", `{{ "z" | or "a" }} {{ "z" | or "" }}`, `a z`},
		{"and nil", `{{ and nil }} {{ print (or nil) }}`, `<no value> <nil>`},

		// len
		{"len", `{{ len (secret "A") }} {{ len "" }} {{ len "日本" }}`, `5 0 6`},
		{"len in if", `{{ if eq (len (secret "E")) 0 }}empty{{ end }}`, `empty`},
	}
}

// evalErrorCases fail while rendering; want follows "template: t:".
func evalErrorCases() []templateCase {
	return []templateCase{
		{"too few args", `{{ secret }}`,
			`1:3: executing "t" at <secret>: wrong number of args for secret: want 1 got 0`},
		{"too many args", `{{ key "J" "k" "l" }}`,
			`1:3: executing "t" at <key>: wrong number of args for key: want 2 got 3`},
		{"too many args with pipe", `{{ "k" | key "J" "k" }}`,
			`1:9: executing "t" at <key>: wrong number of args for key: want 2 got 3`},
		{"too few variadic", `{{ printf }}`,
			`1:3: executing "t" at <printf>: wrong number of args for printf: want at least 1 got 0`},
		{"function as argument needs args", `{{ json secret }}`,
			`1:8: executing "t" at <secret>: wrong number of args for secret: want 1 got 0`},
		{"number for string", `{{ secret 1 }}`,
			`1:10: executing "t" at <1>: expected string; found 1`},
		{"bool for string", `{{ printf true }}`,
			`1:10: executing "t" at <true>: expected string; found true`},
		{"nil for string", `{{ secret nil }}`,
			`1:10: executing "t" at <nil>: cannot assign nil to string`},
		{"nil dot for string", `{{ secret . }}`,
			`1:10: executing "t" at <.>: invalid value; expected string`},
		{"int for string", `{{ secret (len "ab") }}`,
			`1:11: executing "t" at <len "ab">: wrong type for value; expected string; got int`},
		{"bool variable for string", `{{ $b := eq 1 1 }}{{ trim $b }}`,
			`1:26: executing "t" at <$b>: wrong type for value; expected string; got bool`},
		{"eq incompatible", `{{ eq "a" 1 }}`,
			`1:3: executing "t" at <eq "a" 1>: error calling eq: incompatible types for comparison: string and int`},
		{"eq int and float", `{{ eq 1 1.0 }}`,
			`1:3: executing "t" at <eq 1 1.0>: error calling eq: incompatible types for comparison: int and float64`},
		{"eq one arg", `{{ eq "a" }}`,
			`1:3: executing "t" at <eq "a">: error calling eq: missing argument for comparison`},
		{"ne incompatible", `{{ ne (secret "S") true }}`,
			`1:3: executing "t" at <ne (secret "S") true>: error calling ne: incompatible types for comparison: string and bool`},
		{"len of nil", `{{ len . }}`,
			`1:3: executing "t" at <len .>: error calling len: len of nil`},
		{"len of int", `{{ len 3 }}`,
			`1:3: executing "t" at <len 3>: error calling len: len of type int`},
		{"argument to constant", `{{ "a" "b" }}`,
			`1:3: executing "t" at <"a">: can't give argument to non-function "a"`},
		{"argument to variable", `{{ $x := "a" }}{{ "b" | $x }}`,
			`1:24: executing "t" at <$x>: can't give argument to non-function $x`},
		{"nil command", `{{ nil }}`,
			`1:3: executing "t" at <nil>: nil is not a command`},
		{"overflow", `{{ 18446744073709551615 }}`,
			`1:3: executing "t" at <18446744073709551615>: 18446744073709551615 overflows int`},
		{"variable of the other branch", `{{ if false }}{{ $x := 1 }}{{ else }}{{ $x }}{{ end }}`,
			`1:40: executing "t" at <$x>: undefined variable: $x`},
		{"error inside with", "x\n{{ with secret \"A\" }}\n  {{ base64decode . }}\n{{ end }}",
			`3:5: executing "t" at <base64decode .>: error calling base64decode: value is not valid base64: illegal base64 data at input byte 4`},
		{"error in else if", `{{ if false }}{{ else if secret "NOPE" }}{{ end }}`,
			`1:25: executing "t" at <secret "NOPE">: error calling secret: secret "NOPE" not found`},
	}
}

// unsupportedCases fail at parse time; want follows "template: db.url:".
func unsupportedCases() []templateCase {
	const field = `: dot holds no secrets; use secret "NAME" or key "NAME" "field"`
	return []templateCase{
		{"range", `{{ range "abc" }}x{{ end }}`, `1: range is not supported`},
		{"range with break", "a\n\n{{ range 3 }}{{ break }}{{ end }}", `3: range is not supported`},
		{"range in if", "{{ if true }}\n{{ else }}\n{{ range 3 }}{{ end }}{{ end }}", `3: range is not supported`},
		{"template", `{{ template "x" }}`, `1: template is not supported`},
		{"template with pipeline", "\n{{ template \"x\" (secret \"A\") }}", `2: template is not supported`},
		{"block", "{{ block \"x\" . }}b{{ end }}", `1: block is not supported`},
		{"define", "text\n{{ define \"x\" }}d{{ end }}", `2: define is not supported`},
		{"two defines", "text\n{{ define \"b\" }}x{{ end }}\n{{ define \"a\" }}y{{ end }}", `2: define is not supported`},
		{"define empty", "{{ define \"x\" }}{{ end }}", `1: define is not supported`},
		{"define the template itself", `{{ define "db.url" }}d{{ end }}`, `1: define is not supported`},
		{"field", `{{ .S }}`, `1: field access .S is not supported` + field},
		{"field chain", `{{ .S.T }}`, `1: field access .S.T is not supported` + field},
		{"method call", `{{ .Get "S" }}`, `1: field access .Get is not supported` + field},
		{"field as argument", `{{ json .S }}`, `1: field access .S is not supported` + field},
		{"field in with", "{{ with secret \"A\" }}\n{{ .Len }}{{ end }}", `2: field access .Len is not supported` + field},
		{"field in if", `{{ if .S }}{{ end }}`, `1: field access .S is not supported` + field},
		{"field in else", `{{ if true }}{{ else }}{{ .S }}{{ end }}`, `1: field access .S is not supported` + field},
		{"variable field", `{{ $x := "a" }}{{ $x.Len }}`, `1: field access $x.Len is not supported` + field},
		{"dollar field", `{{ $.S }}`, `1: field access $.S is not supported` + field},
		{"pipeline field", `{{ (secret "A").Len }}`, `1: field access (secret "A").Len is not supported` + field},
		{"index", `{{ index "ab" 0 }}`, `1: function "index" not defined`},
		{"slice", `{{ slice "ab" 1 }}`, `1: function "slice" not defined`},
		{"println", `{{ println "a" }}`, `1: function "println" not defined`},
		{"lt", `{{ lt 1 2 }}`, `1: function "lt" not defined`},
		{"call", `{{ call "f" }}`, `1: function "call" not defined`},
		{"html", `{{ html "<" }}`, `1: function "html" not defined`},
		{"js", `{{ js "<" }}`, `1: function "js" not defined`},
		{"urlquery", `{{ urlquery "a b" }}`, `1: function "urlquery" not defined`},
		{"break outside range", `{{ break }}`, `1: {{break}} outside {{range}}`},
	}
}

// FuzzTemplate checks the evaluator against text/template on any text: a
// template either fails to parse here (for text/template's reason, or for a
// construct or builtin this package does not implement), or renders what
// text/template renders and fails where it fails, with its message. Errors
// never show the value of S.
func FuzzTemplate(f *testing.F) {
	for _, cases := range [][]templateCase{evalCases(), evalErrorCases(), unsupportedCases()} {
		for _, c := range cases {
			f.Add(c.text, "alpha")
		}
	}
	// text/template builtins this package leaves out: parse errors here.
	omitted := map[string]bool{
		"call": true, "html": true, "index": true, "slice": true, "js": true,
		"println": true, "urlquery": true, "lt": true, "le": true, "gt": true, "ge": true,
	}
	f.Fuzz(func(t *testing.T, text, value string) {
		values := map[string]secret.Value{
			"A": secret.FromString(value),
			"S": secret.FromString("s3cr3t-" + value),
			"J": secret.FromString(`{"k":"s3cr3t-k"}`),
		}
		tmpl, err := ParseTemplate("fuzz", text)
		ref, refErr := reference("fuzz", text, values)
		if err != nil {
			switch {
			case refErr != nil && err.Error() == `parse template "fuzz": `+refErr.Error():
			case refErr == nil && strings.Contains(err.Error(), " is not supported"):
			case strings.Contains(err.Error(), ` not defined`) && omitted[undefinedFunction(err.Error())]:
			default:
				t.Fatalf("ParseTemplate: %v\ntext/template: %v", err, refErr)
			}
			return
		}
		if refErr != nil {
			t.Fatalf("ParseTemplate accepts what text/template rejects: %v", refErr)
		}
		got, err := tmpl.Execute(values)
		var buf bytes.Buffer
		refErr = ref.Execute(&buf, nil)
		switch {
		case (err == nil) != (refErr == nil):
			t.Fatalf("Execute error %v\ntext/template error %v", err, refErr)
		case err == nil && string(got.Bytes()) != buf.String():
			t.Fatalf("Execute = %q\ntext/template = %q", got.Bytes(), buf.String())
		case err == nil:
			return
		case !strings.Contains(text, "s3cr3t") && strings.Contains(err.Error(), "s3cr3t"):
			t.Fatalf("error %q shows a value", err)
		}
		// The message is text/template's, but for len of nil (where
		// text/template shows a reflect panic) and the location (which there
		// is the last node it evaluated).
		message := func(err error) string {
			_, m, _ := strings.Cut(err.Error(), ">: ")
			return m
		}
		if m := message(err); m != message(refErr) && m != "error calling len: len of nil" {
			t.Fatalf("Execute error %v\ntext/template error %v", err, refErr)
		}
	})
}

// undefinedFunction is X in `function "X" not defined`.
func undefinedFunction(msg string) string {
	_, after, _ := strings.Cut(msg, `function "`)
	name, _, _ := strings.Cut(after, `"`)
	return name
}
