package fetch

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseRef(f *testing.F) {
	for _, tc := range validRefs {
		f.Add(tc.in)
	}
	for _, tc := range invalidRefs {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		r2, err2 := ParseRef(s)
		if !reflect.DeepEqual(r, r2) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("ParseRef(%q) not deterministic: %+v, %v then %+v, %v", s, r, err, r2, err2)
		}
		if err != nil {
			var re *RefError
			if !errors.As(err, &re) || re.Ref != s {
				t.Fatalf("ParseRef(%q) error %#v is not a *RefError for the input", s, err)
			}
			if re.Reason == "" {
				t.Fatalf("ParseRef(%q) error has no reason", s)
			}
			return
		}
		if r.Raw != s || r.String() != s {
			t.Fatalf("ParseRef(%q): Raw %q, String %q", s, r.Raw, r.String())
		}
		switch r.Service {
		case ParameterStore:
			// Both forms are sent to GetParameters exactly as written.
			if q := r.ParameterQuery(); q == "" || q != s {
				t.Fatalf("ParseRef(%q).ParameterQuery() = %q", s, q)
			}
			if r.SecretID != "" || r.JSONKey != "" || r.VersionStage != "" || r.VersionID != "" {
				t.Fatalf("ParseRef(%q) = %+v: secrets manager fields set", s, r)
			}
		case SecretsManager:
			if r.SecretID == "" || !strings.HasPrefix(s, r.SecretID) {
				t.Fatalf("ParseRef(%q).SecretID = %q, not a prefix", s, r.SecretID)
			}
			if r.VersionStage != "" && r.VersionID != "" {
				t.Fatalf("ParseRef(%q) = %+v: stage and version id both set", s, r)
			}
			if r.ParameterQuery() != "" || r.Parameter != "" || r.IsARN {
				t.Fatalf("ParseRef(%q) = %+v: parameter store fields set", s, r)
			}
			// The id alone must be a valid whole-secret reference.
			whole, err := ParseRef(r.SecretID)
			if err != nil || whole.SecretID != r.SecretID {
				t.Fatalf("ParseRef(%q) gave SecretID %q that does not parse back: %v", s, r.SecretID, err)
			}
		default:
			t.Fatalf("ParseRef(%q) = %+v: no service", s, r)
		}
	})
}
