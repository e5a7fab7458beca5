package feed

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseToken: whatever the variable holds, the error never quotes it,
// and a token that parses prints redacted however it is formatted.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"", "short", "0123456789abcdef", "0123456789abcdef with space", "ünïcödé-token-value-1234", "tok\x00en-value-123456"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		tok, err := ParseToken(TokenEnv, value)
		if err != nil {
			if len(value) >= 4 && strings.Contains(err.Error(), value) {
				t.Fatalf("the error quotes the value: %v", err)
			}
			return
		}
		if tok.Set() != (value != "") {
			t.Fatalf("Set() = %v for %q", tok.Set(), value)
		}
		if !tok.Set() {
			return
		}
		for _, out := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %#v %s %q", tok, tok, tok, tok, tok)} {
			if strings.Contains(out, value) {
				t.Fatalf("formatting shows the value: %s", out)
			}
		}
	})
}
