package feed

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseRequest: any body is accepted or rejected without a panic, and
// an accepted one is well formed and reads the same once re-encoded. The
// server serves eu-west-1 only: a ref in any other region is refused, and
// has no key.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"region":"eu-west-1","wait":"60s","refs":{"/prod/api/key":"3"}}`,
		`{"region":"eu-west-1","refs":{"arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf:password::":"a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}}`,
		`{"region":"us-east-1","wait":"0s","refs":{"name:7":"","arn:aws:ssm:us-east-1:111122223333:parameter/a/b":"2"}}`,
		`{"region":"us-east-1","refs":{"/p":"","arn:aws:ssm:eu-west-1:111122223333:parameter/q":"1"}}`,
		`{"region":"eu-west-1","refs":{"/p":""}} {}`,
		`{"region":"eu-west-1","refz":{}}`,
		`{"region":"europe","refs":{"/p":""}}`,
		`{"region":"eu-west-1","wait":"-1s","refs":{"/p":""}}`,
		`{"region":"eu-west-1","refs":{"/p":null}}`,
		`null`,
		`{`,
	} {
		f.Add([]byte(s))
	}
	serves := func(region string) bool { return region == "eu-west-1" }
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseRequest(body, serves)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		if len(p.refs) < 1 || len(p.refs) > MaxRefsPerRequest || len(p.keys) > len(p.refs)-p.refused || p.wait < 0 || p.wait > MaxWait {
			t.Fatalf("accepted %d refs (%d refused), %d keys, wait %s", len(p.refs), p.refused, len(p.keys), p.wait)
		}
		var req Request
		_ = json.Unmarshal(body, &req)
		for i, r := range p.refs {
			if i > 0 && p.refs[i-1].valueFrom >= r.valueFrom {
				t.Fatalf("refs not sorted: %q then %q", p.refs[i-1].valueFrom, r.valueFrom)
			}
			if r.refused != "" {
				if r.key != "" || serves(r.refused) {
					t.Fatalf("ref %q refused for region %q, with key %q", r.valueFrom, r.refused, r.key)
				}
				continue
			}
			if k, ok := p.keys[r.key]; !ok || !serves(k.ref.Region) {
				t.Fatalf("ref %q has key %q, not among the keys or in a region not served", r.valueFrom, r.key)
			}
		}
		again, err := parseRequest(Encode(req), serves)
		if err != nil {
			t.Fatalf("re-encoded request rejected: %v", err)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("re-encoded request reads differently:\n%+v\n%+v", p, again)
		}
	})
}
