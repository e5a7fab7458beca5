package feed

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// FuzzParseAnswer feeds any bytes to the client as a feed's answer: it
// never panics, accepts only protocol v1, and never counts a secret as
// covered or moved beyond what the answer says.
func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(`{"refs":{"/a":{"version":"1","age":2}},"changed":[],"interval":"5s"}`))
	f.Add([]byte(`{"refs":{"/a":{"version":"2","age":0},"/b":{"error":"AccessDeniedException: no","age":0}},"changed":["/a"],"interval":"1m0s"}`))
	f.Add([]byte(`{"refs":{},"interval":"0s"}`))
	f.Add([]byte(`{"refs":{"/a":{"version":"1","age":-3}},"changed":["/a","/zzz"],"interval":"5s","extra":1}`))
	f.Add([]byte(`{"changed":["/a"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := parseAnswer(body)
		if err != nil {
			if resp != nil {
				t.Fatal("an answer and an error")
			}
			return
		}
		if d, err := time.ParseDuration(resp.Interval); resp.Refs == nil || err != nil || d <= 0 {
			t.Fatalf("accepted %q", body)
		}
		now := time.Unix(1700000000, 0)
		c, err := NewClient(ClientOptions{URL: "http://feed:1", Interval: 10 * time.Second, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		reqs := []fetch.Request{{Name: "A", Ref: fetch.Ref{Raw: "/a", Service: fetch.ParameterStore, Parameter: "/a"}},
			{Name: "B", Ref: fetch.Ref{Raw: "/b", Service: fetch.ParameterStore, Parameter: "/b"}}}
		have := map[string]fetch.Result{"A": {Version: "1"}, "B": {Version: "1"}}
		c.Hold(0, reqs, have)
		c.answered(resp, map[string]string{"/a": "1", "/b": "1"})
		for _, r := range reqs {
			st, ok := resp.Refs[r.Ref.Raw]
			vouched := ok && st.Version == "1" && st.Error == "" && st.Age >= 0 && st.Age <= 10
			if c.Covered(r, "1") && !vouched {
				t.Fatalf("%s covered by %+v", r.Name, st)
			}
		}
		select {
		case moved := <-c.Moved():
			for _, name := range moved {
				raw := "/" + string(name[0]+'a'-'A')
				if !slices.Contains(resp.Changed, raw) || resp.Refs[raw].Version == "" || resp.Refs[raw].Version == "1" {
					t.Fatalf("%s moved on %s", name, body)
				}
			}
		default:
		}
	})
}

// FuzzRequest builds requests from any references and versions: the body
// is JSON that decodes to what was held, within the protocol's limits.
func FuzzRequest(f *testing.F) {
	f.Add("/a", "1", uint16(1))
	f.Add("arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf:password::", "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", uint16(3))
	f.Add("/p/\"quoted\"\u2028", "\x00", uint16(1200))
	f.Fuzz(func(t *testing.T, raw, version string, n uint16) {
		c, err := NewClient(ClientOptions{URL: "http://feed:1", Region: "eu-west-1", Interval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var reqs []fetch.Request
		have := map[string]fetch.Result{}
		for i := range int(n % 1500) {
			name := fmt.Sprintf("S%d", i)
			reqs = append(reqs, fetch.Request{Name: name, Ref: fetch.Ref{Raw: fmt.Sprintf("%s%d", raw, i), Service: fetch.ParameterStore}})
			have[name] = fetch.Result{Version: version}
		}
		c.Hold(0, reqs, have)
		c.mu.Lock()
		req, sent := c.request()
		c.mu.Unlock()
		body := Encode(req)
		if len(body) > MaxBodyBytes || len(sent) > MaxRefsPerRequest {
			t.Fatalf("%d bytes, %d refs", len(body), len(sent))
		}
		var back Request
		if err := json.Unmarshal(body, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Refs) != len(sent) || back.Region != "eu-west-1" || back.Wait != "30s" {
			t.Fatalf("decoded %d refs, region %q, wait %q", len(back.Refs), back.Region, back.Wait)
		}
		for k, v := range sent {
			// JSON replaces invalid UTF-8: compare with what it makes of v.
			var want string
			if err := json.Unmarshal(Encode(v), &want); err != nil {
				t.Fatal(err)
			}
			if w, ok := back.Refs[k]; ok && w != want {
				t.Fatalf("ref %q: sent %q, decoded %q", k, v, w)
			}
		}
	})
}
