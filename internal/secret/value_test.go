package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const seeded = "hunter2-do-not-print"

func TestValueNeverPrints(t *testing.T) {
	v := FromString(seeded)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "v", v, "group", slog.GroupValue(slog.Any("inner", v)))
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "v", v)
	js, err := json.Marshal(map[string]any{"v": v, "p": &v})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprint(v), fmt.Sprintf("%v %+v %#v %s %q %x %X %d", v, v, v, v, v, v, v, v),
		fmt.Sprintf("%v", struct{ V Value }{v}), fmt.Sprintf("%+v", &struct{ V Value }{v}),
		fmt.Sprintf("%#v", []Value{v}), fmt.Errorf("wrapped: %v", v).Error(),
		logs.String(), string(js),
	}
	for _, out := range outputs {
		if strings.Contains(out, seeded) || strings.Contains(out, fmt.Sprintf("%x", seeded)) {
			t.Errorf("secret printed: %s", out)
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("no placeholder in %q", out)
		}
	}
	if string(v.Bytes()) != seeded || v.Len() != len(seeded) || !v.Equal(FromString(seeded)) || v.Equal(FromString("x")) {
		t.Error("content accessors disagree with the content")
	}
}

func TestFields(t *testing.T) {
	v := FromString(`{"s":"a \"q\"\n","n":1000000,"e":1e6,"f":1.5,"o":{ "a" : "b" },"l":[1, "x"],"t":true,"z":null,"u":"\u00e9"}`)
	want := map[string]string{"s": "a \"q\"\n", "n": "1000000", "e": "1e6", "f": "1.5", "o": `{"a":"b"}`,
		"l": `[1,"x"]`, "t": "true", "z": "null", "u": "é"}
	got, err := v.Fields()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields, want %d", len(got), len(want))
	}
	for k, w := range want {
		if string(got[k].Bytes()) != w {
			t.Errorf("field %s = %q, want %q", k, got[k].Bytes(), w)
		}
	}
	if keys := SortedKeys(got); strings.Join(keys, ",") != "e,f,l,n,o,s,t,u,z" {
		t.Errorf("sorted keys = %v", keys)
	}
	f, err := v.Field("n")
	if err != nil || string(f.Bytes()) != "1000000" {
		t.Errorf("Field(n) = %q, %v", f.Bytes(), err)
	}
	var kn *KeyNotFoundError
	if _, err := v.Field("N"); !errors.As(err, &kn) || err.Error() != `key "N" not found in secret's JSON` {
		t.Errorf("Field(N) error = %v", err)
	}
}

func TestFieldsOfNonObjectsSayNothingOfTheValue(t *testing.T) {
	for _, in := range []string{seeded, `"` + seeded + `"`, `[1,2]`, `null`, ``, `{"a":` + seeded, `42`} {
		_, err := FromString(in).Fields()
		if !errors.Is(err, ErrNotJSONObject) || err.Error() != "secret value is not a JSON object" {
			t.Errorf("Fields(%.8q...) error = %v", in, err)
		}
	}
}

func FuzzFields(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"n":1e6,"o":{"x":[1,null]}}`, `{"a":"\ud800"}`, `{}`, `[]`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, err := New(b).Fields()
		if err != nil {
			if err != ErrNotJSONObject {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for k, v := range fields {
			got, err := New(b).Field(k)
			if err != nil || !got.Equal(v) {
				t.Fatalf("Field(%q) disagrees with Fields", k)
			}
			if !json.Valid(v.Bytes()) {
				// Only string fields are unquoted; everything else must stay JSON.
				var s string
				if json.Unmarshal(mustRaw(t, b, k), &s) != nil {
					t.Fatalf("field %q is neither a string nor JSON text", k)
				}
			}
		}
	})
}

func mustRaw(t *testing.T, b []byte, k string) json.RawMessage {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	return obj[k]
}
