package config

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestStrictKeysRejectDuplicatesAndCaseVariants protects the config from
// encoding/json's leniency: a key given twice silently dropped the first
// value, and "OutputDir", "outputdir" or "NAME" were taken as the field.
func TestStrictKeysRejectDuplicatesAndCaseVariants(t *testing.T) {
	a := `{"name":"A","valueFrom":"/a"}`
	tests := []struct{ name, json, want string }{
		{"duplicate top level", `{"secrets":[` + a + `],"secrets":[{"name":"B","valueFrom":"/b"}]}`,
			`AGENT_CONFIG: secrets: given twice (only one would be used)`},
		{"case variant top level", `{"secrets":[` + a + `],"OutputDir":"/x"}`,
			`AGENT_CONFIG: OutputDir: unknown field: keys are case-sensitive, did you mean "outputDir"?`},
		{"both spellings", `{"secrets":[` + a + `],"outputDir":"/x","outputdir":"/y"}`,
			`AGENT_CONFIG: outputdir: unknown field: keys are case-sensitive, did you mean "outputDir"?`},
		{"case variant in secret", `{"secrets":[` + a + `,{"NAME":"B","valueFrom":"/b"}]}`,
			`AGENT_CONFIG: secrets[1].NAME: unknown field: keys are case-sensitive, did you mean "name"?`},
		{"duplicate in secret", `{"secrets":[{"name":"A","name":"B","valueFrom":"/a"}]}`,
			`AGENT_CONFIG: secrets[0].name: given twice (only one would be used)`},
		{"case variant in template", `{"secrets":[` + a + `],"templates":[{"template":"x","Destination":"d"}]}`,
			`AGENT_CONFIG: templates[0].Destination: unknown field: keys are case-sensitive, did you mean "destination"?`},
		{"duplicate in refresh", `{"secrets":[` + a + `],"refresh":{"interval":"1m","interval":"1s"}}`,
			`AGENT_CONFIG: refresh.interval: given twice (only one would be used)`},
		{"case variant in refresh", `{"secrets":[` + a + `],"refresh":{"maxstale":"1h"}}`,
			`AGENT_CONFIG: refresh.maxstale: unknown field: keys are case-sensitive, did you mean "maxStale"?`},
		{"case variant action kind", `{"secrets":[` + a + `],"onChange":[{"Signal":{"process":"nginx"}}]}`,
			`AGENT_CONFIG: onChange[0].Signal: unknown field: keys are case-sensitive, did you mean "signal"?`},
		{"duplicate in action", `{"secrets":[` + a + `],"onChange":[{"http":{"url":"http://a/","url":"http://b/"}}]}`,
			`AGENT_CONFIG: onChange[0].http.url: given twice (only one would be used)`},
		{"case variant in action", `{"secrets":[` + a + `],"onChange":[{"signal":{"pidfile":"/run/app.pid"}}]}`,
			`AGENT_CONFIG: onChange[0].signal.pidfile: unknown field: keys are case-sensitive, did you mean "pidFile"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Flags{}, env(map[string]string{"AGENT_CONFIG": tt.json}))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n got %v\nwant %q", err, tt.want)
			}
			if _, ok := err.(*Error); !ok {
				t.Errorf("error is %T, want *config.Error (exit 2)", err)
			}
		})
	}
}

// TestStrictKeysInWatchConfig protects agent watch's config from the same
// leniency.
func TestStrictKeysInWatchConfig(t *testing.T) {
	for _, tt := range []struct{ json, want string }{
		{`{"dryRun":true,"dryRun":false}`, `AGENT_CONFIG: dryRun: given twice (only one would be used)`},
		{`{"DryRun":true}`, `AGENT_CONFIG: DryRun: unknown field: keys are case-sensitive, did you mean "dryRun"?`},
		{`{"services":[{"cluster":"c","service":"s"},{"cluster":"c","Service":"s"}]}`,
			`AGENT_CONFIG: services[1].Service: unknown field: keys are case-sensitive, did you mean "service"?`},
		{`{"services":[{"cluster":"c","service":"s","service":"t"}]}`, `AGENT_CONFIG: services[0].service: given twice (only one would be used)`},
	} {
		_, err := LoadWatch("", env(map[string]string{"AGENT_CONFIG": tt.json}))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error\n got %v\nwant %q", tt.json, err, tt.want)
		}
	}
}

// FuzzDecode checks that the strict decoder never panics and only narrows
// encoding/json: whatever it accepts, encoding/json reads the same way, and it
// holds no key that is repeated or misspelt.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"secrets":[{"name":"A","valueFrom":"/a"}]}`,
		`{"secrets":[{"name":"A","valueFrom":"/a"}],"secrets":[]}`,
		`{"OutputDir":"/x"}`,
		`{"onChange":[{"signal":{"process":"nginx"}},{"http":{"url":"http://x/"}}],"refresh":{"interval":"1m"}}`,
		`{"templates":[{"template":"{{ secret \"A\" }}","destination":"d"}],"uid":1000}`,
		`[1,2]`, `{"a":`, `{"secrets":[{"name":"A"}]} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var strict File
		if err := Decode(data, &strict); err != nil {
			return
		}
		var lenient File
		if err := json.Unmarshal(data, &lenient); err != nil {
			t.Fatalf("strict accepted what encoding/json rejects: %v", err)
		}
		if !reflect.DeepEqual(strict, lenient) {
			t.Fatalf("strict and lenient disagree:\n%+v\n%+v", strict, lenient)
		}
		if k := foldedDuplicate(data); k != "" {
			t.Fatalf("accepted an object with key %q twice, up to case", k)
		}
	})
}

// foldedDuplicate returns a key that some object of valid JSON data holds
// twice up to case, or "".
func foldedDuplicate(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object, wantKey bool
		keys            map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if d, ok := tok.(json.Delim); !ok || d != '}' {
				k := strings.ToLower(tok.(string))
				if top.keys[k] {
					return tok.(string)
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim(']'), json.Delim('}'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the enclosing object wants its next key.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}
