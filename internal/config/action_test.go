package config

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzRedactURL checks that a redacted URL never shows a password or a query
// value, whatever the URL.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8080/-/reload",
		"https://u:p@h/x?a=1&b=&c#frag",
		"http://h/hook?token=abc%20def&token=second&sig",
		"http://a:b:c@h/?=x&&y=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		shown := RedactURL(u)
		if p, ok := u.User.Password(); ok && p != "xxxxx" && strings.Contains(shown, ":"+url.UserPassword("", p).String()[1:]+"@") {
			t.Fatalf("%q shows the password: %q", raw, shown)
		}
		back, err := url.Parse(shown)
		if err != nil {
			t.Fatalf("redacted %q does not parse: %v", shown, err)
		}
		for p := range strings.SplitSeq(back.RawQuery, "&") {
			if _, v, ok := strings.Cut(p, "="); ok && v != "xxxxx" {
				t.Fatalf("%q shows query value %q: %q", raw, v, shown)
			}
		}
	})
}
