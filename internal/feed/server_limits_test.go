package feed

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// manyRefs is a refs object of n distinct parameters.
func manyRefs(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"/p/%d":""`, i)
	}
	return "{" + b.String() + "}"
}

// Every malformed request gets a 4xx that says why, and changes nothing:
// no reference starts being tracked.
func TestMalformedRequestsRejected(t *testing.T) {
	tests := []struct {
		name, method, path, ctype, body string
		code                            int
		want                            string
	}{
		{"other path", "POST", "/v2/changes", "application/json", `{}`, 404,
			`{"error":"no such path \"/v2/changes\": the feed serves POST /v1/changes"}`},
		{"GET", "GET", Path, "application/json", ``, 405,
			`{"error":"method GET: the feed takes POST /v1/changes"}`},
		{"text body", "POST", Path, "text/plain", `{}`, 415,
			`{"error":"content type \"text/plain\": the feed takes application/json"}`},
		{"no content type", "POST", Path, "", `{}`, 415,
			`{"error":"content type \"\": the feed takes application/json"}`},
		{"body over 256 KiB", "POST", Path, "application/json",
			`{"region":"eu-west-1","refs":{"/p":"` + strings.Repeat("1", MaxBodyBytes) + `"}}`, 413,
			`{"error":"body over 262144 bytes"}`},
		{"truncated JSON", "POST", Path, "application/json", `{"region":"eu-west-1","refs":{"/p":""}`, 400,
			`{"error":"malformed JSON: unexpected EOF"}`},
		{"unknown field", "POST", Path, "application/json", `{"region":"eu-west-1","refz":{"/p":""}}`, 400,
			`{"error":"malformed JSON: json: unknown field \"refz\""}`},
		{"trailing data", "POST", Path, "application/json", `{"region":"eu-west-1","refs":{"/p":""}} {}`, 400,
			`{"error":"malformed JSON: data after the request object"}`},
		{"not an object", "POST", Path, "application/json", `["eu-west-1"]`, 400,
			`{"error":"malformed JSON: json: cannot unmarshal array into Go value of type feed.Request"}`},
		{"version not a string", "POST", Path, "application/json", `{"region":"eu-west-1","refs":{"/p":3}}`, 400,
			`{"error":"malformed JSON: json: cannot unmarshal number into Go struct field Request.refs of type string"}`},
		{"no region", "POST", Path, "application/json", `{"refs":{"/p":""}}`, 400,
			`{"error":"region: required, the task's region (\"eu-west-1\")"}`},
		{"bad region", "POST", Path, "application/json", `{"region":"europe","refs":{"/p":""}}`, 400,
			`{"error":"region: \"europe\" is not an AWS region (\"eu-west-1\")"}`},
		{"no refs", "POST", Path, "application/json", `{"region":"eu-west-1"}`, 400,
			`{"error":"refs: required, 1 to 1000 valueFrom → version held"}`},
		{"empty refs", "POST", Path, "application/json", `{"region":"eu-west-1","refs":{}}`, 400,
			`{"error":"refs: required, 1 to 1000 valueFrom → version held"}`},
		{"1001 refs", "POST", Path, "application/json", `{"region":"eu-west-1","refs":` + manyRefs(1001) + `}`, 400,
			`{"error":"refs: 1001 entries, at most 1000"}`},
		{"one bad valueFrom among good ones", "POST", Path, "application/json",
			`{"region":"eu-west-1","refs":{"/good":"","arn:aws:s3:::bucket":"","/fine":""}}`, 400,
			`{"error":"refs: invalid valueFrom \"arn:aws:s3:::bucket\": service must be \"ssm\" or \"secretsmanager\", got \"s3\""}`},
		{"bad wait", "POST", Path, "application/json", `{"region":"eu-west-1","wait":"soon","refs":{"/p":""}}`, 400,
			`{"error":"wait: \"soon\" is not a duration (\"60s\")"}`},
		{"negative wait", "POST", Path, "application/json", `{"region":"eu-west-1","wait":"-1s","refs":{"/p":""}}`, 400,
			`{"error":"wait: \"-1s\" is not a duration (\"60s\")"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := start(t, ServerOptions{})
				req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
				if tt.ctype != "" {
					req.Header.Set("Content-Type", tt.ctype)
				}
				a := <-h.do(req)
				want(t, a, tt.code, tt.want)
				if ct := a.hdr.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if allow := a.hdr.Get("Allow"); (tt.code == 405) != (allow == "POST") {
					t.Errorf("Allow %q with %d", allow, tt.code)
				}
				if n := h.tracked(); n != 0 {
					t.Errorf("a rejected request left %d keys tracked", n)
				}
				time.Sleep(2 * time.Minute)
				if got := h.src.callLog(); len(got) != 0 {
					t.Errorf("Versions calls %q after a rejected request", got)
				}
				if got := h.requests(tt.code); got != 1 {
					t.Errorf("feed_requests_total{code=\"%d\"} %v, want 1", tt.code, got)
				}
			})
		})
	}
}

// requests is feed_requests_total{code}.
func (h *harness) requests(code int) float64 {
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "ecs_secrets_agent_feed_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == fmt.Sprint(code) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func TestLimitsHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{MaxClients: 2, MaxRefs: 3})
		h.src.set(paramKey, "3")
		h.src.set("ssm eu-west-1 /two", "1")
		h.src.set("ssm eu-west-1 /three", "1")
		a := h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":"","/two":"","/three":""}}`)
		if a.code != 200 {
			t.Fatalf("%d %s", a.code, a.body)
		}
		// A charset parameter is still JSON; 1,000 refs is allowed (and
		// over MaxRefs here).
		req := httptest.NewRequest("POST", Path, strings.NewReader(`{"region":"eu-west-1","refs":`+manyRefs(1000)+`}`))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		a = <-h.do(req)
		want(t, a, 503, `{"error":"the feed would track 1003 references, over its limit of 3: poll AWS directly for now"}`)
		if a.hdr.Get("Retry-After") != "60" {
			t.Errorf("Retry-After %q", a.hdr.Get("Retry-After"))
		}
		if n := h.tracked(); n != 3 {
			t.Errorf("%d tracked after a request over MaxRefs, want 3 (nothing changed)", n)
		}

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h.askAsync(ctx, `{"region":"eu-west-1","refs":{"/prod/api/key":"3"}}`)
		h.askAsync(ctx, `{"region":"eu-west-1","refs":{"/two":"1"}}`)
		synctest.Wait()
		if h.held() != 2 {
			t.Fatalf("%d held, want 2", h.held())
		}
		a = h.ask(`{"region":"eu-west-1","refs":{"/three":"1"}}`)
		want(t, a, 503, `{"error":"the feed holds 2 requests, its limit: poll AWS directly for now"}`)
		if a.hdr.Get("Retry-After") != "10" {
			t.Errorf("Retry-After %q", a.hdr.Get("Retry-After"))
		}
		// A request that need not be held is still answered.
		a = h.ask(`{"region":"eu-west-1","refs":{"/three":"0"}}`)
		want(t, a, 200, `{"refs":{"/three":{"version":"1","age":0}},"changed":["/three"],"interval":"1m0s"}`)
		a = h.ask(`{"region":"eu-west-1","wait":"0s","refs":{"/three":"1"}}`)
		want(t, a, 200, `{"refs":{"/three":{"version":"1","age":0}},"changed":[],"interval":"1m0s"}`)
		if got := h.metric("ecs_secrets_agent_feed_held_requests"); got != 2 {
			t.Errorf("held gauge %v, want 2", got)
		}
	})
}

// A wait over MaxWait is cut to it.
func TestWaitCappedAtMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, ServerOptions{Interval: time.Hour})
		h.src.set(paramKey, "3")
		h.ask(`{"region":"eu-west-1","refs":{"/prod/api/key":""}}`)
		t0 := time.Now()
		a := h.ask(`{"region":"eu-west-1","wait":"1h","refs":{"/prod/api/key":"3"}}`)
		if d := time.Since(t0); d != MaxWait || a.code != http.StatusOK {
			t.Errorf("held %s (%d), want %s", d, a.code, MaxWait)
		}
	})
}
