package feed

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseRequest: any body is accepted or rejected without a panic, and
// an accepted one is well formed and reads the same once re-encoded.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"region":"eu-west-1","wait":"60s","refs":{"/prod/api/key":"3"}}`,
		`{"region":"eu-west-1","refs":{"arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf:password::":"a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}}`,
		`{"region":"us-east-1","wait":"0s","refs":{"name:7":"","arn:aws:ssm:us-east-1:111122223333:parameter/a/b":"2"}}`,
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
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseRequest(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		if len(p.refs) < 1 || len(p.refs) > MaxRefsPerRequest || len(p.keys) > len(p.refs) || p.wait < 0 || p.wait > MaxWait {
			t.Fatalf("accepted %d refs, %d keys, wait %s", len(p.refs), len(p.keys), p.wait)
		}
		var req Request
		_ = json.Unmarshal(body, &req)
		for i, r := range p.refs {
			if i > 0 && p.refs[i-1].valueFrom >= r.valueFrom {
				t.Fatalf("refs not sorted: %q then %q", p.refs[i-1].valueFrom, r.valueFrom)
			}
			if _, ok := p.keys[r.key]; !ok {
				t.Fatalf("ref %q has key %q, not among the keys", r.valueFrom, r.key)
			}
		}
		again, err := parseRequest(Encode(req))
		if err != nil {
			t.Fatalf("re-encoded request rejected: %v", err)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("re-encoded request reads differently:\n%+v\n%+v", p, again)
		}
	})
}
