package plan

import (
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

func settings(t *testing.T, json string) *config.Settings {
	t.Helper()
	s, err := config.Load(config.Flags{}, func(k string) string {
		if k == "AGENT_CONFIG" {
			return json
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func text(v string) fetch.Result { return fetch.Result{Value: secret.FromString(v)} }

func TestFiles(t *testing.T) {
	s := settings(t, `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"J","valueFrom":"/j","expand":true},
		{"name":"B","valueFrom":"/b","file":"x/b","mode":"0400"},{"name":"OPT","valueFrom":"/o","optional":true}],
		"envFile":"e.env","jsonFile":"j.json","templates":[{"template":"{{ key \"J\" \"k\" }}/{{ secret \"J_k\" }}","destination":"t"}]}`)
	values := map[string]fetch.Result{
		"A": text("a"), "J": text(`{"k":"v","n":2}`),
		"B": {Value: secret.New([]byte{0, 0xff}), Binary: true},
	}
	files, err := Files(s, values)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Path+"="+string(f.Data.Bytes())+"@"+f.Mode.String())
	}
	want := []string{
		"A=a@-r--r--r--", "J_k=v@-r--r--r--", "J_n=2@-r--r--r--", "x/b=\x00\xff@-r--------",
		"e.env=A='a'\nJ_k='v'\nJ_n='2'\nB='AP8='\n@-r--r--r--",
		"j.json={\n  \"A\": \"a\",\n  \"B\": \"AP8=\",\n  \"J_k\": \"v\",\n  \"J_n\": \"2\"\n}\n@-r--r--r--",
		"t=v/v@-r--r--r--",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("files:\n%q\nwant:\n%q", got, want)
	}
}

func TestFilesErrors(t *testing.T) {
	tests := []struct {
		name   string
		config string
		values map[string]fetch.Result
		want   string
	}{
		{"expanded name collides", `{"secrets":[{"name":"J","valueFrom":"/j","expand":true},{"name":"J_k","valueFrom":"/k"}]}`,
			map[string]fetch.Result{"J": text(`{"k":"v"}`), "J_k": text("x")}, `secret J_k: "J_k" is also produced by secret J`},
		{"expanded file collides with envFile", `{"secrets":[{"name":"J","valueFrom":"/j","expand":true}],"envFile":"J_k"}`,
			map[string]fetch.Result{"J": text(`{"k":"v"}`)}, `secret J_k and envFile both write "J_k"`},
		{"expand a binary secret", `{"secrets":[{"name":"J","valueFrom":"/j","expand":true}]}`,
			map[string]fetch.Result{"J": {Value: secret.FromString("{}"), Binary: true}}, `secret J: expand needs a JSON object, and the secret is binary`},
		{"expand a non-object", `{"secrets":[{"name":"J","valueFrom":"/j","expand":true}]}`,
			map[string]fetch.Result{"J": text(`not json`)}, `secret J: expand: secret value is not a JSON object`},
		{"expand a bad key", `{"secrets":[{"name":"J","valueFrom":"/j","expand":true}]}`,
			map[string]fetch.Result{"J": text(`{"a-b":"v"}`)}, `secret J: expand: key "a-b" does not make a valid variable name (J_a-b)`},
		{"NUL in env", `{"secrets":[{"name":"A","valueFrom":"/a"}],"envFile":"e"}`,
			map[string]fetch.Result{"A": text("a\x00b")}, `envFile e: `},
		// Expanded names are known only after the fetch, so check cannot
		// see these; plan must, before anything is written.
		{"expanded file is a directory of another file", `{"secrets":[{"name":"J","valueFrom":"/j","expand":true},{"name":"B","valueFrom":"/b","file":"J_k/b"}]}`,
			map[string]fetch.Result{"J": text(`{"k":"v"}`), "B": text("b")}, `secret B: "J_k/b" needs "J_k" to be a directory, but secret J_k writes a file there`},
		{"expanded name too long", `{"secrets":[{"name":"J","valueFrom":"/j","expand":true}]}`,
			map[string]fetch.Result{"J": text(`{"` + strings.Repeat("k", 254) + `":"v"}`)},
			`secret J_` + strings.Repeat("k", 254) + `: path element "J_kkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"… is 256 bytes long; a file or directory name can have at most 255`},
		{"template names a missing secret", `{"secrets":[{"name":"A","valueFrom":"/a","optional":true}],"templates":[{"template":"{{ secret \"A\" }}","destination":"t"}]}`,
			map[string]fetch.Result{}, `templates[0]: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Files(settings(t, tt.config), tt.values)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if strings.HasSuffix(tt.want, ": ") && strings.HasPrefix(err.Error(), tt.want) {
				return
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

// A reload that drops a secret, an expanded key and the envFile leaves
// exactly their paths to remove; what stays or moves in is kept.
func TestGone(t *testing.T) {
	before, err := Files(settings(t, `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"B","valueFrom":"/b","file":"x/b"},{"name":"J","valueFrom":"/j","expand":true}],"envFile":"e.env"}`),
		map[string]fetch.Result{"A": text("a"), "B": text("b"), "J": text(`{"k":"v","n":"2"}`)})
	if err != nil {
		t.Fatal(err)
	}
	after, err := Files(settings(t, `{"secrets":[{"name":"A","valueFrom":"/a"},{"name":"J","valueFrom":"/j","expand":true},{"name":"C","valueFrom":"/c","file":"x/c"}]}`),
		map[string]fetch.Result{"A": text("a"), "J": text(`{"k":"v"}`), "C": text("c")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(Gone(before, after), " "), "x/b J_n e.env"; got != want {
		t.Errorf("Gone = %q, want %q", got, want)
	}
	if got := Gone(after, after); len(got) != 0 {
		t.Errorf("Gone(same) = %q", got)
	}
}
