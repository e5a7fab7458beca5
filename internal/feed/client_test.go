package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/refresh"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/secret"
)

var _ refresh.Feed = (*Client)(nil)

// standIn speaks protocol v1 from a table of versions: it answers at once
// when a ref's version differs from the one sent, else when the table
// changes, else when the wait runs out. mode makes it fail instead.
type standIn struct {
	mu         sync.Mutex
	versions   map[string]RefState // by valueFrom
	interval   string
	mode       string // "": answer; "status": 503; "garbage": not JSON; "silent": never answer
	retryAfter string
	bodies     []string
	at         []time.Time
	changed    chan struct{} // closed and replaced on every change of versions
}

func newStandIn() *standIn {
	return &standIn{versions: map[string]RefState{}, interval: "5s", changed: make(chan struct{})}
}

func (s *standIn) set(ref string, st RefState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions[ref] = st
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *standIn) setMode(m string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = m
}

func (s *standIn) requests() ([]string, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...), append([]time.Time(nil), s.at...)
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(body))
	s.at = append(s.at, time.Now())
	mode := s.mode
	s.mu.Unlock()
	switch mode {
	case "status":
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(Encode(ErrorBody{Error: "too many clients"}))
		return
	case "garbage":
		_, _ = w.Write([]byte("<html>proxy error</html>"))
		return
	case "silent":
		<-r.Context().Done()
		return
	}
	var req Request
	if r.Method != http.MethodPost || r.URL.Path != Path || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &req) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	wait, _ := ParseWait(req.Wait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		resp := Response{Refs: map[string]RefState{}, Changed: []string{}, Interval: s.interval}
		for ref, held := range req.Refs {
			st := s.versions[ref]
			resp.Refs[ref] = st
			if st.Version != "" && st.Version != held {
				resp.Changed = append(resp.Changed, ref)
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if len(resp.Changed) > 0 {
			_, _ = w.Write(Encode(resp))
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			_, _ = w.Write(Encode(resp))
			return
		case <-r.Context().Done():
			return
		}
	}
}

// handlerTransport serves requests with a handler in memory, so that a
// synctest bubble's fake clock runs while a request is held.
type handlerTransport struct {
	h    http.Handler
	down *bool // set: every request fails as a refused connection would
	mu   *sync.Mutex
}

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	down := *t.down
	t.mu.Unlock()
	if down {
		return nil, errors.New("dial tcp 10.0.0.1:9103: connect: connection refused")
	}
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { t.h.ServeHTTP(rec, r); close(done) }()
	select {
	case <-done:
	case <-r.Context().Done():
		<-done
	}
	if err := r.Context().Err(); err != nil {
		return nil, err // as a real transport: a cancelled request has no answer
	}
	return rec.Result(), nil
}

type clientHarness struct {
	c    *Client
	feed *standIn
	reg  *prometheus.Registry
	logs *lockedBuffer
	mu   sync.Mutex
	down bool
	stop func()
}

// newClientHarness runs a client against a stand-in feed, in memory;
// interval 10s, so wait 5s and a silent feed is down after 15s.
func newClientHarness(t *testing.T) *clientHarness {
	h := &clientHarness{feed: newStandIn(), reg: prometheus.NewRegistry(), logs: &lockedBuffer{}}
	var err error
	h.c, err = NewClient(ClientOptions{
		URL: "http://feed.internal:9103", Region: "eu-west-1", Interval: 10 * time.Second,
		HTTP:       &http.Client{Transport: handlerTransport{h.feed, &h.down, &h.mu}},
		Log:        slog.New(slog.NewJSONHandler(h.logs, nil)),
		Registerer: h.reg, Rand: func() float64 { return 0.5 },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.c.Run(ctx); close(done) }()
	h.stop = func() { cancel(); <-done }
	t.Cleanup(h.stop)
	return h
}

func (h *clientHarness) setDown(d bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = d
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func mustRef(t *testing.T, valueFrom string) fetch.Ref {
	t.Helper()
	r, err := fetch.ParseRef(valueFrom)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// held is what a loop holds: requests and versions (values included, as
// the loop's map has them).
func held(t *testing.T, refs map[string]string, versions map[string]string) ([]fetch.Request, map[string]fetch.Result) {
	var reqs []fetch.Request
	have := map[string]fetch.Result{}
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		reqs = append(reqs, fetch.Request{Name: name, Ref: mustRef(t, refs[name])})
		if v, ok := versions[name]; ok {
			have[name] = fetch.Result{Value: secret.FromString("sv-value-of-" + name), Version: v}
		}
	}
	return reqs, have
}

var fourSecrets = map[string]string{
	"A":    "/a",
	"A2":   "/a", // shares A's valueFrom: one ref
	"DB":   dbARN + ":password::",
	"PIN":  "/p:3",                                            // pinned: never sent
	"PINS": dbARN + ":::a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", // pinned version id
}

func TestClientRequestShapeAndVersionsAfterAChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newClientHarness(t)
		h.feed.set("/a", RefState{Version: "1", Age: 1})
		h.feed.set(dbARN+":password::", RefState{Version: "v1", Age: 1})
		h.hold(held(t, fourSecrets, map[string]string{"A": "1", "A2": "1", "DB": "v1", "PIN": "3", "PINS": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}))
		synctest.Wait()
		bodies, _ := h.feed.requests()
		want := `{"region":"eu-west-1","wait":"5s","refs":{"/a":"1","` + dbARN + `:password::":"v1"}}`
		if len(bodies) != 1 || bodies[0] != want {
			t.Fatalf("requests %q, want one: %s", bodies, want)
		}
		h.feed.set("/a", RefState{Version: "2", Age: 0})
		synctest.Wait()
		select {
		case got := <-h.c.Moved():
			if fmt.Sprint(got) != "[A A2]" {
				t.Errorf("moved %v, want [A A2]", got)
			}
		default:
			t.Fatal("nothing moved after the feed's change")
		}
		// Asked again at once (after the 1s floor), with the feed's
		// version although the loop still holds 1: held, not answered.
		time.Sleep(time.Second)
		synctest.Wait()
		bodies, _ = h.feed.requests()
		want2 := `{"region":"eu-west-1","wait":"5s","refs":{"/a":"2","` + dbARN + `:password::":"v1"}}`
		if len(bodies) != 2 || bodies[1] != want2 {
			t.Fatalf("requests %q, want a second: %s", bodies, want2)
		}
		// The loop catches up: same request, so no new one.
		h.hold(held(t, fourSecrets, map[string]string{"A": "2", "A2": "2", "DB": "v1", "PIN": "3", "PINS": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}))
		synctest.Wait()
		if bodies, _ = h.feed.requests(); len(bodies) != 2 {
			t.Errorf("%d requests after a Hold that changes nothing sent, want 2", len(bodies))
		}
		select {
		case got := <-h.c.Moved():
			t.Errorf("moved %v without a change", got)
		default:
		}
	})
}

func TestClientHoldOfNewRefsAsksAgainAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newClientHarness(t)
		h.hold(held(t, map[string]string{"A": "/a"}, map[string]string{"A": "1"}))
		time.Sleep(2 * time.Second) // a request is held
		h.hold(held(t, map[string]string{"A": "/a", "B": "/b"}, map[string]string{"A": "1", "B": "7"}))
		synctest.Wait()
		bodies, at := h.feed.requests()
		if len(bodies) != 2 || bodies[1] != `{"region":"eu-west-1","wait":"5s","refs":{"/a":"1","/b":"7"}}` || at[1].Sub(at[0]) != 2*time.Second {
			t.Errorf("requests %q at %v: want the new ref asked about at once", bodies, at)
		}
		if got := errorCounts(t, h.reg); got != "map[malformed:0 status:0 timeout:0 unauthorized:0 unreachable:0]" {
			t.Errorf("a re-ask counted as an error: %s", got)
		}
	})
}

// errorCounts is feed_errors_total by reason.
func errorCounts(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	out := map[string]float64{}
	for _, l := range gatherLines(t, g, "ecs_secrets_agent_feed_errors_total") {
		out[l.labels["reason"]] = l.value
	}
	return fmt.Sprint(out)
}

// sources is refresh_source by source.
func sources(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	out := map[string]float64{}
	for _, l := range gatherLines(t, g, "ecs_secrets_agent_refresh_source") {
		out[l.labels["source"]] = l.value
	}
	return fmt.Sprint(out)
}

type line struct {
	labels map[string]string
	value  float64
}

func gatherLines(t *testing.T, g prometheus.Gatherer, name string) []line {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []line
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := line{labels: map[string]string{}, value: m.GetGauge().GetValue() + m.GetCounter().GetValue()}
			for _, lp := range m.GetLabel() {
				l.labels[lp.GetName()] = lp.GetValue()
			}
			out = append(out, l)
		}
	}
	return out
}

func gaps(at []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(at); i++ {
		out = append(out, at[i].Sub(at[i-1]))
	}
	return out
}

func TestClientBacksOffOnErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newClientHarness(t)
		h.feed.setMode("status")
		h.hold(held(t, map[string]string{"A": "/a"}, map[string]string{"A": "1"}))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		_, at := h.feed.requests()
		// 1s doubling, capped at the 10s interval, jittered into [d/2, d)
		// (rand 0.5: 3/4 d), never closer than 1s.
		want := "[1s 1.5s 3s 6s 7.5s 7.5s]"
		if got := fmt.Sprint(gaps(at)); got != want {
			t.Errorf("gaps between failing requests %s, want %s", got, want)
		}
		if got := errorCounts(t, h.reg); got != "map[malformed:0 status:7 timeout:0 unauthorized:0 unreachable:0]" {
			t.Errorf("errors %s, want 7 status", got)
		}
		h.feed.setMode("")
		time.Sleep(8 * time.Second)
		h.feed.setMode("status")
		time.Sleep(5 * time.Second) // the held request answers at its 5s wait
		synctest.Wait()
		_, at = h.feed.requests()
		// The request at 34s is held until its wait ends at 39s; then the
		// feed fails again, and the backoff starts over at 1s.
		if got := fmt.Sprint(gaps(at)[6:]); got != "[7.5s 5s 1s 1.5s]" {
			t.Errorf("gaps after recovery %s, want [7.5s 5s 1s 1.5s]: an answer resets the backoff", got)
		}
	})
}

func TestClientHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newClientHarness(t)
		h.feed.setMode("status")
		h.feed.retryAfter = "20"
		h.hold(held(t, map[string]string{"A": "/a"}, map[string]string{"A": "1"}))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		_, at := h.feed.requests()
		if got := fmt.Sprint(gaps(at)); got != "[20s]" {
			t.Errorf("gaps %s, want [20s]: a busy feed's Retry-After is honoured", got)
		}
	})
}

func TestClientFailureReasons(t *testing.T) {
	for _, tc := range []struct {
		mode, reason string
		after        time.Duration // when the first request fails
	}{
		{"down", "unreachable", 0},
		{"status", "status", 0},
		{"garbage", "malformed", 0},
		{"silent", "timeout", 15 * time.Second}, // wait 5s + 10s
	} {
		t.Run(tc.mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newClientHarness(t)
				h.feed.set("/a", RefState{Version: "1"})
				if tc.mode == "down" {
					h.setDown(true)
				} else {
					h.feed.setMode(tc.mode)
				}
				h.hold(held(t, map[string]string{"A": "/a"}, map[string]string{"A": "1"}))
				if tc.after > 0 {
					time.Sleep(tc.after - time.Nanosecond)
					synctest.Wait()
					if got := errorCounts(t, h.reg); got != "map[malformed:0 status:0 timeout:0 unauthorized:0 unreachable:0]" {
						t.Fatalf("errors %s a moment before the feed's promise ran out", got)
					}
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				want := map[string]float64{"unreachable": 0, "timeout": 0, "unauthorized": 0, "status": 0, "malformed": 0}
				want[tc.reason] = 1
				if got := errorCounts(t, h.reg); got != fmt.Sprint(want) {
					t.Errorf("errors %s, want %v", got, want)
				}
				if got := sources(t, h.reg); got != "map[direct:1 feed:0]" {
					t.Errorf("sources %s", got)
				}
				logs := h.logs.String()
				if n := strings.Count(logs, `"msg":"change feed not answering; polling AWS directly at the refresh interval for the secrets it no longer covers","feed":"http://feed.internal:9103","reason":"`+tc.reason+`"`); n != 1 {
					t.Errorf("%d lines naming the cause %s:\n%s", n, tc.reason, logs)
				}
			})
		})
	}
}

func TestClientSwitchLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newClientHarness(t)
		if got := sources(t, h.reg); got != "map[direct:1 feed:0]" {
			t.Errorf("sources before any answer %s", got)
		}
		h.feed.set("/a", RefState{Version: "1"})
		h.hold(held(t, map[string]string{"A": "/a"}, map[string]string{"A": "1"}))
		time.Sleep(12 * time.Second) // two quiet answers
		if got := sources(t, h.reg); got != "map[direct:0 feed:1]" {
			t.Errorf("sources while the feed answers %s", got)
		}
		h.setDown(true)
		time.Sleep(40 * time.Second) // several failures
		if got := sources(t, h.reg); got != "map[direct:1 feed:0]" {
			t.Errorf("sources while it is down %s", got)
		}
		h.setDown(false)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if got := sources(t, h.reg); got != "map[direct:0 feed:1]" {
			t.Errorf("sources once it is back %s", got)
		}
		logs := h.logs.String()
		var msgs []string
		for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
			var e struct{ Level, Msg, Reason string }
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, e.Level+" "+e.Msg+" "+e.Reason)
		}
		want := []string{
			"INFO change feed answering; polling AWS only for the secrets it does not cover ",
			"WARN change feed not answering; polling AWS directly at the refresh interval for the secrets it no longer covers unreachable",
			"INFO change feed answering; polling AWS only for the secrets it does not cover ",
		}
		if fmt.Sprint(msgs) != fmt.Sprint(want) {
			t.Errorf("log lines:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestClientCoverage(t *testing.T) {
	const interval = 10 * time.Second
	for _, tc := range []struct {
		name    string
		state   *RefState // nil: the answer did not name the ref
		held    string
		elapsed time.Duration // since the answer
		want    bool
	}{
		{"same version, fresh", &RefState{Version: "4", Age: 2}, "4", 0, true},
		{"same version, at the limit", &RefState{Version: "4", Age: 2}, "4", 8 * time.Second, true},
		{"same version, just past the limit", &RefState{Version: "4", Age: 2}, "4", 8*time.Second + time.Nanosecond, false},
		{"age alone past the interval", &RefState{Version: "4", Age: 10.5}, "4", 0, false},
		{"other version", &RefState{Version: "5", Age: 0}, "4", 0, false},
		{"feed has no version", &RefState{Age: 0}, "4", 0, false},
		{"feed reports an error", &RefState{Version: "4", Age: 0, Error: "AccessDeniedException: denied"}, "4", 0, false},
		{"negative age", &RefState{Version: "4", Age: -1e6}, "4", 0, false},
		{"absurd age", &RefState{Version: "4", Age: 1e300}, "4", 0, false},
		{"not in the answer", nil, "4", 0, false},
		{"loop holds nothing", &RefState{Version: "4"}, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1700000000, 0)
			c, err := NewClient(ClientOptions{URL: "http://feed:1", Region: "eu-west-1", Interval: interval, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			reqs, have := held(t, map[string]string{"A": "/a"}, map[string]string{"A": tc.held})
			c.Hold(0, reqs, have)
			resp := &Response{Refs: map[string]RefState{}, Interval: "5s"}
			if tc.state != nil {
				resp.Refs["/a"] = *tc.state
			}
			c.answered(resp, map[string]string{"/a": tc.held})
			now = now.Add(tc.elapsed)
			if got := c.Covered(reqs[0], tc.held); got != tc.want {
				t.Errorf("Covered = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("nothing covered while the feed fails, covered again once it answers", func(t *testing.T) {
		now := time.Unix(1700000000, 0)
		c, err := NewClient(ClientOptions{URL: "http://feed:1", Region: "eu-west-1", Interval: interval, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		reqs, have := held(t, map[string]string{"A": "/a"}, map[string]string{"A": "4"})
		c.Hold(0, reqs, have)
		answer := &Response{Refs: map[string]RefState{"/a": {Version: "4", Age: 1}}, Interval: "5s"}
		c.answered(answer, map[string]string{"/a": "4"})
		if !c.Covered(reqs[0], "4") {
			t.Fatal("not covered after a fresh answer")
		}
		// A change made after that answer would go untold: the next tick
		// must poll, not wait for the answer's age to run out.
		c.failed("unreachable", errors.New("connection refused"))
		if c.Covered(reqs[0], "4") {
			t.Error("covered while the feed fails")
		}
		c.answered(answer, map[string]string{"/a": "4"})
		if !c.Covered(reqs[0], "4") {
			t.Error("not covered once the feed answers again")
		}
	})
	t.Run("pinned, with no feed at all", func(t *testing.T) {
		c, err := NewClient(ClientOptions{URL: "http://feed:1", Interval: interval})
		if err != nil {
			t.Fatal(err)
		}
		for _, vf := range []string{"/p:3", dbARN + ":::a1b2c3d4-5678-90ab-cdef-EXAMPLE22222"} {
			if !c.Covered(fetch.Request{Name: "P", Ref: mustRef(t, vf)}, "") {
				t.Errorf("%s not covered: a pinned reference never changes", vf)
			}
		}
		for _, vf := range []string{"/p:label", dbARN + "::AWSPREVIOUS:"} {
			if c.Covered(fetch.Request{Name: "P", Ref: mustRef(t, vf)}, "") {
				t.Errorf("%s covered with no answer: a label or stage moves", vf)
			}
		}
	})
}

func TestClientMergesMovesTheLoopHasNotTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newClientHarness(t)
		h.hold(held(t, map[string]string{"A": "/a", "B": "/b"}, map[string]string{"A": "1", "B": "1"}))
		time.Sleep(time.Second)
		h.feed.set("/a", RefState{Version: "2"})
		time.Sleep(time.Second)
		h.feed.set("/b", RefState{Version: "2"})
		time.Sleep(time.Second)
		synctest.Wait()
		got := <-h.c.Moved()
		if fmt.Sprint(got) != "[A B]" {
			t.Errorf("moved %v, want [A B] in one", got)
		}
		select {
		case more := <-h.c.Moved():
			t.Errorf("a second send %v", more)
		default:
		}
	})
}

func TestClientIntervalWarningOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newClientHarness(t)
		h.feed.interval = "1m0s"
		h.hold(held(t, map[string]string{"A": "/a"}, map[string]string{"A": "1"}))
		time.Sleep(30 * time.Second) // six answers
		synctest.Wait()
		if n := strings.Count(h.logs.String(), `"msg":"the change feed polls AWS less often than this agent's refresh interval`); n != 1 {
			t.Errorf("%d interval warnings, want 1:\n%s", n, h.logs)
		}
		if !strings.Contains(h.logs.String(), `"feed_interval":"1m0s","interval":"10s"`) {
			t.Errorf("the warning does not give both intervals:\n%s", h.logs)
		}
	})
}

func TestClientRequestLimits(t *testing.T) {
	t.Run("refs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newClientHarness(t)
			refs := map[string]string{}
			versions := map[string]string{}
			for i := range MaxRefsPerRequest + 1 {
				name := fmt.Sprintf("S%04d", i)
				refs[name], versions[name] = fmt.Sprintf("/p/%04d", i), "1"
			}
			reqs, have := held(t, refs, versions)
			h.c.Hold(0, reqs, have)
			synctest.Wait()
			bodies, _ := h.feed.requests()
			var req Request
			if err := json.Unmarshal([]byte(bodies[0]), &req); err != nil {
				t.Fatal(err)
			}
			if _, last := req.Refs["/p/1000"]; len(req.Refs) != MaxRefsPerRequest || last {
				t.Errorf("%d refs sent (/p/1000 among them: %v), want the first %d", len(req.Refs), last, MaxRefsPerRequest)
			}
			if n := strings.Count(h.logs.String(), `"msg":"more references than one request to the change feed may carry; the rest are polled directly","feed":"http://feed.internal:9103","refs":1001,"sent":1000`); n != 1 {
				t.Errorf("%d limit warnings, want 1:\n%s", n, h.logs)
			}
		})
	})
	t.Run("bytes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newClientHarness(t)
			refs := map[string]string{}
			versions := map[string]string{}
			for i := range 400 {
				name := fmt.Sprintf("S%04d", i)
				refs[name], versions[name] = fmt.Sprintf("/p/%04d/%s", i, strings.Repeat("x", 1000)), "1"
			}
			reqs, have := held(t, refs, versions)
			h.c.Hold(0, reqs, have)
			synctest.Wait()
			bodies, _ := h.feed.requests()
			var req Request
			if err := json.Unmarshal([]byte(bodies[0]), &req); err != nil {
				t.Fatal(err)
			}
			if len(bodies[0]) > MaxBodyBytes || len(bodies[0]) < MaxBodyBytes-1100 || len(req.Refs) != 258 {
				t.Errorf("body of %d bytes with %d refs, want at most %d bytes: 258 refs of ~1 KiB", len(bodies[0]), len(req.Refs), MaxBodyBytes)
			}
		})
	})
}

// TestClientSendsNoValue runs the client over real HTTP and scans every
// byte it sends, and every log line, for the values the loop holds.
func TestClientSendsNoValue(t *testing.T) {
	feed := newStandIn()
	feed.set("/a", RefState{Version: "1"})
	var mu sync.Mutex
	var sent bytes.Buffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		fmt.Fprintf(&sent, "%s %s %v\n%s\n", r.Method, r.URL, r.Header, body)
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		feed.ServeHTTP(w, r)
	}))
	defer srv.Close()
	logs := &lockedBuffer{}
	c, err := NewClient(ClientOptions{URL: srv.URL, Region: "eu-west-1", Interval: 2 * time.Second,
		Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	reqs, have := held(t, map[string]string{"A": "/a", "DB": dbARN + ":password::"}, map[string]string{"A": "1", "DB": "v1"})
	c.Hold(0, reqs, have)
	feed.set("/a", RefState{Version: "2"})
	select {
	case got := <-c.Moved():
		if fmt.Sprint(got) != "[A]" {
			t.Errorf("moved %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no move over real HTTP")
	}
	have["A"] = fetch.Result{Value: secret.FromString("sv-value-of-A-new"), Version: "2"}
	c.Hold(0, reqs, have)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(sent.String(), `"/a":"1"`) {
		t.Fatalf("capture holds no request:\n%s", sent.String())
	}
	for _, where := range []string{sent.String(), logs.String()} {
		if strings.Contains(where, "sv-value-of") {
			t.Errorf("a secret value left the client:\n%s", where)
		}
	}
}

// hold is the loop's Hold at the client's own interval.
func (h *clientHarness) hold(reqs []fetch.Request, have map[string]fetch.Result) {
	h.c.Hold(0, reqs, have)
}

func TestClientIntervalFollowsTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newClientHarness(t) // 10s
		h.feed.set("/a", RefState{Version: "1", Age: 12})
		// The loop holds 0: the feed answers at once that 1 is current.
		reqs, have := held(t, map[string]string{"A": "/a"}, map[string]string{"A": "0"})
		h.c.Hold(0, reqs, have)
		time.Sleep(2 * time.Second)
		if h.c.Covered(reqs[0], "1") {
			t.Error("covered by a view 14s old with a 10s interval")
		}
		h.c.Hold(30*time.Second, reqs, have) // a reload to 30s
		synctest.Wait()
		bodies, _ := h.feed.requests()
		if len(bodies) != 3 || !strings.Contains(bodies[1], `"wait":"5s"`) || !strings.Contains(bodies[2], `"wait":"15s"`) {
			t.Errorf("requests %q: want the held one re-asked at once with wait 15s", bodies)
		}
		if !h.c.Covered(reqs[0], "1") {
			t.Error("not covered by a view 14s old with a 30s interval")
		}
	})
}

func TestClientLogsNoPasswordOfTheURL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &lockedBuffer{}
		c, err := NewClient(ClientOptions{URL: "http://agent:hunter2@feed.internal:9103", Region: "eu-west-1", Interval: 10 * time.Second,
			HTTP: &http.Client{Transport: handlerTransport{newStandIn(), new(bool), new(sync.Mutex)}},
			Log:  slog.New(slog.NewJSONHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go c.Run(ctx)
		reqs, have := held(t, map[string]string{"A": "/a"}, map[string]string{"A": "1"})
		c.Hold(0, reqs, have)
		time.Sleep(6 * time.Second) // the first answer, at the 5s wait
		synctest.Wait()
		if !strings.Contains(logs.String(), `"feed":"http://agent:xxxxx@feed.internal:9103"`) || strings.Contains(logs.String(), "hunter2") || strings.Contains(c.URL(), "hunter2") {
			t.Errorf("logs:\n%s", logs)
		}
		cancel()
		synctest.Wait()
	})
}

// A change the feed told many clients at once is fetched after a random
// part of its splay (capped at the interval), not at once by all.
func TestClientWaitsARandomPartOfTheSplay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		splay float64
		want  time.Duration
	}{
		{"no splay: at once", 0, 0},
		{"half of 10 s", 10, 5 * time.Second},
		{"half of the interval when the splay is longer", 200, 30 * time.Second},
		// 10,000 clients of one parameter: 500 s, longer than the
		// longest wait; the biggest fleets need the splay most.
		{"half of the interval when the splay is past MaxWait", 500, 30 * time.Second},
		{"a splay too big for a Duration is the interval", 1e300, 30 * time.Second},
		{"a negative splay is none", -5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, err := NewClient(ClientOptions{URL: "http://feed:1", Region: "eu-west-1", Interval: time.Minute, Rand: func() float64 { return 0.5 }})
				if err != nil {
					t.Fatal(err)
				}
				reqs, have := held(t, map[string]string{"A": "/a", "B": "/b"}, map[string]string{"A": "3", "B": "7"})
				c.Hold(0, reqs, have)
				start := time.Now()
				c.answered(&Response{Refs: map[string]RefState{
					"/a": {Version: "4", Splay: tc.splay},
					"/b": {Version: "7", Splay: tc.splay},
				}, Changed: []string{"/a"}, Interval: "30s"}, map[string]string{"/a": "3", "/b": "7"})
				// While its fetch waits out the splay, a tick must not
				// poll it: that would spend the quota the splay spreads.
				if covered := c.Covered(reqs[0], "3"); covered != (tc.want > 0) {
					t.Errorf("covered %v during the splay, want %v", covered, tc.want > 0)
				}
				got := <-c.Moved()
				if waited := time.Since(start); waited != tc.want || !slices.Equal(got, []string{"A"}) {
					t.Errorf("moved %v after %s, want [A] after %s", got, waited, tc.want)
				}
				if c.Covered(reqs[0], "3") {
					t.Error("still covered with the old version once the fetch is handed to the loop")
				}
			})
		})
	}
}
